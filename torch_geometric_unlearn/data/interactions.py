"""The interaction-data object shared by every loader, trainer and
unlearner."""
from dataclasses import dataclass, replace
from typing import Iterable, Optional

import torch
from torch import Tensor

from torch_geometric_unlearn.checks import check_pairs


@dataclass
class InteractionData:
    r"""User-item interaction data split into train, validation and test.

    Interactions are stored in *user-item index space*: a
    :obj:`[2, N]` long tensor whose first row holds user ids in
    :obj:`[0, num_users)` and whose second row holds item ids in
    :obj:`[0, num_items)`.  The homogeneous message-passing graph
    (:attr:`edge_index`) offsets items by :obj:`num_users`, as PyG's
    LightGCN example does.

    Args:
        num_users (int): Number of users.
        num_items (int): Number of items.
        train_index (torch.Tensor): Training pairs, shape :obj:`[2, N]`.
        test_index (torch.Tensor, optional): Test pairs, shape
            :obj:`[2, N_test]`, for evaluation; unlearning never needs
            them.
        val_index (torch.Tensor, optional): Validation pairs, shape
            :obj:`[2, N_val]`.
        train_label (torch.Tensor, optional): Binary labels of the training
            pairs, shape :obj:`[N]`, for BCE.  :obj:`None` means every
            training pair is a positive (implicit feedback).
        val_label (torch.Tensor, optional): Labels of :obj:`val_index`.
        test_label (torch.Tensor, optional): Labels of :obj:`test_index`.
        name (str): A short name for reports.
    """
    num_users: int
    num_items: int
    train_index: Tensor
    test_index: Optional[Tensor] = None
    val_index: Optional[Tensor] = None
    train_label: Optional[Tensor] = None
    val_label: Optional[Tensor] = None
    test_label: Optional[Tensor] = None
    name: str = 'interactions'

    def __post_init__(self):
        for attr in ('num_users', 'num_items'):
            value = getattr(self, attr)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"'{attr}' must be a positive int "
                                 f"(got {value!r})")
        for split in ('train', 'val', 'test'):
            index = getattr(self, f'{split}_index')
            if index is None:
                if split == 'train':
                    raise ValueError("'train_index' is required")
                continue
            self.check_pairs(index, f'{split}_index')
            label = getattr(self, f'{split}_label')
            if label is not None:
                if not isinstance(label, Tensor) or label.dim() != 1:
                    raise ValueError(f"'{split}_label' must be a 1-D tensor")
                if label.numel() != index.size(1):
                    raise ValueError(
                        f"'{split}_label' has {label.numel()} entries but "
                        f"'{split}_index' has {index.size(1)} pairs")
                if not torch.isin(label, label.new_tensor([0, 1])).all():
                    raise ValueError(f"'{split}_label' must hold only 0 and "
                                     f"1")
        if self.train_index.size(1) == 0:
            raise ValueError("'train_index' holds no interactions")

    def check_pairs(self, index: Tensor, what: str = 'index'):
        r"""Raises a :class:`ValueError` naming the problem unless
        :obj:`index` is a :obj:`[2, N]` long tensor of valid user-item
        pairs."""
        check_pairs(index, what, '[2, N]')
        if index.numel() == 0:
            return
        for row, (kind, size) in enumerate([('user', self.num_users),
                                            ('item', self.num_items)]):
            low, high = int(index[row].min()), int(index[row].max())
            if low < 0 or high >= size:
                bad = low if low < 0 else high
                raise ValueError(f"'{what}' holds {kind} id {bad}, outside "
                                 f"[0, {size})")

    @property
    def num_nodes(self) -> int:
        r"""Number of nodes of the homogeneous graph (users + items)."""
        return self.num_users + self.num_items

    @property
    def num_train(self) -> int:
        return self.train_index.size(1)

    @property
    def train_positive_index(self) -> Tensor:
        r"""The training pairs that are edges of the message-passing graph:
        all of them for implicit feedback, the positives for labelled
        data.  Shape :obj:`[2, N_pos]`."""
        if self.train_label is None:
            return self.train_index
        return self.train_index[:, self.train_label == 1]

    @property
    def edge_index(self) -> Tensor:
        r"""The undirected homogeneous message-passing graph of the
        positive training pairs, items offset by :obj:`num_users`.
        Shape :obj:`[2, 2 * N_pos]`."""
        return to_undirected_homogeneous(self.train_positive_index,
                                         self.num_users)

    def replace(self, **changes) -> 'InteractionData':
        r"""Returns a validated copy with the given fields changed."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        val, test = (0 if x is None else x.size(1)
                     for x in (self.val_index, self.test_index))
        return (f'{self.__class__.__name__}({self.name}, '
                f'users={self.num_users}, items={self.num_items}, '
                f'train={self.num_train}, val={val}, test={test})')


def to_undirected_homogeneous(index: Tensor, num_users: int) -> Tensor:
    r"""Maps user-item pairs :obj:`[2, N]` to the undirected homogeneous
    :obj:`edge_index` :obj:`[2, 2N]`: the user-to-item direction first,
    then the reverse, items offset by :obj:`num_users`."""
    user, item = index[0], index[1] + num_users
    return torch.stack([torch.cat([user, item]), torch.cat([item, user])])


def pair_keys(index: Tensor, num_items: int) -> Tensor:
    r"""Encodes user-item pairs :obj:`[2, N]` as unique int64 keys
    :obj:`user * num_items + item`, shape :obj:`[N]`."""
    return index[0] * num_items + index[1]


def remaining_data(data: InteractionData,
                   train_mask: Tensor) -> InteractionData:
    r"""The data with only the training pairs in :obj:`train_mask`
    :obj:`[N]` (bool)."""
    label = data.train_label
    return data.replace(
        train_index=data.train_index[:, train_mask],
        train_label=None if label is None else label[train_mask])


def sample_negatives(pos_index: Tensor, num_items: int, forbidden: Tensor,
                     generator: torch.Generator,
                     max_rounds: int = 100) -> Tensor:
    r"""Draws one item per pair in :obj:`pos_index` :obj:`[2, N]`, uniformly
    among the items the user has no pair with.

    Args:
        forbidden (torch.Tensor): Sorted keys (see
            :func:`~torch_geometric_unlearn.data.interactions.pair_keys`) of
            the pairs a negative must avoid.
        max_rounds (int): Rounds of rejection; the pairs still drawing
            their users' own items after them (users with almost every
            item) draw among those users' other items, listed.

    Returns:
        torch.Tensor: Negative item ids, shape :obj:`[N]`.

    Raises:
        ValueError: If a user has a pair with every item.
    """
    user = pos_index[0]
    neg = torch.randint(num_items, (user.numel(), ), generator=generator)
    todo = torch.arange(user.numel())
    for _ in range(max_rounds):
        keys = user[todo] * num_items + neg[todo]
        pos = torch.searchsorted(forbidden, keys).clamp(max=forbidden.numel() -
                                                        1)
        todo = todo[forbidden[pos] == keys]
        if todo.numel() == 0:
            return neg
        neg[todo] = torch.randint(num_items, (todo.numel(), ),
                                  generator=generator)
    neg[todo] = _unseen_items(user[todo], num_items, forbidden, torch.randint(
        2**62, (todo.numel(), ), generator=generator))
    return neg


def hashed_negatives(pos_index: Tensor, num_items: int,
                     forbidden: Optional[Tensor], salt: int,
                     max_rounds: int = 100) -> Tensor:
    r"""One item per pair in :obj:`pos_index` :obj:`[2, N]`, uniform in
    effect but a fixed function of the pair and :obj:`salt`: the same pair
    gets the same item in any order and on any shard of the pairs.

    Args:
        forbidden (torch.Tensor, optional): Sorted keys (see
            :func:`pair_keys`) of the pairs a negative must avoid; any item
            if :obj:`None`.
        salt (int): Another salt, another draw.
        max_rounds (int): Rounds of rejection; the pairs still drawing
            their users' own items after them (users with almost every
            item) draw among those users' other items, listed.

    Returns:
        torch.Tensor: Item ids, shape :obj:`[N]`.

    Raises:
        ValueError: If every item is forbidden to a user.
    """
    keys = pos_index[0] * num_items + pos_index[1]
    neg = torch.empty_like(keys)
    todo = torch.arange(keys.numel(), device=keys.device)
    for round in range(max_rounds):
        neg[todo] = _mix(keys[todo] * 1_000_003 + salt * 8_191 + round) \
            % num_items
        if forbidden is None:
            return neg
        drawn = pos_index[0, todo] * num_items + neg[todo]
        pos = torch.searchsorted(forbidden, drawn).clamp(
            max=forbidden.numel() - 1)
        todo = todo[forbidden[pos] == drawn]
        if todo.numel() == 0:
            return neg
    neg[todo] = _unseen_items(pos_index[0, todo], num_items, forbidden, _mix(
        keys[todo] * 1_000_003 + salt * 8_191 + max_rounds))
    return neg


def hashed_negative_rows(pos_index: Tensor, num_items: int,
                         forbidden: Optional[Tensor],
                         salts: Iterable[int]) -> Tensor:
    r"""One row of :func:`hashed_negatives` per salt in :obj:`salts`:
    :obj:`[len(salts), N]` item ids for the pairs :obj:`pos_index`
    :obj:`[2, N]`."""
    return torch.stack([hashed_negatives(pos_index, num_items, forbidden,
                                         salt) for salt in salts])


def _unseen_items(users: Tensor, num_items: int, forbidden: Tensor,
                  choice: Tensor) -> Tensor:
    # For the pairs whose draws kept hitting their users' own items (a user
    # with almost every item): the choice-th (modulo their number) of the
    # items the user has no pair with, listed.
    out = torch.empty_like(users)
    for user in torch.unique(users).tolist():
        bounds = torch.tensor([user, user + 1], dtype=forbidden.dtype,
                              device=forbidden.device) * num_items
        low, high = torch.searchsorted(forbidden, bounds).tolist()
        free = torch.ones(num_items, dtype=torch.bool, device=users.device)
        free[(forbidden[low:high] - user * num_items).to(users.device)] = \
            False
        items = free.nonzero().view(-1)
        if items.numel() == 0:
            raise ValueError(f"User {user} has a pair with every item: no "
                             f"negative can be drawn among the items it has "
                             f"none with (the 'unseen' sampler)")
        mask = users == user
        out[mask] = items[choice[mask] % items.numel()]
    return out


def _mix(x: Tensor) -> Tensor:
    # A 64-bit integer hash (splitmix64's finaliser, on the 63 bits that
    # stay non-negative), elementwise.
    x = x & 0x7FFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0x3F58476D1CE4E5B9) & 0x7FFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x14D049BB133111EB) & 0x7FFFFFFFFFFFFFFF
    return x ^ (x >> 31)
