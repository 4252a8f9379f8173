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

:class:`~torch_geometric_unlearn.graph.tracer.SpilloverTracer` does the
work and :class:`~torch_geometric_unlearn.graph.pruning.PruningConfig`
says what to keep; :func:`trace_spillover` is the one-call form.
Everything is computed by frontier expansion over a CSR adjacency and by
sparse matrix-vector products; nothing of size :math:`N \times N` is ever
built.  The sparse products run on :obj:`torch.sparse_csr_tensor`, or on
:class:`torch_sparse.SparseTensor` if asked (:obj:`backend='torch_sparse'`);
both give the same result.  torch's CSR is the default even where
torch-sparse is installed: it traced faster on MovieLens-100K (2.9 against
4.6 ms) and Gowalla (26 against 37 ms), and a Gowalla request took 6.7
against 12.3 s (``benchmarks/sparse_backends.py``).
"""
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric.utils import get_num_hops

from torch_geometric_unlearn.checks import check_num_hops
from torch_geometric_unlearn.graph.pruning import (  # noqa: F401
    PruningConfig, PruningStrategy)
from torch_geometric_unlearn.graph.tracer import (SpilloverResult,
                                                  SpilloverTracer)

# PruningConfig, PruningStrategy, SpilloverResult and SpilloverTracer are
# re-exported from their modules, documented there.
__all__ = ['trace_spillover', 'infer_num_hops']


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
        check_num_hops(num_hops)
        return num_hops
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module "
                        f"(got {type(model).__name__})")
    return get_num_hops(model)
