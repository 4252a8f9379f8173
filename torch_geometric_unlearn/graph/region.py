r"""Where a request's update works: the rows it solves for and the region
of the graph their gradients and products need.

:func:`affected_rows` traces a request's spillover and keeps the rows
worth solving for (see :mod:`~torch_geometric_unlearn.graph.spillover`);
:class:`Region` numbers a node set locally, the ball of the rows first,
so that propagation and products run on the region alone.
"""
from typing import TYPE_CHECKING, Callable, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.graph.pruning import PruningConfig
from torch_geometric_unlearn.graph.tracer import SpilloverTracer

if TYPE_CHECKING:  # The graph layer sits below the unlearners.
    from torch_geometric_unlearn.unlearn.request import Request


def affected_rows(tracer: SpilloverTracer, request: 'Request', nodes: Tensor,
                  num_users: int, num_hops: int, extra_hops: int,
                  pruning: PruningConfig,
                  union: Optional[Callable[[Tensor], Tensor]] = None
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""What a request touches, for the unlearners of this package.

    Args:
        tracer (SpilloverTracer): The tracer of the training graph.
        request (Request): The request.
        nodes (torch.Tensor): The training examples as homogeneous node ids
            :obj:`[m, M]` (row 0 users, then items offset by
            :obj:`num_users`).
        num_users (int): Number of users.
        num_hops (int): The model's receptive field :math:`L`.
        extra_hops (int): Candidate rows lie within :math:`L` + this many
            hops of the direct nodes.
        pruning (PruningConfig): Which candidates to keep, by importance.
        union (Callable, optional): Merges a node mask over the ranks that
            hold the other shards of the examples (see
            :mod:`~torch_geometric_unlearn.unlearn.distributed`).

    Returns:
        (torch.Tensor, torch.Tensor, torch.Tensor): The direct nodes
        :obj:`[k]` (ends of the forgotten pairs); the examples :obj:`[c]`
        whose scores change (a node within :math:`L` hops of a deleted
        edge); and the rows :obj:`[r]` to solve for: the candidates, closed
        under the coupling of examples (e.g. negative items, which need no
        edge), after pruning.
    """
    direct = torch.unique(torch.cat([request.pairs[0],
                                     request.pairs[1] + num_users]))
    hops = num_hops + extra_hops
    if request.deleted_edges.size(1) > 0:
        traced = tracer.trace(request.deleted_edges, num_hops)
        spilled = torch.zeros(tracer.num_nodes, dtype=torch.bool)
        spilled[traced.spillover_nodes] = True
        # Examples may have any number of rows, so they are matched against
        # the spillover region here rather than by the tracer.
        changed = spilled[nodes].any(0).nonzero().view(-1)
        importance = tracer.importance(traced.deleted_edge_mask, hops)
    else:  # Only non-edge (e.g. negatively labelled) pairs: no spillover.
        changed = direct.new_empty(0)
        importance = torch.zeros(tracer.num_nodes, dtype=torch.float64)
    region = tracer.k_hop(direct, hops)
    if extra_hops > 0:
        inner = tracer.k_hop(direct, hops - 1)
        coupled = torch.zeros_like(region)
        coupled[nodes[:, inner[nodes].any(0)].reshape(-1)] = True
        region |= coupled if union is None else union(coupled)
    rows = pruning.select(importance, region.nonzero().view(-1), direct)
    return direct, changed, rows


class Region:
    r"""A node set in local ids :obj:`0 .. size - 1`: the ball first, then
    the other nodes of the examples used (on any rank, with
    :obj:`union`).

    A region that holds at least :obj:`WHOLE` of the graph's nodes (on
    the small-world graphs of recommenders, every request's does) is
    numbered as the whole graph instead: local ids are node ids and
    :obj:`size` is the number of nodes.  The whole graph's propagations
    and final embeddings then serve it as they are, with no re-indexing
    per request; the nodes outside the set are never read.

    Args:
        ball (torch.Tensor): Mask of the ball, :obj:`[num_nodes]`.
        extra (torch.Tensor): The other nodes, :obj:`[k]` (any order,
            repeats allowed).
        num_nodes (int): Number of nodes.
        union (Callable, optional): Merges a node mask over ranks.
        whole (bool, optional): Number the region as the whole graph
            whatever it holds (:obj:`None`: from :obj:`WHOLE`).
    """
    #: The share of the nodes from which a region is the whole graph:
    #: restricting to 90% of a graph saves little of a product's work, and
    #: re-indexing costs a pass over its edges.
    WHOLE = 0.9

    def __init__(self, ball: Tensor, extra: Tensor, num_nodes: int,
                 union: Optional[Callable[[Tensor], Tensor]] = None,
                 whole: Optional[bool] = None):
        extra_mask = torch.zeros(num_nodes, dtype=torch.bool)
        extra_mask[extra] = True
        if union is not None:
            extra_mask = union(extra_mask)
        extra_mask &= ~ball
        self.ball = ball
        #: The number of nodes in the set.
        self.held = int(ball.sum()) + int(extra_mask.sum())
        self.whole = (self.held >= self.WHOLE * num_nodes if whole is None
                      else whole)
        self.nodes = (torch.arange(num_nodes) if self.whole else torch.cat(
            [ball.nonzero().view(-1), extra_mask.nonzero().view(-1)]))
        self.size = self.nodes.numel()
        self.node_map = torch.full((num_nodes, ), -1, dtype=torch.long)
        self.node_map[self.nodes] = torch.arange(self.size)

    def gather(self, x: Tensor) -> Tensor:
        return x if self.whole else x[self.nodes.to(x.device)]
