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
repeats (:mod:`~torch_geometric_unlearn.evaluation.report` writes them as
JSON, CSV, a table and plots; :mod:`~.evaluation.config` holds the
settings).  With :obj:`converged_fidelity`, the IFRU variants' parameter
closure is also measured where influence functions are defined: between
the frozen-negative objective converged with and without the request (see
:func:`~torch_geometric_unlearn.evaluation.metrics.converge`).
"""
import copy
import math
import os
import platform
import statistics
import threading
import time
from dataclasses import asdict, replace
from typing import Any, Dict, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.data.datasets import ifru_ml100k, load_dataset
from torch_geometric_unlearn.data.deletion import (flip_labels,
                                                   inject_fake_interactions,
                                                   item_interactions,
                                                   random_interactions,
                                                   random_items,
                                                   user_interactions,
                                                   users_by_activity)
from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       sample_negatives)
from torch_geometric_unlearn.evaluation.config import (ENSEMBLES,
                                                       USER_REQUESTS,
                                                       BenchmarkConfig,
                                                       RequestSpec)
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs,
                                                         score_change)
from torch_geometric_unlearn.evaluation.metrics import (
    auc_on_pairs, closure_ratio, converge, evaluate,
    membership_inference_auc, pair_ranks, popularity_auc, score_correlation,
    top_k_overlap, top_k_share, unseen_pairs)
from torch_geometric_unlearn.evaluation.protocols import (fairness_gap,
                                                          rank_drop,
                                                          retrain_agreement)
from torch_geometric_unlearn.evaluation.report import summarize
from torch_geometric_unlearn.training.trainer import (TrainConfig, TrainResult,
                                                      build_model, train)
from torch_geometric_unlearn.unlearn.base import (UnlearnResult,
                                                  remaining_data)
from torch_geometric_unlearn.unlearn.receraser import AggregationConfig
from torch_geometric_unlearn.unlearn.sisa import SISAUnlearner, train_sisa
from torch_geometric_unlearn.unlearn.baselines import (FineTuneUnlearner,
                                                       PairedRetrainUnlearner,
                                                       RetrainUnlearner,
                                                       WarmRetrainUnlearner)
from torch_geometric_unlearn.unlearn.ifru import IFRUConfig, IFRUnlearner


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


def draw_request(spec: RequestSpec, data: InteractionData, seed: int,
                 data_dir: Optional[str] = None
                 ) -> Tuple[InteractionData, Tensor, Optional[Tensor]]:
    r"""Draws a request.  Returns the data to train on, the pairs to
    forget :obj:`[2, k]` and, for :obj:`'poison'`, the attack's target
    items.  On :obj:`'ifru-ml100k'` (read from :obj:`data_dir`),
    :obj:`'flip:0.01'` is the authors' own flipped pairs."""
    amount = spec.amount
    if data.name == 'ifru-ml100k' and spec.kind == 'flip':
        if not math.isclose(amount, 0.01):
            raise ValueError(f"On 'ifru-ml100k' the request is the "
                             f"authors' own flipped pairs, 1% of the "
                             f"training pairs: write 'flip:0.01' (got "
                             f"{spec})")
        return data, ifru_ml100k(data_dir).request, None
    if spec.kind == 'random':
        size = ({'fraction': amount} if amount < 1 else {
            'count': int(amount)
        })
        return data, random_interactions(data, seed=seed, **size), None
    if spec.kind in USER_REQUESTS:
        size = ({'fraction': amount} if amount < 1 else {
            'count': int(amount)
        })
        which = {'users': 'random', 'active-users': 'active',
                 'inactive-users': 'inactive'}[spec.kind]
        users = users_by_activity(data, which=which, seed=seed, **size)
        return data, user_interactions(data, users), None
    if spec.kind == 'items':
        items = random_items(data, int(amount), seed=seed)
        return data, item_interactions(data, items), None
    if spec.kind == 'poison':
        attack = inject_fake_interactions(data, fraction=amount, seed=seed)
        return attack.data, attack.request, attack.target_items
    attack = flip_labels(data, fraction=amount, seed=seed)
    return attack.data, attack.request, None


def make_unlearner(method: str, model, data, record, config: TrainConfig,
                   benchmark: BenchmarkConfig):
    r"""A fresh unlearner of :obj:`method` (from :obj:`METHODS`, not
    :obj:`'drop-edges'`) for the trained :obj:`model` and its
    :obj:`record`; SISA and RecEraser train their ensembles here (RecEraser:
    the balanced partition of the model's final embeddings and the
    attention aggregator)."""
    if method in ENSEMBLES:
        start = time.perf_counter()
        receraser = method == 'receraser'
        with torch.no_grad():
            embedding = (model.get_embedding(data.edge_index).cpu()
                         if receraser or benchmark.sisa_balanced else None)
        sharded, shards = train_sisa(
            data, benchmark.sisa_shards, benchmark.sisa_partition, config,
            model.embedding_dim, model.num_layers, seed=config.seed,
            embedding=embedding, aggregation=AggregationConfig(
                seed=config.seed) if receraser else None)
        unlearner = SISAUnlearner(sharded, data, shards, config,
                                  copy_model=False)
        unlearner.train_seconds = time.perf_counter() - start
        return unlearner
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
        unlearner = make_unlearner(method, model, data, record,
                                   train_config, config)
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
    if method in ENSEMBLES:
        entry['train_seconds'] = unlearner.train_seconds
        entry['shards_retrained'] = len(
            result.diagnostics['shards_retrained'])
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
                                        load_data(config, seed), seed,
                                        config.data_dir)
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
                        seed, train_config))
    unseen = unseen_pairs(data, pairs, seed)
    if config.request.kind != 'flip':
        out['mia_auc_popularity'] = popularity_auc(after, pairs, unseen)
    probe = torch.cat([after.test_index,
                       unseen_pairs(data, after.test_index, seed + 1)], 1)
    rank, ranks = {}, {}
    for name, (m, edge_index) in models_all.items():
        entry = out['methods'][name]
        data_for = data if name == 'original' else after
        entry['test'] = evaluate(m, data_for, adj=edge_index)
        entry['fairness'] = fairness_gap(m, data_for, edge_index=edge_index)
        if config.request.kind == 'flip':
            entry['test']['auc_touched'] = _touched_auc(m, edge_index, after,
                                                        pairs)
        if config.request.kind != 'flip':
            # Rank and membership of forgotten interactions; flipped labels
            # are corrupt pairs, not interactions to hide.
            ranks[name] = pair_ranks(m, edge_index, pairs, data.num_users,
                                     after.train_index)
            rank[name] = float(ranks[name].mean())
            entry['forgotten_mean_rank'] = rank[name]
            if name not in ENSEMBLES:
                entry['forgotten_rank'] = rank_drop(ranks['original'],
                                                    ranks[name])
            entry['mia_auc'] = membership_inference_auc(
                m, edge_index, pairs, unseen, data.num_users)
        if config.request.kind in USER_REQUESTS and name not in ENSEMBLES:
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
        # COVA's top-k agreement with the retrains, on the remaining data.
        for ref in ('paired-retrain', 'retrain'):
            if ref in models and name not in ('original', ref):
                entry[f'agreement_{ref}'] = retrain_agreement(
                    m, models[ref][0], after, [k for k in (20, 50, 100)
                                               if k <= after.num_items],
                    edge_index=edge_index,
                    reference_edge_index=models[ref][1])
        if 'warm-retrain' in models and name not in ('original',
                                                     'warm-retrain',
                                                     *ENSEMBLES):
            entry['closure_warm'] = closure_ratio(
                m.embedding.weight.detach(), model.embedding.weight.detach(),
                models['warm-retrain'][0].embedding.weight.detach())

    for name, entry in out['methods'].items():
        for ref in ('retrain', 'warm-retrain', 'paired-retrain'):
            ref_seconds = out['methods'].get(ref, {}).get('seconds')
            if ref_seconds and entry.get('seconds'):
                entry[f'speedup_{ref}'] = ref_seconds / entry['seconds']
        if 'retrain' in rank and rank['retrain'] != rank['original'] and \
                name not in ENSEMBLES:
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
             entries: Dict[str, Dict[str, Any]], seed: int,
             train_config: Optional[TrainConfig] = None) -> Dict[str, Any]:
    r"""Writes the score-change closure (see
    :mod:`~torch_geometric_unlearn.evaluation.fidelity`) of every method
    against the reference retrain into :obj:`entries` as :obj:`change_closure`,
    on the forgotten :obj:`pairs` and on probe pairs sharing a user or an item
    with them; returns the reference's name, the probe set's size and, for
    the paired retrain given :obj:`train_config` (the run's), the noise
    floor: the same closure of the same model trained from the next seed
    and its own paired retrain, the best a method can be expected to
    reach.  1 is the reference's change of scores, 0 no better than
    changing nothing (drop-edges' own figure shows how far the new graph
    alone goes), below 0 worse than nothing."""
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
        # An ensemble's scores are its own, not the original model's: a
        # change from the original's scores says nothing of it.
        if name in (ref, *ENSEMBLES):
            continue
        entry, moved = {}, change(name)
        for key in sets:
            if float(target[key].norm()) > 0:
                entry[key] = change_closure(moved[key], target[key])
        entries[name]['change_closure'] = entry
    out = {'fidelity_reference': ref, 'probe_pairs': sets['probe'].size(1)}
    if ref == 'paired-retrain' and train_config is not None:
        other, record, other_config = next_seed(config, data, train_config)
        paired = paired_retrain(other, data, record, other_config, pairs)
        out['noise_floor'] = {key: noise_floor([target[key], score_change(
            other, data.edge_index, paired.model, paired.edge_index, index,
            data.num_users)]) for key, index in sets.items()}
    return out


def next_seed(config: BenchmarkConfig, data: InteractionData,
              train_config: TrainConfig
              ) -> Tuple[torch.nn.Module, TrainResult, TrainConfig]:
    r"""The model of :obj:`config` trained on :obj:`data` from the seed
    after :obj:`train_config`'s, its record and configuration: the second
    run of a noise floor."""
    other_config = replace(train_config, seed=train_config.seed + 1)
    other = build_model(data, config.dim, config.layers).to(config.device)
    return other, train(other, data, other_config), other_config


def paired_retrain(model, data: InteractionData, record: TrainResult,
                   config: TrainConfig, pairs: Tensor) -> UnlearnResult:
    r"""The paired retrain of :obj:`pairs` for :obj:`model`, trained by
    :obj:`config` as :obj:`record` says, for the original run's length."""
    return PairedRetrainUnlearner(
        model, data, record.examples, record.labels, config.l2,
        config=config, epochs=record.best_epoch).unlearn(pairs)


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
        result = make_unlearner(method, hat, data, record, train_config,
                                config).unlearn(pairs)
        out[f'closure_{method}'] = closure_ratio(
            result.model.embedding.weight.detach(), theta, target)
    return out


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
