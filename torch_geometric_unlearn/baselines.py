r"""Baselines behind the same
:meth:`~torch_geometric_unlearn.unlearner.Unlearner.unlearn` call:
retraining from scratch, warm-start retraining and fine-tuning, all with the
reference trainer."""
import time
from dataclasses import replace
from typing import Dict, Optional, Tuple

from .training import TrainConfig, TrainResult, train
from .unlearner import Request, Unlearner, remaining_data


class RetrainUnlearner(Unlearner):
    r"""Retrains from scratch on the remaining data (re-initialised
    parameters, new negatives): the gold standard that unlearning
    approximates.  :obj:`config` is the
    :class:`~torch_geometric_unlearn.training.TrainConfig` of the original
    training."""
    method = 'retrain'
    warm_start = False

    def __init__(self, model, data, examples, labels=None, l2: float = 1.0,
                 config: Optional[TrainConfig] = None,
                 copy_model: bool = False):
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


class WarmRetrainUnlearner(RetrainUnlearner):
    r"""Continues training from the current parameters on the remaining
    data until the validation metric stops improving."""
    method = 'warm-retrain'
    warm_start = True


class FineTuneUnlearner(RetrainUnlearner):
    r"""Fine-tunes the current parameters on the remaining data for a fixed
    budget of :obj:`epochs` epochs (the best validation epoch is kept)."""
    method = 'finetune'
    warm_start = True

    def __init__(self, model, data, examples, labels=None, l2: float = 1.0,
                 config: Optional[TrainConfig] = None, epochs: int = 2,
                 copy_model: bool = False):
        super().__init__(model, data, examples, labels, l2, config,
                         copy_model)
        if epochs < 1:
            raise ValueError(f"'epochs' must be at least 1 (got {epochs})")
        self.epochs = epochs

    def _train_config(self) -> TrainConfig:
        return replace(self.config, max_epochs=self.epochs,
                       patience=self.epochs)
