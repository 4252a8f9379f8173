r"""Interaction data: the train/validation/test split of user-item pairs
(:mod:`~torch_geometric_unlearn.data.interactions`), the bundled and
synthetic data sets (:mod:`~torch_geometric_unlearn.data.datasets`), the
deletion requests of experiments
(:mod:`~torch_geometric_unlearn.data.deletion`) and request files
(:mod:`~torch_geometric_unlearn.data.request_file`)."""
from torch_geometric_unlearn.data.datasets import (DataFormatError,
                                                   load_dataset, synthetic)
from torch_geometric_unlearn.data.interactions import (
    InteractionData, pair_keys, remaining_data, sample_negatives,
    to_undirected_homogeneous)
from torch_geometric_unlearn.data.request_file import read_request

__all__ = [
    'InteractionData',
    'pair_keys',
    'remaining_data',
    'sample_negatives',
    'to_undirected_homogeneous',
    'DataFormatError',
    'load_dataset',
    'synthetic',
    'read_request',
]
