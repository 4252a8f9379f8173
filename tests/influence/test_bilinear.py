import pytest
import torch
from torch.autograd.functional import hessian, hvp

from torch_geometric_unlearn.influence import bilinear
from torch_geometric_unlearn.influence import expected as averaged
from torch_geometric_unlearn.influence.bilinear import BilinearLoss
from torch_geometric_unlearn.influence.objectives import (example_margin,
                                                          margin_loss)


def make_examples(kind, num_users, num_items, num, gen):
    user = torch.randint(num_users, (num, ), generator=gen)
    items = torch.randint(num_items, (2, num), generator=gen)
    if kind == 'bpr':
        return torch.cat([user.view(1, -1), items]), None
    return (torch.stack([user, items[0]]),
            torch.randint(2, (num, ), generator=gen))


def make_problem(kind, num_users, num_items, num, dim, seed):
    gen = torch.Generator().manual_seed(seed)
    examples, labels = make_examples(kind, num_users, num_items, num, gen)
    final = torch.randn(num_users + num_items, dim, generator=gen,
                        dtype=torch.float64)
    loss = BilinearLoss(examples, labels, num_users, num_users + num_items,
                        torch.float64)

    def reference(f):  # the autograd path the trainer uses
        return margin_loss(example_margin(f, examples, num_users), labels)

    return loss, reference, final


@pytest.fixture(params=['bpr', 'bce'])
def problem(request):
    # 30 examples on 30 user-item pairs: many examples share a pair, some
    # triples have i == j, and pairs appear as positive and as negative.
    return make_problem(request.param, 5, 6, 30, 3, seed=0)


def test_loss_and_gradient_match_autograd(problem):
    loss, reference, final = problem
    assert float(loss.loss(final)) == pytest.approx(float(reference(final)))
    x = final.clone().requires_grad_()
    expected = torch.autograd.grad(reference(x), x)[0]
    torch.testing.assert_close(loss.grad(final), expected)


def test_hessian_product_matches_autograd(problem):
    loss, reference, final = problem
    vec = torch.randn_like(final)
    expected = hvp(reference, final, vec)[1]
    torch.testing.assert_close(loss.curvature(final).matvec(vec), expected)


def test_gauss_newton_is_psd_and_drops_first_order_terms(problem):
    loss, reference, final = problem
    dim = final.numel()
    eye = torch.eye(dim, dtype=final.dtype)
    curv = loss.curvature(final, gauss_newton=True)
    gn = torch.stack([curv.matvec(e.view_as(final)).flatten() for e in eye])
    assert torch.linalg.eigvalsh(0.5 * (gn + gn.t())).min() > -1e-10
    full = hessian(lambda x: reference(x.view_as(final)), final.flatten())
    assert not torch.allclose(gn, full)  # the Hessian is not PSD here


@pytest.mark.parametrize('kind', ['bpr', 'bce'])
def test_products_match_autograd_on_a_larger_problem(kind):
    # About a hundred pairs in each row of the pattern.
    loss, reference, final = make_problem(kind, 50, 80, 5000, 8, seed=1)
    x = final.clone().requires_grad_()
    torch.testing.assert_close(loss.grad(final),
                               torch.autograd.grad(reference(x), x)[0])
    vec = torch.randn(final.shape, generator=torch.Generator().manual_seed(2),
                      dtype=final.dtype)
    torch.testing.assert_close(loss.curvature(final).matvec(vec),
                               hvp(reference, final, vec)[1])


def test_expected_negative_grad_alias_warns_and_delegates():
    # Moved to influence.expected (tested there); the old path stays one
    # release.
    final = torch.randn(11, 3, dtype=torch.float64)
    pairs = torch.tensor([[0, 2], [1, 6]])
    keys = torch.tensor([1, 8])
    with pytest.warns(DeprecationWarning, match='influence.expected'):
        got = bilinear.expected_negative_grad(final, pairs, 4, keys)
    torch.testing.assert_close(
        got, averaged.expected_negative_grad(final, pairs, 4, keys))


@pytest.mark.parametrize('kind', ['bpr', 'bce'])
@pytest.mark.parametrize('size', [1e-2, 1e-5])
def test_gradient_change_keeps_float32_accuracy(kind, size):
    # grad(F) - grad(F - dF) from the margins' and slopes' changes: to
    # float64 round-off in float64, and to about 1e-7 of its size in
    # float32 however small dF, where the difference of two float32
    # gradients loses 1e-5 of it (dF of 1e-2) to 1e-2 (1e-5).
    loss, _, final = make_problem(kind, 50, 80, 4000, 8, seed=4)
    change = size * torch.randn(final.shape, dtype=final.dtype,
                                generator=torch.Generator().manual_seed(5))
    expected = loss.grad(final) - loss.grad(final - change)
    grad, got = loss.gradient_change(final, change)
    torch.testing.assert_close(grad, loss.grad(final), rtol=0, atol=0)
    torch.testing.assert_close(got, expected, rtol=0,
                               atol=1e-13 * float(loss.grad(final).abs()
                                                  .max()))

    def error(y):
        return float((y.double() - expected).norm() / expected.norm())

    single = final.float()
    assert error(loss.gradient_change(single, change.float())[1]) < 1e-6
    naive = loss.grad(single) - loss.grad(single - change.float())
    assert error(naive) > (1e-6 if size > 1e-3 else 1e-3)


@pytest.mark.parametrize('kind', ['bpr', 'bce'])
def test_a_subset_on_the_whole_pattern_matches_its_own_loss(kind):
    # The examples left after a deletion, on the pattern of all of them,
    # against a loss built for them alone and against autograd; some pairs
    # are left without an example.
    gen = torch.Generator().manual_seed(1)
    examples, labels = make_examples(kind, 5, 6, 30, gen)
    final = torch.randn(11, 3, generator=gen, dtype=torch.float64)
    whole = BilinearLoss(examples, labels, 5, 11, torch.float64)
    mask = torch.rand(30, generator=gen) < 0.5
    examples = examples[:, mask]
    labels = None if labels is None else labels[mask]
    own = BilinearLoss(examples, labels, 5, 11, torch.float64)
    subset = whole.subset(mask)
    assert subset.pattern.col.numel() > own.pattern.col.numel()
    vec, change = torch.randn_like(final), 1e-2 * torch.randn_like(final)
    assert float(subset.loss(final)) == pytest.approx(float(own.loss(final)))
    torch.testing.assert_close(subset.grad(final), own.grad(final))
    for gauss_newton in (False, True):
        torch.testing.assert_close(
            subset.curvature(final, gauss_newton).matvec(vec),
            own.curvature(final, gauss_newton).matvec(vec))
    for got, expected in zip(subset.gradient_change(final, change),
                             own.gradient_change(final, change)):
        torch.testing.assert_close(got, expected)
    x = final.clone().requires_grad_()
    reference = margin_loss(example_margin(x, examples, 5), labels)
    torch.testing.assert_close(subset.grad(final),
                               torch.autograd.grad(reference, x)[0])


@pytest.mark.parametrize('kind', ['bpr', 'bce'])
def test_a_weight_per_example_weighs_loss_gradient_and_curvature(kind):
    gen = torch.Generator().manual_seed(4)
    examples, labels = make_examples(kind, 5, 6, 30, gen)
    weight = torch.rand(30, generator=gen, dtype=torch.float64)
    final = torch.randn(11, 3, generator=gen, dtype=torch.float64)
    loss = BilinearLoss(examples, labels, 5, 11, torch.float64,
                        weight=weight)

    def reference(f):  # sum_e w_e loss_e by autograd
        margin = example_margin(f, examples, 5)
        return sum(weight[e] * margin_loss(margin[e:e + 1], None if labels
                                           is None else labels[e:e + 1])
                   for e in range(30))

    torch.testing.assert_close(loss.loss(final), reference(final))
    x = final.clone().requires_grad_()
    torch.testing.assert_close(loss.grad(final),
                               torch.autograd.grad(reference(x), x)[0])
    vec = torch.randn(final.shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(loss.curvature(final, False).matvec(vec),
                               hvp(reference, final, vec)[1])
    # A subset keeps its examples' weights.
    mask = torch.arange(30) % 3 == 0
    part = BilinearLoss(examples[:, mask], None if labels is None else
                        labels[mask], 5, 11, torch.float64,
                        weight=weight[mask])
    torch.testing.assert_close(loss.subset(mask).grad(final),
                               part.grad(final))
