r"""Measuring unlearning: ranking metrics and closures
(:mod:`~torch_geometric_unlearn.evaluation.metrics`), fidelity against a
paired retrain (:mod:`~torch_geometric_unlearn.evaluation.fidelity`) and
the benchmark behind the ``benchmark`` command
(:mod:`~torch_geometric_unlearn.evaluation.benchmark`)."""
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs)
from torch_geometric_unlearn.evaluation.metrics import closure_ratio, evaluate

__all__ = [
    'closure_ratio',
    'evaluate',
    'change_closure',
    'noise_floor',
    'probe_pairs',
]
