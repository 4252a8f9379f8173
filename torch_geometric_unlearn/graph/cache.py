r"""What an unlearner keeps across requests: the structures of its current
graph.

A deletion stream (one user today, five tomorrow) changes a few edges per
request, so the spillover tracer's CSR, the propagation matrices, the
examples' node ids and their order by item are built once per model and
then updated by removing entries, never rebuilt or sorted again.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys)
from torch_geometric_unlearn.graph.propagation import LinearPropagation
from torch_geometric_unlearn.graph.tracer import SpilloverTracer


class GraphCache:
    r"""The structures of one training graph and its examples.

    Args:
        data (InteractionData): The data.
        examples (torch.Tensor): The training examples, :obj:`[m, M]`.
        tracer (SpilloverTracer, optional): The tracer of
            :obj:`data.edge_index`; built when not given.
        nodes (torch.Tensor, optional): The examples as homogeneous node
            ids :obj:`[m, M]` (items offset by the number of users).
        order (torch.Tensor, optional): The examples' indices sorted by
            item, :obj:`[M]`.
    """
    def __init__(self, data: InteractionData, examples: Tensor,
                 tracer: Optional[SpilloverTracer] = None,
                 nodes: Optional[Tensor] = None,
                 order: Optional[Tensor] = None):
        self.data, self.examples = data, examples
        self.tracer = tracer or SpilloverTracer(data.edge_index,
                                                data.num_nodes)
        if nodes is None:
            nodes = torch.cat([examples[:1], examples[1:] + data.num_users])
        self.nodes = nodes
        if order is None:
            order = torch.argsort(examples[1], stable=True)
        #: The examples sorted by (positive) item, the order the products
        #: take them in.
        self.order = order
        self._props: Dict[Tuple, LinearPropagation] = {}
        self._known: Optional[Tensor] = None
        #: The loss of the examples in :attr:`order` on the whole graph (a
        #: :class:`~torch_geometric_unlearn.influence.bilinear.
        #: BilinearLoss`): set by the first request that needs it, and
        #: carried over by :meth:`advance` on the same pattern.
        self.loss = None
        #: The same examples with several negatives each, for the
        #: trajectory step's curvature: (negatives per example, loss), set
        #: and carried over likewise.
        self.curvature = None

    def holds(self, data: InteractionData, examples: Tensor) -> bool:
        r"""Whether this cache describes :obj:`data` and :obj:`examples`
        (the very objects: an unlearner's state is replaced, never
        edited)."""
        return self.data is data and self.examples is examples

    def propagation(self, alpha: Tensor, dtype: torch.dtype,
                    device: Optional[torch.device] = None
                    ) -> LinearPropagation:
        r"""The whole graph's :class:`LinearPropagation` with layer weights
        :obj:`alpha`, in :obj:`dtype` on :obj:`device`; the structure stays
        on the CPU with the tracer, for :meth:`LinearPropagation.restrict`.
        """
        tracer = self.tracer
        device = torch.device(device or tracer.col.device)
        key = (dtype, device)
        if key not in self._props:
            self._props[key] = LinearPropagation.from_csr(
                tracer.rowptr, tracer.col, alpha, dtype).to(device=device)
        return self._props[key]

    def known(self) -> Tensor:
        r"""The sorted keys (see
        :func:`~torch_geometric_unlearn.data.interactions.
        pair_keys`) of the training pairs."""
        if self._known is None:
            self._known = pair_keys(self.data.train_index,
                                    self.data.num_items).sort()[0]
        return self._known

    def redrawn(self, examples: Tensor) -> 'GraphCache':
        r"""A cache of the same graph for :obj:`examples` that differ from
        this one's only in their negatives: the graph's structures are
        shared, the examples' own are built anew."""
        out = GraphCache(self.data, examples, self.tracer, order=self.order)
        out._props, out._known = self._props, self._known
        return out

    def advance(self, deleted_edges: Tensor, data: InteractionData,
                examples: Tensor, example_mask: Tensor) -> 'GraphCache':
        r"""The cache after a request, derived from this one, which is left
        unchanged.

        Args:
            deleted_edges (torch.Tensor): The request's edges as node pairs,
                :obj:`[2, k]`.
            data (InteractionData): The data after the request.
            examples (torch.Tensor): The examples after the request.
            example_mask (torch.Tensor): Which examples remain, :obj:`[M]`.
        """
        tracer = self.tracer
        if deleted_edges.size(1):
            tracer = tracer.remove_edges(tracer.find_edges(deleted_edges)[1])
        position = torch.cumsum(example_mask, 0) - 1
        kept = example_mask[self.order]
        order = position[self.order[kept]]
        out = GraphCache(data, examples, tracer, self.nodes[:, example_mask],
                         order)
        if self.loss is not None:
            out.loss = self.loss.subset(kept.to(self.loss.pattern.col.device))
        if self.curvature is not None:
            count, loss = self.curvature
            out.curvature = (count, loss.subset(kept.repeat(count).to(
                loss.pattern.col.device)))
        return out
