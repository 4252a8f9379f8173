r"""Request files, read strictly.

A deletion cannot be undone, so a file that does not say exactly which
interactions to forget is refused, with the file, the line (or entry) and
the problem, instead of being reshaped into some request:

* **CSV** with a header :obj:`user,item` (interactions), :obj:`user`
  (users) or :obj:`item` (items); every row holds exactly as many values as
  the header names, each a plain integer (no floats, no blanks); empty
  lines are skipped.
* **JSON** :obj:`{"interactions": [[user, item], ...]}`,
  :obj:`{"users": [...]}` or :obj:`{"items": [...]}`: JSON integers only
  (:obj:`1.0`, :obj:`true` and :obj:`"1"` are refused), every pair exactly
  two of them.

Ids are checked against the data (range, training pairs) by the unlearner.
"""
import csv
import json
import re
from typing import Dict, List

import torch
from torch import Tensor

KINDS = {('user', 'item'): 'interactions', ('user', ): 'users',
         ('item', ): 'items'}
_INTEGER = re.compile(r'[+-]?[0-9]+')


def read_request(path: str) -> Dict[str, Tensor]:
    r"""Reads a request file (see the module) and returns the keyword
    arguments of :meth:`~torch_geometric_unlearn.unlearn.base.Unlearner.
    unlearn`: :obj:`interactions` as a :obj:`(users, items)` tuple of
    :obj:`[k]` tensors (the file's rows are pairs, so no layout is left to
    guess), or :obj:`users` or :obj:`items` :obj:`[n]`, all
    :obj:`torch.long`.

    Raises:
        ValueError: Naming the file, the line or entry, and the problem.
        FileNotFoundError: If there is no such file.
    """
    if str(path).endswith('.json'):
        return _read_json(path)
    return _read_csv(path)


def _read_csv(path: str) -> Dict[str, Tensor]:
    with open(path, newline='') as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, row) for row in reader]
    header = [h.strip() for h in rows[0][1]] if rows else []
    if tuple(header) not in KINDS:
        raise ValueError(f"'{path}' needs a CSV header 'user,item', 'user' "
                         f"or 'item' (got {header})")
    values: List[List[int]] = []
    for line, row in rows[1:]:
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"'{path}' line {line}: {len(row)} values, "
                             f"but the header '{','.join(header)}' names "
                             f"{len(header)}")
        cells = [cell.strip() for cell in row]
        for cell in cells:
            if not _INTEGER.fullmatch(cell):
                raise ValueError(f"'{path}' line {line}: {cell!r} is not an "
                                 f"integer id")
        ids = [int(cell) for cell in cells]
        if not all(_is_int(x) for x in ids):
            raise ValueError(f"'{path}' line {line}: an id is too large")
        values.append(ids)
    tensor = torch.tensor(values, dtype=torch.long).view(-1, len(header))
    kind = KINDS[tuple(header)]
    if kind == 'interactions':
        return {kind: (tensor[:, 0].contiguous(), tensor[:, 1].contiguous())}
    return {kind: tensor.view(-1)}


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs):
    # json keeps the last of repeated keys; a request must not guess.
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(repr(key))
        out[key] = value
    return out


def _read_json(path: str) -> Dict[str, Tensor]:
    with open(path) as f:
        try:
            raw = json.load(f, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise ValueError(f"'{path}' is not valid JSON: {e}") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"'{path}' is not UTF-8 text: {e}") from None
        except _DuplicateKey as e:
            raise ValueError(f"'{path}' names the key {e} twice: which one "
                             f"was meant is not clear") from None
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) \
            not in KINDS.values():
        raise ValueError(f"'{path}' must hold one key: 'interactions', "
                         f"'users' or 'items'")
    kind, value = next(iter(raw.items()))
    if not isinstance(value, list):
        raise ValueError(f"'{path}': '{kind}' must be a list")
    if kind == 'interactions':
        for i, pair in enumerate(value):
            if not isinstance(pair, list) or len(pair) != 2 or \
                    not all(_is_int(x) for x in pair):
                raise ValueError(f"'{path}': {kind}[{i}] must be [user, "
                                 f"item], two integer ids (got {pair!r})")
        tensor = torch.tensor(value, dtype=torch.long).view(-1, 2)
        return {kind: (tensor[:, 0].contiguous(), tensor[:, 1].contiguous())}
    for i, x in enumerate(value):
        if not _is_int(x):
            raise ValueError(f"'{path}': {kind}[{i}] must be an integer id "
                             f"(got {x!r})")
    return {kind: torch.tensor(value, dtype=torch.long).view(-1)}


def _is_int(x) -> bool:
    # Integers that fit torch.long; Python's bool is an int, and floats are
    # not ids.
    return isinstance(x, int) and not isinstance(x, bool) and \
        -2**63 <= x < 2**63
