import pytest
import torch

from torch_geometric_unlearn.data.deletion import (flip_labels,
                                                   inject_fake_interactions,
                                                   inject_fake_users,
                                                   item_interactions,
                                                   random_interactions,
                                                   random_items, random_users,
                                                   user_interactions)
from torch_geometric_unlearn.data.interactions import pair_keys


def is_subset(pairs, data):
    return torch.isin(pair_keys(pairs, data.num_items),
                      pair_keys(data.train_index, data.num_items)).all()


def test_random_interactions_are_seeded_training_pairs(small_data):
    a = random_interactions(small_data, fraction=0.02, seed=1)
    b = random_interactions(small_data, fraction=0.02, seed=1)
    c = random_interactions(small_data, count=a.size(1), seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.size(1) == round(0.02 * small_data.num_train)
    assert is_subset(a, small_data)
    assert torch.unique(pair_keys(a, small_data.num_items)).numel() == a.size(
        1)


@pytest.mark.parametrize('kwargs, match', [
    (dict(), 'exactly one'),
    (dict(count=1, fraction=0.1), 'exactly one'),
    (dict(fraction=1.5), 'fraction'),
    (dict(count=0), 'count'),
])
def test_random_interactions_bad_input(small_data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_interactions(small_data, **kwargs)


def test_user_request_holds_every_interaction_of_the_users(small_data):
    users = random_users(small_data, 5, seed=0)
    assert torch.equal(users, random_users(small_data, 5, seed=0))
    request = user_interactions(small_data, users)
    expected = int(torch.isin(small_data.train_index[0], users).sum())
    assert request.size(1) == expected > 0
    assert set(request[0].tolist()) == set(users.tolist())
    with pytest.raises(ValueError, match='num_users'):
        random_users(small_data, 10_000)


def test_item_request_holds_every_interaction_of_the_items(small_data):
    items = random_items(small_data, 3, seed=0)
    request = item_interactions(small_data, items)
    assert request.size(1) == int(
        torch.isin(small_data.train_index[1], items).sum())
    assert set(request[1].tolist()) == set(items.tolist())


def test_fake_interactions_push_unpopular_targets(small_data):
    attack = inject_fake_interactions(small_data, fraction=0.01,
                                      num_targets=3, seed=0)
    count = round(0.01 * small_data.num_train)
    assert attack.request.size(1) == count
    assert attack.data.num_train == small_data.num_train + count
    assert torch.isin(attack.request[1], attack.target_items).all()
    # Fake pairs are new, distinct and part of the poisoned training data.
    keys = pair_keys(attack.request, small_data.num_items)
    assert torch.unique(keys).numel() == count
    assert not is_subset(attack.request[:, :1], small_data)
    assert is_subset(attack.request, attack.data)
    degree = torch.bincount(small_data.train_index[1],
                            minlength=small_data.num_items)
    assert degree[attack.target_items].max() <= degree.median()
    # Data without a test split (unlearning needs none) works the same.
    bare = inject_fake_interactions(small_data.replace(test_index=None),
                                    fraction=0.01, num_targets=3, seed=0)
    assert torch.equal(bare.target_items, attack.target_items)
    assert bare.request.size(1) == count
    assert not is_subset(bare.request[:, :1], small_data)


def test_flip_labels(small_data):
    labelled = small_data.replace(train_label=torch.ones(
        small_data.num_train, dtype=torch.long))
    attack = flip_labels(labelled, fraction=0.02, seed=0)
    changed = attack.data.train_label != labelled.train_label
    assert int(changed.sum()) == attack.request.size(1) == round(
        0.02 * small_data.num_train)
    assert torch.equal(labelled.train_index[:, changed], attack.request)
    with pytest.raises(ValueError, match='labelled'):
        flip_labels(small_data)
    with pytest.raises(ValueError, match='implicit'):
        inject_fake_interactions(labelled)


def test_fake_users_promote_targets_and_are_the_request(small_data):
    attack = inject_fake_users(small_data, num_fake=12, num_targets=3,
                               num_filler=5, seed=4)
    data, request, targets = attack.data, attack.request, attack.target_items
    assert data.num_users == small_data.num_users + 12
    assert torch.equal(data.train_index[:, :small_data.num_train],
                       small_data.train_index)
    assert torch.equal(data.train_index[:, small_data.num_train:], request)
    # Every fake user holds the targets and 5 distinct popular fillers.
    assert request.size(1) == 12 * 8
    assert set(request[0].tolist()) == set(range(small_data.num_users,
                                                 small_data.num_users + 12))
    degree = torch.bincount(small_data.train_index[1],
                            minlength=small_data.num_items)
    rank = degree.argsort(descending=True, stable=True).argsort()
    assert bool((rank[targets] >= small_data.num_items // 4).all())
    assert bool((rank[targets] < small_data.num_items // 2).all())
    for user in range(small_data.num_users, small_data.num_users + 12):
        items = request[1, request[0] == user]
        assert torch.unique(items).numel() == 8
        assert bool(torch.isin(targets, items).all())
        fillers = items[~torch.isin(items, targets)]
        assert bool((rank[fillers] < small_data.num_items // 10).all())
    again = inject_fake_users(small_data, 12, 3, 5, seed=4)
    assert torch.equal(again.request, request)
    for kwargs in (dict(num_fake=0), dict(num_targets=0),
                   dict(num_filler=10**6)):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            inject_fake_users(small_data, **{'num_fake': 5, **kwargs})
