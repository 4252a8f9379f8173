r"""Interaction data sets: a synthetic default and loaders for real data.

Every loader returns an
:class:`~torch_geometric_unlearn.data.interactions.InteractionData`.  Real data
is read from a folder given as :obj:`root` or through the environment variable
:obj:`TGU_DATA_DIR`; the folder holds one sub-folder per data set
(:obj:`ml-100k/`, :obj:`gowalla/`, :obj:`lastfm/`, :obj:`ifru-ml100k/`).
Loaders never write into that folder: PyG's processed caches go to
:obj:`cache_dir` (default :obj:`$TGU_CACHE_DIR` or
:obj:`~/.cache/torch_geometric_unlearn`).
"""
import os
import os.path as osp
import shutil
from typing import Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys)

DATA_ENV = 'TGU_DATA_DIR'
CACHE_ENV = 'TGU_CACHE_DIR'


class DataFormatError(ValueError):
    r"""Raised when a data file exists but cannot be parsed."""


def data_root(root: Optional[str] = None) -> str:
    r"""Resolves the data folder from :obj:`root` or :obj:`$TGU_DATA_DIR`,
    raising :class:`FileNotFoundError` with a clear message if neither
    names an existing folder."""
    root = root if root is not None else os.environ.get(DATA_ENV)
    if root is None:
        raise FileNotFoundError(
            f"No data folder given: pass 'root' or set ${DATA_ENV} to the "
            f"folder holding 'ml-100k/', 'gowalla/' and 'lastfm/'")
    if not osp.isdir(root):
        raise FileNotFoundError(f"Data folder '{root}' does not exist")
    return root


def _dataset_dir(root: Optional[str], name: str,
                 files: Tuple[str, ...]) -> str:
    # Accept either the parent data folder or the data set's own folder.
    root = data_root(root)
    folder = osp.join(root, name)
    if not osp.isdir(folder) and all(
            osp.isfile(osp.join(root, f)) for f in files):
        folder = root
    missing = [f for f in files if not osp.isfile(osp.join(folder, f))]
    if missing:
        raise FileNotFoundError(f"Data set '{name}' is incomplete in "
                                f"'{folder}': missing {missing}")
    return folder


def _cache_dir(cache_dir: Optional[str], name: str) -> str:
    if cache_dir is None:
        cache_dir = os.environ.get(
            CACHE_ENV,
            osp.join(osp.expanduser('~'), '.cache', 'torch_geometric_unlearn'))
    return osp.join(cache_dir, name)


def _stage_raw(src: str, dst_root: str, files: Tuple[str, ...]):
    # PyG datasets process `root/raw/*` into `root/processed/`; copy the raw
    # files so nothing is ever written next to the user's data.
    raw = osp.join(dst_root, 'raw')
    os.makedirs(raw, exist_ok=True)
    for f in files:
        target = osp.join(raw, f)
        if (not osp.isfile(target)
                or osp.getmtime(target) < osp.getmtime(osp.join(src, f))):
            shutil.copyfile(osp.join(src, f), target)


def _split(index: Tensor, ratio: float,
           seed: int) -> Tuple[Tensor, Optional[Tensor], Tensor]:
    # Returns (kept, held-out, permutation of held-out positions) columns.
    if ratio <= 0:
        return index, None, torch.empty(0, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(index.size(1), generator=gen)
    num_out = int(round(ratio * index.size(1)))
    out, keep = perm[:num_out].sort().values, perm[num_out:].sort().values
    return index[:, keep], index[:, out], out


def _check_ratio(name: str, value: float):
    if not 0 <= value < 1:
        raise ValueError(f"'{name}' must lie in [0, 1) (got {value})")


def _dedupe(index: Tensor, num_items: int) -> Tensor:
    keys = torch.unique(pair_keys(index, num_items))
    return torch.stack([keys // num_items, keys % num_items])


def synthetic(num_users: int = 1000, num_items: int = 1500,
              num_interactions: int = 30_000, num_topics: int = 20,
              topic_affinity: float = 0.8, exponent: float = 0.8,
              val_ratio: float = 0.1, test_ratio: float = 0.2,
              seed: int = 0) -> InteractionData:
    r"""A seedable synthetic recommender data set with realistic structure.

    * **Power-law degrees.**  Users and items draw interactions in
      proportion to :math:`\mathrm{rank}^{-\alpha}` (Zipf), after every user
      gets one, so both degree distributions are heavy-tailed.
    * **Latent preferences.**  Items are split into :obj:`num_topics` topics
      and every user has a favourite topic; each interaction picks the
      favourite with probability :obj:`topic_affinity` (else a random
      topic) and then an item of that topic by popularity.  A model can
      learn these preferences, so Recall@20 rises well above chance.

    Time and memory are linear in :obj:`num_interactions` (1K to 10M).
    Pairs are distinct: duplicates are merged and drawn again.

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        num_interactions (int): Interactions to draw (at least
            :obj:`num_users`).
        num_topics (int): Number of latent topics.
        topic_affinity (float): Probability of an interaction in the user's
            favourite topic.
        exponent (float): Zipf exponent :math:`\alpha` of the popularity.
        val_ratio (float): Fraction of interactions for validation.
        test_ratio (float): Fraction of interactions for testing.
        seed (int): Random seed.
    """
    if num_users < 1 or num_items < 1:
        raise ValueError("'num_users' and 'num_items' must be positive")
    if num_interactions < num_users:
        raise ValueError(f"'num_interactions' ({num_interactions}) must be "
                         f"at least 'num_users' ({num_users})")
    if not 1 <= num_topics <= num_items:
        raise ValueError(f"'num_topics' must lie in [1, num_items] "
                         f"(got {num_topics})")
    if not 0 <= topic_affinity <= 1:
        raise ValueError(f"'topic_affinity' must lie in [0, 1] "
                         f"(got {topic_affinity})")
    _check_ratio('val_ratio', val_ratio)
    _check_ratio('test_ratio', test_ratio)
    if val_ratio + test_ratio >= 1:
        raise ValueError("'val_ratio' + 'test_ratio' must be below 1")

    gen = torch.Generator().manual_seed(seed)

    def zipf(n: int) -> Tensor:
        weight = torch.arange(1, n + 1, dtype=torch.float64).pow(-exponent)
        return weight[torch.randperm(n, generator=gen)]

    user_weight = zipf(num_users)
    item_topic = torch.randint(num_topics, (num_items, ), generator=gen)
    favourite = torch.randint(num_topics, (num_users, ), generator=gen)
    count = torch.bincount(item_topic, minlength=num_topics)
    if (count == 0).any():
        raise ValueError(f"{int((count == 0).sum())} topics have no items: "
                         f"lower 'num_topics'")
    # Items of a topic form a contiguous slice of a topic-sorted order, so an
    # item is drawn by inverting the popularity CDF within that slice.
    order = item_topic.argsort(stable=True)
    cdf = zipf(num_items)[order].cumsum(0)
    end = count.cumsum(0)
    start = end - count
    low = torch.where(start > 0, cdf[(start - 1).clamp(min=0)],
                      cdf.new_zeros(()))
    high = cdf[end - 1]

    def draw(user: Tensor) -> Tensor:
        own = torch.rand(user.numel(), generator=gen) < topic_affinity
        topic = torch.where(
            own, favourite[user],
            torch.randint(num_topics, (user.numel(), ), generator=gen))
        u = torch.rand(user.numel(), generator=gen, dtype=torch.float64)
        u = low[topic] + (high[topic] - low[topic]) * u
        pos = torch.searchsorted(cdf, u)
        # Rounding can land one slot outside the topic's slice.
        pos = torch.minimum(torch.maximum(pos, start[topic]), end[topic] - 1)
        return pair_keys(torch.stack([user, order[pos]]), num_items)

    # Every user gets one interaction; the rest follow user popularity.
    # Duplicates are merged, so draw again until enough distinct pairs exist.
    keys = torch.unique(draw(torch.arange(num_users)))
    first = keys.clone()
    for _ in range(50):
        missing = num_interactions - keys.numel()
        if missing <= 0:
            break
        user = torch.multinomial(user_weight, int(missing * 1.2) + 16,
                                 replacement=True, generator=gen)
        keys = torch.unique(torch.cat([keys, draw(user)]))
    else:
        raise ValueError(f"Could not draw {num_interactions} distinct "
                         f"interactions: the graph is too dense for "
                         f"{num_users} users and {num_items} items")
    # Trim the surplus at random, never a user's first interaction.
    rest = keys[~torch.isin(keys, first)]
    rest = rest[torch.randperm(rest.numel(), generator=gen)]
    keys = torch.cat([first,
                      rest[:num_interactions - first.numel()]]).sort()[0]
    index = torch.stack([keys // num_items, keys % num_items])

    train, test, _ = _split(index, test_ratio, seed + 1)
    train, val, _ = _split(train, val_ratio / (1 - test_ratio), seed + 2)
    return InteractionData(num_users, num_items, train, test, val,
                           name='synthetic')


def movielens_100k(root: Optional[str] = None, rating_threshold: Optional[
    int] = None, binary_labels: bool = False, val_ratio: float = 0.1,
                   seed: int = 0,
                   cache_dir: Optional[str] = None) -> InteractionData:
    r"""MovieLens-100K through :class:`torch_geometric.datasets.MovieLens100K`
    with the official :obj:`u1.base` / :obj:`u1.test` split.

    A fraction :obj:`val_ratio` of :obj:`u1.base` is held out for validation
    (early stopping).

    Args:
        root (str, optional): The data folder (holding :obj:`ml-100k/`), or
            :obj:`$TGU_DATA_DIR`.
        rating_threshold (int, optional): If set, a rating counts as positive
            when it is at least this value.  :obj:`None` treats every rating
            as an implicit interaction.
        binary_labels (bool): If :obj:`True`, keep every rated pair with a
            0/1 label (rating :math:`\geq` threshold) for BCE training,
            instead of dropping the negatives.  Needs
            :obj:`rating_threshold`.
        val_ratio (float): Fraction of training pairs held out.
        seed (int): Seed of the validation split.
        cache_dir (str, optional): Where PyG's processed copy is kept.
    """
    files = ('u.item', 'u.user', 'u1.base', 'u1.test')
    if binary_labels and rating_threshold is None:
        raise ValueError("'binary_labels=True' needs a 'rating_threshold'")
    _check_ratio('val_ratio', val_ratio)
    src = _dataset_dir(root, 'ml-100k', files)
    try:
        import pandas  # noqa: F401 (PyG's reader needs it)
    except ImportError as e:
        raise ImportError("Reading MovieLens-100K needs pandas: "
                          "pip install 'torch-geometric-unlearn[data]'") from e
    from torch_geometric.datasets import MovieLens100K

    cache = _cache_dir(cache_dir, 'ml-100k')
    _stage_raw(src, cache, files)
    try:
        hetero = MovieLens100K(cache, force_reload=_stale(cache))[0]
    except Exception as e:  # pandas / PyG parse errors
        shutil.rmtree(osp.join(cache, 'processed'), ignore_errors=True)
        raise DataFormatError(f"Could not parse MovieLens-100K files in "
                              f"'{src}': {e}") from e
    store = hetero['user', 'rates', 'movie']
    num_users, num_items = hetero['user'].num_nodes, hetero['movie'].num_nodes

    def select(index: Tensor, rating: Tensor):
        if rating_threshold is None:
            return index, None
        label = (rating >= rating_threshold).long()
        if binary_labels:
            return index, label
        return index[:, label == 1], None

    train, train_label = select(store.edge_index, store.rating)
    test, test_label = select(store.edge_label_index,
                              store.edge_label.long())
    train, val, out = _split(train, val_ratio, seed)
    val_label = None
    if train_label is not None:
        mask = torch.ones(train_label.numel(), dtype=torch.bool)
        mask[out] = False
        train_label, val_label = train_label[mask], train_label[out]
    return InteractionData(num_users, num_items, train, test, val,
                           train_label, val_label, test_label,
                           name='ml-100k')


def _stale(cache: str) -> bool:
    # Reprocess when a raw file is newer than PyG's processed copy.
    processed = osp.join(cache, 'processed', 'data.pt')
    if not osp.isfile(processed):
        return False
    raw = osp.join(cache, 'raw')
    return any(
        osp.getmtime(osp.join(raw, f)) > osp.getmtime(processed)
        for f in os.listdir(raw))


def gowalla(root: Optional[str] = None, val_ratio: float = 0.1, seed: int = 0,
            cache_dir: Optional[str] = None) -> InteractionData:
    r"""Gowalla in the LightGCN format, read by
    :class:`torch_geometric.datasets.AmazonBook` (whose item type is called
    :obj:`book`).  A fraction :obj:`val_ratio` of the training pairs is held
    out for validation.  See :func:`movielens_100k` for the arguments."""
    files = ('user_list.txt', 'item_list.txt', 'train.txt', 'test.txt')
    _check_ratio('val_ratio', val_ratio)
    src = _dataset_dir(root, 'gowalla', files)
    from torch_geometric.datasets import AmazonBook

    cache = _cache_dir(cache_dir, 'gowalla')
    _stage_raw(src, cache, files)
    try:
        hetero = AmazonBook(cache, force_reload=_stale(cache))[0]
    except Exception as e:
        shutil.rmtree(osp.join(cache, 'processed'), ignore_errors=True)
        raise DataFormatError(f"Could not parse Gowalla files in '{src}': "
                              f"{e}") from e
    store = hetero['user', 'rates', 'book']
    train, val, _ = _split(store.edge_index, val_ratio, seed)
    return InteractionData(hetero['user'].num_nodes, hetero['book'].num_nodes,
                           train, store.edge_label_index, val,
                           name='gowalla')


def _read_triples(path: str) -> Tensor:
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) < 2:
                    raise ValueError('fewer than 2 fields')
                rows.append((int(parts[0]), int(parts[1])))
            except ValueError as e:
                raise DataFormatError(f"'{path}', line {number}: expected "
                                      f"'user<TAB>item<TAB>weight' ({e})")
    if not rows:
        raise DataFormatError(f"'{path}' holds no interactions")
    return torch.tensor(rows, dtype=torch.long).t()


def lastfm(root: Optional[str] = None, val_ratio: float = 0.1,
           seed: int = 0) -> InteractionData:
    r"""Last.fm artists in the LightGCN subset (:obj:`data1.txt` train,
    :obj:`test1.txt` test, ids from 1).  A fraction :obj:`val_ratio` of the
    training pairs is held out for validation."""
    _check_ratio('val_ratio', val_ratio)
    src = _dataset_dir(root, 'lastfm', ('data1.txt', 'test1.txt'))
    train = _read_triples(osp.join(src, 'data1.txt')) - 1
    test = _read_triples(osp.join(src, 'test1.txt')) - 1
    both = torch.cat([train, test], dim=1)
    if both.min() < 0:
        raise DataFormatError(f"Last.fm files in '{src}' hold an id below 1")
    num_users, num_items = int(both[0].max()) + 1, int(both[1].max()) + 1
    train = _dedupe(train, num_items)
    train, val, _ = _split(train, val_ratio, seed)
    return InteractionData(num_users, num_items, train, test, val,
                           name='lastfm')


def _read_labelled(path: str) -> Tuple[Tensor, Tensor]:
    # 'user,item,label' with a header line, ids from 0.
    rows = []
    with open(path) as f:
        header = f.readline().strip()
        if header.replace(' ', '') != 'user,item,label':
            raise DataFormatError(f"'{path}': expected the header "
                                  f"'user,item,label' (got {header!r})")
        for number, line in enumerate(f, start=2):
            if not line.strip():
                continue
            parts = line.strip().split(',')
            try:
                if len(parts) != 3:
                    raise ValueError(f'{len(parts)} fields')
                row = tuple(int(p) for p in parts)
                if row[2] not in (0, 1) or min(row[:2]) < 0:
                    raise ValueError('ids must be >= 0 and labels 0 or 1')
            except ValueError as e:
                raise DataFormatError(f"'{path}', line {number}: expected "
                                      f"'user,item,label' ({e})") from None
            rows.append(row)
    if not rows:
        raise DataFormatError(f"'{path}' holds no pairs")
    table = torch.tensor(rows, dtype=torch.long)
    return table[:, :2].t().contiguous(), table[:, 2].contiguous()


def ifru_ml100k(root: Optional[str] = None):
    r"""The IFRU authors' own MovieLens-100K split for their paper's
    protocol (label = rating > 4, 5-core, 60/20/20 with seed 1024): BCE
    data whose last training pairs carry flipped labels.

    Returns:
        :class:`~torch_geometric_unlearn.data.deletion.Poisoning`: the data
        (training pairs :obj:`train_normal.csv` then
        :obj:`train_random.csv`, with labels) and the request, the flipped
        pairs of :obj:`train_random.csv` :obj:`[2, k]`.
    """
    from torch_geometric_unlearn.data.deletion import Poisoning
    files = ('train_normal.csv', 'train_random.csv', 'valid.csv', 'test.csv')
    src = _dataset_dir(root, 'ifru-ml100k', files)
    parts = [_read_labelled(osp.join(src, f)) for f in files]
    every = torch.cat([index for index, _ in parts], dim=1)
    num_users, num_items = (int(every[0].max()) + 1,
                            int(every[1].max()) + 1)
    (normal, normal_label), (flipped, flipped_label) = parts[:2]
    data = InteractionData(num_users, num_items,
                           torch.cat([normal, flipped], dim=1),
                           parts[3][0], parts[2][0],
                           torch.cat([normal_label, flipped_label]),
                           parts[2][1], parts[3][1], name='ifru-ml100k')
    return Poisoning(data, flipped)


def load_dataset(name: str, root: Optional[str] = None,
                 **kwargs) -> InteractionData:
    r"""Loads a data set by name: :obj:`'synthetic'`, :obj:`'ml-100k'`,
    :obj:`'gowalla'`, :obj:`'lastfm'` or :obj:`'ifru-ml100k'` (its data;
    see :func:`ifru_ml100k` for its request).  Extra keyword arguments go
    to the loader."""
    loaders = {
        'ml-100k': movielens_100k,
        'gowalla': gowalla,
        'lastfm': lastfm,
        'ifru-ml100k': lambda root: ifru_ml100k(root).data,
    }
    if name == 'synthetic':
        return synthetic(**kwargs)
    if name not in loaders:
        raise ValueError(f"Unknown data set '{name}' (choose from "
                         f"{['synthetic'] + list(loaders)})")
    return loaders[name](root, **kwargs)
