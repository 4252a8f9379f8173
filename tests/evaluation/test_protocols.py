import math

import pytest
import torch
from test_metrics import Fixed

from torch_geometric_unlearn.data.deletion import users_by_activity
from torch_geometric_unlearn.data.interactions import InteractionData
from torch_geometric_unlearn.evaluation.config import RequestSpec
from torch_geometric_unlearn.evaluation.metrics import evaluate, pair_ranks
from torch_geometric_unlearn.evaluation.protocols import (fairness_gap,
                                                          rank_drop,
                                                          retrain_agreement,
                                                          top_k_agreement,
                                                          user_ranking)


def tiny():
    # Three users who score every item alike, items 0 > 1 > 2 > 3.
    # Training: user 0 item 0, user 1 items 1 and 2, user 2 item 3; held
    # out: user 0 item 1, user 1 item 3, user 2 item 2.
    data = InteractionData(3, 4, torch.tensor([[0, 1, 1, 2], [0, 1, 2, 3]]),
                           test_index=torch.tensor([[0, 1, 2], [1, 3, 2]]))
    emb = torch.tensor([[1.], [1.], [1.], [4.], [3.], [2.], [1.]])
    return data, Fixed(emb)


def test_per_user_ranking_and_the_fairness_gap_by_hand():
    data, model = tiny()
    users, ndcg, hit = user_ranking(model, data, k=2)
    # User 0 ranks [1, 2, 3]: item 1 first.  User 1 ranks [0, 3]: item 3
    # second, 1 / log2(3).  User 2 ranks [0, 1, 2]: item 2 not in the top 2.
    assert users.tolist() == [0, 1, 2]
    assert ndcg.tolist() == pytest.approx([1, 1 / math.log2(3), 0])
    assert hit.tolist() == [1, 1, 0]
    # The mean agrees with PyG's NDCG as evaluate() computes it.
    assert evaluate(model, data, k=2)['ndcg@2'] == pytest.approx(
        float(ndcg.mean()))
    # The most active 30% (one user): user 1, with two training items.
    gap = fairness_gap(model, data, k=2, share=0.3)
    assert gap['ndcg@2_active'] == pytest.approx(1 / math.log2(3))
    assert gap['ndcg@2_inactive'] == pytest.approx(0.5)
    assert gap['ndcg@2_gap'] == pytest.approx(1 / math.log2(3) - 0.5)
    assert (gap['hr@2_active'], gap['hr@2_inactive'], gap['hr@2_gap']) == (
        1.0, 0.5, 0.5)
    with pytest.raises(ValueError, match="'share' must lie in"):
        fairness_gap(model, data, share=1.0)


def test_top_k_agreement_by_hand():
    top = torch.tensor([[1, 2, 3], [4, 5, 6]])
    reference = torch.tensor([[3, 9, 1], [7, 8, 9]])
    agreement = top_k_agreement(top, reference)
    # User 0 holds the reference's items at ranks 1 and 3; user 1 none.
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert agreement['recall'] == pytest.approx((2 / 3 + 0) / 2)
    assert agreement['ndcg'] == pytest.approx((1 + 0.5) / ideal / 2)
    assert top_k_agreement(top, top.flip(1)) == {'recall': 1.0,
                                                 'ndcg': pytest.approx(1)}
    with pytest.raises(ValueError, match=r'\[U, k\]'):
        top_k_agreement(top, reference[:, :2])


def test_agreement_with_a_retrain_by_hand():
    data, model = tiny()
    # The "retrain" orders the items the other way: 3 > 2 > 1 > 0.
    retrain = Fixed(torch.tensor([[1.], [1.], [1.], [1.], [2.], [3.],
                                  [4.]]))
    out = retrain_agreement(model, retrain, data, ks=(1, 2))
    # Top 1 / top 2 per user, training items excluded: the model
    # [1] [1, 2] | [0] [0, 3] | [0] [0, 1]; the retrain
    # [3] [3, 2] | [3] [3, 0] | [2] [2, 1].
    assert out['recall@1'] == pytest.approx(0)
    assert out['recall@2'] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    ideal = 1 + 1 / math.log2(3)
    assert out['ndcg@2'] == pytest.approx(
        (1 / math.log2(3) + ideal + 1 / math.log2(3)) / ideal / 3)
    assert retrain_agreement(model, model, data, ks=(2, )) == {
        'recall@2': 1.0, 'ndcg@2': pytest.approx(1)}


def test_ranks_and_their_drop_by_hand():
    data, model = tiny()
    pairs = torch.tensor([[2, 0], [2, 1]])
    # User 2 ranks [0, 1, 2] (item 3 is training): item 2 third; user 0
    # ranks [1, 2, 3]: item 1 first.
    assert pair_ranks(model, None, pairs, 3, data.train_index).tolist() == \
        [3, 1]
    # A zeroed user ties every item: the mean rank, not the first.
    zeroed = Fixed(torch.cat([torch.zeros(1, 1), model.emb[1:]]))
    assert pair_ranks(zeroed, None, torch.tensor([[0], [1]]), 3,
                      data.train_index).tolist() == [2.0]
    drop = rank_drop(torch.tensor([1, 5, 3]), torch.tensor([4, 5, 2]))
    assert drop == {'mean_rank_before': 3.0,
                    'mean_rank_after': pytest.approx(11 / 3),
                    'dropped': pytest.approx(1 / 3)}


def test_users_by_activity_by_hand():
    # Degrees: user 0 one, user 1 three, user 2 two, user 3 three, user 4
    # none (left out), user 5 one.
    pairs = torch.tensor([[0, 1, 1, 1, 2, 2, 3, 3, 3, 5],
                          [0, 0, 1, 2, 0, 1, 0, 1, 2, 2]])
    data = InteractionData(6, 3, pairs)
    assert users_by_activity(data, count=2, which='active').tolist() == \
        [1, 3]
    assert users_by_activity(data, count=2, which='inactive').tolist() == \
        [0, 5]
    # Three of the five users with interactions.
    assert users_by_activity(data, fraction=0.6, which='active').tolist() \
        == [1, 2, 3]
    # Ties (users 0 and 5) are broken by the seed.
    assert {int(users_by_activity(data, count=1, which='inactive', seed=s))
            for s in range(20)} == {0, 5}
    drawn = {tuple(users_by_activity(data, count=3, which='random',
                                     seed=s).tolist()) for s in range(20)}
    assert len(drawn) > 1 and all(4 not in d for d in drawn)
    with pytest.raises(ValueError, match="'which'"):
        users_by_activity(data, count=1, which='core')
    # The benchmark's request kinds.
    assert str(RequestSpec.parse('active-users:0.05')) == 'active-users:0.05'
    with pytest.raises(ValueError, match='whole count or a share'):
        RequestSpec.parse('inactive-users:2.5')
