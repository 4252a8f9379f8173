import pytest
import torch

from torch_geometric_unlearn.influence.expected import (ExpectedBPR,
                                                        expected_negative_grad,
                                                        sampler_shift)

NUM_USERS, NUM_ITEMS, DIM = 5, 9, 3
# User 3 holds more pairs than a block of chunk=20 entries: a block alone.
PAIRS = torch.tensor([[0, 0, 2, 3, 3, 3, 4, 1, 3],
                      [1, 4, 6, 5, 0, 2, 8, 3, 7]])
KNOWN = torch.tensor([[0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4],
                      [1, 4, 5, 3, 0, 6, 0, 2, 5, 7, 1, 3, 8]])


def brute_force(final, weight, known, num_items=NUM_ITEMS):
    # sum_p w_p mean_{j drawable} softplus(s_uj - s_ui), by autograd.
    drawn = set(map(tuple, known.t().tolist())) if known is not None else ()
    x = final.clone().requires_grad_()
    total = 0
    for p, (u, i) in enumerate(PAIRS.t().tolist()):
        allowed = [j for j in range(num_items) if (u, j) not in drawn]
        margins = torch.stack([x[u] @ x[NUM_USERS + j] -
                               x[u] @ x[NUM_USERS + i] for j in allowed])
        w = 1.0 if weight is None else weight[p]
        total = total + w * torch.nn.functional.softplus(margins).mean()
    return torch.autograd.grad(total, x)[0]


def keys(known, num_items=NUM_ITEMS):
    return (known[0] * num_items + known[1]).sort()[0]


@pytest.mark.parametrize('chunk', [1 << 22, 20])  # one block; several
@pytest.mark.parametrize('sampler', ['all', 'unseen'])
@pytest.mark.parametrize('weighted', [False, True])
def test_gradient_and_its_change_match_brute_force(chunk, sampler, weighted):
    gen = torch.Generator().manual_seed(3)
    final = torch.randn(NUM_USERS + NUM_ITEMS, DIM, generator=gen,
                        dtype=torch.float64)
    change = 0.1 * torch.randn(final.shape, generator=gen,
                               dtype=torch.float64)
    weight = (torch.rand(PAIRS.size(1), generator=gen, dtype=torch.float64)
              if weighted else None)
    known = KNOWN if sampler == 'unseen' else None
    loss = ExpectedBPR(PAIRS, NUM_USERS, NUM_ITEMS,
                       None if known is None else keys(known), weight,
                       chunk=chunk)
    assert len(loss.blocks) == (1 if chunk > 1000 else 4)
    expected = brute_force(final, weight, known)
    torch.testing.assert_close(loss.grad(final), expected)
    grad, grad_change = loss.gradient_change(final, change)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(
        grad_change, expected - brute_force(final - change, weight, known))


@pytest.mark.parametrize('samples', [None, 4])
def test_reduce_is_applied_to_every_gradient(samples):
    final = torch.randn(NUM_USERS + NUM_ITEMS, DIM, dtype=torch.float64)
    loss = ExpectedBPR(PAIRS, NUM_USERS, NUM_ITEMS, reduce=lambda g: 2 * g,
                       samples=samples)
    plain = ExpectedBPR(PAIRS, NUM_USERS, NUM_ITEMS, samples=samples)
    torch.testing.assert_close(loss.grad(final), 2 * plain.grad(final))
    for a, b in zip(loss.gradient_change(final, final / 10),
                    plain.gradient_change(final, final / 10)):
        torch.testing.assert_close(a, 2 * b)
    assert loss.change_error == plain.change_error


@pytest.mark.parametrize('size', [1e-2, 1e-5])
def test_gradient_change_keeps_float32_accuracy(size):
    # Formed from the margins' change, not as a difference of two float32
    # gradients: to about 1e-7 of its size, where the difference loses
    # more than 1e-6 (small changes).
    gen = torch.Generator().manual_seed(0)
    num_users, num_items = 40, 60
    pairs = torch.stack([torch.randint(num_users, (300, ), generator=gen),
                         torch.randint(num_items, (300, ), generator=gen)])
    final = torch.randn(num_users + num_items, 8, generator=gen,
                        dtype=torch.float64)
    change = size * torch.randn(final.shape, generator=gen,
                                dtype=torch.float64)
    loss = ExpectedBPR(pairs, num_users, num_items)
    exact = loss.gradient_change(final, change)[1]
    got = loss.gradient_change(final.float(), change.float())[1].double()
    naive = (loss.grad(final.float()) - loss.grad(
        (final - change).float())).double()
    error = float((got - exact).norm() / exact.norm())
    assert error < 1e-6
    assert float((naive - exact).norm() / exact.norm()) > 10 * error


def test_expected_negative_grad_is_the_averaged_loss_gradient():
    final = torch.randn(NUM_USERS + NUM_ITEMS, DIM, dtype=torch.float64)
    weight = torch.rand(PAIRS.size(1), dtype=torch.float64)
    torch.testing.assert_close(
        expected_negative_grad(final, PAIRS, NUM_USERS, keys(KNOWN), weight),
        brute_force(final, weight, KNOWN))


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match=r'\[2, P\]'):
        ExpectedBPR(PAIRS[0], NUM_USERS, NUM_ITEMS)


@pytest.mark.parametrize('sampler', ['all', 'unseen'])
@pytest.mark.parametrize('moved', [[NUM_USERS + 2], [1, NUM_USERS + 2]])
def test_the_change_of_a_few_rows_needs_only_their_pairs_and_columns(
        sampler, moved):
    gen = torch.Generator().manual_seed(5)
    final = torch.randn(NUM_USERS + NUM_ITEMS, DIM, generator=gen,
                        dtype=torch.float64)
    change = torch.zeros_like(final)
    change[moved] = 0.3 * torch.randn(len(moved), DIM, generator=gen,
                                      dtype=torch.float64)
    weight = torch.rand(PAIRS.size(1), generator=gen, dtype=torch.float64)
    known = KNOWN if sampler == 'unseen' else None
    loss = ExpectedBPR(PAIRS, NUM_USERS, NUM_ITEMS,
                       None if known is None else keys(known), weight,
                       chunk=20)
    rows = torch.tensor([NUM_USERS + 2, 4])
    # The sparse pass runs here (a few pairs in full, a few columns).
    assert loss._sparse_change(final, change, rows) is not None
    grad, grad_change = loss.gradient_change(final, change, rows=rows)
    expected = brute_force(final, weight, known)
    torch.testing.assert_close(grad[rows], expected[rows])
    others = torch.ones(final.size(0), dtype=torch.bool)
    others[rows] = False
    assert not grad[others].any()
    torch.testing.assert_close(
        grad_change, expected - brute_force(final - change, weight, known))
    # Where most rows move, the full pass runs, with the same contract.
    change = 0.1 * torch.randn(final.shape, generator=gen,
                               dtype=torch.float64)
    assert loss._sparse_change(final, change, rows) is None
    grad, grad_change = loss.gradient_change(final, change, rows=rows)
    torch.testing.assert_close(grad[rows], expected[rows])
    assert not grad[others].any()
    torch.testing.assert_close(
        grad_change, expected - brute_force(final - change, weight, known))


@pytest.mark.parametrize('sampler', ['all', 'unseen'])
def test_a_sampled_change_is_unbiased_and_its_error_is_estimated(sampler):
    # 24 items, the change averaged over 12 per block (halves of 6, each
    # holding a drawable item of every user: the average is then unbiased).
    num_items, draws = 24, 400
    gen = torch.Generator().manual_seed(7)
    final = torch.randn(NUM_USERS + num_items, DIM, generator=gen,
                        dtype=torch.float64)
    change = 0.2 * torch.randn(final.shape, generator=gen,
                               dtype=torch.float64)
    weight = torch.rand(PAIRS.size(1), generator=gen, dtype=torch.float64)
    known = PAIRS if sampler == 'unseen' else None
    known_keys = None if known is None else keys(known, num_items)
    expected = brute_force(final, weight, known, num_items)
    change_ref = expected - brute_force(final - change, weight, known,
                                        num_items)
    errors, estimates, total = [], [], torch.zeros_like(final)
    for seed in range(draws):
        loss = ExpectedBPR(PAIRS, NUM_USERS, num_items, known_keys, weight,
                           chunk=3 * num_items, samples=12, seed=seed)
        grad, sampled = loss.gradient_change(final, change)
        # The gradient stays exact.
        torch.testing.assert_close(grad, expected)
        total += sampled
        errors.append(float((sampled - change_ref).norm() /
                            change_ref.norm()))
        estimates.append(loss.change_error)
    assert len(loss.blocks) == 3
    single = sum(errors) / draws
    assert single > 0.05  # it samples
    # The mean of the draws converges on the exact change (about single /
    # sqrt(draws) = single / 20 for an unbiased average).
    mean_error = float((total / draws - change_ref).norm() /
                       change_ref.norm())
    assert mean_error < single / 8
    # The two halves' estimate of the error is of the right size.
    assert 0.5 < sum(estimates) / draws / single < 2
    # A fixed seed draws the same items: the same change again.
    torch.testing.assert_close(loss.gradient_change(final, change)[1],
                               sampled)


def test_sampling_every_item_is_the_exact_pass():
    final = torch.randn(NUM_USERS + NUM_ITEMS, DIM, dtype=torch.float64)
    exact = ExpectedBPR(PAIRS, NUM_USERS, NUM_ITEMS, keys(KNOWN))
    every = ExpectedBPR(PAIRS, NUM_USERS, NUM_ITEMS, keys(KNOWN),
                        samples=NUM_ITEMS)
    assert every.samples is None
    for a, b in zip(exact.gradient_change(final, final / 10),
                    every.gradient_change(final, final / 10)):
        assert torch.equal(a, b)
    assert every.change_error is None


@pytest.mark.parametrize('samples', [1, 0, 2.5, True])
def test_bad_samples_are_refused(samples):
    with pytest.raises(ValueError, match="'samples'"):
        ExpectedBPR(PAIRS, NUM_USERS, NUM_ITEMS, samples=samples)


def test_a_change_held_by_a_few_items_is_taken_exactly_there(monkeypatch):
    # A change on one item's row (a popular item's request; no pair has it
    # as its positive): only that column's margins move, and it is taken
    # exactly, where a sample would hit or miss it.
    num_items, draws = 24, 100
    gen = torch.Generator().manual_seed(9)
    final = torch.randn(NUM_USERS + num_items, DIM, generator=gen,
                        dtype=torch.float64)
    change = torch.zeros_like(final)
    change[NUM_USERS + 11] = torch.randn(DIM, generator=gen,
                                         dtype=torch.float64)
    known = keys(PAIRS, num_items)
    exact = ExpectedBPR(PAIRS, NUM_USERS, num_items, known).gradient_change(
        final, change)[1]

    def mean_error():
        total = 0.0
        for seed in range(draws):
            loss = ExpectedBPR(PAIRS, NUM_USERS, num_items, known,
                               chunk=3 * num_items, samples=12, seed=seed)
            sampled = loss.gradient_change(final, change)[1]
            total += float((sampled - exact).norm() / exact.norm())
        return total / draws

    loss = ExpectedBPR(PAIRS, NUM_USERS, num_items, known, samples=12)
    assert loss._heavy_items(change).tolist() == [11]
    assert mean_error() < 1e-12
    monkeypatch.setattr(ExpectedBPR, '_heavy_items',
                        lambda self, change: torch.zeros(0, dtype=torch.long))
    assert mean_error() > 0.3  # measured: 0.99


def test_a_sampled_change_does_not_depend_on_blocks_or_shards():
    # The items are drawn per group of user ids: the same change whatever
    # 'chunk' blocks the pairs and however they are dealt to ranks (here
    # two parts whose changes the reduction would sum).
    gen = torch.Generator().manual_seed(11)
    num_users, num_items = 100, 60
    pairs = torch.stack([torch.randint(num_users, (900, ), generator=gen),
                         torch.randint(num_items, (900, ), generator=gen)])
    keys = torch.unique(pairs[0] * num_items + pairs[1])
    pairs = torch.stack([keys // num_items, keys % num_items])
    final = torch.randn(num_users + num_items, 4, generator=gen,
                        dtype=torch.float64)
    change = 0.1 * torch.randn(final.shape, generator=gen,
                               dtype=torch.float64)

    def sampled(index, chunk):
        loss = ExpectedBPR(pairs[:, index], num_users, num_items, keys,
                           chunk=chunk, samples=20, seed=3)
        return loss.gradient_change(final, change)[1]

    every = torch.ones(pairs.size(1), dtype=torch.bool)
    whole = sampled(every, 1 << 22)
    torch.testing.assert_close(sampled(every, 200), whole, rtol=1e-12,
                               atol=1e-12)
    dealt = torch.rand(pairs.size(1), generator=gen) < 0.5
    torch.testing.assert_close(sampled(dealt, 300) + sampled(~dealt, 1000),
                               whole, rtol=1e-12, atol=1e-12)


def test_sampler_shift_is_the_gradient_lost_to_the_freed_items():
    # Known pairs that are not among PAIRS leave the sampler: user 0 loses
    # item 5, user 3 items 1 and 3; their items become drawable negatives.
    gen = torch.Generator().manual_seed(5)
    final = torch.randn(NUM_USERS + NUM_ITEMS, DIM, generator=gen,
                        dtype=torch.float64)
    removed = torch.tensor([[3, 0, 3], [3, 5, 1]])
    gone = set(map(tuple, removed.t().tolist()))
    after = torch.tensor([pair for pair in KNOWN.t().tolist()
                          if tuple(pair) not in gone]).t()
    expected = brute_force(final, None, KNOWN) - brute_force(final, None,
                                                             after)
    shift = sampler_shift(final, PAIRS, removed, NUM_USERS, keys(KNOWN))
    torch.testing.assert_close(shift, expected)
    # Users 1, 2 and 4 lost nothing: their rows and their items' do not
    # move, apart from what users 0 and 3 score.
    assert shift[[1, 2, 4]].abs().max() == 0
    assert expected[[0, 3]].abs().min() > 0
    # Nothing removed: no shift.
    assert sampler_shift(final, PAIRS, removed[:, :0], NUM_USERS,
                         keys(KNOWN)).abs().max() == 0
