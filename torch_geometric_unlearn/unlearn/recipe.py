r"""The front door for a model trained in your own loop, in PyG's
conventions.

Most recommenders are trained by a loop like PyG's LightGCN example:
a homogeneous :obj:`edge_index` with item ids offset by the number of
users, batches of training pairs, freshly drawn negatives, and
:meth:`LightGCN.recommendation_loss`:

.. code-block:: python

    for index in loader:  # batches of columns of train_edge_label_index
        pos = train_edge_label_index[:, index]
        neg = torch.stack([pos[0], torch.randint(
            num_users, num_users + num_items, (index.numel(), ))])
        edge_label_index = torch.cat([pos, neg], dim=1)
        pos_rank, neg_rank = model(edge_index, edge_label_index).chunk(2)
        loss = model.recommendation_loss(
            pos_rank, neg_rank, node_id=edge_label_index.unique(),
            lambda_reg=1e-4)
        ...

Influence functions need a fixed objective: a sum over fixed examples plus
an L2 term.  :func:`from_training_loop` builds it from what the loop used,
described by a :class:`Recipe`:

* the loss as written: BPR on (positive, negative) ranks as
  :meth:`~torch_geometric.nn.models.LightGCN.recommendation_loss` computes
  it, BCE with logits on labelled pairs, or your own callable;
* the regularisation as written, turned into the weights of the summed
  objective (:class:`~torch_geometric_unlearn.influence.objectives.BatchL2`):
  :obj:`recommendation_loss` adds :math:`\lambda_{\text{reg}} \lVert E
  \rVert^2 / B` to each batch of :math:`B`, so the summed objective's
  weight is :math:`2 \lambda_{\text{reg}} N / B` per row, or, with
  :obj:`node_id`, that times the share of batches holding the row;
* one frozen negative per training pair: the ones your last epoch drew, or
  drawn from a seed;
* the horizon of the run, from your optimiser (see
  :mod:`~torch_geometric_unlearn.influence.horizon`).

The unlearner says which of these it used in every result
(:obj:`result.diagnostics['objective']` and the certificate).  Unlearning
needs no test split.
"""
from dataclasses import dataclass, replace
from typing import Callable, Dict, Optional, Sequence, Union

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       sample_negatives)
from torch_geometric_unlearn.graph.adjacency import to_edge_index
from torch_geometric_unlearn.influence.horizon import (MAX_SIGNAL_SHARE,
                                                       adam_rule,
                                                       optimizer_horizon)
from torch_geometric_unlearn.influence.objectives import BatchL2
from torch_geometric_unlearn.models import LinkModel
from torch_geometric_unlearn.training.recorder import (Snapshot,
                                                       TrajectoryRecorder)
from torch_geometric_unlearn.unlearn.base import Unlearner
from torch_geometric_unlearn.unlearn.config import IFRUConfig
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner

__all__ = ['Recipe', 'from_training_loop']


@dataclass
class Recipe:
    r"""How the model was trained: the loss and regularisation exactly as
    your loop computed them for one batch.

    Args:
        loss (str or Callable): :obj:`'bpr'`: the mean BPR loss
            :math:`-\log \sigma(s_{\text{pos}} - s_{\text{neg}})` of
            PyG's :meth:`LightGCN.recommendation_loss` (and
            :class:`~torch_geometric.nn.models.lightgcn.BPRLoss`) over a
            batch of (positive, negative) pairs; :obj:`'bce'`:
            :func:`torch.nn.functional.binary_cross_entropy_with_logits`
            of labelled pairs; or your own callable, called as
            :obj:`loss(pos_rank, neg_rank)` (both :obj:`[B]`) when there
            are negatives and as :obj:`loss(scores, labels)` for labelled
            pairs, reduced over the batch by :obj:`reduction`.  A callable
            runs on the autograd backend
            (:class:`~.unlearn.generic.LinkIFRUnlearner`).
        lambda_reg (float): The :obj:`lambda_reg` of
            :obj:`recommendation_loss`: each batch adds
            :math:`\lambda_{\text{reg}} \lVert E \rVert^2 / B` over the
            embedding table (or over the rows :obj:`node_id`).  Required;
            0 if the loop added none.  PyG's default is :obj:`1e-4`.
        batch_size (int, optional): Training pairs per optimiser step;
            :obj:`None` for full-batch training.
        node_id (bool): Whether the loop passed
            :obj:`node_id=edge_label_index.unique()`, regularising only the
            nodes of each batch.
        weight_decay (float): The optimiser's (coupled) :obj:`weight_decay`,
            as in :class:`torch.optim.Adam`; it acts on every parameter.
            Decoupled decay (:class:`~torch.optim.AdamW`) is not modelled.
        reduction (str): :obj:`'mean'` or :obj:`'sum'`: how a callable
            :obj:`loss` reduces over the batch.
        negative_sampler (str): Where the loop drew each epoch's negatives
            from, for :obj:`'bpr'`: :obj:`'all'` (uniformly among every
            item, :obj:`torch.randint(num_users, num_users + num_items,
            ...)` as in PyG's example) or :obj:`'unseen'` (among the items
            the user has no training pair with).  The update follows the
            loss averaged over it (see
            :class:`~.unlearn.config.IFRUConfig`'s
            :obj:`expected_negatives` for LightGCN, :obj:`sampled_negatives`
            for other models).
    """
    loss: Union[str, Callable] = 'bpr'
    lambda_reg: Optional[float] = None
    batch_size: Optional[int] = None
    node_id: bool = False
    weight_decay: float = 0.0
    reduction: str = 'mean'
    negative_sampler: str = 'all'

    def __post_init__(self):
        if not callable(self.loss) and self.loss not in ('bpr', 'bce'):
            raise ValueError(f"'loss' must be 'bpr', 'bce' or a callable "
                             f"(got {self.loss!r}); for another loss pass "
                             f"a callable of the batch's scores")
        if self.lambda_reg is None:
            raise ValueError(
                "State 'lambda_reg', the regularisation your loss added "
                "(the lambda_reg of LightGCN.recommendation_loss, whose "
                "default is 1e-4; 0 if none): it changes the answer")
        if self.reduction not in ('mean', 'sum'):
            raise ValueError(f"'reduction' must be 'mean' or 'sum' "
                             f"(got {self.reduction!r})")
        if self.negative_sampler not in ('all', 'unseen'):
            raise ValueError(f"'negative_sampler' must be 'all' or 'unseen' "
                             f"(got {self.negative_sampler!r})")
        if not isinstance(self.node_id, bool):
            raise ValueError(f"'node_id' must be a bool: whether the loop "
                             f"passed node_id= (got {self.node_id!r})")
        self.l2  # validates the numbers

    @property
    def l2(self) -> BatchL2:
        r"""The per-row L2 weights of the summed objective."""
        return BatchL2(self.lambda_reg, self.batch_size, self.node_id,
                       self.weight_decay)

    def describe(self) -> str:
        r"""A one-line description for reports."""
        if callable(self.loss):
            loss = (f'{getattr(self.loss, "__name__", "callable")} '
                    f'({self.reduction} over the batch)')
        elif self.loss == 'bpr':
            loss = ('BPR (-log sigmoid(pos - neg), mean over the batch, as '
                    'LightGCN.recommendation_loss; negatives drawn from '
                    + ('every item' if self.negative_sampler == 'all' else
                       'the items the user has no pair with') + ')')
        else:
            loss = 'BCE with logits, mean over the batch'
        return f'{loss}, {self.l2.describe()}'


def from_training_loop(model: torch.nn.Module, edge_index: Tensor,
                       num_users: int, recipe: Recipe, *,
                       num_items: Optional[int] = None,
                       edge_label_index: Optional[Tensor] = None,
                       labels: Optional[Tensor] = None,
                       negatives: Union[int, Tensor] = 0,
                       optimizer: Optional[torch.optim.Optimizer] = None,
                       trajectory: Optional[Union[
                           TrajectoryRecorder, Sequence[Snapshot]]] = None,
                       config: Optional[IFRUConfig] = None,
                       copy_model: bool = True) -> Unlearner:
    r"""An unlearner for a model trained in your own loop, from the model,
    graph and loss as that loop used them.

    The unlearner is an
    :class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner`.  PyG's
    :class:`~torch_geometric.nn.models.LightGCN` (or MF,
    :obj:`num_layers=0`) with :obj:`'bpr'` or :obj:`'bce'` gets its
    structured backend (the trajectory step on early-stopped models,
    per-row L2 weights as :obj:`recipe.l2` gives them).  Any other model,
    or a callable loss, gets the autograd backend with the model wrapped
    as a :class:`~torch_geometric_unlearn.models.LinkModel` called as
    :obj:`model(edge_index, edge_label_index)`.

    Every request form reads ids as the loop numbered them (the
    unlearner's :attr:`~.base.Unlearner.node_ids` is set): users
    :obj:`0 .. num_users - 1`, items offset by :obj:`num_users`, in
    :obj:`unlearner.unlearn(edge_index=pairs)`, :obj:`unlearn(pairs)`
    (PyG's :obj:`edge_label_index`), :obj:`unlearn(items=...)` and
    :obj:`unlearn(users=...)`; an item id below :obj:`num_users` is
    refused, not read as another item.  Predict with :obj:`result.adj`,
    the new graph in the form the loop used.

    Args:
        model (torch.nn.Module): The trained model.
        edge_index (torch.Tensor or SparseTensor): The message-passing
            graph the loop used, in any PyG form (see
            :mod:`~torch_geometric_unlearn.graph.adjacency`: :obj:`[2, E]`, an
            :class:`~torch_geometric.EdgeIndex`, a :obj:`SparseTensor`
            :obj:`adj_t`, a torch sparse tensor): users
            :obj:`0 .. num_users - 1`, items offset by :obj:`num_users`,
            one or both directions.  Its user-item pairs are the positive
            training pairs.  Results give the new graph in the same form as
            :obj:`result.adj`.
        num_users (int): Number of users.
        recipe (Recipe): The loss and regularisation as the loop wrote
            them.
        num_items (int, optional): Number of items; by default the
            LightGCN embedding rows after the users.
        edge_label_index (torch.Tensor, optional): The training pairs the
            loss ran on, :obj:`[2, N]`, node ids with items offset (PyG's
            :obj:`edge_label_index`); by default the pairs of
            :obj:`edge_index`.  For :obj:`'bce'`, the labelled pairs.
        labels (torch.Tensor, optional): Their labels :obj:`[N]` (0 or 1),
            for BCE or a callable on labelled pairs.
        negatives (int or torch.Tensor): The frozen negative of each
            training pair, for BPR: your last epoch's, as item node ids
            :obj:`[N]` (offset by :obj:`num_users`, as
            :obj:`torch.randint(num_users, num_users + num_items, ...)`
            draws them) or PyG's negative :obj:`edge_label_index`
            :obj:`[2, N]`; or an int seed to draw one per pair, uniformly
            among the items its user has no interaction with.
        optimizer (torch.optim.Optimizer, optional): The optimiser that
            trained the model, in the state it ended in (Adam, AdamW or SGD,
            see :func:`~.influence.horizon.optimizer_horizon`):
            it gives the trajectory step the run's horizon.  Without it the
            horizon is read off the model's gradient.
        trajectory (TrajectoryRecorder or Sequence[Snapshot], optional):
            Snapshots of the run
            (LightGCN and MF): the trajectory step then follows it a
            segment at a time (see
            :mod:`~torch_geometric_unlearn.training.recorder`).
        config (IFRUConfig, optional): Settings of the unlearner.
        copy_model (bool): Work on a copy, leaving :obj:`model` as it is
            (default).

    Raises:
        ValueError: If the inputs do not describe a training run the
            package can express; the message says what to pass instead.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"'recipe' must be a Recipe (got "
                        f"{type(recipe).__name__})")
    _check_optimizer(optimizer, recipe)
    structured = isinstance(model, LightGCN) and not callable(recipe.loss)
    if not structured and trajectory is not None:
        raise ValueError("'trajectory' is followed for LightGCN and MF with "
                         "'bpr' or 'bce' only")
    if not structured and recipe.node_id:
        raise ValueError("'node_id' regularisation is modelled for LightGCN "
                         "with 'bpr' or 'bce' only; state the regularisation "
                         "as 'weight_decay' instead")
    if recipe.lambda_reg and not isinstance(model, LightGCN):
        raise ValueError("'lambda_reg' is recommendation_loss's penalty on "
                         "LightGCN's embedding table; for another model "
                         "state the regularisation as the optimiser's "
                         "'weight_decay'")
    num_items = _num_items(model, num_users, num_items)
    edge_index, form = to_edge_index(edge_index, num_users + num_items)
    triples = recipe.loss == 'bpr' or (callable(recipe.loss) and
                                       labels is None)
    pairs, labels = _training_pairs(edge_index, edge_label_index, labels,
                                    negatives, num_users, num_items,
                                    triples)
    data = InteractionData(num_users, num_items, pairs,
                           train_label=None if triples else labels,
                           name='training loop')
    if triples:
        third, source = _negatives(negatives, pairs, num_users, num_items)
        examples = torch.cat([pairs, third.view(1, -1)])
    else:
        examples, source = pairs, 'the labelled pairs given'
    notes = [recipe.describe(), f'negatives: {source}']

    config = _with_sampler(config, recipe)
    if structured:
        horizon, note = _horizon(optimizer, model.embedding.weight,
                                 pairs.size(1))
        notes.append(f'horizon: {note}')
        if trajectory is not None:
            snapshots = list(trajectory.snapshots if isinstance(
                trajectory, TrajectoryRecorder) else trajectory)
            last = snapshots[-1].signal if snapshots else None
            if last is not None and last > MAX_SIGNAL_SHARE:
                # As for the horizon: sign-like steps predict no response.
                trajectory = None
                notes.append(f"trajectory: not followed, since Adam's "
                             f"last steps were sign-like ({last:.2f} > "
                             f"{MAX_SIGNAL_SHARE})")
            else:
                notes.append(f'trajectory: {len(snapshots)} snapshots, '
                             f'followed a segment at a time')
        unlearner = IFRUnlearner(model, data, examples,
                                 None if triples else labels, recipe.l2,
                                 config, copy_model, horizon,
                                 trajectory=trajectory)
        if horizon is not None and recipe.loss == 'bpr':
            unlearner._restart_rule = adam_rule(
                optimizer, model.embedding.weight, pairs.size(1),
                recipe.batch_size or pairs.size(1))
    else:
        # Without node_id every row has the same weight; N counts every
        # example of an epoch, labelled 0 or 1.
        l2 = float(recipe.l2.weights(pairs, num_users, num_items,
                                     triples)[0])
        link_model = (model if isinstance(model, LinkModel) else
                      LinkModel(model, num_users, num_items))
        if optimizer is not None and config.shared is not False:
            horizon, note = None, ('read off the model\'s gradient (the '
                                   'shared weights are free)')
        else:
            horizon, note = _horizon(optimizer, {
                name: link_model.get_parameter(name)
                for name in link_model.node_params}, pairs.size(1))
        notes.append(f'horizon: {note}')
        unlearner = IFRUnlearner(
            link_model, data, examples, None if triples else labels, l2,
            config, copy_model, horizon, loss=_summed(recipe, triples))
    unlearner.objective_note = '; '.join(notes)
    unlearner.adjacency_form = form
    unlearner.node_ids = True
    return unlearner


def _check_optimizer(optimizer, recipe: Recipe):
    # The optimiser's weight decay is regularisation too: it must be the
    # recipe's, stated once, and of a kind the objective can hold.
    if optimizer is None:
        return
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"'optimizer' must be a torch.optim.Optimizer "
                         f"(got {type(optimizer).__name__})")
    decays = {float(g.get('weight_decay', 0.0))
              for g in optimizer.param_groups}
    if isinstance(optimizer, torch.optim.AdamW) and decays != {0.0}:
        raise ValueError("AdamW's decoupled weight decay is not a term of "
                         "the loss, so no fixed objective expresses it: "
                         "train with Adam(weight_decay=...) or a penalty in "
                         "the loss")
    if decays != {float(recipe.weight_decay)}:
        raise ValueError(f"The optimiser's weight_decay is "
                         f"{sorted(decays)} but the recipe's is "
                         f"{recipe.weight_decay}: state the regularisation "
                         f"once, as Recipe(weight_decay=...) equal to the "
                         f"optimiser's")


def _with_sampler(config: Optional[IFRUConfig],
                  recipe: Recipe) -> IFRUConfig:
    # The negative sampler is stated once, in the recipe.
    config = IFRUConfig() if config is None else config
    if config.negative_sampler not in (None, recipe.negative_sampler):
        raise ValueError(f"The config's negative_sampler is "
                         f"{config.negative_sampler!r} but the recipe's is "
                         f"{recipe.negative_sampler!r}: state it once, as "
                         f"Recipe(negative_sampler=...)")
    return replace(config, negative_sampler=recipe.negative_sampler)


def _num_items(model: torch.nn.Module, num_users: int,
               num_items: Optional[int]) -> int:
    if isinstance(num_users, bool) or not isinstance(num_users, int) or \
            num_users < 1:
        raise ValueError(f"'num_users' must be a positive int "
                         f"(got {num_users!r})")
    if isinstance(model, LightGCN):
        rows = model.embedding.weight.size(0)
        if num_items is None:
            num_items = rows - num_users
        if num_users + num_items != rows or num_items < 1:
            raise ValueError(
                f"The model's embedding table has {rows} rows but "
                f"num_users={num_users} + num_items={num_items} nodes: pass "
                f"the numbers the model was built for (one row per user, "
                f"then one per item)")
    elif num_items is None:
        raise ValueError(f"Pass 'num_items' for a {type(model).__name__}")
    if isinstance(num_items, bool) or not isinstance(num_items, int) or \
            num_items < 1:
        raise ValueError(f"'num_items' must be a positive int "
                         f"(got {num_items!r})")
    return num_items


def _training_pairs(edge_index: Tensor, edge_label_index: Optional[Tensor],
                    labels: Optional[Tensor], negatives, num_users: int,
                    num_items: int, triples: bool):
    # The training pairs [2, N] in item space (edge_label_index's order),
    # and their 0/1 labels for labelled pairs; their positives must be the
    # message-passing graph's user-item pairs.
    num_nodes = num_users + num_items
    edges = _user_item_pairs(edge_index, num_users, num_nodes, 'edge_index')
    edge_keys = torch.unique(pair_keys(edges, num_items))
    if edge_label_index is None:
        if isinstance(negatives, Tensor):
            raise ValueError("Given 'negatives', give 'edge_label_index' "
                             "too: the negatives follow its order")
        keys = edge_keys
        pairs = torch.stack([keys // num_items, keys % num_items])
    else:
        pairs = _user_item_pairs(edge_label_index, num_users, num_nodes,
                                 'edge_label_index', one_direction=True)
        keys = pair_keys(pairs, num_items)
        if torch.unique(keys).numel() != keys.numel():
            raise ValueError("'edge_label_index' holds a pair twice: pass "
                             "each training pair once")
    if triples:
        if labels is not None:
            raise ValueError("BPR takes no 'labels': its negatives come "
                             "from 'negatives'")
        positive = keys
    else:
        if labels is None:
            raise ValueError("BCE needs 'labels' [N] for the pairs of "
                             "'edge_label_index'")
        if not isinstance(negatives, int):
            raise ValueError("BCE takes its negatives as pairs labelled 0 "
                             "in 'edge_label_index', not as 'negatives'")
        labels = _binary_labels(labels, pairs.size(1))
        positive = keys[labels == 1]
    if not torch.equal(torch.unique(positive), edge_keys):
        extra = int((~torch.isin(positive, edge_keys)).sum())
        missing = int((~torch.isin(edge_keys, positive)).sum())
        raise ValueError(
            f"The positive training pairs and the graph differ ({extra} "
            f"pairs are not edges of 'edge_index', {missing} edges are not "
            f"positive training pairs): the package unlearns models whose "
            f"message-passing graph is their positive training pairs")
    return pairs, labels


def _user_item_pairs(index: Tensor, num_users: int, num_nodes: int,
                     what: str, one_direction: bool = False) -> Tensor:
    # [2, E] homogeneous node pairs -> user-item pairs in item space: the
    # user-to-item direction (or the only one given).
    if not isinstance(index, Tensor) or index.dtype != torch.long or \
            index.dim() != 2 or index.size(0) != 2 or index.size(1) == 0:
        raise ValueError(f"'{what}' must be a non-empty torch.long tensor "
                         f"[2, E] of node ids")
    if int(index.min()) < 0 or int(index.max()) >= num_nodes:
        raise ValueError(f"'{what}' holds node ids outside [0, {num_nodes})"
                         f" (users, then items offset by num_users)")
    is_user = index < num_users
    if one_direction:
        if not bool(is_user[0].all()) or bool(is_user[1].any()):
            raise ValueError(
                f"'{what}' must hold (user, item) pairs, row 0 users in "
                f"[0, {num_users}) and row 1 items offset by "
                f"num_users={num_users}, as PyG's edge_label_index does")
        return torch.stack([index[0], index[1] - num_users])
    if bool((is_user[0] == is_user[1]).any()):
        raise ValueError(f"'{what}' holds an edge that does not join a user "
                         f"and an item (users are [0, {num_users}), items "
                         f"are offset by num_users)")
    forward = index[:, is_user[0]]
    backward = index.flip(0)[:, is_user[1]]
    both = torch.cat([forward, backward], 1)
    return torch.stack([both[0], both[1] - num_users])


def _binary_labels(labels: Tensor, num: int) -> Tensor:
    if not isinstance(labels, Tensor) or labels.shape != (num, ):
        raise ValueError(f"'labels' must be a tensor [{num}], one per pair "
                         f"of 'edge_label_index'")
    if not bool(torch.isin(labels, labels.new_tensor([0, 1])).all()):
        raise ValueError("'labels' must hold only 0 and 1")
    return labels.long()


def _negatives(negatives: Union[int, Tensor], pairs: Tensor, num_users: int,
               num_items: int):
    num = pairs.size(1)
    if isinstance(negatives, bool) or not isinstance(negatives,
                                                     (int, Tensor)):
        raise ValueError("'negatives' must be an int seed or a tensor of "
                         "negative item node ids")
    if isinstance(negatives, int):
        known = pair_keys(pairs, num_items).sort()[0]
        gen = torch.Generator().manual_seed(negatives)
        return (sample_negatives(pairs, num_items, known, gen),
                f'drawn with seed {negatives}, one per training pair, '
                f'uniform over the items its user has no interaction with')
    if negatives.dtype != torch.long:
        raise ValueError("'negatives' must be a torch.long tensor")
    if negatives.dim() == 2 and negatives.size(0) == 2:
        if negatives.size(1) == num and not torch.equal(negatives[0],
                                                        pairs[0]):
            raise ValueError("Row 0 of the negative edge_label_index must "
                             "repeat the users of 'edge_label_index'")
        negatives = negatives[1]
    if negatives.shape != (num, ):
        raise ValueError(f"'negatives' must hold one item per training pair:"
                         f" [{num}] item node ids or a negative "
                         f"edge_label_index [2, {num}] (got "
                         f"{list(negatives.shape)})")
    low, high = int(negatives.min()), int(negatives.max())
    if low < num_users or high >= num_users + num_items:
        raise ValueError(
            f"'negatives' holds node id {low if low < num_users else high}, "
            f"outside the items [{num_users}, {num_users + num_items}): "
            f"pass item node ids offset by num_users, as PyG's "
            f"edge_label_index holds them")
    items = negatives - num_users
    hits = int(torch.isin(pair_keys(torch.stack([pairs[0], items]),
                                    num_items),
                          pair_keys(pairs, num_items)).sum())
    return items, (f'the {num} given (your last epoch\'s), {hits} of them '
                   f'positive pairs of their user')


def _horizon(optimizer, params: Union[Tensor, Dict[str, Tensor]],
             num: int):
    # The run's horizon of one parameter, or of each of several by name.
    if optimizer is None:
        return None, ('read off the model\'s gradient (pass optimizer= '
                      'for the training run\'s own)')
    try:
        horizon = (optimizer_horizon(optimizer, params, num)
                   if isinstance(params, Tensor) else
                   {name: optimizer_horizon(optimizer, param, num)
                    for name, param in params.items()})
    except (ValueError, TypeError) as error:
        return None, f'read off the model\'s gradient, since {error}'
    return horizon, f'{type(optimizer).__name__}\'s state'


def _summed(recipe: Recipe, triples: bool) -> Optional[Callable]:
    # The package's losses are sums over examples: scores [m - 1, B].
    if not callable(recipe.loss):
        return None
    loss, mean = recipe.loss, recipe.reduction == 'mean'

    def summed(scores: Tensor, labels: Optional[Tensor]) -> Tensor:
        out = (loss(scores[0], scores[1]) if triples else
               loss(scores[0], labels))
        return out * scores.size(1) if mean else out

    summed.__name__ = getattr(loss, '__name__', 'loss')
    return summed
