"""Influence-function unlearning for PyTorch Geometric recommenders."""
from .data import InteractionData
from .generic import GenericIFRUConfig, GenericIFRUnlearner
from .ifru import IFRUConfig, IFRUnlearner
from .models import HeteroLinkModel, LinkModel
from .recipe import Recipe, from_training_loop
from .request_queue import RequestQueue
from .spillover import (
    PruningConfig,
    PruningStrategy,
    SpilloverResult,
    SpilloverTracer,
    infer_num_hops,
    trace_spillover,
)
from .training import TrainConfig, TrainResult, build_model, train
from .unlearner import (
    AlreadyForgottenError,
    RequestError,
    Unlearner,
    UnlearnResult,
)

__version__ = '0.1.0'

__all__ = [
    'from_training_loop',
    'Recipe',
    'InteractionData',
    'Unlearner',
    'UnlearnResult',
    'RequestError',
    'AlreadyForgottenError',
    'RequestQueue',
    'IFRUnlearner',
    'IFRUConfig',
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
