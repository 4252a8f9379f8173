r"""The metrics of the recommendation-unlearning protocols, written from
their definitions:

- :func:`fairness_gap`: CURE4Rec's (NeurIPS 2024 datasets and benchmarks)
  gap in NDCG@k and HR@k between the most active users and the rest;
- :func:`top_k_agreement` and :func:`retrain_agreement`: COVA's agreement
  of an unlearned model's top-k with the retrained model's (recall and NDCG
  of the retrain's top-k items in the method's top-k);
- :func:`rank_drop`: how far, and how often, the forgotten items fall in
  their users' rankings.

Utility alone cannot show forgetting (a model that forgot nothing keeps
it), so report these beside a closure or the forgotten items' rank, and
the retrain's own values beside every method's.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys)
from torch_geometric_unlearn.evaluation.metrics import (_rows_cols, _split,
                                                        _top_k)


def _discounts(k: int, device=None) -> Tensor:
    # 1 / log2(rank + 1) for ranks 1..k.
    return 1 / torch.log2(torch.arange(2, k + 2, dtype=torch.float64,
                                       device=device))


@torch.no_grad()
def user_ranking(model: torch.nn.Module, data: InteractionData, k: int = 20,
                 split: str = 'test', edge_index: Optional[Tensor] = None,
                 batch_size: int = 1024) -> Tuple[Tensor, Tensor, Tensor]:
    r"""NDCG@k and HR@k of each user with positives in :obj:`split`,
    ranked over every item but their training (and, for the test split,
    validation) pairs.  HR@k is 1 where any of the user's held-out items is
    in the top :obj:`k`; NDCG@k divides the discounted hits by the ideal
    for :math:`\min(k, n_u)` held-out items.

    Args:
        model (torch.nn.Module): A model with :meth:`get_embedding`.
        data (InteractionData): The data.
        k (int): The cut-off.
        split (str): :obj:`'val'` or :obj:`'test'`.
        edge_index (torch.Tensor, optional): The graph to predict with;
            :obj:`data.edge_index` by default.
        batch_size (int): Users scored at once.

    Returns:
        (torch.Tensor, torch.Tensor, torch.Tensor): The users :obj:`[U]`
        (sorted), their NDCG@k and HR@k :obj:`[U]` (float64).
    """
    index, label, exclude = _split(data, split)
    truth = index if label is None else index[:, label == 1]
    emb = model.get_embedding(data.edge_index if edge_index is None else
                              edge_index)
    user_emb, item_emb = emb[:data.num_users], emb[data.num_users:]
    truth_keys = pair_keys(truth, data.num_items).sort()[0]
    excl_keys = pair_keys(exclude, data.num_items).sort()[0]
    users = torch.unique(truth[0])
    discount = _discounts(k)
    ndcg, hit = [], []
    for batch in users.split(batch_size):
        score = user_emb[batch.to(emb.device)] @ item_emb.t()
        score[_rows_cols(excl_keys, batch, data.num_items)] = -float('inf')
        top = score.topk(k, dim=1).indices.cpu()
        relevant = torch.zeros(batch.numel(), data.num_items,
                               dtype=torch.bool)
        relevant[_rows_cols(truth_keys, batch, data.num_items)] = True
        gains = relevant.gather(1, top).double()
        held = relevant.sum(1).clamp(max=k)
        ideal = torch.cumsum(discount, 0)[held - 1]
        ndcg.append((gains * discount).sum(1) / ideal)
        hit.append(gains.amax(1))
    return users, torch.cat(ndcg), torch.cat(hit)


def fairness_gap(model: torch.nn.Module, data: InteractionData, k: int = 20,
                 share: float = 0.05, split: str = 'test',
                 edge_index: Optional[Tensor] = None) -> Dict[str, float]:
    r"""CURE4Rec's fairness gap: mean NDCG@k and HR@k (see
    :func:`user_ranking`) of the most active users (the :obj:`share` of the
    evaluated users with the most positive training interactions, at least
    one) minus those of the rest.

    Returns:
        Dict[str, float]: :obj:`ndcg@k` (every evaluated user),
        :obj:`ndcg@k_active`, :obj:`ndcg@k_inactive`, :obj:`ndcg@k_gap`
        and the same for :obj:`hr@k`.
    """
    if not 0 < share < 1:
        raise ValueError(f"'share' must lie in (0, 1) (got {share})")
    users, ndcg, hit = user_ranking(model, data, k, split, edge_index)
    if users.numel() < 2:
        raise ValueError("The fairness gap needs at least two evaluated "
                         "users")
    degree = torch.bincount(data.train_positive_index[0],
                            minlength=data.num_users)[users]
    num_active = min(users.numel() - 1, max(1, math.ceil(share *
                                                         users.numel())))
    # Most active first; ties in user order.
    order = torch.sort(degree, descending=True, stable=True).indices
    active = torch.zeros(users.numel(), dtype=torch.bool)
    active[order[:num_active]] = True
    out = {}
    for name, values in ((f'ndcg@{k}', ndcg), (f'hr@{k}', hit)):
        out[name] = float(values.mean())
        out[f'{name}_active'] = float(values[active].mean())
        out[f'{name}_inactive'] = float(values[~active].mean())
        out[f'{name}_gap'] = out[f'{name}_active'] - out[f'{name}_inactive']
    return out


def top_k_agreement(top: Tensor, reference_top: Tensor) -> Dict[str, float]:
    r"""COVA's agreement of a ranking with a reference's top-k: for each
    user, recall is the share of the reference's :math:`k` items in the
    method's top :math:`k`, and NDCG discounts each of the method's top
    :math:`k` by its rank when the reference's top :math:`k` holds it,
    divided by the ideal :math:`\sum_{r \le k} 1 / \log_2(r + 1)`; both
    averaged over users.

    Args:
        top (torch.Tensor): The method's top items, best first,
            :obj:`[U, k]`.
        reference_top (torch.Tensor): The reference's (e.g. the retrain's)
            top items :obj:`[U, k]` (order ignored).

    Returns:
        Dict[str, float]: :obj:`recall` and :obj:`ndcg`.
    """
    if top.shape != reference_top.shape or top.dim() != 2:
        raise ValueError(f"'top' and 'reference_top' must both be [U, k] "
                         f"(got {list(top.shape)} and "
                         f"{list(reference_top.shape)})")
    k = top.size(1)
    held = (top.unsqueeze(2) == reference_top.unsqueeze(1)).any(2).double()
    discount = _discounts(k, top.device)
    return {'recall': float(held.mean()),
            'ndcg': float(((held * discount).sum(1) / discount.sum()).mean())}


@torch.no_grad()
def retrain_agreement(model: torch.nn.Module, reference: torch.nn.Module,
                      data: InteractionData, ks: Sequence[int] = (20, 50, 100),
                      users: Optional[Tensor] = None,
                      edge_index: Optional[Tensor] = None,
                      reference_edge_index: Optional[Tensor] = None,
                      batch_size: int = 1024) -> Dict[str, float]:
    r""":func:`top_k_agreement` of :obj:`model` with :obj:`reference` (the
    retrain) at each cut-off of :obj:`ks`, over :obj:`users` (default:
    every user with training interactions left in :obj:`data`, the data
    after the request), training items excluded from both rankings.

    Returns:
        Dict[str, float]: :obj:`recall@k` and :obj:`ndcg@k` per cut-off.
    """
    k_max = max(ks)
    if k_max > data.num_items:
        raise ValueError(f"'ks' holds {k_max}, more than the "
                         f"{data.num_items} items")
    graph = data.edge_index if edge_index is None else edge_index
    reference_graph = (graph if reference_edge_index is None else
                       reference_edge_index)
    if users is None:
        users = torch.unique(data.train_positive_index[0])
    tops = [list(_top_k(m, data, users, k_max, batch_size, g))
            for m, g in ((model, graph), (reference, reference_graph))]
    mine, theirs = (torch.cat(t).cpu() for t in tops)
    out = {}
    for k in ks:
        agreement = top_k_agreement(mine[:, :k], theirs[:, :k])
        out[f'recall@{k}'], out[f'ndcg@{k}'] = (agreement['recall'],
                                                agreement['ndcg'])
    return out


def rank_drop(before: Tensor, after: Tensor) -> Dict[str, float]:
    r"""How the forgotten items moved in their users' rankings: the mean
    rank (1 = top) before and after, and the share of forgotten pairs whose
    rank fell (a larger rank number after).

    Args:
        before (torch.Tensor): Each forgotten pair's rank before the
            request, :obj:`[k]` (see
            :func:`~torch_geometric_unlearn.evaluation.metrics.pair_ranks`).
        after (torch.Tensor): The same after it, :obj:`[k]`.
    """
    if before.shape != after.shape or before.numel() == 0:
        raise ValueError("'before' and 'after' must be non-empty ranks of "
                         "the same pairs")
    before, after = before.double(), after.double()
    return {'mean_rank_before': float(before.mean()),
            'mean_rank_after': float(after.mean()),
            'dropped': float((after > before).double().mean())}
