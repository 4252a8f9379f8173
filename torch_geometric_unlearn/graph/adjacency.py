r"""PyG's adjacency forms, in and out.

PyG holds a graph in several forms, and :class:`~torch_geometric.nn.models.
LightGCN` and every :class:`~torch_geometric.nn.conv.MessagePassing` layer
accept them all:

* :obj:`'edge_index'`: a :obj:`[2, E]` long tensor of (source, target);
* :obj:`'EdgeIndex'`: PyG's :class:`~torch_geometric.EdgeIndex`;
* :obj:`'SparseTensor'`: :class:`torch_sparse.SparseTensor` in PyG's
  :obj:`adj_t` layout (row = target), as
  :class:`~torch_geometric.transforms.ToSparseTensor` makes it;
* :obj:`'sparse_coo'`, :obj:`'sparse_csr'`: torch sparse tensors indexed
  as :obj:`edge_index` is (row = source, as
  :func:`~torch_geometric.utils.to_torch_csr_tensor` makes them).  CSC is
  refused: PyG's :func:`~torch_geometric.nn.conv.gcn_conv.gcn_norm`, which
  LightGCN normalises with, does not take it.

The package works on :obj:`edge_index` inside: :func:`to_edge_index` reads
any form, checking it against the data, and :func:`as_form` hands a graph
back in the form it was given (e.g. :attr:`UnlearnResult.adj
<torch_geometric_unlearn.unlearn.base.UnlearnResult.adj>`).
"""
from typing import Optional, Tuple

import torch
from torch import Tensor
from torch_geometric import EdgeIndex
from torch_geometric.typing import SparseTensor
from torch_geometric.utils import to_torch_coo_tensor, to_torch_csr_tensor

FORMS = ('edge_index', 'EdgeIndex', 'SparseTensor', 'sparse_coo',
         'sparse_csr')
_LAYOUTS = {torch.sparse_coo: 'sparse_coo', torch.sparse_csr: 'sparse_csr'}


def adjacency_form(adj) -> str:
    r"""The form of :obj:`adj`, one of :data:`FORMS`; raises a
    :class:`TypeError` for anything else."""
    if isinstance(adj, SparseTensor) and not isinstance(adj, Tensor):
        return 'SparseTensor'
    if isinstance(adj, EdgeIndex):
        return 'EdgeIndex'
    if isinstance(adj, Tensor):
        if adj.layout == torch.strided:
            return 'edge_index'
        if adj.layout in _LAYOUTS:
            return _LAYOUTS[adj.layout]
        raise TypeError(f"A {adj.layout} adjacency is not one PyG's "
                        f"LightGCN takes: convert it to CSR or COO")
    raise TypeError(f"An adjacency must be an edge_index tensor, an "
                    f"EdgeIndex, a torch_sparse.SparseTensor or a torch "
                    f"sparse COO/CSR/CSC tensor (got {type(adj).__name__})")


def to_edge_index(adj, num_nodes: Optional[int] = None,
                  name: str = 'edge_index') -> Tuple[Tensor, str]:
    r"""The :obj:`edge_index` :obj:`[2, E]` (long, source first) of an
    adjacency in any form, and the form.

    Args:
        adj: The adjacency (see :data:`FORMS`).
        num_nodes (int, optional): The number of nodes of the data it must
            match: a sparse adjacency's size must be
            :obj:`[num_nodes, num_nodes]`, and no node id may reach it.
        name (str): The argument's name, for messages.

    Raises:
        ValueError: If it is not square or does not match
            :obj:`num_nodes`, holds edge values other than 1 (LightGCN
            normalises an unweighted graph: values where none are
            expected), or is not a :obj:`[2, E]` integer tensor.
    """
    form = adjacency_form(adj)
    size, value = None, None
    if form == 'SparseTensor':
        row, col, value = adj.coo()
        edge_index = torch.stack([col, row])  # adj_t: row is the target
        size = tuple(adj.sparse_sizes())
    elif form.startswith('sparse_'):
        if adj.dim() != 2:
            raise ValueError(f"'{name}' must be a 2-D sparse matrix (got "
                             f"{adj.dim()} dimensions)")
        coo = adj.to_sparse_coo().coalesce()
        edge_index, value, size = coo.indices(), coo.values(), tuple(
            adj.shape)
    else:
        edge_index = adj.as_tensor() if form == 'EdgeIndex' else adj
        if form == 'EdgeIndex' and None not in adj.sparse_size():
            size = tuple(adj.sparse_size())
        if edge_index.dim() != 2 or edge_index.size(0) != 2 or \
                edge_index.dtype not in (torch.long, torch.int):
            raise ValueError(f"'{name}' must be an integer tensor of shape "
                             f"[2, E] (got {edge_index.dtype} "
                             f"{list(edge_index.shape)})")
        edge_index = edge_index.long()
    if size is not None and (size[0] != size[1] or (
            num_nodes is not None and size[0] != num_nodes)):
        expected = ('a square matrix' if num_nodes is None else
                    f'[{num_nodes}, {num_nodes}], the data\'s nodes')
        raise ValueError(f"'{name}' is {list(size)}, but it must be "
                         f"{expected}")
    if value is not None and value.numel() and not bool(
            (value == 1).all()):
        raise ValueError(f"'{name}' holds edge values other than 1: LightGCN "
                         f"normalises an unweighted graph, so give its "
                         f"structure only")
    if num_nodes is not None and edge_index.numel() and (
            int(edge_index.min()) < 0 or int(edge_index.max()) >= num_nodes):
        raise ValueError(f"'{name}' holds node ids outside [0, {num_nodes})")
    return edge_index, form


def as_form(edge_index: Tensor, form: str, num_nodes: int):
    r"""The graph :obj:`edge_index` :obj:`[2, E]` in :obj:`form` (see
    :data:`FORMS`), sized :obj:`[num_nodes, num_nodes]`."""
    if form not in FORMS:
        raise ValueError(f"'form' must be one of {list(FORMS)} "
                         f"(got {form!r})")
    size = (num_nodes, num_nodes)
    if form == 'edge_index':
        return edge_index
    if form == 'EdgeIndex':
        return EdgeIndex(edge_index, sparse_size=size)
    if form == 'SparseTensor':
        return SparseTensor(row=edge_index[1], col=edge_index[0],
                            sparse_sizes=size)
    make = (to_torch_coo_tensor if form == 'sparse_coo' else
            to_torch_csr_tensor)
    return make(edge_index, size=size)
