r"""An append-only, hash-chained record of applied deletion requests.

Every request an unlearner applies adds one :class:`LedgerEntry`: a request
id, the time, the forgotten pairs (or only a salted digest of them), the
method and its configuration, the figures of the update's certificate, and
fingerprints (SHA-256) of the model before and after and of the training
data left.  Each entry holds the hash of the one before it, and its own
hash covers all its fields, so that editing, removing, reordering or
truncating entries is detected by :meth:`Ledger.verify`.

What it proves, and what it does not:

* It proves **consistency**: this model, these training pairs and this
  sequence of requests belong together, and nobody edited the record
  without recomputing every hash after the edit.  A checkpoint whose model,
  examples or data were swapped, or whose ledger was edited, is refused on
  load (see :class:`~torch_geometric_unlearn.checkpoint.Checkpoint`).
* It does **not** prove authorship or that no one rewrote history: the
  hashes are unkeyed, so whoever can write the file can recompute the whole
  chain.  Anchor it outside the file (publish or sign the head hash,
  :attr:`Ledger.head`, after each request) to detect that.
* It does not prove the model **forgot** anything: the certificate figures
  it records say how well the update did (see
  :mod:`~torch_geometric_unlearn.unlearn.certificate`).
* With a salt, the entries keep a digest of the pairs instead of the pairs,
  for deployments that must not keep deleted data; the checkpoint's record
  of forgotten pairs, which recognises repeated requests, still holds them.
"""
import hashlib
import json
import numbers
import time
import uuid
from dataclasses import asdict, dataclass, fields, is_dataclass
from enum import Enum
from typing import IO, Any, Dict, List, Optional, Union

import torch
from torch import Tensor

from torch_geometric_unlearn.persist import atomic_open

GENESIS = '0' * 64


class LedgerError(ValueError):
    r"""A ledger, or a checkpoint's parts, failed verification; the message
    names the entry or the part."""


def fingerprint(parts: Dict[str, Union[Tensor, int, None]]) -> str:
    r"""The SHA-256 of named tensors (dtype, shape and values, read on the
    CPU) and integers, as 64 hex digits."""
    digest = hashlib.sha256()
    for name in sorted(parts):
        value = parts[name]
        digest.update(f'{name}:'.encode())
        if value is None:
            digest.update(b'none;')
        elif isinstance(value, Tensor):
            x = value.detach().cpu().contiguous().view(-1)
            digest.update(f'{x.dtype}{list(value.shape)};'.encode())
            digest.update(x.view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f'{int(value)};'.encode())
    return digest.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    r"""The fingerprint of a model's :obj:`state_dict`."""
    return fingerprint(dict(model.state_dict()))


def data_fingerprint(data) -> str:
    r"""The fingerprint of an
    :class:`~torch_geometric_unlearn.data.interactions.
    InteractionData`'s training pairs, their labels and its sizes."""
    return fingerprint({'train_index': data.train_index,
                        'train_label': data.train_label,
                        'num_users': data.num_users,
                        'num_items': data.num_items})


def examples_fingerprint(examples: Tensor, labels: Optional[Tensor]) -> str:
    r"""The fingerprint of training examples and their labels."""
    return fingerprint({'examples': examples, 'labels': labels})


@dataclass(frozen=True)
class LedgerEntry:
    r"""One applied request.

    Args:
        index (int): Position in the ledger, from 0.
        request_id (str): A unique id (a UUID unless one was given).
        time (str): When it was applied, ISO 8601 in UTC.
        method (str): The unlearning method.
        config (dict): Its configuration, as JSON values.
        count (int): Number of forgotten pairs.
        pairs (list, optional): The pairs :obj:`[[user, item], ...]`,
            sorted; :obj:`None` when the ledger is salted.
        pairs_digest (str): SHA-256 of the salt (if any) and the pairs.
        certificate (dict, optional): The certificate's figures.
        model_before (str): Fingerprint of the model before the request.
        model_after (str): Fingerprint of the model after it.
        data_after (str): Fingerprint of the training data left.
        previous (str): :attr:`hash` of the entry before (zeros first).
        hash (str): SHA-256 of every other field.
    """
    index: int
    request_id: str
    time: str
    method: str
    config: Dict[str, Any]
    count: int
    pairs: Optional[List[List[int]]]
    pairs_digest: str
    certificate: Optional[Dict[str, Any]]
    model_before: str
    model_after: str
    data_after: str
    previous: str
    hash: str

    def body(self) -> Dict[str, Any]:
        r"""Every field but :attr:`hash`."""
        out = asdict(self)
        out.pop('hash')
        return out


def _entry_hash(body: Dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()


def pairs_digest(pairs: Tensor, salt: Optional[str]) -> str:
    r"""SHA-256 of :obj:`salt` and the pairs :obj:`[2, k]` sorted by
    (user, item), as int64."""
    pairs = pairs.detach().cpu().long()
    order = torch.argsort(pairs[1], stable=True)
    order = order[torch.argsort(pairs[0, order], stable=True)]
    digest = hashlib.sha256((salt or '').encode() + b'|')
    digest.update(pairs[:, order].t().contiguous().numpy().tobytes())
    return digest.hexdigest()


class Ledger:
    r"""An append-only list of :class:`LedgerEntry`, hash-chained.
    Every :class:`~torch_geometric_unlearn.unlearn.base.Unlearner` keeps one
    as :attr:`ledger`; assign a loaded one to continue it.

    Args:
        entries (list of LedgerEntry, optional): Entries to continue from;
            verified.
        salt (str, optional): Keep a salted digest of each request's pairs
            instead of the pairs.
    """
    def __init__(self, entries: Optional[List[LedgerEntry]] = None,
                 salt: Optional[str] = None):
        self.entries: List[LedgerEntry] = list(entries or [])
        self.salt = salt
        self.verify()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def head(self) -> str:
        r"""The hash of the last entry (zeros for an empty ledger): anchor
        it outside the file to detect a rewritten history."""
        return self.entries[-1].hash if self.entries else GENESIS

    def entry(self, pairs: Tensor, method: str, config: Dict[str, Any],
              certificate: Optional[Dict[str, Any]], model_before: str,
              model_after: str, data_after: str,
              request_id: Optional[str] = None,
              when: Optional[str] = None) -> LedgerEntry:
        r"""The entry that would follow this ledger's last one (see
        :class:`LedgerEntry` for the arguments; a new UUID and the current
        time unless :obj:`request_id` and :obj:`when` are given);
        :meth:`extended` adds it.
        """
        if self.salt is None and any(e.pairs is None for e in self.entries):
            raise LedgerError("this ledger's entries keep salted digests, "
                              "not pairs: give its salt (Ledger(entries, "
                              "salt=...)) to append, so that no entry keeps "
                              "its pairs in clear")
        pairs = pairs.detach().cpu()
        body = dict(
            index=len(self.entries),
            request_id=request_id or uuid.uuid4().hex,
            time=when or time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            method=method, config=config, count=pairs.size(1),
            pairs=(None if self.salt is not None else
                   sorted(pairs.t().tolist())),
            pairs_digest=pairs_digest(pairs, self.salt),
            certificate=certificate, model_before=model_before,
            model_after=model_after, data_after=data_after,
            previous=self.head)
        # JSON round trip: what is hashed is what a file will hold.
        body = json.loads(json.dumps(body))
        return LedgerEntry(hash=_entry_hash(body), **body)

    def extended(self, entry: LedgerEntry) -> 'Ledger':
        r"""A new ledger: this one's entries and :obj:`entry`, which must
        follow the last one.  This ledger is left as it is (an unlearner
        replaces its ledger only when the whole request commits)."""
        if entry.previous != self.head or entry.index != len(self.entries):
            raise LedgerError(f"entry {entry.index} does not follow the "
                              f"ledger's last entry")
        out = Ledger.__new__(Ledger)
        out.entries, out.salt = self.entries + [entry], self.salt
        return out

    def verify(self):
        r"""Raises a :class:`LedgerError` naming the first entry that is
        out of place, edited or not chained to the one before."""
        previous = GENESIS
        for position, entry in enumerate(self.entries):
            if entry.index != position:
                raise LedgerError(f"ledger entry {position} says it is "
                                  f"entry {entry.index}: entries were "
                                  f"removed or reordered")
            if entry.previous != previous:
                raise LedgerError(f"ledger entry {position} is not chained "
                                  f"to the entry before it")
            if _entry_hash(entry.body()) != entry.hash:
                raise LedgerError(f"ledger entry {position} was edited: "
                                  f"its hash does not match its content")
            if entry.pairs is not None and not (
                    isinstance(entry.pairs, list) and all(
                        isinstance(p, list) and len(p) == 2 and all(
                            type(x) is int for x in p)
                        for p in entry.pairs)):
                raise LedgerError(f"ledger entry {position}: its pairs must "
                                  f"be [user, item] lists of two integers")
            if entry.pairs is not None and pairs_digest(
                    torch.tensor(entry.pairs, dtype=torch.long).view(-1, 2)
                    .t(), None) != entry.pairs_digest:
                raise LedgerError(f"ledger entry {position}: its pairs do "
                                  f"not match their digest")
            previous = entry.hash

    def to_list(self) -> List[Dict[str, Any]]:
        r"""The entries as plain dicts (what a checkpoint stores)."""
        return [asdict(e) for e in self.entries]

    @classmethod
    def from_list(cls, raw: List[Dict[str, Any]],
                  salt: Optional[str] = None) -> 'Ledger':
        r"""The ledger of :meth:`to_list`'s output, verified."""
        names = {f.name for f in fields(LedgerEntry)}
        entries = []
        for position, item in enumerate(raw):
            if not isinstance(item, dict) or set(item) != names:
                raise LedgerError(f"ledger entry {position} is malformed")
            entries.append(LedgerEntry(**item))
        return cls(entries, salt)

    def to_jsonl(self, path: str):
        r"""Writes the entries as JSON Lines, crash-safe."""
        with atomic_open(path) as f:
            self.write_jsonl(f)

    def write_jsonl(self, f: IO):
        r"""Writes the entries as JSON Lines to the text file :obj:`f`."""
        for entry in self.entries:
            f.write(json.dumps(asdict(entry), sort_keys=True) + '\n')

    @classmethod
    def from_jsonl(cls, path: str, salt: Optional[str] = None) -> 'Ledger':
        r"""Reads and verifies a ledger written by :meth:`to_jsonl`."""
        with open(path) as f:
            try:
                raw = [json.loads(line) for line in f if line.strip()]
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise LedgerError(f"'{path}' is not JSON Lines: {e}"
                                  ) from None
        return cls.from_list(raw, salt)


def json_value(value: Any, max_tensor: Optional[int] = 16) -> Any:
    r"""A JSON form of a value: dataclasses as dicts, enums by value,
    dtypes and devices by name, tensors of at most :obj:`max_tensor`
    elements (any, if :obj:`None`) as lists, and any other object by its
    class name."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_value(getattr(value, f.name), max_tensor)
                for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): json_value(v, max_tensor) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, max_tensor) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, Tensor) and (max_tensor is None or
                                      value.numel() <= max_tensor):
        return value.tolist()
    return type(value).__name__
