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
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.data.interactions import (hashed_negative_rows,
                                                       pair_keys)
from torch_geometric_unlearn.graph.cache import GraphCache
from torch_geometric_unlearn.graph.spillover import infer_num_hops
from torch_geometric_unlearn.influence.bilinear import BilinearLoss
from torch_geometric_unlearn.influence.horizon import (MAX_SIGNAL_SHARE,
                                                       AdamRule)
from torch_geometric_unlearn.influence.objectives import ExampleLoss
from torch_geometric_unlearn.training.recorder import (Snapshot,
                                                       TrajectoryRecorder)
from torch_geometric_unlearn.training.trainer import check_model
from torch_geometric_unlearn.unlearn.base import Unlearner, check_examples
from torch_geometric_unlearn.unlearn.config import IFRUConfig
from torch_geometric_unlearn.unlearn.distributed import (ShardError, Shards,
                                                         agree, digest,
                                                         settle,
                                                         shard_check)
from torch_geometric_unlearn.unlearn.ifru_update import IFRUpdate
from torch_geometric_unlearn.unlearn.ledger import (data_fingerprint,
                                                    model_fingerprint)
from torch_geometric_unlearn.unlearn.request import Request, RequestError


class IFRUnlearner(Unlearner):
    r"""Forgets interactions from a trained PyG recommender with IFRU's
    influence (direct and spillover), pruned to the most important rows and
    applied by the step that suits the model: the response of its own
    early-stopped training run, or the Newton step at a minimum (see
    :class:`~torch_geometric_unlearn.unlearn.config.IFRUConfig` and
    :mod:`~torch_geometric_unlearn.influence.horizon`).

    The curvature backend is chosen from the model, and the instance is
    the class of that backend:

    * PyG's :class:`LightGCN` (matrix factorisation is
      :obj:`LightGCN(num_layers=0)`): :class:`LightGCNIFRUnlearner`, with
      closed-form, autograd-free products in the space of final embeddings,
      the gauge projection, the per-request certificate, per-row L2 and
      sharded examples;
    * any other :class:`~torch_geometric_unlearn.models.LinkModel` or module
      (GCN, SAGE, :func:`~torch_geometric.nn.to_hetero`, your own), or a
      LightGCN with a :obj:`loss` of your own:
      :class:`~torch_geometric_unlearn.unlearn.generic.LinkIFRUnlearner`,
      with autograd products through the model on the region's graph.

    Rows of nodes left with no edge and no training example (e.g. a user
    who asked to be forgotten) are set to their exact optimum, zero,
    instead of being solved for.

    See :class:`~torch_geometric_unlearn.unlearn.base.Unlearner` for
    :obj:`model`, :obj:`data`, :obj:`examples`, :obj:`labels`, :obj:`l2`
    and :obj:`copy_model`.

    Args:
        config (IFRUConfig, optional): The settings, for either backend.
        horizon (torch.Tensor or Dict[str, torch.Tensor], optional): The
            training run's horizon :math:`\tau`.  For LightGCN a tensor of
            the embedding table's shape: what
            :func:`~torch_geometric_unlearn.training.trainer.train` records
            as :obj:`TrainResult.horizon`, or
            :func:`~.influence.horizon.optimizer_horizon` of your own
            optimiser.  For other models a dict of tensors by parameter name
            (see :class:`~torch_geometric_unlearn.unlearn.generic.
            LinkIFRUnlearner`).  Without it the trajectory step estimates a
            horizon per row from the stationarity residual, which closed
            less of the gap to retraining in the benchmarks.
        loss (ExampleLoss, optional): A summed loss of your own over the
            examples' scores (autograd backend only); BPR or BCE by
            default.
        trajectory (TrajectoryRecorder or Sequence[Snapshot], optional):
            LightGCN and MF only: snapshots of the training run, the last
            one at the model (see
            :mod:`~torch_geometric_unlearn.training.recorder`).  The
            trajectory step then follows the run a segment at a time, each
            with its snapshot's influence, curvature and step size (the
            horizon, if not given, is the last snapshot's).  After each
            request the snapshots move with the update.
        shards (Shards, optional): LightGCN and MF only: :obj:`examples` is
            this process's shard of the training examples, and the other
            ranks of the
            :class:`~torch_geometric_unlearn.unlearn.distributed.Shards`
            hold the rest: every sum over examples is all-reduced, and
            every rank applies the same requests to the same result (see
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

    def __new__(cls, *args, **kwargs):
        if cls is IFRUnlearner:
            model = args[0] if args else kwargs.get('model')
            # The backends are this class's direct subclasses (this
            # module's and generic's, which the package imports): so this
            # module needs no import of the one that builds on it.
            cls = next(backend for backend in IFRUnlearner.__subclasses__()
                       if backend._serves(model, kwargs.get('loss')))
        return super().__new__(cls)

    @staticmethod
    def _serves(model: torch.nn.Module, loss: Optional[ExampleLoss]) -> bool:
        # Whether IFRUnlearner(model, ..., loss=loss) builds this backend.
        return False


class LightGCNIFRUnlearner(IFRUnlearner):
    r"""The structured backend of :class:`IFRUnlearner`, for PyG's
    :class:`LightGCN` and MF: gradients and Hessian-vector products in the
    space of final embeddings, mapped by the linear propagation (see
    :mod:`~torch_geometric_unlearn.unlearn.ifru_update`), so message
    passing is never differentiated twice.  Every result carries a
    :class:`~torch_geometric_unlearn.unlearn.certificate.Certificate`.
    :class:`IFRUnlearner` picks it for a LightGCN; it takes the same
    arguments but :obj:`loss`.
    """
    method = 'ifru'
    per_row_l2 = True

    @staticmethod
    def _serves(model: torch.nn.Module, loss: Optional[ExampleLoss]) -> bool:
        return isinstance(model, LightGCN) and loss is None

    def __init__(self, model, data, examples, labels=None,
                 l2: Optional[float] = None,
                 config: Optional[IFRUConfig] = None,
                 copy_model: bool = True,
                 horizon: Optional[Tensor] = None, *,
                 shards: Optional[Shards] = None,
                 trajectory: Optional[Union[TrajectoryRecorder,
                                            Sequence[Snapshot]]] = None):
        if not isinstance(model, LightGCN):
            raise TypeError(f"LightGCNIFRUnlearner needs PyG's LightGCN "
                            f"(matrix factorisation is "
                            f"LightGCN(num_layers=0)), got "
                            f"{type(model).__name__}: IFRUnlearner picks "
                            f"the backend for other models")
        if shards is not None and not isinstance(shards, Shards):
            raise TypeError(f"'shards' must be a Shards (got "
                            f"{type(shards).__name__})")
        if config is not None and not isinstance(config, IFRUConfig):
            raise TypeError(f"'config' must be an IFRUConfig (got "
                            f"{type(config).__name__})")
        config = (config or IFRUConfig()).resolve(structured=True)
        self._shards = shards
        super().__init__(model, data, examples, labels, l2, copy_model)
        self.config = config
        self.num_hops = (infer_num_hops(self.model)
                         if self.config.num_hops is None else
                         self.config.num_hops)
        error = None
        try:
            self._check_horizon(horizon)
            self.trajectory = self._check_trajectory(trajectory)
        except (TypeError, ValueError) as e:
            if shards is None:
                raise
            error = e
        if shards is not None:
            # A rank that refuses its arguments stops every rank.
            settle(shards, error)
        if horizon is None and self.trajectory is not None:
            last = self.trajectory[-1]
            horizon = last.step * last.step_size / self._count(
                self.examples.size(1))
        self.horizon = horizon
        self._cache: Optional[GraphCache] = None
        # Adam's rule behind the horizon, for the restarted rows (set by
        # from_training_loop).
        self._restart_rule: Optional[AdamRule] = None
        self._next_cache: Optional[Tuple[Request, GraphCache, Optional[
            Tuple[Snapshot, ...]]]] = None
        if shards is not None:
            # Every rank must hold what decides the update, not only the
            # same data.
            agree(shards, {'the model': model_fingerprint(self.model),
                           "'l2'": digest(self.l2),
                           'the horizon': digest(self.horizon),
                           'the trajectory': digest(self.trajectory),
                           'the configuration': digest(self.config)})

    def _check_horizon(self, horizon: Optional[Tensor]):
        if horizon is None:
            return
        shape = tuple(self.model.embedding.weight.shape)
        if not isinstance(horizon, Tensor) or tuple(horizon.shape) != shape:
            raise ValueError(f"'horizon' must be a tensor of the embedding "
                             f"table's shape {list(shape)}")
        if not bool(torch.isfinite(horizon).all() & (horizon > 0).all()):
            raise ValueError("'horizon' must be finite and positive")

    def _check_trajectory(self, trajectory) -> Optional[Tuple[Snapshot,
                                                              ...]]:
        # The snapshots of the run, ending at the model.
        if trajectory is None:
            return None
        snapshots = tuple(trajectory.snapshots if isinstance(
            trajectory, TrajectoryRecorder) else trajectory)
        weight = self.model.embedding.weight.detach()
        if not snapshots or not all(isinstance(s, Snapshot)
                                    for s in snapshots):
            raise ValueError("'trajectory' must be a TrajectoryRecorder or "
                             "a sequence of Snapshots, at least one")
        steps = [s.step for s in snapshots]
        if any(b <= a for a, b in zip(steps, steps[1:])) or steps[0] < 1:
            raise ValueError(f"The snapshots' steps must rise from 1 or more "
                             f"(got {steps})")
        for s in snapshots:
            if s.param.shape != weight.shape or \
                    s.step_size.shape != weight.shape:
                raise ValueError(f"Every snapshot must hold the embedding "
                                 f"table's shape {list(weight.shape)}")
            if not bool((torch.isfinite(s.step_size) &
                         (s.step_size > 0)).all()):
                raise ValueError("Every snapshot's step size must be finite "
                                 "and positive")
        if snapshots[-1].signal is not None and \
                snapshots[-1].signal > MAX_SIGNAL_SHARE:
            raise ValueError(
                f"The run's last steps were sign-like (Adam's median share "
                f"of the gradient's square in its second moment "
                f"{snapshots[-1].signal:.2f} > {MAX_SIGNAL_SHARE}): its step "
                f"sizes do not predict how it responds; unlearn without the "
                f"trajectory (the horizon is then read off the gradient)")
        if not torch.equal(snapshots[-1].param.to(weight), weight):
            raise ValueError("The trajectory's last snapshot is not the "
                             "model: take one after the last step "
                             "(recorder.snapshot()), or after restoring the "
                             "best epoch's parameters, recorder.restore()")
        return snapshots

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

    def _resolve(self, interactions, users, items, edge_index) -> Tensor:
        if self._shards is None:
            return super()._resolve(interactions, users, items, edge_index)
        # A rank that refuses a request must not leave the others waiting.
        pairs, error = None, None
        try:
            pairs = super()._resolve(interactions, users, items, edge_index)
        except RequestError as e:
            error = e
        settle(self._shards, error)
        return pairs

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
        update = IFRUpdate(self, request)
        timings, diagnostics = update.run()
        # Taken up by _advance once the request has succeeded.
        self._next_cache = (request, update.new_cache, update.new_trajectory)
        return timings, diagnostics

    def prepare(self) -> 'LightGCNIFRUnlearner':
        r"""Builds now what the unlearner keeps across requests (the
        tracer's CSR, the propagation matrices, the examples' node ids and
        pair pattern; see
        :class:`~torch_geometric_unlearn.graph.cache.GraphCache`), which
        the first request would otherwise build: e.g. when a deletion
        service loads the model.  Returns :obj:`self`."""
        cache = self._graph_cache()
        cache.propagation(self.model.alpha, self.config.gradient_dtype)
        cache.propagation(self.model.alpha, self.config.gradient_dtype,
                          self.model.embedding.weight.device)
        self._whole_loss(cache)
        return self

    def _loss(self, index: Tensor, dtype: torch.dtype, num_nodes: int,
              node_map: Optional[Tensor] = None) -> BilinearLoss:
        # The loss of the examples 'index' on the model's device, on the
        # rows of a region (local ids from 'node_map') or of every node.
        device = self.model.embedding.weight.device
        labels = (None if self.labels is None else
                  self.labels[index].to(device))
        return BilinearLoss(
            self.examples[:, index].to(device), labels, self.data.num_users,
            num_nodes, dtype, None if node_map is None else
            node_map.to(device), self._sum)

    def _whole_loss(self, cache: GraphCache) -> BilinearLoss:
        # The loss of every example on the whole graph, in the cache's
        # order: its pattern serves every request whose region is the
        # whole graph (see Region), through BilinearLoss.subset.
        if cache.loss is None:
            cache.loss = self._loss(cache.order, self.config.dtype,
                                    self.data.num_nodes)
        return cache.loss

    def _curvature_loss(self, cache: GraphCache, count: int) -> BilinearLoss:
        # The examples of the cache's order, each with 'count' negatives:
        # its own, then count - 1 drawn from the sampler as a fixed
        # function of the pair (so that shards draw what one process
        # does); each weighted 1 / count (see
        # IFRUConfig.curvature_negatives).
        if cache.curvature is None or cache.curvature[0] != count:
            data, device = self.data, self.model.embedding.weight.device
            examples = self.examples[:, cache.order]
            known = (cache.known() if self.config.negative_sampler ==
                     'unseen' else None)
            blocks = [examples] + [torch.cat([examples[:2], row.view(1, -1)])
                                   for row in hashed_negative_rows(
                                       examples[:2], data.num_items, known,
                                       range(1, count))]
            cache.curvature = (count, BilinearLoss(
                torch.cat(blocks, 1).to(device), None, data.num_users,
                data.num_nodes, self.config.dtype, reduce=self._sum,
                weight=1 / count))
        return cache.curvature[1]

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
            self.trajectory = pending[2]
