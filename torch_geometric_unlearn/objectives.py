r"""Training objectives as *sums* over examples.

The unlearning mathematics (see the docs) works with

.. math::
    L(\theta) = \sum_{z \in D} \ell(z; \theta) + \frac{\lambda}{2}
    \lVert \theta \rVert^2,

so every loss here returns a sum, never a mean.  Mini-batch training
optimises the same objective divided by :math:`|D|`.
"""
from typing import Iterable, Union

import torch
import torch.nn.functional as F
from torch import Tensor


def bpr_loss(pos_score: Tensor, neg_score: Tensor) -> Tensor:
    r"""Bayesian personalised ranking loss
    :math:`\sum_z \mathrm{softplus}(s_{uj} - s_{ui})`.

    Args:
        pos_score (torch.Tensor): Scores of positive pairs, shape :obj:`[B]`.
        neg_score (torch.Tensor): Scores of the matching negative pairs,
            shape :obj:`[B]`.

    Returns:
        torch.Tensor: A scalar, the summed loss.
    """
    if pos_score.shape != neg_score.shape:
        raise ValueError(f"'pos_score' and 'neg_score' must have the same "
                         f"shape (got {list(pos_score.shape)} and "
                         f"{list(neg_score.shape)})")
    return F.softplus(neg_score - pos_score).sum()


def bce_loss(score: Tensor, label: Tensor) -> Tensor:
    r"""Binary cross-entropy on logits, summed over pairs.

    Args:
        score (torch.Tensor): Logits, shape :obj:`[B]`.
        label (torch.Tensor): Targets in :obj:`{0, 1}`, shape :obj:`[B]`.

    Returns:
        torch.Tensor: A scalar, the summed loss.
    """
    if score.shape != label.shape:
        raise ValueError(f"'score' and 'label' must have the same shape "
                         f"(got {list(score.shape)} and "
                         f"{list(label.shape)})")
    return F.binary_cross_entropy_with_logits(score, label.to(score.dtype),
                                              reduction='sum')


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
    return (emb[index[0]] * emb[index[1] + num_users]).sum(dim=-1)


def bpr_scores_loss(emb: Tensor, pos_index: Tensor, neg_item: Tensor,
                    num_users: int) -> Tensor:
    r"""Summed BPR loss of triples :math:`(u, i, j)` given final
    embeddings: :obj:`pos_index` holds :math:`(u, i)`, shape :obj:`[2, B]`,
    and :obj:`neg_item` holds :math:`j`, shape :obj:`[B]`."""
    neg_index = torch.stack([pos_index[0], neg_item])
    return bpr_loss(pair_scores(emb, pos_index, num_users),
                    pair_scores(emb, neg_index, num_users))


def bce_scores_loss(emb: Tensor, index: Tensor, label: Tensor,
                    num_users: int) -> Tensor:
    r"""Summed BCE loss of labelled pairs given final embeddings."""
    return bce_loss(pair_scores(emb, index, num_users), label)
