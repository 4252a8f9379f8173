"""Influence-function unlearning for PyTorch Geometric recommenders."""
from .data import InteractionData

__version__ = '0.1.0'

__all__ = [
    'InteractionData',
]
