"""Influence-function unlearning for PyTorch Geometric recommenders."""
from torch_geometric_unlearn.data.interactions import InteractionData
from torch_geometric_unlearn.graph.spillover import (PruningConfig,
                                                     PruningStrategy,
                                                     SpilloverResult,
                                                     SpilloverTracer,
                                                     infer_num_hops,
                                                     trace_spillover)
from torch_geometric_unlearn.models import HeteroLinkModel, LinkModel
from torch_geometric_unlearn.training.recorder import TrajectoryRecorder
from torch_geometric_unlearn.training.trainer import (TrainConfig, TrainResult,
                                                      build_model, train)
from torch_geometric_unlearn.unlearn.base import Unlearner, UnlearnResult
from torch_geometric_unlearn.unlearn.config import (GenericIFRUConfig,
                                                    IFRUConfig)
from torch_geometric_unlearn.unlearn.generic import (GenericIFRUnlearner,
                                                     LinkIFRUnlearner)
from torch_geometric_unlearn.unlearn.ifru import (IFRUnlearner,
                                                  LightGCNIFRUnlearner)
from torch_geometric_unlearn.unlearn.queue import RequestQueue
from torch_geometric_unlearn.unlearn.recipe import Recipe, from_training_loop
from torch_geometric_unlearn.unlearn.request import (AlreadyForgottenError,
                                                     RequestError)

__version__ = '0.1.0'

__all__ = [
    'from_training_loop',
    'Recipe',
    'TrajectoryRecorder',
    'InteractionData',
    'Unlearner',
    'UnlearnResult',
    'RequestError',
    'AlreadyForgottenError',
    'RequestQueue',
    'IFRUnlearner',
    'IFRUConfig',
    'LightGCNIFRUnlearner',
    'LinkIFRUnlearner',
    'GenericIFRUnlearner',
    'GenericIFRUConfig',
    'LinkModel',
    'HeteroLinkModel',
    'TrainConfig',
    'TrainResult',
    'build_model',
    'train',
    'PruningConfig',
    'PruningStrategy',
    'SpilloverResult',
    'SpilloverTracer',
    'infer_num_hops',
    'trace_spillover',
]
