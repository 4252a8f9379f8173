import pytest
import torch

from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.evaluation.metrics import evaluate
from torch_geometric_unlearn.training.trainer import (LossType, TrainConfig,
                                                      build_model,
                                                      paired_stream, train)

FAST = dict(progress=False, lr=0.01, batch_size=1024, max_epochs=30,
            patience=3)


def test_config_validates_itself():
    assert TrainConfig(loss='bce').loss == LossType.bce
    assert TrainConfig(loss='bce').metric == 'auc'
    for kwargs, match in [(dict(loss='mse'), 'loss'), (dict(lr=0), 'lr'),
                          (dict(l2=-1), 'l2'), (dict(batch_size=0), 'batch'),
                          (dict(patience=0), 'patience')]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**kwargs)


def test_model_must_match_data(small_data):
    model = build_model(small_data.replace(num_items=299,
                                           train_index=small_data.train_index[
                                               :, small_data.train_index[1] <
                                               299],
                                           val_index=None,
                                           test_index=small_data.test_index[
                                               :, small_data.test_index[1] <
                                               299]))
    with pytest.raises(ValueError, match='embedding rows'):
        train(model, small_data, TrainConfig(**FAST))
    with pytest.raises(TypeError, match='LightGCN-like'):
        train(torch.nn.Linear(2, 2), small_data)


def test_training_is_seeded_and_learns(small_data):
    untrained = build_model(small_data, 32, 1)
    torch.manual_seed(0)
    untrained.reset_parameters()
    chance = evaluate(untrained, small_data)['recall@20']

    models, results = [], []
    for _ in range(2):
        model = build_model(small_data, 32, 1)
        results.append(train(model, small_data, TrainConfig(**FAST)))
        models.append(model)
    # Multi-threaded sparse products sum in varying order, so runs agree to
    # float precision rather than bit for bit (bitwise with one thread).
    torch.testing.assert_close(models[0].embedding.weight,
                               models[1].embedding.weight, atol=1e-4, rtol=0)
    assert results[0].best_epoch == results[1].best_epoch

    result = results[0]
    assert 1 <= result.best_epoch <= result.epochs <= 30
    assert result.best_metric == max(h['recall@20'] for h in result.history)
    recall = evaluate(models[0], small_data)['recall@20']
    assert recall > 2 * chance and recall > 0.1

    # The frozen BPR triples: every positive once, negatives never known.
    examples = result.examples
    assert examples.shape == (3, small_data.num_train)
    assert torch.equal(examples[:2], small_data.train_index)
    neg_keys = pair_keys(examples[[0, 2]], small_data.num_items)
    assert not torch.isin(neg_keys,
                          pair_keys(small_data.train_index,
                                    small_data.num_items)).any()


def test_early_stopping_restores_best(small_data):
    model = build_model(small_data, 16, 0)
    result = train(model, small_data,
                   TrainConfig(progress=False, lr=1e-9, patience=2,
                               max_epochs=50))
    # A step size of 1e-9 never improves the metric after the first check.
    assert result.epochs == 3 and result.best_epoch == 1


def test_warm_start_continues_from_parameters(small_data):
    model = build_model(small_data, 32, 0)
    first = train(model, small_data, TrainConfig(**FAST))
    trained = model.embedding.weight.detach().clone()
    forgotten = random_interactions(small_data, fraction=0.05, seed=0)
    keep = ~torch.isin(pair_keys(small_data.train_index, small_data.num_items),
                       pair_keys(forgotten, small_data.num_items))
    reduced = small_data.replace(train_index=small_data.train_index[:, keep])
    warm = train(model, reduced, TrainConfig(**{**FAST, 'max_epochs': 1}),
                 warm_start=True)
    cold_model = build_model(small_data, 32, 0)
    cold = train(cold_model, reduced,
                 TrainConfig(**{**FAST, 'max_epochs': 1}))
    assert warm.history[0]['recall@20'] > 0.9 * first.best_metric
    assert warm.history[0]['recall@20'] > cold.history[0]['recall@20']
    moved = (model.embedding.weight - trained).norm() / trained.norm()
    assert 0 < moved < 0.5


def test_bce_on_labelled_pairs_full_batch(small_data):
    gen = torch.Generator().manual_seed(0)
    label = (torch.rand(small_data.num_train, generator=gen) < 0.7).long()
    data = small_data.replace(train_label=label)
    model = build_model(data, 16, 1)
    result = train(model, data,
                   TrainConfig(loss='bce', batch_size=None, lr=0.05,
                               max_epochs=5, progress=False))
    assert result.metric == 'auc'
    assert torch.equal(result.examples, data.train_index)
    assert torch.equal(result.labels, label)
    assert 0.5 < result.best_metric <= 1


def test_bce_on_implicit_data_samples_negatives(small_data):
    model = build_model(small_data, 16, 0)
    result = train(model, small_data,
                   TrainConfig(loss='bce', max_epochs=2, progress=False))
    assert result.examples.shape == (2, 2 * small_data.num_train)
    assert int(result.labels.sum()) == small_data.num_train


def _fixed_epochs(epochs, **kwargs):
    # One evaluation, at the last epoch: that epoch's parameters are kept.
    return TrainConfig(**{**FAST, 'max_epochs': epochs, 'eval_every': epochs,
                          'patience': 1, **kwargs})


def test_excluding_nothing_is_the_original_run(small_data):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bitwise reproducible sparse products
    try:
        models = [build_model(small_data, 16, 1) for _ in range(2)]
        first = train(models[0], small_data, _fixed_epochs(3))
        second = train(models[1], small_data, _fixed_epochs(3),
                       exclude=small_data.train_index[:, :0])
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(models[0].embedding.weight, models[1].embedding.weight)
    assert torch.equal(first.examples, second.examples)


@pytest.mark.parametrize('loss', ['bpr', 'bce'])
def test_paired_run_draws_the_original_stream(small_data, loss):
    # Training without some pairs, paired with the original run: the same
    # negatives for every other example, but where a sampler on the
    # remaining data would draw an excluded pair's item (see the test
    # below), and the pairs gone from the graph.
    pairs = random_interactions(small_data, count=50, seed=1)
    dropped = torch.isin(pair_keys(small_data.train_index,
                                   small_data.num_items),
                         pair_keys(pairs, small_data.num_items))
    original, paired = (build_model(small_data, 16, 1) for _ in range(2))
    full = train(original, small_data, _fixed_epochs(2, loss=loss))
    part = train(paired, small_data, _fixed_epochs(2, loss=loss),
                 exclude=pairs)
    keep = ~torch.isin(pair_keys(full.examples[:2], small_data.num_items),
                       pair_keys(pairs, small_data.num_items))
    if loss == 'bce':  # a sampled negative leaves with its positive
        keep = keep.view(2, -1).all(0).repeat(2)
    assert int((~keep).sum()) == (50 if loss == 'bpr' else 100)
    kept = full.examples[:, keep]
    row = 2 if loss == 'bpr' else 1
    assert torch.equal(part.examples[:row], kept[:row])
    moved = (part.examples[row] != kept[row]).nonzero().view(-1)
    assert torch.equal(part.examples[row + 1:], kept[row + 1:])
    assert 0 < moved.numel() < 0.1 * kept.size(1)
    # Each moved negative is an excluded item of its user.
    assert torch.isin(pair_keys(part.examples[[0, row]][:, moved],
                                small_data.num_items),
                      pair_keys(pairs, small_data.num_items)).all()
    if loss == 'bce':
        assert torch.equal(part.labels, full.labels[keep])
    assert not torch.equal(original.embedding.weight,
                           paired.embedding.weight)
    # As many examples as a plain run on the remaining data.
    reduced = small_data.replace(train_index=small_data.train_index[:,
                                                                    ~dropped])
    plain = train(build_model(reduced, 16, 1), reduced,
                  _fixed_epochs(2, loss=loss))
    assert plain.examples.size(1) == part.examples.size(1)


@pytest.mark.parametrize('loss', ['bpr', 'bce'])
def test_paired_stream_draws_freed_items_as_the_new_sampler(small_data, loss):
    # A sampler of unseen items on the remaining data draws each of a
    # user's D excluded items with probability 1 / (C + D), C the items the
    # user had no pair with: counted over many draws of one epoch.
    data = small_data
    pairs = random_interactions(data, count=60, seed=2)
    dropped = pair_keys(pairs, data.num_items)
    gen = torch.Generator().manual_seed(0)
    pos = data.train_index
    neg = torch.randint(0, data.num_items, (pos.size(1), ), generator=gen)
    if loss == 'bpr':
        examples, labels, row = torch.cat([pos, neg.view(1, -1)]), None, 2
    else:
        examples = torch.cat([pos, torch.stack([pos[0], neg])], 1)
        labels = torch.cat([torch.ones(pos.size(1)),
                            torch.zeros(pos.size(1))]).long()
        row = 1
    batches = [torch.arange(examples.size(1))]
    base, _, _ = paired_stream(examples, labels, batches, dropped, data)
    lost = torch.bincount(pairs[0], minlength=data.num_users)
    known = torch.bincount(data.train_index[0], minlength=data.num_users)
    negative = torch.ones(base.size(1), dtype=torch.bool)
    if loss == 'bce':
        negative[:base.size(1) // 2] = False
    users = base[0, negative]
    prob = (lost / (data.num_items - known + lost)).double()[users]
    hits, rounds = torch.zeros(users.numel()), 200
    for _ in range(rounds):
        out, out_labels, out_batches = paired_stream(
            examples, labels, batches, dropped, data, gen)
        assert torch.equal(out[:row], base[:row])
        moved = out[row, negative] != base[row, negative]
        assert torch.isin(pair_keys(torch.stack([users[moved], out[
            row, negative][moved]]), data.num_items), dropped).all()
        hits += moved.double()
    # Users without excluded pairs never move; the others at their rate
    # (a swap to the very item already drawn does not show as a move: the
    # original negatives here are drawn from every item, so that is rare
    # and within the tolerance).
    assert hits[prob == 0].sum() == 0
    expected, count = prob.sum() * rounds, hits.sum()
    assert abs(count - expected) < 4 * expected.sqrt()
    # Per user, too, where the rate is largest.
    top = users == users[prob.argmax()]
    expected_top = prob[top].sum() * rounds
    assert abs(hits[top].sum() - expected_top) < 4 * expected_top.sqrt() + 1


def test_exclude_is_validated(small_data):
    with pytest.raises(ValueError, match='exclude'):
        train(build_model(small_data, 8, 0), small_data, _fixed_epochs(1),
              exclude=torch.tensor([[0], [10**6]]))
