import pytest
import torch

from torch_geometric_unlearn import InteractionData, build_model
from torch_geometric_unlearn.data.interactions import (
    hashed_negatives, pair_keys, sample_negatives, to_undirected_homogeneous)
from torch_geometric_unlearn.evaluation.metrics import evaluate


def make(**kwargs):
    args = dict(num_users=3, num_items=4,
                train_index=torch.tensor([[0, 1, 2], [0, 3, 1]]),
                test_index=torch.tensor([[0], [2]]))
    args.update(kwargs)
    return InteractionData(**args)


def test_edge_index_offsets_items_and_is_undirected():
    data = make()
    assert data.num_nodes == 7
    expected = torch.tensor([[0, 1, 2, 3, 6, 4], [3, 6, 4, 0, 1, 2]])
    assert torch.equal(data.edge_index, expected)


def test_labelled_graph_keeps_positives_only():
    data = make(train_label=torch.tensor([1, 0, 1]))
    assert torch.equal(data.train_positive_index,
                       torch.tensor([[0, 2], [0, 1]]))
    assert data.edge_index.size(1) == 4


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_users=0), 'num_users'),
    (dict(train_index=torch.tensor([[0, 1], [0, 4]])), 'item id 4'),
    (dict(train_index=torch.tensor([[-1], [0]])), 'user id -1'),
    (dict(train_index=torch.tensor([[0.0], [1.0]])), 'torch.long'),
    (dict(train_index=torch.tensor([0, 1])), r'\[2, N\]'),
    (dict(train_index=torch.empty(2, 0, dtype=torch.long)), 'no inter'),
    (dict(train_label=torch.tensor([1, 0])), '2 entries'),
    (dict(train_label=torch.tensor([1, 2, 0])), '0 and 1'),
    (dict(train_index=None), 'train_index'),
])
def test_bad_input_names_the_problem(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make(**kwargs)


def test_unlearning_needs_no_test_split():
    data = make(test_index=None)
    assert data.test_index is None and 'test=0' in repr(data)
    with pytest.raises(ValueError, match="no 'test' interactions"):
        evaluate(build_model(data, 4, 1), data)


def test_pair_keys_and_homogeneous_mapping():
    index = torch.tensor([[0, 2], [3, 1]])
    assert pair_keys(index, 4).tolist() == [3, 9]
    assert to_undirected_homogeneous(index, 3).tolist() == [[0, 2, 6, 4],
                                                            [6, 4, 0, 2]]


def test_negatives_avoid_known_pairs():
    pos = torch.tensor([[0] * 50 + [1] * 50, list(range(50)) * 2])
    forbidden = pair_keys(pos, 60).sort()[0]
    neg = sample_negatives(pos, 60, forbidden, torch.Generator())
    assert (neg >= 50).all() and (neg < 60).all()


def test_hashed_negatives_are_a_function_of_the_pair():
    gen = torch.Generator().manual_seed(0)
    keys = torch.randperm(1000 * 500, generator=gen)[:20_000]
    pos = torch.stack([keys // 500, keys % 500])
    neg = hashed_negatives(pos, 50, None, salt=1)
    # The same pair, the same item: in another order, or on a shard.
    perm = torch.randperm(pos.size(1), generator=gen)
    assert torch.equal(hashed_negatives(pos[:, perm], 50, None, 1),
                       neg[perm])
    assert torch.equal(hashed_negatives(pos[:, :100], 50, None, 1),
                       neg[:100])
    # Another salt, another draw; uniform (counts spread as Poisson's,
    # sqrt(400) / 400 = 0.05 of their mean; measured 0.057).
    assert (hashed_negatives(pos, 50, None, 2) != neg).float().mean() > 0.9
    count = torch.bincount(neg, minlength=50).float()
    assert float(count.std() / count.mean()) < 0.08
    # Known pairs are avoided.
    forbidden = pair_keys(torch.stack([pos[0], neg]), 50).sort()[0]
    again = hashed_negatives(pos, 50, forbidden, 1)
    assert not torch.isin(pair_keys(torch.stack([pos[0], again]), 50),
                          forbidden).any()
    with pytest.raises(ValueError, match='User 0 has a pair with every'):
        hashed_negatives(torch.tensor([[0, 0], [0, 1]]), 2,
                         torch.tensor([0, 1]), 1, max_rounds=5)


def test_negatives_fail_clearly_when_none_left():
    pos = torch.tensor([[0, 0], [0, 1]])
    with pytest.raises(ValueError, match='User 0 has a pair with every'):
        sample_negatives(pos, 2, pair_keys(pos, 2).sort()[0],
                         torch.Generator(), max_rounds=5)


@pytest.mark.parametrize('draw', ['hashed', 'sampled'])
def test_a_user_with_almost_every_item_draws_the_rest(draw):
    # User 0 has 199 of 200 items: rejection alone would miss item 77 in
    # a few rounds; those left draw among the user's other items, listed.
    items = torch.cat([torch.arange(77), torch.arange(78, 200)])
    pos = torch.stack([torch.zeros(199, dtype=torch.long), items])
    other = torch.tensor([[1, 1, 1], [0, 5, 9]])  # user 1: any of 197
    pos = torch.cat([pos, other], 1)
    forbidden = pair_keys(pos, 200).sort()[0]
    neg = (hashed_negatives(pos, 200, forbidden, 3, max_rounds=2)
           if draw == 'hashed' else
           sample_negatives(pos, 200, forbidden,
                            torch.Generator().manual_seed(0), max_rounds=2))
    assert (neg[:199] == 77).all()
    assert not torch.isin(pair_keys(torch.stack([pos[0], neg]), 200),
                          forbidden).any()
    # Several users left after the rounds: each draws among its own items.
    dense = torch.cat([pos[:, :199], torch.stack([
        torch.ones(199, dtype=torch.long),
        torch.cat([torch.arange(10), torch.arange(11, 200)])])], 1)
    forbidden = pair_keys(dense, 200).sort()[0]
    neg = hashed_negatives(dense, 200, forbidden, 1, max_rounds=1)
    assert (neg[:199] == 77).all() and (neg[199:] == 10).all()
