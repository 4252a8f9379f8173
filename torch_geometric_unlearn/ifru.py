r"""IFRU: influence-function unlearning with spillover (Zhang et al., ACM
TORS 2024, arXiv 2307.02147).

For the summed objective :math:`L(\theta; G, D)` (see
:mod:`~torch_geometric_unlearn.objectives`) and a request :math:`R` that
removes examples and edges, one Newton step from the trained
:math:`\theta^*` towards the optimum of the new objective is

.. math::
    \theta' = \theta^* + H^{-1} g, \qquad
    g = \underbrace{\sum_{z \in R} \nabla \ell(z; G)}_{\text{direct}}
      + \underbrace{\sum_{z \in D_c} \big[\nabla \ell(z; G)
      - \nabla \ell(z; G')\big]}_{\text{spillover}},

where :math:`D_c` are the remaining examples whose scores change with the
graph and :math:`H` is the Hessian of the new objective.  :math:`g` equals
:math:`-\nabla L(\theta^*; G', D')` when :math:`\theta^*` is stationary for
the old objective; :obj:`gradient='exact'` uses the latter directly.
The solve runs over the embedding rows of a pruned node set :math:`S`
only: :math:`(H_{SS} + \delta I) x = g_S`.

LightGCN (and MF, its 0-layer case) is linear in its embeddings,
:math:`F = P E`, so gradients and Hessian-vector products are taken in the
space of final embeddings and mapped with :math:`P` (see
:mod:`~torch_geometric_unlearn.propagation`): message passing is never
differentiated twice.
"""
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN

from .influence import (LinearOperator, SolverConfig, SolverDiagnostics,
                        SolverError, solve)
from .propagation import LinearPropagation
from .spillover import PruningConfig, SpilloverTracer, infer_num_hops
from .bilinear import BilinearLoss
from .unlearner import Request, Unlearner, remaining_data


class HessianType(Enum):
    r"""Which curvature the solve uses."""
    exact = 'exact'  # the Hessian; indefinite away from a minimum
    gauss_newton = 'gauss_newton'  # generalised Gauss-Newton: always PSD
    auto = 'auto'  # exact; Gauss-Newton if the exact solve fails


class GradientType(Enum):
    r"""Which right-hand side the Newton step uses."""
    stationary = 'stationary'  # IFRU's direct + spillover influence
    exact = 'exact'  # minus the gradient of the new objective


@dataclass
class IFRUConfig:
    r"""Configuration of :class:`IFRUnlearner`, validated on construction.

    Args:
        spillover (bool): Include the spillover term; :obj:`False` keeps the
            direct influence only (SCIF-like).
        pruning (PruningConfig): Which candidate rows to solve for, ranked
            by IFRU's importance (see
            :mod:`~torch_geometric_unlearn.spillover`).  :obj:`None`
            disables pruning.  The default drops
            the least important 10%: on MovieLens-100K (LightGCN, 2 layers,
            1% deleted) that gave parameter closure 0.79 against 0.90
            unpruned; dropping 20% or 40% gave 0.70 and 0.54 (measured with
            damping 0.01, which alone cost 0.05).
        extra_hops (int): The candidate rows lie within
            :obj:`num_hops + extra_hops` hops of the deleted edges.  The
            extra hop reaches the rows coupled to the changed embeddings
            through the loss (e.g. a deleted item's other users in MF).
        gradient (GradientType or str): :obj:`'stationary'` (IFRU's form)
            or :obj:`'exact'`.
        hessian (HessianType or str): :obj:`'exact'`;
            :obj:`'gauss_newton'`, which drops the loss's second-order
            bilinear terms and so stays positive definite (with L2) even
            where the model is not at a minimum, e.g. after early stopping,
            but is a cruder model of the change; or :obj:`'auto'` (default):
            exact, falling back to Gauss-Newton when the exact solve fails
            (negative curvature, or no convergence within the iteration cap:
            on MovieLens-100K MF a user request once ran the exact CG to
            its 200-iteration cap at residual 0.021 without meeting
            negative curvature).
        project_gauge (bool): Solve off the rotation directions of the
            free rows (see :class:`GaugeProjection`).
        newton_steps (int): Newton steps; later steps use the exact
            gradient at the updated parameters.
        solver (SolverConfig): The linear solver (CG by default) and its
            damping :math:`\delta`, tolerance and iteration cap.  The
            default solves undamped (the L2 term and the gauge projection
            keep the system well posed) to a relative residual of 1e-2:
            on MovieLens-100K a tolerance of 1e-3 took twice the iterations
            for the same closure, and damping 0.01 cost 0.05 of closure.
        num_hops (int, optional): Receptive field of the model; inferred
            from it by default.
        dtype (torch.dtype): Precision of the update, the gradients and
            the solver's vectors.  Float64 by default: CG run wholly in
            float32 lost orthogonality on these ill-conditioned systems (on
            MovieLens-100K its true residual grew to 200x the right-hand
            side within 200 iterations).
        curvature_dtype (torch.dtype): Precision of the Hessian-vector
            products alone.  Float32 by default: on MovieLens-100K it made
            the solve 1.6x faster at the same closure (0.817 against 0.818)
            and iteration count (26 against 25).
    """
    spillover: bool = True
    pruning: Optional[PruningConfig] = field(
        default_factory=lambda: PruningConfig('quantile', 0.1))
    extra_hops: int = 1
    gradient: GradientType = GradientType.stationary
    hessian: HessianType = HessianType.auto
    project_gauge: bool = True
    newton_steps: int = 1
    solver: SolverConfig = field(default_factory=lambda: SolverConfig(
        method='cg', tol=1e-2, max_iter=200, damping=0.0))
    num_hops: Optional[int] = None
    dtype: torch.dtype = torch.float64
    curvature_dtype: torch.dtype = torch.float32

    def __post_init__(self):
        coerce_enum(self, 'gradient', GradientType)
        coerce_enum(self, 'hessian', HessianType)
        check_solve_options(self)
        if self.num_hops is not None and (not isinstance(self.num_hops, int)
                                          or self.num_hops < 0):
            raise ValueError(f"'num_hops' must be a non-negative int "
                             f"(got {self.num_hops!r})")


def coerce_enum(config, name: str, enum):
    r"""Replaces :obj:`config.<name>` by its :obj:`enum` member, or raises
    a :class:`ValueError` listing the choices."""
    try:
        setattr(config, name, enum(getattr(config, name)))
    except ValueError:
        raise ValueError(f"'{name}' must be one of "
                         f"{[e.value for e in enum]} "
                         f"(got {getattr(config, name)!r})") from None


def check_solve_options(config):
    r"""Validates the options :class:`IFRUConfig` shares with
    :class:`~torch_geometric_unlearn.generic.GenericIFRUConfig`: pruning,
    solver, extra hops and Newton steps."""
    if config.pruning is None:
        config.pruning = PruningConfig('none')
    if not isinstance(config.pruning, PruningConfig):
        raise ValueError("'pruning' must be a PruningConfig or None")
    if not isinstance(config.solver, SolverConfig):
        raise ValueError("'solver' must be a SolverConfig")
    for name, low in (('extra_hops', 0), ('newton_steps', 1)):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or \
                value < low:
            raise ValueError(f"'{name}' must be an int >= {low} "
                             f"(got {value!r})")


def solve_hessian(build: Callable[[HessianType], Tuple[LinearOperator,
                                                      Tensor]],
                  hessian: HessianType, config: SolverConfig
                  ) -> Tuple[Tensor, SolverDiagnostics]:
    r"""Solves the Newton system with the curvature :obj:`hessian` asks
    for.  :obj:`HessianType.auto` solves with the exact Hessian and, if
    that solve fails (negative curvature, or no convergence), again with
    the Gauss-Newton matrix; the returned record then counts the failed
    attempt's products and time and says why it failed.

    Args:
        build (Callable): Maps a :class:`HessianType` (exact or
            Gauss-Newton) to the operator and the right-hand side
            :obj:`[dim]` to solve it with.
        hessian (HessianType): The curvature.
        config (SolverConfig): The solver settings.

    Raises:
        SolverError: If the last solve fails.
    """
    kinds = ([HessianType.exact, HessianType.gauss_newton]
             if hessian == HessianType.auto else [hessian])
    failed = None
    for kind in kinds:
        operator, rhs = build(kind)
        try:
            step, record = solve(operator, rhs, config)
        except SolverError as error:
            if kind == kinds[-1]:
                raise
            failed = error.diagnostics
            continue
        finally:
            operator.release()
        record.message += f' ({kind.value} Hessian)'
        if failed is not None:
            record.num_hvps += failed.num_hvps
            record.time += failed.time
            record.message += (f' after the exact Hessian failed: '
                               f'{failed.message}, {failed.num_hvps} '
                               f'products')
        return step, record


def affected_rows(tracer: SpilloverTracer, request: Request, nodes: Tensor,
                  num_users: int, num_hops: int, extra_hops: int,
                  pruning: PruningConfig) -> Tuple[Tensor, Tensor, Tensor]:
    r"""What a request touches, for the unlearners of this package.

    Args:
        tracer (SpilloverTracer): The tracer of the training graph.
        request (Request): The request.
        nodes (torch.Tensor): The training examples as homogeneous node ids
            :obj:`[m, M]` (row 0 users, then items offset by
            :obj:`num_users`).
        num_users (int): Number of users.
        num_hops (int): The model's receptive field :math:`L`.
        extra_hops (int): Candidate rows lie within :math:`L` + this many
            hops of the direct nodes.
        pruning (PruningConfig): Which candidates to keep, by importance.

    Returns:
        (torch.Tensor, torch.Tensor, torch.Tensor): The direct nodes
        :obj:`[k]` (ends of the forgotten pairs); the examples :obj:`[c]`
        whose scores change (a node within :math:`L` hops of a deleted
        edge); and the rows :obj:`[r]` to solve for: the candidates, closed
        under the coupling of examples (e.g. negative items, which need no
        edge), after pruning.
    """
    direct = torch.unique(torch.cat([request.pairs[0],
                                     request.pairs[1] + num_users]))
    hops = num_hops + extra_hops
    if request.deleted_edges.size(1) > 0:
        traced = tracer.trace(request.deleted_edges, num_hops)
        spilled = torch.zeros(tracer.num_nodes, dtype=torch.bool)
        spilled[traced.spillover_nodes] = True
        # Examples may have any number of rows, so they are matched against
        # the spillover region here rather than by the tracer.
        changed = spilled[nodes].any(0).nonzero().view(-1)
        importance = tracer.importance(traced.deleted_edge_mask, hops)
    else:  # Only non-edge (e.g. negatively labelled) pairs: no spillover.
        changed = direct.new_empty(0)
        importance = torch.zeros(tracer.num_nodes, dtype=torch.float64)
    region = tracer.k_hop(direct, hops)
    if extra_hops > 0:
        inner = tracer.k_hop(direct, hops - 1)
        region[nodes[:, inner[nodes].any(0)].reshape(-1)] = True
    rows = pruning.select(importance, region.nonzero().view(-1), direct)
    return direct, changed, rows


class PropagatedHessian(LinearOperator):
    r"""Curvature of :math:`L(PE) + \frac{\lambda}{2}\lVert E \rVert^2`
    over the rows :obj:`rows` of :math:`E`, as an operator on flat vectors
    of length :obj:`len(rows) * d`.

    Products are :math:`P\,\nabla^2_F L\,P v` in the space of final
    embeddings :math:`F = PE` (see :mod:`~torch_geometric_unlearn.bilinear`):
    two propagations and a few sparse products, never a second derivative
    through message passing.  Everything may live on a region of the graph
    in local ids: :obj:`prop` exact on the :math:`L`-hop ball of the rows
    (see :meth:`LinearPropagation.induced`), :obj:`final` and :obj:`loss`
    covering every example that touches the ball.

    Args:
        prop (LinearPropagation): :math:`P`.
        final (torch.Tensor): The final embeddings :math:`F`, :obj:`[n, d]`.
        rows (torch.Tensor): The free rows, :obj:`[r]`.
        loss (BilinearLoss): The summed loss :math:`L` of the examples.
        l2 (float): :math:`\lambda`.
        gauss_newton (bool): Use the Gauss-Newton matrix of :math:`L`.
        dtype (torch.dtype): dtype of the vectors; :obj:`final`,
            :obj:`prop` and :obj:`loss` set the precision of the products.
    """
    def __init__(self, prop: LinearPropagation, final: Tensor, rows: Tensor,
                 loss: BilinearLoss, l2: float, gauss_newton: bool = False,
                 dtype: torch.dtype = torch.float64):
        super().__init__(rows.numel() * final.size(1), dtype, final.device)
        self.prop, self.rows, self.l2 = prop, rows, l2
        self.shape, self.compute_dtype = final.shape, final.dtype
        self.curvature = loss.curvature(final, gauss_newton)

    def _apply(self, vec: Tensor) -> Tensor:
        full = vec.new_zeros(self.shape, dtype=self.compute_dtype)
        full[self.rows] = vec.view(self.rows.numel(), -1).to(full.dtype)
        out = self.prop(self.curvature.matvec(self.prop(full)))
        return out[self.rows].reshape(-1).to(vec.dtype) + self.l2 * vec


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


class IFRUnlearner(Unlearner):
    r"""Forgets interactions from a trained PyG :class:`LightGCN` (or MF)
    with IFRU's influence update: direct and spillover influence, pruned
    to the most important embedding rows and solved by conjugate gradient.

    Rows of nodes left with no edge and no training example (e.g. a user
    who asked to be forgotten) are set to their exact optimum, zero,
    instead of being solved for.

    See :class:`~torch_geometric_unlearn.unlearner.Unlearner` for the
    arguments; :obj:`config` is an :class:`IFRUConfig`.

    Example:

    .. code-block:: python

        record = train(model, data, TrainConfig(l2=1.0))
        unlearner = IFRUnlearner(model, data, record.examples, l2=1.0)
        result = unlearner.unlearn(users=torch.tensor([42]))
        scores = result.model(result.edge_index, edge_label_index)
    """
    method = 'ifru'

    def __init__(self, model, data, examples, labels=None, l2: float = 1.0,
                 config: Optional[IFRUConfig] = None,
                 copy_model: bool = False):
        if not isinstance(model, LightGCN):
            raise TypeError(f"IFRUnlearner needs PyG's LightGCN (matrix "
                            f"factorisation is LightGCN(num_layers=0)), got "
                            f"{type(model).__name__}")
        super().__init__(model, data, examples, labels, l2, copy_model)
        self.config = config or IFRUConfig()
        self.num_hops = (infer_num_hops(self.model)
                         if self.config.num_hops is None else
                         self.config.num_hops)

    def _loss(self, index: Tensor, dtype: torch.dtype,
              region: '_Region') -> BilinearLoss:
        device = self.model.embedding.weight.device
        labels = (None if self.labels is None else
                  self.labels[index].to(device))
        return BilinearLoss(self.examples[:, index].to(device), labels,
                            self.data.num_users, region.size, dtype,
                            region.node_map.to(device))

    @staticmethod
    def _grad(prop: LinearPropagation, final: Tensor, *losses) -> Tensor:
        # P is symmetric, so the gradient over E is P times that over F.
        return prop(sum(loss.grad(final) for loss in losses))

    def _solve(self, prop: LinearPropagation, final: Tensor, rows: Tensor,
               loss: BilinearLoss, emb_rows: Tensor, rhs: Tensor):
        config = self.config

        def build(kind: HessianType):
            operator = PropagatedHessian(prop, final, rows, loss, self.l2,
                                         kind == HessianType.gauss_newton,
                                         config.dtype)
            if not config.project_gauge:
                return operator, rhs
            projection = GaugeProjection(emb_rows)
            return (ProjectedOperator(operator, projection),
                    projection(rhs))

        return solve_hessian(build, config.hessian, config.solver)

    def _update(self, request: Request) -> Tuple[Dict, Dict]:
        config, data = self.config, self.data
        timings: Dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str):
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        weight = self.model.embedding.weight
        emb = weight.detach().to(config.dtype, copy=True)
        num_users = data.num_users
        device = emb.device
        # Index bookkeeping stays on the CPU with the graph; products run
        # on the model's device.
        nodes = torch.cat([self.examples[:1], self.examples[1:] + num_users])

        tracer = SpilloverTracer(data.edge_index, data.num_nodes)
        direct, changed, rows = affected_rows(tracer, request, nodes,
                                              num_users, self.num_hops,
                                              config.extra_hops,
                                              config.pruning)

        keep = request.example_mask
        new_edge_index = remaining_data(data, request.train_mask).edge_index

        # Nodes left without edges and examples only feel the L2 term:
        # their optimum is zero.
        isolated = torch.ones(data.num_nodes, dtype=torch.bool)
        isolated[new_edge_index.view(-1)] = False
        isolated[nodes[:, keep].reshape(-1)] = False
        zeroed = direct[isolated[direct]]
        rows = rows[~isolated[rows]]

        # Everything below works on a region: the L-hop ball of the rows,
        # where propagation is exact, and the examples touching it (the
        # only ones the rows' gradient and curvature depend on).
        ball = tracer.k_hop(rows, self.num_hops)
        remaining = keep.nonzero().view(-1)
        touched = remaining[ball[nodes[:, remaining]].any(0)]
        removed = (~keep).nonzero().view(-1)
        kept_changed = (changed[keep[changed]] if config.spillover else
                        changed[:0])
        used = torch.cat([touched, removed, kept_changed])
        space = _Region(ball, nodes[:, used].reshape(-1), data.num_nodes)
        local_rows = space.node_map[rows].to(device)
        lap('trace')

        prop_new = LinearPropagation.induced(
            self.model, new_edge_index, ball, space.node_map, space.size,
            config.dtype).to(device=device)
        final_new = space.gather(LinearPropagation.from_model(
            self.model, new_edge_index.to(device), config.dtype)(emb))
        diagnostics = {
            'num_hops': self.num_hops,
            'direct_nodes': direct.numel(),
            'deleted_edges': request.deleted_edges.size(1),
            'changed_examples': changed.numel(),
            'solve_rows': rows.numel(),
            'solve_dim': rows.numel() * emb.size(1),
            'zeroed_rows': zeroed.numel(),
            'region_nodes': space.size,
            'region_examples': touched.numel(),
            'solver': [],
        }
        curvature_loss = self._loss(touched, config.curvature_dtype, space)
        for step in range(config.newton_steps):
            if step == 0 and config.gradient == GradientType.stationary:
                prop_old = LinearPropagation.induced(
                    self.model, data.edge_index, ball, space.node_map,
                    space.size, config.dtype).to(device=device)
                final_old = space.gather(LinearPropagation.from_model(
                    self.model, data.edge_index.to(device), config.dtype)(emb))
                changed_loss = self._loss(kept_changed, config.dtype, space)
                grad = self._grad(prop_old, final_old,
                                  self._loss(removed, config.dtype, space),
                                  changed_loss)
                grad -= self._grad(prop_new, final_new, changed_loss)
                grad = grad[local_rows]
            else:
                grad = -(self._grad(prop_new, final_new,
                                    self._loss(touched, config.dtype,
                                               space))[local_rows] +
                         self.l2 * emb[rows.to(device)])
            # Zero only now: the stationary gradient is taken at theta*.
            # Zeroed nodes are isolated in the new graph: F = alpha_0 E.
            emb[zeroed.to(device)] = 0
            final_new[space.node_map[zeroed].to(device)] = 0
            lap('gradient')
            if rows.numel() == 0:
                break
            step_vec, record = self._solve(
                prop_new.to(config.curvature_dtype),
                final_new.to(config.curvature_dtype), local_rows,
                curvature_loss, emb[rows.to(device)], grad.reshape(-1))
            step_vec = step_vec.view(rows.numel(), -1)
            emb[rows.to(device)] += step_vec
            # F changes within L hops of the rows, all inside the ball.
            delta = final_new.new_zeros(final_new.shape)
            delta[local_rows] = step_vec
            final_new += prop_new(delta)
            diagnostics['solver'].append(record)
            lap('solve')

        with torch.no_grad():
            weight.copy_(emb)
        lap('apply')
        return timings, diagnostics


class _Region:
    # A node set in local ids 0..size-1: the ball first, then the other
    # nodes of the examples used.
    def __init__(self, ball: Tensor, extra: Tensor, num_nodes: int):
        extra_mask = torch.zeros(num_nodes, dtype=torch.bool)
        extra_mask[extra] = True
        extra_mask &= ~ball
        self.nodes = torch.cat([ball.nonzero().view(-1),
                                extra_mask.nonzero().view(-1)])
        self.size = self.nodes.numel()
        self.node_map = torch.full((num_nodes, ), -1, dtype=torch.long)
        self.node_map[self.nodes] = torch.arange(self.size)

    def gather(self, x: Tensor) -> Tensor:
        return x[self.nodes.to(x.device)]
