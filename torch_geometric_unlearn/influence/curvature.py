r"""Curvature of the LightGCN family as operators on the solved rows:
Hessian-vector products through the linear propagation :math:`F = PE`
(never a second derivative through message passing), and the projection
that removes the rotation gauge of embedding models.
"""
from typing import Callable, Sequence, Union

import torch
from torch import Tensor

from torch_geometric_unlearn.graph.propagation import LinearPropagation
from torch_geometric_unlearn.influence import LinearOperator
from torch_geometric_unlearn.influence.bilinear import BilinearLoss


class PropagatedHessian(LinearOperator):
    r"""Curvature of :math:`L(PE) + \frac{\lambda}{2}\lVert E \rVert^2`
    over the rows :obj:`rows` of :math:`E`, as an operator on flat vectors
    of length :obj:`len(rows) * d`.

    Products are :math:`P\,\nabla^2_F L\,P v` in the space of final
    embeddings :math:`F = PE` (see
    :mod:`~torch_geometric_unlearn.influence.bilinear`): two propagations and a
    few sparse products, never a second derivative through message passing.
    Everything may live on a region of the graph in local ids: :obj:`prop`
    exact on the :math:`L`-hop ball of the rows (see
    :meth:`LinearPropagation.induced`), :obj:`final` and :obj:`loss` covering
    every example that touches the ball.

    Args:
        prop (LinearPropagation): :math:`P`.
        final (torch.Tensor): The final embeddings :math:`F`, :obj:`[n, d]`.
        rows (torch.Tensor): The free rows, :obj:`[r]`.
        loss (BilinearLoss or Sequence[BilinearLoss]): The summed loss
            :math:`L` of the examples, or losses whose sum it is.
        l2 (float or torch.Tensor): :math:`\lambda`, or one weight per
            free row, :obj:`[r, 1]`.
        gauss_newton (bool): Use the Gauss-Newton matrix of :math:`L`.
        dtype (torch.dtype): dtype of the vectors; :obj:`final`,
            :obj:`prop` and :obj:`loss` set the precision of the products.
    """
    def __init__(self, prop: LinearPropagation, final: Tensor, rows: Tensor,
                 loss: Union[BilinearLoss, Sequence[BilinearLoss]],
                 l2: Union[float, Tensor],
                 gauss_newton: bool = False,
                 dtype: torch.dtype = torch.float64):
        super().__init__(rows.numel() * final.size(1), dtype, final.device)
        self.prop, self.rows, self.l2 = prop, rows, l2
        self.shape, self.compute_dtype = final.shape, final.dtype
        losses = [loss] if isinstance(loss, BilinearLoss) else list(loss)
        self.curvatures = [part.curvature(final, gauss_newton)
                           for part in losses]

    def _apply(self, vec: Tensor) -> Tensor:
        # index_copy_ and index_select: these copies alone took 36 against
        # 90 ms with indexing by 'rows' (10^6 interactions, in isolation).
        vec = vec.view(self.rows.numel(), -1)
        full = vec.new_zeros(self.shape, dtype=self.compute_dtype)
        full.index_copy_(0, self.rows, vec.to(full.dtype))
        full = self.prop(full)
        out = self.prop(sum(part.matvec(full) for part in self.curvatures))
        out = out.index_select(0, self.rows).to(vec.dtype)
        return out.add_(self.l2 * vec).view(-1)


class GaugeProjection:
    r"""The orthogonal projection off the rotation directions
    :math:`\{E A : A^\top = -A\}` of an embedding block :math:`E`.

    Dot-product recommenders are invariant under :math:`E \mapsto E R` for
    any orthogonal :math:`R`, so the Hessian is (nearly) singular along
    these :math:`d(d-1)/2` directions and an undamped Newton step can run
    off along them.  Projecting them out of the system keeps the solve
    well posed without the bias of heavy damping.  The least-squares
    :math:`A` solves the Sylvester equation
    :math:`G A + A G = E^\top V - V^\top E` with :math:`G = E^\top E`,
    diagonal in the eigenbasis of :math:`G`: :math:`O(n d^2)` per
    projection, no basis of size :math:`n d \times d^2` is built.

    Args:
        emb (torch.Tensor): The block :math:`E`, :obj:`[n, d]`.
    """
    def __init__(self, emb: Tensor):
        self.emb = emb
        eigval, self.eigvec = torch.linalg.eigh(emb.t() @ emb)
        denom = eigval.view(-1, 1) + eigval.view(1, -1)
        self.inv = 1 / denom.clamp(min=denom.max() * 1e-12)

    def __call__(self, vec: Tensor) -> Tensor:
        block = vec.view_as(self.emb)
        cross = self.emb.t() @ block
        q = self.eigvec
        skew = q @ ((q.t() @ (cross - cross.t()) @ q) * self.inv) @ q.t()
        return (block - self.emb @ skew).reshape(-1)


class ProjectedOperator(LinearOperator):
    r""":math:`\Pi A \Pi` for an operator :math:`A` and an orthogonal
    projection :math:`\Pi`, keeping :math:`A`'s damping."""
    def __init__(self, inner: LinearOperator,
                 projection: Callable[[Tensor], Tensor]):
        super().__init__(inner.dim, inner.dtype, inner.device, inner.damping)
        self.inner, self.projection = inner, projection

    def _apply(self, vec: Tensor) -> Tensor:
        return self.projection(self.inner.hvp(self.projection(vec)))
