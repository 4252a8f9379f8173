r"""Spillover tracing and importance-based pruning on the sparse adjacency.

Deleting the undirected edge :math:`\{a, b\}` from a message-passing graph
changes more than the loss terms of the deleted interaction.  With symmetric
normalisation it changes the degrees of :math:`a` and :math:`b`, so after
:math:`L` layers every node within :math:`L` hops of :math:`\{a, b\}` has a
different final embedding, and every training example that scores one of
those nodes is computed differently (the *spillover* of IFRU, Zhang et al.,
ACM TORS 2024).  This module finds, for a deletion request:

1. the *direct* nodes, the endpoints of the deleted edges;
2. the *spillover region*, every node within :math:`L` hops of a direct node
   in the graph **before** deletion, i.e. every node whose final embedding
   can change;
3. the *changed examples*, the training examples with a node in the
   spillover region;
4. the *solve region*, the nodes whose parameters receive gradient from the
   changed examples, and the subgraph on which their scores are exact;
5. *importance* scores and the nodes kept after pruning.

Everything is computed by frontier expansion over a CSR adjacency and by
sparse matrix-vector products; nothing of size :math:`N \times N` is ever
built.  The sparse products run on :obj:`torch.sparse_csr_tensor`, or on
:class:`torch_sparse.SparseTensor` if asked (:obj:`backend='torch_sparse'`);
both give the same result.  torch's CSR is the default even where
torch-sparse is installed: it traced faster on MovieLens-100K (2.9 against
4.6 ms) and Gowalla (26 against 37 ms), and a Gowalla request took 6.7
against 12.3 s (``benchmarks/sparse_backends.py``).
"""
import copy
import math
import numbers
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Dict, Optional, Tuple, Union

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.index import index2ptr
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import get_num_hops
from torch_geometric.utils.mixin import CastMixin

from torch_geometric_unlearn.graph.adjacency import to_edge_index

__all__ = [
    'PruningStrategy',
    'PruningConfig',
    'SpilloverResult',
    'SpilloverTracer',
    'trace_spillover',
    'infer_num_hops',
]

BACKENDS = ('torch_sparse', 'torch')

# A frontier whose edges exceed this fraction of all edges is expanded by a
# sparse mat-vec instead of a gather.
DENSE_FRONTIER = 0.2


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
        if not _is_int(self.params_per_node) or self.params_per_node < 1:
            raise ValueError(f"'params_per_node' must be a positive int "
                             f"(got {self.params_per_node!r})")

        strategy, value = self.strategy, self.value
        if strategy == PruningStrategy.none:
            if value is not None:
                raise ValueError(f"'value' must be None for strategy 'none' "
                                 f"(got {value!r})")
        elif strategy == PruningStrategy.quantile:
            if not _is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"'value' must be a number in [0, 1] for "
                                 f"strategy 'quantile' (got {value!r})")
        elif strategy in (PruningStrategy.top_n, PruningStrategy.budget):
            if not _is_int(value) or value < 0:
                raise ValueError(f"'value' must be a non-negative int for "
                                 f"strategy '{strategy.value}' "
                                 f"(got {value!r})")
        elif not _is_number(value) or not value >= 0:  # threshold; NaN fails
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
                is_direct = _mask(direct, importance.numel())
                order = torch.cat([direct, order[~is_direct[order]]])
            kept = order[:num_kept]
        kept = _mask(kept, importance.numel())
        if self.keep_direct:
            kept[direct] = True
        return kept.nonzero().view(-1)


@dataclass(repr=False)
class SpilloverResult:
    r"""What a deletion request touches.  Node sets are sorted
    :obj:`[n]` long tensors of homogeneous node ids; edge masks are
    :obj:`[E]` bool tensors aligned with the :obj:`edge_index` the tracer
    was built on.

    Args:
        num_hops (int): The number of hops :math:`L` traced.
        deleted_edge_index (torch.Tensor): The deleted undirected edges, one
            column per edge as :obj:`(min id, max id)`, duplicates merged,
            sorted; shape :obj:`[2, k]`.
        deleted_edge_mask (torch.Tensor): The entries of :obj:`edge_index`
            removed by the request, both directions and every parallel copy.
            :obj:`edge_index[:, ~deleted_edge_mask]` is the graph after
            deletion.
        direct_nodes (torch.Tensor): The endpoints of the deleted edges.
        spillover_nodes (torch.Tensor): Every node within :obj:`num_hops`
            hops of a direct node before deletion: every node whose final
            embedding can change.
        changed_examples (torch.Tensor, optional): Indices (columns) of the
            given examples with at least one node in the spillover region;
            :obj:`None` if no examples were given.  Examples that are
            themselves deleted are included: separating them is the
            caller's business.
        solve_nodes (torch.Tensor): Every node within :obj:`num_hops` hops of
            a *target*, i.e. every node whose parameters receive gradient
            from the targets' final embeddings.  The targets are the direct
            nodes and the nodes of the changed examples; without examples,
            every node of the spillover region is a target.
        solve_edge_mask (torch.Tensor): The edges of the graph before
            deletion with both endpoints within :obj:`num_hops + 1` hops of a
            target.  The final embeddings of the targets computed on this
            subgraph equal those on the full graph (the degree of a node
            :obj:`num_hops` hops away needs its edges to the next hop), and
            :obj:`solve_edge_mask & ~deleted_edge_mask` does the same for the
            graph after deletion.
        importance (torch.Tensor): Importance of every node, shape
            :obj:`[num_nodes]`, dtype :obj:`torch.float64`.
        kept_nodes (torch.Tensor): The spillover nodes kept by
            :obj:`pruning`.
        pruning (PruningConfig): The pruning that produced
            :obj:`kept_nodes`.
    """
    num_hops: int
    deleted_edge_index: Tensor
    deleted_edge_mask: Tensor
    direct_nodes: Tensor
    spillover_nodes: Tensor
    changed_examples: Optional[Tensor]
    solve_nodes: Tensor
    solve_edge_mask: Tensor
    importance: Tensor
    kept_nodes: Tensor
    pruning: PruningConfig

    def sizes(self) -> Dict[str, Optional[int]]:
        r"""The size of every set, for reports."""
        changed = self.changed_examples
        return {
            'deleted_edges': self.deleted_edge_index.size(1),
            'direct_nodes': self.direct_nodes.numel(),
            'spillover_nodes': self.spillover_nodes.numel(),
            'changed_examples': None if changed is None else changed.numel(),
            'solve_nodes': self.solve_nodes.numel(),
            'solve_edges': int(self.solve_edge_mask.sum()),
            'kept_nodes': self.kept_nodes.numel(),
        }

    def __repr__(self) -> str:
        sizes = ', '.join(f'{k}={v}' for k, v in self.sizes().items())
        return f'{self.__class__.__name__}(num_hops={self.num_hops}, {sizes})'


class SpilloverTracer:
    r"""Traces deletion requests on one undirected message-passing graph.

    The CSR adjacency and the normalised sparse matrix are built once, so
    several requests (or the steps of one) on the same graph share them.

    Args:
        edge_index (torch.Tensor or SparseTensor): The homogeneous
            message-passing graph, shape :obj:`[2, E]` or any PyG form (see
            :mod:`~torch_geometric_unlearn.graph.adjacency`), undirected: every
            edge is present in both directions (as
            :attr:`~.data.interactions.InteractionData.edge_index`
            builds it).
            Parallel edges are allowed and count toward the degree, as in
            :class:`~torch_geometric.nn.conv.LGConv`.
        num_nodes (int, optional): The number of nodes.  Defaults to
            :obj:`edge_index.max() + 1`.
        backend (str, optional): :obj:`"torch"` (default, see the module)
            or :obj:`"torch_sparse"`.
    """
    def __init__(self, edge_index: Tensor, num_nodes: Optional[int] = None,
                 backend: Optional[str] = None):
        if isinstance(edge_index, (SparseTensor, EdgeIndex)) or (
                isinstance(edge_index, Tensor) and
                edge_index.layout != torch.strided):
            edge_index = to_edge_index(edge_index, num_nodes)[0]
        _check_pairs(edge_index, 'edge_index')
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        if not _is_int(num_nodes) or num_nodes < 0:
            raise ValueError(f"'num_nodes' must be a non-negative int "
                             f"(got {num_nodes!r})")
        _check_range(edge_index, num_nodes, 'edge_index')
        self.edge_index = edge_index
        self.num_nodes = num_nodes
        self.backend = _resolve_backend(backend)

        row, col = edge_index
        self._key, self._perm = torch.sort(row * num_nodes + col)
        self._check_undirected(col * num_nodes + row)
        self.rowptr = index2ptr(row[self._perm], num_nodes)
        self.col = col[self._perm]
        self.deg = self.rowptr.diff()
        self._adj = self._normalized_adjacency()

    @property
    def num_edges(self) -> int:
        return self.edge_index.size(1)

    def remove_edges(self, deleted_edge_mask: Tensor) -> 'SpilloverTracer':
        r"""The tracer of the graph without some entries of
        :obj:`edge_index`, derived from this one without sorting again.

        Args:
            deleted_edge_mask (torch.Tensor): The entries to remove, bool
                :obj:`[E]`, both directions of each edge (as
                :meth:`find_edges` gives them).

        Returns:
            SpilloverTracer: A new tracer; this one is unchanged.
        """
        self._check_edge_mask(deleted_edge_mask)
        keep = ~deleted_edge_mask
        kept = keep[self._perm]  # in sorted order
        removed = self.edge_index[:, deleted_edge_mask]
        if not torch.equal(
                torch.sort(removed[0] * self.num_nodes + removed[1])[0],
                torch.sort(removed[1] * self.num_nodes + removed[0])[0]):
            raise ValueError("'deleted_edge_mask' must remove both "
                             "directions of every edge")
        out = copy.copy(self)
        out.edge_index = self.edge_index[:, keep]
        position = torch.cumsum(keep, 0) - 1
        out._perm = position[self._perm[kept]]
        out._key = self._key[kept]
        out.col = self.col[kept]
        out.rowptr = index2ptr(out.edge_index[0, out._perm], self.num_nodes)
        out.deg = out.rowptr.diff()
        out._adj = out._normalized_adjacency()
        return out

    def _check_edge_mask(self, mask):
        if (not isinstance(mask, Tensor) or mask.dtype != torch.bool
                or mask.shape != (self.num_edges, )):
            raise ValueError(f"'deleted_edge_mask' must be a bool tensor of "
                             f"shape [{self.num_edges}]")

    def _check_undirected(self, reverse_key: Tensor):
        if torch.equal(torch.sort(reverse_key).values, self._key):
            return
        # Name one edge whose reverse is missing (or less often present).
        pos = torch.searchsorted(self._key, reverse_key).clamp_max(
            max(self.num_edges - 1, 0))
        missing = (self._key[pos] != reverse_key).nonzero().view(-1)
        if missing.numel() > 0:
            a, b = self.edge_index[:, missing[0]].tolist()
            raise ValueError(f"'edge_index' must be undirected, but edge "
                             f"({a}, {b}) has no reverse ({b}, {a})")
        raise ValueError("'edge_index' must be undirected, but some parallel "
                         "edges have fewer copies in one direction")

    def _normalized_adjacency(self):
        r"""Builds :math:`D^{-1/2} A D^{-1/2}` in float64, the matrix
        :class:`~torch_geometric.nn.conv.LGConv` propagates over."""
        inv_sqrt = self.deg.to(torch.float64).pow(-0.5)
        inv_sqrt[self.deg == 0] = 0.
        row = self.edge_index[0, self._perm]
        value = inv_sqrt[row] * inv_sqrt[self.col]
        size = (self.num_nodes, self.num_nodes)
        if self.backend == 'torch_sparse':
            return SparseTensor(rowptr=self.rowptr, col=self.col, value=value,
                                sparse_sizes=size, is_sorted=True,
                                trust_data=True)
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', '.*Sparse CSR tensor support')
            return torch.sparse_csr_tensor(self.rowptr, self.col, value, size,
                                           check_invariants=False)

    def _matvec(self, x: Tensor) -> Tensor:
        if self.backend == 'torch_sparse':
            return (self._adj @ x.view(-1, 1)).view(-1)
        return self._adj @ x

    def _expand(self, mask: Tensor, num_hops: int,
                frontier: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        r"""Grows the node mask :obj:`mask` by :obj:`num_hops` hops.  Only
        the newest nodes (the mask :obj:`frontier`, by default all of
        :obj:`mask`) are expanded, so each edge is read at most once.
        Returns the grown mask and its last frontier."""
        mask = mask.clone()
        frontier = mask.clone() if frontier is None else frontier
        for _ in range(num_hops):
            nodes = frontier.nonzero().view(-1)
            if nodes.numel() == 0:
                break
            degree = self.deg[nodes]
            if int(degree.sum()) > DENSE_FRONTIER * self.num_edges:
                # When most edges are read anyway, one sparse mat-vec on the
                # indicator is several times faster than gathering them.
                reached = self._matvec(frontier.to(torch.float64)) > 0
            else:
                neighbors = self.col[_ranges(self.rowptr[nodes], degree)]
                reached = _mask(neighbors, self.num_nodes)
            frontier = reached & ~mask
            mask |= frontier
        return mask, frontier

    def k_hop(self, nodes: Tensor, num_hops: int) -> Tensor:
        r"""Every node within :obj:`num_hops` hops of :obj:`nodes`.

        Args:
            nodes (torch.Tensor): Node ids, shape :obj:`[n]`.
            num_hops (int): The number of hops.

        Returns:
            torch.Tensor: A bool mask, shape :obj:`[num_nodes]`.
        """
        _check_num_hops(num_hops)
        _check_long(nodes, 'nodes', '[n]',
                    isinstance(nodes, Tensor) and nodes.dim() == 1)
        _check_range(nodes, self.num_nodes, 'nodes')
        return self._expand(_mask(nodes, self.num_nodes), num_hops)[0]

    def find_edges(self, deleted: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Locates a deletion request in the graph.

        Each column :obj:`(a, b)` of :obj:`deleted` names the undirected edge
        :math:`\{a, b\}`: either orientation may be given, both directions
        are removed, and so is every parallel copy.  An edge named more than
        once (in either orientation) is removed once.

        Args:
            deleted (torch.Tensor): Node pairs, shape :obj:`[2, k]`, long.

        Returns:
            (torch.Tensor, torch.Tensor): The deleted edges as sorted unique
            :obj:`(min id, max id)` columns, shape :obj:`[2, k']`, and the
            mask :obj:`[E]` of their entries in :obj:`edge_index`.

        Raises:
            TypeError: If :obj:`deleted` is not a long tensor.
            ValueError: If it is not :obj:`[2, k]`, empty, holds an id
                outside :obj:`[0, num_nodes)`, or names an edge that is not
                in the graph.
        """
        _check_pairs(deleted, 'deleted')
        if deleted.size(1) == 0:
            raise ValueError("'deleted' is empty: a request must name at "
                             "least one edge")
        _check_range(deleted, self.num_nodes, 'deleted')
        low, high = deleted.min(0).values, deleted.max(0).values
        pair_key = (low * self.num_nodes + high).unique()
        low, high = pair_key // self.num_nodes, pair_key % self.num_nodes

        positions = []
        for key in (pair_key, high * self.num_nodes + low):
            start = torch.searchsorted(self._key, key)
            count = torch.searchsorted(self._key, key, right=True) - start
            missing = (count == 0).nonzero().view(-1)
            if missing.numel() > 0:
                pairs = [(int(low[i]), int(high[i])) for i in missing[:5]]
                raise ValueError(f"'deleted' names {missing.numel()} edge(s) "
                                 f"not in the graph, e.g. {pairs}")
            positions.append(_ranges(start, count))
        mask = torch.zeros(self.num_edges, dtype=torch.bool,
                           device=self.edge_index.device)
        mask[self._perm[torch.cat(positions)]] = True
        return torch.stack([low, high]), mask

    def importance(self, deleted_edge_mask: Tensor, num_hops: int) -> Tensor:
        r"""Importance scores of every node for a deletion.

        The seed :math:`s_0(v)` is the fraction of :math:`v`'s edges that the
        request removes, :math:`s_0(v) = \mathrm{deleted}(v) / \deg(v)`
        (degrees before deletion, parallel edges counted), non-zero exactly
        at the direct nodes.  It is propagated over the normalised
        adjacency :math:`\hat{A} = D^{-1/2} A D^{-1/2}` of the graph before
        deletion and summed over hops,

        .. math::
            s = \sum_{h=0}^{L} \hat{A}^h s_0,

        so :math:`s(v) > 0` exactly when :math:`v` is within :math:`L` hops
        of a direct node.

        Args:
            deleted_edge_mask (torch.Tensor): The removed entries of
                :obj:`edge_index`, shape :obj:`[E]`, bool (see
                :meth:`find_edges`).
            num_hops (int): The number of hops :math:`L`.

        Returns:
            torch.Tensor: The scores, shape :obj:`[num_nodes]`, float64.
        """
        _check_num_hops(num_hops)
        self._check_edge_mask(deleted_edge_mask)
        deleted = torch.bincount(self.edge_index[0, deleted_edge_mask],
                                 minlength=self.num_nodes)
        x = deleted.to(torch.float64) / self.deg.clamp_min(1)
        score = x.clone()
        for _ in range(num_hops):
            x = self._matvec(x)
            score += x
        return score

    def subgraph_mask(self, targets: Tensor, num_hops: int) -> Tensor:
        r"""The edges that compute the :obj:`num_hops`-layer embeddings of
        :obj:`targets` exactly: those with both endpoints within
        :obj:`num_hops + 1` hops of a target.

        Args:
            targets (torch.Tensor): Node ids, shape :obj:`[n]`.
            num_hops (int): The number of layers.

        Returns:
            torch.Tensor: A bool mask over :obj:`edge_index`, shape
            :obj:`[E]`.
        """
        return self._edge_mask(self.k_hop(targets, num_hops + 1))

    def _edge_mask(self, node_mask: Tensor) -> Tensor:
        row, col = self.edge_index
        return node_mask[row] & node_mask[col]


    def trace(
        self,
        deleted: Tensor,
        num_hops: int,
        examples: Optional[Tensor] = None,
        pruning: Optional[Union[PruningConfig, Dict, Tuple, str]] = None,
    ) -> SpilloverResult:
        r"""Traces a deletion request.

        Args:
            deleted (torch.Tensor): The undirected edges to delete, shape
                :obj:`[2, k]`; see :meth:`find_edges` for the semantics.
            num_hops (int): The model's number of hops :math:`L`, e.g. from
                :func:`infer_num_hops`; :obj:`0` is matrix factorisation.
            examples (torch.Tensor, optional): The training examples as node
                ids, shape :obj:`[m, M]` with :obj:`m = 2` for labelled pairs
                :obj:`(u, i)` or :obj:`m = 3` for BPR triples
                :obj:`(u, i, j)`; homogeneous ids (items offset by the
                number of users).
            pruning (PruningConfig or dict or tuple or str, optional): How to
                prune the spillover region; :obj:`None` keeps all of it.

        Every deleted interaction whose example is among :obj:`examples`
        touches a direct node, so it is one of the changed examples; the
        caller separates the deleted examples (direct influence) from the
        remaining ones (spillover).  :obj:`edge_index[:,
        ~result.deleted_edge_mask]` is the graph after deletion.

        Returns:
            SpilloverResult

        Raises:
            TypeError: If an argument has the wrong type or dtype.
            ValueError: If an argument has the wrong shape or values; see
                :meth:`find_edges` for the request.
        """
        _check_num_hops(num_hops)
        pruning = PruningConfig.cast(pruning) or PruningConfig()
        deleted_edge_index, deleted_edge_mask = self.find_edges(deleted)

        direct = _mask(deleted_edge_index, self.num_nodes)
        spillover = self._expand(direct, num_hops)[0]

        changed = None
        if examples is None:
            targets = spillover
        else:
            _check_examples(examples, self.num_nodes)
            changed = spillover[examples].any(0).nonzero().view(-1)
            targets = direct | _mask(examples[:, changed], self.num_nodes)

        solve, frontier = self._expand(targets, num_hops)
        exact = self._expand(solve, 1, frontier)[0]

        importance = self.importance(deleted_edge_mask, num_hops)
        direct_nodes = direct.nonzero().view(-1)
        spillover_nodes = spillover.nonzero().view(-1)
        return SpilloverResult(
            num_hops=num_hops,
            deleted_edge_index=deleted_edge_index,
            deleted_edge_mask=deleted_edge_mask,
            direct_nodes=direct_nodes,
            spillover_nodes=spillover_nodes,
            changed_examples=changed,
            solve_nodes=solve.nonzero().view(-1),
            solve_edge_mask=self._edge_mask(exact),
            importance=importance,
            kept_nodes=pruning.select(importance, spillover_nodes,
                                      direct_nodes),
            pruning=pruning,
        )


def trace_spillover(
    edge_index: Tensor,
    deleted: Tensor,
    num_hops: int,
    examples: Optional[Tensor] = None,
    pruning: Optional[Union[PruningConfig, Dict, Tuple, str]] = None,
    num_nodes: Optional[int] = None,
    backend: Optional[str] = None,
) -> SpilloverResult:
    r"""Traces one deletion request; a shortcut for
    :obj:`SpilloverTracer(edge_index, num_nodes, backend).trace(...)`.
    See :class:`SpilloverTracer` and :meth:`SpilloverTracer.trace`."""
    tracer = SpilloverTracer(edge_index, num_nodes, backend)
    return tracer.trace(deleted, num_hops, examples, pruning)


def infer_num_hops(model: torch.nn.Module,
                   num_hops: Optional[int] = None) -> int:
    r"""The number of hops a model aggregates over.

    Counts the :class:`~torch_geometric.nn.conv.MessagePassing` modules of
    :obj:`model` with :func:`torch_geometric.utils.get_num_hops`.  For PyG's
    :class:`~torch_geometric.nn.models.LightGCN` this is :obj:`num_layers`
    (its :class:`~torch_geometric.nn.conv.LGConv` layers sit in a
    :class:`~torch.nn.ModuleList`), and :obj:`0` for matrix factorisation.
    The count is wrong for a layer applied several times, a multi-hop layer
    such as :class:`~torch_geometric.nn.conv.ChebConv`, or an unused one:
    pass :obj:`num_hops` to override it.

    Args:
        model (torch.nn.Module): The model.
        num_hops (int, optional): If given, returned as is (after checking).
    """
    if num_hops is not None:
        _check_num_hops(num_hops)
        return num_hops
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module "
                        f"(got {type(model).__name__})")
    return get_num_hops(model)


def _mask(index: Tensor, size: int) -> Tensor:
    r"""The bool mask of shape :obj:`[size]` that is :obj:`True` at the
    entries of :obj:`index` (any shape)."""
    mask = torch.zeros(size, dtype=torch.bool, device=index.device)
    mask[index.reshape(-1)] = True
    return mask


def _ranges(start: Tensor, count: Tensor) -> Tensor:
    r"""Concatenates :obj:`arange(s, s + c)` over :obj:`zip(start, count)`
    without a Python loop."""
    offset = start - (count.cumsum(0) - count)
    return (torch.arange(int(count.sum()), device=start.device) +
            offset.repeat_interleave(count))


def _resolve_backend(backend: Optional[str]) -> str:
    if backend is None:
        return 'torch'
    if backend not in BACKENDS:
        raise ValueError(f"'backend' must be one of {list(BACKENDS)} "
                         f"(got {backend!r})")
    if (backend == 'torch_sparse'
            and not torch_geometric.typing.WITH_TORCH_SPARSE):
        raise ImportError("backend 'torch_sparse' needs the 'torch-sparse' "
                          "package, which is not installed")
    return backend


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_num_hops(num_hops):
    if not _is_int(num_hops):
        raise TypeError(f"'num_hops' must be an int "
                        f"(got {type(num_hops).__name__})")
    if num_hops < 0:
        raise ValueError(f"'num_hops' must be non-negative (got {num_hops})")


def _check_long(index, what: str, shape: str, ok: bool):
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


def _check_pairs(index, what: str):
    ok = isinstance(index, Tensor) and index.dim() == 2 and index.size(0) == 2
    _check_long(index, what, '[2, n]', ok)


def _check_range(index: Tensor, num_nodes: int, what: str):
    if index.numel() == 0:
        return
    low, high = int(index.min()), int(index.max())
    if low < 0 or high >= num_nodes:
        bad = low if low < 0 else high
        raise ValueError(f"'{what}' holds node id {bad}, outside "
                         f"[0, {num_nodes})")


def _check_examples(examples, num_nodes: int):
    ok = (isinstance(examples, Tensor) and examples.dim() == 2
          and examples.size(0) in (2, 3))
    _check_long(examples, 'examples', '[2, M] (pairs) or [3, M] (BPR '
                'triples)', ok)
    _check_range(examples, num_nodes, 'examples')
