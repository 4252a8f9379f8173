import pytest
import torch

from torch_geometric_unlearn.data.interactions import (pair_keys,
                                                       remaining_data)
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.sisa import (SISAUnlearner,
                                                  balanced_partition,
                                                  shard_of, train_sisa)

CONFIG = TrainConfig(progress=False, lr=0.01, batch_size=1024, max_epochs=4,
                     patience=2, seed=3)


def test_partitions_keep_owners_together_and_balanced(small_data):
    users = shard_of(small_data, 4, 'user', seed=1)
    owner = {}
    for user, shard in zip(small_data.train_index[0].tolist(),
                           users.tolist()):
        assert owner.setdefault(user, shard) == shard
    per_shard = torch.bincount(torch.tensor(list(owner.values())))
    assert per_shard.max() - per_shard.min() <= 1
    pairs = torch.bincount(shard_of(small_data, 3, 'interaction'))
    assert pairs.max() - pairs.min() <= 1
    items = shard_of(small_data, 5, 'item')
    for item in torch.unique(small_data.train_index[1])[:20]:
        assert items[small_data.train_index[1] == item].unique().numel() == 1
    with pytest.raises(ValueError, match="'by'"):
        shard_of(small_data, 2, 'cluster')
    with pytest.raises(ValueError, match="'num_shards'"):
        shard_of(small_data, 0)


def test_a_request_retrains_exactly_its_shards(small_data, single_thread):
    sharded, shards = train_sisa(small_data, 3, 'user', CONFIG, dim=8,
                                 num_layers=1)
    before = {k: v.clone() for k, v in sharded.state_dict().items()}
    user = int(small_data.train_index[0, 0])
    mine = int(shards[small_data.train_index[0] == user][0])
    result = SISAUnlearner(sharded, small_data, shards, CONFIG).unlearn(
        users=torch.tensor([user]))
    assert result.diagnostics['shards_retrained'] == [mine]
    # The reference, written out: that shard's pairs without the user,
    # trained from scratch with the shard's seed.
    keep = (shards == mine) & (small_data.train_index[0] != user)
    part = remaining_data(small_data, keep)
    expected = build_model(part, 8, 1)
    train(expected, part, TrainConfig(**{**vars(CONFIG), 'seed': 3 + mine}))
    models = result.model.models
    assert torch.equal(models[mine].embedding.weight,
                       expected.embedding.weight)
    for k in range(3):
        if k != mine:
            assert torch.equal(models[k].embedding.weight,
                               before[f'models.{k}.embedding.weight'])
    # The shard's graph lost the user's edges; the others kept theirs.
    assert not (result.model.graph(mine)[0] == user).any()
    assert result.model.graph(mine).size(1) == 2 * int(keep.sum())
    # Predictions are the mean of the shards' scores.
    emb = result.model.get_embedding()
    u, i = 5, 7
    score = float(emb[u] @ emb[small_data.num_users + i])
    scores = [float(m.get_embedding(result.model.graph(k))[u] @
                    m.get_embedding(result.model.graph(k))[
                        small_data.num_users + i])
              for k, m in enumerate(models)]
    assert score == pytest.approx(sum(scores) / 3, rel=1e-5)


def test_a_failed_request_leaves_every_shard_as_it_was(small_data,
                                                       monkeypatch):
    sharded, shards = train_sisa(small_data, 2, 'interaction', CONFIG,
                                 dim=4, num_layers=1)
    unlearner = SISAUnlearner(sharded, small_data, shards, CONFIG)
    before = {k: v.clone() for k, v in unlearner.model.state_dict().items()}

    def fail(request):
        raise RuntimeError('disk full')
    monkeypatch.setattr(unlearner, '_advance', fail)
    with pytest.raises(RuntimeError, match='disk full'):
        unlearner.unlearn(small_data.train_index[:, :5])
    after = unlearner.model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert unlearner.data is small_data
    assert (unlearner.model.pair_shard >= 0).all()
    assert torch.equal(pair_keys(unlearner.model.pairs, small_data.num_items),
                       pair_keys(small_data.train_index,
                                 small_data.num_items))


def test_the_balanced_partition_groups_alike_rows_in_equal_shards():
    # Three tight clusters of 10 rows, far apart: one shard each.
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0., 0.], [10., 0.], [0., 10.]])
    rows = torch.cat([c + 0.1 * torch.randn(10, 2, generator=gen)
                      for c in centres])
    owner = balanced_partition(rows, 3, seed=1)
    for cluster in owner.view(3, 10):
        assert cluster.unique().numel() == 1
    assert sorted(torch.bincount(owner).tolist()) == [10, 10, 10]
    # Unequal clusters (14, 8, 8): no shard above ceil(30 / 3) = 10.
    rows = torch.cat([centres[0] + 0.1 * torch.randn(14, 2, generator=gen),
                      centres[1] + 0.1 * torch.randn(8, 2, generator=gen),
                      centres[2] + 0.1 * torch.randn(8, 2, generator=gen)])
    assert torch.bincount(balanced_partition(rows, 3)).max() <= 10
    with pytest.raises(ValueError, match='cannot fill'):
        balanced_partition(rows[:2], 3)


def test_partitions_by_similarity_keep_owners_together(small_data):
    emb = torch.randn(small_data.num_nodes, 4,
                      generator=torch.Generator().manual_seed(2))
    shards = shard_of(small_data, 4, 'user', embedding=emb)
    for user in torch.unique(small_data.train_index[0])[:30]:
        assert shards[small_data.train_index[0] == user].unique().numel() \
            == 1
    pairs = torch.bincount(shard_of(small_data, 4, 'interaction',
                                    embedding=emb))
    assert pairs.max() <= -(-small_data.num_train // 4)
    with pytest.raises(ValueError, match='num_nodes'):
        shard_of(small_data, 4, 'item', embedding=emb[1:])
