r"""Baselines behind the same
:meth:`~torch_geometric_unlearn.unlearn.base.Unlearner.unlearn` call:
retraining from scratch, the paired retrain, warm-start retraining and
fine-tuning, all with the reference trainer."""
import time
from dataclasses import replace
from typing import Dict, Optional, Tuple

import torch

from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.training.trainer import (TrainConfig, TrainResult,
                                                      fixed_epochs, train)
from torch_geometric_unlearn.unlearn.base import Unlearner, remaining_data
from torch_geometric_unlearn.unlearn.request import Request


class RetrainUnlearner(Unlearner):
    r"""Retrains from scratch on the remaining data (re-initialised
    parameters, new negatives): the gold standard that unlearning
    approximates.  :obj:`config` is the
    :class:`~torch_geometric_unlearn.training.trainer.TrainConfig` of the
    original training; its :obj:`l2` is the L2 weight (give :obj:`l2` only
    without
    a config, or equal to it)."""
    method = 'retrain'
    warm_start = False

    def __init__(self, model, data, examples, labels=None,
                 l2: Optional[float] = None,
                 config: Optional[TrainConfig] = None,
                 copy_model: bool = True):
        if config is not None and l2 is None:
            l2 = config.l2
        elif config is not None and l2 != config.l2:
            raise ValueError(f"The L2 weight is given twice, as 'l2'={l2!r} "
                             f"and config.l2={config.l2!r}: give it once")
        super().__init__(model, data, examples, labels, l2, copy_model)
        self.config = replace(config or TrainConfig(), l2=l2)
        self._record: Optional[TrainResult] = None

    def _train_config(self) -> TrainConfig:
        return self.config

    def _update(self, request: Request) -> Tuple[Dict, Dict]:
        start = time.perf_counter()
        data = remaining_data(self.data, request.train_mask)
        self._record = train(self.model, data, self._train_config(),
                             warm_start=self.warm_start)
        record = self._record
        return {'train': time.perf_counter() - start}, {
            'epochs': record.epochs,
            'best_epoch': record.best_epoch,
            record.metric: record.best_metric,
        }

    def _advance(self, request: Request):
        super()._advance(request)
        # Training drew new negatives: they are the objective from now on.
        self.examples, self.labels = self._record.examples, self._record.labels


class PairedRetrainUnlearner(RetrainUnlearner):
    r"""Retrains from scratch paired with the original run: the same seed and
    initialisation, the example stream (negatives, batch order) of the data
    the model was first trained on, minus every interaction forgotten so
    far (see :func:`~torch_geometric_unlearn.training.trainer.train` with
    :obj:`exclude`).  Its only difference from the original run is what
    was forgotten: the reference for an early-stopped model (see
    :mod:`~torch_geometric_unlearn.evaluation.fidelity`).

    The yardstick is the original run's length: early stopping applied
    again on the smaller data stops at another epoch, and its model differs
    from the original by that too, which flatters a method compared with
    it.  So :obj:`epochs` is required; :obj:`early_stopping=True` asks for
    the other retrain, and the result's diagnostics say which ran.

    Args:
        config (TrainConfig): The original run's configuration (its seed
            included).
        epochs (int, optional): Train exactly this many epochs, evaluating
            only at the last so that its parameters are kept (see
            :func:`~torch_geometric_unlearn.training.trainer.fixed_epochs`):
            the original run's restored epoch
            (:obj:`TrainResult.best_epoch`).
        early_stopping (bool): Instead of :obj:`epochs`, apply the
            configuration's early stopping again.
    """
    method = 'paired-retrain'

    def __init__(self, model, data, examples, labels=None,
                 l2: Optional[float] = None,
                 config: Optional[TrainConfig] = None,
                 epochs: Optional[int] = None, copy_model: bool = True,
                 early_stopping: bool = False):
        super().__init__(model, data, examples, labels, l2, config,
                         copy_model)
        if (epochs is None) != bool(early_stopping):
            raise ValueError("Give 'epochs', the original run's restored "
                             "epoch (record.best_epoch), or "
                             "early_stopping=True to stop again by "
                             "validation, not both")
        if epochs is not None and (isinstance(epochs, bool) or
                                   not isinstance(epochs, int) or
                                   epochs < 1):
            raise ValueError(f"'epochs' must be a positive int (got "
                             f"{epochs!r})")
        self.epochs = epochs
        self._stream = data

    def _train_config(self) -> TrainConfig:
        if self.epochs is None:
            return self.config
        return fixed_epochs(self.config, self.epochs)

    def _update(self, request: Request) -> Tuple[Dict, Dict]:
        start = time.perf_counter()
        stream = self._stream
        keys = torch.cat([self._forgotten,
                          pair_keys(request.pairs, stream.num_items)])
        excluded = torch.stack([keys // stream.num_items,
                                keys % stream.num_items])
        self._record = train(self.model, stream, self._train_config(),
                             exclude=excluded)
        record = self._record
        return {'train': time.perf_counter() - start}, {
            'epochs': record.epochs,
            'best_epoch': record.best_epoch,
            record.metric: record.best_metric,
            'length': ('early stopping applied again' if self.epochs is None
                       else f"the original run's {self.epochs} epochs"),
        }


class WarmRetrainUnlearner(RetrainUnlearner):
    r"""Continues training from the current parameters on the remaining
    data until the validation metric stops improving."""
    method = 'warm-retrain'
    warm_start = True


class FineTuneUnlearner(RetrainUnlearner):
    r"""Fine-tunes the current parameters on the remaining data for a fixed
    budget of :obj:`epochs` epochs and keeps the parameters of the last
    one: no validation selects among them.  (Keeping the best epoch made it
    the :class:`WarmRetrainUnlearner` cut short: both replay one seeded
    stream from the same parameters, so wherever the warm retrain restored
    an epoch within the budget, as it does on early-stopped models, the two
    returned the same parameters.  They now agree only where the warm
    retrain restores epoch :obj:`epochs` itself.)"""
    method = 'finetune'
    warm_start = True

    def __init__(self, model, data, examples, labels=None,
                 l2: Optional[float] = None,
                 config: Optional[TrainConfig] = None, epochs: int = 2,
                 copy_model: bool = True):
        super().__init__(model, data, examples, labels, l2, config,
                         copy_model)
        if epochs < 1:
            raise ValueError(f"'epochs' must be at least 1 (got {epochs})")
        self.epochs = epochs

    def _train_config(self) -> TrainConfig:
        # Evaluated only at the last epoch, which is then the one kept.
        return fixed_epochs(self.config, self.epochs)
