r"""Fidelity to retraining, measured where it means something for the
early-stopped models people train.

Parameters of an early-stopped model are not comparable with those of any
retrain (another seed lands in another basin, and a converged point is not
the model users have).  What is comparable is the *change of scores* a
request causes.  The reference is the **paired retrain**: the model trained
again on the data without the request from the same seed, the same
initialisation and the same negative stream minus the removed examples
(:func:`~torch_geometric_unlearn.training.trainer.train` with :obj:`exclude`),
for as many epochs as the original (a stop chosen again by the validation
metric moved MovieLens-100K runs by up to 100 epochs and swamps the
request; see the benchmark docs).  For a method :math:`M` applied to the
original model and a set of probe pairs,

.. math::
    \Delta_M = s(\theta_M, G') - s(\theta, G), \qquad
    \mathrm{closure} = 1 - \frac{\lVert \Delta_M - \bar\Delta_R \rVert}
                              {\lVert \bar\Delta_R \rVert},

where :math:`\bar\Delta_R` is the paired retrains' change averaged over
seeds.  1 is the retrain's change, 0 is no better than changing nothing.
The **noise floor** is the same closure between the paired changes of two
seeds: how reproducible the reference itself is.  Methods close to the
floor are as close to retraining as retraining is to itself.
"""
from typing import Optional, Sequence

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys)
from torch_geometric_unlearn.evaluation.metrics import pair_scores


def score_change(before: torch.nn.Module, before_edge_index: Tensor,
                 after: torch.nn.Module, after_edge_index: Tensor,
                 pairs: Tensor, num_users: int) -> Tensor:
    r"""The change :math:`s(\theta', G') - s(\theta, G)` of the scores of
    user-item :obj:`pairs` :obj:`[2, k]`, each model predicting with its
    own graph, in float64; shape :obj:`[k]`."""
    return (pair_scores(after, after_edge_index, pairs, num_users).double() -
            pair_scores(before, before_edge_index, pairs, num_users).double())


def change_closure(change: Tensor, target: Tensor) -> float:
    r""":math:`1 - \lVert \Delta - \Delta_R \rVert / \lVert \Delta_R \rVert`
    for a method's score change :obj:`change` and the reference change
    :obj:`target`, both :obj:`[k]`."""
    if change.shape != target.shape:
        raise ValueError(f"'change' and 'target' must have one shape (got "
                         f"{list(change.shape)} and {list(target.shape)})")
    norm = float(target.norm())
    if norm == 0:
        raise ValueError("The reference change is zero: closure is "
                         "undefined")
    return 1 - float((change - target).norm()) / norm


def noise_floor(changes: Sequence[Tensor]) -> float:
    r"""The closure of one paired retrain's change against another's,
    averaged over every ordered pair of the given changes (one per seed):
    the best a method can be expected to reach."""
    if len(changes) < 2:
        raise ValueError("The noise floor needs paired changes of at least "
                         "two seeds")
    values = [change_closure(a, b) for i, a in enumerate(changes)
              for j, b in enumerate(changes) if i != j]
    return sum(values) / len(values)


def rank_shift(method_rank: float, original_rank: float,
               retrain_shift: float) -> Optional[float]:
    r"""How far a method moved the forgotten pairs' mean rank, as a share
    of the paired retrain's move :obj:`retrain_shift`: 1 is where
    retraining puts them, above 1 overshoot.  :obj:`None` when the retrain
    did not move them."""
    if retrain_shift == 0:
        return None
    return (method_rank - original_rank) / retrain_shift


def probe_pairs(data: InteractionData, pairs: Tensor, num: int = 20_000,
                seed: int = 0) -> Tensor:
    r"""Pairs other than :obj:`pairs` :obj:`[2, k]` that the request
    affects most: half pair a user of the request with a random item, half
    a random user with an item of the request (the request's endpoints,
    where its spillover starts and is strongest).  Random pairs are no
    probe set: their change after retraining is mostly training noise (a
    noise floor of 0.04 measured on held-out MF data).  Sorted, without
    duplicates; shape :obj:`[2, k']`, :math:`k' \leq` :obj:`num`."""
    if pairs.size(1) == 0:
        raise ValueError("An empty request affects no pairs")
    gen = torch.Generator().manual_seed(seed)
    users, items = torch.unique(pairs[0]), torch.unique(pairs[1])
    half = num // 2
    drawn = torch.stack([
        torch.cat([users[torch.randint(users.numel(), (half, ),
                                       generator=gen)],
                   torch.randint(data.num_users, (half, ), generator=gen)]),
        torch.cat([torch.randint(data.num_items, (half, ), generator=gen),
                   items[torch.randint(items.numel(), (half, ),
                                       generator=gen)]]),
    ])
    keys = torch.unique(pair_keys(drawn, data.num_items))
    keys = keys[~torch.isin(keys, pair_keys(pairs, data.num_items))]
    return torch.stack([keys // data.num_items, keys % data.num_items])
