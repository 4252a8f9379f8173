r"""Command line: :obj:`python -m torch_geometric_unlearn
{demo,train,benchmark,unlearn}`."""
import argparse
import csv
import json
import platform
import shlex
import sys
from dataclasses import asdict
from typing import Dict, List, Optional

import torch

from .baselines import FineTuneUnlearner, RetrainUnlearner, \
    WarmRetrainUnlearner
from .benchmark import (
    METHODS,
    BenchmarkConfig,
    format_table,
    run_benchmark,
    write_report,
)
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


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(loss=args.loss, l2=args.l2, lr=args.lr,
                       batch_size=args.batch_size or None,
                       max_epochs=args.max_epochs, patience=args.patience,
                       seed=args.seed, progress=not args.no_progress)


def _setup(args: argparse.Namespace):
    if args.threads:
        torch.set_num_threads(args.threads)
    kwargs = {'seed': args.seed} if args.dataset == 'synthetic' else {}
    data = load_dataset(args.dataset, args.data_dir, **kwargs)
    config = _train_config(args)
    model = build_model(data, args.dim, args.layers).to(args.device)
    return data, config, model


def run_train(args: argparse.Namespace) -> dict:
    r"""Loads the data, trains the model and evaluates it on the test
    split; returns the record that is printed."""
    data, config, model = _setup(args)
    result = train(model, data, config)
    metrics = evaluate(model, data, split='test')
    if getattr(args, 'checkpoint', None):
        from .checkpoint import Checkpoint
        Checkpoint(model, data, result.examples, result.labels, config,
                   torch.empty(2, 0, dtype=torch.long),
                   result.horizon).save(args.checkpoint)
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
        kwargs = ({'config': config} if cls is RetrainUnlearner else
                  {'horizon': record.horizon})
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


def _benchmark_parser(parser: argparse.ArgumentParser):
    _train_parser(parser)
    parser.set_defaults(out='benchmark-results')
    parser.add_argument('--model', choices=['lightgcn', 'mf'],
                        default='lightgcn',
                        help="'mf' is LightGCN with 0 layers")
    parser.add_argument('--request', default='random:0.01',
                        help="kind:amount, kind one of random (fraction < 1 "
                        "or count), users, items, poison, flip "
                        "(default: random:0.01)")
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=METHODS)
    parser.add_argument('--repeats', type=int, default=1,
                        help='independent runs (seeds seed, seed+1, ...)')
    parser.add_argument('--ifru-repeats', type=int, default=3,
                        help='timed calls per IFRU variant (median)')
    parser.add_argument('--converged-fidelity', action='store_true',
                        help='also measure closure between converged points')
    parser.add_argument('--name', default=None,
                        help='file name stem of the outputs')
    parser.add_argument('--synthetic-size', type=int, default=None,
                        help='interactions of the synthetic data set (users '
                        'and items scale with it: n/30 and n/20)')


def run_benchmark_cmd(args: argparse.Namespace) -> dict:
    r"""Runs :func:`~torch_geometric_unlearn.benchmark.run_benchmark` and
    writes its JSON, CSV and PNG into :obj:`args.out`."""
    if args.threads:
        torch.set_num_threads(args.threads)
    train_config = _train_config(args)
    train_config.progress = False
    options = {}
    if args.synthetic_size:
        if args.dataset != 'synthetic':
            raise ValueError("'--synthetic-size' needs '--dataset synthetic'")
        n = args.synthetic_size
        options = dict(num_interactions=n, num_users=max(n // 30, 10),
                       num_items=max(n // 20, 30))
    config = BenchmarkConfig(
        dataset=args.dataset, data_dir=args.data_dir,
        dataset_options=options,
        layers=0 if args.model == 'mf' else args.layers, dim=args.dim,
        request=args.request, methods=args.methods, repeats=args.repeats,
        ifru_repeats=args.ifru_repeats, seed=args.seed, device=args.device,
        train=train_config, converged_fidelity=args.converged_fidelity,
        progress=not args.no_progress)
    report = run_benchmark(config)
    name = args.name or (f"{args.dataset}_{args.model}"
                         f"{config.layers if args.model == 'lightgcn' else ''}"
                         f"_{args.loss}_{config.request.kind}")
    report['command'] = ('python -m torch_geometric_unlearn ' +
                         shlex.join(args.argv))
    report['files'] = write_report(report, args.out, name)
    return report


def _print_benchmark(report: dict):
    runs = report['runs']
    print(f"{runs[0]['data']}, request {report['config']['request']} "
          f"({runs[0]['request_size']} pairs), {len(runs)} run(s)")
    print(format_table(report))
    print('wrote ' + ', '.join(report['files']))


UNLEARNERS = {
    'ifru': IFRUnlearner,
    'finetune': FineTuneUnlearner,
    'warm-retrain': WarmRetrainUnlearner,
    'retrain': RetrainUnlearner,
}


def read_request(path: str) -> Dict[str, torch.Tensor]:
    r"""Reads a request file: CSV with a header naming :obj:`user,item`
    (interactions), :obj:`user` (users) or :obj:`item` (items), or JSON
    :obj:`{"interactions": [[user, item], ...]}`, :obj:`{"users": [...]}`
    or :obj:`{"items": [...]}`.  Returns the keyword arguments of
    :meth:`~torch_geometric_unlearn.unlearner.Unlearner.unlearn`."""
    if path.endswith('.json'):
        with open(path) as f:
            raw = json.load(f)
        if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) \
                not in ('interactions', 'users', 'items'):
            raise ValueError(f"'{path}' must hold one key: 'interactions', "
                             f"'users' or 'items'")
        key, value = next(iter(raw.items()))
        tensor = torch.tensor(value, dtype=torch.long)
        if key == 'interactions':
            return {'interactions': tensor.view(-1, 2).t().contiguous()}
        return {key: tensor.view(-1)}
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    header = [h.strip() for h in rows[0]] if rows else []
    kinds = {('user', 'item'): 'interactions', ('user', ): 'users',
             ('item', ): 'items'}
    if tuple(header) not in kinds:
        raise ValueError(f"'{path}' needs a CSV header 'user,item', 'user' "
                         f"or 'item' (got {header})")
    try:
        values = torch.tensor([[int(x) for x in row] for row in rows[1:]
                               if row], dtype=torch.long)
    except ValueError as e:
        raise ValueError(f"'{path}' holds a non-integer id: {e}") from None
    kind = kinds[tuple(header)]
    values = values.view(-1, len(header))
    if kind == 'interactions':
        return {kind: values.t().contiguous()}
    return {kind: values.view(-1)}


def run_unlearn(args: argparse.Namespace) -> dict:
    r"""Applies a request file to a checkpoint, writes the new checkpoint,
    and returns the report."""
    from .checkpoint import Checkpoint
    from .data import pair_keys
    ckpt = Checkpoint.load(args.checkpoint)
    request = read_request(args.request)
    cls = UNLEARNERS[args.method]
    kwargs = ({'horizon': ckpt.horizon} if cls is IFRUnlearner else
              {'config': ckpt.train_config})
    unlearner = cls(ckpt.model, ckpt.data, ckpt.examples, ckpt.labels,
                    ckpt.train_config.l2, **kwargs)
    # Requests forgotten in earlier runs are recognised as such.
    unlearner._forgotten = pair_keys(ckpt.forgotten,
                                     ckpt.data.num_items).sort()[0]
    before = evaluate(ckpt.model, ckpt.data)
    result = unlearner.unlearn(**request)
    forgotten = torch.cat([ckpt.forgotten, result.request], 1)
    Checkpoint(result.model, unlearner.data, unlearner.examples,
               unlearner.labels, ckpt.train_config, forgotten,
               ckpt.horizon).save(args.out)
    report = {
        'checkpoint': args.checkpoint,
        'request': args.request,
        'method': result.method,
        'forgotten': result.request.size(1),
        'message': result.message,
        'timings': result.timings,
        'diagnostics': _plain(result.diagnostics),
        'certificate': (None if result.certificate is None else
                        str(result.certificate)),
        'test_before': before,
        'test_after': evaluate(result.model, result.data),
        'out': args.out,
    }
    if args.report:
        with open(args.report, 'w') as f:
            json.dump(report, f, indent=2)
    return report


def _plain(value):
    # Diagnostics hold dataclasses (solver records): make them JSON.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, '__dataclass_fields__'):
        return _plain(asdict(value))
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _print_unlearn(report: dict):
    print(f"{report['method']}: forgot {report['forgotten']} interactions "
          f"in {report['timings']['total']:.2f} s"
          + (f" ({report['message']})" if report['message'] else ''))
    if report.get('certificate'):
        print(f"certificate: {report['certificate']}")
    for when in ('before', 'after'):
        print(f'test {when}: ' + ', '.join(
            f'{k} {v:.4f}' for k, v in report[f'test_{when}'].items()))
    print(f"wrote {report['out']}")


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
    train_cmd.add_argument('--checkpoint', default=None,
                           help='save the model and its unlearning state '
                           'here, for the unlearn command')
    bench = sub.add_parser(
        'benchmark', help='compare unlearning methods against retraining; '
        'writes JSON, CSV and PNG into --out')
    _benchmark_parser(bench)
    forget = sub.add_parser(
        'unlearn', help='apply a request file to a checkpoint and write a '
        'new checkpoint')
    forget.add_argument('--checkpoint', required=True)
    forget.add_argument('--request', required=True,
                        help="CSV (header 'user,item', 'user' or 'item') or "
                        "JSON ({'interactions'|'users'|'items': [...]})")
    forget.add_argument('--method', choices=list(UNLEARNERS), default='ifru')
    forget.add_argument('--out', required=True,
                        help='where to write the new checkpoint')
    forget.add_argument('--report', default=None,
                        help='write the report as JSON here')
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)

    run, show = {
        'demo': (run_demo, _print_demo),
        'train': (run_train, _print),
        'benchmark': (run_benchmark_cmd, _print_benchmark),
        'unlearn': (run_unlearn, _print_unlearn),
    }[args.command]
    try:
        record = run(args)
    except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    show(record)
    if args.command in ('demo', 'train') and args.out:
        with open(args.out, 'w') as f:
            json.dump(record, f, indent=2)
    return 0
