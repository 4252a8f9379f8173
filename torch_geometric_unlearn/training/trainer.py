r"""The reference trainer.

One trainer serves the first model, retraining from scratch and warm-start
retraining, so that unlearning and its baselines are compared on equal
terms.  It optimises the summed objective of
:mod:`~torch_geometric_unlearn.influence.objectives` divided by the number of
examples:

.. math::
    \frac{1}{|D|} \Big( \sum_{z \in D} \ell(z; \theta) + \frac{\lambda}{2}
    \lVert \theta \rVert^2 \Big),

estimated on mini-batches, with Adam and early stopping on a validation
metric.
"""
import copy
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN
from torch_geometric.utils import to_torch_csr_tensor
from tqdm.auto import tqdm

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       remaining_data,
                                                       sample_negatives)
from torch_geometric_unlearn.evaluation.metrics import evaluate
from torch_geometric_unlearn.influence.horizon import optimizer_horizon
from torch_geometric_unlearn.influence.objectives import (example_margin,
                                                          l2_penalty,
                                                          margin_loss)


class LossType(Enum):
    r"""The training loss."""
    bpr = 'bpr'  # BPR on (user, positive, negative) triples
    bce = 'bce'  # BCE on labelled (user, item) pairs


@dataclass
class TrainConfig:
    r"""Configuration of :func:`train`.

    Args:
        loss (LossType or str): :obj:`'bpr'` (negatives resampled every
            epoch) or :obj:`'bce'` (the data's labels; for implicit data one
            sampled negative per positive, labelled 0).
        l2 (float): Weight :math:`\lambda` of the L2 term on the *summed*
            loss.  About 1.0 suits d=64 embeddings on MovieLens-100K.
        lr (float): Adam learning rate.
        batch_size (int, optional): Examples per step; :obj:`None` means
            full-batch.
        max_epochs (int): Upper bound on epochs.
        patience (int): Evaluations without improvement of the validation
            metric before stopping.
        eval_every (int): Epochs between validation evaluations.
        k (int): Cut-off of the validation Recall@k.
        seed (int): Seed of initialisation, shuffling and negatives.  Runs
            with one seed agree to float precision; multi-threaded sparse
            products sum in varying order, so they agree bit for bit only
            with :obj:`torch.set_num_threads(1)`.
        progress (bool): Show a tqdm bar counting epochs, with the
            validation metric and the evaluations without improvement
            against :obj:`patience`; only on a terminal (tqdm's
            :obj:`disable=None`), and never with :obj:`False`.
    """
    loss: LossType = LossType.bpr
    l2: float = 1.0
    lr: float = 1e-3
    batch_size: Optional[int] = 2048
    max_epochs: int = 1000
    patience: int = 10
    eval_every: int = 1
    k: int = 20
    seed: int = 0
    progress: bool = True

    def __post_init__(self):
        try:
            self.loss = LossType(self.loss)
        except ValueError:
            raise ValueError(f"'loss' must be one of "
                             f"{[e.value for e in LossType]} "
                             f"(got {self.loss!r})") from None
        for name, low in (('l2', 0.0), ('lr', None)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not math.isfinite(value) or \
                    (value < low if low is not None else value <= 0):
                raise ValueError(f"'{name}' must be a finite number "
                                 f"{'>= 0' if low is not None else '> 0'} "
                                 f"(got {value!r})")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"'batch_size' must be positive or None "
                             f"(got {self.batch_size})")
        for name in ('max_epochs', 'patience', 'eval_every', 'k'):
            if getattr(self, name) < 1:
                raise ValueError(f"'{name}' must be at least 1 "
                                 f"(got {getattr(self, name)})")

    @property
    def metric(self) -> str:
        r"""Name of the early-stopping metric."""
        return f'recall@{self.k}' if self.loss == LossType.bpr else 'auc'


@dataclass
class TrainResult:
    r"""What :func:`train` returns.

    Args:
        epochs (int): Epochs run.
        best_epoch (int): Epoch of the restored best parameters.
        best_metric (float): Validation metric at :obj:`best_epoch`.
        metric (str): Name of that metric.
        wall_time (float): Seconds spent, evaluation included.
        examples (torch.Tensor): The fixed training examples of the restored
            model: for BPR the triples :obj:`[3, N]` (user, positive item,
            frozen negative item), for BCE the pairs :obj:`[2, N]`.
        labels (torch.Tensor, optional): Labels of BCE examples, :obj:`[N]`.
        history (List[Dict[str, float]]): One record per evaluation.
        horizon (torch.Tensor, optional): The run's horizon at the restored
            epoch, the shape of the embedding table: how far Adam could
            move each coordinate per unit of summed gradient (see
            :func:`~.influence.horizon.optimizer_horizon`).
            :class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner` takes
            it. :obj:`None` where Adam's steps were still sign-like (e.g. a run
            restored after its first epochs): the unlearner then reads a
            horizon off the stationarity residual.  From
            :func:`~torch_geometric_unlearn.training.link.train_link_model`,
            a dict of such tensors by node table name, for
            :class:`~.unlearn.generic.LinkIFRUnlearner`.
    """
    epochs: int
    best_epoch: int
    best_metric: float
    metric: str
    wall_time: float
    examples: Tensor
    labels: Optional[Tensor] = None
    history: List[Dict[str, float]] = field(default_factory=list)
    horizon: Optional[Union[Tensor, Dict[str, Tensor]]] = None


def epoch_bar(config: TrainConfig, desc: str) -> tqdm:
    r"""The tqdm bar of a training run.  Open-ended (:obj:`total=None`):
    early stopping decides the length, and a bar sized to
    :obj:`max_epochs` stopped at a few percent as if the run had crashed.
    Shown only on a terminal, and never if :obj:`config.progress` is
    :obj:`False`; erased when closed."""
    return tqdm(total=None, desc=desc, unit=' epochs', leave=False,
                disable=None if config.progress else True)


def show_patience(bar: tqdm, metric: str, value: float, best: float,
                  bad: int, patience: int):
    r"""Writes the last validation :obj:`value`, the :obj:`best` so far and
    the evaluations without improvement :obj:`bad` against
    :obj:`patience` (the run stops when they meet) on :obj:`bar`."""
    bar.set_postfix_str(f'{metric} {value:.4f} (best {best:.4f}), '
                        f'patience {bad}/{patience}')


def build_model(data: InteractionData, embedding_dim: int = 64,
                num_layers: int = 2) -> LightGCN:
    r"""PyG's :class:`~torch_geometric.nn.models.LightGCN` over the users and
    items of :obj:`data`; :obj:`num_layers=0` is matrix factorisation."""
    if num_layers < 0:
        raise ValueError(f"'num_layers' must be non-negative "
                         f"(got {num_layers})")
    if embedding_dim < 1:
        raise ValueError(f"'embedding_dim' (--dim) must be at least 1 "
                         f"(got {embedding_dim})")
    return LightGCN(data.num_nodes, embedding_dim, num_layers)


def adjacency(edge_index: Tensor, num_nodes: int,
              dtype: Optional[torch.dtype] = None) -> Tensor:
    r"""The graph as a torch CSR matrix, :obj:`[num_nodes, num_nodes]`.

    Message passing over CSR is several times faster than over
    :obj:`edge_index` on large graphs (sparse-dense products instead of
    gather-scatter).  Influence solves that need double backward use
    :obj:`edge_index` instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*Sparse.*')
        weight = torch.ones(edge_index.size(1), dtype=dtype,
                            device=edge_index.device)
        return to_torch_csr_tensor(edge_index, weight,
                                   size=(num_nodes, num_nodes))


def _examples(data: InteractionData, config: TrainConfig, forbidden: Tensor,
              gen: torch.Generator):
    if config.loss == LossType.bpr:
        pos = data.train_positive_index
        neg = sample_negatives(pos, data.num_items, forbidden, gen)
        return torch.cat([pos, neg.view(1, -1)]), None
    if data.train_label is not None:
        return data.train_index, data.train_label
    pos = data.train_index
    neg = sample_negatives(pos, data.num_items, forbidden, gen)
    index = torch.cat([pos, torch.stack([pos[0], neg])], dim=1)
    label = torch.cat([torch.ones(pos.size(1)), torch.zeros(pos.size(1))])
    return index, label.long()


def resolve_exclude(data: InteractionData, exclude: Optional[Tensor]):
    r"""The data left after :obj:`exclude` (training pairs :obj:`[2, k]`)
    and the excluded pairs' keys, for a paired run (see :func:`train`);
    :obj:`data` and :obj:`None` without :obj:`exclude`."""
    if exclude is None:
        return data, None
    data.check_pairs(exclude, 'exclude')
    dropped = pair_keys(exclude, data.num_items)
    return remaining_data(data, ~torch.isin(
        pair_keys(data.train_index, data.num_items), dropped)), dropped


def paired_stream(examples: Tensor, labels: Optional[Tensor],
                  batches: List[Tensor], dropped: Tensor,
                  stream: InteractionData,
                  gen: Optional[torch.Generator] = None):
    r"""One epoch of the original run's examples and batches without those
    of the excluded pairs (keys :obj:`dropped`), with batch ids into the
    kept examples: the example stream of a paired retrain.

    The original stream never draws an excluded pair's item as a negative
    of its user; a sampler on the remaining data does.  So with :obj:`gen`,
    each kept example's sampled negative is, with the probability that
    sampler gives them, :math:`D_u / (C_u + D_u)` for :math:`D_u` excluded
    pairs of its user :math:`u` and :math:`C_u` items :math:`u` had no pair
    with, one of those items instead, uniformly: the negatives then follow
    the sampler on the remaining data, and only those drawn from
    :obj:`gen` differ from the original stream.  (On MovieLens-100K, a 1%
    random request's paired retrain without this closed 0.70 of the change
    of the one with it on the forgotten pairs, where as many negatives
    redrawn at random closed 0.94: see the benchmark docs.)

    Returns:
        (torch.Tensor, torch.Tensor or None, List[torch.Tensor]): The
        kept examples, their labels and the non-empty batches.
    """
    kept = ~torch.isin(pair_keys(examples[:2], stream.num_items), dropped)
    sampled = labels is None or stream.train_label is None
    if labels is not None and stream.train_label is None:
        # Sampled BCE negatives follow their positive out.
        kept = kept.view(2, -1).all(0).repeat(2)
    new_id = torch.cumsum(kept, 0) - 1
    batches = [new_id[b[kept[b]]] for b in batches]
    examples = examples[:, kept]
    labels = None if labels is None else labels[kept]
    if gen is not None and sampled:
        examples = _freed_negatives(examples, labels, dropped, stream, gen)
    return examples, labels, [b for b in batches if b.numel()]


def _freed_negatives(examples: Tensor, labels: Optional[Tensor],
                     dropped: Tensor, stream: InteractionData,
                     gen: torch.Generator) -> Tensor:
    # The sampled negatives (BPR's third row, sampled BCE's pairs labelled
    # 0) of users with excluded pairs redrawn among those pairs' items with
    # the probability of paired_stream's docs.
    num_items = stream.num_items
    freed = torch.unique(dropped)
    freed_users = torch.div(freed, num_items, rounding_mode='floor')
    lost = torch.bincount(freed_users, minlength=stream.num_users)
    if labels is None:
        columns, row = torch.arange(examples.size(1)), 2
    else:
        columns, row = (labels == 0).nonzero().view(-1), 1
    users = examples[0, columns]
    known = torch.bincount(torch.unique(pair_keys(
        stream.train_index, num_items)) // num_items,
        minlength=stream.num_users)
    candidates = (num_items - known + lost)[users].clamp(min=1)
    draw = torch.rand(columns.numel(), generator=gen, dtype=torch.float64)
    swap = draw < lost[users].double() / candidates.double()
    if not bool(swap.any()):
        return examples
    columns, users = columns[swap], users[swap]
    # Uniform among the user's freed items, sorted by user.
    start = torch.searchsorted(freed_users, users)
    pick = (torch.rand(users.numel(), generator=gen) *
            lost[users]).long().clamp_(max=lost[users] - 1)
    examples = examples.clone()
    examples[row, columns] = freed[start + pick] % num_items
    return examples


def example_loss(emb: Tensor, examples: Tensor, labels: Optional[Tensor],
                 num_users: int) -> Tensor:
    r"""The summed loss of fixed examples given final embeddings: BPR for
    triples :obj:`[3, B]`, BCE for pairs :obj:`[2, B]` with labels."""
    return margin_loss(example_margin(emb, examples, num_users), labels)


def fixed_epochs(config: TrainConfig, epochs: int) -> TrainConfig:
    r""":obj:`config` changed to train exactly :obj:`epochs` epochs,
    validating only at the last so that its parameters are the ones kept.
    With :obj:`train(..., exclude=pairs)`, the original run's seed and
    :obj:`epochs=record.best_epoch`, this is the paired retrain of a
    request."""
    return replace(config, max_epochs=epochs, eval_every=epochs, patience=1)


def train(model: LightGCN, data: InteractionData,
          config: Optional[TrainConfig] = None,
          warm_start: bool = False,
          exclude: Optional[Tensor] = None) -> TrainResult:
    r"""Trains :obj:`model` on :obj:`data` with early stopping and restores
    the parameters of the best validation epoch.

    Args:
        model (LightGCN): The model; its node count must match
            :obj:`data.num_nodes`.
        data (InteractionData): The data; it needs a validation split.
        config (TrainConfig, optional): The configuration.
        warm_start (bool): Continue from the model's current parameters
            (e.g. on changed data) instead of re-initialising them.
        exclude (torch.Tensor, optional): Training pairs :obj:`[2, k]` to
            leave out.  The model trains and is validated on the remaining
            data, but draws the example stream of :obj:`data` (the same
            negatives and batch order, minus the examples of the excluded
            pairs, and with the excluded pairs' items drawn as negatives of
            their users as a sampler on the remaining data would, see
            :func:`paired_stream`): with the same seed and the original
            run's length
            (:obj:`config=fixed_epochs(config, record.best_epoch)`) this is
            the *paired retrain* of a deletion request, whose only
            difference from the original run is the request (see
            :class:`~.unlearn.baselines.PairedRetrainUnlearner`).  Early
            stopping applied again stops at another epoch, a second
            difference.

    Returns:
        TrainResult: Epochs, wall time, best metric and the frozen examples.
    """
    config = config or TrainConfig()
    check_model(model, data)
    weight = model.embedding.weight
    device = weight.device

    def setup(data: InteractionData) -> Tensor:
        return adjacency(data.edge_index.to(device), data.num_nodes,
                         weight.dtype)

    def batch_loss(adj: Tensor, examples: Tensor, labels: Optional[Tensor],
                   batch: Tensor) -> Tensor:
        batch = batch.to(device)
        return example_loss(model.get_embedding(adj),
                            examples.to(device)[:, batch],
                            None if labels is None else
                            labels.to(device)[batch], data.num_users)

    def validate(adj: Tensor, data: InteractionData) -> float:
        return evaluate(model, data, split='val', k=config.k,
                        adj=adj)[config.metric]

    return fit(model, data, config, list(model.parameters()),
               None if warm_start else model.reset_parameters, setup,
               batch_loss, validate,
               lambda optimizer, num: optimizer_horizon(optimizer, weight,
                                                        num),
               exclude)


def fit(model: torch.nn.Module, data: InteractionData, config: TrainConfig,
        params: List[Tensor], reset: Optional[Callable[[], None]],
        setup: Callable[[InteractionData], Any],
        batch_loss: Callable[..., Tensor],
        validate: Callable[[Any, InteractionData], float],
        horizon: Callable[[torch.optim.Optimizer, int], Any],
        exclude: Optional[Tensor] = None) -> TrainResult:
    r"""The training loop of :func:`train` and
    :func:`~torch_geometric_unlearn.training.link.train_link_model`: per
    epoch a fresh example stream (negatives, batch order; the original
    stream minus :obj:`exclude`'s examples for a paired run), Adam on the
    summed loss plus L2 scaled to a mean, early stopping on the validation
    metric, and the best epoch's parameters restored.

    Args:
        model (torch.nn.Module): The model.
        data (InteractionData): The data; it needs a validation split.
        config (TrainConfig): The settings.
        params (List[torch.Tensor]): The parameters Adam trains and L2
            weighs.
        reset (Callable, optional): Re-initialises the model, after the
            seed is set; :obj:`None` warm-starts.
        setup (Callable): Maps the training data (after :obj:`exclude`) to
            what the model trains on: its graph.
        batch_loss (Callable): :obj:`(graph, examples, labels, batch)` to
            the summed loss of the examples :obj:`batch` of the epoch.
        validate (Callable): :obj:`(graph, data)` to the validation metric.
        horizon (Callable): :obj:`(optimizer, N)` to the run's horizon at
            the current parameters; a :class:`ValueError` records none.
        exclude (torch.Tensor, optional): Training pairs :obj:`[2, k]` to
            leave out (see :func:`train`).
    """
    if data.val_index is None or data.val_index.size(1) == 0:
        raise ValueError("'data' needs a validation split for early stopping")
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    if reset is not None:
        reset()
    stream = data
    forbidden = pair_keys(data.train_index, data.num_items).sort()[0]
    data, dropped = resolve_exclude(data, exclude)
    # The paired retrain's own draws (paired_stream), apart from the
    # stream's so that the rest of the stream is the original's.
    freed_gen = torch.Generator().manual_seed(config.seed)
    graph = setup(data)
    optimizer = torch.optim.Adam(params, lr=config.lr)

    best = (-float('inf'), 0, copy.deepcopy(model.state_dict()), None, None,
            None)
    history, bad, epoch = [], 0, 0
    bar = epoch_bar(config, f'train {data.name}')
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        examples, labels = _examples(stream, config, forbidden, gen)
        perm = torch.randperm(examples.size(1), generator=gen)
        batches = perm.split(config.batch_size or examples.size(1))
        if dropped is not None:
            examples, labels, batches = paired_stream(
                examples, labels, batches, dropped, stream, freed_gen)
        num = examples.size(1)
        for batch in batches:
            optimizer.zero_grad()
            loss = batch_loss(graph, examples, labels, batch)
            loss = (loss * num / batch.numel() +
                    l2_penalty(params, config.l2)) / num
            loss.backward()
            optimizer.step()
        bar.update(1)

        if epoch % config.eval_every:
            continue
        value = validate(graph, data)
        history.append({'epoch': epoch, config.metric: value})
        if value > best[0]:
            try:
                reading = horizon(optimizer, num)
            except ValueError:  # sign-like steps: no horizon to record
                reading = None
            best = (value, epoch, copy.deepcopy(model.state_dict()), examples,
                    labels, reading)
            bad = 0
        else:
            bad += 1
        show_patience(bar, config.metric, value, best[0], bad,
                      config.patience)
        if bad >= config.patience:
            break
    bar.close()
    model.load_state_dict(best[2])
    return TrainResult(epochs=epoch, best_epoch=best[1], best_metric=best[0],
                       metric=config.metric,
                       wall_time=time.perf_counter() - start,
                       examples=best[3], labels=best[4], history=history,
                       horizon=best[5])


def check_model(model: torch.nn.Module, data: InteractionData):
    r"""Raises a :class:`ValueError` unless :obj:`model` is a LightGCN-like
    model with one embedding row per node of :obj:`data`."""
    weight = getattr(getattr(model, 'embedding', None), 'weight', None)
    if weight is None or not hasattr(model, 'get_embedding'):
        raise TypeError(f"The reference trainer needs a LightGCN-like model "
                        f"with 'embedding' and 'get_embedding' (got "
                        f"{type(model).__name__})")
    if weight.size(0) != data.num_nodes:
        raise ValueError(f"The model has {weight.size(0)} embedding rows but "
                         f"the data has {data.num_nodes} nodes "
                         f"({data.num_users} users + {data.num_items} items)")
