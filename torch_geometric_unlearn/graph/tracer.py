r"""The spillover tracer: the CSR adjacency of a message-passing graph and
what a deletion request touches in it (see
:mod:`~torch_geometric_unlearn.graph.spillover`)."""
import copy
import warnings
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.index import index2ptr
from torch_geometric.typing import SparseTensor

from torch_geometric_unlearn.graph.adjacency import to_edge_index
from torch_geometric_unlearn.checks import (check_examples, check_long,
                                            check_num_hops, check_pairs,
                                            check_range, is_int)
from torch_geometric_unlearn.graph.pruning import PruningConfig, index_mask

__all__ = ['SpilloverResult', 'SpilloverTracer']

BACKENDS = ('torch_sparse', 'torch')

# A frontier whose edges exceed this fraction of all edges is expanded by a
# sparse mat-vec instead of a gather.


# A frontier whose edges exceed this fraction of all edges is expanded by a
# sparse mat-vec instead of a gather.
DENSE_FRONTIER = 0.2


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
        check_pairs(edge_index, 'edge_index')
        if num_nodes is None:
            num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        if not is_int(num_nodes) or num_nodes < 0:
            raise ValueError(f"'num_nodes' must be a non-negative int "
                             f"(got {num_nodes!r})")
        check_range(edge_index, num_nodes, 'edge_index')
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
                reached = index_mask(neighbors, self.num_nodes)
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
        check_num_hops(num_hops)
        check_long(nodes, 'nodes', '[n]',
                   isinstance(nodes, Tensor) and nodes.dim() == 1)
        check_range(nodes, self.num_nodes, 'nodes')
        return self._expand(index_mask(nodes, self.num_nodes), num_hops)[0]

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
        check_pairs(deleted, 'deleted')
        if deleted.size(1) == 0:
            raise ValueError("'deleted' is empty: a request must name at "
                             "least one edge")
        check_range(deleted, self.num_nodes, 'deleted')
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
        check_num_hops(num_hops)
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
        check_num_hops(num_hops)
        pruning = PruningConfig.cast(pruning) or PruningConfig()
        deleted_edge_index, deleted_edge_mask = self.find_edges(deleted)

        direct = index_mask(deleted_edge_index, self.num_nodes)
        spillover = self._expand(direct, num_hops)[0]

        changed = None
        if examples is None:
            targets = spillover
        else:
            check_examples(examples, self.num_nodes)
            changed = spillover[examples].any(0).nonzero().view(-1)
            targets = direct | index_mask(examples[:, changed], self.num_nodes)

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
