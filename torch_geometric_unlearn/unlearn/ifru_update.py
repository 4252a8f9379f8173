r"""One request's update by
:class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner`, as named
phases: :meth:`IFRUpdate.trace` (the rows to solve for and the region
their gradients and products need), :meth:`IFRUpdate.gradients` (the
influence, the stationarity test and the step's right-hand side),
:meth:`IFRUpdate.curvature` (the curvature's region),
:meth:`IFRUpdate.solve` and :meth:`IFRUpdate.certify`; :meth:`IFRUpdate.run`
runs them in turn and applies the result.
"""
import copy
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import remaining_data
from torch_geometric_unlearn.evaluation.metrics import unseen_pairs
from torch_geometric_unlearn.graph.cache import GraphCache
from torch_geometric_unlearn.graph.propagation import (LinearPropagation,
                                                       PropagationChange)
from torch_geometric_unlearn.graph.region import Region, affected_rows
from torch_geometric_unlearn.influence import (SolverDiagnostics, SolverError,
                                               trajectory_response)
from torch_geometric_unlearn.influence.bilinear import BilinearLoss
from torch_geometric_unlearn.influence.expected import (ExpectedBPR,
                                                        freed_triples,
                                                        sampler_shift)
from torch_geometric_unlearn.influence.curvature import (GaugeProjection,
                                                         ProjectedOperator,
                                                         PropagatedHessian)
from torch_geometric_unlearn.influence.horizon import (residual_horizon,
                                                       sampled_row_moment)
from torch_geometric_unlearn.influence.objectives import BatchL2
from torch_geometric_unlearn.influence.step import (GradientType, HessianType,
                                                    StepType, choose_step,
                                                    newton_hint,
                                                    solve_hessian)
from torch_geometric_unlearn.training.recorder import Snapshot
from torch_geometric_unlearn.unlearn.base import PhaseTimer
from torch_geometric_unlearn.unlearn.config import EXPECTED_BUDGET
from torch_geometric_unlearn.unlearn.certificate import (Certificate,
                                                         draw_noise,
                                                         forgotten_auc,
                                                         neighbour_pairs,
                                                         neighbour_shift,
                                                         pair_dots,
                                                         redrawn_negatives,
                                                         response_figures,
                                                         restarted)
from torch_geometric_unlearn.unlearn.request import Request

__all__ = ['IFRUpdate']


class IFRUpdate:
    r"""The update of one request: each phase sets the attributes the next
    one reads (the embedding copy, the graph caches, the rows and region,
    the propagations and final embeddings, the step and its right-hand
    side, the curvature's region).  Nothing of the unlearner or its model
    changes before :meth:`run` applies the finished update.

    Args:
        unlearner (IFRUnlearner): The unlearner, at the state the request
            applies to.
        request (Request): The validated request.
    """
    def __init__(self, unlearner, request: Request):
        self.unlearner, self.request = unlearner, request
        self.config, self.data = unlearner.config, unlearner.data
        self.examples, self.labels = unlearner.examples, unlearner.labels
        self.model, self.num_hops = unlearner.model, unlearner.num_hops
        self._shards, self._union, self._sum = (
            unlearner._shards, unlearner._union, unlearner._sum)
        self.cache = unlearner._graph_cache()
        # The trajectory response's own check (see response_figures).
        self.response: Dict[str, float] = {}
        # The sampler's shift on the whole graph by point and dtype: the
        # draw check's twin reads the update's (see _redrawn).
        self._shifts: Dict[Tuple[str, torch.dtype], Tensor] = {}

    def run(self) -> Tuple[Dict, Dict]:
        r"""Runs the phases and applies the update to the model; returns
        the timings and diagnostics of :meth:`Unlearner._update`."""
        request, lap = self.request, PhaseTimer()
        self.trace()
        lap('trace')
        self.gradients()
        lap('gradient')
        diagnostics = {
            'num_hops': self.num_hops,
            'direct_nodes': self.direct.numel(),
            'deleted_edges': request.deleted_edges.size(1),
            'changed_examples': self.unlearner._count(self.changed.numel()),
            'rows': self.rows,
            'solve_rows': self.rows.numel(),
            'solve_dim': self.rows.numel() * self.emb.size(1),
            'zeroed_rows': self.zeroed.numel(),
            'reset_rows': self.reset.numel(),
            'restart_horizon': self.restart_scale,
            'region_nodes': self.space.held,
            'region_examples': self.unlearner._count(self.touched.numel()),
            'step': 'newton' if self.newton else 'trajectory',
            'stationarity': self.stationarity,
            'route_fallback': self.route_fallback,
            'change_error': self.change_error,
            'sampler_shift': self.shift_ratio,
            'solver': [],
        }
        self.curvature()
        diagnostics['curvature_hops'] = self.hops
        diagnostics['curvature_examples'] = self.unlearner._count(
            self.kept.numel())
        self.solve(diagnostics)
        lap('solve')
        diagnostics['certificate'] = self.certify(diagnostics['solver'])
        lap('certificate')
        with torch.no_grad():
            self.model.embedding.weight.copy_(self.emb)
        self.new_trajectory = self._advanced_trajectory()
        lap('apply')
        return lap.timings, diagnostics

    def _advanced_trajectory(self) -> Optional[Tuple[Snapshot, ...]]:
        # The snapshots of the run this update stands for: each earlier one
        # moved by the deviation its segment reached (on the rows), nodes
        # left in no example at zero, the last one the updated table.
        trajectory = self.unlearner.trajectory
        if trajectory is None:
            return None
        deltas = self.deltas if self.segments else []
        out = []
        for k, snap in enumerate(trajectory[:-1]):
            param = snap.param.clone()
            if k < len(deltas):
                param[self.rows.to(param.device)] += deltas[k].to(param)
            param[self.zeroed.to(param.device)] = 0
            out.append(Snapshot(snap.step, param, snap.step_size))
        last = trajectory[-1]
        out.append(Snapshot(last.step, self.emb.to(last.param),
                            last.step_size))
        return tuple(out)

    def _loss(self, index: Tensor, dtype: torch.dtype,
              region: Region) -> BilinearLoss:
        return self.unlearner._loss(index, dtype, region.size,
                                    None if region.whole else
                                    region.node_map)

    @staticmethod
    def _grad(prop: LinearPropagation, final: Tensor, *losses) -> Tensor:
        # P is symmetric, so the gradient over E is P times that over F.
        return prop(sum(loss.grad(final) for loss in losses))

    def _l2_rows(self, data, rows: Tensor, dtype: torch.dtype
                 ) -> Union[float, Tensor]:
        # The L2 weight of each row [r, 1] for the objective on 'data'.
        l2 = self.unlearner.l2
        if not isinstance(l2, BatchL2):
            return l2
        triples = self.examples.size(0) == 3
        index = data.train_positive_index if triples else data.train_index
        weights = l2.weights(index, data.num_users, data.num_items,
                             sampled_negatives=triples)
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

    def _averaged(self) -> str:
        # Which examples a trajectory step would average over the negative
        # sampler (IFRUConfig.expected_negatives), resolved.
        config = self.config
        if self.examples.size(0) != 3 or config.step == StepType.newton:
            return 'none'
        if config.expected_negatives != 'auto':
            return config.expected_negatives
        work = self.unlearner._count(int(self.keep.sum())) * \
            self.data.num_items
        return 'all' if work <= EXPECTED_BUDGET else 'forgotten'

    def _expected(self, index: Tensor, samples: Optional[int] = None,
                  cache: Optional[GraphCache] = None) -> ExpectedBPR:
        # The BPR loss of the examples 'index' averaged over the trainer's
        # negative sampler on the graph of 'cache' (the request's by
        # default), on every node (it scores every item); its gradient
        # change over 'samples' items (IFRUConfig.expected_samples).
        sampler = self.config.negative_sampler
        known = ((cache or self.cache).known().to(self.emb.device)
                 if sampler == 'unseen' else None)
        return ExpectedBPR(self.examples[:2, index].to(self.emb.device),
                           self.data.num_users, self.data.num_items, known,
                           reduce=self._sum, samples=samples)

    def trace(self):
        # What the request touches: the rows to solve for (and to zero or
        # reset), and the region their gradients and products need.
        config, data, request = self.config, self.data, self.request
        self.emb = emb = self.model.embedding.weight.detach().to(
            config.dtype, copy=True)
        device, dtype = emb.device, config.dtype
        # Index bookkeeping stays on the CPU with the graph; products run
        # on the model's device.
        cache = self.cache
        nodes, tracer = cache.nodes, cache.tracer
        direct, self.changed, rows = affected_rows(
            tracer, request, nodes, data.num_users, self.num_hops,
            config.extra_hops, config.pruning, self._union)
        keep = request.example_mask
        self.new_data = remaining_data(data, request.train_mask)

        # Nodes left in no example have the exact optimum zero.  Nodes left
        # only as sampled negatives keep nothing they learned from
        # observations: they restart from zero and are solved for.
        covered = torch.zeros(data.num_nodes, dtype=torch.bool)
        covered[nodes[:, keep].reshape(-1)] = True
        observed = torch.zeros(data.num_nodes, dtype=torch.bool)
        observed[self.unlearner._observed(nodes, keep).reshape(-1)] = True
        if self._shards is not None:
            covered, observed = self._union(covered), self._union(observed)
        isolated, unsupported = ~covered, ~observed
        self.direct = direct
        self.zeroed = direct[isolated[direct]]
        reset = direct[unsupported[direct] & ~isolated[direct]]
        self.reset = reset if config.reset_unsupported else reset[:0]
        self.rows = rows = torch.unique(torch.cat([rows[~isolated[rows]],
                                                   self.reset]))

        # Everything below works on a region: the L-hop ball of the rows,
        # where propagation is exact, and the examples touching it (the
        # only ones the rows' gradient and curvature depend on).
        self.ball = ball = tracer.k_hop(rows, self.num_hops)
        # In the cache's item order: the products' scatters then write
        # to nearby rows (1.4-3x faster products and gradients measured).
        self.in_order = in_order = keep[cache.order] & ball[
            nodes[:, cache.order]].any(0)
        self.touched = cache.order[in_order]
        self.removed = (~keep).nonzero().view(-1)
        self.keep, self.expect, self._expected_losses = keep, False, None
        self.shift_ratio = None
        self.restart_root, self.restart_scale = None, None
        self.averaged = self._averaged()
        # The average of every example couples every user with every item:
        # its gradients need the whole graph.
        self.space = Region(ball, nodes[:, torch.cat([
            self.touched, self.removed])].reshape(-1), data.num_nodes,
            self._union, whole=True if self.averaged == 'all' else None)
        self.local = self.space.node_map[rows].to(device)
        self.rows_dev = rows.to(device)
        self.l2_old = self._l2_rows(data, self.rows_dev, dtype)
        # The new objective's.
        self.l2 = self._l2_rows(self.new_data, self.rows_dev, dtype)
        # Its products run in the dtype of the embeddings they are given.
        if self.space.whole:
            self.loss_touched = self.unlearner._whole_loss(cache).subset(
                in_order.to(device))
        else:
            self.loss_touched = self._loss(self.touched, dtype, self.space)
        self.new_cache = cache.advance(request.deleted_edges, self.new_data,
                                       self.examples[:, keep], keep)

    def gradients(self):
        # The old objective's gradient at the model (its residual), the
        # request's influence (the old minus the new objective's gradient:
        # the direct and spillover terms; unchanged examples cancel
        # exactly) and the new objective's gradient.  Then the step, and
        # the right-hand side it solves with.
        config = self.config
        dtype = (config.dtype if config.step == StepType.newton else
                 config.gradient_dtype)
        residual, influence = self._influence(dtype)
        rows, rows_dev, given = self.rows, self.rows_dev, \
            self.unlearner.horizon

        def read_horizon() -> Optional[Tensor]:
            if rows.numel() == 0:
                return None
            start = self.start.to(dtype)
            return (residual_horizon(residual, start) if given is None
                    else given[rows_dev].to(dtype))

        choice = choose_step(config, residual, influence, read_horizon)
        # The Newton step's test and right-hand side read the old gradient
        # where it cancels: wherever rounding the residual (100 ulps of the
        # terms it sums) could pick it, the phase runs in 'dtype'.
        scale = float(influence.norm())
        slack = (100 * torch.finfo(dtype).eps * self.scale / scale
                 if scale > 0 else float('inf'))
        if dtype != config.dtype and (
                choice[0] or choice[2] - slack <= config.stationary_tol):
            dtype = config.dtype
            residual, influence = self._influence(dtype)
            choice = choose_step(config, residual, influence, read_horizon)
        self.newton, self.horizon, self.stationarity, self.route_fallback = \
            choice
        if self.averaged != 'none' and not self.newton:
            # The trajectory step follows the trainer's average over its
            # negative sampler (IFRUConfig.expected_negatives).
            self.expect = True
            residual, influence = self._influence(dtype)
        trajectory = self.unlearner.trajectory
        self.segments = (not self.newton and trajectory is not None and
                         len(trajectory) > 1)
        self._right_hand_side(influence, dtype)
        self.restart_root = self._restart_moment()
        if self.restart_root is not None:
            old = self.horizon[self.is_reset]
            self.horizon = self._restarted(self.horizon, 1.0)
            self.restart_scale = float(
                (self.horizon[self.is_reset] / old).mean())

    def _restart_moment(self) -> Optional[Tensor]:
        # Adam's sqrt(v) that a run without the request keeps on the
        # restarted rows, [k, d]: each is an item without edges, only ever
        # a sampled negative now (see AdamRule); None where the horizon is
        # not the optimiser's rule.  At the restart point: the rows at
        # zero, the new graph.
        rule = self.unlearner._restart_rule
        if rule is None or self.newton or not self.is_reset.any() or \
                self.examples.size(0) != 3:
            return None
        data, emb, dtype = self.new_data, self.emb, self._dtype
        full = self.full_prop_new(emb.to(dtype))
        kept = self.examples[:2, self.keep].to(emb.device)
        users, items = kept[0], kept[1] + data.num_users
        drawable = torch.full((data.num_users, ), float(data.num_items),
                              dtype=dtype, device=emb.device)
        if self.config.negative_sampler == 'unseen':
            drawable -= torch.bincount(data.train_index[0],
                                       minlength=data.num_users).to(drawable)
        prob = 1 / drawable[users]
        # An item without edges reaches only its own output, by the
        # layer-0 weight.
        alpha = float(self.model.alpha[0])
        roots = []
        for row in self.rows_dev[self.is_reset].tolist():
            margin = (full[users] * (full[row] - full[items])).sum(1)
            grads = torch.sigmoid(margin).view(-1, 1) * alpha * full[users]
            roots.append(sampled_row_moment(grads, prob, rule.batch_size,
                                            self._sum).sqrt())
        return torch.stack(roots)

    def _restarted(self, horizon: Tensor, share: float) -> Tensor:
        # 'horizon' on the rows with the restarted rows' rebuilt from
        # their own second moments, for 'share' of the run's steps.
        horizon = horizon.clone()
        horizon[self.is_reset] = share * self.unlearner._restart_rule.horizon(
            self.restart_root).to(horizon)
        return horizon

    def _influence(self, dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
        # The residual and the influence on the rows at the model, in
        # 'dtype' (and what later phases read).
        self._dtype = dtype
        whole, region = self._changes(dtype)
        self.prop_old, self.prop_new = region.old, region.new
        self.full_prop_new = whole.new
        point = self._at(self.emb, dtype, whole, region)
        self.full_old, self.final_new = point['full_old'], point['final_new']
        self.start, self.kept_loss = point['start'], point['kept_loss']
        self.direct_grad = point['direct']
        self.change_error = getattr(self.kept_loss, 'change_error', None)
        self.new_grad = point['residual'] - point['influence']
        self.scale = point['scale']
        return point['residual'], point['influence']

    def _changes(self, dtype: torch.dtype):
        # The propagations before and after the request, and their
        # difference, on the whole graph and on the region.
        space, device, alpha = self.space, self.emb.device, self.model.alpha
        whole = PropagationChange.removing(
            self.cache.propagation(alpha, dtype, device),
            self.new_cache.propagation(alpha, dtype, device),
            self.request.deleted_edges)
        region = whole if space.whole else whole.restrict(*(
            c.propagation(alpha, dtype).restrict(
                self.ball, space.node_map, space.size).to(device=device)
            for c in (self.cache, self.new_cache)), self.ball,
            space.node_map, space.size)
        return whole, region

    def _at(self, emb: Tensor, dtype: torch.dtype,
            whole: PropagationChange, region: PropagationChange) -> Dict:
        # The old objective's gradient (residual) and the influence on the
        # rows for the embedding table 'emb' [N, d].  The influence is
        # (P - P')c + P'(dg + g_R) for the old and new propagations P, P',
        # the removed examples' gradient g_R, c = g_R + the kept ones' at
        # F = PE, and its change dg from F' = P'E: no two nearly equal
        # gradients are subtracted.
        space, local = self.space, self.local
        full_old, full_change = whole(emb.to(dtype))
        final_old = space.gather(full_old)
        change = space.gather(full_change)
        start = emb[self.rows_dev].clone()
        kept_loss = self.loss_touched
        if not self.expect:
            direct = self._loss(self.removed, dtype, space).grad(final_old)
        else:
            if self._expected_losses is None:
                self._expected_losses = (
                    self._expected(self.keep.nonzero().view(-1),
                                   self.config.expected_samples)
                    if self.averaged == 'all' else None,
                    self._expected(self.removed))
            if self.averaged == 'all':  # numbered as the whole graph
                kept_loss = self._expected_losses[0]
            # On the ball's rows: nothing else reaches the solved rows.
            direct = space.gather(self._expected_losses[1].grad(full_old))
            direct[~self.ball[space.nodes].to(direct.device)] = 0
        kept, kept_change = kept_loss.gradient_change(final_old, change)
        total, total_change = region(kept + direct)
        decay = (self.l2_old * start).to(dtype)
        residual = total[local] + decay
        influence = (total_change + region.new(
            kept_change + direct))[local] + (
                (self.l2_old - self.l2) * start).to(dtype)
        if not self.config.spillover:
            influence = region.old(direct)[local]
        if self.expect:  # read at the new objective's point, F' = P'E
            shift = self._sampler_shift(
                full_old - full_change,
                ('new', dtype) if emb is self.emb else None)
            if shift is not None:
                shift = region.new(shift)[local]
                self.shift_ratio = float(shift.norm() / influence.norm(
                    ).clamp(min=1e-300))
                influence = influence + shift
        return {'full_old': full_old, 'final_new': final_old - change,
                'start': start, 'kept_loss': kept_loss, 'direct': direct,
                'residual': residual, 'influence': influence,
                'scale': float(total[local].norm()) + float(decay.norm())}

    def _losing_pairs(self) -> Tensor:
        # The kept examples' pairs [2, k] whose user lost a pair.
        kept = self.examples[:2, self.keep]
        return kept[:, torch.isin(kept[0], self.request.pairs[0])]

    def _sampler_shift(self, full: Tensor,
                       key: Optional[Tuple[str, torch.dtype]] = None
                       ) -> Optional[Tensor]:
        # The kept examples' averaged gradient's excess over the one a run
        # without the request follows (sampler_shift: the request's items
        # become negatives their users can draw), at the final embeddings
        # 'full' [N, d], on the region's rows within the ball; None where
        # the sampler draws every item, or where the pairs of the
        # request's users times the items pass EXPECTED_BUDGET.  With a
        # 'key', kept in _shifts: it depends on the positive pairs alone,
        # not on the negatives the draw check's twin redraws.
        if self.config.negative_sampler != 'unseen':
            return None
        shift = self._shifts.get(key)
        if shift is None:
            losing = self._losing_pairs()
            if self.unlearner._count(losing.size(1)) * \
                    self.data.num_items > EXPECTED_BUDGET:
                return None
            shift = sampler_shift(full, losing, self.request.pairs,
                                  self.data.num_users,
                                  self.cache.known().to(full.device))
            if self._sum is not None:
                shift = self._sum(shift)
            if key is not None:
                self._shifts[key] = shift
        shift = self.space.gather(shift).clone()
        shift[~self.ball[self.space.nodes].to(shift.device)] = 0
        return shift

    def _freed_loss(self, dtype: torch.dtype) -> BilinearLoss:
        # The triples the new sampler draws and the old one never did
        # (freed_triples), weighted as in its average, on the region.
        triples, weight, _ = freed_triples(self._losing_pairs(),
                                           self.request.pairs,
                                           self.data.num_users,
                                           self.data.num_items,
                                           self.cache.known())
        space, device = self.space, self.emb.device
        return BilinearLoss(
            triples.to(device), None, self.data.num_users, space.size, dtype,
            None if space.whole else space.node_map.to(device), self._sum,
            weight=weight.to(device, dtype))

    def _right_hand_side(self, influence: Tensor, dtype: torch.dtype):
        # The zeroed and reset rows, and the right-hand side of the step,
        # in the solve's dtype.
        config, emb, space, local = self.config, self.emb, self.space, \
            self.local
        device, rows, rows_dev, l2 = emb.device, self.rows, self.rows_dev, \
            self.l2
        new_grad, final_new = self.new_grad, self.final_new
        zeroed, reset = self.zeroed, self.reset
        emb[zeroed.to(device)] = 0
        inside = space.node_map[zeroed]
        final_new[inside[inside >= 0].to(device)] = 0
        rhs = influence
        self.is_reset = is_reset = torch.isin(rows, reset).to(device)
        if reset.numel():
            shift = torch.zeros_like(final_new)
            shift[local[is_reset]] = -emb[rows_dev[is_reset]].to(dtype)
            emb[rows_dev[is_reset]] = 0
            moved_final = self.prop_new(shift)
            final_new += moved_final
            if isinstance(self.kept_loss, ExpectedBPR):
                # Only the reset rows' pull is read below (the trajectory
                # step: no Newton step takes averaged gradients), so the
                # gradient is wanted where the new propagation reaches
                # them (their own rows: they keep no edges) and its change
                # follows their few moved rows instead of a full pass.
                reach = self.prop_new(shift.ne(0).any(1, keepdim=True).to(
                    dtype)).ne(0).any(1).nonzero().view(-1)
                grad, grad_change = self.kept_loss.gradient_change(
                    final_new, moved_final, rows=reach)
                if self.kept_loss.change_error is not None:
                    self.change_error = max(self.change_error or 0.0,
                                            self.kept_loss.change_error)
            else:
                reach = None
                grad, grad_change = self.kept_loss.gradient_change(
                    final_new, moved_final)
            if self.shift_ratio is not None:
                # The reset rows' pull includes the new sampler's: their
                # former users now draw them as negatives.
                freed = self._sampler_shift(self._full(
                    final_new, space, self.full_prop_new, emb),
                    ('reset', dtype))
                if reach is not None:
                    outside = torch.ones(freed.size(0), dtype=torch.bool,
                                         device=freed.device)
                    outside[reach] = False
                    freed[outside] = 0
                grad = grad - freed
            moved = self.prop_new(grad)[local] + (l2 * emb[rows_dev]).to(
                dtype)
            # Kept rows: the influence, corrected for the reset rows'
            # coupling; reset rows: the new objective's pull from zero.
            rhs = influence - (self.prop_new(grad_change)[local] + (
                l2 * (emb[rows_dev] - self.start)).to(dtype))
            rhs[is_reset] = -moved[is_reset]
            new_grad = moved
        if self.newton and config.gradient == GradientType.exact:
            rhs = -new_grad
        self.before, self.rhs = self.new_grad, rhs.to(config.dtype)

    def curvature(self):
        # The curvature's region: the whole region, or (curvature_hops)
        # the ball of fewer hops and the examples touching it, unless that
        # keeps most of the examples: the products would then cost about
        # as much, and the error product more (MovieLens-100K: 99%).
        config, data, device = self.config, self.data, self.emb.device
        cdt, tracer, nodes = config.curvature_dtype, self.cache.tracer, \
            self.cache.nodes
        self.hops = (self.num_hops if config.curvature_hops is None else
                     min(config.curvature_hops, self.num_hops))
        if self.hops < self.num_hops:
            order = self.cache.order
            inner = tracer.k_hop(self.rows, self.hops)
            in_order = self.in_order & inner[nodes[:, order]].any(0)
            count = self.unlearner._count
            if count(int(in_order.sum())) >= Region.WHOLE * count(
                    self.touched.numel()):
                self.hops = self.num_hops
        if self.hops < self.num_hops:
            self.kept = kept = order[in_order]
            cspace = Region(inner, nodes[:, kept].reshape(-1),
                            data.num_nodes, self._union)
            self.c_prop = self.new_cache.propagation(
                self.model.alpha, cdt).restrict(
                    inner, cspace.node_map, cspace.size).to(device=device)
            self.c_index = self.space.node_map[cspace.nodes].to(device)
            self.c_local = cspace.node_map[self.rows].to(device)
            self.curvature_loss = (
                self.unlearner._whole_loss(self.cache).subset(
                    in_order.to(device)) if cspace.whole else
                self._loss(kept, cdt, cspace))
        else:
            self.kept, self.c_prop, self.c_index, self.c_local = \
                self.touched, self.prop_new.to(cdt), None, self.local
            self.curvature_loss = self.loss_touched
            count = config.curvature_negatives
            if self.averaged == 'all' and not self.newton and count > 1:
                # Numbered as the whole graph (see trace).
                self.curvature_loss = self.unlearner._curvature_loss(
                    self.cache, count).subset(self.in_order.repeat(
                        count).to(device))
            if self.shift_ratio is not None:
                # The new sampler's curvature on the freed items too (on
                # the curvature's own rows, fewer hops, it is left out).
                self.curvature_loss = [self.curvature_loss,
                                       self._freed_loss(cdt)]

    def solve(self, diagnostics: Dict, curvature_error: bool = True):
        # The step's solve(s); every step moves the rows and, within L
        # hops of them (all inside the ball), the final embeddings.  With
        # fewer curvature hops, 'curvature_error' also measures what they
        # changed (one exact product).
        config, emb, rows, rows_dev = self.config, self.emb, self.rows, \
            self.rows_dev
        cdt, local, l2, rhs = config.curvature_dtype, self.local, self.l2, \
            self.rhs
        final_new, prop_new = self.final_new, self.prop_new
        for step in range(config.newton_steps if self.newton else 1):
            if rows.numel() == 0:
                break
            if step > 0:
                rhs = -(self._grad(prop_new, final_new, self.loss_touched)[
                    local] + l2 * emb[rows_dev])
            c_final = (final_new if self.c_index is None else
                       final_new[self.c_index]).to(cdt)
            if self.newton:
                try:
                    step_vec, record = self._newton(
                        self.c_prop, c_final, self.c_local,
                        self.curvature_loss, emb[rows_dev], rhs.reshape(-1),
                        l2, self.stationarity)
                except SolverError as error:
                    raise SolverError(
                        f'{error}.  '
                        f'{newton_hint(self.stationarity, config)}',
                        error.diagnostics, error.solution) from None
            else:
                operator = PropagatedHessian(
                    self.c_prop, c_final, self.c_local, self.curvature_loss,
                    l2, gauss_newton=True, dtype=config.dtype)
                horizon, earlier = self.horizon, None
                if self.segments:
                    earlier, horizon = self._earlier_segments(diagnostics)
                    rhs = rhs - operator.matvec(earlier.reshape(-1)).view_as(
                        rhs)
                step_vec, record = trajectory_response(
                    operator, rhs.reshape(-1), horizon.reshape(-1),
                    config.solver.tol, config.solver.max_iter,
                    eps=torch.finfo(cdt).eps)
                self.response = response_figures(
                    rhs.reshape(-1), step_vec, horizon.reshape(-1))
                record.curvature = HessianType.gauss_newton.value
                if earlier is not None:
                    record.num_hvps += 1  # the product with 'earlier'
                    step_vec = step_vec + earlier.reshape(-1)
            step_vec = step_vec.view(rows.numel(), -1)
            emb[rows_dev] += step_vec
            delta = torch.zeros_like(final_new)
            delta[local] = step_vec.to(delta.dtype)
            final_new += prop_new(delta)
            diagnostics['solver'].append(record)
        if curvature_error and self.c_index is not None and \
                diagnostics['solver']:
            diagnostics['curvature_error'] = self._curvature_error(
                (prop_new.to(cdt), final_new.to(cdt), local,
                 self.loss_touched),
                (self.c_prop, final_new[self.c_index].to(cdt), self.c_local,
                 self.curvature_loss), l2,
                (emb[rows_dev] - self.start).reshape(-1),
                diagnostics['solver'][-1].curvature)

    def _earlier_segments(self, diagnostics: Dict) -> Tuple[Tensor, Tensor]:
        # The run's deviation at the end of each segment but the last, by
        # exponential Euler: within segment k the influence g_k, curvature
        # A_k and step size are the snapshot's, and the deviation d grows
        # by the trajectory response to g_k - A_k d over the segment's
        # horizon (exact for linear dynamics).  Returns it on the rows
        # (reset rows restart from zero in the last segment) and the last
        # segment's horizon; keeps every segment's deviation (deltas).
        config, rows, cdt = self.config, self.rows_dev, \
            self.config.curvature_dtype
        snapshots = self.unlearner.trajectory
        whole, region = self._changes(self._dtype)
        scale = self.unlearner._count(self.examples.size(1))
        delta = torch.zeros_like(self.start, dtype=config.dtype)
        self.deltas, previous = [], 0
        for snap in snapshots[:-1]:
            point = self._at(snap.param.to(self.emb.device, config.dtype),
                             self._dtype, whole, region)
            final = point['final_new']
            operator = PropagatedHessian(
                self.c_prop, (final if self.c_index is None else
                              final[self.c_index]).to(cdt), self.c_local,
                self.curvature_loss, self.l2, gauss_newton=True,
                dtype=config.dtype)
            rhs = point['influence'].to(config.dtype).reshape(-1)
            if self.deltas:
                rhs = rhs - operator.matvec(delta.reshape(-1))
            horizon = (snap.step - previous) * snap.step_size.to(
                self.emb.device, config.dtype)[rows] / scale
            step, record = trajectory_response(
                operator, rhs, horizon.reshape(-1), config.solver.tol,
                config.solver.max_iter, eps=torch.finfo(cdt).eps)
            record.curvature = HessianType.gauss_newton.value
            record.num_hvps += 1 if self.deltas else 0
            diagnostics['solver'].append(record)
            delta = delta + step.view_as(delta)
            self.deltas.append(delta)
            previous = snap.step
        delta = delta.masked_fill(self.is_reset.view(-1, 1), 0)
        last = snapshots[-1]
        horizon = (last.step - previous) * last.step_size.to(
            self.emb.device, config.dtype)[rows] / scale
        if self.restart_root is not None:
            horizon = self._restarted(horizon, (last.step - previous) /
                                      self.unlearner._restart_rule.steps)
        return delta, horizon

    def certify(self, records: List[SolverDiagnostics]) -> Certificate:
        data, emb, rows = self.data, self.emb, self.rows_dev
        edges = self.request.deleted_edges
        positives = torch.stack([edges[0], edges[1] - data.num_users])
        unseen = unseen_pairs(data, positives)
        full_new = self._full(self.final_new, self.space, self.full_prop_new,
                              emb)
        if self.shift_ratio is None:
            kept = self.kept_loss.grad(self.final_new)
        elif isinstance(self.kept_loss, ExpectedBPR):
            # Every example averaged (numbered as the whole graph): the new
            # sampler's average in one pass.
            kept = self._expected(self.keep.nonzero().view(-1),
                                  cache=self.new_cache).grad(self.final_new)
        else:  # the frozen triples, and the new sampler's change
            kept = (self.kept_loss.grad(self.final_new) -
                    self._sampler_shift(full_new))
        after = self.prop_new(kept)[self.local] + self.l2 * emb[rows]
        # The original parameters are still the model's.
        original = self.model.embedding.weight.detach().to(full_new.dtype)
        near = neighbour_pairs(self.new_data.train_positive_index,
                               self.request.pairs)
        scores = [pair_dots(final, near, data.num_users) for final in (
            self.full_old, self.full_prop_new(original), full_new)]
        noise = None
        if self.config.check_draws and self._takes_draws():
            noise = draw_noise(scores[0], scores[2], self._redrawn(near))
        last = records[-1] if records else None
        fallback = [f for f in (self.route_fallback,
                                last.fallback if last else None) if f]
        return Certificate(
            step='newton' if self.newton else 'trajectory',
            curvature=last.curvature if last else 'none',
            horizon=('infinite' if self.newton else 'residual'
                     if self.unlearner.horizon is None else 'optimizer'),
            stationarity=self.stationarity,
            solve_residual=last.residual if last else 0.0,
            solve_tol=self.config.solver.tol,
            products=sum(r.num_hvps for r in records),
            gradient_before=float(self.before.norm()),
            gradient_after=float(after.norm()),
            step_norm=float((emb[rows] - self.start).norm() /
                            self.start.norm().clamp(min=1e-300)),
            forgotten_auc_before=forgotten_auc(self.full_old, positives,
                                               unseen, data.num_users),
            forgotten_auc_after=forgotten_auc(full_new, positives, unseen,
                                              data.num_users),
            fallback='; then '.join(fallback) or None,
            objective=self.unlearner.objective_note,
            stationary_tol=self.config.stationary_tol,
            neighbour_shift=neighbour_shift(*scores),
            change_error=self.change_error,
            draw_noise=noise,
            restarted=restarted(positives, torch.cat([self.zeroed,
                                                      self.reset]),
                                data.num_users),
            **self.response)

    def _takes_draws(self) -> bool:
        # Whether the trajectory step's right-hand side took the BPR
        # examples' frozen negatives: all but the sampler's average of
        # every example.  (A Newton step's test found the model at the
        # minimum of these very triples: they are the objective, not a
        # draw from it.)
        return self.examples.size(0) == 3 and not self.newton and not (
            self.expect and self.averaged == 'all')

    def _redrawn(self, near: Tensor) -> Optional[Tensor]:
        # The scores of the pairs 'near' after the same request solved
        # with every frozen negative drawn anew (Certificate.draw_noise);
        # None if that solve fails.  The unlearner and its caches are left
        # as they are: the twin holds its own examples and their cache.
        cache, data = self.cache, self.data
        twin = copy.copy(self.unlearner)
        twin.examples = redrawn_negatives(
            self.examples[:2], 1, data.num_items, cache.known() if
            self.config.negative_sampler == 'unseen' else None)
        twin._cache = cache.redrawn(twin.examples)
        update = IFRUpdate(twin, self.request)
        update._shifts = self._shifts
        try:
            update.trace()
            update.gradients()
            update.curvature()
            # Only the step is read: no error figure for the twin.
            update.solve({'solver': []}, curvature_error=False)
        except SolverError:
            return None
        full = self._full(update.final_new, update.space,
                          update.full_prop_new, update.emb)
        return pair_dots(full, near, data.num_users)

    @staticmethod
    def _full(final: Tensor, space: Region, prop: LinearPropagation,
              emb: Tensor) -> Tensor:
        # P E on every node: the region's final embeddings, kept exact
        # through the update, where the region is numbered as the whole
        # graph (on real graphs it is), else one propagation.
        return final if space.whole else prop(emb.to(final.dtype))

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
