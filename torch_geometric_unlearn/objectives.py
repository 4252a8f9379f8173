r"""Training objectives as *sums* over examples.

The unlearning mathematics (see the docs) works with

.. math::
    L(\theta) = \sum_{z \in D} \ell(z; \theta) + \frac{\lambda}{2}
    \lVert \theta \rVert^2,

so every loss here returns a sum, never a mean.  Mini-batch training
optimises the same objective divided by :math:`|D|`.
"""
from typing import Iterable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor


def l2_penalty(params: Union[Tensor, Iterable[Tensor]],
               weight: float) -> Tensor:
    r"""The regulariser :math:`\frac{\lambda}{2} \sum \lVert p \rVert^2`
    over one tensor or several."""
    if isinstance(params, Tensor):
        params = [params]
    return 0.5 * weight * sum(p.pow(2).sum() for p in params)


def pair_scores(emb: Tensor, index: Tensor, num_users: int) -> Tensor:
    r"""Dot-product scores of user-item pairs.

    Args:
        emb (torch.Tensor): Final node embeddings of the homogeneous graph,
            shape :obj:`[num_users + num_items, d]`.
        index (torch.Tensor): User-item pairs, shape :obj:`[2, B]`.
        num_users (int): Offset of the item rows in :obj:`emb`.

    Returns:
        torch.Tensor: Scores, shape :obj:`[B]`.
    """
    # index_select's backward is an index_add, far faster on CPU than the
    # accumulating index_put behind advanced indexing.
    return (emb.index_select(0, index[0]) *
            emb.index_select(0, index[1] + num_users)).sum(dim=-1)


def example_margin(emb: Tensor, examples: Tensor, num_users: int) -> Tensor:
    r"""The margin :math:`m_z` of each example, linear in each score.

    For BPR triples :math:`(u, i, j)`, :obj:`[3, B]`,
    :math:`m = s_{uj} - s_{ui}`; for BCE pairs :math:`(u, i)`, :obj:`[2, B]`,
    :math:`m = s_{ui}`.  Both losses are then
    :math:`\ell(m) = \mathrm{softplus}(m) - y m` (:math:`y = 0` for BPR),
    whose curvature :math:`\sigma(m)(1 - \sigma(m))` the Gauss-Newton
    Hessian uses.

    Args:
        emb (torch.Tensor): Final node embeddings :obj:`[N, d]`.
        examples (torch.Tensor): BPR triples or BCE pairs, user-item ids.
        num_users (int): Offset of the item rows in :obj:`emb`.

    Returns:
        torch.Tensor: The margins, shape :obj:`[B]`.
    """
    score = pair_scores(emb, examples[:2], num_users)
    if examples.size(0) == 2:
        return score
    return pair_scores(emb, examples[[0, 2]], num_users) - score


def margin_loss(margin: Tensor, labels: Optional[Tensor] = None) -> Tensor:
    r"""The summed loss :math:`\sum_z \mathrm{softplus}(m_z) - y_z m_z` of
    margins :obj:`[B]`: BPR without labels, BCE with labels :obj:`[B]`."""
    loss = F.softplus(margin).sum()
    if labels is not None:
        loss = loss - (labels.to(margin.dtype) * margin).sum()
    return loss


def bpr_scores_loss(emb: Tensor, pos_index: Tensor, neg_item: Tensor,
                    num_users: int) -> Tensor:
    r"""Summed BPR loss of triples :math:`(u, i, j)` given final
    embeddings: :obj:`pos_index` holds :math:`(u, i)`, shape :obj:`[2, B]`,
    and :obj:`neg_item` holds :math:`j`, shape :obj:`[B]`."""
    triples = torch.cat([pos_index, neg_item.view(1, -1)])
    return margin_loss(example_margin(emb, triples, num_users))


def bce_scores_loss(emb: Tensor, index: Tensor, label: Tensor,
                    num_users: int) -> Tensor:
    r"""Summed BCE loss of labelled pairs given final embeddings."""
    return margin_loss(example_margin(emb, index, num_users), label)
