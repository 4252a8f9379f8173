r"""The configuration of
:class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner`, one for every
model, validated on construction by the checks of
:mod:`~torch_geometric_unlearn.influence.step`."""
import warnings
from dataclasses import dataclass, replace
from typing import Optional, Sequence, Union

import torch

from torch_geometric_unlearn.graph.pruning import PruningConfig
from torch_geometric_unlearn.influence import SolverConfig
from torch_geometric_unlearn.influence.step import (GradientType, HessianType,
                                                    StepType,
                                                    check_solve_options,
                                                    check_step_options,
                                                    coerce_enum)

__all__ = ['IFRUConfig', 'GenericIFRUConfig']


@dataclass
class IFRUConfig:
    r"""Configuration of
    :class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner`, validated on
    construction.  Most settings apply to every model; those marked
    *LightGCN and MF* apply to the structured curvature backend only, those
    marked *other models* to the autograd backend only, and the unlearner
    refuses a config that changes a setting its backend does not have.

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
        pruning (PruningConfig or str, optional): Which candidate rows to
            solve for, ranked by IFRU's importance (see
            :mod:`~torch_geometric_unlearn.graph.spillover`).  :obj:`None`
            disables pruning.  :obj:`'auto'` (default) drops the least
            important 10% for LightGCN and MF: on MovieLens-100K (2
            layers, 1% deleted, converged model) that gave parameter
            closure 0.79 against 0.90 unpruned.  For other models it keeps
            every candidate: on the d=4 test models, dropping the least
            important 10% lowered the score closure from 0.63 to 0.31
            (SAGE), 0.80 to 0.78 (GCN) and 0.70 to 0.70 (to_hetero), and
            saved at most 38% of the products.  On trained models with the
            trajectory step, :obj:`PruningConfig('threshold', 0.1)` (the
            request's ends: 1-33% of the nodes on MovieLens-100K and
            Last.fm) closed at most 0.03 less than these defaults on the
            forgotten and probe pairs against paired retrains, for every
            request kind and model measured, at 5-44% less time for GNNs;
            a Newton step on a converged model needs the wider rows (see
            the benchmark docs, "Fewer rows").
        extra_hops (int): The candidate rows lie within
            :obj:`num_hops + extra_hops` hops of the deleted edges.  The
            extra hop reaches the rows coupled to the changed embeddings
            through the loss (e.g. a deleted item's other users in MF).
        expected_negatives (str or bool): *LightGCN and MF.*  Which BPR
            gradients of the trajectory step are averaged over the negative
            sampler (:obj:`negative_sampler`), as a trainer that draws
            fresh negatives every epoch follows them, instead of taking
            each example's one frozen negative (see
            :mod:`~torch_geometric_unlearn.influence.expected`; the
            curvature keeps the frozen triples).  :obj:`'all'`
            (:obj:`True`): every example's; :obj:`'forgotten'`: the
            forgotten examples' only; :obj:`'none'` (:obj:`False`): none;
            :obj:`'auto'` (default): :obj:`'all'` where the kept examples
            times the items number at most :data:`EXPECTED_BUDGET`, else
            :obj:`'forgotten'`.  The forgotten examples' average costs
            little: on MovieLens-100K MF (1% random) the frozen negatives
            made the predicted score changes correlate only 0.46 with the
            paired retrain's; averaged, 0.91.  Every example's costs
            :math:`M \times I` sigmoids per gradient (:math:`M` examples,
            :math:`I` items: 1.2 s on MovieLens-100K, one thread) and
            removes the frozen negatives' noise from the spillover: on an
            own PyG loop's LightGCN-2 (MovieLens-100K, 1% random) it raised
            the closure of the request's users' other training pairs from
            -0.10 to 0.04 and of its probe pairs from 0.01 to 0.25; for
            its most popular item, of the item's users' other pairs from
            -0.96 to -0.03 (see the benchmark docs).
        expected_samples (int, optional): *LightGCN and MF.*  Where every
            example's gradient is averaged over the sampler
            (:obj:`expected_negatives`), the change of the kept examples'
            averaged gradient that a request causes is averaged over this
            many items drawn per group of user ids with a fixed seed, instead
            of every item (see
            :mod:`~torch_geometric_unlearn.influence.expected`); the
            gradient itself stays exact, and so does the change on the
            items whose rows carry most of it.  Its estimated relative
            standard error is reported as
            :obj:`diagnostics['change_error']`.  :obj:`None`: every item.
            On the package trainer's LightGCN-2 (MovieLens-100K and
            Last.fm, 1% random, 5 users, the most popular item) 512
            items changed no closure by more than 0.001 and made a request
            1.11-1.83x faster; on own loops the neighbours' closure fell
            by 0.00-0.02 (see the benchmark docs).
        curvature_negatives (int): *LightGCN and MF:* where every
            example's gradient is averaged over the sampler
            (:obj:`expected_negatives`), the trajectory step's curvature
            gives each example this many negatives (its own and others
            drawn from the sampler with a fixed seed), each weighted
            :math:`1/S`: one frozen negative makes the curvature noisy, and
            the step then moves the request's neighbours too far.  On an
            own loop's LightGCN-2 (MovieLens-100K, 1% random, three
            snapshots) the closure of the request's users' and items'
            other pairs rose from 0.12 with one negative to 0.20 with 4 and
            0.23 with 16 (0.24 with the sampler's exact average); the
            curvature products cost as many times more.  *Other models:* the
            curvature takes the first this many of each example's
            :obj:`sampled_negatives` (the gradients take them all).
        sampled_negatives (int): *Other models.*  Each BPR triple's frozen
            negative is joined by :obj:`sampled_negatives - 1` others drawn
            from the sampler (:obj:`negative_sampler`) as a fixed function
            of the pair, and its loss is averaged over them (see
            :func:`~torch_geometric_unlearn.influence.objectives.bpr_loss`):
            the gradients follow, on average, what a trainer that draws
            fresh negatives every epoch followed, and the curvature takes
            the first :obj:`curvature_negatives` of them.  Each gradient
            (product) costs about as many times more as it takes
            negatives.  On an own loop's GraphSAGE (Last.fm, a 1% random
            request, where retrains agree to 0.68) the single frozen
            negative closed 0.34 and -0.05 of the paired retrain's change
            and moved the request's neighbours the wrong way (-1.37,
            -1.75); 16 in the gradients and 4 in the curvature (the
            defaults), 0.70 and 0.70 (neighbours -0.01, -0.03) in 2.1 s
            against 0.68 s (the paired retrain: 9.8 s); 16 in both, 0.72
            and 0.71 in 6.0 s; 16 in the gradients
            and 1 in the curvature, 0.54 and 0.60 (see the benchmark
            docs).  :obj:`1`: the frozen negative alone.  Examples with
            labels or a loss of your own are left as given.
        negative_sampler (str, optional): Where the
            trainer drew its negatives from: :obj:`'unseen'` (uniformly
            among the items the user has no training pair with, as the
            package's trainers do) or :obj:`'all'` (uniformly among every
            item, as PyG's LightGCN example does).  :obj:`None` (default)
            takes the trainer's: :obj:`'unseen'`, or for
            :func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop`
            its :class:`~.recipe.Recipe`'s.  With :obj:`'unseen'`, a run
            without the request draws the forgotten pairs' items as
            negatives of their users, which the original run never did: the
            trajectory step takes that sampler's change in its gradient and
            curvature (:func:`~torch_geometric_unlearn.influence.expected.
            sampler_shift`; :obj:`diagnostics['sampler_shift']` is its norm
            relative to the rest of the influence; on a 1% request on
            MovieLens-100K, closure 0.83 instead of 0.72 against a paired
            retrain that draws those items).
        reset_unsupported (bool): Rows of nodes left only as sampled
            negatives (an item whose every interaction is forgotten)
            restart from zero before the step: all they learned from
            observations came from the forgotten interactions.  On
            MovieLens-100K MF, forgetting the most popular item, the step
            from the trained row flipped it (score -2.7 for its former
            users, paired retrain -0.9; closure 0.66); from zero it closed
            0.93.  So does the autograd backend (BPR triples): on an own
            loop's GraphSAGE the step from the trained row moved the
            item's forgotten scores 1.6-2.6 times as far as the paired
            retrain (closure -0.56 and 0.35), from zero 0.94; on an own
            loop's ``to_hetero`` recommender keeping the restarted rows
            at zero (as this backend did before) closed 0.47 and 0.65,
            stepping them from zero 0.83 and 0.82 (floor 0.81; see the
            benchmark docs).  (Nodes left in no example at all are set
            to their exact optimum, zero, in any case.)  *LightGCN and MF
            from* :func:`~torch_geometric_unlearn.unlearn.recipe.
            from_training_loop` *with Adam:* a restarted row's horizon is
            Adam's rule at the second moment its new gradients (only ever
            as a sampled negative) give, not the run's, which kept the
            row's popular past (:class:`~torch_geometric_unlearn.influence.
            horizon.AdamRule`; :obj:`diagnostics['restart_horizon']` is the
            factor): an own loop's most popular item closed 0.66 and 0.90
            of the paired retrain's change (MovieLens-100K, Last.fm,
            :obj:`lambda_reg` 1e-4), now 0.76 and 0.95.
        check_draws (bool): Where the step's right-hand side takes drawn
            negatives (BPR examples' frozen negatives not averaged over the
            sampler, and the other models' :obj:`sampled_negatives`), the
            certificate measures how much the update owes to that draw: the
            same request is solved again with every negative drawn anew,
            and :attr:`Certificate.draw_noise
            <torch_geometric_unlearn.unlearn.certificate.Certificate.
            draw_noise>` compares the two updates' moves of the request's
            neighbours.  The check costs about one more update; it is
            skipped where the right-hand side is the sampler's average
            (whose sample of items, :obj:`expected_samples`, reports its
            own error as :obj:`change_error`).  On 319 updates labelled
            against paired retrains it flagged 49 of the 92 bad ones
            (those whose frozen negatives or single sampled negative moved
            the neighbours the wrong way) and 12 of the 146 good ones; a
            GraphSAGE update takes 1.8x as long with it (see the benchmark
            docs).
        gradient (GradientType or str): Right-hand side of the Newton step:
            :obj:`'stationary'` (IFRU's form) or :obj:`'exact'`
            (:math:`-\nabla L(\theta; G', D')`); the two agree at a
            stationary point.
        hessian (HessianType or str): Curvature of the Newton step:
            :obj:`'exact'`; :obj:`'gauss_newton'`; or :obj:`'auto'`
            (default): Gauss-Newton where the stationarity test finds the
            model away from a minimum (the exact Hessian is indefinite
            there), else exact, falling back to Gauss-Newton when the exact
            solve fails (for other models: exact with that fallback).  The
            exact Hessian of the new objective is often indefinite at the
            old optimum of a nonlinear GNN (deleting edges changes GCN's
            normalisation and SAGE's means).  The trajectory step always
            uses Gauss-Newton, which is positive semi-definite wherever the
            model is.
        project_gauge (bool): *LightGCN and MF.*  Solve the Newton system
            off the rotation
            directions of the free rows (see :class:`GaugeProjection`).  The
            trajectory response is finite along them without it.
        newton_steps (int): Newton steps; later steps use the exact
            gradient at the updated parameters.
        solver (SolverConfig, optional): The Newton step's linear solver
            and its damping, tolerance and iteration cap; the trajectory
            step uses its :obj:`tol` and :obj:`max_iter` for Lanczos.  By
            default (:obj:`None`) CG to a relative residual of 1e-2: for
            LightGCN and MF undamped, at most 200 iterations (the L2 term
            and the gauge projection keep the system well posed); for other
            models with damping 1e-3, at most 300 iterations (the damping
            guards against the flat directions of output rotations when
            shared weights are free: scores and L2 are invariant under
            :math:`W \mapsto W R` for the last layer).
        num_hops (int, optional): *LightGCN and MF.*  Receptive field of
            the model; inferred from it by default (other models declare it
            in :class:`~torch_geometric_unlearn.models.LinkModel`).
        curvature_hops (int, optional): *LightGCN and MF.*  Keep the
            curvature (the Hessian or
            Gauss-Newton products of the solve) to the rows' own
            :obj:`curvature_hops`-hop ball: its propagation and the
            examples touching it, instead of the exact :obj:`num_hops`-hop
            region (:obj:`None`, the default).  The gradients and the
            certificate stay exact; the result reports
            :obj:`diagnostics['curvature_error']`, the truncated operator's
            relative error along the step taken.  With few solved rows
            (e.g. :obj:`PruningConfig('threshold', 1e-2)`) the products then
            cost what the rows touch, not the graph.  Where that ball still
            holds 90% of the region's examples or more, the truncation
            would save little and the exact region runs instead
            (:obj:`diagnostics['curvature_hops']` gives the hops used).
            Measured on MovieLens-100K (LightGCN-2, paired retrains):
            :obj:`0` with the 300 most important rows closed 0.78 / 1.00 of
            the forgotten pairs' score change (1% random / 5 users) against
            0.79 / 1.00 exact (see ``benchmarks/request_cost.py``).
        dtype (torch.dtype): Precision of the update and the solver's
            vectors (for LightGCN and MF the gradients run in
            :obj:`gradient_dtype`; for other models the products run in the
            model's own dtype).  Float64 by
            default: CG run wholly in float32 lost orthogonality on these
            ill-conditioned systems (on MovieLens-100K its true residual
            grew to 200x the right-hand side within 200 iterations).
        curvature_dtype (torch.dtype): *LightGCN and MF.*  Precision of
            the Hessian-vector
            products alone.  Float32 by default: on MovieLens-100K it made
            the solve 1.6x faster at the same closure (0.817 against 0.818)
            and iteration count (26 against 25).
        gradient_dtype (torch.dtype): *LightGCN and MF.*  Precision of
            the gradients, the influence and the propagations of a
            request.  The influence, the old objective's gradient minus
            the new one's, is formed from the change of the propagation and
            of every example's loss slope, never as a difference of the two
            gradients, so float32 (the default) keeps it to below 1e-6 of
            its size however small the request, where the difference of
            two float32 gradients loses more than 1e-3 of it once the
            change is 1e-5 of the embeddings (see the tests of
            :meth:`BilinearLoss.gradient_change` and
            :class:`PropagationChange`).  At a minimum the
            old gradient itself is a sum that cancels, so where the
            stationarity test in this precision cannot rule out the Newton
            step, the phase runs again in :obj:`dtype`.
        shared (bool or Sequence[str]): *Other models.*  Whether the
            shared (not node-indexed) parameters join the solve:
            :obj:`False`, :obj:`True` for all of them, or a list of their
            names as in :meth:`LinkModel.named_parameters`.  The default,
            :obj:`False`, is what the measurements support: on
            MovieLens-100K freeing the last layer or all shared weights
            helped on one seed and hurt on another (see the benchmark
            docs), and on the d=4 test models freeing them lowered SAGE's
            score closure from 0.63 to 0.10.  At a minimum, though (the
            Newton step), the retrain's move of the shared weights is what
            the rows alone leave open: for SAGE on MovieLens-100K at L2 300
            the default closed 0.05 of the score gap, :obj:`True` with
            :obj:`newton_steps=3` 0.99 (:obj:`to_hetero`: 0.59 and 0.99).  Rows
            alone also need only the examples within reach of the free rows.
            Models without node-indexed parameters (fixed features only) need
            :obj:`True`.
        region (bool): *Other models.*  Run the model, for every gradient
            and product, on the training pairs with an end in the
            :obj:`num_hops`-hop ball of the nodes the used examples score
            (exact for a model whose output at a node depends on its
            :obj:`num_hops`-hop neighbourhood and the degrees there, as
            GCN, SAGE, GAT and :func:`~torch_geometric.nn.to_hetero` models
            do); the result reports the ball's :obj:`region_nodes` and
            :obj:`region_edges`.  :obj:`False` runs the whole graph, for a
            model that reaches further (e.g. a virtual node or global
            pooling).
    """
    step: StepType = StepType.auto
    stationary_tol: float = 0.1
    spillover: bool = True
    pruning: Union[PruningConfig, str, None] = 'auto'
    extra_hops: int = 1
    expected_negatives: Union[str, bool] = 'auto'
    expected_samples: Optional[int] = 512
    curvature_negatives: int = 4
    sampled_negatives: int = 16
    negative_sampler: Optional[str] = None
    reset_unsupported: bool = True
    check_draws: bool = True
    gradient: GradientType = GradientType.stationary
    hessian: HessianType = HessianType.auto
    project_gauge: bool = True
    newton_steps: int = 1
    solver: Optional[SolverConfig] = None
    num_hops: Optional[int] = None
    curvature_hops: Optional[int] = None
    dtype: torch.dtype = torch.float64
    curvature_dtype: torch.dtype = torch.float32
    gradient_dtype: torch.dtype = torch.float32
    shared: Union[bool, Sequence[str]] = False
    region: bool = True

    def __post_init__(self):
        coerce_enum(self, 'gradient', GradientType)
        coerce_enum(self, 'hessian', HessianType)
        check_solve_options(self)
        check_step_options(self)
        for name in ('curvature_negatives', 'sampled_negatives'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise ValueError(f"'{name}' must be an int >= 1 "
                                 f"(got {value!r})")
        if self.expected_samples is not None and (
                isinstance(self.expected_samples, bool) or not isinstance(
                    self.expected_samples, int) or self.expected_samples < 2):
            raise ValueError(f"'expected_samples' must be an int >= 2 or "
                             f"None (got {self.expected_samples!r})")
        for name in ('num_hops', 'curvature_hops'):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or
                                      isinstance(value, bool) or value < 0):
                raise ValueError(f"'{name}' must be a non-negative int "
                                 f"(got {value!r})")
        if not isinstance(self.shared, bool) and (
                isinstance(self.shared, str) or not all(
                    isinstance(name, str) for name in self.shared)):
            raise ValueError(f"'shared' must be a bool or a list of "
                             f"parameter names (got {self.shared!r})")
        if isinstance(self.expected_negatives, bool):
            self.expected_negatives = ('all' if self.expected_negatives else
                                       'none')
        if self.expected_negatives not in EXPECTED:
            raise ValueError(f"'expected_negatives' must be one of "
                             f"{EXPECTED} or a bool (got "
                             f"{self.expected_negatives!r})")
        for name in ('spillover', 'reset_unsupported', 'check_draws',
                     'project_gauge', 'region'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"'{name}' must be a bool")
        if self.negative_sampler not in (None, 'unseen', 'all'):
            raise ValueError(f"'negative_sampler' must be 'unseen', 'all' or "
                             f"None (got {self.negative_sampler!r})")
        for name in ('dtype', 'curvature_dtype', 'gradient_dtype'):
            if getattr(self, name) not in (torch.float32, torch.float64):
                raise ValueError(f"'{name}' must be torch.float32 or "
                                 f"torch.float64 (got {getattr(self, name)})")

    def resolve(self, structured: bool) -> 'IFRUConfig':
        r"""This config for one curvature backend: :obj:`structured` for
        LightGCN and MF, else the autograd backend.  Fills in the
        backend's defaults (:obj:`pruning='auto'`, :obj:`solver=None`) and
        raises a :class:`ValueError` naming a setting the backend does not
        have that was changed from its default."""
        foreign = STRUCTURED_ONLY if not structured else AUTOGRAD_ONLY
        defaults = IFRUConfig()
        changed = [name for name in foreign
                   if getattr(self, name) != getattr(defaults, name)]
        if changed:
            which = ('LightGCN and MF' if not structured else
                     'models other than LightGCN and MF')
            raise ValueError(f"{changed} apply to {which} only")
        pruning, solver = self.pruning, self.solver
        sampler = self.negative_sampler
        if sampler is None:
            sampler = 'unseen'
        if pruning == 'auto':
            pruning = (PruningConfig('quantile', 0.1) if structured else
                       PruningConfig('none'))
        if solver is None:
            solver = (SolverConfig(method='cg', tol=1e-2, max_iter=200,
                                   damping=0.0) if structured else
                      SolverConfig(method='cg', tol=1e-2, max_iter=300,
                                   damping=1e-3))
        return replace(self, pruning=pruning, solver=solver,
                       negative_sampler=sampler)


#: The choices of IFRUConfig.expected_negatives.
EXPECTED = ('auto', 'all', 'forgotten', 'none')
#: Kept examples times items up to which expected_negatives='auto' averages
#: every example's gradient (MovieLens-100K: 1.2e8, Last.fm: 1.7e8).
EXPECTED_BUDGET = 2e8

#: Settings of the structured backend (LightGCN and MF) alone.
STRUCTURED_ONLY = ('expected_negatives', 'expected_samples',
                   'project_gauge',
                   'num_hops', 'curvature_hops', 'curvature_dtype',
                   'gradient_dtype')
#: Settings of the autograd backend (other models) alone.
AUTOGRAD_ONLY = ('shared', 'region', 'sampled_negatives')


def GenericIFRUConfig(*, exact_gradient: bool = False, **kwargs
                      ) -> IFRUConfig:
    r"""Deprecated: :class:`IFRUConfig` serves every model now.  Returns
    :obj:`IFRUConfig(**kwargs)`, with :obj:`exact_gradient=True` as
    :obj:`gradient='exact'`.  It goes in the next release."""
    warnings.warn("GenericIFRUConfig is deprecated: use IFRUConfig, which "
                  "serves every model (exact_gradient=True is "
                  "gradient='exact')", DeprecationWarning, stacklevel=2)
    if exact_gradient:
        kwargs.setdefault('gradient', GradientType.exact)
    return IFRUConfig(**kwargs)
