r"""Fidelity of unlearning on the models people train (early-stopped, by the
package's trainer at its defaults), against paired retrains.

For every seed a model is trained; for every request it is retrained
*paired* (same seed, initialisation and negative stream, without the
request, for the original's number of epochs: see
:mod:`torch_geometric_unlearn.evaluation.fidelity`), and every method
forgets the request from a copy of the original.  Reported per method,
mean and spread over the seeds:

* score-change closure against the paired retrains' mean change, on the
  forgotten pairs and on probe pairs sharing a user or an item with the
  request, beside the noise floor (the same closure between two seeds'
  paired changes), and against the same seed's paired change alone;
* the forgotten pairs' rank shift (1 = the paired retrain's; random and
  popular-item requests: a forgotten user's zero row ranks nothing);
* utility (Recall@20, NDCG@20, AUC on the test split, new graph) and its
  difference from the paired retrain;
* for the fake-user attack, the targets' hit ratio among real users and
  the share of its rise removed; for flipped labels, the flipped pairs' AUC
  against their true labels;
* wall time, against the previous default (IFRU's Newton step) in the same
  process and against the paired retrain, and which step, curvature and
  horizon ran, from the certificate.

Methods: ``ifru`` (the defaults, given the trainer's horizon),
``ifru-residual`` (the defaults without the horizon: what a model from a
foreign training loop gets), ``ifru-newton`` (the Newton step with the
Gauss-Newton fallback, frozen negatives, no reset: the default before),
``ifru-local`` (the request-local variant of ``request_cost.py``, given
the horizon; only when named in ``--methods``; ``--local-thresholds``
adds it at other importance thresholds, fewer rows at higher ones),
``ifru-previous`` (the kept examples' frozen negatives, as beyond the
sampler average's budget: the certificate then checks their draw; only
when named),
``drop-edges`` (the parameters kept, the new graph used) and the paired
retrain itself.  With ``--same-rule`` the paired retrain is also run with
the validation early stopping applied again, to show why the benchmark
fixes the number of epochs.  ``--dataset synthetic-1e5`` is the
10^5-interaction graph of ``request_cost.py``, where the local variant
keeps few rows.

Example::

    python benchmarks/faithful.py --dataset ml-100k --layers 2 \
        --data-dir ../shared/data --out benchmarks/results/faithful/x.json
"""
import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Dict, List

import torch

from torch_geometric_unlearn.data.datasets import (ifru_ml100k, load_dataset,
                                                   synthetic)
from torch_geometric_unlearn.data.deletion import (inject_fake_users,
                                                   item_interactions,
                                                   random_interactions,
                                                   random_users,
                                                   user_interactions)
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs,
                                                         score_change)
from torch_geometric_unlearn.evaluation.metrics import (auc_on_pairs, evaluate,
                                                        hit_ratio, mean_rank)
from torch_geometric_unlearn.evaluation.report import \
    summarize as summarize_runs
from torch_geometric_unlearn.graph.pruning import PruningConfig
from torch_geometric_unlearn.influence import SolverError
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.base import UnlearnResult
from torch_geometric_unlearn.unlearn.baselines import PairedRetrainUnlearner
from torch_geometric_unlearn.unlearn.ifru import IFRUConfig, IFRUnlearner

REQUEST_SEED = 100
METHODS = ('ifru', 'ifru-residual', 'ifru-newton', 'drop-edges')
#: The default before every example was averaged over the sampler (the
#: path beyond IFRUConfig's budget for the average): frozen negatives in
#: the kept examples' gradients, so the certificate checks their draw.
PREVIOUS = IFRUConfig(expected_negatives='forgotten')
#: The request-local variant (see request_cost.py).
LOCAL = IFRUConfig(pruning=PruningConfig('threshold', 1e-2),
                   curvature_hops=0)
NEWTON = IFRUConfig(step='newton', expected_negatives=False,
                    reset_unsupported=False)


def scenario(args, kind: str, amount: float):
    r"""The data to train on, the request's pairs, the attack's targets (or
    the flipped pairs' true labels) and the real users."""
    if args.dataset == 'ifru-ml100k':
        if kind != 'flip':
            raise SystemExit("ifru-ml100k takes the request 'flip' (its own "
                             "flipped pairs)")
        attack = ifru_ml100k(args.data_dir)
        flipped = attack.data.train_label[-attack.request.size(1):]
        return attack.data, attack.request, 1 - flipped, None
    data = (synthetic(num_users=3333, num_items=5000,
                      num_interactions=100_000, seed=0)
            if args.dataset == 'synthetic-1e5' else
            load_dataset(args.dataset, args.data_dir))
    if kind == 'random':
        return data, random_interactions(data, fraction=amount,
                                         seed=REQUEST_SEED), None, None
    if kind == 'users':
        users = random_users(data, int(amount), seed=REQUEST_SEED)
        return data, user_interactions(data, users), None, None
    if kind == 'popular':
        degree = torch.bincount(data.train_index[1],
                                minlength=data.num_items)
        items = degree.argsort(descending=True, stable=True)[:int(amount)]
        return data, item_interactions(data, items), None, None
    if kind == 'attack':
        attack = inject_fake_users(data, round(amount * data.num_users),
                                   seed=REQUEST_SEED)
        return (attack.data, attack.request, attack.target_items,
                torch.arange(data.num_users))
    raise SystemExit(f"Unknown request kind {kind!r}")


def unlearner(method: str, model, data, record, l2: float):
    args = (model, data, record.examples, record.labels, l2)
    if method == 'ifru':
        return IFRUnlearner(*args, copy_model=True, horizon=record.horizon)
    if method == 'ifru-residual':
        return IFRUnlearner(*args, copy_model=True)
    if method == 'ifru-previous':
        return IFRUnlearner(*args, config=PREVIOUS, copy_model=True,
                            horizon=record.horizon)
    if method.startswith('ifru-local'):
        threshold = method.partition('@')[2]
        config = LOCAL if not threshold else dataclasses.replace(
            LOCAL, pruning=PruningConfig('threshold', float(threshold)))
        return IFRUnlearner(*args, config=config, copy_model=True,
                            horizon=record.horizon)
    return IFRUnlearner(*args, config=NEWTON, copy_model=True)


def timed(method, model, data, record, l2, pairs, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = unlearner(method, model, data, record, l2).unlearn(pairs)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def certificate_entry(result: UnlearnResult) -> Dict[str, Any]:
    c = result.certificate
    return {'step': c.step, 'curvature': c.curvature, 'horizon': c.horizon,
            'stationarity': c.stationarity, 'products': c.products,
            'solve_residual': c.solve_residual,
            'gradient_before': c.gradient_before,
            'gradient_after': c.gradient_after, 'step_norm': c.step_norm,
            'forgotten_auc_before': c.forgotten_auc_before,
            'forgotten_auc_after': c.forgotten_auc_after,
            'neighbour_shift': c.neighbour_shift,
            'draw_noise': c.draw_noise, 'restarted': c.restarted,
            'fallback': c.fallback, 'flags': c.flags}


def trained(args, data, seed: int, cache: Dict):
    r"""The original model of :obj:`data` and :obj:`seed`, trained once per
    process and copied out."""
    key = (repr(data), seed)
    config = TrainConfig(loss=args.loss, l2=args.l2, lr=args.lr,
                         max_epochs=args.max_epochs, seed=seed,
                         progress=False)
    if key not in cache:
        model = build_model(data, args.dim, args.layers)
        record = train(model, data, config)
        print(f'[seed {seed}] trained on {data} for {record.epochs} epochs '
              f'(restored {record.best_epoch}) in {record.wall_time:.1f} s',
              flush=True)
        cache[key] = (model, record)
    model, record = cache[key]
    return model, record, config


def run_request(args, spec: str, cache: Dict) -> Dict[str, Any]:
    kind, _, amount = spec.partition(':')
    data, pairs, extra, real_users = scenario(args, kind,
                                              float(amount or 0))
    probe = probe_pairs(data, pairs, seed=REQUEST_SEED)
    sets = {'forgotten': pairs, 'probe': probe}
    runs = []
    for seed in args.seeds:
        model, record, config = trained(args, data, seed, cache)
        references = {'paired-retrain': record.best_epoch}
        if args.same_rule:
            references['paired-retrain-same-rule'] = None
        models, entries = {}, {}
        for name, epochs in references.items():
            result = PairedRetrainUnlearner(
                model, data, record.examples, record.labels, args.l2,
                config=config, epochs=epochs, copy_model=True).unlearn(pairs)
            models[name] = result
            entries[name] = {'seconds': result.timings['total'],
                             'epochs': result.diagnostics['epochs']}
        after = models['paired-retrain'].data
        for method in args.methods:
            if method == 'drop-edges':
                models[method] = UnlearnResult(model, after, pairs, method)
                entries[method] = {}
                continue
            try:
                result, seconds = timed(method, model, data, record,
                                        args.l2, pairs, args.repeats)
            except SolverError as error:  # recorded, as a user would see it
                entries[method] = {'error': str(error)}
                print(f'[{spec} seed {seed}] {method} failed: {error}',
                      flush=True)
                continue
            models[method] = result
            entries[method] = {'seconds': seconds,
                               'solve_rows': result.diagnostics.get(
                                   'solve_rows'),
                               'certificate': certificate_entry(result)}
        models['original'] = UnlearnResult(model, data, pairs, 'original')
        entries['original'] = {}
        for name, result in models.items():
            entry = entries[name]
            entry['test'] = evaluate(result.model, after,
                                     adj=result.edge_index)
            entry['changes'] = {
                key: score_change(model, data.edge_index, result.model,
                                  result.edge_index, index, data.num_users)
                for key, index in sets.items()}
            if kind in ('random', 'popular'):
                entry['rank'] = mean_rank(result.model, result.edge_index,
                                          pairs, data.num_users,
                                          after.train_index)
            if kind == 'attack':
                entry['hit_ratio'] = hit_ratio(
                    result.model, after, extra, real_users,
                    edge_index=result.edge_index)
            if kind == 'flip':
                entry['flipped_auc'] = auc_on_pairs(
                    result.model, result.edge_index, pairs, extra,
                    data.num_users)
        runs.append({'seed': seed, 'epochs': record.epochs,
                     'best_epoch': record.best_epoch,
                     'train_seconds': record.wall_time, 'methods': entries})
    return finish(spec, kind, data, pairs, probe, runs)


def finish(spec, kind, data, pairs, probe, runs) -> Dict[str, Any]:
    r"""Closures against the seeds' mean paired change, the noise floor,
    rank shifts, attack removal and ratios; drops the raw changes."""
    sets = ('forgotten', 'probe')
    paired = {key: [r['methods']['paired-retrain']['changes'][key]
                    for r in runs] for key in sets}
    target = {key: torch.stack(paired[key]).mean(0) for key in sets}
    out: Dict[str, Any] = {
        'request': spec, 'data': repr(data), 'size': pairs.size(1),
        'probe_pairs': probe.size(1),
        'noise_floor': {key: noise_floor(paired[key]) for key in sets},
    }
    ref_changes = {run['seed']: run['methods']['paired-retrain']['changes']
                   for run in runs}
    for run in runs:
        run['methods']['original'].pop('changes')
    same = [r['methods'].get('paired-retrain-same-rule') for r in runs]
    if all(same):
        out['noise_floor_same_rule'] = {
            key: noise_floor([s['changes'][key] for s in same])
            for key in sets}
    shift = (statistics.fmean(r['methods']['paired-retrain']['rank'] -
                              r['methods']['original']['rank'] for r in runs)
             if kind in ('random', 'popular') else None)
    for run in runs:
        methods = run['methods']
        base = methods['original']
        ref = methods['paired-retrain']
        for name, entry in methods.items():
            if name == 'original' or 'error' in entry:
                continue
            changes = entry.pop('changes')
            entry['closure'] = {key: change_closure(changes[key],
                                                    target[key])
                                for key in sets}
            # Against the same seed's paired change alone: where seeds
            # disagree (a low floor), the method may still track its own.
            entry['closure_own'] = {
                key: change_closure(changes[key],
                                    ref_changes[run['seed']][key])
                for key in sets}
            if shift:
                entry['rank_shift'] = (entry['rank'] - base['rank']) / shift
            if 'hit_ratio' in entry:
                rise = base['hit_ratio'] - ref['hit_ratio']
                entry['attack_removed'] = (
                    (base['hit_ratio'] - entry['hit_ratio']) / rise
                    if rise > 0 else None)
            entry['utility_vs_paired'] = {
                k: entry['test'][k] / ref['test'][k] - 1
                for k in entry['test']}
            if entry.get('seconds'):
                entry['speedup_vs_paired'] = ref['seconds'] / entry['seconds']
                newton = methods.get('ifru-newton', {}).get('seconds')
                if newton and name.startswith('ifru'):
                    entry['time_vs_newton'] = entry['seconds'] / newton
    out['runs'] = runs
    out['summary'] = summarize(runs)
    return out


def summarize(runs: List[Dict]) -> Dict[str, Dict[str, Any]]:
    r"""Mean and spread over the seeds of every figure (as the benchmark
    command's), and which step, curvature and horizon ran."""
    summary = summarize_runs(runs)
    for method in summary:
        errors = [run['methods'][method]['error'] for run in runs
                  if 'error' in run['methods'][method]]
        if errors:
            summary[method]['failed'] = (f'{len(errors)} of {len(runs)} '
                                         f'seeds: {errors[0]}')
        certificates = [run['methods'][method].get('certificate')
                        for run in runs]
        if all(certificates):
            summary[method]['ran'] = sorted(
                {f"{c['step']}/{c['curvature']}/{c['horizon']}" +
                 (' (fallback)' if c['fallback'] else '')
                 for c in certificates})
    return summary


COLUMNS = [('closure forgotten', 'closure.forgotten', '{:.2f}'),
           ('closure probe', 'closure.probe', '{:.2f}'),
           ('rank shift', 'rank_shift', '{:.2f}'),
           ('attack removed', 'attack_removed', '{:.2f}'),
           ('hit ratio', 'hit_ratio', '{:.4f}'),
           ('flipped AUC', 'flipped_auc', '{:.3f}'),
           ('recall@20', 'test.recall@20', '{:.4f}'),
           ('ndcg@20', 'test.ndcg@20', '{:.4f}'),
           ('auc', 'test.auc', '{:.4f}'),
           ('seconds', 'seconds', '{:.2f}'),
           ('x paired retrain', 'speedup_vs_paired', '{:.0f}'),
           ('time / newton', 'time_vs_newton', '{:.2f}'),
           ('products', 'certificate.products', '{:.0f}')]


def table(result: Dict[str, Any]) -> str:
    summary = result['summary']
    columns = [c for c in COLUMNS if any(c[1] in s for s in summary.values())]
    lines = [f"{result['request']} on {result['data']} ({result['size']} "
             f"pairs, {result['probe_pairs']} probe pairs); noise floor "
             f"forgotten {result['noise_floor']['forgotten']:.2f}, probe "
             f"{result['noise_floor']['probe']:.2f}" +
             (f"; with the stopping rule applied again "
              f"{result['noise_floor_same_rule']['forgotten']:.2f} / "
              f"{result['noise_floor_same_rule']['probe']:.2f}"
              if 'noise_floor_same_rule' in result else ''), '',
             '| method | ' + ' | '.join(c[0] for c in columns) +
             ' | ran |', '|---|' + '---|' * (len(columns) + 1)]
    for method, stats in summary.items():
        cells = []
        for _, key, fmt in columns:
            if key not in stats:
                cells.append('')
                continue
            cell = fmt.format(stats[key]['mean'])
            if stats[key]['n'] > 1:
                cell += ' ± ' + fmt.format(stats[key]['std'])
            cells.append(cell)
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' | ' +
                     ', '.join(stats.get('ran', [])) +
                     (f" FAILED {stats['failed']}" if 'failed' in stats
                      else '') + ' |')
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='ml-100k',
                        choices=['ml-100k', 'lastfm', 'ifru-ml100k',
                                 'synthetic-1e5'])
    parser.add_argument('--data-dir', default=os.environ.get('TGU_DATA_DIR'))
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--loss', default='bpr', choices=['bpr', 'bce'])
    parser.add_argument('--l2', type=float, default=1.0)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--max-epochs', type=int, default=1000)
    parser.add_argument('--requests', nargs='+',
                        default=['random:0.01', 'users:5', 'popular:1',
                                 'attack:0.2'],
                        help="random:FRACTION, users:N, popular:N (the N "
                        "most popular items), attack:FRACTION (fake users, "
                        "a fraction of the real ones), flip (ifru-ml100k)")
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=METHODS + ('ifru-local', 'ifru-previous'))
    parser.add_argument('--local-thresholds', type=float, nargs='+',
                        default=[], help="'ifru-local' again at these "
                        "importance thresholds, as 'ifru-local@T'")
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed calls per IFRU variant (median)')
    parser.add_argument('--same-rule', action='store_true',
                        help='also run the paired retrain with early '
                        'stopping applied again')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error('the noise floor needs at least two seeds')
    args.methods += [f'ifru-local@{t:g}' for t in args.local_thresholds]
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results, cache = [], {}
    for spec in args.requests:
        results.append(run_request(args, spec, cache))
        print(table(results[-1]) + '\n', flush=True)
    report = {
        'command': ' '.join(['python'] + sys.argv),
        'config': vars(args),
        'machine': {'cpu': platform.processor() or platform.machine(),
                    'cpu_count': os.cpu_count(), 'threads': args.threads,
                    'torch': torch.__version__,
                    'python': platform.python_version()},
        'date': time.strftime('%Y-%m-%d'),
        'seconds': time.perf_counter() - start,
        'requests': results,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=1)
    print(f'wrote {args.out} ({report["seconds"]:.0f} s)')


if __name__ == '__main__':
    main()
