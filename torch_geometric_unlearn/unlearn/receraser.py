r"""RecEraser's attention-based adaptive aggregation (Chen et al., WWW
2022, Section 3.3): instead of averaging the shards' scores, each user's
(and item's) final embedding is a weighted sum of its shards' embeddings,
each first mapped by a shard's own transfer into a common space, with
weights from an attention network:

.. math::
    \hat e^k = W_k e^k + b_k, \quad
    a_k = h^\top \mathrm{ReLU}(W_a \hat e^k + b_a), \quad
    e = \sum_k \mathrm{softmax}(a)_k \, \hat e^k,

with one attention network for users and one for items.  The shards'
models are frozen; only the aggregator is trained, with the shards' loss
(BPR on the training pairs with a sampled negative per pair and epoch, or
BCE on labelled pairs), which takes seconds.  A
request retrains the touched shards and then the aggregator, from
scratch with the same seed, on what remains: the result is what
training without the request gives, bit for bit.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       sample_negatives)


@dataclass
class AggregationConfig:
    r"""How RecEraser's aggregator is trained, validated on construction.

    Args:
        epochs (int): Passes over the training pairs.
        lr (float): Adam's learning rate.
        batch_size (int): Pairs per step.
        l2 (float): Weight decay of the aggregator's parameters.
        attention_dim (int): Width of the attention networks.
        seed (int): Seed of the initialisation, shuffles and negatives.
    """
    epochs: int = 50
    lr: float = 1e-2
    batch_size: int = 8192
    l2: float = 1e-5
    attention_dim: int = 32
    seed: int = 0

    def __post_init__(self):
        for name in ('epochs', 'batch_size', 'attention_dim'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or \
                    value < 1:
                raise ValueError(f"'{name}' must be a positive int (got "
                                 f"{value!r})")
        if not self.lr > 0:
            raise ValueError(f"'lr' must be positive (got {self.lr})")
        if not self.l2 >= 0:
            raise ValueError(f"'l2' must be non-negative (got {self.l2})")


class ShardAttention(torch.nn.Module):
    r"""One attention network over :math:`K` shards' embeddings of one
    node type (see the module).

    Args:
        num_shards (int): Number of shards :math:`K`.
        dim (int): The shards' embedding size :math:`d`.
        attention_dim (int): Width of the attention network.
    """
    def __init__(self, num_shards: int, dim: int, attention_dim: int):
        super().__init__()
        # Transfers start at the identity: the first step averages.
        self.transfer = torch.nn.Parameter(
            torch.eye(dim).repeat(num_shards, 1, 1))
        self.transfer_bias = torch.nn.Parameter(torch.zeros(num_shards, dim))
        self.attention = torch.nn.Linear(dim, attention_dim)
        self.query = torch.nn.Parameter(torch.empty(attention_dim))
        torch.nn.init.normal_(self.query, std=attention_dim**-0.5)

    def forward(self, parts: Tensor) -> Tensor:
        r"""Aggregates :obj:`parts` :obj:`[n, K, d]` into :obj:`[n, d]`."""
        mapped = torch.einsum('nkd,kde->nke', parts,
                              self.transfer) + self.transfer_bias
        logits = F.relu(self.attention(mapped)) @ self.query
        weights = torch.softmax(logits, dim=1)
        return (weights.unsqueeze(-1) * mapped).sum(1)


class AttentionAggregator(torch.nn.Module):
    r"""RecEraser's aggregator: one :class:`ShardAttention` for users, one
    for items; :obj:`config` is kept so that a request retrains it the same
    way.

    Args:
        num_shards (int): Number of shards.
        dim (int): The shards' embedding size.
        num_users (int): Number of users (the first rows).
        config (AggregationConfig): How it is trained.
    """
    def __init__(self, num_shards: int, dim: int, num_users: int,
                 config: AggregationConfig):
        super().__init__()
        self.num_users = num_users
        self.config = config
        self.users = ShardAttention(num_shards, dim, config.attention_dim)
        self.items = ShardAttention(num_shards, dim, config.attention_dim)

    def forward(self, parts: Tensor) -> Tensor:
        r"""Final embeddings :obj:`[num_nodes, d]` from the shards'
        :obj:`[num_nodes, K, d]` (users, then items)."""
        return torch.cat([self.users(parts[:self.num_users]),
                          self.items(parts[self.num_users:])])


def train_aggregator(parts: Tensor, data: InteractionData,
                     config: AggregationConfig,
                     loss: str = 'bpr') -> AttentionAggregator:
    r"""Trains a fresh :class:`AttentionAggregator` on the shards' frozen
    embeddings with the shards' loss: BPR over :obj:`data`'s positive
    training pairs (a negative drawn per pair and epoch), or BCE over its
    labelled pairs.

    Args:
        parts (torch.Tensor): Every shard's final embeddings,
            :obj:`[num_nodes, K, d]` (see
            :meth:`~torch_geometric_unlearn.unlearn.sisa.ShardedRecommender.shard_embeddings`).
        data (InteractionData): The training data.
        config (AggregationConfig): Epochs, optimiser and seed.
        loss (str): :obj:`'bpr'` or :obj:`'bce'` (labelled data).

    Returns:
        AttentionAggregator: The trained aggregator (deterministic given
        its inputs and :obj:`config.seed`).
    """
    if parts.dim() != 3 or parts.size(0) != data.num_nodes:
        raise ValueError(f"'parts' must be [num_nodes, K, d] with "
                         f"num_nodes = {data.num_nodes}")
    if loss not in ('bpr', 'bce'):
        raise ValueError(f"'loss' must be 'bpr' or 'bce' (got {loss!r})")
    if loss == 'bce' and data.train_label is None:
        raise ValueError("The BCE loss needs labelled training pairs")
    parts = parts.detach()
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        aggregator = AttentionAggregator(parts.size(1), parts.size(2),
                                         data.num_users, config)
    aggregator.to(parts.device)
    optimizer = torch.optim.Adam(aggregator.parameters(), lr=config.lr,
                                 weight_decay=config.l2)
    if loss == 'bce':
        pairs, labels = data.train_index, data.train_label.float()
    else:
        pairs = data.train_positive_index
        forbidden = pair_keys(data.train_index, data.num_items).sort()[0]
    users, items = parts[:data.num_users], parts[data.num_users:]
    for _ in range(config.epochs):
        order = torch.randperm(pairs.size(1), generator=gen)
        if loss == 'bpr':
            negatives = sample_negatives(pairs, data.num_items, forbidden,
                                         gen)
        for batch in order.split(config.batch_size):
            user, item = pairs[:, batch].to(parts.device)
            # Aggregating every node once is cheaper than a batch's rows,
            # which repeat.
            u = aggregator.users(users)[user]
            every_item = aggregator.items(items)
            score = (u * every_item[item]).sum(-1)
            if loss == 'bce':
                value = F.binary_cross_entropy_with_logits(
                    score, labels[batch].to(parts.device))
            else:
                negative = every_item[negatives[batch].to(parts.device)]
                value = -F.logsigmoid(score - (u * negative).sum(-1)).mean()
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
    return aggregator.eval()
