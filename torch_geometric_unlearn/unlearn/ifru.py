r"""IFRU: influence-function unlearning with spillover (Zhang et al., ACM
TORS 2024, arXiv 2307.02147), made faithful on early-stopped models.

For the summed objective :math:`L(\theta; G, D)` (see
:mod:`~torch_geometric_unlearn.influence.objectives`) and a request :math:`R`
that removes examples and edges, IFRU's influence on the gradient is

.. math::
    g = \underbrace{\sum_{z \in R} \nabla \ell(z; G)}_{\text{direct}}
      + \underbrace{\sum_{z \in D_c} \big[\nabla \ell(z; G)
      - \nabla \ell(z; G')\big]}_{\text{spillover}}
      = \nabla L(\theta^*; G, D) - \nabla L(\theta^*; G', D'),

where :math:`D_c` are the remaining examples whose scores change with the
graph.  Two steps turn it into an update:

* **Newton** (IFRU's): :math:`\theta' = \theta^* + H^{-1} g` with the
  Hessian of the new objective.  It assumes :math:`\theta^*` minimises the
  old objective, i.e. :math:`\nabla L(\theta^*; G, D) = 0`.
* **Trajectory** (for the early-stopped models people train): the change
  that the training run itself would have made without the request,
  linearised, :math:`\theta' = \theta^* + \tau^{1/2}
  \varphi(\tau^{1/2} H \tau^{1/2}) \tau^{1/2} g` with the Gauss-Newton
  matrix :math:`H` and the run's per-coordinate horizon :math:`\tau` (see
  :mod:`~torch_geometric_unlearn.influence.horizon`).  Two more corrections
  make it follow training: the direct term averages each forgotten BPR example
  over the negative sampler instead of its one frozen negative, and rows left
  with no edge restart from zero (their learned value came from the
  forgotten interactions alone).

A stationarity test (one gradient, :math:`\lVert \nabla L(\theta^*)\rVert /
\lVert g\rVert`) picks the step.  Everything runs over the embedding rows of
a pruned node set :math:`S` and the examples that touch their receptive
field.

LightGCN (and MF, its 0-layer case) is linear in its embeddings,
:math:`F = P E`, so gradients and Hessian-vector products are taken in the
space of final embeddings and mapped with :math:`P` (see
:mod:`~torch_geometric_unlearn.graph.propagation`): message passing is never
differentiated twice.
"""
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.evaluation.metrics import unseen_pairs
from torch_geometric_unlearn.graph.cache import GraphCache
from torch_geometric_unlearn.graph.propagation import LinearPropagation
from torch_geometric_unlearn.graph.pruning import PruningConfig
from torch_geometric_unlearn.graph.region import Region, affected_rows
from torch_geometric_unlearn.graph.spillover import infer_num_hops
from torch_geometric_unlearn.influence import (SolverConfig, SolverDiagnostics,
                                               SolverError,
                                               trajectory_response)
from torch_geometric_unlearn.influence.bilinear import (BilinearLoss,
                                                        expected_negative_grad)
from torch_geometric_unlearn.influence.curvature import (GaugeProjection,
                                                         ProjectedOperator,
                                                         PropagatedHessian)
from torch_geometric_unlearn.influence.horizon import residual_horizon
from torch_geometric_unlearn.influence.objectives import BatchL2
from torch_geometric_unlearn.influence.step import (GradientType, HessianType,
                                                    StepType,
                                                    check_solve_options,
                                                    check_step_options,
                                                    choose_step, coerce_enum,
                                                    solve_hessian)
from torch_geometric_unlearn.training.trainer import check_model
from torch_geometric_unlearn.unlearn.base import (Request, Unlearner,
                                                  check_examples,
                                                  remaining_data)
from torch_geometric_unlearn.unlearn.certificate import (Certificate,
                                                         forgotten_auc)
from torch_geometric_unlearn.unlearn.distributed import (ShardError, Shards,
                                                         shard_check)
from torch_geometric_unlearn.unlearn.ledger import data_fingerprint


@dataclass
class IFRUConfig:
    r"""Configuration of :class:`IFRUnlearner`, validated on construction.

    Args:
        step (StepType or str): :obj:`'auto'` (default) runs a stationarity
            test (one gradient): if the old objective's gradient at the
            model is at most :obj:`stationary_tol` times the request's
            influence :math:`g` on the solved rows, the model sits at a
            minimum and the Newton step runs; otherwise (early stopping) the
            trajectory step.  Without the optimiser's horizon, the
            trajectory step reads one from the residual; where the residual
            pulls no row outwards (a model shrinking under its L2, not an
            early-stopped one) it has no reading and the Newton step runs
            instead, as the certificate records.  :obj:`'newton'` or
            :obj:`'trajectory'` force one.  Measured on early-stopped
            MovieLens-100K and Last.fm models (score changes of the
            forgotten pairs against paired retrains, see the benchmark
            docs): the Newton step with the Gauss-Newton fallback closed
            -1.38 to 0.98 and failed on unregularised models; the
            trajectory step closed 0.73-0.98.
        stationary_tol (float): The threshold of the test.  Converged
            models measured here sit near 0.002, early-stopped ones at
            1-100 (the lowest for the largest requests).
        spillover (bool): Include the spillover term; :obj:`False` keeps the
            direct influence only (SCIF-like).
        pruning (PruningConfig): Which candidate rows to solve for, ranked
            by IFRU's importance (see
            :mod:`~torch_geometric_unlearn.graph.spillover`).  :obj:`None`
            disables pruning.  The default drops the least important 10%:
            on MovieLens-100K (LightGCN, 2 layers, 1% deleted, converged
            model) that gave parameter closure 0.79 against 0.90 unpruned.
        extra_hops (int): The candidate rows lie within
            :obj:`num_hops + extra_hops` hops of the deleted edges.  The
            extra hop reaches the rows coupled to the changed embeddings
            through the loss (e.g. a deleted item's other users in MF).
        expected_negatives (bool): In the trajectory step, average each
            forgotten BPR triple over the negative sampler (uniform over
            the items its user has no pair with, as the reference trainer
            draws them every epoch) instead of using its one frozen
            negative.  On MovieLens-100K MF (1% random) the frozen negative
            alone made the predicted score changes correlate only 0.46 with
            the paired retrain's; averaged, 0.91.
        reset_unsupported (bool): Rows of nodes left only as sampled
            negatives (an item whose every interaction is forgotten)
            restart from zero before the step: all they learned from
            observations came from the forgotten interactions.  On
            MovieLens-100K MF, forgetting the most popular item, the step
            from the trained row flipped it (score -2.7 for its former
            users, paired retrain -0.9; closure 0.66); from zero it closed
            0.93.  (Nodes left in no example at all are set to their exact
            optimum, zero, in any case.)
        gradient (GradientType or str): Right-hand side of the Newton step:
            :obj:`'stationary'` (IFRU's form) or :obj:`'exact'`
            (:math:`-\nabla L(\theta; G', D')`).
        hessian (HessianType or str): Curvature of the Newton step:
            :obj:`'exact'`; :obj:`'gauss_newton'`; or :obj:`'auto'`
            (default): Gauss-Newton where the stationarity test finds the
            model away from a minimum (the exact Hessian is indefinite
            there), else exact, falling back to Gauss-Newton when the exact
            solve fails.  The trajectory step always uses Gauss-Newton,
            which is positive semi-definite wherever the model is.
        project_gauge (bool): Solve the Newton system off the rotation
            directions of the free rows (see :class:`GaugeProjection`).  The
            trajectory response is finite along them without it.
        newton_steps (int): Newton steps; later steps use the exact
            gradient at the updated parameters.
        solver (SolverConfig): The Newton step's linear solver (CG by
            default) and its damping, tolerance and iteration cap; the
            trajectory step uses its :obj:`tol` and :obj:`max_iter` for
            Lanczos.  The default solves undamped (the L2 term and the gauge
            projection keep the system well posed) to a relative residual
            of 1e-2.
        num_hops (int, optional): Receptive field of the model; inferred
            from it by default.
        curvature_hops (int, optional): Keep the curvature (the Hessian or
            Gauss-Newton products of the solve) to the rows' own
            :obj:`curvature_hops`-hop ball: its propagation and the
            examples touching it, instead of the exact :obj:`num_hops`-hop
            region (:obj:`None`, the default).  The gradients and the
            certificate stay exact; the result reports
            :obj:`diagnostics['curvature_error']`, the truncated operator's
            relative error along the step taken.  With few solved rows
            (e.g. :obj:`PruningConfig('threshold', 1e-2)`) the products then
            cost what the rows touch, not the graph.  Measured on
            MovieLens-100K (LightGCN-2, paired retrains): :obj:`0` with
            the 300 most important rows closed 0.78 / 1.00 of the
            forgotten pairs' score change (1% random / 5 users) against
            0.79 / 1.00 exact (see ``benchmarks/request_cost.py``).
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
    step: StepType = StepType.auto
    stationary_tol: float = 0.1
    spillover: bool = True
    pruning: Optional[PruningConfig] = field(
        default_factory=lambda: PruningConfig('quantile', 0.1))
    extra_hops: int = 1
    expected_negatives: bool = True
    reset_unsupported: bool = True
    gradient: GradientType = GradientType.stationary
    hessian: HessianType = HessianType.auto
    project_gauge: bool = True
    newton_steps: int = 1
    solver: SolverConfig = field(default_factory=lambda: SolverConfig(
        method='cg', tol=1e-2, max_iter=200, damping=0.0))
    num_hops: Optional[int] = None
    curvature_hops: Optional[int] = None
    dtype: torch.dtype = torch.float64
    curvature_dtype: torch.dtype = torch.float32

    def __post_init__(self):
        coerce_enum(self, 'gradient', GradientType)
        coerce_enum(self, 'hessian', HessianType)
        check_solve_options(self)
        check_step_options(self)
        for name in ('num_hops', 'curvature_hops'):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or
                                      isinstance(value, bool) or value < 0):
                raise ValueError(f"'{name}' must be a non-negative int "
                                 f"(got {value!r})")


class IFRUnlearner(Unlearner):
    r"""Forgets interactions from a trained PyG :class:`LightGCN` (or MF)
    with IFRU's influence (direct and spillover), pruned to the most
    important embedding rows and applied by the step that suits the model:
    the response of its own early-stopped training run, or the Newton step
    at a minimum (see :class:`IFRUConfig` and
    :mod:`~torch_geometric_unlearn.influence.horizon`).

    Rows of nodes left with no edge and no training example (e.g. a user
    who asked to be forgotten) are set to their exact optimum, zero,
    instead of being solved for.  Every result carries a
    :class:`~torch_geometric_unlearn.unlearn.certificate.Certificate`.

    See :class:`~torch_geometric_unlearn.unlearn.base.Unlearner` for the
    arguments; :obj:`config` is an :class:`IFRUConfig`.

    Args:
        horizon (torch.Tensor, optional): The training run's horizon
            :math:`\tau`, the shape of the embedding table: what
            :func:`~torch_geometric_unlearn.training.trainer.train` records as
            :obj:`TrainResult.horizon`, or
            :func:`~.influence.horizon.optimizer_horizon` of
            your own optimiser.  Without it the trajectory step estimates a
            horizon per row from the stationarity residual, which closed
            less of the gap to retraining in the benchmarks.
        shards (Shards, optional): :obj:`examples` is this process's shard
            of the training examples, and the other ranks of the
            :class:`~torch_geometric_unlearn.unlearn.distributed.Shards` hold
            the rest: every sum over examples is all-reduced, and every rank
            applies the same requests to the same result (see
            :mod:`~torch_geometric_unlearn.unlearn.distributed`).

    Example:

    .. code-block:: python

        record = train(model, data, TrainConfig(l2=1.0))
        unlearner = IFRUnlearner(model, data, record.examples, l2=1.0,
                                 horizon=record.horizon)
        result = unlearner.unlearn(users=torch.tensor([42]))
        print(result.certificate)
        scores = result.model(result.edge_index, edge_label_index)
    """
    method = 'ifru'
    per_row_l2 = True

    def __init__(self, model, data, examples, labels=None,
                 l2: Optional[float] = None,
                 config: Optional[IFRUConfig] = None,
                 copy_model: bool = True,
                 horizon: Optional[Tensor] = None, *,
                 shards: Optional[Shards] = None):
        if not isinstance(model, LightGCN):
            raise TypeError(f"IFRUnlearner needs PyG's LightGCN (matrix "
                            f"factorisation is LightGCN(num_layers=0)), got "
                            f"{type(model).__name__}")
        if shards is not None and not isinstance(shards, Shards):
            raise TypeError(f"'shards' must be a Shards (got "
                            f"{type(shards).__name__})")
        self._shards = shards
        super().__init__(model, data, examples, labels, l2, copy_model)
        self.config = config or IFRUConfig()
        self.num_hops = (infer_num_hops(self.model)
                         if self.config.num_hops is None else
                         self.config.num_hops)
        if horizon is not None:
            shape = tuple(self.model.embedding.weight.shape)
            if not isinstance(horizon, Tensor) or tuple(horizon.shape) != \
                    shape:
                raise ValueError(f"'horizon' must be a tensor of the "
                                 f"embedding table's shape {list(shape)}")
            if not bool(torch.isfinite(horizon).all() & (horizon > 0).all()):
                raise ValueError("'horizon' must be finite and positive")
        self.horizon = horizon
        self._cache: Optional[GraphCache] = None
        self._next_cache: Optional[Tuple[Request, GraphCache]] = None

    def _loss(self, index: Tensor, dtype: torch.dtype,
              region: Region) -> BilinearLoss:
        device = self.model.embedding.weight.device
        labels = (None if self.labels is None else
                  self.labels[index].to(device))
        return BilinearLoss(self.examples[:, index].to(device), labels,
                            self.data.num_users, region.size, dtype,
                            region.node_map.to(device), self._sum)

    @property
    def _sum(self) -> Optional[Callable[[Tensor], Tensor]]:
        # Sums over examples, over every rank's shard.
        return None if self._shards is None else self._shards.sum_

    @property
    def _union(self) -> Optional[Callable[[Tensor], Tensor]]:
        return None if self._shards is None else self._shards.union

    def _check(self, model, data, examples, labels):
        if self._shards is None:
            return super()._check(model, data, examples, labels)
        # A shard that fails here must not leave the other ranks waiting.
        error = None
        try:
            check_model(model, data)
            check_examples(examples, labels, data, cover=False)
        except (TypeError, ValueError) as e:
            error = e
        if not self._shards.vote(error is None):
            raise error or ShardError("Another rank's examples do not fit "
                                      "the data")
        observed = self._observed(examples[:2], torch.ones(
            examples.size(1), dtype=torch.bool), examples, labels, data)
        train = pair_keys(data.train_index, data.num_items)
        order = torch.argsort(train)
        held = order[torch.searchsorted(
            train[order], pair_keys(observed, data.num_items))]
        shard_check(self._shards, held, data.num_train, torch.tensor(
            list(bytes.fromhex(data_fingerprint(data)))))

    def _count(self, local: int) -> int:
        # A count of examples, over every rank's shard.
        if self._shards is None:
            return local
        return int(self._shards.sum_(torch.tensor([local])).item())

    def _request(self, pairs: Tensor) -> Request:
        if self._shards is not None:
            self._shards.same(pair_keys(pairs, self.data.num_items),
                              'the request')
        return super()._request(pairs)

    def _vote(self, ok: bool, raise_: bool = True):
        if self._shards is None:
            return
        if not self._shards.vote(ok) and raise_:
            raise ShardError("The request failed on another rank: nothing "
                             "was changed on any rank")

    def _stamp(self) -> Tuple[Optional[str], Optional[str]]:
        # Every rank records rank 0's request id and time.
        if self._shards is None:
            return None, None
        text = (uuid.uuid4().hex +
                time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
        stamp = torch.tensor(list(text.encode()), dtype=torch.long)
        self._shards.broadcast_(stamp)
        text = bytes(stamp.tolist()).decode()
        return text[:32], text[32:]

    @staticmethod
    def _grad(prop: LinearPropagation, final: Tensor, *losses) -> Tensor:
        # P is symmetric, so the gradient over E is P times that over F.
        return prop(sum(loss.grad(final) for loss in losses))

    def _l2_rows(self, data, rows: Tensor, dtype: torch.dtype
                 ) -> Union[float, Tensor]:
        # The L2 weight of each row [r, 1] for the objective on 'data'.
        if not isinstance(self.l2, BatchL2):
            return self.l2
        index = (data.train_positive_index if self.examples.size(0) == 3
                 else data.train_index)
        weights = self.l2.weights(index, data.num_users, data.num_items,
                                  sampled_negatives=self.examples.size(0) ==
                                  3)
        return weights[rows.cpu()].view(-1, 1).to(rows.device, dtype)

    def _newton(self, prop: LinearPropagation, final: Tensor, rows: Tensor,
                loss: BilinearLoss, emb_rows: Tensor, rhs: Tensor,
                l2: Union[float, Tensor], stationarity: float):
        config = self.config
        hessian = config.hessian
        if hessian == HessianType.auto and \
                stationarity > config.stationary_tol:
            # The stationarity test already says the exact Hessian is not
            # that of a minimum: its solve would fail on negative curvature
            # (7 of 19 products thrown away on MovieLens-100K before).
            hessian = HessianType.gauss_newton

        def build(kind: HessianType):
            operator = PropagatedHessian(prop, final, rows, loss, l2,
                                         kind == HessianType.gauss_newton,
                                         config.dtype)
            if not config.project_gauge:
                return operator, rhs
            projection = GaugeProjection(emb_rows)
            return (ProjectedOperator(operator, projection),
                    projection(rhs))

        step, record = solve_hessian(build, hessian, config.solver)
        if hessian != config.hessian:
            record.message += (f' (chosen by the stationarity test: '
                               f'{stationarity:.3g} > '
                               f'{config.stationary_tol})')
        return step, record

    def _expected_direct(self, removed: Tensor, full: Tensor,
                         region: Region, frozen: Tensor) -> Tensor:
        # The forgotten triples' F-gradient averaged over the negative
        # sampler, minus their frozen one, on the region (ball rows only:
        # nothing outside the ball reaches the solved rows).  Computed in
        # the curvature's precision: it scores every item for every
        # forgotten pair.
        data = self.data
        known = self._graph_cache().known()
        average = expected_negative_grad(
            full.to(self.config.curvature_dtype),
            self.examples[:2, removed].to(full.device), data.num_users,
            known.to(full.device))
        if self._shards is not None:
            self._shards.sum_(average)
        out = torch.zeros_like(frozen)
        ball = region.nodes[:region.ball_size].to(full.device)
        out[:region.ball_size] = average[ball].to(out.dtype)
        return out - frozen

    def _observed(self, nodes: Tensor, keep: Tensor,
                  examples: Optional[Tensor] = None,
                  labels: Optional[Tensor] = None, data=None) -> Tensor:
        # The nodes of kept examples in observed roles: a BPR triple's user
        # and positive item; a labelled pair; an implicit BCE pair with
        # label 1 (label 0 marks a sampled negative there).
        if examples is None:
            examples, labels, data = self.examples, self.labels, self.data
        if examples.size(0) == 3:
            return nodes[:2, keep]
        if data.train_label is None:
            keep = keep & (labels == 1)
        return nodes[:, keep]

    def _update(self, request: Request) -> Tuple[Dict, Dict]:
        # The phases, each a method: trace (rows and region), gradient (the
        # influence and the step), curvature, solve, certificate, apply.
        timings: Dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str):
            nonlocal clock
            now = time.perf_counter()
            timings[name] = timings.get(name, 0.0) + now - clock
            clock = now

        work = self._trace(request)
        lap('trace')
        self._gradients(work)
        lap('gradient')
        diagnostics = {
            'num_hops': self.num_hops,
            'direct_nodes': work.direct.numel(),
            'deleted_edges': request.deleted_edges.size(1),
            'changed_examples': self._count(work.changed.numel()),
            'rows': work.rows,
            'solve_rows': work.rows.numel(),
            'solve_dim': work.rows.numel() * work.emb.size(1),
            'zeroed_rows': work.zeroed.numel(),
            'reset_rows': work.reset.numel(),
            'region_nodes': work.space.size,
            'region_examples': self._count(work.touched.numel()),
            'step': 'newton' if work.newton else 'trajectory',
            'stationarity': work.stationarity,
            'route_fallback': work.route_fallback,
            'solver': [],
        }
        self._curvature(work)
        diagnostics['curvature_hops'] = work.hops
        diagnostics['curvature_examples'] = self._count(work.kept.numel())
        self._solve(work, diagnostics)
        lap('solve')
        diagnostics['certificate'] = self._certify(work, request,
                                                   diagnostics['solver'])
        lap('certificate')
        with torch.no_grad():
            self.model.embedding.weight.copy_(work.emb)
        # Taken up by _advance once the request has succeeded.
        self._next_cache = (request, work.new_cache)
        lap('apply')
        return timings, diagnostics

    def _trace(self, request: Request) -> '_Work':
        # What the request touches: the rows to solve for (and to zero or
        # reset), and the region their gradients and products need.
        config, data, work = self.config, self.data, _Work()
        work.emb = emb = self.model.embedding.weight.detach().to(
            config.dtype, copy=True)
        device, dtype = emb.device, config.dtype
        # Index bookkeeping stays on the CPU with the graph; products run
        # on the model's device.
        work.cache = cache = self._graph_cache()
        nodes, tracer = cache.nodes, cache.tracer
        direct, work.changed, rows = affected_rows(
            tracer, request, nodes, data.num_users, self.num_hops,
            config.extra_hops, config.pruning, self._union)
        keep = request.example_mask
        work.new_data = remaining_data(data, request.train_mask)
        work.new_cache = cache.advance(request.deleted_edges, work.new_data,
                                       self.examples[:, keep], keep)

        # Nodes left in no example have the exact optimum zero.  Nodes left
        # only as sampled negatives keep nothing they learned from
        # observations: they restart from zero and are solved for.
        covered = torch.zeros(data.num_nodes, dtype=torch.bool)
        covered[nodes[:, keep].reshape(-1)] = True
        observed = torch.zeros(data.num_nodes, dtype=torch.bool)
        observed[self._observed(nodes, keep).reshape(-1)] = True
        if self._shards is not None:
            covered, observed = self._union(covered), self._union(observed)
        isolated, unsupported = ~covered, ~observed
        work.direct = direct
        work.zeroed = direct[isolated[direct]]
        reset = direct[unsupported[direct] & ~isolated[direct]]
        work.reset = reset if config.reset_unsupported else reset[:0]
        work.rows = rows = torch.unique(torch.cat([rows[~isolated[rows]],
                                                   work.reset]))

        # Everything below works on a region: the L-hop ball of the rows,
        # where propagation is exact, and the examples touching it (the
        # only ones the rows' gradient and curvature depend on).
        work.ball = ball = tracer.k_hop(rows, self.num_hops)
        # In the cache's item order: the products' scatters then write
        # to nearby rows (1.4-3x faster products and gradients measured).
        remaining = cache.order[keep[cache.order]]
        work.touched = remaining[ball[nodes[:, remaining]].any(0)]
        work.removed = (~keep).nonzero().view(-1)
        work.space = Region(ball, nodes[:, torch.cat([
            work.touched, work.removed])].reshape(-1), data.num_nodes,
            self._union)
        work.local = work.space.node_map[rows].to(device)
        work.rows_dev = rows.to(device)
        work.l2_old = self._l2_rows(data, work.rows_dev, dtype)
        # The new objective's.
        work.l2 = self._l2_rows(work.new_data, work.rows_dev, dtype)
        return work

    def _gradients(self, work: '_Work'):
        # The old objective's gradient at the model (its residual), the new
        # one's, and the request's influence, their difference: the direct
        # and spillover terms (unchanged examples cancel exactly).  Then
        # the step, and the right-hand side it solves with.
        config, dtype, emb = self.config, self.config.dtype, work.emb
        device, space, local = emb.device, work.space, work.local
        rows, rows_dev, l2 = work.rows, work.rows_dev, work.l2
        alpha = self.model.alpha
        prop_old, prop_new = (
            c.propagation(alpha, dtype).restrict(
                work.ball, space.node_map, space.size).to(device=device)
            for c in (work.cache, work.new_cache))
        work.prop_new = prop_new
        work.full_prop_new = work.new_cache.propagation(alpha, dtype, device)
        work.full_old = work.cache.propagation(alpha, dtype, device)(emb)
        final_old = space.gather(work.full_old)
        work.final_new = final_new = space.gather(work.full_prop_new(emb))
        work.loss_touched = loss_touched = self._loss(work.touched, dtype,
                                                      space)
        loss_removed = self._loss(work.removed, dtype, space)
        work.start = start = emb[rows_dev].clone()

        frozen_direct = loss_removed.grad(final_old)
        residual = prop_old(loss_touched.grad(final_old) + frozen_direct)[
            local] + work.l2_old * start
        new_grad = self._grad(prop_new, final_new, loss_touched)[local] + \
            l2 * start
        influence = (residual - new_grad if config.spillover else
                     prop_old(frozen_direct)[local])

        def read_horizon() -> Optional[Tensor]:
            if rows.numel() == 0:
                return None
            return (residual_horizon(residual, start) if self.horizon is None
                    else self.horizon[rows_dev].to(dtype))

        work.newton, work.horizon, work.stationarity, work.route_fallback = \
            choose_step(config, residual, influence, read_horizon)
        if not work.newton and config.expected_negatives and \
                self.examples.size(0) == 3 and work.removed.numel():
            influence = influence + prop_old(self._expected_direct(
                work.removed, work.full_old, space, frozen_direct))[local]

        work.before = new_grad
        zeroed, reset = work.zeroed, work.reset
        emb[zeroed.to(device)] = 0
        inside = space.node_map[zeroed]
        final_new[inside[inside >= 0].to(device)] = 0
        rhs = influence
        if reset.numel():
            shift = torch.zeros_like(final_new)
            is_reset = torch.isin(rows, reset).to(device)
            shift[local[is_reset]] = -emb[rows_dev[is_reset]]
            emb[rows_dev[is_reset]] = 0
            final_new += prop_new(shift)
            moved = self._grad(prop_new, final_new, loss_touched)[local] + \
                l2 * emb[rows_dev]
            # Kept rows: the influence, corrected for the reset rows'
            # coupling; reset rows: the new objective's pull from zero.
            rhs = influence - (moved - new_grad)
            rhs[is_reset] = -moved[is_reset]
            new_grad = moved
        if work.newton and config.gradient == GradientType.exact:
            rhs = -new_grad
        work.rhs = rhs

    def _curvature(self, work: '_Work'):
        # The curvature's region: the whole region, or (curvature_hops)
        # the ball of fewer hops and the examples touching it.
        config, data, device = self.config, self.data, work.emb.device
        cdt, tracer, nodes = config.curvature_dtype, work.cache.tracer, \
            work.cache.nodes
        work.hops = (self.num_hops if config.curvature_hops is None else
                     min(config.curvature_hops, self.num_hops))
        if work.hops < self.num_hops:
            inner = tracer.k_hop(work.rows, work.hops)
            work.kept = kept = work.touched[inner[nodes[:, work.touched]]
                                            .any(0)]
            cspace = Region(inner, nodes[:, kept].reshape(-1),
                            data.num_nodes, self._union)
            work.c_prop = work.new_cache.propagation(
                self.model.alpha, config.dtype).restrict(
                    inner, cspace.node_map, cspace.size).to(
                        dtype=cdt, device=device)
            work.c_index = work.space.node_map[cspace.nodes].to(device)
            work.c_local = cspace.node_map[work.rows].to(device)
            work.curvature_loss = self._loss(kept, cdt, cspace)
        else:
            work.kept, work.c_prop, work.c_index, work.c_local = \
                work.touched, work.prop_new.to(cdt), None, work.local
            work.curvature_loss = self._loss(work.touched, cdt, work.space)

    def _solve(self, work: '_Work', diagnostics: Dict):
        # The step's solve(s); every step moves the rows and, within L
        # hops of them (all inside the ball), the final embeddings.
        config, emb, rows, rows_dev = self.config, work.emb, work.rows, \
            work.rows_dev
        cdt, local, l2, rhs = config.curvature_dtype, work.local, work.l2, \
            work.rhs
        final_new, prop_new = work.final_new, work.prop_new
        for step in range(config.newton_steps if work.newton else 1):
            if rows.numel() == 0:
                break
            if step > 0:
                rhs = -(self._grad(prop_new, final_new, work.loss_touched)[
                    local] + l2 * emb[rows_dev])
            c_final = (final_new if work.c_index is None else
                       final_new[work.c_index]).to(cdt)
            if work.newton:
                try:
                    step_vec, record = self._newton(
                        work.c_prop, c_final, work.c_local,
                        work.curvature_loss, emb[rows_dev], rhs.reshape(-1),
                        l2, work.stationarity)
                except SolverError as error:
                    raise SolverError(
                        f'{error}.  {self._newton_hint(work.stationarity)}',
                        error.diagnostics, error.solution) from None
            else:
                operator = PropagatedHessian(
                    work.c_prop, c_final, work.c_local, work.curvature_loss,
                    l2, gauss_newton=True, dtype=config.dtype)
                step_vec, record = trajectory_response(
                    operator, rhs.reshape(-1), work.horizon.reshape(-1),
                    config.solver.tol, config.solver.max_iter,
                    eps=torch.finfo(cdt).eps)
                record.curvature = HessianType.gauss_newton.value
            step_vec = step_vec.view(rows.numel(), -1)
            emb[rows_dev] += step_vec
            delta = torch.zeros_like(final_new)
            delta[local] = step_vec
            final_new += prop_new(delta)
            diagnostics['solver'].append(record)
        if work.c_index is not None and diagnostics['solver']:
            diagnostics['curvature_error'] = self._curvature_error(
                (prop_new.to(cdt), final_new.to(cdt), local,
                 self._loss(work.touched, cdt, work.space)),
                (work.c_prop, final_new[work.c_index].to(cdt), work.c_local,
                 work.curvature_loss), l2,
                (emb[rows_dev] - work.start).reshape(-1),
                diagnostics['solver'][-1].curvature)

    def _certify(self, work: '_Work', request: Request,
                 solver: List[SolverDiagnostics]) -> Certificate:
        emb, rows_dev = work.emb, work.rows_dev
        return self._certificate(
            request, work.newton, work.stationarity, solver,
            work.route_fallback,
            before=work.before,
            after=self._grad(work.prop_new, work.final_new,
                             work.loss_touched)[work.local] +
            work.l2 * emb[rows_dev],
            start=work.start, end=emb[rows_dev], full_old=work.full_old,
            full_new=self._full(work.final_new, work.space,
                                work.full_prop_new, emb))

    def prepare(self) -> 'IFRUnlearner':
        r"""Builds now what the unlearner keeps across requests (the
        tracer's CSR, the propagation matrices, the examples' node ids;
        see :class:`~torch_geometric_unlearn.graph.cache.GraphCache`),
        which the first request would otherwise build: e.g. when a
        deletion service loads the model.  Returns :obj:`self`."""
        cache = self._graph_cache()
        cache.propagation(self.model.alpha, self.config.dtype)
        cache.propagation(self.model.alpha, self.config.dtype,
                          self.model.embedding.weight.device)
        return self

    def _graph_cache(self) -> GraphCache:
        # The structures of the current graph, kept across requests.
        if self._cache is None or not self._cache.holds(self.data,
                                                        self.examples):
            self._cache = GraphCache(self.data, self.examples)
        return self._cache

    def _advance(self, request: Request):
        pending, self._next_cache = self._next_cache, None
        super()._advance(request)
        if pending is not None and pending[0] is request:
            pending[1].data, pending[1].examples = self.data, self.examples
            self._cache = pending[1]

    @staticmethod
    def _full(final: Tensor, space: Region, prop: LinearPropagation,
              emb: Tensor) -> Tensor:
        # P E on every node: the region's final embeddings, kept exact
        # through the update, where the region holds every node (on real
        # graphs it does), else one propagation.
        if space.size < prop.num_nodes:
            return prop(emb)
        return torch.empty_like(final).index_copy_(
            0, space.nodes.to(final.device), final)

    def _curvature_error(self, exact, truncated, l2, vec: Tensor,
                         curvature: str) -> float:
        # ||(A_truncated - A) v|| / ||A v|| for the step v: what
        # 'curvature_hops' changed in the operator, along the direction
        # that was taken (one product with the exact operator).
        gauss_newton = curvature == HessianType.gauss_newton.value
        products = [PropagatedHessian(*parts, l2, gauss_newton,
                                      self.config.dtype).matvec(vec)
                    for parts in (exact, truncated)]
        return float((products[1] - products[0]).norm() /
                     products[0].norm().clamp(min=1e-300))

    def _newton_hint(self, stationarity: float) -> str:
        # What to change when the Newton step fails.
        tol = self.config.stationary_tol
        if stationarity > tol:
            return (f"The Newton step assumes a minimum of the training "
                    f"objective, but this model is not at one (stationarity "
                    f"{stationarity:.3g} > {tol}, e.g. early-stopped): the "
                    f"default IFRUConfig(step='auto') takes the trajectory "
                    f"step there")
        return ("Raise SolverConfig(max_iter=...) or its damping, or check "
                "that 'l2' is the weight the model was trained with")

    def _certificate(self, request: Request, newton: bool,
                     stationarity: float, records,
                     route_fallback: Optional[str], before: Tensor,
                     after: Tensor, start: Tensor, end: Tensor,
                     full_old: Tensor, full_new: Tensor) -> Certificate:
        data = self.data
        edges = request.deleted_edges
        positives = torch.stack([edges[0], edges[1] - data.num_users])
        unseen = unseen_pairs(data, positives)
        last = records[-1] if records else None
        fallback = [f for f in (route_fallback,
                                last.fallback if last else None) if f]
        return Certificate(
            step='newton' if newton else 'trajectory',
            curvature=last.curvature if last else 'none',
            horizon=('infinite' if newton else
                     'residual' if self.horizon is None else 'optimizer'),
            stationarity=stationarity,
            solve_residual=last.residual if last else 0.0,
            solve_tol=self.config.solver.tol,
            products=sum(r.num_hvps for r in records),
            gradient_before=float(before.norm()),
            gradient_after=float(after.norm()),
            step_norm=float((end - start).norm() /
                            start.norm().clamp(min=1e-300)),
            forgotten_auc_before=forgotten_auc(full_old, positives, unseen,
                                               data.num_users),
            forgotten_auc_after=forgotten_auc(full_new, positives, unseen,
                                              data.num_users),
            fallback='; then '.join(fallback) or None,
            objective=self.objective_note)


class _Work:
    r"""What the phases of :meth:`IFRUnlearner._update` hand on: set by
    :meth:`~IFRUnlearner._trace` (the embedding copy, graph caches, rows,
    region), :meth:`~IFRUnlearner._gradients` (propagations, final
    embeddings, the step and its right-hand side) and
    :meth:`~IFRUnlearner._curvature` (the curvature's region)."""
