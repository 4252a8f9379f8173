import math

import pytest
import torch

from torch_geometric_unlearn.data.interactions import remaining_data
from torch_geometric_unlearn.evaluation.benchmark import \
    with_sampled_negatives
from torch_geometric_unlearn.training.trainer import TrainConfig
from torch_geometric_unlearn.unlearn.receraser import (AggregationConfig,
                                                       ShardAttention,
                                                       train_aggregator)
from torch_geometric_unlearn.unlearn.sisa import (SISAUnlearner,
                                                  ShardedRecommender,
                                                  train_shard, train_sisa)

CONFIG = TrainConfig(progress=False, lr=0.01, batch_size=1024, max_epochs=3,
                     patience=2, seed=3)
AGGREGATION = AggregationConfig(epochs=3, batch_size=512, attention_dim=4,
                                seed=5)


def test_attention_weights_the_shards_by_softmax_of_their_scores():
    attention = ShardAttention(num_shards=2, dim=1, attention_dim=1)
    with torch.no_grad():
        attention.attention.weight.fill_(1.)
        attention.attention.bias.zero_()
        attention.query.fill_(1.)
    # One node, shards' embeddings 1 and 3: logits relu(1) = 1 and 3, so
    # weights e / (e + e^3) and e^3 / (e + e^3).
    out = attention(torch.tensor([[[1.], [3.]]]))
    w1 = math.e / (math.e + math.e**3)
    assert float(out.detach()) == pytest.approx(w1 + 3 * (1 - w1), rel=1e-6)
    # A shard's transfer maps its embedding first: shard 1's 3 becomes -3,
    # whose logit relu(-3) = 0 against shard 0's 1.
    with torch.no_grad():
        attention.transfer[1].fill_(-1.)
    out = attention(torch.tensor([[[1.], [3.]]]))
    w1 = math.e / (math.e + 1)
    assert float(out.detach()) == pytest.approx(w1 - 3 * (1 - w1), rel=1e-6)


def test_an_aggregated_ensemble_unlearns_exactly(small_data, single_thread):
    sharded, shards = train_sisa(small_data, 3, 'user', CONFIG, dim=8,
                                 num_layers=1, aggregation=AGGREGATION)
    assert sharded.get_embedding().shape == (small_data.num_nodes, 8)
    user = int(small_data.train_index[0, 0])
    unlearner = SISAUnlearner(sharded, small_data, shards, CONFIG)
    result = unlearner.unlearn(users=torch.tensor([user]))
    assert result.method == 'receraser'
    assert 'aggregate' in result.timings
    # The reference, written out: the ensemble trained from scratch on the
    # data without the user, shard by shard with the same shards and
    # seeds, then its aggregator with the same seed.
    keep = small_data.train_index[0] != user
    after = remaining_data(small_data, keep)
    models = [train_shard(after, shards[keep], k, CONFIG, 8, 1)
              for k in range(3)]
    expected = ShardedRecommender(models, after.train_index, shards[keep],
                                  small_data.num_users)
    with torch.no_grad():
        parts = expected.shard_embeddings()
    expected.aggregator = train_aggregator(parts, after, AGGREGATION)
    got = result.model.state_dict()
    for key, value in expected.aggregator.state_dict().items():
        assert torch.equal(got[f'aggregator.{key}'], value), key
    for k in range(3):
        assert torch.equal(result.model.models[k].embedding.weight,
                           models[k].embedding.weight)
    assert torch.equal(result.model.get_embedding(),
                       expected.get_embedding())


def test_the_aggregator_learns_and_its_config_is_checked(small_data):
    sharded, _ = train_sisa(small_data, 2, 'user', CONFIG, dim=8,
                            num_layers=1)
    with torch.no_grad():
        parts = sharded.shard_embeddings()
    pairs = small_data.train_index

    def bpr(aggregator):
        with torch.no_grad():
            emb = aggregator(parts)
            neg = torch.randint(small_data.num_items, (pairs.size(1), ),
                                generator=torch.Generator().manual_seed(0))
            user = emb[pairs[0]]
            pos = (user * emb[small_data.num_users + pairs[1]]).sum(-1)
            negative = (user * emb[small_data.num_users + neg]).sum(-1)
            return float(torch.nn.functional.softplus(negative - pos).mean())

    untrained = train_aggregator(parts, small_data,
                                 AggregationConfig(epochs=1, lr=1e-12))
    trained = train_aggregator(parts, small_data,
                               AggregationConfig(epochs=20, batch_size=512))
    assert bpr(trained) < bpr(untrained) - 0.05
    with pytest.raises(ValueError, match='labelled'):
        train_aggregator(parts, small_data, AGGREGATION, loss='bce')
    with pytest.raises(ValueError, match="'loss'"):
        train_aggregator(parts, small_data, AGGREGATION, loss='mse')
    with pytest.raises(ValueError, match="'epochs'"):
        AggregationConfig(epochs=0)
    with pytest.raises(ValueError, match="'lr'"):
        AggregationConfig(lr=0.)
    with pytest.raises(ValueError, match='num_nodes'):
        train_aggregator(parts[1:], small_data, AGGREGATION)


def test_on_labelled_data_the_aggregator_fits_the_labels(small_data):
    data = with_sampled_negatives(small_data)
    sharded, _ = train_sisa(data, 2, 'user', CONFIG, dim=8, num_layers=1)
    with torch.no_grad():
        parts = sharded.shard_embeddings()

    def bce(aggregator):
        with torch.no_grad():
            emb = aggregator(parts)
            score = (emb[data.train_index[0]] *
                     emb[data.num_users + data.train_index[1]]).sum(-1)
            return float(torch.nn.functional.binary_cross_entropy_with_logits(
                score, data.train_label.float()))

    untrained = train_aggregator(parts, data,
                                 AggregationConfig(epochs=1, lr=1e-12),
                                 loss='bce')
    trained = train_aggregator(parts, data,
                               AggregationConfig(epochs=20, batch_size=512),
                               loss='bce')
    assert bce(trained) < bce(untrained) - 0.05
