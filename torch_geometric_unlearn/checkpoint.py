r"""Checkpoints of a trained recommender together with everything an
unlearner needs to serve later requests: the data, the frozen training
examples, the L2 weight, the interactions forgotten so far and the
:class:`~torch_geometric_unlearn.unlearn.ledger.Ledger` of the requests
applied.

The parts are bound together: a checkpoint stores the fingerprints of its
model, data and examples, and its ledger's last entry names the model and
data it left.  :meth:`Checkpoint.load` refuses a checkpoint whose parts do
not match, saying which part.  :meth:`Checkpoint.save` refuses to replace
a checkpoint holding requests that the one being saved does not (another
writer's), so that no deletion is silently undone."""
import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import IO, Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys)
from torch_geometric_unlearn.persist import atomic_write, file_lock
from torch_geometric_unlearn.training.trainer import TrainConfig, build_model
from torch_geometric_unlearn.unlearn.ledger import (Ledger, LedgerError,
                                                    data_fingerprint,
                                                    examples_fingerprint,
                                                    fingerprint,
                                                    model_fingerprint)

FORMAT = 'torch_geometric_unlearn.checkpoint/3'
#: Written before the horizon and the training configuration were
#: fingerprinted; read, and written as :data:`FORMAT` by the next save.
FORMAT_2 = 'torch_geometric_unlearn.checkpoint/2'
#: Written before the ledger and fingerprints; read with a ledger started by
#: an entry recording the upgrade and the state found.
FORMAT_1 = 'torch_geometric_unlearn.checkpoint/1'
# The parts whose fingerprints each format stores.
_PARTS = {FORMAT: ('model', 'data', 'examples', 'horizon', 'train_config'),
          FORMAT_2: ('model', 'data', 'examples')}
_FORMATS = (FORMAT, FORMAT_2, FORMAT_1)


def _write(payload: Dict[str, Any], f: IO):
    # torch.save reports a failed write (a full disk) as a RuntimeError.
    try:
        torch.save(payload, f)
    except RuntimeError as e:
        raise OSError(f"writing the checkpoint failed: {e}") from e


def _check_forgotten(path: str, forgotten, data: InteractionData):
    # The record of forgotten pairs decides what a later request may name.
    if not isinstance(forgotten, Tensor) or forgotten.dtype != torch.long \
            or forgotten.dim() != 2 or forgotten.size(0) != 2:
        shape = (list(forgotten.shape) if isinstance(forgotten, Tensor) else
                 type(forgotten).__name__)
        raise ValueError(f"'{path}': the record of forgotten pairs must be "
                         f"a torch.long tensor [2, F] (got {shape})")
    if forgotten.numel() and (
            forgotten.min() < 0 or forgotten[0].max() >= data.num_users or
            forgotten[1].max() >= data.num_items):
        raise ValueError(f"'{path}': the record of forgotten pairs holds "
                         f"ids outside the data's users and items")


class CheckpointConflict(ValueError):
    r"""Saving would replace a checkpoint that holds forgotten requests the
    one being saved does not hold: another writer's, saved after this one
    was loaded.  Nothing was written."""


@dataclass
class Checkpoint:
    r"""A LightGCN (or MF) recommender and its unlearning state.

    Args:
        model (LightGCN): The model.
        data (InteractionData): The data it was trained on, minus what was
            forgotten since.
        examples (torch.Tensor): The frozen training examples, :obj:`[3, M]`
            or :obj:`[2, M]`.
        labels (torch.Tensor, optional): Their BCE labels, :obj:`[M]`.
        train_config (TrainConfig): How it was trained (its :obj:`l2` is
            the unlearning objective's).
        forgotten (torch.Tensor): User-item pairs forgotten so far,
            :obj:`[2, F]`.
        horizon (torch.Tensor, optional): The training run's horizon (see
            :class:`~torch_geometric_unlearn.training.trainer.TrainResult`),
            for the trajectory step of
            :class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner`.
        ledger (Ledger, optional): The requests applied so far; empty by
            default.
    """
    model: LightGCN
    data: InteractionData
    examples: Tensor
    labels: Optional[Tensor]
    train_config: TrainConfig
    forgotten: Tensor
    horizon: Optional[Tensor] = None
    ledger: Optional[Ledger] = None

    def __post_init__(self):
        if self.ledger is None:
            self.ledger = Ledger()

    def fingerprints(self) -> Dict[str, str]:
        r"""The fingerprints (SHA-256) of the model, the data, the
        examples, the horizon and the training configuration: every part
        that changes the next update."""
        config = json.dumps(self._config(), sort_keys=True)
        return {'model': model_fingerprint(self.model),
                'data': data_fingerprint(self.data),
                'examples': examples_fingerprint(self.examples, self.labels),
                'horizon': fingerprint({'horizon': self.horizon}),
                'train_config': hashlib.sha256(config.encode()).hexdigest()}

    def _config(self) -> Dict[str, Any]:
        return {k: getattr(v, 'value', v)
                for k, v in asdict(self.train_config).items()}

    def save(self, path: str, overwrite: bool = False,
             also: Sequence[Tuple[str, Callable[[IO], None], str]] = ()):
        r"""Writes the checkpoint to :obj:`path` with :func:`torch.save`,
        crash-safe (see :mod:`~torch_geometric_unlearn.persist`): a crash
        leaves the old file or the whole new one, so :obj:`path` may be the
        file the checkpoint was loaded from.

        A checkpoint already at :obj:`path` is replaced only if every
        request it records is in this one's ledger (as a prefix) and every
        pair it records as forgotten is in this one's record: saving over a
        file another writer changed since this checkpoint was loaded would
        undo that writer's deletions.  The check and the write hold
        :obj:`path`'s writer's lock
        (:func:`~torch_geometric_unlearn.persist.file_lock`); hold it
        yourself from :meth:`load` to :meth:`save` to wait for other writers
        instead of failing.

        Args:
            path (str): Where to write.
            overwrite (bool): Replace whatever is at :obj:`path`.
            also (Sequence[Tuple[str, Callable, str]]): Other files of the
                same commit, :obj:`(path, write, mode)` as
                :func:`~torch_geometric_unlearn.persist.atomic_write` takes
                them (e.g. a ledger export and a report): all are written
                before any is renamed, and the checkpoint is renamed last,
                so a failure writing any of them changes nothing.

        Raises:
            CheckpointConflict: If the file at :obj:`path` holds requests
                this checkpoint does not (nothing is written).
        """
        payload = {
            'format': FORMAT,
            'model': {
                'num_nodes': self.model.num_nodes,
                'embedding_dim': self.model.embedding_dim,
                'num_layers': self.model.num_layers,
                'state_dict': self.model.state_dict(),
            },
            'data': {f.name: getattr(self.data, f.name)
                     for f in fields(self.data)},
            'examples': self.examples,
            'labels': self.labels,
            'train_config': self._config(),
            'forgotten': self.forgotten,
            'horizon': self.horizon,
            'ledger': self.ledger.to_list(),
            'ledger_salt': self.ledger.salt,
            'fingerprints': self.fingerprints(),
        }
        with file_lock(path):
            if not overwrite:
                self._check_replaces(path)
            atomic_write(list(also) + [(path, lambda f: _write(payload, f),
                                        'wb')])

    def _check_replaces(self, path: str):
        # What the file at 'path' records must survive in this checkpoint.
        try:
            raw = torch.load(path, weights_only=True, mmap=True)
        except Exception:  # missing, or not a checkpoint: nothing to keep
            return
        if not isinstance(raw, dict) or raw.get('format') not in _FORMATS:
            return
        theirs = [e.get('hash') if isinstance(e, dict) else e
                  for e in raw.get('ledger') or []]
        ours = [e.hash for e in self.ledger.entries]
        lost = len(theirs) if ours[:len(theirs)] != theirs else 0
        forgotten = raw.get('forgotten')
        if isinstance(forgotten, Tensor) and forgotten.dim() == 2 and \
                forgotten.size(0) == 2 and forgotten.numel():
            num_items = self.data.num_items
            keys = pair_keys(forgotten.long(), num_items)
            lost += int((~torch.isin(keys, pair_keys(self.forgotten,
                                                     num_items))).sum())
        if lost:
            raise CheckpointConflict(
                f"'{path}' records forgotten requests or pairs that this "
                f"checkpoint does not ({len(theirs)} ledger entries there, "
                f"{len(ours)} here): another writer saved it after this "
                f"checkpoint was loaded, or it is another model's.  Saving "
                f"would undo those deletions: load '{path}' again and apply "
                f"the request to it, save elsewhere, or pass overwrite=True")

    @classmethod
    def load(cls, path: str) -> 'Checkpoint':
        r"""Reads a checkpoint written by :meth:`save`; raises a
        :class:`ValueError` naming the file if it is not one."""
        try:
            raw: Dict[str, Any] = torch.load(path, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as e:
            raise ValueError(f"'{path}' is not a readable checkpoint: {e}"
                             ) from e
        version = raw.get('format') if isinstance(raw, dict) else None
        if version not in _FORMATS:
            raise ValueError(f"'{path}' is not a torch_geometric_unlearn "
                             f"checkpoint (expected format {FORMAT!r})")
        newer = {FORMAT_1: ('ledger', 'fingerprints', 'ledger_salt'),
                 FORMAT_2: ('ledger_salt', )}.get(version, ())
        found = [key for key in newer if key in raw] + [
            part for part in ('horizon', 'train_config') if
            version == FORMAT_2 and part in (raw.get('fingerprints') or {})]
        if found:
            # A newer file relabelled would skip the newer checks.
            raise LedgerError(f"'{path}' says it is {version!r} but holds "
                              f"{found}, which only newer checkpoints have: "
                              f"its format was changed, so it is refused")
        missing = [key for key in ('model', 'data', 'examples', 'labels',
                                   'train_config', 'forgotten')
                   if key not in raw]
        if missing:
            raise ValueError(f"'{path}' lacks {missing}: it is incomplete")
        try:
            data = InteractionData(**raw['data'])
            spec = raw['model']
            if spec['num_nodes'] != data.num_nodes:
                raise ValueError(f"the model has {spec['num_nodes']} nodes "
                                 f"but the data {data.num_nodes}")
            model = build_model(data, spec['embedding_dim'],
                                spec['num_layers'])
            model.load_state_dict(spec['state_dict'])
            config = TrainConfig(**raw['train_config'])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise ValueError(f"'{path}' is not a valid checkpoint: "
                             f"{type(e).__name__}: {e}") from None
        for name, param in model.named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise ValueError(f"'{path}': the model's '{name}' holds NaN "
                                 f"or infinite values")
        _check_forgotten(path, raw['forgotten'], data)
        out = cls(model, data, raw['examples'], raw['labels'], config,
                  raw['forgotten'], raw.get('horizon'))
        if version == FORMAT_1:
            out._upgrade()
        else:
            out._bind(path, raw, _PARTS[version])
        return out

    def _upgrade(self):
        # The ledger starts by recording what was found: the forgotten
        # pairs of the earlier release's requests, the model and the data.
        model, data = model_fingerprint(self.model), data_fingerprint(
            self.data)
        ledger = Ledger()
        self.ledger = ledger.extended(ledger.entry(
            self.forgotten, 'upgrade', {'from': FORMAT_1, 'to': FORMAT},
            None, model, model, data))

    def _bind(self, path: str, raw: Dict[str, Any], parts: Tuple[str, ...]):
        # The parts belong together: as saved, and as the ledger left them.
        salt = raw.get('ledger_salt')
        if salt is not None and not isinstance(salt, str):
            raise LedgerError(f"'{path}': the ledger's salt is not a string")
        try:
            self.ledger = Ledger.from_list(raw.get('ledger'), salt)
        except (LedgerError, TypeError) as e:
            raise LedgerError(f"'{path}': {e}") from None
        saved = raw.get('fingerprints')
        if not isinstance(saved, dict):
            raise LedgerError(f"'{path}' lacks the fingerprints of its parts")
        now = self.fingerprints()
        for part in parts:
            if saved.get(part) != now[part]:
                name = part.replace('_', ' ')
                raise LedgerError(f"'{path}': the {name} part does not match "
                                  f"what the checkpoint was saved with")
        if not self.ledger.entries:
            if self.forgotten.numel():
                raise LedgerError(f"'{path}' records forgotten pairs but its "
                                  f"ledger is empty: the ledger was removed")
            return
        last = self.ledger.entries[-1]
        if last.model_after != now['model']:
            raise LedgerError(f"'{path}': the model is not the one the "
                              f"ledger's last request left")
        if last.data_after != now['data']:
            raise LedgerError(f"'{path}': the data is not what the ledger's "
                              f"last request left")
        if all(e.pairs is not None for e in self.ledger.entries):
            listed = torch.tensor([p for e in self.ledger.entries
                                   for p in e.pairs],
                                  dtype=torch.long).view(-1, 2).t()
            num_items = self.data.num_items
            if not torch.equal(pair_keys(listed, num_items).sort()[0],
                               pair_keys(self.forgotten,
                                         num_items).sort()[0]):
                raise LedgerError(f"'{path}': the record of forgotten "
                                  f"pairs differs from the ledger's")
