r"""The graph side of unlearning: adjacency forms
(:mod:`~torch_geometric_unlearn.graph.adjacency`), the exact k-hop
spillover of deleted edges and IFRU's importance pruning
(:mod:`~torch_geometric_unlearn.graph.spillover`), LightGCN's linear
propagation (:mod:`~torch_geometric_unlearn.graph.propagation`), the solve
region (:mod:`~torch_geometric_unlearn.graph.region`) and the structures
kept across requests (:mod:`~torch_geometric_unlearn.graph.cache`)."""
from torch_geometric_unlearn.graph.propagation import LinearPropagation
from torch_geometric_unlearn.graph.spillover import (PruningConfig,
                                                     PruningStrategy,
                                                     SpilloverResult,
                                                     SpilloverTracer,
                                                     infer_num_hops,
                                                     trace_spillover)

__all__ = [
    'PruningConfig',
    'PruningStrategy',
    'SpilloverResult',
    'SpilloverTracer',
    'infer_num_hops',
    'trace_spillover',
    'LinearPropagation',
]
