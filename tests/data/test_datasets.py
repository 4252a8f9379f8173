import os
import shutil

import pytest
import torch

from torch_geometric_unlearn.data.datasets import (DataFormatError, gowalla,
                                                   ifru_ml100k, lastfm,
                                                   load_dataset,
                                                   movielens_100k, synthetic)
from torch_geometric_unlearn.data.interactions import pair_keys


def keys(data, split):
    return pair_keys(getattr(data, f'{split}_index'), data.num_items)


def test_synthetic_is_seeded_distinct_and_split():
    a = synthetic(300, 400, 6000, seed=3)
    b = synthetic(300, 400, 6000, seed=3)
    c = synthetic(300, 400, 6000, seed=4)
    assert torch.equal(a.train_index, b.train_index)
    assert not torch.equal(a.train_index, c.train_index)
    all_keys = torch.cat([keys(a, s) for s in ('train', 'val', 'test')])
    assert all_keys.numel() == 6000 == torch.unique(all_keys).numel()
    assert a.val_index.size(1) == 600 and a.test_index.size(1) == 1200


def test_synthetic_degrees_are_heavy_tailed():
    data = synthetic(2000, 3000, 60_000, seed=0)
    for row, n in ((0, data.num_users), (1, data.num_items)):
        degree = torch.bincount(data.train_index[row], minlength=n).float()
        # A power law puts a large multiple of the median on the top nodes.
        assert degree.max() > 8 * degree.median()


def mean_topic_overlap(affinity):
    # Mean cosine similarity of two users' item sets, among users with the
    # same favourite topic proxy: the most similar other user.
    data = synthetic(400, 800, 16_000, num_topics=10, topic_affinity=affinity,
                     seed=0)
    adjacency = torch.zeros(data.num_users, data.num_items)
    adjacency[data.train_index[0], data.train_index[1]] = 1
    norm = adjacency.sum(1, keepdim=True).sqrt().clamp(min=1)
    sim = (adjacency / norm) @ (adjacency / norm).t()
    sim.fill_diagonal_(0)
    return sim.max(1).values.mean() / sim.mean()


def test_synthetic_preferences_create_user_clusters():
    # Latent topics make each user's nearest neighbour far closer than the
    # average user; without them only popularity links users.
    assert mean_topic_overlap(0.8) > 1.5 * mean_topic_overlap(0.0)


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_interactions=10), 'at least'),
    (dict(num_topics=0), 'num_topics'),
    (dict(test_ratio=1.2), 'test_ratio'),
    (dict(num_users=5, num_items=5, num_interactions=30, num_topics=1),
     'too dense'),
])
def test_synthetic_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        synthetic(**kwargs)


def test_missing_data_folder_is_clear(tmp_path, monkeypatch):
    monkeypatch.delenv('TGU_DATA_DIR', raising=False)
    with pytest.raises(FileNotFoundError, match='TGU_DATA_DIR'):
        lastfm()
    with pytest.raises(FileNotFoundError, match='does not exist'):
        lastfm(str(tmp_path / 'nope'))
    (tmp_path / 'lastfm').mkdir()
    with pytest.raises(FileNotFoundError, match=r"missing \['data1.txt'"):
        lastfm(str(tmp_path))
    with pytest.raises(ValueError, match='Unknown data set'):
        load_dataset('netflix', str(tmp_path))


def test_corrupt_lastfm_file_is_named(tmp_path):
    folder = tmp_path / 'lastfm'
    folder.mkdir()
    (folder / 'data1.txt').write_text('1\t2\t3\nabc\t4\t5\n')
    (folder / 'test1.txt').write_text('1\t2\t3\n')
    with pytest.raises(DataFormatError, match='data1.txt.*line 2'):
        lastfm(str(tmp_path))


def snapshot(folder):
    return sorted((root, tuple(sorted(files)))
                  for root, _, files in os.walk(folder))


@pytest.mark.data
def test_movielens_100k(data_dir, cache_dir):
    before = snapshot(data_dir)
    data = movielens_100k(data_dir)
    assert (data.num_users, data.num_items) == (943, 1682)
    assert data.num_train + data.val_index.size(1) == 80_000
    assert data.test_index.size(1) == 20_000
    assert snapshot(data_dir) == before  # nothing written next to the data
    assert (cache_dir / 'ml-100k' / 'processed').is_dir()

    liked = movielens_100k(data_dir, rating_threshold=4)
    labelled = movielens_100k(data_dir, rating_threshold=4,
                              binary_labels=True)
    with open(os.path.join(data_dir, 'ml-100k', 'u1.base')) as f:
        num_liked = sum(int(line.split('\t')[2]) >= 4 for line in f)
    assert liked.num_train + liked.val_index.size(1) == num_liked
    assert labelled.num_train == data.num_train
    assert int(labelled.train_label.sum() +
               labelled.val_label.sum()) == num_liked


@pytest.mark.data
def test_movielens_corrupt_file(data_dir, tmp_path, cache_dir):
    folder = tmp_path / 'ml-100k'
    shutil.copytree(os.path.join(data_dir, 'ml-100k'), folder)
    (folder / 'u1.base').write_text('1\t2\n3\n')
    with pytest.raises(DataFormatError, match='MovieLens-100K'):
        movielens_100k(str(tmp_path))


@pytest.mark.data
def test_gowalla(data_dir, cache_dir):
    before = snapshot(data_dir)
    data = gowalla(data_dir)
    assert (data.num_users, data.num_items) == (29_858, 40_981)
    assert data.num_train + data.val_index.size(1) == 810_128
    assert data.test_index.size(1) == 217_242
    assert snapshot(data_dir) == before


@pytest.mark.data
def test_lastfm(data_dir):
    data = lastfm(data_dir)
    assert (data.num_users, data.num_items) == (1892, 4489)
    assert data.test_index.size(1) == 10_533
    assert data.train_index.min() == 0


@pytest.mark.data
def test_ifru_ml100k(data_dir):
    scenario = ifru_ml100k(data_dir)
    data, request = scenario.data, scenario.request
    assert (data.num_users, data.num_items) == (943, 1348)
    assert data.num_train == 58_976 + 596 and request.shape == (2, 596)
    assert (data.val_index.size(1), data.test_index.size(1)) == (19_854,
                                                                 19_856)
    # The flipped pairs are the last training pairs, with their labels.
    assert torch.equal(data.train_index[:, -596:], request)
    with open(os.path.join(data_dir, 'ifru-ml100k', 'train_random.csv')) as f:
        labels = [int(line.split(',')[2]) for line in list(f)[1:]]
    assert data.train_label[-596:].tolist() == labels
    assert data.train_positive_index.size(1) == int(data.train_label.sum())


def test_ifru_ml100k_bad_file_is_named(tmp_path):
    folder = tmp_path / 'ifru-ml100k'
    folder.mkdir()
    for name in ('train_normal.csv', 'train_random.csv', 'valid.csv',
                 'test.csv'):
        (folder / name).write_text('user,item,label\n0,0,1\n1,1,0\n')
    (folder / 'valid.csv').write_text('user,item,label\n0,0,2\n')
    with pytest.raises(DataFormatError, match='valid.csv.*line 2'):
        ifru_ml100k(str(tmp_path))
