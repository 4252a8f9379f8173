r"""Snapshots of a training run, for the segmented trajectory step.

The trajectory step (see :mod:`~torch_geometric_unlearn.influence.horizon`)
linearises the whole run at its end: the request's influence and the
curvature as they are at the trained parameters, applied for the run's
horizon.  A run's early epochs pushed harder and elsewhere (its examples
were not yet fitted, its embeddings had not yet turned), so a few
snapshots of the parameters and of the optimiser's step size let the step
follow the run a segment at a time (SOURCE, Bae et al., NeurIPS 2024):
within each segment the influence, curvature and step size are those of
the snapshot that ends it.

.. code-block:: python

    recorder = TrajectoryRecorder(model.embedding.weight, optimizer)
    for epoch in range(epochs):
        ...  # the loop as it is
        recorder.snapshot()
    unlearner = from_training_loop(..., optimizer=optimizer,
                                   trajectory=recorder)

Memory: two copies of the table per snapshot (the parameters and the
step size), :attr:`TrajectoryRecorder.nbytes` in all.
"""
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import Tensor

from torch_geometric_unlearn.influence.horizon import step_size

__all__ = ['Snapshot', 'TrajectoryRecorder']


@dataclass
class Snapshot:
    r"""The parameters of a run and its optimiser's step size after
    :obj:`step` optimiser steps.

    Args:
        step (int): Optimiser steps taken.
        param (torch.Tensor): The parameters then, e.g. the embedding table
            :obj:`[n, d]`.
        step_size (torch.Tensor): The optimiser's step size per coordinate
            and unit of gradient then (see
            :func:`~torch_geometric_unlearn.influence.horizon.step_size`),
            the shape of :obj:`param`.
        signal (float, optional): For Adam, the median share of the
            gradient's square in its second moment then: above
            :data:`~torch_geometric_unlearn.influence.horizon.MAX_SIGNAL_SHARE`
            its steps were sign-like and its step size predicts no
            response.
    """
    step: int
    param: Tensor
    step_size: Tensor
    signal: Optional[float] = None


class TrajectoryRecorder:
    r"""Keeps at most :obj:`max_snapshots` snapshots of :obj:`param` as an
    optimiser trains it.  Call :meth:`snapshot` after an optimiser step
    (e.g. at the end of every epoch); once the limit is reached, the
    shortest segment is merged into the next one, so that the kept
    snapshots stay spread over the run, the newest always kept.

    For early stopping, :obj:`snapshot(pin=True)` marks the best epoch so
    far (it is never merged away), and :meth:`restore` drops the
    snapshots after it when its parameters are restored.

    Args:
        param (torch.Tensor): The trained parameter, e.g.
            :obj:`model.embedding.weight`.
        optimizer (torch.optim.Optimizer): Its optimiser: Adam, AdamW
            without weight decay, or SGD (whose state needs a
            :obj:`'step'` count, as for
            :func:`~torch_geometric_unlearn.influence.horizon.step_size`).
        max_snapshots (int): Most snapshots kept (at least 2).
    """
    def __init__(self, param: Tensor, optimizer: torch.optim.Optimizer,
                 max_snapshots: int = 4):
        if not isinstance(param, Tensor):
            raise TypeError("'param' must be the trained parameter tensor")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"'optimizer' must be a torch.optim.Optimizer "
                            f"(got {type(optimizer).__name__})")
        if isinstance(max_snapshots, bool) or not isinstance(
                max_snapshots, int) or max_snapshots < 2:
            raise ValueError(f"'max_snapshots' must be an int >= 2 (got "
                             f"{max_snapshots!r})")
        self.param, self.optimizer = param, optimizer
        self.max_snapshots = max_snapshots
        self.snapshots: List[Snapshot] = []
        self._pinned: Optional[int] = None  # a step count

    def snapshot(self, pin: bool = False):
        r"""Keeps the parameters and step size as they are now; with
        :obj:`pin`, as the best so far (see :meth:`restore`)."""
        steps, size, signal = step_size(self.optimizer, self.param,
                                        check=False)
        if self.snapshots and steps <= self.snapshots[-1].step:
            raise ValueError(f"The optimiser has taken no step since the "
                             f"last snapshot (step {steps})")
        self.snapshots.append(Snapshot(steps, self.param.detach().clone(),
                                       size.clone(), signal))
        if pin:
            self._pinned = steps
        while len(self.snapshots) > self.max_snapshots:
            self._merge()

    def _merge(self):
        # Drops the snapshot that ends the shortest segment (never the
        # newest or the pinned one): its segment joins the next.
        starts = [0] + [s.step for s in self.snapshots[:-1]]
        lengths = [s.step - a for s, a in zip(self.snapshots, starts)]
        candidates = [k for k in range(len(self.snapshots) - 1)
                      if self.snapshots[k].step != self._pinned]
        drop = min(candidates, key=lambda k: lengths[k])
        del self.snapshots[drop]

    def restore(self):
        r"""Drops the snapshots after the pinned one: call it when the
        pinned epoch's parameters are restored."""
        if self._pinned is None:
            raise ValueError("No snapshot is pinned: take the best epoch's "
                             "with snapshot(pin=True)")
        self.snapshots = [s for s in self.snapshots
                          if s.step <= self._pinned]

    @property
    def nbytes(self) -> int:
        r"""Memory held by the snapshots, in bytes."""
        return sum(s.param.nbytes + s.step_size.nbytes
                   for s in self.snapshots)
