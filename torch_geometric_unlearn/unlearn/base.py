r"""The :class:`Unlearner` base: state, request handling and transactions.

An unlearner wraps a trained recommender together with what it was trained
on: the interaction data (whose positive training pairs form the
message-passing graph) and the fixed training examples (the frozen BPR
triples or labelled BCE pairs of
:class:`~torch_geometric_unlearn.training.trainer.TrainResult`).  Each
:meth:`Unlearner.unlearn` call forgets some training interactions: it
validates the request, lets the algorithm update the parameters, and moves
the state (data, graph, examples) forward, all or nothing.
"""
import copy
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       remaining_data)
from torch_geometric_unlearn.graph.adjacency import as_form
from torch_geometric_unlearn.influence.objectives import BatchL2
from torch_geometric_unlearn.training.trainer import check_model
from torch_geometric_unlearn.unlearn.ledger import (Ledger, LedgerEntry,
                                                    data_fingerprint,
                                                    json_value,
                                                    model_fingerprint)
from torch_geometric_unlearn.unlearn.request import (Request, RequestError,
                                                     build_request, in_batch,
                                                     request_arguments,
                                                     resolve_pairs)


@dataclass
class UnlearnResult:
    r"""What :meth:`Unlearner.unlearn` returns.

    Args:
        model (torch.nn.Module): The updated model.  Predict with
            :obj:`data.edge_index`, the graph without the forgotten
            interactions.  It is the module the unlearner updates: PyG's
            :class:`LightGCN` itself for LightGCN and MF, the
            :class:`~torch_geometric_unlearn.models.LinkModel` (or
            :class:`~torch_geometric_unlearn.models.HeteroLinkModel`)
            wrapping any other model, whose own module is
            :obj:`result.model.model`.
        data (InteractionData): The data after the request.
        request (torch.Tensor): The forgotten user-item pairs,
            :obj:`[2, k]`, sorted and without duplicates, in item ids (as
            :obj:`data` holds them) whatever ids the request was given in.
        method (str): The algorithm.
        timings (Dict[str, float]): Wall-clock seconds per phase; the key
            :obj:`'total'` covers the whole call.
        diagnostics (Dict[str, Any]): Region sizes, solver records and so on.
        message (str): A note, e.g. that an empty request changed nothing.
        batch (List[torch.Tensor], optional): For
            :meth:`Unlearner.unlearn_batch`, the pairs :obj:`[2, k_b]` of
            each request of the batch, in order (a pair named by two
            requests appears in both; :attr:`request` holds it once).
        entry (LedgerEntry, optional): The request's entry in the
            unlearner's :attr:`~Unlearner.ledger` (none for an empty
            request, which changes nothing).
        adjacency_form (str): The form of :attr:`adj` (see
            :mod:`~torch_geometric_unlearn.graph.adjacency`): the unlearner's.
    """
    model: torch.nn.Module
    data: InteractionData
    request: Tensor
    method: str
    timings: Dict[str, float] = field(default_factory=dict)
    diagnostics: Dict[str, Any] = field(default_factory=dict)
    message: str = ''
    batch: Optional[List[Tensor]] = None
    entry: Optional[LedgerEntry] = None
    adjacency_form: str = 'edge_index'

    @property
    def edge_index(self) -> Tensor:
        r"""The message-passing graph after the request."""
        return self.data.edge_index

    @property
    def adj(self):
        r"""The message-passing graph after the request in the form the
        model was trained with (e.g. a :obj:`SparseTensor` :obj:`adj_t`
        for a model trained with :class:`~torch_geometric.transforms.
        ToSparseTensor`); :attr:`edge_index` by default."""
        return as_form(self.data.edge_index, self.adjacency_form,
                       self.data.num_nodes)

    @property
    def certificate(self):
        r"""The :class:`~.unlearn.certificate.Certificate` of
        the update, for unlearners that issue one (else :obj:`None`)."""
        return self.diagnostics.get('certificate')


class Unlearner:
    r"""Base class of unlearners.

    Subclasses implement :meth:`_update`, which changes the parameters of
    :attr:`model` for a validated :class:`Request` and returns diagnostics.

    Args:
        model (torch.nn.Module): The trained LightGCN-like model (one
            embedding row per user and item).
        data (InteractionData): The data it was trained on.
        examples (torch.Tensor): The fixed training examples: BPR triples
            :obj:`[3, M]` (user, positive item, negative item) or BCE pairs
            :obj:`[2, M]`, as
            :class:`~torch_geometric_unlearn.training.trainer.TrainResult`
            holds them.
        labels (torch.Tensor, optional): Labels of BCE examples, :obj:`[M]`.
        l2 (float): The L2 weight :math:`\lambda` on the summed loss used in
            training (:math:`\frac{\lambda}{2} \lVert \theta \rVert^2`);
            0 for an unregularised model.  Required: it changes the answer,
            so it is never assumed.  For a model from your own loop,
            :func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop`
            works it out from the loss as you wrote it.
            Unlearners with :attr:`per_row_l2` also take a
            :class:`~torch_geometric_unlearn.influence.objectives.BatchL2`:
            per-row weights that follow the data, as a mini-batch loop with
            per-batch regularisation implies.
        copy_model (bool): Work on a deep copy, leaving :obj:`model`
            untouched (the default: PyG's :class:`Explainer` also leaves
            the model alone); :obj:`False` updates it in place.
    """
    method = 'base'
    per_row_l2 = False  # accepts a BatchL2 as 'l2'
    #: The form results give the graph in (see :attr:`UnlearnResult.adj`);
    #: :func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop`
    #: sets it to the form the training loop used.
    adjacency_form = 'edge_index'
    #: Whether :meth:`unlearn`'s :obj:`interactions` and :obj:`items` take
    #: item *node* ids (offset by the number of users) rather than item
    #: ids; :func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop`
    #: sets it, so that every request form reads ids as the loop numbered
    #: them.  :obj:`edge_index` always takes node ids, :obj:`users` user ids.
    node_ids = False

    def __init__(self, model: torch.nn.Module, data: InteractionData,
                 examples: Tensor, labels: Optional[Tensor] = None,
                 l2: Optional[float] = None, copy_model: bool = True):
        if not (self.per_row_l2 and isinstance(l2, BatchL2)):
            check_l2(l2)
        self._check(model, data, examples, labels)
        for name, param in model.named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise ValueError(f"The model's parameter '{name}' holds NaN "
                                 f"or infinite values")
        self.model = copy.deepcopy(model) if copy_model else model
        self.data = data
        self.examples = examples
        self.labels = labels
        self.l2 = l2
        #: How the fixed objective was obtained (set by
        #: :func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop`);
        #: reported as :obj:`diagnostics['objective']`.
        self.objective_note: Optional[str] = None
        self._forgotten = torch.empty(0, dtype=torch.long)
        #: The :class:`~torch_geometric_unlearn.unlearn.ledger.Ledger` of the
        #: requests applied; assign a loaded one to continue it.
        self.ledger = Ledger()
        self._model_print: Optional[Tuple[Tuple, str]] = None

    @property
    def edge_index(self) -> Tensor:
        r"""The current message-passing graph."""
        return self.data.edge_index

    @property
    def adj(self):
        r"""The current message-passing graph in :attr:`adjacency_form`.
        """
        return as_form(self.data.edge_index, self.adjacency_form,
                       self.data.num_nodes)

    def unlearn(self, interactions: Optional[Tensor] = None, *,
                users: Optional[Tensor] = None,
                items: Optional[Tensor] = None,
                edge_index: Optional[Tensor] = None) -> UnlearnResult:
        r"""Forgets training interactions.

        Give one of: :obj:`interactions`, user-item pairs :obj:`[2, k]`
        with a pair per column as in PyG's :obj:`edge_label_index` (a
        :obj:`[2, 2]` tensor is refused: rows and columns of pairs look
        alike there), or a :obj:`(users, items)` tuple of two :obj:`[k]`
        tensors;
        :obj:`edge_index`, the same as homogeneous node pairs (items offset
        by the number of users, either orientation); :obj:`users` or
        :obj:`items`, ids :obj:`[n]` (a tensor, or a list of ints) whose
        every training interaction is forgotten.  Items are item ids, or
        item node ids where :attr:`node_ids` is set (an unlearner from
        :func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop`):
        then ids below the number of users are refused.  Duplicate pairs
        are merged.  An empty request changes nothing and says so.

        Raises:
            RequestError: If the request is malformed, names interactions
                that are not training interactions, or users or items
                without any.
            AlreadyForgottenError: If it names interactions forgotten
                before.

        On any error, including one of the algorithm, the model and the
        unlearner's state are exactly as before.
        """
        start = time.perf_counter()
        pairs = self._resolve(interactions, users, items, edge_index)
        return self._apply(pairs, start)

    def unlearn_batch(self, requests: Sequence[Union[Tensor, Mapping[
            str, Tensor]]]) -> UnlearnResult:
        r"""Forgets many pending requests in one update: one trace, one
        solve, one transaction.

        Each request is what :meth:`unlearn` takes: user-item pairs
        :obj:`[2, k]`, or a mapping with one of the keys
        :obj:`'interactions'`, :obj:`'users'`, :obj:`'items'` and
        :obj:`'edge_index'`.  Requests may overlap (a user's request and an
        item's); their union is forgotten once.  The update is that of one
        request holding the union, so it costs about one request's solve,
        not one per request.

        Returns:
            UnlearnResult: With :attr:`UnlearnResult.batch` the pairs of
            each request, and :obj:`diagnostics['batch']` their sizes.

        Raises:
            RequestError: If any request is malformed or names no training
                interactions (the message gives its position); nothing is
                changed, the other requests included.
            AlreadyForgottenError: If any request names interactions
                forgotten before.
        """
        start = time.perf_counter()
        if isinstance(requests, (Tensor, Mapping)) or not isinstance(
                requests, Sequence):
            raise RequestError("'requests' must be a sequence (list or "
                               "tuple) of requests")
        batch = []
        for position, spec in enumerate(requests):
            try:
                batch.append(self._resolve(**request_arguments(spec)))
            except RequestError as error:
                raise in_batch(error, position) from None
        num_items = self.data.num_items
        keys = torch.unique(torch.cat(
            [pair_keys(p, num_items) for p in batch] +
            [torch.empty(0, dtype=torch.long)]))
        if not bool(torch.isin(keys, pair_keys(self.data.train_index,
                                               num_items)).all()):
            # One membership test for the whole batch; on a failure, the
            # first request at fault is named with its own error.
            for position, pairs in enumerate(batch):
                try:
                    if pairs.size(1):
                        self._request(pairs)
                except RequestError as error:
                    raise in_batch(error, position) from None
        result = self._apply(torch.stack([keys // num_items,
                                          keys % num_items]), start)
        result.batch = batch
        result.diagnostics['batch'] = [p.size(1) for p in batch]
        return result

    def _apply(self, pairs: Tensor, start: float) -> UnlearnResult:
        # Forgets validated pairs [2, k], all or nothing.
        if pairs.size(1) == 0:
            return UnlearnResult(self.model, self.data, pairs, self.method,
                                 {'total': time.perf_counter() - start},
                                 message='empty request: nothing to forget',
                                 adjacency_form=self.adjacency_form)
        request = self._request(pairs)

        # One transaction: the parameters, and every attribute the update
        # or the advance replaces (data, examples, labels, the record of
        # forgotten pairs, caches), commit together or not at all.
        before = self._fingerprint()
        # Collective where processes share the request: before the
        # transaction, whose only collective after the update is the vote.
        stamp = self._stamp()
        backup = {k: v.detach().clone()
                  for k, v in self.model.state_dict().items()}
        attributes = dict(vars(self))
        # The parameters at the request's start, for an update that solves
        # it again (the certificate's check on the draws): the backup, not
        # a second copy.  Gone with the update, or with the rollback.
        self._state_before = backup
        voted = False
        try:
            timings, diagnostics = self._update(request)
            del self._state_before
            for name, param in self.model.named_parameters():
                if not torch.isfinite(param).all():
                    raise FloatingPointError(
                        f"{self.method} produced non-finite values in "
                        f"'{name}'")
            self._advance(request)
            after = model_fingerprint(self.model)
            entry = self.ledger.entry(
                pairs, self.method,
                {'config': json_value(getattr(self, 'config', None)),
                 'l2': json_value(self.l2)},
                _figures(diagnostics), before, after,
                data_fingerprint(self.data), *stamp)
            self.ledger = self.ledger.extended(entry)
            self._model_print = (self._model_key(), after)
            voted = True
            self._vote(True)
        except BaseException:
            if not voted:  # the others must not wait for this process
                self._vote(False, raise_=False)
            self.model.load_state_dict(backup)
            vars(self).clear()
            vars(self).update(attributes)
            raise

        if self.objective_note:
            diagnostics['objective'] = self.objective_note
        timings['total'] = time.perf_counter() - start
        return UnlearnResult(self.model, self.data, pairs, self.method,
                             timings, diagnostics, entry=entry,
                             adjacency_form=self.adjacency_form)

    def _vote(self, ok: bool, raise_: bool = True):
        r"""Where several processes apply one request together (see
        :mod:`~torch_geometric_unlearn.unlearn.distributed`), commits only if
        every one succeeded: raises unless all did.  Alone, nothing to agree
        on.
        """

    def _stamp(self) -> Tuple[Optional[str], Optional[str]]:
        # The request id and time of the ledger entry: fresh ones by
        # default (see Ledger.entry).
        return None, None

    def _model_key(self) -> Tuple:
        # Changes whenever any tensor of the model changes: in place, which
        # moves its version counter, or through .data, which does not but
        # moves its sum (one pass, far cheaper than hashing).
        return tuple((t.data_ptr(), t._version,
                      float(t.detach().double().sum()))
                     for t in self.model.state_dict().values())

    def _fingerprint(self) -> str:
        # The model's fingerprint, hashed again only if it changed since
        # the last request recorded it.
        key = self._model_key()
        if self._model_print is None or self._model_print[0] != key:
            self._model_print = (key, model_fingerprint(self.model))
        return self._model_print[1]

    def _check(self, model: torch.nn.Module, data: InteractionData,
               examples: Tensor, labels: Optional[Tensor]):
        r"""Raises unless the algorithm can work on :obj:`model` and
        :obj:`examples`; subclasses that accept other models override it."""
        check_model(model, data)
        check_examples(examples, labels, data)

    def _update(self, request: Request) -> Tuple[Dict[str, float], Dict]:
        r"""Updates :attr:`model` for :obj:`request`; returns timings per
        phase and diagnostics.  The base class undoes any change if it
        raises."""
        raise NotImplementedError

    def _advance(self, request: Request):
        r"""Moves the state past a request that succeeded: the remaining
        training pairs, graph and examples.  It runs inside the request's
        transaction; overrides must replace attributes, never change the
        objects they hold in place, so that a failure can restore them."""
        data = self.data
        self.data = remaining_data(data, request.train_mask)
        self.examples = self.examples[:, request.example_mask]
        if self.labels is not None:
            self.labels = self.labels[request.example_mask]
        self._forgotten = torch.cat(
            [self._forgotten,
             pair_keys(request.pairs, data.num_items)]).sort()[0]

    def _resolve(self, interactions, users, items, edge_index) -> Tensor:
        return resolve_pairs(self.data, self._forgotten, interactions, users,
                             items, edge_index, self.node_ids)

    def _request(self, pairs: Tensor) -> Request:
        return build_request(self.data, self.examples, self._forgotten,
                             pairs)


class PhaseTimer:
    r"""Wall time per named phase of an update: each call
    :obj:`timer(name)` adds the time since the previous call (or since
    construction) to :obj:`timings[name]`."""
    def __init__(self):
        self.timings: Dict[str, float] = {}
        self._clock = time.perf_counter()

    def __call__(self, name: str):
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self._clock
        self._clock = now


def _figures(diagnostics: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    # What a ledger entry records of an update: its certificate and the
    # sizes of what it solved over.
    certificate = diagnostics.get('certificate')
    sizes = {k: diagnostics[k] for k in ('solve_rows', 'region_nodes',
                                         'region_examples',
                                         'curvature_examples')
             if isinstance(diagnostics.get(k), int)}
    if certificate is None and not sizes:
        return None
    return dict(json_value(certificate) or {}, **sizes)


def check_l2(l2):
    r"""Raises a :class:`ValueError` unless :obj:`l2` is a stated, finite
    weight :math:`\geq 0`."""
    if l2 is None:
        raise ValueError(
            "State the L2 weight 'l2' of the summed training loss (0 for an "
            "unregularised model): it changes the answer.  With the "
            "package's trainer it is TrainConfig.l2; for PyG's "
            "recommendation_loss(lambda_reg=...) or your own loop use "
            "torch_geometric_unlearn.unlearn.recipe.from_training_loop")
    if isinstance(l2, bool) or not isinstance(l2, (int, float)) or \
            not 0 <= l2 < float('inf'):
        raise ValueError(f"'l2' must be a finite float >= 0 (got {l2!r})")


def check_examples(examples: Tensor, labels: Optional[Tensor],
                   data: InteractionData, cover: bool = True):
    r"""Raises a :class:`ValueError` unless :obj:`examples` are training
    examples of :obj:`data`: BPR triples :obj:`[3, M]` whose (user,
    positive) pairs are exactly the training pairs, or labelled pairs
    :obj:`[2, M]` covering every training pair (for implicit data, pairs
    labelled 0 are sampled negatives and must not be training pairs).
    With :obj:`cover=False` (a shard of the examples, see
    :mod:`~torch_geometric_unlearn.unlearn.distributed`) they need not cover
    every
    training pair."""
    if not isinstance(examples, Tensor) or examples.dtype != torch.long \
            or examples.dim() != 2 or examples.size(0) not in (2, 3):
        raise ValueError("'examples' must be a long tensor of BPR triples "
                         "[3, M] or BCE pairs [2, M]")
    if (examples.size(0) == 2) != (labels is not None):
        raise ValueError("BCE pairs [2, M] need 'labels'; BPR triples "
                         "[3, M] take none")
    if labels is not None and labels.shape != (examples.size(1), ):
        raise ValueError(f"'labels' must have shape [{examples.size(1)}]")
    if examples.size(1) == 0:
        raise ValueError("'examples' is empty")
    sizes = [('user', data.num_users)] + [('item', data.num_items)] * 2
    for row in range(examples.size(0)):
        kind, size = sizes[row]
        low, high = int(examples[row].min()), int(examples[row].max())
        if low < 0 or high >= size:
            hint = (f"; item ids offset by num_users={data.num_users}, as "
                    f"in PyG's edge_label_index?  Examples hold item ids "
                    f"in [0, num_items): subtract num_users"
                    if row and low >= data.num_users else '')
            raise ValueError(f"'examples' row {row} holds {kind} id "
                             f"{low if low < 0 else high}, outside "
                             f"[0, {size}){hint}")
    train = pair_keys(data.train_index, data.num_items)
    keys = pair_keys(examples[:2], data.num_items)
    known = torch.isin(keys, train)
    observed = torch.ones_like(known)
    if labels is not None and data.train_label is None and \
            bool(torch.isin(labels, labels.new_tensor([0, 1])).all()):
        observed = labels == 1
    stray = observed != known
    if stray.any():
        bad = examples[:2, stray][:, :3].t().tolist()
        raise ValueError(
            f"{int(stray.sum())} examples do not match the data's training "
            f"pairs, e.g. (user, item) {bad}: pass the examples the model "
            f"was trained on, for this data")
    missing = ~torch.isin(train, keys)
    if cover and missing.any():
        bad = data.train_index[:, missing][:, :3].t().tolist()
        raise ValueError(
            f"{int(missing.sum())} training pairs have no example, e.g. "
            f"(user, item) {bad}: the examples must cover every training "
            f"pair")
