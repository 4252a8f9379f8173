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

The Gauss-Newton product keeps only the :math:`c\,\delta` terms.

Every term is a sum over the (user, item) pairs the examples score, so it
is computed on those pairs, held once as a symmetric sparse pattern
:math:`S` on the rows of :math:`F` (each pair :math:`(u, x)` and its
mirror :math:`(x, u)`): the dot products :math:`x_r \cdot y_c` on every
entry are one sampled dense product
(:func:`torch.sparse.sampled_addmm`), an example's margin or
:math:`\delta` is a signed sum of its entries' scalars, and every
scatter back to the rows is one sparse-dense product :math:`D X` with the
pattern's values :math:`D` spread from the examples' scalars.  No
:obj:`[M, d]` tensor per example is formed or kept: a product reads the
rows of :math:`F` and of the vector once per entry, in fused kernels.
Row gathers and :meth:`~torch.Tensor.index_add_` scatters per example
took longer (see ``benchmarks/bilinear_products.py``).
"""
import copy
import warnings
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.index import index2ptr

from torch_geometric_unlearn.influence import expected


class _Pattern:
    # The (user, item) pairs of the examples as a symmetric CSR pattern on
    # the rows of F, and each example's entries in it.
    def __init__(self, examples: Tensor, num_users: int, num_nodes: int,
                 node_map: Optional[Tensor]):
        user = examples[0]
        items = examples[1:] + num_users  # (i,) or (i, j)
        if node_map is not None:
            user, items = node_map[user], node_map[items]
            if user.numel() and (user.min() < 0 or items.min() < 0):
                raise ValueError("'node_map' leaves a node of the examples "
                                 "without a local id")
        if user.numel() and max(int(user.max()),
                                int(items.max())) >= num_nodes:
            raise ValueError(f"The examples reach beyond the {num_nodes} "
                             f"rows of F")
        self.num_nodes = num_nodes
        # m = F_u . F_i for a pair, F_u . (F_j - F_i) for a triple.
        self.sign = (1.0, ) if items.size(0) == 1 else (-1.0, 1.0)
        num = items.numel()
        users = user.expand_as(items).reshape(-1)
        items = items.reshape(-1)
        key, inverse = torch.unique(torch.cat([users * num_nodes + items,
                                               items * num_nodes + users]),
                                    return_inverse=True)
        self.rowptr = index2ptr(key.div(num_nodes, rounding_mode='floor'),
                                num_nodes)
        self.col = key % num_nodes
        # Entry (u, x_s) of every example's item side s, and its mirror.
        self.slot = inverse[:num].view(len(self.sign), -1)
        self.mirror = inverse[num:].view(len(self.sign), -1)

    def select(self, mask: Tensor) -> '_Pattern':
        # The examples in 'mask' [M] alone, on the same entries: those no
        # example scores any more take the value zero in every product.
        out = copy.copy(self)
        out.slot, out.mirror = self.slot[:, mask], self.mirror[:, mask]
        return out

    def matrix(self, values: Tensor) -> Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', '.*Sparse.*')
            return torch.sparse_csr_tensor(
                self.rowptr, self.col, values,
                (self.num_nodes, self.num_nodes), check_invariants=False)

    def dots(self, x: Tensor, y: Tensor) -> Tensor:
        # x_r . y_c on every entry (r, c), [P].
        zeros = x.new_zeros(self.col.numel())
        return torch.sparse.sampled_addmm(self.matrix(zeros), x, y.t(),
                                          beta=0.0).values()

    def margin(self, dots: Tensor, mirrored: bool = False) -> Tensor:
        # Every example's signed sum of its entries' scalars, [M]: with
        # 'mirrored', each entry's plus its mirror's.
        out = dots.new_zeros(self.slot.size(1))
        for sign, slot, mirror in zip(self.sign, self.slot, self.mirror):
            out.add_(dots[slot], alpha=sign)
            if mirrored:
                out.add_(dots[mirror], alpha=sign)
        return out

    def spread(self, weight: Tensor) -> Tensor:
        # The pattern's values D for per-example weights w, [P]: D X is
        # A^T (w . B X) + B^T (w . A X).
        out = weight.new_zeros(self.col.numel())
        for sign, slot, mirror in zip(self.sign, self.slot, self.mirror):
            out.index_add_(0, slot, weight, alpha=sign)
            out.index_add_(0, mirror, weight, alpha=sign)
        return out

    def mm(self, values: Tensor, x: Tensor) -> Tensor:
        return torch.sparse.mm(self.matrix(values), x)


class BilinearLoss:
    r"""The summed loss of fixed examples as a function of final embeddings.

    Args:
        examples (torch.Tensor): BPR triples :obj:`[3, M]` or BCE pairs
            :obj:`[2, M]` in user-item ids.
        labels (torch.Tensor, optional): BCE labels :obj:`[M]`.
        num_users (int): Offset of the item rows.
        num_nodes (int): Rows of :math:`F`.
        dtype (torch.dtype): dtype of the labels; the products run in the
            dtype of the embeddings they are given.
        node_map (torch.Tensor, optional): Row of :math:`F` of every node
            (items offset by :obj:`num_users`), to work on a region of the
            graph: rows :obj:`[0, num_nodes)` of a local table.
        reduce (Callable, optional): Applied, in place, to every gradient
            and product before it is returned: the all-reduce over ranks
            when the examples are sharded (see
            :mod:`~torch_geometric_unlearn.unlearn.distributed`).
        weight (float or torch.Tensor): Every example's weight in the sum
            (e.g. :math:`1/S` for :math:`S` negatives drawn per positive
            pair), or one per example, :obj:`[M]`.
    """
    def __init__(self, examples: Tensor, labels: Optional[Tensor],
                 num_users: int, num_nodes: int, dtype: torch.dtype,
                 node_map: Optional[Tensor] = None,
                 reduce: Optional[Callable[[Tensor], Tensor]] = None,
                 weight: Union[float, Tensor] = 1.0):
        self.reduce, self.weight = reduce, weight
        self.labels = None if labels is None else labels.to(dtype)
        self.pattern = _Pattern(examples, num_users, num_nodes, node_map)

    def subset(self, mask: Tensor) -> 'BilinearLoss':
        r"""The loss of the examples in :obj:`mask` :obj:`[M]` alone, on
        this loss's pattern: none is built, and the pairs that no example
        left scores stay in it with weight zero.  So a pattern built once
        for every training example serves every request's kept examples."""
        out = copy.copy(self)
        out.pattern = self.pattern.select(mask)
        if self.labels is not None:
            out.labels = self.labels[mask]
        if isinstance(self.weight, Tensor):
            out.weight = self.weight[mask]
        return out

    def _margin(self, final: Tensor) -> Tensor:
        return self.pattern.margin(self.pattern.dots(final, final))

    def slope(self, margin: Tensor) -> Tensor:
        r""":math:`\ell'(m)` for the examples' margins :obj:`[M]`."""
        slope = torch.sigmoid(margin)
        return slope if self.labels is None else \
            slope - self.labels.to(slope.dtype)

    def loss(self, final: Tensor) -> Tensor:
        r"""The summed loss, a scalar."""
        margin = self._margin(final)
        terms = F.softplus(margin)
        if self.labels is not None:
            terms = terms - self.labels.to(margin.dtype) * margin
        total = (terms * self.weight).sum()
        return total if self.reduce is None else self.reduce(total)

    def grad(self, final: Tensor) -> Tensor:
        r"""The gradient with respect to :obj:`final` :obj:`[N, d]`."""
        pattern = self.pattern
        weight = pattern.spread(self.slope(self._margin(final)) * self.weight)
        out = pattern.mm(weight, final)
        return out if self.reduce is None else self.reduce(out)

    def gradient_change(self, final: Tensor,
                        change: Tensor) -> Tuple[Tensor, Tensor]:
        r"""The gradient at :math:`F` = :obj:`final` and how much it exceeds
        the gradient at :math:`F - \Delta F` (:obj:`change`), both
        :obj:`[N, d]`.

        The difference is formed from every margin's change
        :math:`\Delta m = (A\Delta F \odot BF + AF \odot B\Delta F -
        A\Delta F \odot B\Delta F)\mathbf{1}` and the slope's,
        :math:`\sigma(m) - \sigma(m - \Delta m) = \sigma(m)\,
        \sigma(\Delta m - m)\,(1 - e^{-\Delta m})`, as
        :math:`A^\top(\Delta w \odot BF) + B^\top(\Delta w \odot AF)` plus
        the gradient's bilinear part at :math:`w(F - \Delta F)` along
        :math:`\Delta F`: never as the difference of two nearly equal
        gradients, so it keeps its relative accuracy in float32.
        """
        pattern = self.pattern
        margin = self._margin(final)
        step = (pattern.margin(pattern.dots(change, final), mirrored=True) -
                pattern.margin(pattern.dots(change, change)))
        slope = self.slope(margin) * self.weight
        shift = (torch.sigmoid(margin) * torch.sigmoid(step - margin) *
                 -torch.expm1(-step)) * self.weight
        grad = pattern.mm(pattern.spread(slope), final)
        out = (pattern.mm(pattern.spread(shift), final) +
               pattern.mm(pattern.spread(slope - shift), change))
        if self.reduce is not None:
            grad, out = self.reduce(grad), self.reduce(out)
        return grad, out

    def curvature(self, final: Tensor,
                  gauss_newton: bool = False) -> 'Curvature':
        r"""The Hessian (or Gauss-Newton matrix) at :obj:`final`, as an
        object with a :meth:`Curvature.matvec`."""
        return Curvature(self, final, gauss_newton)


class Curvature:
    r"""Hessian-vector products of a :class:`BilinearLoss` at fixed final
    embeddings; the examples' margins and loss derivatives are computed
    once."""
    def __init__(self, loss: BilinearLoss, final: Tensor,
                 gauss_newton: bool):
        self.pattern, self.final, self.reduce = (loss.pattern, final,
                                                 loss.reduce)
        margin = loss._margin(final)
        prob = torch.sigmoid(margin)
        self.second = prob * (1 - prob) * loss.weight
        self.first = (None if gauss_newton else
                      self.pattern.spread(loss.slope(margin) * loss.weight))

    def matvec(self, vec: Tensor) -> Tensor:
        r"""The product with :obj:`vec` :obj:`[N, d]`."""
        pattern = self.pattern
        delta = pattern.margin(pattern.dots(vec, self.final), mirrored=True)
        out = pattern.mm(pattern.spread(delta.mul_(self.second)), self.final)
        if self.first is not None:
            out += pattern.mm(self.first, vec)
        return out if self.reduce is None else self.reduce(out)


def expected_negative_grad(*args, **kwargs) -> Tensor:
    r"""Deprecated: moved to
    :func:`torch_geometric_unlearn.influence.expected.expected_negative_grad`;
    this alias goes in the next release."""
    warnings.warn("torch_geometric_unlearn.influence.bilinear."
                  "expected_negative_grad moved to torch_geometric_unlearn."
                  "influence.expected", DeprecationWarning, stacklevel=2)
    return expected.expected_negative_grad(*args, **kwargs)
