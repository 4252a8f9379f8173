r"""Reference training: one loop for PyG's LightGCN and MF
(:mod:`~torch_geometric_unlearn.training.trainer`) and for any
:class:`~torch_geometric_unlearn.models.LinkModel`
(:mod:`~torch_geometric_unlearn.training.link`)."""
from torch_geometric_unlearn.training.link import (converge_link_model,
                                                   train_link_model)
from torch_geometric_unlearn.training.trainer import (LossType, TrainConfig,
                                                      TrainResult, build_model,
                                                      train)

__all__ = [
    'LossType',
    'TrainConfig',
    'TrainResult',
    'build_model',
    'train',
    'train_link_model',
    'converge_link_model',
]
