r"""Argument checks shared by the data and graph modules: each raises a
:class:`TypeError` or :class:`ValueError` that names the argument and what
was wrong with it."""
import numbers

import torch
from torch import Tensor


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_num_hops(num_hops):
    if not is_int(num_hops):
        raise TypeError(f"'num_hops' must be an int "
                        f"(got {type(num_hops).__name__})")
    if num_hops < 0:
        raise ValueError(f"'num_hops' must be non-negative (got {num_hops})")


def check_long(index, what: str, shape: str, ok: bool):
    r"""Raises unless :obj:`index` is a long tensor; :obj:`ok` says whether
    its shape matches the description :obj:`shape`."""
    if not isinstance(index, Tensor):
        raise TypeError(f"'{what}' must be a torch.Tensor "
                        f"(got {type(index).__name__})")
    if index.dtype != torch.long:
        raise TypeError(f"'{what}' must have dtype torch.long "
                        f"(got {index.dtype})")
    if not ok:
        raise ValueError(f"'{what}' must have shape {shape} "
                         f"(got {list(index.shape)})")


def check_pairs(index, what: str, shape: str = '[2, n]'):
    r"""Raises unless :obj:`index` is a long tensor of two rows; the
    message calls that shape :obj:`shape`."""
    ok = isinstance(index, Tensor) and index.dim() == 2 and index.size(0) == 2
    check_long(index, what, shape, ok)


def check_range(index: Tensor, num_nodes: int, what: str):
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= num_nodes:
        bad = low if low < 0 else high
        raise ValueError(f"'{what}' holds node id {bad}, outside "
                         f"[0, {num_nodes})")


def check_examples(examples, num_nodes: int):
    ok = (isinstance(examples, Tensor) and examples.dim() == 2
          and examples.size(0) in (2, 3))
    check_long(examples, 'examples',
               '[2, M] (pairs) or [3, M] (BPR triples)', ok)
    check_range(examples, num_nodes, 'examples')
