r"""Command line: :obj:`python -m torch_geometric_unlearn {demo,train}`."""
import argparse
import json
import platform
import sys
from typing import List, Optional

import torch

from .baselines import RetrainUnlearner
from .datasets import load_dataset
from .deletion import random_interactions
from .evaluation import evaluate, mean_rank
from .ifru import IFRUnlearner
from .training import TrainConfig, build_model, train


def _train_parser(parser: argparse.ArgumentParser):
    parser.add_argument('--dataset', default='synthetic',
                        choices=['synthetic', 'ml-100k', 'gowalla', 'lastfm'])
    parser.add_argument('--data-dir', default=None,
                        help='folder holding the real data sets '
                        '(default: $TGU_DATA_DIR)')
    parser.add_argument('--layers', type=int, default=2,
                        help='LightGCN layers; 0 is matrix factorisation')
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--loss', default='bpr', choices=['bpr', 'bce'])
    parser.add_argument('--l2', type=float, default=1.0)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--batch-size', type=int, default=2048,
                        help='0 means full-batch')
    parser.add_argument('--max-epochs', type=int, default=1000)
    parser.add_argument('--patience', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch decides)')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--out', default=None,
                        help='write the record as JSON to this file')


def _setup(args: argparse.Namespace):
    if args.threads:
        torch.set_num_threads(args.threads)
    kwargs = {'seed': args.seed} if args.dataset == 'synthetic' else {}
    data = load_dataset(args.dataset, args.data_dir, **kwargs)
    config = TrainConfig(loss=args.loss, l2=args.l2, lr=args.lr,
                         batch_size=args.batch_size or None,
                         max_epochs=args.max_epochs, patience=args.patience,
                         seed=args.seed, progress=not args.no_progress)
    model = build_model(data, args.dim, args.layers).to(args.device)
    return data, config, model


def run_train(args: argparse.Namespace) -> dict:
    r"""Loads the data, trains the model and evaluates it on the test
    split; returns the record that is printed."""
    data, config, model = _setup(args)
    result = train(model, data, config)
    metrics = evaluate(model, data, split='test')
    return {
        'dataset': repr(data),
        'model': repr(model),
        'loss': config.loss.value,
        'epochs': result.epochs,
        'best_epoch': result.best_epoch,
        f'val_{result.metric}': result.best_metric,
        'train_seconds': result.wall_time,
        'seconds_per_epoch': result.wall_time / result.epochs,
        'test': metrics,
        'machine': {
            'device': args.device,
            'threads': torch.get_num_threads(),
            'cpu': platform.processor() or platform.machine(),
            'torch': torch.__version__,
        },
    }


def _print(record: dict):
    print(f"data:   {record['dataset']}")
    print(f"model:  {record['model']}, loss {record['loss']}")
    print(f"epochs: {record['epochs']} (best {record['best_epoch']}), "
          f"{record['train_seconds']:.1f} s "
          f"({record['seconds_per_epoch']:.2f} s/epoch)")
    print('test:   ' + ', '.join(f'{k} {v:.4f}'
                                 for k, v in record['test'].items()))


def run_demo(args: argparse.Namespace) -> dict:
    r"""Trains a model, forgets a random share of its training
    interactions with IFRU and by retraining from scratch, and compares
    them; returns the rows of the printed table."""
    data, config, model = _setup(args)
    record = train(model, data, config)
    pairs = random_interactions(data, fraction=args.fraction, seed=args.seed)
    print(f"trained {model} on {data} in {record.wall_time:.1f} s; "
          f"forgetting {pairs.size(1)} random interactions")
    rows = {'original (old graph)': (model, data.edge_index, None)}
    after = None
    for cls in (IFRUnlearner, RetrainUnlearner):
        kwargs = {'config': config} if cls is RetrainUnlearner else {}
        unlearner = cls(model, data, record.examples, record.labels,
                        config.l2, copy_model=True, **kwargs)
        result = unlearner.unlearn(pairs)
        after = result.data
        rows[cls.method] = (result.model, result.edge_index,
                            result.timings['total'])
    rows['drop edges, no update'] = (model, after.edge_index, None)
    table = {}
    for name, (m, edge_index, seconds) in rows.items():
        metrics = evaluate(m, after, adj=edge_index)
        table[name] = {
            'seconds': seconds,
            'recall@20': metrics['recall@20'],
            'ndcg@20': metrics['ndcg@20'],
            'deleted_mean_rank': mean_rank(m, edge_index, pairs,
                                           data.num_users, after.train_index),
        }
    retrain = table['retrain']['seconds']
    for row in table.values():
        if row['seconds']:
            row['speedup_vs_retrain'] = retrain / row['seconds']
    return {'dataset': repr(data), 'model': repr(model),
            'request_size': pairs.size(1), 'methods': table}


def _print_demo(record: dict):
    print(f"{'method':24} {'seconds':>8} {'speed-up':>9} {'recall@20':>10} "
          f"{'ndcg@20':>8} {'rank of forgotten':>18}")
    for name, row in record['methods'].items():
        seconds = ('' if row['seconds'] is None else
                   f"{row['seconds']:.2f}")
        speedup = (f"{row['speedup_vs_retrain']:.0f}x"
                   if 'speedup_vs_retrain' in row else '')
        print(f"{name:24} {seconds:>8} {speedup:>9} "
              f"{row['recall@20']:>10.4f} {row['ndcg@20']:>8.4f} "
              f"{row['deleted_mean_rank']:>18.1f}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog='torch-geometric-unlearn',
        description='Unlearning for PyTorch Geometric recommenders.')
    sub = parser.add_subparsers(dest='command', required=True)
    demo = sub.add_parser(
        'demo', help='train a LightGCN, forget 1%% of its interactions with '
        'IFRU and by retraining, and compare')
    _train_parser(demo)
    demo.add_argument('--fraction', type=float, default=0.01,
                      help='share of training interactions to forget')
    train_cmd = sub.add_parser('train', help='train a model on a data set')
    _train_parser(train_cmd)
    args = parser.parse_args(argv)

    run, show = ((run_demo, _print_demo) if args.command == 'demo' else
                 (run_train, _print))
    try:
        record = run(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    show(record)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(record, f, indent=2)
    return 0
