r"""SISA (Bourtoule et al., S&P 2021), the exact-unlearning baseline of the
recommendation-unlearning literature: the training interactions are split
into shards, one model is trained per shard, their predictions are
averaged, and a request retrains, from scratch, only the shards holding
its interactions.  The result is exactly what training without the request
gives (each touched shard is trained again as if the request never
existed); the price is paid up front and in utility:

- **Training** costs one run per shard (each on its shard's data).
- **Utility.** Each model sees a :math:`1/K` share of the interactions,
  and LightGCN's propagation sees only its shard's graph, so the ensemble
  ranks worse than one model on all of it.
- **Unlearning** retrains every touched shard: a request spread over many
  users (5% of users at random) touches every shard under a user
  partition, and then costs a full retrain's work.

Partitions are by user (a user's interactions in one shard, so forgetting
a user retrains one shard), by item, or by interaction, each dealt at
random in equal numbers, or (given a trained model's embeddings) by
RecEraser's balanced partition, which puts similar users, items or
interactions together.  The shards' scores are averaged, or (given an
:class:`~torch_geometric_unlearn.unlearn.receraser.AggregationConfig`)
combined by RecEraser's attention aggregator, trained on the frozen
shards and retrained after every request: balanced partition plus
attention aggregation is RecEraser.

Usage::

    sharded, shards = train_sisa(data, num_shards=10, by='user',
                                 config=TrainConfig(l2=1.0))
    unlearner = SISAUnlearner(sharded, data, shards, TrainConfig(l2=1.0))
    result = unlearner.unlearn(users=torch.tensor([42]))
    evaluate(result.model, result.data)  # each shard predicts on its graph

    # RecEraser: balanced partition of a trained model's embeddings, and
    # the attention aggregator.
    sharded, shards = train_sisa(data, 10, 'user', config,
                                 embedding=model.get_embedding(edge_index),
                                 aggregation=AggregationConfig())
"""
import math
import time
from dataclasses import replace
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.data.interactions import (
    InteractionData, pair_keys, remaining_data, to_undirected_homogeneous)
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.base import Unlearner
from torch_geometric_unlearn.unlearn.receraser import (AggregationConfig,
                                                       AttentionAggregator,
                                                       train_aggregator)
from torch_geometric_unlearn.unlearn.request import Request

PARTITIONS = ('user', 'item', 'interaction')


class ShardedRecommender(torch.nn.Module):
    r"""One LightGCN (or MF) per shard; scores are the mean of the shards'
    scores, or RecEraser's attention aggregate.

    :meth:`get_embedding` returns every shard's final embeddings side by
    side, scaled by :math:`1/\sqrt{K}`, so that a dot product is the mean
    score, or, with an :obj:`aggregator`, its aggregate of them; either way
    every metric of
    :mod:`~torch_geometric_unlearn.evaluation.metrics` applies.  Each shard
    propagates over its own shard's graph, the positive training pairs
    assigned to it (:meth:`graph`): the graph passed to
    :meth:`get_embedding` is ignored.  The pairs and their shards are
    buffers, so the state dict holds the whole ensemble.

    Args:
        models (Sequence[LightGCN]): The shards' models.
        pairs (torch.Tensor): The positive training pairs, :obj:`[2, N]`
            (user, item).
        pair_shard (torch.Tensor): The shard of each pair, :obj:`[N]`;
            :obj:`-1` for a pair in no shard (forgotten).
        num_users (int): Number of users (items are offset by it).
        aggregator (AttentionAggregator, optional): RecEraser's aggregator
            of the shards' embeddings (see
            :mod:`~torch_geometric_unlearn.unlearn.receraser`); None
            averages the scores.
    """
    def __init__(self, models: Sequence[LightGCN], pairs: Tensor,
                 pair_shard: Tensor, num_users: int,
                 aggregator: Optional[AttentionAggregator] = None):
        super().__init__()
        if not models:
            raise ValueError("Give at least one model")
        if pair_shard.shape != (pairs.size(1), ):
            raise ValueError("Give one shard per pair")
        self.models = torch.nn.ModuleList(models)
        self.num_users = num_users
        self.register_buffer('pairs', pairs.clone())
        self.register_buffer('pair_shard', pair_shard.clone())
        self.aggregator = aggregator

    def graph(self, shard: int) -> Tensor:
        r"""Shard :obj:`shard`'s message-passing graph :obj:`[2, 2 E]`
        (both directions, items offset)."""
        return to_undirected_homogeneous(
            self.pairs[:, self.pair_shard == shard], self.num_users)

    def shard_embeddings(self) -> Tensor:
        r"""Every shard's final embeddings on its own graph,
        :obj:`[num_nodes, K, d]`."""
        return torch.stack([m.get_embedding(self.graph(k))
                            for k, m in enumerate(self.models)], 1)

    def get_embedding(self, edge_index: Optional[Tensor] = None) -> Tensor:
        r"""Final embeddings (see the class): :obj:`[num_nodes, K * d]`
        averaging, :obj:`[num_nodes, d]` with an aggregator;
        :obj:`edge_index` is ignored."""
        parts = self.shard_embeddings()
        if self.aggregator is not None:
            return self.aggregator(parts)
        return parts.flatten(1) / math.sqrt(parts.size(1))


def shard_of(data: InteractionData, num_shards: int, by: str = 'user',
             seed: int = 0, embedding: Optional[Tensor] = None) -> Tensor:
    r"""The shard of each training pair, :obj:`[N]`, by user, item or
    interaction (:obj:`by`), in equal numbers: dealt at random (SISA), or,
    given an :obj:`embedding`, by RecEraser's balanced partition
    (:func:`balanced_partition`) of the users' or items' rows, or of each
    pair's user and item rows side by side.

    Args:
        data (InteractionData): The data.
        num_shards (int): Number of shards, at least 1.
        by (str): :obj:`'user'`, :obj:`'item'` or :obj:`'interaction'`.
        seed (int): Seed of the deal (or of the partition's anchors).
        embedding (torch.Tensor, optional): Node embeddings
            :obj:`[num_nodes, d]` (users, then items), e.g. a trained
            model's, to partition by similarity.
    """
    if by not in PARTITIONS:
        raise ValueError(f"'by' must be one of {list(PARTITIONS)} (got "
                         f"{by!r})")
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or \
            num_shards < 1:
        raise ValueError(f"'num_shards' must be a positive int (got "
                         f"{num_shards!r})")
    if embedding is not None and (embedding.dim() != 2 or
                                  embedding.size(0) != data.num_nodes):
        raise ValueError(f"'embedding' must be [num_nodes, d] with "
                         f"num_nodes = {data.num_nodes}")
    gen = torch.Generator().manual_seed(seed)
    users, items = data.train_index
    if by == 'interaction':
        if embedding is not None:
            rows = torch.cat([embedding[users],
                              embedding[items + data.num_users]], 1)
            return balanced_partition(rows, num_shards, seed=seed)
        order = torch.randperm(data.num_train, generator=gen)
        shards = torch.empty(data.num_train, dtype=torch.long)
        shards[order] = torch.arange(data.num_train) % num_shards
        return shards
    ids, size, offset = ((users, data.num_users, 0) if by == 'user' else
                         (items, data.num_items, data.num_users))
    if embedding is not None:
        owner = balanced_partition(embedding[offset:offset + size],
                                   num_shards, seed=seed)
    else:
        owner = torch.empty(size, dtype=torch.long)
        owner[torch.randperm(size, generator=gen)] = torch.arange(size) % \
            num_shards
    return owner[ids]


def balanced_partition(rows: Tensor, num_shards: int, iterations: int = 5,
                       seed: int = 0) -> Tensor:
    r"""RecEraser's balanced partition (Chen et al., WWW 2022): anchors
    start at :obj:`num_shards` random rows; each round, every (row, anchor)
    pair is taken in order of distance and the row joins the anchor unless
    the row is placed or the anchor's shard is full (:math:`\lceil n / K
    \rceil` rows); the anchors then move to their shards' means.

    Args:
        rows (torch.Tensor): What to partition, :obj:`[n, d]`.
        num_shards (int): Number of shards :math:`K`.
        iterations (int): Rounds.
        seed (int): Seed of the first anchors.

    Returns:
        torch.Tensor: The shard of each row, :obj:`[n]`.
    """
    rows = rows.detach().double()
    n = rows.size(0)
    if n < num_shards:
        raise ValueError(f"{n} rows cannot fill {num_shards} shards")
    capacity = -(-n // num_shards)
    gen = torch.Generator().manual_seed(seed)
    anchors = rows[torch.randperm(n, generator=gen)[:num_shards]]
    owner = torch.empty(n, dtype=torch.long)
    for _ in range(iterations):
        order = torch.cdist(rows, anchors).view(-1).argsort(stable=True)
        owner.fill_(-1)
        load = [0] * anchors.size(0)
        for index in order.tolist():
            row, shard = divmod(index, anchors.size(0))
            if owner[row] < 0 and load[shard] < capacity:
                owner[row] = shard
                load[shard] += 1
        anchors = torch.stack([rows[owner == k].mean(0)
                               for k in range(anchors.size(0))])
    return owner


def _shard_config(config: TrainConfig, shard: int) -> TrainConfig:
    # Each shard's run has its own seed, the same whenever it is retrained.
    return replace(config, seed=config.seed + shard)


def train_shard(data: InteractionData, shards: Tensor, shard: int,
                config: TrainConfig, dim: int, num_layers: int) -> LightGCN:
    r"""Trains shard :obj:`shard`'s model from scratch on its training
    pairs (those with :obj:`shards == shard`; validation and test as in
    :obj:`data`) with seed :obj:`config.seed + shard`."""
    part = remaining_data(data, shards == shard)
    model = build_model(part, dim, num_layers)
    train(model, part, _shard_config(config, shard))
    return model


def train_sisa(data: InteractionData, num_shards: int, by: str = 'user',
               config: Optional[TrainConfig] = None, dim: int = 64,
               num_layers: int = 2, seed: int = 0,
               embedding: Optional[Tensor] = None,
               aggregation: Optional[AggregationConfig] = None
               ) -> Tuple[ShardedRecommender, Tensor]:
    r"""Trains one model per shard (see :func:`shard_of`, whose arguments
    these are, and :func:`train_shard`) and, given :obj:`aggregation`,
    RecEraser's aggregator on them (see
    :func:`~torch_geometric_unlearn.unlearn.receraser.train_aggregator`).
    Returns the ensemble and the shard of each training pair :obj:`[N]`."""
    config = config or TrainConfig()
    shards = shard_of(data, num_shards, by, seed, embedding)
    models = [train_shard(data, shards, k, config, dim, num_layers)
              for k in range(num_shards)]
    sharded = ShardedRecommender(models, *_graph_pairs(data, shards),
                                 data.num_users)
    if aggregation is not None:
        with torch.no_grad():
            parts = sharded.shard_embeddings()
        sharded.aggregator = train_aggregator(parts, data, aggregation,
                                              config.loss.value)
    return sharded, shards


def _graph_pairs(data: InteractionData, shards: Tensor
                 ) -> Tuple[Tensor, Tensor]:
    # The positive training pairs and their shards (labelled data's
    # negatives are examples, not edges).
    positive = (slice(None) if data.train_label is None else
                data.train_label == 1)
    return data.train_index[:, positive], shards[positive]


class SISAUnlearner(Unlearner):
    r"""Exact unlearning by retraining the shards a request touches, then
    RecEraser's aggregator if the ensemble has one (see the module).

    Args:
        model (ShardedRecommender): The trained shards, e.g. from
            :func:`train_sisa`.
        data (InteractionData): The data they were trained on.
        shards (torch.Tensor): The shard of each training pair, :obj:`[N]`.
        config (TrainConfig): The shards' training configuration (each
            shard's seed is :obj:`config.seed` plus its index).
        copy_model (bool): Work on a copy (default).
    """
    @property
    def method(self) -> str:
        return 'sisa' if self.model.aggregator is None else 'receraser'

    def __init__(self, model: ShardedRecommender, data: InteractionData,
                 shards: Tensor, config: TrainConfig,
                 copy_model: bool = True):
        if not isinstance(config, TrainConfig):
            raise TypeError(f"'config' must be a TrainConfig (got "
                            f"{type(config).__name__})")
        if not isinstance(shards, Tensor) or shards.dtype != torch.long or \
                shards.shape != (data.num_train, ):
            raise ValueError(f"'shards' must be a torch.long tensor of "
                             f"shape [{data.num_train}], a shard per "
                             f"training pair")
        super().__init__(model, data, data.train_index, data.train_label,
                         config.l2, copy_model)
        if shards.numel() and (shards.min() < 0 or
                               shards.max() >= len(self.model.models)):
            raise ValueError(f"'shards' must lie in [0, "
                             f"{len(self.model.models)})")
        self.shards = shards
        self.config = config

    def _check(self, model, data, examples, labels):
        if not isinstance(model, ShardedRecommender):
            raise TypeError(f"SISAUnlearner needs a ShardedRecommender "
                            f"(got {type(model).__name__})")
        for shard in model.models:
            if shard.num_nodes != data.num_nodes:
                raise ValueError(f"Every shard's model needs "
                                 f"{data.num_nodes} nodes")

    def _update(self, request: Request) -> Tuple[Dict[str, float], Dict]:
        # Everything changed is in the model's state dict (the shards'
        # weights, the pairs' shards), which a failure restores.
        start = time.perf_counter()
        touched = torch.unique(self.shards[~request.train_mask]).tolist()
        remaining = remaining_data(self.data, request.train_mask)
        shards = self.shards[request.train_mask]
        for k in touched:
            old = self.model.models[k]
            model = train_shard(remaining, shards, k, self.config,
                                old.embedding_dim, old.num_layers)
            with torch.no_grad():
                old.embedding.weight.copy_(model.embedding.weight)
        gone = torch.isin(pair_keys(self.model.pairs, self.data.num_items),
                          pair_keys(request.pairs, self.data.num_items))
        self.model.pair_shard[gone] = -1
        timings = {'train': time.perf_counter() - start}
        aggregator = self.model.aggregator
        if aggregator is not None:
            # Trained on every shard: any request retrains it, from scratch.
            start = time.perf_counter()
            with torch.no_grad():
                parts = self.model.shard_embeddings()
            aggregator.load_state_dict(train_aggregator(
                parts, remaining, aggregator.config,
                self.config.loss.value).state_dict())
            timings['aggregate'] = time.perf_counter() - start
        return timings, {'shards_retrained': touched,
                         'num_shards': len(self.model.models)}

    def _advance(self, request: Request):
        super()._advance(request)
        self.shards = self.shards[request.train_mask]
