import itertools
import math

import pytest
import torch

from torch_geometric_unlearn.evaluation.metrics import (auc_score, hit_ratio,
                                                        ranking_metrics)
from torch_geometric_unlearn.training.trainer import build_model


def brute_auc(score, label):
    pos = [s for s, y in zip(score, label) if y == 1]
    neg = [s for s, y in zip(score, label) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0
               for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_hand_case_with_ties():
    score = torch.tensor([0.9, 0.5, 0.5, 0.1])
    label = torch.tensor([1, 1, 0, 0])
    # Pairs: (0.9>0.5), (0.9>0.1), (0.5=0.5 -> 1/2), (0.5>0.1): 3.5 / 4.
    assert auc_score(score, label) == pytest.approx(0.875)


def test_auc_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    score = torch.randint(0, 6, (40, ), generator=gen).float()
    label = torch.randint(0, 2, (40, ), generator=gen)
    assert auc_score(score, label) == pytest.approx(
        brute_auc(score.tolist(), label.tolist()))


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match='positive and one negative'):
        auc_score(torch.ones(3), torch.ones(3))


def one_hot_scores(ranking_per_user, num_items):
    # Embeddings whose dot products order items as given (first = best).
    users, items = [], torch.eye(num_items)
    for ranking in ranking_per_user:
        row = torch.zeros(num_items)
        for pos, item in enumerate(ranking):
            row[item] = num_items - pos
        users.append(row)
    return torch.stack(users), items


def test_recall_and_ndcg_hand_case():
    # User 0 ranks items 0 > 1 > 2 > 3 > 4, user 1 ranks 4 > 3 > 2 > 1 > 0.
    user_emb, item_emb = one_hot_scores([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0]], 5)
    truth = torch.tensor([[0, 0, 1], [1, 3, 0]])
    # Item 0 is a training item of user 0 and must be skipped.
    exclude = torch.tensor([[0], [0]])
    recall, ndcg = ranking_metrics(user_emb, item_emb, truth, exclude, k=2)
    # User 0: top-2 = [1, 2] -> hit 1 of {1, 3}: recall 1/2,
    #   DCG = 1/log2(2) = 1, IDCG = 1 + 1/log2(3).
    # User 1: top-2 = [4, 3] -> miss item 0: recall 0, NDCG 0.
    assert recall == pytest.approx((0.5 + 0.0) / 2)
    assert ndcg == pytest.approx((1 / (1 + 1 / math.log2(3)) + 0) / 2)


def test_ranking_batches_agree_and_skip_users_without_truth():
    gen = torch.Generator().manual_seed(1)
    user_emb = torch.randn(30, 8, generator=gen)
    item_emb = torch.randn(50, 8, generator=gen)
    truth = torch.stack([torch.randint(0, 20, (60, ), generator=gen),
                         torch.randint(0, 50, (60, ), generator=gen)])
    exclude = torch.stack([torch.randint(0, 30, (80, ), generator=gen),
                           torch.randint(0, 50, (80, ), generator=gen)])
    exclude = exclude[:, ~torch.isin(exclude[0] * 50 + exclude[1],
                                     truth[0] * 50 + truth[1])]
    full = ranking_metrics(user_emb, item_emb, truth, exclude, 10, 1000)
    small = ranking_metrics(user_emb, item_emb, truth, exclude, 10, 3)
    assert full == pytest.approx(small)

    # Brute force, user by user.
    recalls = []
    for u in torch.unique(truth[0]).tolist():
        score = item_emb @ user_emb[u]
        score[exclude[1][exclude[0] == u]] = -float('inf')
        top = set(score.topk(10).indices.tolist())
        rel = set(truth[1][truth[0] == u].tolist())
        recalls.append(len(top & rel) / len(rel))
    assert full[0] == pytest.approx(sum(recalls) / len(recalls))


def test_k_larger_than_item_count_is_an_error():
    with pytest.raises(ValueError, match="exceeds the number of items"):
        ranking_metrics(torch.ones(2, 2), torch.ones(3, 2),
                        torch.tensor([[0], [0]]), k=5)


class Fixed(torch.nn.Module):
    # A "model" whose final embeddings are given, graph ignored.
    def __init__(self, emb):
        super().__init__()
        self.emb = emb

    def get_embedding(self, edge_index):
        return self.emb


def _models(num_users=6, num_items=9, dim=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [Fixed(torch.randn(num_users + num_items, dim, generator=gen))
            for _ in range(2)]


def test_membership_inference_auc_matches_brute_force():
    from torch_geometric_unlearn.evaluation.metrics import \
        membership_inference_auc
    model, _ = _models()
    forgotten = torch.tensor([[0, 1, 2, 3], [0, 4, 5, 8]])
    unseen = torch.tensor([[0, 1, 4, 5, 5], [1, 2, 3, 7, 0]])
    emb = model.emb
    score = [float(emb[u] @ emb[6 + i]) for u, i in
             torch.cat([forgotten, unseen], 1).t().tolist()]
    label = [1] * 4 + [0] * 5
    assert membership_inference_auc(model, None, forgotten, unseen,
                                    6) == pytest.approx(
                                        brute_auc(score, label))


def test_popularity_auc_hand_case():
    from torch_geometric_unlearn.data.interactions import InteractionData
    from torch_geometric_unlearn.evaluation.metrics import popularity_auc
    # Item degrees in training: item 0 three times, item 1 once, item 2
    # never.
    train = torch.tensor([[0, 1, 2, 3], [0, 0, 0, 1]])
    data = InteractionData(4, 3, train, train, train)
    forgotten = torch.tensor([[0, 1], [0, 2]])  # degrees 3 and 0
    unseen = torch.tensor([[0, 1], [1, 2]])  # degrees 1 and 0
    # Pairs (forgotten, unseen): 3>1 wins, 3>0 wins, 0<1 loses, 0=0 ties.
    assert popularity_auc(data, forgotten, unseen) == pytest.approx(2.5 / 4)


def test_score_correlation_matches_numpy_and_is_one_for_itself():
    import numpy as np

    from torch_geometric_unlearn.evaluation.metrics import score_correlation
    a, b = _models()
    probe = torch.tensor([[0, 1, 2, 3, 4, 5, 0], [0, 1, 2, 3, 4, 5, 8]])

    def scores(m):
        return [float(m.emb[u] @ m.emb[6 + i]) for u, i in probe.t().tolist()]

    expected = np.corrcoef(scores(a), scores(b))[0, 1]
    assert score_correlation(a, None, b, None, probe, 6) == pytest.approx(
        expected)
    assert score_correlation(a, None, a, None, probe, 6) == pytest.approx(1.0)


def test_top_k_overlap_matches_brute_force(small_data):
    from torch_geometric_unlearn.evaluation.metrics import top_k_overlap
    data = small_data
    a, b = _models(data.num_users, data.num_items, 4, seed=1)
    k = 5
    train = set(map(tuple, data.train_index.t().tolist()))

    def top(m, u):
        score = m.emb[u] @ m.emb[data.num_users:].t()
        order = score.argsort(descending=True).tolist()
        return set([i for i in order if (u, i) not in train][:k])

    shared = sum(len(top(a, u) & top(b, u)) for u in range(data.num_users))
    assert top_k_overlap(a, b, data, k=k, batch_size=37) == pytest.approx(
        shared / (data.num_users * k))
    assert top_k_overlap(a, a, data, k=k) == 1.0


def test_unseen_pairs_avoid_every_known_pair(small_data):
    from torch_geometric_unlearn.evaluation.metrics import unseen_pairs
    data = small_data
    pairs = data.train_index[:, :300]
    unseen = unseen_pairs(data, pairs, seed=0)
    assert torch.equal(unseen[0], pairs[0])
    known = {tuple(p) for idx in (data.train_index, data.val_index,
                                  data.test_index)
             for p in idx.t().tolist()}
    assert not any(tuple(p) in known for p in unseen.t().tolist())


def test_hit_ratio_matches_brute_force(small_data):
    model = build_model(small_data, 8, 1)
    items = torch.tensor([3, 50, 120])
    users = torch.tensor([5, 0, 17, 40])
    emb = model.get_embedding(small_data.edge_index).detach()
    hits = 0
    for user in users.tolist():
        score = emb[user] @ emb[small_data.num_users:].t()
        own = small_data.train_index[1, small_data.train_index[0] == user]
        score[own] = -float('inf')
        hits += bool(torch.isin(score.topk(20).indices, items).any())
    assert hit_ratio(model, small_data, items, users) == hits / 4
    # Every user has some item of a catalogue-wide set in the top-20.
    assert hit_ratio(model, small_data,
                     torch.arange(small_data.num_items)) == 1.0
