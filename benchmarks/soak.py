r"""Soak: many sequential requests on one unlearner, as a deletion service
runs for months.

A LightGCN-2 trained by the package's trainer (defaults, early stopping) on
a synthetic graph serves ``--requests`` successive one-interaction requests
through one :class:`IFRUnlearner`.  Recorded per request: wall time, the
process's resident memory after it, the certificate's figures and the
ledger's length.  At the end, the sequence is compared with one batched
request of the same union (drift of the parameters and of the forgotten
pairs' scores) and with the paired retrain on the remaining data (score
closure of the forgotten pairs, beside dropping the edges and doing
nothing), and the ledger is verified.

Example::

    python benchmarks/soak.py --interactions 20000 --requests 1000 \
        --threads 1 --out benchmarks/results/soak.json
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from torch_geometric_unlearn import (IFRUnlearner, TrainConfig, build_model,
                                     train)
from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         score_change)
from torch_geometric_unlearn.unlearn.baselines import PairedRetrainUnlearner


def rss_mb() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def tenth(values, last=False):
    n = max(1, len(values) // 10)
    return statistics.median(values[-n:] if last else values[:n])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--interactions', type=int, default=20_000)
    parser.add_argument('--requests', type=int, default=1000)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n = args.interactions
    data = synthetic(num_users=max(n // 30, 10), num_items=max(n // 20, 30),
                     num_interactions=n, seed=0)
    torch.manual_seed(0)
    model = build_model(data, 64, 2)
    config = TrainConfig(seed=0, progress=False)
    record = train(model, data, config)
    pairs = random_interactions(data, count=args.requests, seed=1)
    print(f'{data}; trained {record.epochs} epochs in '
          f'{record.wall_time:.1f} s; {args.requests} requests', flush=True)

    unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                             horizon=record.horizon).prepare()
    rows = []
    for k in range(args.requests):
        start = time.perf_counter()
        result = unlearner.unlearn(pairs[:, k:k + 1])
        seconds = time.perf_counter() - start
        cert = result.certificate
        rows.append({'seconds': seconds, 'rss_mb': rss_mb(),
                     'step': cert.step, 'products': cert.products,
                     'solve_residual': cert.solve_residual,
                     'stationarity': cert.stationarity,
                     'gradient_before': cert.gradient_before,
                     'gradient_after': cert.gradient_after,
                     'ledger': len(unlearner.ledger)})
        if k % 100 == 99:
            print(k + 1, f"{statistics.median(r['seconds'] for r in rows[-100:]):.3f} s",
                  f"{rows[-1]['rss_mb']:.0f} MB", flush=True)
    unlearner.ledger.verify()

    start = time.perf_counter()
    batch = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         horizon=record.horizon).unlearn(pairs)
    batch_seconds = time.perf_counter() - start
    paired = PairedRetrainUnlearner(model, data, record.examples, None,
                                    config.l2, config=config,
                                    epochs=record.best_epoch).unlearn(pairs)
    after = unlearner.data
    assert torch.equal(after.train_index, batch.data.train_index)

    def change(result_model, edge_index):
        return score_change(model, data.edge_index, result_model,
                            edge_index, pairs, data.num_users)

    target = change(paired.model, paired.edge_index)
    sequential = change(unlearner.model, after.edge_index)
    batched = change(batch.model, batch.edge_index)
    with torch.no_grad():
        theta0 = model.embedding.weight
        seq, bat = unlearner.model.embedding.weight, batch.model.embedding.weight
        drift = float((seq - bat).norm() / (bat - theta0).norm())
    times = [r['seconds'] for r in rows]
    memory = [r['rss_mb'] for r in rows]
    report = {
        'command': 'python benchmarks/soak.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'machine': {'cpu': platform.processor() or platform.machine(),
                    'cpu_count': os.cpu_count(),
                    'threads': torch.get_num_threads(),
                    'torch': torch.__version__},
        'date': time.strftime('%Y-%m-%d'),
        'data': repr(data),
        'train': {'seconds': record.wall_time, 'epochs': record.epochs},
        'requests': args.requests,
        'sequential_seconds_total': sum(times),
        'first_tenth_median_seconds': tenth(times),
        'last_tenth_median_seconds': tenth(times, last=True),
        'time_ratio_last_to_first': tenth(times, True) / tenth(times),
        'first_tenth_median_rss_mb': tenth(memory),
        'last_tenth_median_rss_mb': tenth(memory, True),
        'memory_ratio_last_to_first': tenth(memory, True) / tenth(memory),
        'batch_seconds': batch_seconds,
        'parameter_drift_sequential_vs_batch': drift,
        'score_closure_vs_paired_retrain': {
            'sequential': change_closure(sequential, target),
            'batch': change_closure(batched, target),
            'drop-edges': change_closure(change(model, after.edge_index),
                                         target),
            'nothing': change_closure(torch.zeros_like(target), target)},
        'score_closure_sequential_vs_batch': change_closure(sequential,
                                                           batched),
        'ledger_entries': len(unlearner.ledger),
        'ledger_head': unlearner.ledger.head,
        'steps': {s: sum(r['step'] == s for r in rows)
                  for s in {r['step'] for r in rows}},
        'per_request': rows,
    }
    print(json.dumps({k: v for k, v in report.items()
                      if k != 'per_request'}, indent=1), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)),
                    exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
