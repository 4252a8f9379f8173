r"""IFRU for any PyG link predictor that follows the
:class:`~torch_geometric_unlearn.models.LinkModel` contract: GCN or SAGE
encoders with dot-product or MLP decoders, learned embeddings or fixed
features, and :func:`~torch_geometric.nn.to_hetero` recommenders.

The update is that of :mod:`~torch_geometric_unlearn.ifru`,

.. math::
    \theta_S' = \theta_S^* + (H_{SS} + \delta I)^{-1} g_S, \qquad
    g = \sum_{z \in R} \nabla \ell(z; G)
      + \sum_{z \in D_c} \big[\nabla \ell(z; G) - \nabla \ell(z; G')\big],

over the free parameters :math:`S`: the node-indexed rows of the pruned
spillover region, plus the shared weights if asked.  Nothing here assumes
linearity: gradients and Hessian-vector products are autograd products
through the model's message passing
(:class:`~torch_geometric_unlearn.influence.hvp.HessianOperator` on a
:class:`~torch_geometric_unlearn.influence.params.ParameterSelection`), so
each product costs about two forward-backward passes of the model.
"""
import time
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, List, Optional, Sequence, Tuple,
                    Union)

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from .horizon import decay_rates, row_horizon
from .region import affected_rows
from .step import (HessianType, StepType, check_solve_options,
                   check_step_options, choose_step, coerce_enum,
                   solve_hessian)
from .influence import (HessianOperator, LinearOperator, ParameterSelection,
                        SolverConfig, SolverError, solve,
                        trajectory_response)
from .models import LinkModel
from .objectives import margin_loss
from .spillover import PruningConfig, SpilloverTracer
from .unlearner import Request, Unlearner, check_examples, remaining_data

__all__ = [
    'ExampleLoss',
    'bpr_loss',
    'bce_loss',
    'ExampleObjective',
    'GaussNewtonOperator',
    'GenericIFRUConfig',
    'GenericIFRUnlearner',
    'converge_link_model',
]

#: A summed loss: takes the scores :obj:`[m - 1, B]` of the pairs
#: (user, item in row :obj:`r`) of examples :obj:`[m, B]` and their labels
#: :obj:`[B]` (or :obj:`None`), returns a scalar.
ExampleLoss = Callable[[Tensor, Optional[Tensor]], Tensor]


def bpr_loss(scores: Tensor, labels: Optional[Tensor] = None) -> Tensor:
    r"""Summed BPR loss of triples (user, positive, negative): scores
    :obj:`[2, B]`."""
    return F.softplus(scores[1] - scores[0]).sum()


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
            triples without labels and :func:`bce_loss` for labelled pairs.
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
            if examples.size(0) == 3 and labels is None:
                loss = bpr_loss
            elif examples.size(0) == 2 and labels is not None:
                loss = bce_loss
            else:
                raise ValueError(
                    f"Examples [{examples.size(0)}, M] "
                    f"{'with' if labels is not None else 'without'} labels "
                    f"fit neither BPR (triples, no labels) nor BCE "
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


@dataclass
class GenericIFRUConfig:
    r"""Configuration of :class:`GenericIFRUnlearner`, validated on
    construction.

    Args:
        step (StepType or str): As in
            :class:`~torch_geometric_unlearn.ifru.IFRUConfig`:
            :obj:`'auto'` (default) runs the stationarity test (one
            gradient of the old objective) and takes IFRU's Newton step
            only at a minimum; an early-stopped model gets the trajectory
            step (Lanczos on the Gauss-Newton matrix over a horizon read
            per row from the residual, see
            :func:`~torch_geometric_unlearn.horizon.residual_horizon`).
            :obj:`'newton'` or :obj:`'trajectory'` force one.
        stationary_tol (float): The threshold of the test.
        shared (bool or Sequence[str]): Whether the shared (non
            node-indexed) parameters join the solve: :obj:`False`,
            :obj:`True` for all of them, or a list of their names as in
            :meth:`LinkModel.named_parameters`.  The default,
            :obj:`False`, is measured on 60 users, 80 items, 2-layer models
            with d=4 and 10 interactions forgotten: freeing the shared
            weights changed the score closure from 0.80 to 0.88 (GCN) and
            0.70 to 0.87 (to_hetero) but from 0.63 to 0.10 (SAGE), and at
            d=8 it closed less than the rows alone in 20 of 26 runs
            (``benchmarks/generic_l2_sweep.py``).  It also couples every
            training example to the solve (rows alone need only the
            examples within reach of the free rows).  Models without
            node-indexed parameters (fixed features only) need
            :obj:`True`.
        spillover (bool): Include the spillover term.
        pruning (PruningConfig, optional): Which candidate rows to solve
            for, ranked by IFRU's importance; :obj:`None` (default) keeps
            all.  Unlike :class:`~torch_geometric_unlearn.ifru.IFRUConfig`,
            nothing is pruned by default: on the d=4 test models, dropping
            the least important 10% lowered the score closure from 0.63 to
            0.31 (SAGE), 0.80 to 0.78 (GCN) and 0.70 to 0.70 (to_hetero),
            and saved at most 38% of the products (SAGE: 23 against 37).
        extra_hops (int): Candidate rows lie within
            :obj:`num_hops + extra_hops` hops of the deleted edges (plus
            the nodes sharing an example with them).
        exact_gradient (bool): Use :math:`-\nabla L(\theta^*; G', D')`
            instead of IFRU's direct + spillover form; the two agree at a
            stationary point.
        newton_steps (int): Newton steps; later ones use the exact gradient
            at the updated parameters.
        hessian (HessianType or str): The Newton step's curvature (the
            trajectory step always takes the Gauss-Newton matrix):
            :obj:`'exact'` (autograd Hessian of the new objective),
            :obj:`'gauss_newton'` (:class:`GaussNewtonOperator`), or
            :obj:`'auto'` (default): exact, falling back to Gauss-Newton
            when the exact solve fails (negative curvature or no
            convergence).  The exact Hessian of the new objective is often
            indefinite at the old optimum of a nonlinear GNN (deleting
            edges changes GCN's normalisation and SAGE's means).
        solver (SolverConfig): The Newton step's linear solver (the
            trajectory step takes its :obj:`tol` and :obj:`max_iter`); CG
            to a relative residual of 1e-2 with damping 1e-3 by default
            (1e-3 took 33-40% more products for closures within 0.01 on
            the test models).  The small damping guards against the flat
            directions of output rotations when shared weights are free
            (scores and L2 are invariant under :math:`W \mapsto W R` for
            the last layer).
        dtype (torch.dtype): Precision of the solver's vectors; the model's
            own dtype is used for its products.  Float64 by default (CG in
            float32 loses orthogonality on these systems).
        region (bool): Run the model, for every gradient and product, on
            the training pairs with an end in the :obj:`num_hops`-hop ball
            of the nodes the used examples score (exact for a model whose
            output at a node depends on its :obj:`num_hops`-hop
            neighbourhood and the degrees there, as GCN, SAGE, GAT and
            :func:`~torch_geometric.nn.to_hetero` models do); the result
            reports the ball's :obj:`region_nodes` and
            :obj:`region_edges`.  :obj:`False` runs the whole graph, for a
            model that reaches further (e.g. a virtual node or global
            pooling).  With free shared weights every example is used and
            the ball is the graph.
    """
    step: StepType = StepType.auto
    stationary_tol: float = 0.1
    shared: Union[bool, Sequence[str]] = False
    spillover: bool = True
    pruning: Optional[PruningConfig] = None
    extra_hops: int = 1
    exact_gradient: bool = False
    newton_steps: int = 1
    hessian: HessianType = HessianType.auto
    solver: SolverConfig = field(default_factory=lambda: SolverConfig(
        method='cg', tol=1e-2, max_iter=300, damping=1e-3))
    dtype: torch.dtype = torch.float64
    region: bool = True

    def __post_init__(self):
        if not isinstance(self.shared, bool) and (
                isinstance(self.shared, str) or not all(
                    isinstance(name, str) for name in self.shared)):
            raise ValueError(f"'shared' must be a bool or a list of "
                             f"parameter names (got {self.shared!r})")
        coerce_enum(self, 'hessian', HessianType)
        check_solve_options(self)
        check_step_options(self)
        for name in ('spillover', 'exact_gradient', 'region'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"'{name}' must be a bool")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"'dtype' must be torch.float32 or "
                             f"torch.float64 (got {self.dtype})")


def _exact_hessian(selection: ParameterSelection,
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
        objective (ExampleObjective): The examples and loss.
        graph: The graph the model scores on.
        l2 (float): :math:`\lambda`.
    """
    def __init__(self, selection: ParameterSelection,
                 objective: ExampleObjective, graph, l2: float):
        super().__init__(selection.dim, selection.dtype, selection.device)
        self.l2 = l2
        self._delta = selection.zeros().requires_grad_()
        scores = selection.functional(
            lambda model: objective.scores(model, graph))(self._delta)
        self._scores = scores
        self._dual = torch.zeros_like(scores, requires_grad=True)
        (self._jt_dual, ) = torch.autograd.grad(scores, self._delta,
                                                self._dual,
                                                create_graph=True)
        fixed = scores.detach().requires_grad_()
        (grad, ) = torch.autograd.grad(objective.loss(fixed, objective.labels),
                                       fixed,
                                       create_graph=True)
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


class _CastOperator(LinearOperator):
    # Solver vectors in `dtype`, products in the model's dtype.
    def __init__(self, inner: HessianOperator, dtype: torch.dtype):
        super().__init__(inner.dim, dtype, inner.device, inner.damping)
        self.inner = inner

    def _apply(self, vec: Tensor) -> Tensor:
        return self.inner.hvp(vec.to(self.inner.dtype)).to(self.dtype)

    def release(self):
        self.inner.release()


class GenericIFRUnlearner(Unlearner):
    r"""Forgets interactions from any PyG link predictor with IFRU's
    influence update (direct and spillover influence, pruned rows, CG).

    Afterwards the model predicts with the graph without the forgotten
    interactions: :obj:`result.model(result.model.graph(
    result.data.train_positive_index), pairs)`.

    Args:
        model (LinkModel or torch.nn.Module): The trained model; a plain
            module is wrapped as :obj:`LinkModel(model, num_users,
            num_items)`, i.e. called as :obj:`model(edge_index,
            edge_label_index)` like PyG's LightGCN.  :attr:`model` (and
            :obj:`result.model`) is the :class:`~.models.LinkModel`; its
            :obj:`.model` is yours, updated in place unless
            :obj:`copy_model`.
        data (InteractionData): The data it was trained on.
        examples (torch.Tensor): The fixed training examples :obj:`[m, M]`
            (see :class:`ExampleObjective`), e.g. the frozen BPR triples.
        labels (torch.Tensor, optional): Their labels :obj:`[M]`.
        l2 (float): Weight :math:`\lambda` of the L2 term on the summed
            loss, over all parameters.
        loss (ExampleLoss, optional): The summed loss; BPR or BCE by
            default.
        config (GenericIFRUConfig, optional): The settings.
        copy_model (bool): Work on a deep copy.
        horizon (Dict[str, torch.Tensor], optional): The training run's
            horizon for the trajectory step, per parameter name (as in
            :meth:`LinkModel.named_parameters`), each of the parameter's
            shape: every node table, and every shared weight the config
            frees (see
            :func:`~torch_geometric_unlearn.horizon.optimizer_horizon`).
            Without it, a horizon per row is read off the stationarity
            residual.

    Example:

    .. code-block:: python

        link_model = LinkModel(model, data.num_users, data.num_items)
        unlearner = GenericIFRUnlearner(link_model, data, record.examples)
        result = unlearner.unlearn(pairs)
        graph = result.model.graph(result.data.train_positive_index)
        scores = result.model(graph, pairs)
    """
    method = 'ifru-generic'

    def __init__(self, model: Union[LinkModel, torch.nn.Module], data,
                 examples: Tensor, labels: Optional[Tensor] = None,
                 l2: Optional[float] = None,
                 loss: Optional[ExampleLoss] = None,
                 config: Optional[GenericIFRUConfig] = None,
                 copy_model: bool = True,
                 horizon: Optional[Dict[str, Tensor]] = None):
        if isinstance(model, torch.nn.Module) and \
                not isinstance(model, LinkModel):
            model = LinkModel(model, data.num_users, data.num_items)
        self._loss = loss
        super().__init__(model, data, examples, labels, l2, copy_model)
        self.config = config or GenericIFRUConfig()
        if not isinstance(self.config, GenericIFRUConfig):
            raise ValueError("'config' must be a GenericIFRUConfig")
        self.shared = self._shared_names()
        if not self.model.node_params and not self.shared:
            raise ValueError(
                f"{type(self.model.model).__name__} has no node-indexed "
                f"parameters (tables with one row per user, item or node) "
                f"and no shared parameters were freed: nothing to solve "
                f"for.  Pass GenericIFRUConfig(shared=True), or name the "
                f"tables in LinkModel(node_params=...)")
        self.horizon = self._check_horizon(horizon)

    def _check(self, model, data, examples, labels):
        if not isinstance(model, LinkModel):
            raise TypeError(f"'model' must be a LinkModel or a "
                            f"torch.nn.Module (got {type(model).__name__})")
        if (model.num_users, model.num_items) != (data.num_users,
                                                  data.num_items):
            raise ValueError(f"The model has {model.num_users} users and "
                             f"{model.num_items} items but the data has "
                             f"{data.num_users} and {data.num_items}")
        objective = ExampleObjective(examples, labels, self._loss)
        if examples.size(0) in (2, 3):
            check_examples(examples, labels, data)
        elif examples.min() < 0 or examples[0].max() >= data.num_users or \
                examples[1:].max() >= data.num_items:
            raise ValueError("'examples' hold user or item ids outside the "
                             "data")
        model.check(data.train_positive_index)
        was_training = model.training
        model.eval()
        objective.check_additive(model,
                                 model.graph(data.train_positive_index))
        model.train(was_training)

    def _check_horizon(self, horizon: Optional[Dict[str, Tensor]]
                       ) -> Optional[Dict[str, Tensor]]:
        if horizon is None:
            return None
        if not isinstance(horizon, dict):
            raise ValueError(f"'horizon' must be a dict of tensors by "
                             f"parameter name (got {type(horizon).__name__})")
        needed = list(self.model.node_params) + self.shared
        missing = [name for name in needed if name not in horizon]
        if missing:
            raise ValueError(f"'horizon' lacks the parameters {missing}")
        out = {}
        for name in needed:
            value, param = horizon[name], self.model.get_parameter(name)
            if not isinstance(value, Tensor) or value.shape != param.shape:
                raise ValueError(f"'horizon[{name!r}]' must be a tensor of "
                                 f"shape {list(param.shape)}")
            if not bool(torch.isfinite(value).all() & (value > 0).all()):
                raise ValueError(f"'horizon[{name!r}]' must be finite and "
                                 f"positive")
            out[name] = value.detach().to(param.device)
        return out

    def _shared_names(self) -> List[str]:
        names = [name for name, _ in self.model.named_parameters()
                 if name not in self.model.node_params]
        shared = self.config.shared
        if shared is True:
            return names
        if shared is False:
            return []
        unknown = [name for name in shared if name not in names]
        if unknown:
            raise ValueError(f"'shared' names {unknown}, which are not "
                             f"shared parameters of the model (those are "
                             f"{names})")
        return list(shared)

    def objective(self, index: Optional[Tensor] = None) -> ExampleObjective:
        r"""The :class:`ExampleObjective` of the current examples (or of the
        columns :obj:`index`)."""
        examples, labels = self.examples, self.labels
        if index is not None:
            examples = examples[:, index]
            labels = None if labels is None else labels[index]
        return ExampleObjective(examples, labels, self._loss)

    def _update(self, request: Request) -> Tuple[Dict, Dict]:
        model = self.model
        timings: Dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str):
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        was_training = model.training
        model.eval()  # The objective must be deterministic (no dropout).
        try:
            return self._step(request, lap, timings)
        finally:
            model.train(was_training)

    def _step(self, request: Request, lap, timings) -> Tuple[Dict, Dict]:
        config, data, model = self.config, self.data, self.model
        num_users = data.num_users
        nodes = torch.cat([self.examples[:1], self.examples[1:] + num_users])
        tracer = SpilloverTracer(data.edge_index, data.num_nodes)
        direct, changed, rows = affected_rows(
            tracer, request, nodes, num_users, model.num_hops,
            config.extra_hops, config.pruning)

        keep = request.example_mask
        after = remaining_data(data, request.train_mask)

        # Nodes left without edges and examples only feel the L2 term on
        # their own rows: their optimum is zero.  (A node's own row reaches
        # other nodes only along its edges.)
        isolated = torch.ones(data.num_nodes, dtype=torch.bool)
        isolated[after.edge_index.view(-1)] = False
        isolated[nodes[:, keep].reshape(-1)] = False
        zeroed = direct[isolated[direct]]
        rows = rows[~isolated[rows]]

        selection = self._selection(rows)
        # Only examples within reach of the free rows enter the gradients
        # and the Hessian; with free shared weights, all of them do.
        touching = torch.ones(nodes.size(1), dtype=torch.bool)
        if not self.shared:
            reach = tracer.k_hop(rows, model.num_hops)
            touching = reach[nodes].any(0)
        remaining = (keep & touching).nonzero().view(-1)
        used = touching | ~keep
        used[changed] = True
        old_graph, new_graph, region = self._region_graphs(
            tracer, nodes[:, used].reshape(-1), after)
        lap('trace')

        diagnostics = {
            'num_hops': model.num_hops,
            'direct_nodes': direct.numel(),
            'deleted_edges': request.deleted_edges.size(1),
            'changed_examples': changed.numel(),
            'solve_rows': rows.numel(),
            'shared_params': len(self.shared),
            'solve_dim': 0 if selection is None else selection.dim,
            'hessian_examples': remaining.numel(),
            'region_nodes': region[0],
            'region_edges': region[1],
            'zeroed_rows': zeroed.numel(),
            'solver': [],
        }
        objective = self.objective(remaining)
        newton = True
        if selection is not None:
            influence = self._gradient(selection, request, changed,
                                       old_graph, new_graph)
            newton, horizon = self._choose_step(
                selection, influence, touching.nonzero().view(-1), old_graph,
                diagnostics)
        if not newton:
            self._zero_rows(zeroed)
            lap('gradient')
            operator = _CastOperator(GaussNewtonOperator(
                selection, objective, new_graph, self.l2), config.dtype)
            try:
                delta, record = trajectory_response(
                    operator, influence.to(config.dtype), horizon,
                    config.solver.tol, config.solver.max_iter,
                    eps=torch.finfo(selection.dtype).eps)
            finally:
                operator.release()
            record.curvature = HessianType.gauss_newton.value
            selection.apply_(delta)
            diagnostics['solver'].append(record)
            lap('solve')
        for step in range(config.newton_steps if selection and newton
                          else 0):
            if step == 0 and not config.exact_gradient:
                grad = influence
            else:
                grad = -(selection.gradient(lambda m: objective(m, new_graph))
                         + self.l2 * selection.values())
            # Zero only now: the stationary gradient is taken at theta*.
            self._zero_rows(zeroed)
            lap('gradient')
            delta, record = self._solve(selection, objective, new_graph,
                                        grad.to(config.dtype))
            selection.apply_(delta)
            diagnostics['solver'].append(record)
            lap('solve')
        self._zero_rows(zeroed)
        lap('apply')
        return timings, diagnostics

    def _region_graphs(self, tracer: SpilloverTracer, used: Tensor, after
                       ) -> Tuple[Any, Any, Tuple[int, int]]:
        # The old and new graphs cut to the training pairs with an end in
        # the L-hop ball of the nodes the used examples score: every node
        # in the ball keeps all its edges, so its degree and neighbourhood,
        # and with them every used score as a function of the parameters,
        # are those of the whole graph.  Returns the graphs and the ball's
        # (nodes, pairs of the old graph).
        model, data = self.model, self.data
        pairs = data.train_positive_index
        if not self.config.region:
            return (model.graph(pairs), model.graph(after.train_positive_index),
                    (data.num_nodes, pairs.size(1)))
        ball = tracer.k_hop(torch.unique(used), model.num_hops)

        def cut(index: Tensor) -> Tensor:
            inside = ball[index[0]] | ball[index[1] + data.num_users]
            return index[:, inside]

        old = cut(pairs)
        return (model.graph(old), model.graph(cut(after.train_positive_index)),
                (int(ball.sum()), old.size(1)))

    def _choose_step(self, selection: ParameterSelection, influence: Tensor,
                     old_index: Tensor, old_graph, diagnostics: Dict
                     ) -> Tuple[bool, Optional[Tensor]]:
        # The stationarity test of IFRUnlearner: the old objective's
        # gradient at the model against the request's influence.  Returns
        # whether the Newton step runs, and else the horizon.
        config = self.config
        old = self.objective(old_index)
        values = selection.values()
        residual = selection.gradient(lambda m: old(m, old_graph)) + \
            self.l2 * values

        def read_horizon() -> Tensor:
            if self.horizon is not None:
                return selection.gather(self.horizon).to(config.dtype)
            return self._horizon(selection, values, residual)

        newton, horizon, stationarity, route_fallback = choose_step(
            config, residual, influence, read_horizon)
        diagnostics.update(stationarity=stationarity,
                           route_fallback=route_fallback,
                           step='newton' if newton else 'trajectory')
        return newton, horizon

    def _horizon(self, selection: ParameterSelection, values: Tensor,
                 residual: Tensor) -> Tensor:
        # A horizon per row (of every node table, and of each shared
        # weight's leading dimension), capped at the median over all rows.
        rows = [part.reshape(part.size(0) if part.dim() else 1, -1)
                for _, part in selection.split(values)]
        res = [part.reshape_as(row) for (_, part), row in
               zip(selection.split(residual), rows)]
        per_row = row_horizon(torch.cat([
            decay_rates(r.to(self.config.dtype), v.to(self.config.dtype))
            for r, v in zip(res, rows)]))
        widths = torch.cat([torch.full((row.size(0), ), row.size(1))
                            for row in rows]).to(per_row.device)
        return per_row.repeat_interleave(widths)

    def _solve(self, selection: ParameterSelection,
               objective: ExampleObjective, graph, rhs: Tensor):
        def build(kind: HessianType):
            if kind == HessianType.exact:
                inner = _exact_hessian(selection, objective, graph, self.l2)
            else:
                inner = GaussNewtonOperator(selection, objective, graph,
                                            self.l2)
            return _CastOperator(inner, self.config.dtype), rhs

        return solve_hessian(build, self.config.hessian, self.config.solver)

    def _selection(self, nodes: Tensor) -> Optional[ParameterSelection]:
        rows = {name: self.model.rows(name, nodes)
                for name in self.model.node_params}
        rows = {name: index for name, index in rows.items() if index.numel()}
        if not rows and not self.shared:
            return None
        return ParameterSelection(self.model, rows, self.shared)

    def _gradient(self, selection: ParameterSelection, request: Request,
                  changed: Tensor, old_graph, new_graph) -> Tensor:
        keep = request.example_mask
        removed = self.objective((~keep).nonzero().view(-1))
        grad = selection.gradient(lambda m: removed(m, old_graph))
        kept_changed = changed[keep[changed]]
        if self.config.spillover and kept_changed.numel():
            spill = self.objective(kept_changed)
            grad += selection.gradient(lambda m: spill(m, old_graph))
            grad -= selection.gradient(lambda m: spill(m, new_graph))
        return grad

    @torch.no_grad()
    def _zero_rows(self, nodes: Tensor):
        for name in self.model.node_params:
            index = self.model.rows(name, nodes)
            if index.numel():
                self.model.get_parameter(name)[index] = 0


def converge_link_model(model: LinkModel, graph, objective: ExampleObjective,
                        l2: float, tol: float = 1e-6, max_iter: int = 200,
                        progress: bool = False) -> float:
    r"""Minimises :math:`L(\theta) = \sum_z \ell(z) + \frac{\lambda}{2}
    \lVert\theta\rVert^2` over all parameters of :obj:`model` in place, in
    eval mode, until :math:`\lVert \nabla L \rVert \leq` :obj:`tol`
    :math:`\cdot \lVert \lambda \theta \rVert`.

    Influence functions approximate the optimum of such a fixed objective,
    so parameter fidelity is measured between converged points.  The method
    is a damped Newton-CG: each step solves :math:`(H + \mu I) d =
    -\nabla L` with the exact Hessian by CG, to a relative residual that
    shrinks with the gradient, and backtracks until :math:`L` decreases
    enough (Armijo).  Where CG meets negative curvature, its last iterate
    is the step and :math:`\mu` grows tenfold; it shrinks tenfold after
    every full step, so the last steps are plain Newton steps and converge
    quadratically.  First-order methods
    (L-BFGS, Adam) stall far from the optimum of these ill-conditioned
    objectives on real data.

    Args:
        model (LinkModel): The model, updated in place.
        graph: Its message-passing input (see :meth:`LinkModel.graph`).
        objective (ExampleObjective): The examples and loss.
        l2 (float): :math:`\lambda`.
        tol (float): The gradient ratio to reach.
        max_iter (int): Most Newton steps.
        progress (bool): Show a progress bar.

    Returns:
        float: The final gradient ratio :math:`\lVert \nabla L \rVert /
        \lVert \lambda \theta \rVert`.
    """
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    selection = ParameterSelection(model, {}, names)
    func = selection.functional(lambda m: objective(m, graph))
    was_training = model.training
    model.eval()

    def total(delta: Tensor) -> float:
        with torch.no_grad():
            return float(func(delta) + 0.5 * l2 * (
                selection.values() + delta).pow(2).sum())

    def gradient() -> Tuple[Tensor, float]:
        grad = selection.gradient(lambda m: objective(m, graph)) + \
            l2 * selection.values()
        scale = float(l2 * selection.values().norm())
        return grad, float(grad.norm()) / max(scale, 1e-30)

    grad, ratio = gradient()
    damping = 1e-3 * l2
    for _ in tqdm(range(max_iter), disable=not progress, desc='converge',
                  leave=False):
        if ratio <= tol:
            break
        hessian = _exact_hessian(selection, objective, graph, l2)
        config = SolverConfig(method='cg', max_iter=500, damping=damping,
                              tol=max(min(0.1, ratio), 1e-10))
        try:
            step = solve(hessian, -grad, config)[0]
        except SolverError as error:
            # Negative curvature (e.g. along the models' rotation
            # symmetries away from the optimum): CG's last iterate still
            # descends (Steihaug); damp the next steps more.
            step = error.solution
            damping *= 10
        hessian.release()
        if not float(grad @ step) < 0:
            step = -grad / (l2 + damping)
        slope, value = float(grad @ step), total(selection.zeros())
        alpha = 1.0
        while total(alpha * step) > value + 1e-4 * alpha * slope:
            alpha /= 2
            if alpha < 1e-6:  # Rounding noise: no progress left to make.
                model.train(was_training)
                return ratio
        if alpha == 1.0:
            damping = max(damping / 10, 1e-8 * l2)
        selection.apply_(step, alpha)
        grad, ratio = gradient()
    model.train(was_training)
    return ratio
