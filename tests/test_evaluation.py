import itertools
import math

import pytest
import torch

from torch_geometric_unlearn.evaluation import auc_score, ranking_metrics


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
