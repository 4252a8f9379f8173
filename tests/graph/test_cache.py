import copy

import pytest
import torch

from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import (random_interactions,
                                                   random_users)
from torch_geometric_unlearn.graph.cache import GraphCache
from torch_geometric_unlearn.graph.spillover import SpilloverTracer
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn import ifru_update
from torch_geometric_unlearn.unlearn.base import remaining_data
from torch_geometric_unlearn.unlearn.ifru import (IFRUnlearner,
                                                  LightGCNIFRUnlearner)

L2 = 1.0


@pytest.fixture(scope='module')
def data():
    return synthetic(80, 120, 1500, num_topics=4, seed=3)


@pytest.fixture(scope='module', params=[0, 2])
def trained(request, data):
    model = build_model(data, 8, request.param)
    record = train(model, data, TrainConfig(progress=False, l2=L2,
                                            max_epochs=8, batch_size=256))
    return model, record


def dense(tracer):
    return tracer._adj.to_dense()


def test_removing_edges_equals_a_fresh_tracer(data):
    tracer = SpilloverTracer(data.edge_index, data.num_nodes)
    pairs = random_interactions(data, count=40, seed=1)
    edges = torch.stack([pairs[0], pairs[1] + data.num_users])
    removed = tracer.remove_edges(tracer.find_edges(edges)[1])
    keep = ~torch.isin(data.train_index[0] * data.num_items +
                       data.train_index[1], pairs[0] * data.num_items +
                       pairs[1])
    fresh = SpilloverTracer(remaining_data(data, keep).edge_index,
                            data.num_nodes)
    assert torch.equal(removed.rowptr, fresh.rowptr)
    assert torch.equal(removed.col, fresh.col)
    assert torch.equal(removed._key, fresh._key)
    assert torch.equal(dense(removed), dense(fresh))
    # Its own edge_index is consistent with its sorted structure.
    row, col = removed.edge_index[:, removed._perm]
    assert torch.equal(col, removed.col)
    assert torch.equal(row * data.num_nodes + col, removed._key)
    nodes = torch.tensor([0, 5, data.num_users + 3])
    assert torch.equal(removed.k_hop(nodes, 2), fresh.k_hop(nodes, 2))
    # The source tracer is left alone.
    assert removed.num_edges == tracer.num_edges - 80
    assert torch.equal(dense(tracer),
                       dense(SpilloverTracer(data.edge_index,
                                             data.num_nodes)))


def test_removing_one_direction_is_refused(data):
    tracer = SpilloverTracer(data.edge_index, data.num_nodes)
    mask = torch.zeros(tracer.num_edges, dtype=torch.bool)
    mask[0] = True
    with pytest.raises(ValueError, match='both directions'):
        tracer.remove_edges(mask)
    with pytest.raises(ValueError, match='bool tensor'):
        tracer.remove_edges(mask[:-1])


@pytest.mark.parametrize('num_layers', [1, 3])
def test_cached_propagation_matches_lightgcn_after_removal(data, num_layers):
    model = build_model(data, 4, num_layers).double()
    cache = GraphCache(data, torch.zeros(3, 1, dtype=torch.long))
    pairs = random_users(data, 3, seed=2)
    pairs = data.train_index[:, torch.isin(data.train_index[0], pairs)]
    keep = ~torch.isin(data.train_index[0], pairs[0])
    after = remaining_data(data, keep)
    edges = torch.stack([pairs[0], pairs[1] + data.num_users])
    new = cache.advance(edges, after, cache.examples,
                        torch.ones(1, dtype=torch.bool))
    for state, graph in ((cache, data), (new, after)):
        prop = state.propagation(model.alpha, torch.float64)
        expected = model.get_embedding(graph.edge_index)
        torch.testing.assert_close(prop(model.embedding.weight), expected)


def test_sequential_requests_equal_fresh_unlearners(data, trained):
    # One unlearner carries its cache from request to request; the
    # reference builds everything afresh on the state after each request.
    model, record = trained
    kept = IFRUnlearner(model, data, record.examples, l2=L2,
                        horizon=record.horizon)
    state = (model, data, record.examples)
    for seed in range(3):
        pairs = random_interactions(kept.data, count=15, seed=seed)
        fresh = IFRUnlearner(*state, l2=L2, horizon=record.horizon)
        expected = fresh.unlearn(pairs)
        result = kept.unlearn(pairs)
        torch.testing.assert_close(result.model.embedding.weight,
                                   expected.model.embedding.weight,
                                   rtol=0, atol=1e-6)
        assert torch.equal(result.data.train_index,
                           expected.data.train_index)
        assert kept._cache.holds(kept.data, kept.examples)
        state = (copy.deepcopy(result.model), result.data, fresh.examples)


@pytest.mark.parametrize('stage', ['solve', 'advance'])
def test_failed_request_leaves_the_cache_alone(data, trained, monkeypatch,
                                               stage):
    model, record = trained
    unlearner = IFRUnlearner(model, data, record.examples, l2=L2,
                             horizon=record.horizon)
    first = random_interactions(data, count=10, seed=5)
    unlearner.unlearn(first)
    cache = unlearner._cache
    attributes = dict(vars(unlearner))
    weight = unlearner.model.embedding.weight.detach().clone()
    second = random_interactions(unlearner.data, count=10, seed=6)

    def broken(*args, **kwargs):
        raise RuntimeError('injected')

    with monkeypatch.context() as patch:
        if stage == 'solve':
            patch.setattr(ifru_update, 'trajectory_response', broken)
        else:  # after the cache and the state moved on
            advance = LightGCNIFRUnlearner._advance
            patch.setattr(LightGCNIFRUnlearner, '_advance',
                          lambda self, r: (advance(self, r), broken()))
        with pytest.raises(RuntimeError, match='injected'):
            unlearner.unlearn(second)
    assert all(vars(unlearner)[k] is v for k, v in attributes.items())
    assert torch.equal(unlearner.model.embedding.weight, weight)
    assert unlearner._cache is cache
    assert cache.holds(unlearner.data, unlearner.examples)
    fresh = IFRUnlearner(copy.deepcopy(unlearner.model), unlearner.data,
                         unlearner.examples, l2=L2, horizon=record.horizon)
    torch.testing.assert_close(unlearner.unlearn(second).model.embedding
                               .weight, fresh.unlearn(second).model
                               .embedding.weight, rtol=0, atol=1e-6)


def test_the_item_order_follows_the_examples(data, trained):
    model, record = trained
    unlearner = IFRUnlearner(model, data, record.examples, l2=L2,
                             horizon=record.horizon)
    for seed in range(2):
        unlearner.unlearn(random_interactions(unlearner.data, count=20,
                                              seed=seed))
        cache = unlearner._cache
        items = unlearner.examples[1, cache.order]
        assert bool((items.diff() >= 0).all())
        assert torch.equal(cache.order.sort()[0],
                           torch.arange(unlearner.examples.size(1)))
