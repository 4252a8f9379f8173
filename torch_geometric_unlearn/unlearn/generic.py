r"""IFRU for any PyG link predictor that follows the
:class:`~torch_geometric_unlearn.models.LinkModel` contract: GCN or SAGE
encoders with dot-product or MLP decoders, learned embeddings or fixed
features, and :func:`~torch_geometric.nn.to_hetero` recommenders.

The update is that of :mod:`~torch_geometric_unlearn.unlearn.ifru`,

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
import warnings
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (hashed_negative_rows,
                                                       pair_keys,
                                                       remaining_data)
from torch_geometric_unlearn.graph.region import affected_rows
from torch_geometric_unlearn.graph.tracer import SpilloverTracer
from torch_geometric_unlearn.influence import (ParameterSelection,
                                               SolverError,
                                               trajectory_response)
from torch_geometric_unlearn.influence.expected import freed_triples
from torch_geometric_unlearn.influence.gauss_newton import (
    CastOperator, GaussNewtonOperator, exact_hessian)
from torch_geometric_unlearn.influence.horizon import decay_rates, row_horizon
from torch_geometric_unlearn.influence.objectives import (
    ExampleLoss, ExampleObjective, weighted_bpr_loss)
from torch_geometric_unlearn.influence.step import (GradientType, HessianType,
                                                    choose_step, solve_hessian)
from torch_geometric_unlearn.models import LinkModel
from torch_geometric_unlearn.evaluation.metrics import unseen_pairs
from torch_geometric_unlearn.unlearn.base import PhaseTimer, check_examples
from torch_geometric_unlearn.unlearn.certificate import (Certificate, auc_of,
                                                         draw_noise,
                                                         neighbour_pairs,
                                                         neighbour_shift,
                                                         redrawn_negatives,
                                                         response_figures,
                                                         restarted)
from torch_geometric_unlearn.unlearn.request import Request

__all__ = ['LinkIFRUnlearner', 'GenericIFRUnlearner']
from torch_geometric_unlearn.unlearn.config import IFRUConfig
from torch_geometric_unlearn.unlearn.ifru import (IFRUnlearner,
                                                  LightGCNIFRUnlearner)


class LinkIFRUnlearner(IFRUnlearner):
    r"""The autograd backend of
    :class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner`, which picks
    it for any PyG link predictor but LightGCN (and for a LightGCN with a
    loss of your own): IFRU's influence update (direct and spillover
    influence, the stationarity test, the trajectory or Newton step) with
    autograd products through the model on the region's graph.

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
            (see :class:`ExampleObjective`), e.g. the frozen BPR triples,
            whose losses are averaged over sampled negatives as well
            (:obj:`IFRUConfig.sampled_negatives`, see
            :meth:`scored_examples`).
        labels (torch.Tensor, optional): Their labels :obj:`[M]`.
        l2 (float): Weight :math:`\lambda` of the L2 term on the summed
            loss, over all parameters.
        config (IFRUConfig, optional): The settings.
        copy_model (bool): Work on a deep copy.
        horizon (Dict[str, torch.Tensor], optional): The training run's
            horizon for the trajectory step, per parameter name (as in
            :meth:`LinkModel.named_parameters`), each of the parameter's
            shape: every node table, and every shared weight the config
            frees (see
            :func:`~.influence.horizon.optimizer_horizon`).
            Without it, a horizon per row is read off the stationarity
            residual.
        loss (ExampleLoss, optional): The summed loss; BPR or BCE by
            default.

    Example:

    .. code-block:: python

        link_model = LinkModel(model, data.num_users, data.num_items)
        unlearner = IFRUnlearner(link_model, data, record.examples,
                                 l2=1.0)
        result = unlearner.unlearn(pairs)
        graph = result.model.graph(result.data.train_positive_index)
        scores = result.model(graph, pairs)
    """
    method = 'ifru-generic'

    @staticmethod
    def _serves(model: torch.nn.Module, loss: Optional[ExampleLoss]) -> bool:
        # Every model the structured backend does not take.
        return not LightGCNIFRUnlearner._serves(model, loss)

    def __init__(self, model: Union[LinkModel, torch.nn.Module], data,
                 examples: Tensor, labels: Optional[Tensor] = None,
                 l2: Optional[float] = None,
                 config: Optional[IFRUConfig] = None,
                 copy_model: bool = True,
                 horizon: Optional[Dict[str, Tensor]] = None, *,
                 loss: Optional[ExampleLoss] = None, shards=None):
        if shards is not None:
            raise ValueError("'shards' needs the structured backend: "
                             "sharded examples are for LightGCN and MF")
        if config is not None and not isinstance(config, IFRUConfig):
            raise TypeError(f"'config' must be an IFRUConfig (got "
                            f"{type(config).__name__})")
        config = (config or IFRUConfig()).resolve(structured=False)
        if isinstance(model, torch.nn.Module) and \
                not isinstance(model, LinkModel):
            model = LinkModel(model, data.num_users, data.num_items)
        self._loss = loss
        self._scored: Optional[Tuple[Tensor, Tensor]] = None
        super().__init__(model, data, examples, labels, l2, copy_model)
        self.config = config
        self.shared = self._shared_names()
        if not self.model.node_params and not self.shared:
            raise ValueError(
                f"{type(self.model.model).__name__} has no node-indexed "
                f"parameters (tables with one row per user, item or node) "
                f"and no shared parameters were freed: nothing to solve "
                f"for.  Pass IFRUConfig(shared=True), or name the "
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

    def objective(self, index: Optional[Tensor] = None,
                  negatives: Optional[int] = None) -> ExampleObjective:
        r"""The :class:`ExampleObjective` of the current examples (or of the
        columns :obj:`index`), BPR triples with their sampled negatives
        (see :attr:`IFRUConfig.sampled_negatives`), or only the first
        :obj:`negatives` of them."""
        examples, labels = self.scored_examples(), self.labels
        if negatives is not None and examples.size(0) > 3:
            examples = examples[:2 + negatives]
        if index is not None:
            examples = examples[:, index]
            labels = None if labels is None else labels[index]
        return ExampleObjective(examples, labels, self._loss)

    def scored_examples(self) -> Tensor:
        r"""The examples as the objective scores them, :obj:`[m, M]`: BPR
        triples :obj:`[3, M]` joined by :obj:`sampled_negatives - 1` rows
        of negatives drawn from the sampler as a fixed function of each
        pair (so that every request, and every order of the examples, sees
        the same ones); other examples as given."""
        if self._scored is None or self._scored[0] is not self.examples:
            self._scored = (self.examples, self._draw(self.examples))
        return self._scored[1]

    def _draw(self, examples: Tensor) -> Tensor:
        count, data = self.config.sampled_negatives, self.data
        # (Triples with labels need a loss of their own: left as given.)
        if count == 1 or examples.size(0) != 3 or self._loss is not None:
            return examples
        return torch.cat([examples, hashed_negative_rows(
            examples[:2], data.num_items, self._forbidden(),
            range(1, count))])

    def _forbidden(self) -> Optional[Tensor]:
        # The sorted keys of the pairs the sampler avoids, if any.
        data = self.data
        return (pair_keys(data.train_index, data.num_items).sort()[0]
                if self.config.negative_sampler == 'unseen' else None)

    def _advance(self, request: Request):
        # The remaining examples keep the negatives drawn for them.
        scored = self.scored_examples()
        super()._advance(request)
        self._scored = (self.examples, scored[:, request.example_mask])

    def _update(self, request: Request) -> Tuple[Dict, Dict]:
        model = self.model
        was_training = model.training
        model.eval()  # The objective must be deterministic (no dropout).
        try:
            return self._step(request, PhaseTimer())
        finally:
            model.train(was_training)

    def _step(self, request: Request, lap: PhaseTimer) -> Tuple[Dict, Dict]:
        # The update, then its certificate (which may solve the request
        # again from the original parameters: see _redrawn).
        work = self._solve_request(request, lap)
        redrawn = (self._redrawn(request, self._state_before, work.near)
                   if self.config.check_draws and self._takes_draws() and
                   not work.newton else False)
        work.diagnostics['certificate'] = self._certify(work, redrawn)
        lap('certificate')
        return lap.timings, work.diagnostics

    def _takes_draws(self) -> bool:
        # Whether the gradients take drawn negatives: BPR triples' frozen
        # and sampled ones.  (_step skips a Newton step: its test found the
        # model at the minimum of these very triples, which are then the
        # objective, not a draw from it.)
        return self.examples.size(0) == 3 and self._loss is None

    def _redrawn(self, request: Request, original: Dict[str, Tensor],
                 near: Tensor) -> Optional[Tensor]:
        # The scores of the pairs 'near' after the same request solved
        # from the 'original' parameters with every negative drawn anew
        # (Certificate.draw_noise); None if that solve fails.  The model
        # keeps the update, and the examples their draws.
        model, scored = self.model, self._scored
        updated = _clone_state(model)
        self._scored = (self.examples, redrawn_negatives(
            self.examples[:2], self.config.sampled_negatives,
            self.data.num_items, self._forbidden()))
        try:
            model.load_state_dict(original)
            work = self._solve_request(request, PhaseTimer())
            with torch.no_grad():
                return model(model.graph(work.after.train_positive_index),
                             near)
        except SolverError:
            return None
        finally:
            model.load_state_dict(updated)
            self._scored = scored

    def _solve_request(self, request: Request, lap: PhaseTimer
                       ) -> '_LinkWork':
        # The phases IFRUpdate runs for LightGCN, here by autograd: trace
        # (rows and the region's graphs), gradient (the influence and the
        # step), solve, apply.
        work = self._trace(request)
        lap('trace')
        if work.selection is not None:
            self._gradients(work)
            work.start = work.selection.values().clone()
        lap('gradient')
        if not work.newton:
            self._zero_rows(work.zeroed)
            self._trajectory(work)
            lap('solve')
        for step in range(self.config.newton_steps
                          if work.selection and work.newton else 0):
            self._newton(work, step)
            lap('solve')
        self._zero_rows(work.zeroed)
        lap('apply')
        return work

    def _certify(self, work: '_LinkWork',
                 redrawn: Union[Tensor, None, bool]) -> Certificate:
        # The figures IFRUpdate.certify gives for LightGCN, by autograd on
        # the region's graph and by scoring through the model; 'redrawn'
        # the neighbours' scores of the check on the draws (False if it
        # did not run).
        config, records = self.config, work.diagnostics['solver']
        last = records[-1] if records else None
        selection = work.selection
        before = after = step_norm = 0.0
        if selection is not None:
            values = selection.values()
            before = float(work.new_gradient.norm())
            graph = work.new_graph
            parts = [work.objective] + list(work.freed or ())
            after = float((selection.gradient(lambda m: sum(
                part(m, graph) for part in parts)) + self.l2 * values).norm())
            step_norm = float((values - work.start).norm() /
                              work.start.norm().clamp(min=1e-300))
        with torch.no_grad():
            auc_after = self._forgotten_auc(work.after.train_positive_index,
                                            work.positives, work.unseen)
            near_after = self.model(self.model.graph(
                work.after.train_positive_index), work.near)
        fallback = [f for f in (work.diagnostics.get('route_fallback'),
                                last.fallback if last else None) if f]
        newton = work.diagnostics.get('step') == 'newton'
        return Certificate(
            step=work.diagnostics.get('step', 'none'),
            curvature=last.curvature if last else 'none',
            horizon=('infinite' if newton else 'optimizer'
                     if self.horizon is not None else 'residual'),
            stationarity=work.diagnostics.get('stationarity', 0.0),
            solve_residual=last.residual if last else 0.0,
            solve_tol=config.solver.tol,
            products=sum(r.num_hvps for r in records),
            gradient_before=before, gradient_after=after,
            step_norm=step_norm,
            forgotten_auc_before=work.auc_before,
            forgotten_auc_after=auc_after,
            fallback='; then '.join(fallback) or None,
            objective=self.objective_note,
            stationary_tol=config.stationary_tol,
            neighbour_shift=neighbour_shift(*work.near_scores, near_after),
            draw_noise=(None if redrawn is False else draw_noise(
                work.near_scores[0], near_after, redrawn)),
            restarted=restarted(work.positives, torch.cat([
                work.zeroed, work.reset]), self.data.num_users),
            **work.response)

    def _forgotten_auc(self, train_pairs: Tensor, pairs: Tensor,
                       unseen: Tensor) -> Optional[float]:
        # The forgotten pairs' scores against never-seen pairs of their
        # users, on the graph of 'train_pairs' (see forgotten_auc).
        if pairs.size(1) == 0 or unseen.size(1) == 0:
            return None
        scores = self.model(self.model.graph(train_pairs),
                            torch.cat([pairs, unseen], 1))
        return auc_of(scores[:pairs.size(1)], scores[pairs.size(1):])

    def _trace(self, request: Request) -> '_LinkWork':
        # The rows to solve for (and to zero), the examples in play and
        # the region's graphs they are scored on.
        config, data, model = self.config, self.data, self.model
        num_users, work = data.num_users, _LinkWork()
        examples = self.scored_examples()
        work.nodes = nodes = torch.cat([examples[:1],
                                        examples[1:] + num_users])
        tracer = SpilloverTracer(data.edge_index, data.num_nodes)
        direct, work.changed, rows = affected_rows(
            tracer, request, nodes, num_users, model.num_hops,
            config.extra_hops, config.pruning)
        work.request = request
        keep = request.example_mask
        work.after = after = remaining_data(data, request.train_mask)
        work.positives = request.pairs
        work.unseen = unseen_pairs(data, request.pairs)
        work.near = neighbour_pairs(after.train_positive_index,
                                    request.pairs)
        with torch.no_grad():
            work.auc_before = self._forgotten_auc(
                data.train_positive_index, work.positives, work.unseen)
            work.near_scores = [self.model(self.model.graph(pairs), work.near)
                                for pairs in (data.train_positive_index,
                                              after.train_positive_index)]

        # Nodes left without edges and examples only feel the L2 term on
        # their own rows: their optimum is zero.  (A node's own row reaches
        # other nodes only along its edges.)  With reset_unsupported, nodes
        # left without edges but still the triples' negatives restart from
        # zero, and the step fills them from what remains (the new
        # objective's pull from zero): all they learned from observations
        # came from the forgotten interactions (see IFRUConfig).
        no_edges = torch.ones(data.num_nodes, dtype=torch.bool)
        no_edges[after.edge_index.view(-1)] = False
        in_kept = torch.zeros(data.num_nodes, dtype=torch.bool)
        in_kept[nodes[:, keep].reshape(-1)] = True
        work.zeroed = zeroed = direct[no_edges[direct] & ~in_kept[direct]]
        work.reset = direct[:0]
        if config.reset_unsupported and self.examples.size(0) == 3:
            work.reset = direct[no_edges[direct] & in_kept[direct]]
        rows = torch.unique(torch.cat([rows[~(no_edges & ~in_kept)[rows]],
                                       work.reset]))

        work.selection = selection = self._selection(rows)
        # Only examples within reach of the free rows enter the gradients
        # and the Hessian; with free shared weights, all of them do.
        touching = torch.ones(nodes.size(1), dtype=torch.bool)
        if not self.shared:
            reach = tracer.k_hop(rows, model.num_hops)
            touching = reach[nodes].any(0)
        work.touching = touching
        remaining = (keep & touching).nonzero().view(-1)
        used = touching | ~keep
        used[work.changed] = True
        work.old_graph, work.new_graph, region = self._region_graphs(
            tracer, nodes[:, used].reshape(-1), after)
        work.objective = self.objective(remaining)
        work.curvature = self.objective(remaining,
                                        config.curvature_negatives)
        work.newton = True
        work.diagnostics = {
            'num_hops': model.num_hops,
            'direct_nodes': direct.numel(),
            'deleted_edges': request.deleted_edges.size(1),
            'changed_examples': work.changed.numel(),
            'solve_rows': rows.numel(),
            'shared_params': len(self.shared),
            'solve_dim': 0 if selection is None else selection.dim,
            'hessian_examples': remaining.numel(),
            'region_nodes': region[0],
            'region_edges': region[1],
            'zeroed_rows': zeroed.numel(),
            'reset_rows': work.reset.numel(),
            'solver': [],
        }
        return work

    def _gradients(self, work: '_LinkWork'):
        # The request's influence, and the step the stationarity test
        # picks.  Both need the old objective's gradient on the old graph
        # at the model: the influence that of the forgotten examples and
        # of the kept ones whose scores change, the test that of every
        # example touching the free rows (the others have none there).
        # One pass takes the former, a second the rest of the latter.  The
        # new objective's gradient is taken with the reset rows at zero:
        # theirs is their pull from zero, and the kept rows' influence
        # holds the change that restarting them makes.
        selection, request = work.selection, work.request
        keep, values = request.example_mask, selection.values()
        inside = ~keep
        kept_changed = work.changed[keep[work.changed]]
        if self.config.spillover:
            inside[kept_changed] = True
        old_inside = self._old_gradient(work, inside)
        residual = old_inside + self._old_gradient(work,
                                                   work.touching & ~inside)
        self._zero_rows(work.reset)
        reset = self._row_mask(selection, work.reset)
        new = torch.zeros(keep.numel(), dtype=torch.bool)
        if self.config.spillover:
            new[kept_changed] = True
        if work.reset.numel():
            new |= keep & torch.isin(work.nodes, work.reset).any(0)
        new_gradient = selection.zeros()
        if new.any():
            objective = self.objective(new.nonzero().view(-1))
            new_gradient = selection.gradient(
                lambda m: objective(m, work.new_graph))
        work.influence = (old_inside - new_gradient if self.config.spillover
                          else old_inside.clone())
        work.influence[reset] = -new_gradient[reset]
        work.newton, work.horizon, work.new_gradient = self._choose_step(
            selection, work.influence, residual, values, work.diagnostics)
        work.new_gradient[reset] = new_gradient[reset]
        # The new sampler (see _freed), for the trajectory step: a Newton
        # step's test found the model at the minimum of these very triples.
        work.freed = freed = None if work.newton else self._freed(request)
        work.diagnostics['sampler_shift'] = None
        if freed is not None:
            shift = selection.gradient(lambda m: sum(
                part(m, work.new_graph) for part in freed))
            work.diagnostics['sampler_shift'] = float(
                shift.norm() / work.influence.norm().clamp(min=1e-300))
            work.influence -= shift
            work.new_gradient += shift
            work.curvature = [work.curvature, freed[1]]

    def _freed(self, request: Request
               ) -> Optional[Tuple[ExampleObjective, ExampleObjective]]:
        # What the new objective adds where the sampler draws unseen items:
        # each sampled negative of a kept example whose user lost D pairs
        # is one of those items with probability q = D / (C + D) in a run
        # without the request (as IFRUpdate's sampler_shift for LightGCN):
        # the example's loss at weight -q, and the example with each freed
        # item at weight 1 / (C + D).  None where the sampler draws every
        # item, the examples are not BPR triples, or no kept example's user
        # lost a pair.
        if self._loss is not None or self.examples.size(0) != 3 or \
                self.config.negative_sampler != 'unseen':
            return None
        removed = request.pairs
        index = (request.example_mask & torch.isin(
            self.examples[0], removed[0])).nonzero().view(-1)
        if index.numel() == 0:
            return None
        data = self.data
        triples, weight, which = freed_triples(
            self.examples[:2, index], removed, data.num_users,
            data.num_items, self._forbidden())
        rate = torch.zeros(index.numel(), dtype=weight.dtype).index_add_(
            0, which, weight)
        return (ExampleObjective(self.scored_examples()[:, index],
                                 loss=weighted_bpr_loss(-rate)),
                ExampleObjective(triples, loss=weighted_bpr_loss(weight)))

    def _row_mask(self, selection: ParameterSelection, nodes: Tensor
                  ) -> Tensor:
        # Which entries of the selection's flat vector are rows of 'nodes'.
        masks = {}
        for name in selection.names:
            mask = torch.zeros_like(self.model.get_parameter(name),
                                    dtype=torch.bool)
            if name in self.model.node_params:
                mask[self.model.rows(name, nodes)] = True
            masks[name] = mask
        return selection.gather(masks)

    def _old_gradient(self, work: '_LinkWork', mask: Tensor) -> Tensor:
        # The summed loss's gradient on the free rows of the examples in
        # 'mask', on the old graph.
        index = mask.nonzero().view(-1)
        if index.numel() == 0:
            return work.selection.zeros()
        objective, graph = self.objective(index), work.old_graph
        return work.selection.gradient(lambda m: objective(m, graph))

    def _trajectory(self, work: '_LinkWork'):
        # The trajectory step: Lanczos on the Gauss-Newton matrix.
        config, selection = self.config, work.selection
        operator = CastOperator(GaussNewtonOperator(
            selection, work.curvature, work.new_graph, self.l2),
            config.dtype)
        try:
            delta, record = trajectory_response(
                operator, work.influence.to(config.dtype), work.horizon,
                config.solver.tol, config.solver.max_iter,
                eps=torch.finfo(selection.dtype).eps)
        finally:
            operator.release()
        record.curvature = HessianType.gauss_newton.value
        work.response = response_figures(work.influence, delta, work.horizon)
        selection.apply_(delta)
        work.diagnostics['solver'].append(record)

    def _newton(self, work: '_LinkWork', step: int):
        # One Newton step; later ones use the exact gradient at the
        # updated parameters.
        selection, objective, graph = (work.selection, work.objective,
                                       work.new_graph)
        if step == 0 and self.config.gradient == GradientType.stationary:
            grad = work.influence
        else:
            grad = -(selection.gradient(lambda m: objective(m, graph)) +
                     self.l2 * selection.values())
        # Zero only now: the stationary gradient is taken at theta*.
        self._zero_rows(work.zeroed)
        delta, record = self._solve(selection, work.curvature, graph,
                                    grad.to(self.config.dtype))
        selection.apply_(delta)
        work.diagnostics['solver'].append(record)

    def _region_graphs(self, tracer: SpilloverTracer, used: Tensor, after
                       ) -> Tuple[Any, Any, Tuple[int, int]]:
        # The old and new graphs cut to the training pairs with an end in
        # the L-hop ball of the nodes the used examples score: every node
        # in the ball keeps all its edges, so its degree and neighbourhood,
        # and with them every used score as a function of the parameters,
        # are those of the whole graph.  Returns the graphs and the ball's
        # (nodes, pairs of the old graph).
        model, data = self.model, self.data
        pairs, new_pairs = data.train_positive_index, \
            after.train_positive_index
        if not self.config.region:
            return (model.graph(pairs), model.graph(new_pairs),
                    (data.num_nodes, pairs.size(1)))
        ball = tracer.k_hop(torch.unique(used), model.num_hops)

        def cut(index: Tensor) -> Tensor:
            inside = ball[index[0]] | ball[index[1] + data.num_users]
            return index[:, inside]

        old = cut(pairs)
        return (model.graph(old), model.graph(cut(new_pairs)),
                (int(ball.sum()), old.size(1)))

    def _choose_step(self, selection: ParameterSelection, influence: Tensor,
                     old_gradient: Tensor, values: Tensor, diagnostics: Dict
                     ) -> Tuple[bool, Optional[Tensor], Tensor]:
        # The stationarity test of IFRUnlearner: the old objective's
        # gradient at the trained values against the request's influence.
        # Returns whether the Newton step runs, else the horizon, and the
        # new objective's gradient at the model.
        config = self.config
        residual = old_gradient + self.l2 * values

        def read_horizon() -> Tensor:
            if self.horizon is not None:
                return selection.gather(self.horizon).to(config.dtype)
            return self._horizon(selection, values, residual)

        newton, horizon, stationarity, route_fallback = choose_step(
            config, residual, influence, read_horizon)
        diagnostics.update(stationarity=stationarity,
                           route_fallback=route_fallback,
                           step='newton' if newton else 'trajectory')
        return newton, horizon, residual - influence

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
                inner = exact_hessian(selection, objective, graph, self.l2)
            else:
                inner = GaussNewtonOperator(selection, objective, graph,
                                            self.l2)
            return CastOperator(inner, self.config.dtype), rhs

        return solve_hessian(build, self.config.hessian, self.config.solver)

    def _selection(self, nodes: Tensor) -> Optional[ParameterSelection]:
        rows = {name: self.model.rows(name, nodes)
                for name in self.model.node_params}
        rows = {name: index for name, index in rows.items() if index.numel()}
        if not rows and not self.shared:
            return None
        return ParameterSelection(self.model, rows, self.shared)

    @torch.no_grad()
    def _zero_rows(self, nodes: Tensor):
        for name in self.model.node_params:
            index = self.model.rows(name, nodes)
            if index.numel():
                self.model.get_parameter(name)[index] = 0


def _clone_state(model: torch.nn.Module) -> Dict[str, Tensor]:
    return {name: value.detach().clone()
            for name, value in model.state_dict().items()}


class GenericIFRUnlearner(LinkIFRUnlearner):
    r"""Deprecated: :class:`~torch_geometric_unlearn.unlearn.ifru.
    IFRUnlearner` serves every model now and picks
    :class:`LinkIFRUnlearner` for this one.  Takes the arguments in the old
    order (:obj:`loss` before :obj:`config`); it goes in the next release.
    """
    def __init__(self, model, data, examples: Tensor,
                 labels: Optional[Tensor] = None, l2: Optional[float] = None,
                 loss: Optional[ExampleLoss] = None,
                 config: Optional[IFRUConfig] = None,
                 copy_model: bool = True,
                 horizon: Optional[Dict[str, Tensor]] = None):
        warnings.warn("GenericIFRUnlearner is deprecated: IFRUnlearner "
                      "serves every model and picks this backend for it",
                      DeprecationWarning, stacklevel=2)
        super().__init__(model, data, examples, labels, l2, config,
                         copy_model, horizon, loss=loss)


class _LinkWork:
    r"""What the phases of :meth:`LinkIFRUnlearner._update` hand on: set by
    :meth:`~LinkIFRUnlearner._trace` (the request, rows to zero, the free
    parameters, the examples in play: :obj:`touching` masks those within
    reach of the free rows, :obj:`changed` indexes those whose scores
    change; the region's graphs, the objectives, the diagnostics),
    :meth:`~LinkIFRUnlearner._gradients` (the influence, the step and its
    horizon) and :meth:`~LinkIFRUnlearner._trajectory` (the response's
    figures, see :func:`.certificate.response_figures`)."""
    response: Dict[str, float] = {}
