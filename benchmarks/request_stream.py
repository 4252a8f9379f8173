r"""ERASE's repeated small requests on a package-trained LightGCN: a stream
of disjoint requests applied one after another with IFRU, SISA and
dropping the edges, measured after each quarter against the paired
retrain of everything forgotten so far (see
:mod:`torch_geometric_unlearn.evaluation.stream`).

Example::

    python benchmarks/request_stream.py --dataset ml-100k \
        --data-dir ../shared/data --requests 20 --size 180 \
        --out benchmarks/results/request_stream_ml-100k.json
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

from torch_geometric_unlearn.data.datasets import load_dataset
from torch_geometric_unlearn.data.deletion import request_stream
from torch_geometric_unlearn.evaluation.stream import run_stream
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner
from torch_geometric_unlearn.unlearn.sisa import SISAUnlearner, train_sisa


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='ml-100k')
    parser.add_argument('--data-dir', default='../shared/data')
    parser.add_argument('--requests', type=int, default=20)
    parser.add_argument('--size', type=int, default=180,
                        help='pairs per request (or users, with --kind '
                        'users)')
    parser.add_argument('--kind', default='random',
                        choices=['random', 'users'])
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--shards', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_dir)
    config = TrainConfig(progress=False, l2=1.0, seed=args.seed)
    model = build_model(data, 64, args.layers)
    start = time.perf_counter()
    record = train(model, data, config)
    train_seconds = time.perf_counter() - start
    stream = request_stream(data, args.requests, args.size, args.kind,
                            seed=args.seed)

    start = time.perf_counter()
    sharded, shards = train_sisa(data, args.shards, 'user', config, 64,
                                 args.layers, seed=args.seed)
    sisa_seconds = time.perf_counter() - start
    methods = {
        'ifru': lambda: IFRUnlearner(model, data, record.examples,
                                     record.labels, config.l2,
                                     horizon=record.horizon),
        'sisa': lambda: SISAUnlearner(sharded, data, shards, config),
        'drop-edges': None,
    }
    out = run_stream(model, data, record, config, stream, methods)
    report = {
        'command': 'python benchmarks/request_stream.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'date': time.strftime('%Y-%m-%d'),
        'machine': f'{platform.machine()}, {os.cpu_count()} cores, '
                   f'{args.threads} thread(s)',
        'train': {'epochs': record.epochs, 'best_epoch': record.best_epoch,
                  'seconds': train_seconds},
        'sisa_train_seconds': sisa_seconds, **out}
    for row in out['checkpoints']:
        print(json.dumps({'after': row['after'], **{
            name: {key: entry.get(key) for key in ('seconds', 'closure')}
            | {'ndcg@20': entry['test']['ndcg@20'],
               'one_request': entry.get('closure_one_request'),
               'agreement_ndcg@20': entry.get('agreement', {}).get(
                   'ndcg@20'), 'mia_auc': entry['mia_auc']}
            for name, entry in row['methods'].items()}}), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
