r"""The autograd curvature backend: the Hessian and the generalised
Gauss-Newton matrix of an
:class:`~torch_geometric_unlearn.influence.objectives.ExampleObjective`
over the parameters a
:class:`~torch_geometric_unlearn.influence.params.ParameterSelection`
frees, for any model (each product about two forward-backward passes
through its message passing).  The structured, autograd-free backend of
the LightGCN family is :mod:`~torch_geometric_unlearn.influence.curvature`.
"""
from typing import Sequence, Union

import torch
from torch import Tensor

from torch_geometric_unlearn.influence.hvp import (HessianOperator,
                                                   LinearOperator)
from torch_geometric_unlearn.influence.objectives import ExampleObjective
from torch_geometric_unlearn.influence.params import ParameterSelection

__all__ = ['exact_hessian', 'GaussNewtonOperator', 'CastOperator']


def exact_hessian(selection: ParameterSelection,
                  objective: ExampleObjective, graph,
                  l2: float) -> HessianOperator:
    r"""The Hessian of :obj:`objective` on :obj:`graph` plus the L2 term
    over the parameters :obj:`selection` frees."""
    func = selection.functional(lambda model: objective(model, graph))
    values = selection.values()

    def regularised(delta: Tensor) -> Tensor:
        # L2 of the free parameters only: its Hessian is l2 * I.
        return func(delta) + 0.5 * l2 * (values + delta).pow(2).sum()

    return HessianOperator(regularised, selection.dim, selection.dtype,
                           selection.device)


class GaussNewtonOperator(LinearOperator):
    r"""The generalised Gauss-Newton matrix :math:`J^\top \nabla^2_s \ell\,
    J + \lambda I` of an :class:`ExampleObjective` over the parameters that
    :obj:`selection` frees, where :math:`J` is the Jacobian of the
    examples' scores :math:`s`.

    It drops the second derivatives of the model, so it is positive
    definite for losses convex in the scores (BPR, BCE, squared error)
    even where the exact Hessian is not, e.g. where deleting edges changed
    a GCN's degree normalisation.  Products reuse one autograd graph of the
    scores: :math:`Jv` by the double-vjp trick, then a product with the
    loss's Hessian in score space, then :math:`J^\top`.

    Args:
        selection (ParameterSelection): The free parameters.
        objective (ExampleObjective or Sequence[ExampleObjective]): The
            examples and loss, or objectives whose sum it is.
        graph: The graph the model scores on.
        l2 (float): :math:`\lambda`.
    """
    def __init__(self, selection: ParameterSelection,
                 objective: Union[ExampleObjective,
                                  Sequence[ExampleObjective]],
                 graph, l2: float):
        super().__init__(selection.dim, selection.dtype, selection.device)
        self.l2 = l2
        self._delta = selection.zeros().requires_grad_()
        parts = ([objective] if isinstance(objective, ExampleObjective)
                 else list(objective))

        def flat_scores(model):
            # Every part's scores in one flat vector: one autograd graph.
            return torch.cat([part.scores(model, graph).reshape(-1)
                              for part in parts])

        shapes = [part.examples[1:].shape for part in parts]
        scores = selection.functional(flat_scores)(self._delta)
        self._scores = scores
        self._dual = torch.zeros_like(scores, requires_grad=True)
        (self._jt_dual, ) = torch.autograd.grad(scores, self._delta,
                                                self._dual,
                                                create_graph=True)
        fixed = scores.detach().requires_grad_()
        pieces = fixed.split([shape.numel() for shape in shapes])
        total = sum(part.loss(piece.view(shape), part.labels)
                    for part, piece, shape in zip(parts, pieces, shapes))
        (grad, ) = torch.autograd.grad(total, fixed, create_graph=True)
        self._fixed, self._loss_grad = fixed, grad

    def _apply(self, vec: Tensor) -> Tensor:
        (jv, ) = torch.autograd.grad(self._jt_dual, self._dual, vec,
                                     retain_graph=True)
        (hjv, ) = torch.autograd.grad(self._loss_grad, self._fixed, jv,
                                      retain_graph=True)
        (out, ) = torch.autograd.grad(self._scores, self._delta, hjv,
                                      retain_graph=True)
        return out + self.l2 * vec

    def release(self):
        r"""Frees the autograd graphs."""
        self._scores = self._jt_dual = self._loss_grad = None


class CastOperator(LinearOperator):
    r"""Runs the solver's vectors in :obj:`dtype` and the products of
    :obj:`inner` in the model's own dtype."""
    def __init__(self, inner: HessianOperator, dtype: torch.dtype):
        super().__init__(inner.dim, dtype, inner.device, inner.damping)
        self.inner = inner

    def _apply(self, vec: Tensor) -> Tensor:
        return self.inner.hvp(vec.to(self.inner.dtype)).to(self.dtype)

    def release(self):
        self.inner.release()
