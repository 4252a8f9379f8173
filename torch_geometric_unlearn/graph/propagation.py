r"""LightGCN's propagation as an explicit linear map.

PyG's :class:`~torch_geometric.nn.models.LightGCN` computes its final
embeddings as :math:`F = P E` with

.. math::
    P = \sum_{l=0}^{L} \alpha_l \hat{A}^l, \qquad
    \hat{A} = D^{-1/2} A D^{-1/2},

which is linear in the embedding table :math:`E` and symmetric.  So the
gradient of any loss of :math:`F` with respect to :math:`E` is
:math:`P \nabla_F`, and a Hessian-vector product is
:math:`P\,\nabla^2_F\,P v`: message passing never has to be differentiated
twice.  This is what makes influence solves on LightGCN and matrix
factorisation cheap.
"""
import copy
import warnings
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.index import index2ptr, ptr2index
from torch_geometric.nn import LightGCN


class LinearPropagation:
    r"""The map :math:`x \mapsto P x` of a LightGCN on one graph.

    It reproduces :meth:`LightGCN.get_embedding` exactly (symmetric
    normalisation without self-loops, as :class:`~torch_geometric.nn.conv.
    LGConv` applies it) and supports autograd through :obj:`x`.

    Args:
        edge_index (torch.Tensor): The undirected graph, :obj:`[2, E]`.
        num_nodes (int): Number of nodes.
        alpha (torch.Tensor): Layer weights :math:`\alpha_l`,
            :obj:`[L + 1]`.
        dtype (torch.dtype, optional): dtype of the sparse matrix.
        deg (torch.Tensor, optional): Node degrees :obj:`[num_nodes]` to
            normalise with instead of those of :obj:`edge_index`: with the
            degrees of a whole graph and the edges it induces on a ball
            around a node set, :math:`P` is exact on that set (see
            :meth:`restrict`).
    """
    def __init__(self, edge_index: Tensor, num_nodes: int, alpha: Tensor,
                 dtype: Optional[torch.dtype] = None,
                 deg: Optional[Tensor] = None):
        # LGConv aggregates messages source -> target, i.e. it multiplies
        # by A^T; the graph is undirected, so A^T = A and rows may be read
        # as either end.
        row, col = edge_index
        perm = torch.argsort(row * max(num_nodes, 1) + col)
        self._set(index2ptr(row[perm], num_nodes), col[perm],
                  degree(edge_index, num_nodes) if deg is None else deg,
                  num_nodes, alpha, dtype or torch.get_default_dtype())

    def _set(self, rowptr: Tensor, col: Tensor, deg: Tensor,
             num_nodes: int, alpha: Tensor, dtype: torch.dtype):
        # The CSR structure (rowptr, col) sorted by row, then column.
        self.num_nodes = num_nodes
        self.alpha = alpha.detach()
        self.num_layers = alpha.numel() - 1
        self.rowptr, self.col, self.deg = rowptr, col, deg
        self.adj = None
        if self.num_layers > 0:
            value = _normalized(deg, ptr2index(rowptr, col.numel()), col,
                                dtype)
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', '.*Sparse.*')
                self.adj = torch.sparse_csr_tensor(
                    rowptr, col, value, (num_nodes, num_nodes),
                    check_invariants=False)

    @classmethod
    def from_csr(cls, rowptr: Tensor, col: Tensor, alpha: Tensor,
                 dtype: Optional[torch.dtype] = None,
                 deg: Optional[Tensor] = None) -> 'LinearPropagation':
        r"""The propagation of an undirected graph held as CSR, with
        :obj:`col` sorted within each row (e.g. the structure of a
        :class:`~torch_geometric_unlearn.graph.tracer.SpilloverTracer`): no
        sort is needed.

        Args:
            rowptr (torch.Tensor): Row pointers, :obj:`[num_nodes + 1]`.
            col (torch.Tensor): Column of every entry, :obj:`[E]`.
            alpha (torch.Tensor): Layer weights, :obj:`[L + 1]`.
            dtype (torch.dtype, optional): dtype of the sparse matrix.
            deg (torch.Tensor, optional): Degrees to normalise with;
                :obj:`rowptr.diff()` by default.
        """
        out = cls.__new__(cls)
        out._set(rowptr, col, rowptr.diff() if deg is None else deg,
                 rowptr.numel() - 1, alpha,
                 dtype or torch.get_default_dtype())
        return out

    @classmethod
    def from_model(cls, model: LightGCN, edge_index: Tensor,
                   dtype: Optional[torch.dtype] = None
                   ) -> 'LinearPropagation':
        r"""The propagation of a PyG :class:`LightGCN` on
        :obj:`edge_index`."""
        if not isinstance(model, LightGCN):
            raise TypeError(f"Linear propagation needs PyG's LightGCN (got "
                            f"{type(model).__name__})")
        return cls(edge_index, model.num_nodes, model.alpha,
                   dtype or model.embedding.weight.dtype)

    @classmethod
    def induced(cls, model: LightGCN, edge_index: Tensor, ball: Tensor,
                node_map: Tensor, num_local: int,
                dtype: Optional[torch.dtype] = None) -> 'LinearPropagation':
        r"""The propagation of :obj:`model` on :obj:`edge_index` restricted
        to a ball, in local node ids: :meth:`restrict` of
        :meth:`from_model`."""
        return cls.from_model(model, edge_index, dtype).restrict(
            ball, node_map, num_local)

    def restrict(self, ball: Tensor, node_map: Tensor,
                 num_local: int) -> 'LinearPropagation':
        r"""This propagation restricted to a ball, in local node ids.

        If :obj:`ball` holds every node within :math:`L` (the number of
        layers) hops of a node set :math:`S`, then :math:`(Px)_S` depends on
        :math:`x` inside the ball only, and every walk of length
        :math:`\leq L` between a node of :math:`S` and one in the ball stays
        in it.  So the edges the graph induces on the ball, normalised with
        the whole graph's degrees, give :math:`(Px)_S` exactly, as well as
        :math:`Px` on the ball for any :math:`x` supported on :math:`S`.
        The entries are selected from the stored CSR, not sorted again.

        Args:
            ball (torch.Tensor): Bool mask of the ball, :obj:`[N]`.
            node_map (torch.Tensor): Local id of every node, :obj:`[N]`
                (defined on the ball at least).
            num_local (int): Number of local ids.
        """
        ball = ball.to(self.col.device)
        node_map = node_map.to(self.col.device)
        if num_local == self.num_nodes and bool(ball.all()) and torch.equal(
                node_map, torch.arange(num_local, device=node_map.device)):
            return self  # the ball is the graph, as on real graphs
        deg = self.deg.new_zeros(num_local)
        deg[node_map[ball]] = self.deg[ball]
        dtype = torch.get_default_dtype() if self.adj is None else \
            self.adj.dtype
        row = ptr2index(self.rowptr, self.col.numel())
        inside = ball[row] & ball[self.col]
        row, col = node_map[row[inside]], node_map[self.col[inside]]
        if row.numel() > 1 and bool((row.diff() < 0).any() |
                                    ((row.diff() == 0) &
                                     (col.diff() < 0)).any()):
            perm = torch.argsort(row * num_local + col)
            row, col = row[perm], col[perm]
        out = self.__class__.__new__(self.__class__)
        out._set(index2ptr(row, num_local), col, deg, num_local,
                 self.alpha, dtype)
        return out

    def to(self, dtype: Optional[torch.dtype] = None,
           device: Optional[torch.device] = None) -> 'LinearPropagation':
        r"""A copy whose sparse matrix has :obj:`dtype` and lives on
        :obj:`device`."""
        out = copy.copy(self)
        if self.adj is not None:
            out.adj = self.adj.to(device=device, dtype=dtype)
        return out

    def __call__(self, x: Tensor) -> Tensor:
        r"""Returns :math:`P x` for :obj:`x` of shape :obj:`[num_nodes, d]`.
        """
        alpha = self.alpha.tolist()
        out = x * alpha[0]
        for layer in range(self.num_layers):
            x = torch.sparse.mm(self.adj, x)
            # In place (autograd keeps no input of it): a third of the
            # memory traffic of out + x * a.
            out.add_(x, alpha=alpha[layer + 1])
        return out


def degree(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""In-degrees of :obj:`edge_index` :obj:`[2, E]` as floats,
    :obj:`[num_nodes]`."""
    return torch.bincount(edge_index[1],
                          minlength=num_nodes).to(torch.get_default_dtype())


class PropagationChange:
    r"""How a propagation changes when edges are removed: the map
    :math:`x \mapsto (P x, (P - P') x)` for the propagation :math:`P` of a
    graph and :math:`P'` of the graph without some of its edges.

    The change is applied as :math:`\sum_l \alpha_l \delta_l` with
    :math:`\delta_l = \Delta \hat{A}\, \hat{A}^{l-1} x + \hat{A}'
    \delta_{l-1}`, where :math:`\Delta \hat{A} = \hat{A} - \hat{A}'` holds
    only the entries whose normalisation changed (the removed edges and
    the other edges of their ends), computed in float64.  No difference of
    two nearly equal propagations is formed, so :math:`(P - P') x` keeps
    the relative accuracy of the dtype it runs in, however small the change
    is against :math:`P x`.  Build it with :meth:`removing`, and for a ball
    with :meth:`restrict`.
    """
    def __init__(self, old: LinearPropagation, new: LinearPropagation,
                 entries: Optional[Tuple[Tensor, Tensor, Tensor]]):
        self.alpha = old.alpha.tolist()
        self.old, self.new, self.entries = old, new, entries
        self.delta = None
        if entries is not None:
            row, col, value = entries
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', '.*Sparse.*')
                self.delta = torch.sparse_csr_tensor(
                    index2ptr(row, old.num_nodes), col,
                    value.to(old.adj.dtype), (old.num_nodes, ) * 2,
                    check_invariants=False).to(old.adj.device)

    @classmethod
    def removing(cls, old: LinearPropagation, new: LinearPropagation,
                 removed: Tensor) -> 'PropagationChange':
        r"""The change from :obj:`old` to :obj:`new`, the same graph
        without the edges :obj:`removed`.

        Args:
            old (LinearPropagation): :math:`P`, of a whole graph.
            new (LinearPropagation): :math:`P'`, of that graph without
                :obj:`removed` (every copy of each edge).
            removed (torch.Tensor): The removed edges as node pairs,
                :obj:`[2, k]`, in either orientation.

        Raises:
            ValueError: If :obj:`new`'s degrees are not :obj:`old`'s less
                the removed edges.
        """
        num = old.num_nodes
        if new.num_nodes != num or new.num_layers != old.num_layers:
            raise ValueError("'old' and 'new' must propagate the same nodes "
                             "over the same number of layers")
        if old.num_layers == 0:
            return cls(old, new, None)
        removed = removed.to(old.col.device)
        gone = torch.unique(torch.cat([removed[0] * num + removed[1],
                                       removed[1] * num + removed[0]]))
        old_deg, new_deg = old.deg.to(torch.float64), new.deg.to(
            torch.float64)
        changed = old_deg != new_deg
        changed[gone // num] = True
        rows = changed.nonzero().view(-1)
        # The entries in the rows of the changed nodes, and their mirrors
        # in the other rows (the graph is undirected); parallel copies of
        # an edge stay separate entries, as in the CSR.
        count = old.rowptr[rows + 1] - old.rowptr[rows]
        first = torch.repeat_interleave(old.rowptr[rows] - torch.cumsum(
            count, 0) + count, count)
        index = first + torch.arange(int(count.sum()))
        row = torch.repeat_interleave(rows, count)
        col = old.col[index]
        outside = ~changed[col]
        row, col = (torch.cat([row, col[outside]]),
                    torch.cat([col, row[outside]]))
        key = row * num + col
        order = torch.argsort(key, stable=True)
        row, col, key = row[order], col[order], key[order]
        kept = torch.searchsorted(gone, key)
        deleted = (kept < gone.numel()) & (
            gone[kept.clamp(max=max(gone.numel() - 1, 0))] == key)
        # The degrees must be those of the graph without the edges.
        lost = torch.bincount(row[deleted], minlength=num).to(torch.float64)
        if not torch.equal(new_deg, old_deg - lost):
            raise ValueError("'new' must be the graph of 'old' without the "
                             "'removed' edges")
        value = _normalized(old_deg, row, col) - torch.where(
            deleted, 0.0, _normalized(new_deg, row, col))
        keep = value != 0
        return cls(old, new, (row[keep], col[keep], value[keep]))

    def restrict(self, old: LinearPropagation, new: LinearPropagation,
                 ball: Tensor, node_map: Tensor,
                 num_local: int) -> 'PropagationChange':
        r"""This change on a ball, in local ids, for :obj:`old` and
        :obj:`new` restricted to it (see :meth:`LinearPropagation.restrict`;
        returned as is where they are this change's own)."""
        if old is self.old and new is self.new:
            return self
        entries = None
        if self.entries is not None:
            row, col, value = self.entries
            ball, node_map = ball.to(row.device), node_map.to(row.device)
            inside = ball[row] & ball[col]
            row, col = node_map[row[inside]], node_map[col[inside]]
            order = torch.argsort(row * num_local + col, stable=True)
            entries = (row[order], col[order], value[inside][order])
        return PropagationChange(old, new, entries)

    def __call__(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        r"""Returns :math:`P x` and :math:`(P - P') x` for :obj:`x` of
        shape :obj:`[num_nodes, d]`."""
        alpha = self.alpha
        out, change = x * alpha[0], torch.zeros_like(x)
        power, delta = x, None
        for layer in range(len(alpha) - 1):
            step = torch.sparse.mm(self.delta, power)
            if delta is not None:
                step += torch.sparse.mm(self.new.adj, delta)
            power = torch.sparse.mm(self.old.adj, power)
            out.add_(power, alpha=alpha[layer + 1])
            change.add_(step, alpha=alpha[layer + 1])
            delta = step
        return out, change


def _normalized(deg: Tensor, row: Tensor, col: Tensor,
                dtype: torch.dtype = torch.float64) -> Tensor:
    # The symmetric normalisation of the entries (row, col) in 'dtype'.
    inv_sqrt = deg.to(dtype).pow(-0.5).masked_fill(deg == 0, 0)
    return inv_sqrt[row] * inv_sqrt[col]
