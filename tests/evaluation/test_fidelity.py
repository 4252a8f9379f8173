import pytest
import torch

from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs,
                                                         rank_shift,
                                                         score_change)
from torch_geometric_unlearn.training.trainer import build_model


def test_change_closure_by_hand():
    target = torch.tensor([3.0, -4.0], dtype=torch.float64)  # norm 5
    assert change_closure(target, target) == 1
    assert change_closure(torch.zeros(2, dtype=torch.float64), target) == 0
    # Twice the retrain's change overshoots by the whole change: 0.
    assert change_closure(2 * target, target) == pytest.approx(0)
    assert change_closure(torch.tensor([3.0, 0.0], dtype=torch.float64),
                          target) == pytest.approx(1 - 4 / 5)
    with pytest.raises(ValueError, match='zero'):
        change_closure(target, torch.zeros(2))
    with pytest.raises(ValueError, match='shape'):
        change_closure(target, torch.ones(3))


def test_noise_floor_averages_both_directions():
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([2.0, 0.0], dtype=torch.float64)
    # closure(a, b) = 1 - 1/2, closure(b, a) = 1 - 1/1.
    assert noise_floor([a, b]) == pytest.approx(0.25)
    assert noise_floor([a, a, a]) == 1
    with pytest.raises(ValueError, match='two seeds'):
        noise_floor([a])


def test_rank_shift():
    assert rank_shift(30.0, 10.0, 20.0) == 1
    assert rank_shift(50.0, 10.0, 20.0) == 2
    assert rank_shift(10.0, 10.0, 0.0) is None


def test_probe_pairs_touch_the_request(small_data):
    pairs = random_interactions(small_data, count=15, seed=0)
    probe = probe_pairs(small_data, pairs, num=2000, seed=1)
    keys = pair_keys(probe, small_data.num_items)
    assert torch.equal(keys, torch.unique(keys))
    assert not torch.isin(keys, pair_keys(pairs, small_data.num_items)).any()
    touches = (torch.isin(probe[0], pairs[0]) |
               torch.isin(probe[1], pairs[1]))
    assert bool(touches.all()) and 1500 < probe.size(1) <= 2000
    assert torch.equal(probe, probe_pairs(small_data, pairs, 2000, 1))


def test_score_change_predicts_with_each_graph(small_data):
    model = build_model(small_data, 8, 1)
    pairs = random_interactions(small_data, count=5, seed=0)
    graph = small_data.edge_index
    assert bool((score_change(model, graph, model, graph, pairs,
                              small_data.num_users) == 0).all())
    smaller = graph[:, 10:]
    emb = model.get_embedding(smaller).detach().double()
    old = model.get_embedding(graph).detach().double()
    nu = small_data.num_users
    expected = ((emb[pairs[0]] * emb[pairs[1] + nu]).sum(1) -
                (old[pairs[0]] * old[pairs[1] + nu]).sum(1))
    torch.testing.assert_close(
        score_change(model, graph, model, smaller, pairs, nu), expected,
        rtol=1e-5, atol=1e-6)
