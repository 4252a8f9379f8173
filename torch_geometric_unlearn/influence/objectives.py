r"""Training objectives as *sums* over examples.

The unlearning mathematics (see the docs) works with

.. math::
    L(\theta) = \sum_{z \in D} \ell(z; \theta) + \frac{\lambda}{2}
    \lVert \theta \rVert^2,

so every loss here returns a sum, never a mean.  Mini-batch training
optimises the same objective divided by :math:`|D|`.

:class:`ExampleObjective` is the same sum for any
:class:`~torch_geometric_unlearn.models.LinkModel`, as a function of the
model and its graph.
"""
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from torch_geometric_unlearn.models import LinkModel


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


@dataclass(frozen=True)
class BatchL2:
    r"""The L2 weights that a mini-batch training loop puts on each
    embedding row, as weights :math:`\lambda_v` of the *summed* objective
    :math:`\sum_z \ell(z) + \sum_v \frac{\lambda_v}{2} \lVert e_v
    \rVert^2`.

    A loop that minimises, per batch :math:`b` of :math:`B` examples,
    :math:`\frac{1}{B} \big(\sum_{z \in b} \ell(z) + \lambda_{\text{reg}}
    \lVert E_{V_b} \rVert^2\big)` (PyG's
    :meth:`LightGCN.recommendation_loss`, with :obj:`node_id` the nodes
    :math:`V_b` of the batch, or every node without it), with the
    optimiser's coupled :obj:`weight_decay` :math:`w`, follows on average
    the gradient of the summed objective above, divided by :math:`N`, with

    .. math::
        \lambda_v = 2 \lambda_{\text{reg}} \, c_v + w N,

    where :math:`c_v` is the expected number of an epoch's :math:`N / B`
    batches holding node :math:`v`: :math:`N / B` without :obj:`node_id`;
    with it, :math:`\frac{N}{B} (1 - p_v)`, with :math:`p_v` the chance
    that a batch misses all :math:`n_v` examples of :math:`v`
    (hypergeometric, :math:`\binom{N - n_v}{B} / \binom{N}{B}`) and, for
    items under BPR, its uniformly drawn negatives
    (:math:`(1 - 1/I)^B`).  The weights change with the data, so a
    retrain on fewer interactions is regularised as that loop would
    regularise it.  Batches are taken as equal (a short last batch is
    ignored).

    Args:
        lambda_reg (float): :math:`\lambda_{\text{reg}}`.
        batch_size (int, optional): :math:`B`; :obj:`None` for full-batch
            training.
        node_id (bool): Regularise only the nodes of each batch.
        weight_decay (float): :math:`w`.
    """
    lambda_reg: float
    batch_size: Optional[int] = None
    node_id: bool = False
    weight_decay: float = 0.0

    def __post_init__(self):
        for name in ('lambda_reg', 'weight_decay'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not 0 <= value < float('inf'):
                raise ValueError(f"'{name}' must be a finite float >= 0 "
                                 f"(got {value!r})")
        if self.batch_size is not None and (
                isinstance(self.batch_size, bool) or
                not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise ValueError(f"'batch_size' must be a positive int or None "
                             f"(got {self.batch_size!r})")

    def weights(self, index: Tensor, num_users: int, num_items: int,
                sampled_negatives: bool) -> Tensor:
        r"""The weights :math:`\lambda_v` of every node, :obj:`[U + I]`
        (float64), for training examples on the user-item pairs
        :obj:`index` :obj:`[2, N]`, one negative item drawn per example
        when :obj:`sampled_negatives`."""
        num = index.size(1)
        batch = num if self.batch_size is None else min(self.batch_size, num)
        batches = num / batch
        out = torch.full((num_users + num_items, ), 2 * self.lambda_reg *
                         batches + self.weight_decay * num,
                         dtype=torch.float64)
        if not self.node_id or self.lambda_reg == 0:
            return out
        count = torch.bincount(torch.cat([index[0], index[1] + num_users]),
                               minlength=num_users + num_items).double()
        # log C(N - n, B) - log C(N, B); zero chance once N - n < B.
        rest = num - count
        log_miss = (torch.lgamma(rest + 1) - torch.lgamma(rest - batch + 1) -
                    torch.lgamma(torch.tensor(num + 1.0)) +
                    torch.lgamma(torch.tensor(num - batch + 1.0)))
        miss = torch.where(rest >= batch, log_miss.exp().clamp(max=1),
                           torch.zeros_like(rest))
        miss[count == 0] = 1  # exactly, not up to lgamma's round-off
        if sampled_negatives:
            miss[num_users:] *= (1 - 1 / num_items)**batch
        return out - 2 * self.lambda_reg * batches * miss

    def describe(self) -> str:
        r"""A one-line description for reports."""
        where = ('the nodes of each batch (node_id)' if self.node_id else
                 'every embedding row')
        size = ('full batch' if self.batch_size is None else
                f'batches of {self.batch_size}')
        text = f'lambda_reg={self.lambda_reg:g} on {where}, {size}'
        if self.weight_decay:
            text += f', weight_decay={self.weight_decay:g}'
        return text


#: A summed loss: takes the scores :obj:`[m - 1, B]` of the pairs
#: (user, item in row :obj:`r`) of examples :obj:`[m, B]` and their labels
#: :obj:`[B]` (or :obj:`None`), returns a scalar.
ExampleLoss = Callable[[Tensor, Optional[Tensor]], Tensor]


def bpr_loss(scores: Tensor, labels: Optional[Tensor] = None) -> Tensor:
    r"""Summed BPR loss of examples (user, positive, :math:`K` negatives),
    each averaged over its negatives: scores :obj:`[1 + K, B]`, the
    positive's first.  :math:`K = 1` is the triple's
    :math:`\mathrm{softplus}(s_j - s_i)`."""
    return _bpr_terms(scores).sum()


def weighted_bpr_loss(weight: Tensor) -> ExampleLoss:
    r""":func:`bpr_loss` with each example's term weighted by
    :obj:`weight` :obj:`[B]`, as an :obj:`ExampleLoss`."""
    def loss(scores: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return (weight.to(scores) * _bpr_terms(scores)).sum()
    return loss


def _bpr_terms(scores: Tensor) -> Tensor:
    # Each example's BPR term [B], averaged over its negatives.
    return F.softplus(scores[1:] - scores[:1]).mean(0)


def bce_loss(scores: Tensor, labels: Optional[Tensor]) -> Tensor:
    r"""Summed binary cross-entropy with logits of labelled pairs: scores
    :obj:`[1, B]`, labels :obj:`[B]`."""
    return margin_loss(scores[0], labels)


class ExampleObjective:
    r"""The training objective :math:`\sum_z \ell(z)` of fixed examples as a
    function of a :class:`~torch_geometric_unlearn.models.LinkModel` and a
    graph.

    Examples are :obj:`[m, M]` columns of ids: row 0 a user, rows
    :obj:`1 .. m-1` items, e.g. BPR triples (user, positive, negative) or
    labelled pairs (user, item).  The model scores every (user, item of row
    :obj:`r`) pair; :obj:`loss` turns the scores into a summed loss.

    Args:
        examples (torch.Tensor): :obj:`[m, M]`, :obj:`m >= 2`.
        labels (torch.Tensor, optional): :obj:`[M]`.
        loss (ExampleLoss, optional): By default :func:`bpr_loss` for
            examples of three or more rows (user, positive, negatives)
            without labels and :func:`bce_loss` for labelled pairs.
    """
    def __init__(self, examples: Tensor, labels: Optional[Tensor] = None,
                 loss: Optional[ExampleLoss] = None):
        if not isinstance(examples, Tensor) or examples.dtype != torch.long \
                or examples.dim() != 2 or examples.size(0) < 2:
            raise ValueError("'examples' must be a long tensor [m, M] with "
                             "m >= 2: users, then items")
        if labels is not None and labels.shape != (examples.size(1), ):
            raise ValueError(f"'labels' must have shape [{examples.size(1)}]")
        if loss is None:
            if examples.size(0) >= 3 and labels is None:
                loss = bpr_loss
            elif examples.size(0) == 2 and labels is not None:
                loss = bce_loss
            else:
                raise ValueError(
                    f"Examples [{examples.size(0)}, M] "
                    f"{'with' if labels is not None else 'without'} labels "
                    f"fit neither BPR (user, positive, negatives; no labels) "
                    f"nor BCE "
                    f"(labelled pairs): pass 'loss'")
        elif not callable(loss):
            raise TypeError("'loss' must be callable: (scores [m-1, B], "
                            "labels [B] or None) -> summed loss")
        self.examples, self.labels, self.loss = examples, labels, loss

    def scores(self, model: Callable, graph,
               index: Optional[Tensor] = None) -> Tensor:
        r"""Scores :obj:`[m - 1, B]` of the examples :obj:`index` (default:
        all) by :obj:`model(graph, pairs)` (a
        :class:`~torch_geometric_unlearn.models.LinkModel` or its
        :class:`~torch_geometric_unlearn.influence.params.FunctionalModel`).
        """
        examples = self.examples if index is None else \
            self.examples[:, index]
        users = examples[0].repeat(examples.size(0) - 1)
        pairs = torch.stack([users, examples[1:].reshape(-1)])
        return model(graph, pairs).view(-1, examples.size(1))

    def __call__(self, model: Callable, graph, index: Optional[Tensor] = None
                 ) -> Tensor:
        r"""The summed loss of the examples :obj:`index` (default: all); see
        :meth:`scores`."""
        labels = self.labels
        if labels is not None and index is not None:
            labels = labels[index]
        return self.loss(self.scores(model, graph, index), labels)

    def check_additive(self, model: LinkModel, graph):
        r"""Raises a :class:`ValueError` unless the loss of a few examples is
        the sum of its halves' (e.g. it is not a mean): influence functions
        need summed losses."""
        index = torch.arange(min(self.examples.size(1), 64))
        if index.numel() < 2:
            return
        with torch.no_grad():
            whole = float(self(model, graph, index))
            half = index.numel() // 2
            parts = float(self(model, graph, index[:half])) + float(
                self(model, graph, index[half:]))
        if abs(whole - parts) > 1e-4 * max(abs(whole), abs(parts), 1e-6):
            raise ValueError(f"'loss' must sum over examples (two halves "
                             f"gave {parts:.6g}, all together {whole:.6g}); "
                             f"use a sum, not a mean")
