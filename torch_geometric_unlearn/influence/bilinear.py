r"""The BPR and BCE objectives as sparse products, for fast influence
solves.

Every example's margin is bilinear in the final embeddings :math:`F`:
:math:`m = (AF \odot BF)\mathbf{1}`, where :math:`A` selects the user of
each example and :math:`B` its item side (:math:`e_j - e_i` for a BPR triple
:math:`(u, i, j)`, :math:`e_i` for a BCE pair).  With
:math:`\ell(m) = \mathrm{softplus}(m) - y m`, :math:`w = \ell'(m)` and
:math:`c = \ell''(m)`:

.. math::
    \nabla_F L = A^\top (w \odot BF) + B^\top (w \odot AF),

.. math::
    \nabla^2_F L\, V = A^\top (w \odot BV + c\,\delta \odot BF)
      + B^\top (w \odot AV + c\,\delta \odot AF), \quad
    \delta = (AV \odot BF + AF \odot BV)\mathbf{1}.

The Gauss-Newton product keeps only the :math:`c\,\delta` terms.  A product
is a few row gathers (:math:`AX`, :math:`BX`) and the scatters
:math:`A^\top Y`, :math:`B^\top Y` as :meth:`~torch.Tensor.index_add_` into
one output: no autograd graph and no index structure to build.  The
examples are processed in chunks, which bounds the temporary memory.  The
scatters were sparse CSR products with stored transposes before; each chunk
then wrote a dense :obj:`[N, d]` result, which dominated at scale (10^6
synthetic interactions: 8.6 s against 0.69 s per product; MovieLens-100K:
0.025 s either way, see ``benchmarks/request_cost.py``).
"""
from typing import Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK = 8192


class _Chunk:
    # A slice of the examples: the rows that A and B gather from.
    def __init__(self, examples: Tensor, labels: Optional[Tensor],
                 num_users: int, num_nodes: int,
                 node_map: Optional[Tensor]):
        self.user = examples[0]
        self.items = examples[1:] + num_users  # (i,) or (i, j)
        if node_map is not None:
            self.user, self.items = node_map[self.user], node_map[self.items]
            if self.user.min() < 0 or self.items.min() < 0:
                raise ValueError("'node_map' leaves a node of the examples "
                                 "without a local id")
        # index_add_ checks its indices, but index_select on CUDA does not.
        if max(int(self.user.max()), int(self.items.max())) >= num_nodes:
            raise ValueError(f"The examples reach beyond the {num_nodes} "
                             f"rows of F")
        self.labels = labels

    def a(self, x: Tensor) -> Tensor:
        return x.index_select(0, self.user)

    def b(self, x: Tensor) -> Tensor:
        out = x.index_select(0, self.items[0])
        if self.items.size(0) == 2:  # m = F_u . (F_j - F_i)
            out = x.index_select(0, self.items[1]).sub_(out)
        return out

    def add_a_t(self, out: Tensor, y: Tensor):
        # out += A^T y
        out.index_add_(0, self.user, y)

    def add_b_t(self, out: Tensor, y: Tensor):
        # out += B^T y
        if self.items.size(0) == 2:
            out.index_add_(0, self.items[0], y, alpha=-1)
            out.index_add_(0, self.items[1], y)
        else:
            out.index_add_(0, self.items[0], y)

    def slope(self, margin: Tensor) -> Tensor:
        slope = torch.sigmoid(margin)
        return slope if self.labels is None else slope - self.labels


class BilinearLoss:
    r"""The summed loss of fixed examples as a function of final embeddings.

    Args:
        examples (torch.Tensor): BPR triples :obj:`[3, M]` or BCE pairs
            :obj:`[2, M]` in user-item ids.
        labels (torch.Tensor, optional): BCE labels :obj:`[M]`.
        num_users (int): Offset of the item rows.
        num_nodes (int): Rows of :math:`F`.
        dtype (torch.dtype): dtype of the products.
        node_map (torch.Tensor, optional): Row of :math:`F` of every node
            (items offset by :obj:`num_users`), to work on a region of the
            graph: rows :obj:`[0, num_nodes)` of a local table.
        reduce (Callable, optional): Applied, in place, to every gradient
            and product before it is returned: the all-reduce over ranks
            when the examples are sharded (see
            :mod:`~torch_geometric_unlearn.unlearn.distributed`).
    """
    def __init__(self, examples: Tensor, labels: Optional[Tensor],
                 num_users: int, num_nodes: int, dtype: torch.dtype,
                 node_map: Optional[Tensor] = None,
                 reduce: Optional[Callable[[Tensor], Tensor]] = None):
        self.reduce = reduce
        labels = None if labels is None else labels.to(dtype)
        self.chunks: List[_Chunk] = []
        for start in range(0, examples.size(1), CHUNK):
            part = slice(start, start + CHUNK)
            self.chunks.append(
                _Chunk(examples[:, part], None if labels is None else
                       labels[part], num_users, num_nodes, node_map))

    def loss(self, final: Tensor) -> Tensor:
        r"""The summed loss, a scalar."""
        total = final.new_zeros(())
        for chunk in self.chunks:
            margin = torch.einsum('md,md->m', chunk.a(final), chunk.b(final))
            total = total + F.softplus(margin).sum()
            if chunk.labels is not None:
                total = total - (chunk.labels * margin).sum()
        return total if self.reduce is None else self.reduce(total)

    def grad(self, final: Tensor) -> Tensor:
        r"""The gradient with respect to :obj:`final` :obj:`[N, d]`."""
        out = torch.zeros_like(final)
        for chunk in self.chunks:
            af, bf = chunk.a(final), chunk.b(final)
            weight = chunk.slope(torch.einsum('md,md->m', af, bf)).view(-1, 1)
            chunk.add_a_t(out, bf.mul_(weight))
            chunk.add_b_t(out, af.mul_(weight))
        return out if self.reduce is None else self.reduce(out)

    def curvature(self, final: Tensor,
                  gauss_newton: bool = False) -> 'Curvature':
        r"""The Hessian (or Gauss-Newton matrix) at :obj:`final`, as an
        object with a :meth:`Curvature.matvec`."""
        return Curvature(self, final, gauss_newton)


class Curvature:
    r"""Hessian-vector products of a :class:`BilinearLoss` at fixed final
    embeddings; the per-example gathers are computed once."""
    def __init__(self, loss: BilinearLoss, final: Tensor,
                 gauss_newton: bool):
        self.chunks, self.reduce = loss.chunks, loss.reduce
        self.af, self.bf, self.first, self.second = [], [], [], []
        for chunk in self.chunks:
            af, bf = chunk.a(final), chunk.b(final)
            margin = torch.einsum('md,md->m', af, bf)
            prob = torch.sigmoid(margin)
            self.af.append(af)
            self.bf.append(bf)
            self.second.append((prob * (1 - prob)).view(-1, 1))
            self.first.append(None if gauss_newton else chunk.slope(margin)
                              .view(-1, 1))

    def matvec(self, vec: Tensor) -> Tensor:
        r"""The product with :obj:`vec` :obj:`[N, d]`."""
        out = torch.zeros_like(vec)
        for chunk, af, bf, first, second in zip(self.chunks, self.af,
                                                self.bf, self.first,
                                                self.second):
            av, bv = chunk.a(vec), chunk.b(vec)
            delta = (torch.einsum('md,md->m', av, bf) +
                     torch.einsum('md,md->m', af, bv)).view(-1, 1) * second
            if first is not None:
                chunk.add_a_t(out, torch.addcmul(bv.mul_(first), delta, bf))
                chunk.add_b_t(out, torch.addcmul(av.mul_(first), delta, af))
            else:
                chunk.add_a_t(out, delta * bf)
                chunk.add_b_t(out, delta * af)
        return out if self.reduce is None else self.reduce(out)


def expected_negative_grad(final: Tensor, pairs: Tensor, num_users: int,
                           known: Tensor, weight: Optional[Tensor] = None,
                           chunk: int = 1 << 22) -> Tensor:
    r"""The gradient with respect to the final embeddings :math:`F` of

    .. math::
        \sum_p w_p\, \mathbb{E}_j\, \mathrm{softplus}(F_{u_p} \cdot F_j -
        F_{u_p} \cdot F_{i_p}),

    the BPR loss of positive pairs :math:`(u_p, i_p)` averaged over a
    negative :math:`j` drawn uniformly from the items :math:`u_p` has no
    known pair with, as a trainer that resamples negatives sees it.  A
    frozen triple :math:`(u, i, j)` is one draw of this average.

    Args:
        final (torch.Tensor): :math:`F` of every node, :obj:`[N, d]`
            (items offset by :obj:`num_users`).
        pairs (torch.Tensor): The pairs :math:`(u_p, i_p)`, :obj:`[2, k]`.
        num_users (int): Number of users.
        known (torch.Tensor): Sorted keys (see
            :func:`~torch_geometric_unlearn.data.interactions.pair_keys`) of
            the pairs a negative avoids.
        weight (torch.Tensor, optional): :math:`w_p`, :obj:`[k]`;
            1 by default.
        chunk (int): Pairs times items scored at once.

    Returns:
        torch.Tensor: The gradient, :obj:`[N, d]`.
    """
    num_items = final.size(0) - num_users
    items = final[num_users:]
    out = torch.zeros_like(final)
    if weight is None:
        weight = final.new_ones(pairs.size(1))
    start = torch.searchsorted(known, torch.arange(
        num_users + 1, device=known.device) * num_items)
    step = max(1, chunk // num_items)
    for lo in range(0, pairs.size(1), step):
        user, item = pairs[0, lo:lo + step], pairs[1, lo:lo + step]
        fu, fi = final[user], items[item]
        margin = fu @ items.t() - (fu * fi).sum(1, keepdim=True)
        prob = torch.sigmoid(margin)
        # Known pairs are never drawn.
        count = start[user + 1] - start[user]
        row = torch.repeat_interleave(torch.arange(user.numel(),
                                                   device=user.device), count)
        first = torch.repeat_interleave(start[user], count)
        offset = torch.arange(row.numel(), device=user.device) - \
            torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        prob[row, known[first + offset] % num_items] = 0
        prob *= (weight[lo:lo + step] /
                 (num_items - count).clamp(min=1)).view(-1, 1)
        total = prob.sum(1, keepdim=True)
        out.index_add_(0, user, -total * fi)
        out.index_add_(0, item + num_users, -total * fu)
        # A user's pairs share the products with the item table: summing
        # their rows first makes a request of whole users (k pairs of u
        # users) cost u, not k, row-times-table products.
        users, slot = torch.unique(user, return_inverse=True)
        summed = prob.new_zeros(users.numel(), num_items).index_add_(
            0, slot, prob)
        out.index_add_(0, users, summed @ items)
        out[num_users:] += summed.t() @ final[users]
    return out
