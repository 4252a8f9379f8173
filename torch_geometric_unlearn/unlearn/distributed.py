r"""Unlearning with the training examples sharded over the ranks of a
:mod:`torch.distributed` process group.

IFRU's objective is a sum over training examples, so its gradient and
every Hessian-vector product split exactly over shards of the examples,
with one all-reduce each.  Each rank holds the graph, the model and its own
shard of the examples; every sum over examples is all-reduced, so every
rank computes the same update and ends with the same parameters.  The
collectives are called directly (:class:`DistributedDataParallel` cannot
do double backward, and the products here need none of it).

Usage, in every process of a group (e.g. launched by ``torchrun``)::

    torch.distributed.init_process_group('gloo')  # 'nccl' on GPUs
    rank, world = dist.get_rank(), dist.get_world_size()
    shard = examples[:, pair_shards(data, examples, world) == rank]
    unlearner = IFRUnlearner(model, data, shard, l2=1.0, shards=Shards())
    result = unlearner.unlearn(pairs)              # the same on all ranks

Shards are by training pair: every training pair's examples live on
exactly one rank.  The constructor checks that the ranks hold the same data
and together cover every training pair once; a request must be the same on
every rank; and a request commits on every rank or on none.

What this costs: the graph, the model and the dense products over it
(propagation, the solver's vectors) are replicated, so memory per rank
drops only by the examples' share, and each product sends one
:obj:`[region nodes, d]` all-reduce.  A fault raised between collectives
(a non-finite result, a failed advance) is agreed on and rolls every rank
back; one that breaks off a rank inside the sequence of collectives leaves
the others waiting until the process group's timeout, after which they roll
back too.
"""
import hashlib
import re
from dataclasses import fields, is_dataclass
from typing import Dict, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.unlearn.ledger import fingerprint


class ShardError(RuntimeError):
    r"""The ranks do not agree (data, shards or request), or another rank
    failed; nothing was changed on any rank."""


class Shards:
    r"""The ranks of a process group over which examples are sharded.

    Args:
        group (ProcessGroup, optional): The group; the default group if
            :obj:`None`.

    Raises:
        RuntimeError: If :mod:`torch.distributed` is not initialised.
    """
    def __init__(self, group=None):
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("Shards need an initialised process group: "
                               "call torch.distributed.init_process_group "
                               "first (e.g. under torchrun)")
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        backend = dist.get_backend(group)
        # NCCL reduces CUDA tensors only; gloo takes CPU tensors.
        self.device = torch.device('cuda' if backend == 'nccl' else 'cpu')

    def sum_(self, tensor: Tensor) -> Tensor:
        r"""Sums :obj:`tensor` over the ranks, in place; returns it."""
        if tensor.device.type == self.device.type:
            dist.all_reduce(tensor, group=self.group)
            return tensor
        moved = tensor.to(self.device)
        dist.all_reduce(moved, group=self.group)
        return tensor.copy_(moved)

    def union(self, mask: Tensor) -> Tensor:
        r"""The bool :obj:`mask` set wherever it is set on any rank."""
        values = mask.to(self.device, torch.int32)
        dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self.group)
        return values.to(mask.device).bool()

    def broadcast_(self, tensor: Tensor) -> Tensor:
        r"""Overwrites :obj:`tensor` with rank 0's, in place; returns
        it."""
        src = (0 if self.group is None else
               dist.get_global_rank(self.group, 0))
        moved = tensor.to(self.device)
        dist.broadcast(moved, src, group=self.group)
        return tensor.copy_(moved)

    def vote(self, ok: bool) -> bool:
        r"""Whether :obj:`ok` on every rank."""
        flag = torch.tensor([int(bool(ok))], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=self.group)
        return bool(flag.item())

    def same(self, tensor: Tensor, what: str):
        r"""Raises a :class:`ShardError` on every rank unless
        :obj:`tensor` (a 1-D long tensor) is the same on every rank."""
        size = torch.tensor([tensor.numel()], device=self.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size, group=self.group)
        ok = len({int(s) for s in sizes}) == 1
        if ok:
            first = self.broadcast_(tensor.cpu().long().clone())
            ok = torch.equal(first, tensor.cpu().long())
        if not self.vote(ok):
            raise ShardError(f"The ranks do not agree on {what}")


def digest(value) -> str:
    r"""The SHA-256 of :obj:`value` as ranks compare it: a tensor (or
    :obj:`None`) by dtype, shape and values; a dataclass, sequence or
    mapping by its parts; anything else by its :func:`repr`, memory
    addresses left out (they differ between processes holding equal
    objects)."""
    if value is None or isinstance(value, Tensor):
        return fingerprint({'value': value})
    if is_dataclass(value) and not isinstance(value, type):
        parts = [type(value).__name__] + [
            f'{f.name}={digest(getattr(value, f.name))}'
            for f in fields(value)]
    elif isinstance(value, (list, tuple)):
        parts = [type(value).__name__] + [digest(v) for v in value]
    elif isinstance(value, dict):
        parts = [f'{k!r}={digest(v)}' for k, v in sorted(
            value.items(), key=lambda item: repr(item[0]))]
    else:
        parts = [re.sub(r' at 0x[0-9a-fA-F]+', '', repr(value))]
    return hashlib.sha256('|'.join(parts).encode()).hexdigest()


def agree(shards: Shards, parts: Dict[str, str]):
    r"""Raises a :class:`ShardError` on every rank, naming the part, unless
    every rank holds the same digest (64 hex digits) of each part.

    Args:
        shards (Shards): The ranks.
        parts (Dict[str, str]): The digest of each part, by name (e.g.
            :obj:`{'the model': ...}`), in the same order on every rank.
    """
    for what, hexdigest in parts.items():
        shards.same(torch.tensor(list(bytes.fromhex(hexdigest))), what)


def settle(shards: Shards, error: Optional[BaseException]):
    r"""Stops every rank where any refused: raises :obj:`error` on every
    rank if every rank refused (the same refusal, as for the same bad
    request), else a :class:`ShardError` on every rank, so that none waits
    for the others until the process group's timeout.

    Args:
        shards (Shards): The ranks.
        error (Exception, optional): This rank's refusal, if any.
    """
    refused = int(shards.sum_(torch.tensor([int(error is not None)])).item())
    if refused == 0:
        return
    if refused == shards.world_size:
        raise error
    here = f'; here: {error}' if error is not None else ''
    raise ShardError(f"{refused} of {shards.world_size} ranks refused: "
                     f"nothing was changed on any rank{here}") from error


def shard_check(shards: Shards, pair_index: Tensor, num_pairs: int,
                fingerprint: Tensor):
    r"""Raises a :class:`ShardError` on every rank unless the ranks hold
    the same data (:obj:`fingerprint`, bytes of a digest as a long tensor)
    and their examples cover every training pair exactly once by pair.

    Args:
        shards (Shards): The ranks.
        pair_index (torch.Tensor): The training pair of each local
            example's observation, :obj:`[k]` (positions in the data's
            training pairs).
        num_pairs (int): Number of training pairs.
        fingerprint (torch.Tensor): The data's fingerprint.
    """
    shards.same(fingerprint, 'the data (another data set on some rank?)')
    held = torch.zeros(num_pairs, dtype=torch.long)
    held[pair_index] = 1
    shards.sum_(held)
    missing, twice = int((held == 0).sum()), int((held > 1).sum())
    if missing or twice:
        raise ShardError(
            f"The shards do not cover the training pairs once: {missing} "
            f"pairs have no example on any rank (a missing rank?) and "
            f"{twice} have examples on several ranks (overlapping shards)")


def pair_shards(data, examples: Tensor, world_size: int) -> Tensor:
    r"""The rank of each example :obj:`[M]` when the examples are dealt to
    :obj:`world_size` ranks by training pair, as :class:`Shards` require:
    every training pair's examples on one rank.

    Args:
        data (InteractionData): The data.
        examples (torch.Tensor): The examples, :obj:`[m, M]`.
        world_size (int): Number of ranks.
    """
    train = pair_keys(data.train_index, data.num_items).sort()[0]
    return torch.searchsorted(
        train, pair_keys(examples[:2], data.num_items)) % world_size
