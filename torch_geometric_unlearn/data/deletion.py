r"""Seedable samplers of deletion requests.

Each sampler returns the training interactions to forget as user-item
pairs :obj:`[2, k]`; the poisoning scenarios also return the poisoned data
that a model should be trained on first.
"""
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _count(data: InteractionData, count: Optional[int],
           fraction: Optional[float], total: int) -> int:
    if (count is None) == (fraction is None):
        raise ValueError("Give exactly one of 'count' and 'fraction'")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"'fraction' must lie in (0, 1] "
                             f"(got {fraction})")
        count = max(1, int(round(fraction * total)))
    if not 1 <= count <= total:
        raise ValueError(f"'count' must lie in [1, {total}] (got {count})")
    return count


def random_interactions(data: InteractionData, count: Optional[int] = None,
                        fraction: Optional[float] = None,
                        seed: int = 0) -> Tensor:
    r"""Random training interactions, by :obj:`count` or :obj:`fraction` of
    the message-passing (positive) training pairs.

    Returns:
        torch.Tensor: User-item pairs, shape :obj:`[2, k]`, sorted.
    """
    pos = data.train_positive_index
    count = _count(data, count, fraction, pos.size(1))
    pick = torch.randperm(pos.size(1), generator=_generator(seed))[:count]
    return pos[:, pick.sort()[0]]


def _sample_ids(num: int, have: Tensor, what: str, seed: int) -> Tensor:
    candidates = torch.unique(have)
    if not 1 <= num <= candidates.numel():
        raise ValueError(f"'num_{what}s' must lie in [1, {candidates.numel()}]"
                         f" ({what}s with training interactions) (got {num})")
    pick = torch.randperm(candidates.numel(), generator=_generator(seed))
    return candidates[pick[:num]].sort()[0]


def user_interactions(data: InteractionData, users: Tensor) -> Tensor:
    r"""All positive training interactions of the given users (a "forget
    me" request), shape :obj:`[2, k]`."""
    pos = data.train_positive_index
    return pos[:, torch.isin(pos[0], users)]


def item_interactions(data: InteractionData, items: Tensor) -> Tensor:
    r"""All positive training interactions of the given items, shape
    :obj:`[2, k]`."""
    pos = data.train_positive_index
    return pos[:, torch.isin(pos[1], items)]


def random_users(data: InteractionData, num_users: int,
                 seed: int = 0) -> Tensor:
    r"""Ids of :obj:`num_users` random users with training interactions,
    shape :obj:`[num_users]`; see :func:`user_interactions`."""
    return _sample_ids(num_users, data.train_positive_index[0], 'user', seed)


#: How :func:`users_by_activity` chooses users.
ACTIVITY = ('random', 'active', 'inactive')


def users_by_activity(data: InteractionData, count: Optional[int] = None,
                      fraction: Optional[float] = None,
                      which: str = 'random', seed: int = 0) -> Tensor:
    r"""Whole users to forget as the recommendation-unlearning protocols
    draw them (CURE4Rec): :obj:`count` users, or a :obj:`fraction` of the
    users with training interactions, chosen at random, among the most
    active (:obj:`'active'`, the "core" users) or the least active
    (:obj:`'inactive'`, the "edge" users) by number of positive training
    interactions; ties are broken by a seeded shuffle.

    Args:
        data (InteractionData): The data.
        count (int, optional): Number of users.
        fraction (float, optional): Share of the users with training
            interactions, in :obj:`(0, 1]`.
        which (str): :obj:`'random'`, :obj:`'active'` or
            :obj:`'inactive'`.
        seed (int): Seed of the draw (and of the tie-breaking shuffle).

    Returns:
        torch.Tensor: User ids :obj:`[n]`, sorted; forget them with
        :func:`user_interactions` or :obj:`unlearn(users=...)`.
    """
    if which not in ACTIVITY:
        raise ValueError(f"'which' must be one of {list(ACTIVITY)} (got "
                         f"{which!r})")
    users = data.train_positive_index[0]
    candidates = torch.unique(users)
    count = _count(data, count, fraction, candidates.numel())
    order = torch.randperm(candidates.numel(), generator=_generator(seed))
    if which != 'random':
        degree = torch.bincount(users, minlength=data.num_users)[
            candidates[order]]
        # A stable sort keeps the shuffled order among equal degrees.
        order = order[torch.sort(degree, stable=True,
                                 descending=which == 'active').indices]
    return candidates[order[:count]].sort()[0]


def request_stream(data: InteractionData, num_requests: int, size: int,
                   kind: str = 'random', seed: int = 0) -> List[Tensor]:
    r"""A stream of :obj:`num_requests` disjoint requests (ERASE's repeated
    small requests): :obj:`size` random positive training pairs each
    (:obj:`kind='random'`), or every pair of :obj:`size` random users each
    (:obj:`kind='users'`).

    Returns:
        List[torch.Tensor]: The requests' pairs, :obj:`[2, k]` each, sorted.
    """
    if kind not in ('random', 'users'):
        raise ValueError(f"'kind' must be 'random' or 'users' (got "
                         f"{kind!r})")
    for name, value in (('num_requests', num_requests), ('size', size)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < 1:
            raise ValueError(f"'{name}' must be a positive int (got "
                             f"{value!r})")
    pos = data.train_positive_index
    pool = pos if kind == 'random' else torch.unique(pos[0]).view(1, -1)
    if num_requests * size > pool.size(1):
        raise ValueError(f"{num_requests} requests of {size} need "
                         f"{num_requests * size} {kind} entries; the data "
                         f"has {pool.size(1)}")
    pick = torch.randperm(pool.size(1), generator=_generator(seed))
    out = []
    for part in pick[:num_requests * size].view(num_requests, size):
        if kind == 'random':
            keys = pair_keys(pos[:, part], data.num_items).sort()[0]
            out.append(torch.stack([keys // data.num_items,
                                    keys % data.num_items]))
        else:
            out.append(user_interactions(data, pool[0, part].sort()[0]))
    return out


def random_items(data: InteractionData, num_items: int,
                 seed: int = 0) -> Tensor:
    r"""Ids of :obj:`num_items` random items with training interactions,
    shape :obj:`[num_items]`; see :func:`item_interactions`."""
    return _sample_ids(num_items, data.train_positive_index[1], 'item', seed)


@dataclass
class Poisoning:
    r"""A poisoning scenario.

    Args:
        data (InteractionData): The poisoned data to train on.
        request (torch.Tensor): The poisoned training pairs, :obj:`[2, k]`:
            what unlearning must remove.
        target_items (torch.Tensor, optional): The items the attack pushes.
    """
    data: InteractionData
    request: Tensor
    target_items: Optional[Tensor] = None


def inject_fake_interactions(data: InteractionData, fraction: float = 0.01,
                             num_targets: int = 5,
                             seed: int = 0) -> Poisoning:
    r"""A promotion attack: adds :obj:`fraction` times the number of
    training interactions as fake interactions between random real users
    and :obj:`num_targets` unpopular target items.

    Targets are drawn among the items in the less popular half by training
    degree, so that a successful attack visibly lifts them into users'
    top-k lists.  The fake pairs never duplicate known interactions.
    """
    if data.train_label is not None:
        raise ValueError("Fake-interaction injection needs implicit data; "
                         "use 'flip_labels' for labelled data")
    if not 0 < fraction < 1:
        raise ValueError(f"'fraction' must lie in (0, 1) (got {fraction})")
    gen = _generator(seed)
    degree = torch.bincount(data.train_index[1], minlength=data.num_items)
    unpopular = degree.argsort(stable=True)[:data.num_items // 2]
    if not 1 <= num_targets <= unpopular.numel():
        raise ValueError(f"'num_targets' must lie in [1, {unpopular.numel()}]"
                         f" (got {num_targets})")
    targets = unpopular[torch.randperm(unpopular.numel(),
                                       generator=gen)[:num_targets]].sort()[0]
    count = max(1, int(round(fraction * data.num_train)))
    known = [data.train_index] + [
        x for x in (data.val_index, data.test_index) if x is not None]
    known = torch.unique(pair_keys(torch.cat(known, 1), data.num_items))
    if count > data.num_users * num_targets - int(
            torch.isin(known % data.num_items, targets).sum()):
        raise ValueError(f"Cannot inject {count} distinct fake interactions "
                         f"on {num_targets} targets: add targets or lower "
                         f"'fraction'")

    fake = torch.empty(0, dtype=torch.long)
    while fake.numel() < count:
        user = torch.randint(data.num_users, (2 * count, ), generator=gen)
        item = targets[torch.randint(num_targets, (2 * count, ),
                                     generator=gen)]
        fake = torch.unique(torch.cat([fake, user * data.num_items + item]))
        fake = fake[~torch.isin(fake, known)]
    fake = fake[torch.randperm(fake.numel(), generator=gen)[:count]]
    request = torch.stack([fake // data.num_items, fake % data.num_items])
    train = torch.cat([data.train_index, request], dim=1)
    poisoned = data.replace(train_index=train, name=f'{data.name}+poison')
    return Poisoning(poisoned, request, targets)


def inject_fake_users(data: InteractionData, num_fake: int,
                      num_targets: int = 5, num_filler: int = 20,
                      seed: int = 0) -> Poisoning:
    r"""A targeted promotion attack by fake users (a bandwagon shilling
    attack): :obj:`num_fake` new users each interact with all
    :obj:`num_targets` target items and with :obj:`num_filler` items drawn
    from the most popular tenth, so that the targets look like what popular
    items' fans like.  Targets are drawn between the 25th and 50th
    percentile of popularity: the tail is out of reach (on MovieLens-100K
    150 fake users, 16% of the real ones, left tail targets out of every
    real user's top-20 under MF and 2-layer LightGCN).  With fake users
    numbering 20% of the real ones, these targets' hit ratio among real
    users rose from 0.000-0.011 to 0.04-0.32 on MovieLens-100K and to
    0.24-0.93 on Last.fm (``benchmarks/faithful.py``).

    The fake users are appended after the real ones (ids
    :obj:`num_users` and up) and hold no validation or test pairs.  Removing
    them (the request: every fake interaction) should take the targets back
    out of real users' top lists; see
    :func:`~torch_geometric_unlearn.evaluation.metrics.hit_ratio`.

    Returns:
        Poisoning: The poisoned data, the fake interactions :obj:`[2, k]`
        and the target items.
    """
    if data.train_label is not None:
        raise ValueError("Fake users need implicit data")
    popular_pool = max(1, data.num_items // 10)
    middle = slice(data.num_items // 4, data.num_items // 2)
    for name, value, low, high in (
            ('num_fake', num_fake, 1, None),
            ('num_targets', num_targets, 1,
             data.num_items // 2 - data.num_items // 4),
            ('num_filler', num_filler, 0, popular_pool)):
        if isinstance(value, bool) or not isinstance(value, int) or \
                value < low or (high is not None and value > high):
            raise ValueError(f"'{name}' must be an int in [{low}, "
                             f"{high if high is not None else 'inf'}] "
                             f"(got {value!r})")
    gen = _generator(seed)
    degree = torch.bincount(data.train_index[1], minlength=data.num_items)
    order = degree.argsort(descending=True, stable=True)
    band = order[middle]
    targets = band[torch.randperm(band.numel(),
                                  generator=gen)[:num_targets]].sort()[0]
    popular = order[:popular_pool]
    user = torch.arange(data.num_users, data.num_users + num_fake)
    filler = torch.stack([
        popular[torch.randperm(popular.numel(), generator=gen)[:num_filler]]
        for _ in range(num_fake)
    ]) if num_filler else torch.empty(num_fake, 0, dtype=torch.long)
    items = torch.cat([targets.expand(num_fake, -1), filler], dim=1)
    request = torch.stack([user.repeat_interleave(items.size(1)),
                           items.reshape(-1)])
    poisoned = data.replace(
        num_users=data.num_users + num_fake,
        train_index=torch.cat([data.train_index, request], dim=1),
        name=f'{data.name}+fake-users')
    return Poisoning(poisoned, request, targets)


def flip_labels(data: InteractionData, fraction: float = 0.01,
                seed: int = 0) -> Poisoning:
    r"""The IFRU paper's scenario for labelled data: flips the labels of a
    random :obj:`fraction` of the training pairs.  Removing those pairs
    (their corrupt versions) should restore accuracy."""
    if data.train_label is None:
        raise ValueError("'flip_labels' needs labelled training data "
                         "('train_label')")
    count = _count(data, None, fraction, data.num_train)
    pick = torch.randperm(data.num_train, generator=_generator(seed))[:count]
    label = data.train_label.clone()
    label[pick] = 1 - label[pick]
    poisoned = data.replace(train_label=label, name=f'{data.name}+flipped')
    return Poisoning(poisoned, data.train_index[:, pick.sort()[0]])
