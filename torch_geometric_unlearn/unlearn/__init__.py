r"""The unlearners: the recipe that builds one from a user's own training
loop (:mod:`~torch_geometric_unlearn.unlearn.recipe`), the base class and its
transaction (:mod:`~torch_geometric_unlearn.unlearn.base`), IFRU for PyG's
LightGCN and MF (:mod:`~torch_geometric_unlearn.unlearn.ifru`) and for any link
predictor (:mod:`~torch_geometric_unlearn.unlearn.generic`), the
baselines (:mod:`~torch_geometric_unlearn.unlearn.baselines`, SISA in
:mod:`~torch_geometric_unlearn.unlearn.sisa` with RecEraser's aggregation in
:mod:`~torch_geometric_unlearn.unlearn.receraser`), and what
serves them: a request queue, certificates, the audit ledger and sharded
solves."""
from torch_geometric_unlearn.unlearn.base import Unlearner, UnlearnResult
from torch_geometric_unlearn.unlearn.baselines import (FineTuneUnlearner,
                                                       PairedRetrainUnlearner,
                                                       RetrainUnlearner,
                                                       WarmRetrainUnlearner)
from torch_geometric_unlearn.unlearn.config import (GenericIFRUConfig,
                                                    IFRUConfig)
from torch_geometric_unlearn.unlearn.generic import (GenericIFRUnlearner,
                                                     LinkIFRUnlearner)
from torch_geometric_unlearn.unlearn.ifru import (IFRUnlearner,
                                                  LightGCNIFRUnlearner)
from torch_geometric_unlearn.unlearn.queue import RequestQueue
from torch_geometric_unlearn.unlearn.receraser import AggregationConfig
from torch_geometric_unlearn.unlearn.recipe import Recipe, from_training_loop
from torch_geometric_unlearn.unlearn.request import (AlreadyForgottenError,
                                                     RequestError)
from torch_geometric_unlearn.unlearn.sisa import (SISAUnlearner,
                                                  ShardedRecommender,
                                                  train_sisa)

__all__ = [
    'AlreadyForgottenError',
    'RequestError',
    'Unlearner',
    'UnlearnResult',
    'IFRUConfig',
    'IFRUnlearner',
    'LightGCNIFRUnlearner',
    'LinkIFRUnlearner',
    'GenericIFRUConfig',
    'GenericIFRUnlearner',
    'FineTuneUnlearner',
    'PairedRetrainUnlearner',
    'RetrainUnlearner',
    'WarmRetrainUnlearner',
    'SISAUnlearner',
    'ShardedRecommender',
    'train_sisa',
    'AggregationConfig',
    'RequestQueue',
    'Recipe',
    'from_training_loop',
]
