r"""Which of the nodes a deletion touches to solve for: IFRU's
importance-based pruning (see
:meth:`~torch_geometric_unlearn.graph.tracer.SpilloverTracer.importance`).
"""
import math
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Union

import torch
from torch import Tensor
from torch_geometric.utils.mixin import CastMixin

from torch_geometric_unlearn.checks import is_int, is_number

__all__ = ['PruningStrategy', 'PruningConfig', 'index_mask']


class PruningStrategy(Enum):
    r"""Enum class for the pruning strategy."""
    none = 'none'
    quantile = 'quantile'
    top_n = 'top_n'
    budget = 'budget'
    threshold = 'threshold'


@dataclass
class PruningConfig(CastMixin):
    r"""Configuration class to store and validate how the nodes whose
    parameters are solved for are pruned by importance.

    The *candidates* are the nodes of the spillover region, which are exactly
    the nodes with a positive importance score (see
    :meth:`SpilloverTracer.importance`).  Candidates are ranked by
    decreasing importance, ties broken by increasing node id, so every
    strategy is deterministic.

    Args:
        strategy (PruningStrategy or str): The pruning strategy. The possible
            values are (default: :obj:`"none"`):

                - :obj:`"none"`: Keeps every candidate; :obj:`value` must be
                  :obj:`None`.

                - :obj:`"quantile"`: Drops the :obj:`floor(value * n)` least
                  important of the :obj:`n` candidates, so :obj:`value` is in
                  :obj:`[0, 1]`.  IFRU keeps the top 60%, i.e.
                  :obj:`value=0.4`.

                - :obj:`"top_n"`: Keeps the :obj:`value` most important
                  candidates, :obj:`value` a non-negative integer.

                - :obj:`"budget"`: Keeps the
                  :obj:`value // params_per_node` most important candidates,
                  where :obj:`value` is a budget of parameters (a
                  non-negative integer), e.g. :obj:`params_per_node` is the
                  embedding size.

                - :obj:`"threshold"`: Keeps the candidates whose importance
                  is at least :obj:`value` (a non-negative number).

        value (int or float, optional): The parameter of the strategy.
        params_per_node (int): Parameters per kept node, used by
            :obj:`"budget"` only. (default: :obj:`1`)
        keep_direct (bool): If :obj:`True`, the direct nodes are always kept.
            For the counting strategies (:obj:`"quantile"`, :obj:`"top_n"`,
            :obj:`"budget"`) they count toward the number kept, so the budget
            holds unless the direct nodes alone exceed it, in which case all
            of them are kept and a warning is raised.  Set it to
            :obj:`False` for a strict budget. (default: :obj:`True`)
    """
    strategy: Union[PruningStrategy, str] = PruningStrategy.none
    value: Optional[Union[int, float]] = None
    params_per_node: int = 1
    keep_direct: bool = True

    def __post_init__(self):
        try:
            self.strategy = PruningStrategy(self.strategy)
        except ValueError:
            choices = [s.value for s in PruningStrategy]
            raise ValueError(f"'strategy' must be one of {choices} "
                             f"(got {self.strategy!r})") from None
        if not isinstance(self.keep_direct, bool):
            raise ValueError(f"'keep_direct' must be a bool "
                             f"(got {self.keep_direct!r})")
        if not is_int(self.params_per_node) or self.params_per_node < 1:
            raise ValueError(f"'params_per_node' must be a positive int "
                             f"(got {self.params_per_node!r})")

        strategy, value = self.strategy, self.value
        if strategy == PruningStrategy.none:
            if value is not None:
                raise ValueError(f"'value' must be None for strategy 'none' "
                                 f"(got {value!r})")
        elif strategy == PruningStrategy.quantile:
            if not is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"'value' must be a number in [0, 1] for "
                                 f"strategy 'quantile' (got {value!r})")
        elif strategy in (PruningStrategy.top_n, PruningStrategy.budget):
            if not is_int(value) or value < 0:
                raise ValueError(f"'value' must be a non-negative int for "
                                 f"strategy '{strategy.value}' "
                                 f"(got {value!r})")
        elif not is_number(value) or not value >= 0:  # threshold; NaN fails
            raise ValueError(f"'value' must be a non-negative number for "
                             f"strategy 'threshold' (got {value!r})")

    def num_kept(self, num_candidates: int) -> Optional[int]:
        r"""The number of candidates the counting strategies keep, or
        :obj:`None` for :obj:`"none"` and :obj:`"threshold"`."""
        if self.strategy == PruningStrategy.quantile:
            # Rounding first so that e.g. 0.29 * 100 drops 29, not 28.
            return num_candidates - math.floor(
                round(self.value * num_candidates, 6))
        if self.strategy == PruningStrategy.top_n:
            return min(self.value, num_candidates)
        if self.strategy == PruningStrategy.budget:
            return min(self.value // self.params_per_node, num_candidates)
        return None

    def select(self, importance: Tensor, candidates: Tensor,
               direct: Tensor) -> Tensor:
        r"""Applies the pruning.

        Args:
            importance (torch.Tensor): Importance of every node, shape
                :obj:`[num_nodes]`.
            candidates (torch.Tensor): Sorted ids of the candidate nodes,
                shape :obj:`[n]`.
            direct (torch.Tensor): Sorted ids of the direct nodes, a subset
                of :obj:`candidates`.

        Returns:
            torch.Tensor: The sorted ids of the kept nodes.
        """
        score = importance[candidates]
        if self.strategy == PruningStrategy.none:
            kept = candidates
        elif self.strategy == PruningStrategy.threshold:
            kept = candidates[score >= self.value]
        else:
            # A stable sort of id-sorted candidates breaks ties by node id.
            order = candidates[torch.sort(score, descending=True,
                                          stable=True).indices]
            num_kept = self.num_kept(candidates.numel())
            if self.keep_direct:
                if direct.numel() > num_kept:
                    warnings.warn(
                        f"The {direct.numel()} direct nodes exceed the "
                        f"pruning budget of {num_kept} nodes; keeping all "
                        f"of them (set 'keep_direct=False' for a strict "
                        f"budget)", stacklevel=2)
                is_direct = index_mask(direct, importance.numel())
                order = torch.cat([direct, order[~is_direct[order]]])
            kept = order[:num_kept]
        kept = index_mask(kept, importance.numel())
        if self.keep_direct:
            kept[direct] = True
        return kept.nonzero().view(-1)


def index_mask(index: Tensor, size: int) -> Tensor:
    r"""The bool mask of shape :obj:`[size]` that is :obj:`True` at the
    entries of :obj:`index` (any shape)."""
    mask = torch.zeros(size, dtype=torch.bool, device=index.device)
    mask[index.reshape(-1)] = True
    return mask
