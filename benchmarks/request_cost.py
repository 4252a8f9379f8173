r"""What one deletion request costs: IFRU at its defaults against the scratch
retrain, against the previous code on the same trained model, as the graph
grows, in batches and in a stream of requests.

Parts (``--part``):

* ``ml100k``: MovieLens-100K, LightGCN-2 trained by the package's trainer
  at its defaults (early stopping).  A 1% random request, 5 users and the
  most popular item's interactions (which leaves a row to reset): IFRU
  cold (a fresh unlearner, as one call costs) and warm (its structures
  built beforehand by :meth:`IFRUnlearner.prepare`), the previous code, the
  scratch retrain on the remaining data (its wall time to its early stop),
  and, as fidelity, the score-change closure on the forgotten and probe
  pairs against the paired retrain, beside dropping the edges.
* ``paper``: the IFRU authors' split (MF, BCE, their flipped pairs as the
  request): time against the previous code, and test AUC.
* ``synthetic``: the fixed 100-interaction request against graph size
  (the set-up of ``benchmarks/scaling.py``), with the trainer's epoch;
  with ``--old``, also the new and the previous code taken in turn
  (``interleaved``), which a shared machine's slow spells bias less.
* ``batch``: 100 single-user requests as one batch against one.
* ``sequential``: 100 successive single-user requests on one unlearner.

"The previous code" is another copy of the package, imported under another
name in the same process (``--old DIR`` holds it as ``DIR/tgu_old``)::

    mkdir -p /tmp/old && git archive COMMIT torch_geometric_unlearn | \
        tar -x -C /tmp/old && mv /tmp/old/torch_geometric_unlearn \
        /tmp/old/tgu_old && grep -rl torch_geometric_unlearn /tmp/old/tgu_old \
        | xargs sed -i 's/torch_geometric_unlearn/tgu_old/g'

(the renaming keeps the old copy's own imports inside it).

Peak memory is what the timed call adds to the process at its peak: the
resident high-water mark during the call (``VmHWM``, reset before it
through ``/proc/self/clear_refs``) minus the resident size before it; on a
GPU, CUDA's peak allocation.

Example::

    python benchmarks/request_cost.py --part ml100k --data-dir ../shared/data \
        --old /tmp/old --threads 1 \
        --out benchmarks/results/request_cost/ml100k.json
"""
import argparse
import dataclasses
import importlib
import json
import os
import platform
import statistics
import sys
import time

import torch

from torch_geometric_unlearn import (IFRUConfig, IFRUnlearner, PruningConfig,
                                     TrainConfig, build_model, train)
from torch_geometric_unlearn.data.datasets import ifru_ml100k, load_dataset
from torch_geometric_unlearn.data.deletion import (item_interactions,
                                                   random_interactions,
                                                   random_users,
                                                   user_interactions)
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         probe_pairs,
                                                         score_change)
from torch_geometric_unlearn.evaluation.metrics import evaluate
from torch_geometric_unlearn.unlearn.base import UnlearnResult
from torch_geometric_unlearn.unlearn.baselines import PairedRetrainUnlearner

SEED = 100
# The benchmarks beside this one (scaling.py) import by name.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
#: The request-local variant: the rows of importance >= 1e-2 and the
#: curvature on their own rows (see IFRUConfig.curvature_hops).
LOCAL = dict(pruning=PruningConfig('threshold', 1e-2), curvature_hops=0)


def reset_peak():
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass


def status_mb(key: str) -> float:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(key + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float('nan')


def peak_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return status_mb('VmHWM')


def timed(make, call, repeats):
    r"""Median seconds of :obj:`call(make())` (only the call is timed), its
    last result and the peak memory of the last call."""
    times = []
    for _ in range(repeats):
        unlearner = make()
        reset_peak()
        before = status_mb('VmRSS')
        start = time.perf_counter()
        result = call(unlearner)
        times.append(time.perf_counter() - start)
    # On the CPU: the peak above the resident size before the call.
    return statistics.median(times), times, result, peak_mb() - (
        0 if torch.cuda.is_available() else before)


def interleaved(makes, call, repeats):
    r"""Seconds of :obj:`call(make())` for each of :obj:`makes`, taken in
    turn :obj:`repeats` times, so that a slow spell of a shared machine
    falls on all of them."""
    times = [[] for _ in makes]
    for _ in range(repeats):
        for k, make in enumerate(makes):
            unlearner = make()
            start = time.perf_counter()
            call(unlearner)
            times[k].append(time.perf_counter() - start)
    return times


def old_package(path):
    if path is None:
        return None
    sys.path.insert(0, path)
    return importlib.import_module('tgu_old')


def old_unlearner(old, model, data, examples, labels, l2, horizon):
    fields = {f.name: getattr(data, f.name)
              for f in dataclasses.fields(data)}
    old_data = old.data.interactions.InteractionData(**fields)
    return old.unlearn.ifru.IFRUnlearner(model, old_data, examples, labels,
                                         l2, horizon=horizon)


def entry(seconds, times, result, peak):
    out = {'seconds': seconds, 'all_seconds': times, 'peak_mb': peak}
    if result is not None and result.certificate is not None:
        c = result.certificate
        d = result.diagnostics
        out.update(step=c.step, curvature=c.curvature, products=c.products,
                   solve_rows=d['solve_rows'],
                   region_nodes=d['region_nodes'],
                   region_examples=d['region_examples'],
                   curvature_examples=d.get('curvature_examples'),
                   curvature_error=d.get('curvature_error'),
                   timings=result.timings)
    return out


def variants(make, call, repeats):
    r"""IFRU cold, warm and local on :obj:`call`: their entries, and the
    cold and local results."""
    secs, times, new, peak = timed(make, call, repeats)
    out = {'ifru_cold': entry(secs, times, new, peak),
           'ifru_warm': entry(*timed(lambda: make().prepare(), call,
                                     repeats))}
    secs, times, local, peak = timed(lambda: make(**LOCAL).prepare(), call,
                                     repeats)
    out['ifru_local'] = entry(secs, times, local, peak)
    return out, new, local


def previous(make, call, repeats, new):
    r"""The previous code on :obj:`call`: its entry with its speed-ups and
    its distance from the new update, and its result."""
    secs, times, result, peak = timed(make, call, repeats)
    out = entry(secs, times, result, peak)
    with torch.no_grad():
        diff = float((new.model.embedding.weight -
                      result.model.embedding.weight).abs().max())
    return out, result, diff


def closure(model, data, result, pairs, target, sets):
    return {key: change_closure(score_change(
        model, data.edge_index, result.model, result.edge_index, index,
        data.num_users), target[key]) for key, index in sets.items()}


def ml100k_model(args):
    data = load_dataset('ml-100k', args.data_dir)
    torch.manual_seed(0)
    model = build_model(data, 64, 2)
    config = TrainConfig(seed=0, progress=False)
    record = train(model, data, config)
    return data, model, record, config


def part_ml100k(args, old):
    data, model, record, config = ml100k_model(args)
    out = {'train_seconds': record.wall_time, 'epochs': record.epochs,
           'best_epoch': record.best_epoch, 'requests': {}}
    print(f'trained in {record.wall_time:.1f} s, {record.epochs} epochs',
          flush=True)
    requests = {
        'random:0.01': random_interactions(data, fraction=0.01, seed=SEED),
        'users:5': user_interactions(data, random_users(data, 5, seed=SEED)),
        # Its item keeps no interaction: a reset row.
        'popular:1': item_interactions(data, torch.bincount(
            data.train_index[1]).argmax().view(1)),
    }

    def make(**local):
        return IFRUnlearner(model, data, record.examples, l2=config.l2,
                            horizon=record.horizon,
                            config=IFRUConfig(**local))

    for name, pairs in requests.items():
        row = {'pairs': pairs.size(1)}
        call = (lambda u: u.unlearn(pairs))
        entries, new, local = variants(make, call, args.repeats)
        row.update(entries)
        if old is not None:
            row['previous'], old_result, diff = previous(
                lambda: old_unlearner(old, model, data, record.examples, None,
                                      config.l2, record.horizon), call,
                args.repeats, new)
            row['max_abs_difference_from_previous'] = diff
            row['max_abs_parameter'] = float(
                new.model.embedding.weight.detach().abs().max())
            row['speedup_vs_previous'] = (row['previous']['seconds'] /
                                          row['ifru_cold']['seconds'])
        after = new.data
        if not args.no_retrain:
            torch.manual_seed(0)
            scratch = build_model(data, 64, 2)
            retrain = train(scratch, after, config)
            row['scratch_retrain'] = {'seconds': retrain.wall_time,
                                      'epochs': retrain.epochs}
        else:
            row['scratch_retrain'] = {'seconds': record.wall_time,
                                      'epochs': record.epochs,
                                      'note': 'the original training'}
        for kind in ('ifru_cold', 'ifru_warm', 'ifru_local'):
            row[f'speedup_{kind}_vs_scratch'] = (
                row['scratch_retrain']['seconds'] / row[kind]['seconds'])
        paired = PairedRetrainUnlearner(
            model, data, record.examples, None, config.l2, config=config,
            epochs=record.best_epoch, copy_model=True).unlearn(pairs)
        sets = {'forgotten': pairs,
                'probe': probe_pairs(data, pairs, seed=SEED)}
        target = {key: score_change(model, data.edge_index, paired.model,
                                    paired.edge_index, index, data.num_users)
                  for key, index in sets.items()}
        methods = {'ifru': new, 'ifru-local': local,
                   'drop-edges': UnlearnResult(model, after, pairs, 'drop')}
        if old is not None:
            methods['previous'] = old_result
        row['closure_vs_paired_retrain'] = {
            key: closure(model, data, result, pairs, target, sets)
            for key, result in methods.items()}
        out['requests'][name] = row
        print(name, json.dumps({k: v for k, v in row.items()
                                if not isinstance(v, dict)}),
              row['closure_vs_paired_retrain'], flush=True)
        print('  cold', row['ifru_cold']['seconds'], 'warm',
              row['ifru_warm']['seconds'], 'local',
              row['ifru_local']['seconds'], 'previous',
              row.get('previous', {}).get('seconds'), flush=True)
    return out


def part_paper(args, old):
    attack = ifru_ml100k(args.data_dir)
    data, pairs = attack.data, attack.request
    torch.manual_seed(0)
    model = build_model(data, 64, 0)
    config = TrainConfig(loss='bce', seed=0, progress=False)
    record = train(model, data, config)

    def make(**local):
        return IFRUnlearner(model, data, record.examples, record.labels,
                            l2=config.l2, horizon=record.horizon,
                            config=IFRUConfig(**local))

    out = {'train_seconds': record.wall_time, 'epochs': record.epochs,
           'pairs': pairs.size(1)}
    call = (lambda u: u.unlearn(pairs))
    entries, new, local = variants(make, call, args.repeats)
    out.update(entries)
    after = new.data
    auc = {'ifru': evaluate(new.model, after, adj=new.edge_index)['auc'],
           'ifru-local': evaluate(local.model, after,
                                  adj=local.edge_index)['auc'],
           'drop-edges': evaluate(model, after, adj=after.edge_index)['auc'],
           'original': evaluate(model, after, adj=data.edge_index)['auc']}
    if old is not None:
        out['previous'], old_result, diff = previous(
            lambda: old_unlearner(old, model, data, record.examples,
                                  record.labels, config.l2, record.horizon),
            call, args.repeats, new)
        secs = out['previous']['seconds']
        out['speedup_vs_previous'] = secs / out['ifru_cold']['seconds']
        out['speedup_local_vs_previous'] = secs / out['ifru_local']['seconds']
        auc['previous'] = evaluate(old_result.model, after,
                                   adj=old_result.edge_index)['auc']
        out['max_abs_difference_from_previous'] = diff
    out['test_auc'] = auc
    print(json.dumps(out, default=str)[:2000], flush=True)
    return out


def synthetic_model(n):
    r"""The synthetic set-up of ``benchmarks/scaling.py`` with :obj:`n`
    interactions: the data, a LightGCN-2 (d = 64) fitted by 30 full-batch
    Adam steps on BPR with one frozen negative per pair, those examples,
    the L2 weight, the adjacency, and the fixed 100-interaction
    request."""
    from scaling import fit

    from torch_geometric_unlearn.data.datasets import synthetic
    from torch_geometric_unlearn.data.interactions import (pair_keys,
                                                           sample_negatives)
    from torch_geometric_unlearn.training.trainer import adjacency
    data = synthetic(num_users=max(n // 30, 10), num_items=max(n // 20, 30),
                     num_interactions=n, seed=0)
    torch.manual_seed(0)
    model = build_model(data, 64, 2)
    adj = adjacency(data.edge_index, data.num_nodes)
    gen = torch.Generator().manual_seed(0)
    pos = data.train_index
    neg = sample_negatives(pos, data.num_items,
                           pair_keys(pos, data.num_items).sort()[0], gen)
    examples = torch.cat([pos, neg.view(1, -1)])
    l2 = TrainConfig().l2
    fit(model, adj, examples, data.num_users, l2, 30, 0.05)
    pairs = random_interactions(data, count=100, seed=0)
    return data, model, examples, l2, adj, pairs


def synthetic_row(n, args, old):
    data, model, examples, l2, adj, pairs = synthetic_model(n)
    from scaling import step_seconds
    batch = TrainConfig().batch_size
    step = step_seconds(model, adj, examples, data.num_users, batch, l2, 5)
    epoch = step * -(-examples.size(1) // batch)

    def make(**local):
        return IFRUnlearner(model, data, examples, None, l2,
                            config=IFRUConfig(**local))

    row = {'interactions': n, 'nodes': data.num_nodes,
           'epoch_seconds': epoch}
    call = (lambda u: u.unlearn(pairs))
    entries, new, local = variants(make, call, args.repeats)
    row.update(entries)
    secs, lsecs = row['ifru_cold']['seconds'], row['ifru_local']['seconds']
    row['epochs_per_unlearn'] = secs / epoch
    row['epochs_per_unlearn_local'] = lsecs / epoch
    with torch.no_grad():  # the local update's distance from the exact one
        row['local_update_gap'] = float(
            (local.model.embedding.weight - new.model.embedding.weight).norm()
            / (new.model.embedding.weight - model.embedding.weight).norm())
    if old is not None and n <= args.old_max:
        def make_old():
            return old_unlearner(old, model, data, examples, None, l2, None)
        row['previous'], _, diff = previous(make_old, call, args.repeats,
                                            new)
        osecs = row['previous']['seconds']
        row['speedup_vs_previous'] = osecs / secs
        mine, theirs = interleaved([make, make_old], call, args.repeats)
        row['interleaved'] = {
            'seconds': mine, 'previous_seconds': theirs,
            'speedup_vs_previous': statistics.median(theirs) /
            statistics.median(mine)}
        row['speedup_local_vs_previous'] = osecs / lsecs
        row['max_abs_difference_from_previous'] = diff
    print(json.dumps({k: v for k, v in row.items()
                      if not isinstance(v, dict)}), flush=True)
    print('  new', row['ifru_cold']['seconds'], 'warm',
          row['ifru_warm']['seconds'], 'local', lsecs, 'timings',
          row['ifru_cold'].get('timings'), flush=True)
    return row


def part_synthetic(args, old):
    rows = [synthetic_row(int(n), args, old) for n in args.sizes]
    if args.out:
        plot(rows, os.path.splitext(args.out)[0] + '.png')
    return {'rows': rows}


def plot(rows, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('plot skipped: matplotlib is not installed', flush=True)
        return
    n = [r['interactions'] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(n, [r['epoch_seconds'] for r in rows], 's--',
              label='retrain: one epoch')
    ax.loglog(n, [r['ifru_cold']['seconds'] for r in rows], 'o-',
              label='IFRU, defaults')
    ax.loglog(n, [r['ifru_local']['seconds'] for r in rows], '^-',
              label='IFRU, request-local curvature')
    old = [(r['interactions'], r['previous']['seconds']) for r in rows
           if 'previous' in r]
    if old:
        ax.loglog(*zip(*old), 'x:', label='previous code')
    ax.set_xlabel('interactions')
    ax.set_ylabel('seconds (lower is better)')
    ax.set_title('One 100-interaction request, LightGCN-2, d=64')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def part_batch(args, old):
    data, model, record, config = ml100k_model(args)
    users = random_users(data, 100, seed=SEED + 1)
    make = (lambda: IFRUnlearner(model, data, record.examples, l2=config.l2,
                                 horizon=record.horizon))
    out = {'train_seconds': record.wall_time}
    for mode, build in (('cold', make), ('warm', lambda: make().prepare())):
        one = entry(*timed(build, lambda u: u.unlearn(users=users[:1]),
                           args.repeats))
        many = entry(*timed(build, lambda u: u.unlearn_batch(
            [{'users': users[k:k + 1]} for k in range(100)]), args.repeats))
        out[mode] = {'one_user': one, 'batch_of_100_users': many,
                     'ratio': many['seconds'] / one['seconds']}
        print(mode, one['seconds'], many['seconds'],
              many['seconds'] / one['seconds'], flush=True)
    sizes = [1, 10, 30, 100]
    out['per_request_seconds'] = {}
    for size in sizes:
        secs = timed(lambda: make().prepare(), lambda u: u.unlearn_batch(
            [{'users': users[k:k + 1]} for k in range(size)]),
            args.repeats)[0]
        out['per_request_seconds'][size] = secs / size
    print(out['per_request_seconds'], flush=True)
    return out


def part_sequential(args, old):
    data, model, record, config = ml100k_model(args)
    users = random_users(data, 100, seed=SEED + 2)
    unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                             horizon=record.horizon).prepare()
    times, rss = [], []
    for k in range(100):
        reset_peak()
        start = time.perf_counter()
        unlearner.unlearn(users=users[k:k + 1])
        times.append(time.perf_counter() - start)
        rss.append(peak_mb())  # the process's, growing if anything leaks
    first, last = times[:20], times[-20:]
    out = {'seconds': times, 'peak_mb': rss,
           'first_fifth_median': statistics.median(first),
           'last_fifth_median': statistics.median(last),
           'time_ratio_last_to_first': (statistics.median(last) /
                                        statistics.median(first)),
           'memory_ratio_last_to_first': (statistics.median(rss[-20:]) /
                                          statistics.median(rss[:20]))}
    print({k: v for k, v in out.items() if not isinstance(v, list)},
          flush=True)
    return out


PARTS = {'ml100k': part_ml100k, 'paper': part_paper,
         'synthetic': part_synthetic, 'batch': part_batch,
         'sequential': part_sequential}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--part', choices=sorted(PARTS), required=True)
    parser.add_argument('--data-dir', default='../shared/data')
    parser.add_argument('--old', default=None,
                        help='folder holding the previous code as tgu_old')
    parser.add_argument('--sizes', type=float, nargs='+',
                        default=[1e5, 1e6, 3e6])
    parser.add_argument('--old-max', type=float, default=1e6,
                        help='largest synthetic size to run the previous '
                        'code on')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--no-retrain', action='store_true',
                        help='use the original training as the scratch '
                        'retrain time')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    result = PARTS[args.part](args, old_package(args.old))
    report = {
        'command': 'python benchmarks/request_cost.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'machine': {'cpu': platform.processor() or platform.machine(),
                    'cpu_count': os.cpu_count(),
                    'threads': torch.get_num_threads(),
                    'device': (torch.cuda.get_device_name()
                               if torch.cuda.is_available() else 'cpu'),
                    'torch': torch.__version__},
        'date': time.strftime('%Y-%m-%d'),
        'seconds': time.perf_counter() - start,
        'settings': vars(args),
        **result,
    }
    if args.out:
        os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2, default=str)


if __name__ == '__main__':
    main()
