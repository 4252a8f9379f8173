r"""The benchmark behind :obj:`python -m torch_geometric_unlearn benchmark`:
every unlearning method against retraining, in one process, with one
report per run.

For each repeat (seed :obj:`seed + r`) a model is trained with the
reference trainer, a request is drawn, and every method forgets it from a
copy of the model.  The report holds, per method:

* **efficiency**: wall time of
  :meth:`~torch_geometric_unlearn.unlearn.base.Unlearner.unlearn` and of its
  phases, peak memory above the level before the call, and the speed-up
  against the scratch and the warm-start retrain measured in the same run;
* **utility**: Recall@20, NDCG@20 and AUC on the test split, predicting with
  the new graph; with :obj:`'flip'` requests also AUC on the test pairs of
  the users and items the request touched;
* **fidelity**: the score-change closure of
  :mod:`~torch_geometric_unlearn.evaluation.fidelity` against the paired
  retrain (the original run again without the request, for as many epochs; the
  scratch retrain where :obj:`'paired-retrain'` is not among the methods), on
  the forgotten pairs and on probe pairs sharing a user or an item with them,
  with :obj:`'drop-edges'`, the do-nothing baseline, beside every method;
  score correlation with both retrains on a probe set (the test pairs and as
  many unseen pairs), top-20 overlap with both retrains, and the parameter
  closure against the warm-start retrain (JSON only: the warm retrain keeps
  training the early-stopped model far along directions unrelated to the
  request, so this figure says little about unlearning);
* **completeness**: the forgotten pairs' mean rank among their users'
  non-training items, as the share of the way from the original model to
  the scratch retrain (:obj:`rank_shift`, 1 is where retraining puts them),
  and the AUC of a score-threshold membership-inference attacker telling the
  forgotten pairs from never-seen pairs of the same users;
* **poison** (:obj:`'poison'` requests): the target items' share of users'
  top-20 lists and the share of the attack's lift removed.

Summaries give the mean and standard deviation of every figure over the
repeats.  With :obj:`converged_fidelity`, the IFRU variants' parameter
closure is also measured where influence functions are defined: between
the frozen-negative objective converged with and without the request (see
:func:`~torch_geometric_unlearn.evaluation.metrics.converge`).
"""
import copy
import csv
import json
import os
import platform
import statistics
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.data.datasets import load_dataset
from torch_geometric_unlearn.data.deletion import (flip_labels,
                                                   inject_fake_interactions,
                                                   item_interactions,
                                                   random_interactions,
                                                   random_items, random_users,
                                                   user_interactions)
from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       sample_negatives)
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         probe_pairs,
                                                         score_change)
from torch_geometric_unlearn.evaluation.metrics import (
    auc_on_pairs, closure_ratio, converge, evaluate, mean_rank,
    membership_inference_auc, score_correlation, top_k_overlap, top_k_share,
    unseen_pairs)
from torch_geometric_unlearn.persist import atomic_open
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.base import remaining_data
from torch_geometric_unlearn.unlearn.baselines import (FineTuneUnlearner,
                                                       PairedRetrainUnlearner,
                                                       RetrainUnlearner,
                                                       WarmRetrainUnlearner)
from torch_geometric_unlearn.unlearn.ifru import IFRUConfig, IFRUnlearner

METHODS = ('ifru', 'ifru-nospill', 'ifru-noprune', 'drop-edges', 'finetune',
           'warm-retrain', 'retrain', 'paired-retrain')
# Retrains: references, not candidates.
REFERENCES = ('warm-retrain', 'retrain', 'paired-retrain')
REQUESTS = ('random', 'users', 'items', 'poison', 'flip')


@dataclass
class RequestSpec:
    r"""What to forget: :obj:`kind` and :obj:`amount`, written
    :obj:`'kind:amount'`.

    * :obj:`'random:0.01'` (a fraction, below 1) or :obj:`'random:100'` (a
      count): random training interactions;
    * :obj:`'users:5'`, :obj:`'items:5'`: every interaction of random users
      or items;
    * :obj:`'poison:0.01'`: fake interactions injected before training (a
      fraction of the training interactions);
    * :obj:`'flip:0.01'`: training pairs whose labels were flipped before
      training (the IFRU paper's protocol; BCE).
    """
    kind: str
    amount: float

    def __post_init__(self):
        if self.kind not in REQUESTS:
            raise ValueError(f"Unknown request kind {self.kind!r} (choose "
                             f"from {list(REQUESTS)})")
        if not self.amount > 0:
            raise ValueError(f"The request amount must be positive (got "
                             f"{self.amount})")
        whole = float(self.amount).is_integer()
        if self.kind in ('users', 'items') and not whole:
            raise ValueError(f"'{self.kind}' needs a whole count (got "
                             f"{self.amount})")
        if self.kind in ('poison', 'flip') and self.amount >= 1:
            raise ValueError(f"'{self.kind}' needs a fraction below 1 (got "
                             f"{self.amount})")

    @classmethod
    def parse(cls, spec: str) -> 'RequestSpec':
        r"""Parses :obj:`'kind:amount'`."""
        kind, _, amount = spec.partition(':')
        try:
            value = float(amount)
        except ValueError:
            raise ValueError(f"A request is written 'kind:amount', e.g. "
                             f"'random:0.01' (got {spec!r})") from None
        return cls(kind, value)

    def __str__(self) -> str:
        return f'{self.kind}:{self.amount:g}'


@dataclass
class BenchmarkConfig:
    r"""Configuration of :func:`run_benchmark`, validated on construction.

    Args:
        dataset (str): :obj:`'synthetic'`, :obj:`'ml-100k'`,
            :obj:`'gowalla'` or :obj:`'lastfm'`.
        data_dir (str, optional): Folder of the real data sets.
        dataset_options (Dict[str, Any]): Extra keyword arguments of the
            loader, e.g. the sizes of
            :func:`~torch_geometric_unlearn.data.datasets.synthetic`.
        layers (int): LightGCN layers; 0 is matrix factorisation.
        dim (int): Embedding size.
        request (RequestSpec or str): What to forget.
        methods (Sequence[str]): Methods to compare, from :obj:`METHODS`.
            :obj:`'drop-edges'` keeps the parameters and only predicts with
            the new graph: the do-nothing baseline, added after the IFRU
            variants if missing, as it costs nothing.
            :obj:`'paired-retrain'` is the reference of the score-change
            closure (see :mod:`~torch_geometric_unlearn.evaluation.fidelity`).
        repeats (int): Independent runs (seeds :obj:`seed` to
            :obj:`seed + repeats - 1`).
        ifru_repeats (int): Timed calls of each IFRU variant per run; the
            median is reported (the first call of a process pays for
            warm-up).
        seed (int): First seed.
        device (str): Torch device of the model.
        train (TrainConfig): The reference trainer's settings; its seed is
            replaced by each run's.
        converged_fidelity (bool): Also measure the IFRU variants' closure
            between converged points.
        progress (bool): Show progress bars.
    """
    dataset: str = 'synthetic'
    data_dir: Optional[str] = None
    dataset_options: Dict[str, Any] = field(default_factory=dict)
    layers: int = 2
    dim: int = 64
    request: RequestSpec = field(
        default_factory=lambda: RequestSpec('random', 0.01))
    methods: Sequence[str] = METHODS
    repeats: int = 1
    ifru_repeats: int = 3
    seed: int = 0
    device: str = 'cpu'
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(progress=False))
    converged_fidelity: bool = False
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.request, str):
            self.request = RequestSpec.parse(self.request)
        self.methods = list(self.methods)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ValueError(f"Unknown methods {unknown} (choose from "
                             f"{list(METHODS)})")
        if 'drop-edges' not in self.methods:
            ifru = [i for i, m in enumerate(self.methods)
                    if m.startswith('ifru')]
            self.methods.insert(ifru[-1] + 1 if ifru else 0, 'drop-edges')
        for name in ('repeats', 'ifru_repeats', 'dim'):
            if getattr(self, name) < 1:
                raise ValueError(f"'{name}' must be at least 1 (got "
                                 f"{getattr(self, name)})")
        if self.layers < 0:
            raise ValueError(f"'layers' must be non-negative (got "
                             f"{self.layers})")
        if self.request.kind == 'flip' and self.train.loss.value != 'bce':
            raise ValueError("'flip' requests need labelled data and the "
                             "BCE loss (set the loss to 'bce')")
        if self.request.kind == 'poison' and self.train.loss.value != 'bpr':
            raise ValueError("'poison' requests inject implicit interactions:"
                             " use the BPR loss")


class PeakMemory:
    r"""Peak memory above the level at entry, in MiB, of the block it
    guards: CUDA allocations on a CUDA device, else the process's resident
    set size sampled every 5 ms (Linux; :obj:`None` elsewhere): coarse
    enough that the sampling thread costs the timed call little."""
    def __init__(self, device: str = 'cpu'):
        self.device = torch.device(device)
        self.peak_mib: Optional[float] = None

    @staticmethod
    def _rss() -> Optional[int]:
        try:
            with open('/proc/self/statm') as f:
                return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
        except (OSError, ValueError):
            return None

    def _sample(self):
        while not self._done.wait(0.005):
            self._peak = max(self._peak, self._rss() or 0)

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        self._base = self._rss()
        if self._base is not None:
            self._peak, self._done = self._base, threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.peak_mib = (peak - self._base) / 2**20
        elif self._base is not None:
            self._done.set()
            self._thread.join()
            self._peak = max(self._peak, self._rss() or 0)
            self.peak_mib = (self._peak - self._base) / 2**20
        return False


def with_sampled_negatives(data: InteractionData,
                           seed: int = 0) -> InteractionData:
    r"""Labelled data from implicit data: every split's pairs become
    positives (label 1), joined by one never-seen item per positive, for
    the same user (label 0), drawn once with :obj:`seed`.  BCE training and
    :func:`~torch_geometric_unlearn.data.deletion.flip_labels` then work as on
    rated data."""
    if data.train_label is not None:
        return data
    gen = torch.Generator().manual_seed(seed)
    splits = {s: getattr(data, f'{s}_index') for s in ('train', 'val', 'test')}
    known = torch.cat([x for x in splits.values() if x is not None], 1)
    forbidden = pair_keys(known, data.num_items).sort()[0]
    changes = {}
    for split, index in splits.items():
        if index is None:
            continue
        neg = sample_negatives(index, data.num_items, forbidden, gen)
        changes[f'{split}_index'] = torch.cat(
            [index, torch.stack([index[0], neg])], 1)
        changes[f'{split}_label'] = torch.cat([
            torch.ones(index.size(1), dtype=torch.long),
            torch.zeros(index.size(1), dtype=torch.long)
        ])
    return data.replace(name=f'{data.name}+negatives', **changes)


def load_data(config: BenchmarkConfig, seed: int) -> InteractionData:
    r"""The data set of :obj:`config`: rated MovieLens-100K is binarised at
    4 stars for BCE; other implicit data get sampled negatives for
    :obj:`'flip'` requests."""
    kwargs: Dict[str, Any] = dict(config.dataset_options)
    if config.dataset == 'synthetic':
        kwargs['seed'] = seed
    elif config.dataset == 'ml-100k' and config.train.loss.value == 'bce':
        kwargs.update(rating_threshold=4, binary_labels=True)
    data = load_dataset(config.dataset, config.data_dir, **kwargs)
    if config.request.kind == 'flip':
        data = with_sampled_negatives(data, seed)
    return data


def draw_request(spec: RequestSpec, data: InteractionData, seed: int
                 ) -> Tuple[InteractionData, Tensor, Optional[Tensor]]:
    r"""Draws a request.  Returns the data to train on, the pairs to
    forget :obj:`[2, k]` and, for :obj:`'poison'`, the attack's target
    items."""
    amount = spec.amount
    if spec.kind == 'random':
        size = ({'fraction': amount} if amount < 1 else {
            'count': int(amount)
        })
        return data, random_interactions(data, seed=seed, **size), None
    if spec.kind == 'users':
        users = random_users(data, int(amount), seed=seed)
        return data, user_interactions(data, users), None
    if spec.kind == 'items':
        items = random_items(data, int(amount), seed=seed)
        return data, item_interactions(data, items), None
    if spec.kind == 'poison':
        attack = inject_fake_interactions(data, fraction=amount, seed=seed)
        return attack.data, attack.request, attack.target_items
    attack = flip_labels(data, fraction=amount, seed=seed)
    return attack.data, attack.request, None


def _unlearner(method: str, model, data, record, config: TrainConfig):
    args = (model, data, record.examples, record.labels, config.l2)
    ifru = dict(copy_model=True, horizon=record.horizon)
    if method == 'ifru':
        return IFRUnlearner(*args, **ifru)
    if method == 'ifru-nospill':
        return IFRUnlearner(*args, config=IFRUConfig(spillover=False),
                            **ifru)
    if method == 'ifru-noprune':
        return IFRUnlearner(*args, config=IFRUConfig(pruning=None), **ifru)
    if method == 'paired-retrain':
        return PairedRetrainUnlearner(*args, config=config,
                                      epochs=record.best_epoch,
                                      copy_model=True)
    cls = {
        'finetune': FineTuneUnlearner,
        'warm-retrain': WarmRetrainUnlearner,
        'retrain': RetrainUnlearner,
    }[method]
    return cls(*args, config=config, copy_model=True)


def _timed(config: BenchmarkConfig, method: str, model, data, record,
           train_config: TrainConfig, pairs: Tensor):
    calls = config.ifru_repeats if method.startswith('ifru') else 1
    times, peaks = [], []
    for _ in range(calls):
        unlearner = _unlearner(method, model, data, record, train_config)
        with PeakMemory(config.device) as memory:
            start = time.perf_counter()
            result = unlearner.unlearn(pairs)
            if config.device.startswith('cuda'):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peaks.append(memory.peak_mib)
    entry: Dict[str, Any] = {
        'seconds': statistics.median(times),
        'all_seconds': times,
        'timings': result.timings,
        'peak_mib': None if peaks[-1] is None else max(peaks),
    }
    if method.startswith('ifru'):
        diag = result.diagnostics
        entry['solve_rows'] = diag['solve_rows']
        entry['changed_examples'] = diag['changed_examples']
        entry['solver'] = [{
            'iterations': s.iterations,
            'residual': s.residual,
            'hvps': s.num_hvps,
            'message': s.message,
        } for s in diag['solver']]
        certificate = result.certificate
        entry['ran'] = {'step': certificate.step,
                        'curvature': certificate.curvature,
                        'horizon': certificate.horizon,
                        'flags': certificate.flags}
    else:
        entry.update({k: v for k, v in result.diagnostics.items()
                      if isinstance(v, (int, float))})
    return result, entry


def _touched_auc(model, edge_index, data: InteractionData, pairs: Tensor):
    # The paper's AUC on the test pairs of the users and items the request
    # touched.
    index, label = data.test_index, data.test_label
    mask = (torch.isin(index[0], pairs[0]) | torch.isin(index[1], pairs[1]))
    return auc_on_pairs(model, edge_index, index[:, mask], label[mask],
                        data.num_users)


def run_once(config: BenchmarkConfig, seed: int, bar=None) -> Dict[str, Any]:
    r"""One repeat of the benchmark with :obj:`seed`; returns its raw
    report."""
    train_config = replace(config.train, seed=seed)
    data, pairs, targets = draw_request(config.request,
                                        load_data(config, seed), seed)
    model = build_model(data, config.dim, config.layers).to(config.device)
    record = train(model, data, train_config)
    after = None
    models: Dict[str, Tuple[torch.nn.Module, Tensor]] = {}
    out: Dict[str, Any] = {
        'seed': seed,
        'data': repr(data),
        'request_size': pairs.size(1),
        'train': {'epochs': record.epochs, 'seconds': record.wall_time},
        'methods': {},
    }
    for method in config.methods:
        if bar is not None:
            bar.set_postfix_str(f'seed {seed}: {method}')
        if method != 'drop-edges':
            result, entry = _timed(config, method, model, data, record,
                                   train_config, pairs)
            after = result.data
            models[method] = (result.model, result.edge_index)
            out['methods'][method] = entry
        if bar is not None:
            bar.update(1)
    if after is None:
        request = IFRUnlearner(model, data, record.examples, record.labels,
                               train_config.l2)._request(pairs)
        after = remaining_data(data, request.train_mask)
    if 'drop-edges' in config.methods:
        models['drop-edges'] = (model, after.edge_index)
        out['methods']['drop-edges'] = {'seconds': 0.0}

    # Rows in the order of the methods, the baseline beside IFRU.
    models_all = {'original': (model, data.edge_index),
                  **{m: models[m] for m in config.methods}}
    out['methods'] = {'original': {},
                      **{m: out['methods'][m] for m in config.methods}}
    out.update(fidelity(config, model, data, pairs, models, out['methods'],
                        seed))
    unseen = unseen_pairs(data, pairs, seed)
    probe = torch.cat([after.test_index,
                       unseen_pairs(data, after.test_index, seed + 1)], 1)
    rank = {}
    for name, (m, edge_index) in models_all.items():
        entry = out['methods'][name]
        data_for = data if name == 'original' else after
        entry['test'] = evaluate(m, data_for, adj=edge_index)
        if config.request.kind == 'flip':
            entry['test']['auc_touched'] = _touched_auc(m, edge_index, after,
                                                        pairs)
        if config.request.kind != 'flip':
            # Rank and membership of forgotten interactions; flipped labels
            # are corrupt pairs, not interactions to hide.
            rank[name] = mean_rank(m, edge_index, pairs, data.num_users,
                                   after.train_index)
            entry['forgotten_mean_rank'] = rank[name]
            entry['mia_auc'] = membership_inference_auc(
                m, edge_index, pairs, unseen, data.num_users)
        if config.request.kind == 'users':
            entry['forgotten_user_row_norm'] = float(
                m.embedding.weight.detach()[torch.unique(pairs[0])].norm())
        if targets is not None:
            entry['target_top20_share'] = top_k_share(m, data_for, targets,
                                                      edge_index=edge_index)
        for ref in ('retrain', 'warm-retrain'):
            if ref not in models or ref == name:
                continue
            ref_model, ref_edges = models[ref]
            entry[f'score_corr_{ref}'] = score_correlation(
                m, edge_index, ref_model, ref_edges, probe, data.num_users)
            if name != 'original':
                entry[f'top20_overlap_{ref}'] = top_k_overlap(
                    m, ref_model, after)
        if 'warm-retrain' in models and name not in ('original',
                                                     'warm-retrain'):
            entry['closure_warm'] = closure_ratio(
                m.embedding.weight.detach(), model.embedding.weight.detach(),
                models['warm-retrain'][0].embedding.weight.detach())

    for name, entry in out['methods'].items():
        for ref in ('retrain', 'warm-retrain'):
            ref_seconds = out['methods'].get(ref, {}).get('seconds')
            if ref_seconds and entry.get('seconds'):
                entry[f'speedup_{ref}'] = ref_seconds / entry['seconds']
        if 'retrain' in rank and rank['retrain'] != rank['original']:
            entry['rank_shift'] = ((rank[name] - rank['original']) /
                                   (rank['retrain'] - rank['original']))
        if targets is not None and 'retrain' in models:
            base = out['methods']['retrain']['target_top20_share']
            lift = out['methods']['original']['target_top20_share'] - base
            if lift != 0:
                entry['poison_removed'] = 1 - (entry['target_top20_share'] -
                                               base) / lift
    if config.converged_fidelity:
        out['converged_fidelity'] = converged_fidelity(
            config, model, data, record, pairs, train_config)
    return out


def fidelity(config: BenchmarkConfig, model, data: InteractionData,
             pairs: Tensor, models: Dict[str, Tuple[torch.nn.Module, Tensor]],
             entries: Dict[str, Dict[str, Any]], seed: int) -> Dict[str, Any]:
    r"""Writes the score-change closure (see
    :mod:`~torch_geometric_unlearn.evaluation.fidelity`) of every method
    against the reference retrain into :obj:`entries` as :obj:`change_closure`,
    on the forgotten :obj:`pairs` and on probe pairs sharing a user or an item
    with them; returns the reference's name and the probe set's size for the
    run's report.  1 is the reference's change of scores, 0 no better than
    changing nothing (drop-edges' own figure shows how far the new graph
    alone goes), below 0 worse than nothing.  One request per seed: no
    noise floor here (see :obj:`benchmarks/faithful.py`)."""
    ref = next((r for r in ('paired-retrain', 'retrain') if r in models),
               None)
    if ref is None:
        return {}
    sets = {'forgotten': pairs,
            'probe': probe_pairs(data, pairs, seed=seed)}

    def change(name):
        m, edge_index = models[name]
        return {key: score_change(model, data.edge_index, m, edge_index,
                                  index, data.num_users)
                for key, index in sets.items()}

    target = change(ref)
    for name in models:
        if name == ref:
            continue
        entry, moved = {}, change(name)
        for key in sets:
            if float(target[key].norm()) > 0:
                entry[key] = change_closure(moved[key], target[key])
        entries[name]['change_closure'] = entry
    return {'fidelity_reference': ref, 'probe_pairs': sets['probe'].size(1)}


def converged_fidelity(config: BenchmarkConfig, model, data, record,
                       pairs: Tensor, train_config: TrainConfig
                       ) -> Dict[str, Any]:
    r"""Closure of the IFRU variants between converged points:
    :math:`\hat\theta` (the frozen-negative objective converged on the full
    data) and :math:`\hat\theta'` (the same without the request, from
    :math:`\hat\theta`), unlearning from :math:`\hat\theta`."""
    start = time.perf_counter()
    hat = copy.deepcopy(model)
    ratio = converge(hat, data.edge_index, record.examples, record.labels,
                     train_config.l2, data.num_users)
    request = IFRUnlearner(hat, data, record.examples, record.labels,
                           train_config.l2)._request(pairs)
    after = remaining_data(data, request.train_mask)
    hat_new = copy.deepcopy(hat)
    labels = (None if record.labels is None else
              record.labels[request.example_mask])
    ratio_new = converge(hat_new, after.edge_index,
                         record.examples[:, request.example_mask], labels,
                         train_config.l2, data.num_users)
    theta = hat.embedding.weight.detach()
    target = hat_new.embedding.weight.detach()
    out: Dict[str, Any] = {
        'grad_ratio_hat': ratio,
        'grad_ratio_hat_new': ratio_new,
        'converge_seconds': time.perf_counter() - start,
    }
    for method in [m for m in config.methods if m.startswith('ifru')]:
        result = _unlearner(method, hat, data, record,
                            train_config).unlearn(pairs)
        out[f'closure_{method}'] = closure_ratio(
            result.model.embedding.weight.detach(), theta, target)
    return out


def _flatten(entry: Dict[str, Any], prefix: str = '') -> Dict[str, float]:
    flat = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[f'{prefix}{key}'] = float(value)
    return flat


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Dict]]:
    r"""Mean, standard deviation and count of every numeric figure of every
    method over the runs."""
    summary: Dict[str, Dict[str, Dict]] = {}
    for method in runs[0]['methods']:
        values: Dict[str, List[float]] = {}
        for run in runs:
            for key, value in _flatten(run['methods'][method]).items():
                values.setdefault(key, []).append(value)
        summary[method] = {
            key: {
                'mean': statistics.fmean(v),
                'std': statistics.stdev(v) if len(v) > 1 else 0.0,
                'n': len(v),
            }
            for key, v in values.items()
        }
    fidelity = [run['converged_fidelity'] for run in runs
                if 'converged_fidelity' in run]
    if fidelity:
        summary['converged_fidelity'] = {
            key: {
                'mean': statistics.fmean(f[key] for f in fidelity),
                'std': (statistics.stdev(f[key] for f in fidelity)
                        if len(fidelity) > 1 else 0.0),
                'n': len(fidelity),
            }
            for key in fidelity[0]
        }
    return summary


def run_benchmark(config: BenchmarkConfig) -> Dict[str, Any]:
    r"""Runs the benchmark; returns the report (configuration, machine,
    raw runs and summary), ready for :func:`write_report`."""
    from tqdm.auto import tqdm
    runs = []
    # Drawn only on a terminal (disable=None), never without progress.
    with tqdm(total=config.repeats * len(config.methods),
              disable=None if config.progress else True,
              desc='benchmark') as bar:
        for r in range(config.repeats):
            runs.append(run_once(config, config.seed + r, bar))
    settings = asdict(config)
    settings['request'] = str(config.request)
    settings['train'] = {
        k: (v.value if hasattr(v, 'value') else v)
        for k, v in asdict(config.train).items()
    }
    return {
        'config': settings,
        'machine': machine(config.device),
        'date': time.strftime('%Y-%m-%d'),
        'runs': runs,
        'summary': summarize(runs),
    }


def machine(device: str = 'cpu') -> Dict[str, Any]:
    r"""The hardware and software the figures come from."""
    info = {
        'device': device,
        'cpu': platform.processor() or platform.machine(),
        'cpu_count': os.cpu_count(),
        'threads': torch.get_num_threads(),
        'python': platform.python_version(),
        'torch': torch.__version__,
    }
    if device.startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
    import torch_geometric
    info['torch_geometric'] = torch_geometric.__version__
    return info


# Columns of the printed table and the CSV: (header, summary key, format,
# which value is better).
COLUMNS = [
    ('seconds', 'seconds', '{:.3g}', 'lower'),
    ('speed-up', 'speedup_retrain', '{:.0f}x', 'higher'),
    ('closure forgotten', 'change_closure.forgotten', '{:.2f}', 'higher'),
    ('closure probe', 'change_closure.probe', '{:.2f}', 'higher'),
    ('recall@20', 'test.recall@20', '{:.4f}', 'higher'),
    ('ndcg@20', 'test.ndcg@20', '{:.4f}', 'higher'),
    ('auc', 'test.auc', '{:.4f}', 'higher'),
    ('auc touched', 'test.auc_touched', '{:.4f}', 'higher'),
    ('rank shift', 'rank_shift', '{:.2f}', 'near 1'),
    ('MIA auc', 'mia_auc', '{:.3f}', "= retrain"),
    ('top20 ∩ retrain', 'top20_overlap_retrain', '{:.3f}', 'higher'),
    ('corr retrain', 'score_corr_retrain', '{:.3f}', 'higher'),
    ('poison removed', 'poison_removed', '{:.2f}', 'higher'),
    ('peak MiB', 'peak_mib', '{:.0f}', 'lower'),
]

# What the columns and rows mean, under the table (only for columns shown).
LEGEND = {
    'change_closure.forgotten': 'closure = 1 - |change - reference change| / '
    '|reference change| of the scores of the forgotten pairs (forgotten) or '
    'of pairs sharing a user or an item with them (probe), against the '
    '{reference}: 1 = its change, 0 = no better than no change; '
    "drop-edges' row is how far the new graph alone goes",
    'rank_shift': "rank shift = the forgotten pairs' mean rank moved as a "
    "share of the scratch retrain's move: above 1 is overshoot, which makes "
    'them stand out again',
    'mia_auc': "MIA auc = a membership-inference attacker's AUC on the "
    "forgotten pairs: the retrain's row is the target, not 0.5",
}

REFERENCE_NAMES = {'paired-retrain': 'paired retrain (same seed and stream, '
                   'as many epochs)', 'retrain': 'scratch retrain'}


def _cell(stat: Optional[Dict], fmt: str) -> str:
    if stat is None:
        return ''
    text = fmt.format(stat['mean'])
    if stat['n'] > 1:
        text += ' ± ' + fmt.format(stat['std']).rstrip('x')
    return text


def _columns(summary: Dict[str, Dict]) -> List[Tuple[str, str, str, str]]:
    return [c for c in COLUMNS
            if any(c[1] in stats for stats in summary.values())]


def format_table(report: Dict[str, Any]) -> str:
    r"""The summary as a Markdown table (mean ± std over repeats), its
    first row saying which value of each column is better, and a legend
    under it."""
    summary = {k: v for k, v in report['summary'].items()
               if k != 'converged_fidelity'}
    columns = _columns(summary)
    lines = ['| method | ' + ' | '.join(c[0] for c in columns) + ' |',
             '|---|' + '---|' * len(columns),
             '| *better* | ' + ' | '.join(c[3] for c in columns) + ' |']
    for method, stats in summary.items():
        cells = [_cell(stats.get(key), fmt) for _, key, fmt, _ in columns]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append(textwrap.fill(
        'drop-edges is the do-nothing baseline: the original parameters '
        'predicting with the new graph; a method must beat it.', width=79,
        subsequent_indent='  '))
    reference = next((run.get('fidelity_reference') for run in
                      report['runs'] if run.get('fidelity_reference')), None)
    for _, key, _, _ in columns:
        if key in LEGEND:
            lines.append(textwrap.fill(LEGEND[key].format(
                reference=REFERENCE_NAMES.get(reference, reference)) + '.',
                width=79, subsequent_indent='  '))
    fidelity = report['summary'].get('converged_fidelity')
    if fidelity:
        parts = [f"{k[len('closure_'):]} {_cell(v, '{:.3f}')}"
                 for k, v in fidelity.items() if k.startswith('closure_')]
        lines.append('')
        lines.append('closure between converged points (higher is better): '
                     + ', '.join(parts))
    return '\n'.join(lines)


PLOT_SKIPPED = 'matplotlib is not installed (pip install matplotlib)'


def write_report(report: Dict[str, Any], out_dir: str,
                 name: str = 'benchmark') -> List[str]:
    r"""Writes :obj:`{name}.json` (everything), :obj:`{name}.csv` (the
    summary, one row per method after a row :obj:`better` saying which
    value of each figure is better) and :obj:`{name}.png` (time, utility
    and fidelity per method) into :obj:`out_dir`.  Without matplotlib the
    PNG is skipped and :obj:`report['plot_skipped']` (also in the JSON)
    says why.  Returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    if _pyplot() is None:
        report['plot_skipped'] = PLOT_SKIPPED
    else:
        report.pop('plot_skipped', None)
    paths = [os.path.join(out_dir, f'{name}.{ext}')
             for ext in ('json', 'csv')]
    with atomic_open(paths[0]) as f:
        json.dump(report, f, indent=2)
    summary = {k: v for k, v in report['summary'].items()
               if k != 'converged_fidelity'}
    keys = sorted({key for stats in summary.values() for key in stats})
    with atomic_open(paths[1], newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['method'] + [f'{k}_{s}' for k in keys
                                      for s in ('mean', 'std')])
        writer.writerow(['better'] + [
            _better(k) if s == 'mean' else '' for k in keys
            for s in ('mean', 'std')
        ])
        for method, stats in summary.items():
            writer.writerow([method] + [
                stats[k][s] if k in stats else ''
                for k in keys for s in ('mean', 'std')
            ])
    png = os.path.join(out_dir, f'{name}.png')
    if plot_report(report, png):
        paths.append(png)
    return paths


def _pyplot():
    # matplotlib.pyplot on the file-only backend, or None without it.
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _better(key: str) -> str:
    # Which value of a summary figure is better, for the CSV.
    for _, column, _, better in COLUMNS:
        if key == column:
            return better
    if key.startswith(('test.', 'change_closure.', 'score_corr_',
                       'top20_overlap_', 'speedup_', 'closure_')):
        return 'higher'
    if key in ('seconds', 'all_seconds', 'peak_mib') or \
            key.startswith('timings.'):
        return 'lower'
    return ''


def plot_report(report: Dict[str, Any], path: str) -> bool:
    r"""Bar charts per method of wall time (log scale), Recall@20, the
    score-change closure against the reference retrain on the forgotten
    and the probe pairs (see :func:`fidelity`) and the top-20 overlap with
    the scratch retrain, with the spread over repeats as error bars; the
    do-nothing baseline drop-edges in grey, the retrains in black.  Each
    title says which direction is better.  Returns :obj:`False` if
    matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return False
    summary = {k: v for k, v in report['summary'].items()
               if k != 'converged_fidelity'}
    reference = next((run.get('fidelity_reference') for run in
                      report['runs'] if run.get('fidelity_reference')),
                     'retrain')
    closure = f'score-change closure vs {reference}'
    panels = [('wall time (s)\nlower is better', 'seconds', True),
              ('Recall@20 (test)\nhigher is better', 'test.recall@20',
               False),
              (f'{closure},\nforgotten pairs: higher is better (1 = '
               'retrain)', 'change_closure.forgotten', False),
              (f'{closure},\nprobe pairs: higher is better (1 = retrain)',
               'change_closure.probe', False),
              ('top-20 overlap with retrain\nhigher is better',
               'top20_overlap_retrain', False)]
    panels = [p for p in panels if any(p[1] in s for s in summary.values())]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4),
                             squeeze=False)
    for ax, (title, key, log) in zip(axes[0], panels):
        names = [m for m, s in summary.items()
                 if key in s and not (log and s[key]['mean'] <= 0)]
        means = [summary[m][key]['mean'] for m in names]
        stds = [summary[m][key]['std'] for m in names]
        colors = ['tab:gray' if m == 'drop-edges' else
                  'black' if m in REFERENCES else 'tab:blue' for m in names]
        ax.bar(range(len(names)), means, yerr=stds, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=45, ha='right')
        ax.set_title(title, fontsize=9)
        if key.startswith('change_closure'):
            ax.axhline(1, color='black', linestyle='--', linewidth=0.8)
            ax.axhline(0, color='tab:gray', linewidth=0.8)
            # Far worse than nothing is off the scale: the value is written
            # instead, so that the scale shows the methods near 0-1.
            ax.set_ylim(-1, 1.15)
            for i, mean in enumerate(means):
                if mean < -1:
                    ax.text(i, -0.95, f'{mean:.1f}', ha='center',
                            va='bottom', fontsize=7, rotation=90,
                            color='white' if colors[i] != 'tab:gray' else
                            'black')
        if log:
            ax.set_yscale('log')
    config = report['config']
    fig.suptitle(f"{config['dataset']}, {config['layers']}-layer LightGCN, "
                 f"{config['train']['loss']}, request {config['request']}")
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, dpi=120, format='png')
    plt.close(fig)
    return True
