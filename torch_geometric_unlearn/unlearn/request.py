r"""Deletion requests: the forms a request may take (pairs, users, items,
node pairs), their validation into a :class:`Request`, and the errors that
name what is wrong with one."""
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys)

__all__ = ['RequestError', 'AlreadyForgottenError', 'Request',
           'resolve_pairs', 'build_request']


class RequestError(ValueError):
    r"""A deletion request that cannot be carried out; nothing was
    changed.  In a batch, :attr:`position` is the failing request's index.
    """
    position: Optional[int] = None


class AlreadyForgottenError(RequestError):
    r"""The request names interactions that an earlier request already
    forgot."""


@dataclass
class Request:
    r"""A validated request, as the algorithms see it.

    Args:
        pairs (torch.Tensor): Forgotten user-item pairs, :obj:`[2, k]`.
        train_mask (torch.Tensor): Training pairs that remain, :obj:`[N]`.
        example_mask (torch.Tensor): Training examples that remain,
            :obj:`[M]`.
        deleted_edges (torch.Tensor): The forgotten pairs that are edges of
            the message-passing graph, as homogeneous node pairs
            :obj:`[2, k']` (items offset by the number of users).
    """
    pairs: Tensor
    train_mask: Tensor
    example_mask: Tensor
    deleted_edges: Tensor


def request_arguments(spec) -> Dict[str, Optional[Tensor]]:
    # The keyword arguments of Unlearner.unlearn for one request of a batch.
    names = ('interactions', 'users', 'items', 'edge_index')
    if not isinstance(spec, Mapping):
        spec = {'interactions': spec}
    unknown = set(spec) - set(names)
    if unknown:
        raise RequestError(f"unknown keys {sorted(unknown)}; give one of "
                           f"{list(names)}")
    return {name: spec.get(name) for name in names}


def in_batch(error: RequestError, position: int) -> RequestError:
    # The error of one request of a batch, saying which.
    failed = type(error)(f'request {position}: {error}')
    failed.position = position
    return failed


def _pairs(interactions) -> Tensor:
    # User-item pairs as PyG lays them out, [2, k] with a pair per column;
    # or a (users, items) tuple of two [k] tensors, whose layout is never in
    # doubt.  [2, 2] is refused: rows of pairs and columns of pairs look
    # alike there, and the wrong reading forgets the wrong interactions.
    if isinstance(interactions, (tuple, list)):
        if len(interactions) != 2:
            raise RequestError("'interactions' given as a sequence must be "
                               "(users, items), two [k] tensors")
        for part, name in zip(interactions, ('users', 'items')):
            _check_long(part, f'interactions {name}', 1)
        if interactions[0].numel() != interactions[1].numel():
            raise RequestError(f"'interactions' (users, items) differ in "
                               f"length ({interactions[0].numel()} against "
                               f"{interactions[1].numel()})")
        return torch.stack(list(interactions))
    if isinstance(interactions, Tensor) and interactions.dim() == 2 and \
            interactions.size(1) == 2 and interactions.size(0) != 2:
        raise RequestError(f"'interactions' must have shape [2, k], a pair "
                           f"per column as in PyG's edge_label_index (got "
                           f"{list(interactions.shape)}: rows of pairs? "
                           f"pass interactions.t())")
    _check_long(interactions, 'interactions', 2)
    if interactions.shape == (2, 2):
        raise RequestError(
            "A [2, 2] 'interactions' tensor is ambiguous: two pairs as "
            "columns [[u1, u2], [i1, i2]] or as rows [[u1, i1], [u2, i2]] "
            "look alike.  Pass (users, items), a tuple of two [2] tensors")
    return interactions


def _id_list(ids, what: str):
    # A list or tuple of Python ints, as users write ids, as a tensor;
    # anything else is left to the tensor checks.
    if isinstance(ids, (list, tuple)):
        if not all(type(x) is int for x in ids):
            raise RequestError(f"'{what}' given as a list must hold Python "
                               f"ints (got {ids[:5]!r})")
        return torch.tensor(ids, dtype=torch.long).view(-1)
    return ids


def _check_long(x, what: str, dim: int):
    if not isinstance(x, Tensor) or x.dtype != torch.long:
        raise RequestError(f"'{what}' must be a torch.long tensor")
    if x.dim() != dim or (dim == 2 and x.size(0) != 2):
        shape = '[2, k]' if dim == 2 else '[n]'
        raise RequestError(f"'{what}' must have shape {shape} "
                           f"(got {list(x.shape)})")


def resolve_pairs(data: InteractionData, forgotten: Tensor, interactions,
                  users, items, edge_index, node_ids: bool = False) -> Tensor:
    r"""The training pairs :obj:`[2, k]` (sorted, unique, item ids) that
    exactly one of :obj:`interactions`, :obj:`users`, :obj:`items` or
    :obj:`edge_index` names (see
    :meth:`~torch_geometric_unlearn.unlearn.base.Unlearner.unlearn`), with
    :obj:`forgotten` the keys of the pairs forgotten before; raises a
    :class:`RequestError` naming what is wrong.  Pairs are checked against
    the data here, against the training pairs by :func:`build_request`.

    With :obj:`node_ids`, the items of :obj:`interactions` and :obj:`items`
    are node ids (offset by :obj:`data.num_users`), as a loop on PyG's
    homogeneous graph numbers them; ids below the offset are refused, with
    both ranges named, since read as item ids they would forget another
    item's pairs."""
    given = [x is not None for x in (interactions, users, items,
                                     edge_index)]
    if sum(given) != 1:
        raise RequestError("Give exactly one of 'interactions', 'users', "
                           "'items' and 'edge_index'")
    if edge_index is not None:
        _check_long(edge_index, 'edge_index', 2)
        if edge_index.numel() and (edge_index.min() < 0 or
                                   edge_index.max() >= data.num_nodes):
            raise RequestError(f"'edge_index' holds node ids outside "
                               f"[0, {data.num_nodes})")
        low, high = edge_index.min(0).values, edge_index.max(0).values
        if ((low >= data.num_users) | (high < data.num_users)).any():
            raise RequestError("'edge_index' holds a pair that does not "
                               "join a user and an item")
        # Node pairs have one layout, so [2, 2] is not ambiguous here.
        interactions = torch.stack([low, high - data.num_users])
    elif interactions is not None:
        interactions = _pairs(interactions)
        if node_ids:
            interactions = torch.stack([
                interactions[0],
                _item_ids(data, interactions[1], "interactions' items")])
    if interactions is not None:
        try:
            data.check_pairs(interactions, 'interactions')
        except ValueError as e:
            raise RequestError(str(e)) from None
        keys = torch.unique(pair_keys(interactions, data.num_items))
        return torch.stack([keys // data.num_items,
                            keys % data.num_items])

    if node_ids and items is not None:
        items = _id_list(items, 'items')
        _check_long(items, 'items', 1)
        items = _item_ids(data, items, 'items')
    ids, row, kind, size = ((users, 0, 'user', data.num_users)
                            if users is not None else
                            (items, 1, 'item', data.num_items))
    ids = _id_list(ids, f'{kind}s')
    _check_long(ids, f'{kind}s', 1)
    if ids.numel() and (ids.min() < 0 or ids.max() >= size):
        raise RequestError(f"'{kind}s' holds ids outside [0, {size})")
    ids = torch.unique(ids)
    pairs = data.train_index[:, torch.isin(data.train_index[row], ids)]
    missing = ids[~torch.isin(ids, pairs[row])]
    if missing.numel():
        gone = torch.isin(missing, forgotten // data.num_items
                          if row == 0 else forgotten %
                          data.num_items)
        error = AlreadyForgottenError if gone.all() else RequestError
        shown = missing[:5] + (data.num_users if node_ids and row else 0)
        raise error(f"{kind}s {shown.tolist()} have no training "
                    f"interactions" +
                    (" left: they were forgotten before" if gone.all()
                     else ""))
    keys = pair_keys(pairs, data.num_items).sort()[0]
    return torch.stack([keys // data.num_items, keys % data.num_items])


def _item_ids(data: InteractionData, nodes: Tensor, what: str) -> Tensor:
    # Item node ids to item ids, refusing what is not an item's node id.
    users, end = data.num_users, data.num_nodes
    outside = (nodes < users) | (nodes >= end)
    if outside.any():
        bad = nodes[outside][:5].tolist()
        raise RequestError(
            f"'{what}' holds {bad}, not item node ids: this unlearner reads "
            f"ids as its training loop numbered them, users in [0, {users}) "
            f"and items offset by num_users, in [{users}, {end}) (item id i "
            f"is node {users} + i)")
    return nodes - users


def build_request(data: InteractionData, examples: Tensor,
                  forgotten: Tensor, pairs: Tensor) -> Request:
    r"""The :class:`Request` that forgets the training pairs :obj:`pairs`
    :obj:`[2, k]` of :obj:`data` and their :obj:`examples`; raises an
    :class:`AlreadyForgottenError` where every unknown pair is among the
    :obj:`forgotten` keys, else a :class:`RequestError`."""
    keys = pair_keys(pairs, data.num_items)
    train_keys = pair_keys(data.train_index, data.num_items)
    known = torch.isin(keys, train_keys)
    if not known.all():
        bad = pairs[:, ~known]
        gone = torch.isin(keys[~known], forgotten)
        pretty = [tuple(p) for p in bad[:, :5].t().tolist()]
        if gone.all():
            raise AlreadyForgottenError(
                f"Interactions {pretty} were already forgotten")
        raise RequestError(f"Interactions {pretty} (user, item) are not "
                           f"training interactions")
    train_mask = ~torch.isin(train_keys, keys)
    if not bool(train_mask.any()):
        raise RequestError("The request names every training interaction "
                           "left: no model remains to update.  Retrain on "
                           "new data, or delete the model")
    example_mask = ~torch.isin(
        pair_keys(examples[:2], data.num_items), keys)
    positive = (torch.ones_like(train_mask) if data.train_label is None
                else data.train_label == 1)
    edges = data.train_index[:, ~train_mask & positive]
    deleted = torch.stack([edges[0], edges[1] + data.num_users])
    return Request(pairs, train_mask, example_mask, deleted)
