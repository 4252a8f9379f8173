r"""Command line: :obj:`python -m torch_geometric_unlearn
{demo,train,benchmark,unlearn}`."""
import argparse
import copy
import json
import os
import platform
import shlex
import sys
from dataclasses import replace
from typing import List, Optional

import torch

from torch_geometric_unlearn.console import (print_benchmark, print_demo,
                                             print_train, print_unlearn)
from torch_geometric_unlearn.data.datasets import load_dataset
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.request_file import read_request
from torch_geometric_unlearn.evaluation.benchmark import run_benchmark
from torch_geometric_unlearn.evaluation.config import (DEFAULT_METHODS,
                                                       METHODS, PROTOCOLS,
                                                       BenchmarkConfig)
from torch_geometric_unlearn.evaluation.metrics import evaluate, mean_rank
from torch_geometric_unlearn.evaluation.report import write_report
from torch_geometric_unlearn.evaluation.stream import run_stream_benchmark
from torch_geometric_unlearn.persist import (atomic_open, check_output,
                                             file_lock)
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.baselines import (FineTuneUnlearner,
                                                       RetrainUnlearner,
                                                       WarmRetrainUnlearner)
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner
from torch_geometric_unlearn.unlearn.ledger import json_value


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    r"""Shows every optional option's default after its help."""
    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required:  # no default to show
            return action.help or ''
        return super()._get_help_string(action)


def _model_options(parser: argparse.ArgumentParser):
    # Data, model and the reference trainer's settings.
    parser.add_argument('--dataset', default='synthetic',
                        choices=['synthetic', 'ml-100k', 'gowalla', 'lastfm',
                                 'ifru-ml100k'],
                        help='data set; the real ones are read from '
                        "--data-dir; 'ifru-ml100k' is the IFRU authors' "
                        'labelled split (BCE)')
    parser.add_argument('--data-dir', default=None,
                        help='folder holding the real data sets; None reads '
                        '$TGU_DATA_DIR')
    parser.add_argument('--layers', type=int, default=2,
                        help='LightGCN layers; 0 is matrix factorisation')
    parser.add_argument('--dim', type=int, default=64,
                        help='embedding size')
    parser.add_argument('--loss', default=None, choices=['bpr', 'bce'],
                        help='training loss: BPR with negatives drawn every '
                        'epoch, or BCE on labelled pairs; None is BPR, or '
                        "what --protocol needs")
    parser.add_argument('--l2', type=float, default=1.0,
                        help='weight of the L2 term on the summed loss; the '
                        'unlearners use the same')
    parser.add_argument('--lr', type=float, default=1e-3,
                        help='Adam learning rate')
    parser.add_argument('--batch-size', type=int, default=2048,
                        help='examples per step; 0 means full-batch')
    parser.add_argument('--max-epochs', type=int, default=1000,
                        help='upper bound on epochs; early stopping usually '
                        'ends training sooner')
    parser.add_argument('--patience', type=int, default=10,
                        help='validation evaluations without improvement '
                        'before training stops')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the synthetic data, initialisation, '
                        'negatives and the request')


def _run_options(parser: argparse.ArgumentParser):
    # Where and how verbosely to run: every command takes these.
    parser.add_argument('--device', default='cpu',
                        help='torch device, e.g. cpu, cuda or cuda:1; '
                        'checked before any work starts')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads; None lets torch decide')
    parser.add_argument('--no-progress', action='store_true',
                        help='hide progress bars (they show only on a '
                        'terminal anyway)')


def check_device(device: str) -> torch.device:
    r"""Returns :obj:`torch.device(device)` if this torch build can compute
    on it; raises a :class:`ValueError` saying why not otherwise, so that a
    run fails before its first long step rather than after training."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"'--device {device}' is not a torch device (e.g. "
                         f"cpu, cuda, cuda:1)") from None
    why = None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        why = ('this torch build has no CUDA support' if
               not torch.backends.cuda.is_built() else
               'no CUDA device is visible')
    elif dev.type == 'mps' and not torch.backends.mps.is_available():
        why = 'no MPS (Apple GPU) support here'
    elif dev.type == 'meta':
        why = 'meta tensors hold no data'
    else:
        try:
            torch.empty(1, device=dev)
        except Exception as e:  # each backend fails its own way, e.g. cuda:7
            why = (str(e).strip().split('. ')[0][:200] or
                   type(e).__name__)
    if why is not None:
        raise ValueError(f"device '{device}' is not available: {why} "
                         f"(torch {torch.__version__}); try '--device cpu'")
    return dev


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(loss=args.loss or 'bpr', l2=args.l2, lr=args.lr,
                       batch_size=args.batch_size or None,
                       max_epochs=args.max_epochs, patience=args.patience,
                       seed=args.seed, progress=not args.no_progress)


def _setup(args: argparse.Namespace):
    config = _train_config(args)  # bad settings fail before the data loads
    kwargs = {'seed': args.seed} if args.dataset == 'synthetic' else {}
    data = load_dataset(args.dataset, args.data_dir, **kwargs)
    model = build_model(data, args.dim, args.layers).to(args.device)
    return data, config, model


def run_train(args: argparse.Namespace) -> dict:
    r"""Loads the data, trains the model and evaluates it on the test
    split; returns the record that is printed."""
    data, config, model = _setup(args)
    result = train(model, data, config)
    metrics = evaluate(model, data, split='test')
    if getattr(args, 'checkpoint', None):
        from torch_geometric_unlearn.checkpoint import Checkpoint

        # Saved on the CPU, so that any machine can load it.
        Checkpoint(copy.deepcopy(model).cpu(), data, result.examples,
                   result.labels, config,
                   torch.empty(2, 0, dtype=torch.long),
                   _cpu(result.horizon)).save(args.checkpoint)
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


def run_demo(args: argparse.Namespace) -> dict:
    r"""Trains a model, forgets a random share of its training
    interactions with IFRU and by retraining from scratch, and compares
    them with the original model and with dropping the edges only; returns
    the rows of the printed table."""
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
    start = table['original (old graph)']['deleted_mean_rank']
    move = table['retrain']['deleted_mean_rank'] - start
    for row in table.values():
        if row['seconds']:
            row['speedup_vs_retrain'] = retrain / row['seconds']
        # The share of the retrain's move of the forgotten pairs' rank.
        row['rank_shift'] = ((row['deleted_mean_rank'] - start) / move
                             if move else None)
    return {'dataset': repr(data), 'model': repr(model),
            'request_size': pairs.size(1), 'methods': table}


# The demo table: (header, what is better, key, format).
def _benchmark_parser(parser: argparse.ArgumentParser):
    _model_options(parser)
    _run_options(parser)
    parser.add_argument('--out', default='benchmark-results',
                        help='folder to write NAME.json (every figure), '
                        'NAME.csv (the summary) and NAME.png (the charts) '
                        'into; created if missing')
    parser.add_argument('--model', choices=['lightgcn', 'mf'],
                        default='lightgcn',
                        help="'mf' is LightGCN with 0 layers")
    parser.add_argument('--request', default=None,
                        help="kind:amount, kind one of random (fraction < 1 "
                        "or count), users, active-users, inactive-users "
                        "(share < 1 or count: random, most or least active "
                        "users), items, poison, flip; None is random:0.01, "
                        'or the requests of --protocol')
    parser.add_argument('--protocol', default=None, choices=list(PROTOCOLS),
                        help="a protocol of the field, end to end: "
                        "cure4rec (5%% of users deleted at random, most and "
                        "least active), cova (flipped labels, BCE), erase "
                        "(a stream of 20 small requests); it sets the "
                        'requests, the methods (unless --methods) and the '
                        'loss; see docs/benchmarks.md')
    parser.add_argument('--methods', nargs='+', default=None,
                        choices=METHODS, metavar='METHOD',
                        help='methods to compare, from ' + ', '.join(METHODS)
                        + "; None runs all but sisa and receraser (or the "
                        "protocol's); 'drop-edges' (the do-nothing "
                        'baseline) is always added')
    parser.add_argument('--requests', type=int, default=None,
                        help='a stream of this many disjoint requests of '
                        "--request's kind and size (random or users), "
                        'applied in turn and measured after each quarter '
                        "against the paired retrain (ERASE's protocol); "
                        "None runs one request (or --protocol's stream)")
    parser.add_argument('--sisa-shards', type=int, default=10,
                        help="SISA's and RecEraser's shards, each with a "
                        'model of its own')
    parser.add_argument('--sisa-partition', default='user',
                        choices=['user', 'item', 'interaction'],
                        help='how SISA and RecEraser deal the interactions '
                        'to shards')
    parser.add_argument('--sisa-balanced', action='store_true',
                        help="SISA's shards by RecEraser's balanced "
                        "partition of the trained model's embeddings "
                        'instead of a random deal (scores still averaged)')
    parser.add_argument('--repeats', type=int, default=1,
                        help='independent runs (seeds seed, seed+1, ...)')
    parser.add_argument('--ifru-repeats', type=int, default=3,
                        help='timed calls per IFRU variant (median)')
    parser.add_argument('--converged-fidelity', action='store_true',
                        help='also measure closure between converged points')
    parser.add_argument('--name', default=None,
                        help='file name stem of the outputs; None makes it '
                        'from the data set, model, loss and request kind')
    parser.add_argument('--synthetic-size', type=int, default=None,
                        help='interactions of the synthetic data set (users '
                        'and items scale with it: n/30 and n/20)')


def run_benchmark_cmd(args: argparse.Namespace) -> dict:
    r"""Runs :func:`~.evaluation.benchmark.run_benchmark` (or a stream, or
    every request of a protocol) and writes its JSON, CSV and PNG into
    :obj:`args.out`."""
    protocol = PROTOCOLS.get(args.protocol)
    if protocol is not None:
        if args.request is not None:
            raise ValueError(f"'--protocol {protocol.name}' sets the "
                             f"requests: leave out '--request'")
        if args.requests is not None and protocol.stream is None:
            raise ValueError(f"'--requests' sets the length of a stream; "
                             f"'--protocol {protocol.name}' runs none")
        args.loss = args.loss or protocol.loss
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
        request=args.request or 'random:0.01',
        methods=args.methods or DEFAULT_METHODS, repeats=args.repeats,
        ifru_repeats=args.ifru_repeats, seed=args.seed, device=args.device,
        train=train_config, converged_fidelity=args.converged_fidelity,
        progress=not args.no_progress, sisa_shards=args.sisa_shards,
        sisa_partition=args.sisa_partition,
        sisa_balanced=args.sisa_balanced)
    model = (f"{args.dataset}_{args.model}"
             f"{config.layers if args.model == 'lightgcn' else ''}")
    command = 'python -m torch_geometric_unlearn ' + shlex.join(args.argv)
    if protocol is None:
        name = args.name or (f'{model}_{train_config.loss.value}_'
                             f'{config.request.kind}')
        return _benchmark(config, args.requests, args.out, name, command)
    name = args.name or f'{model}_{protocol.name}'
    return {'protocol': protocol.name, 'source': protocol.source,
            'reports': [_benchmark(c, args.requests or protocol.stream,
                                   args.out, f'{name}_{c.request.kind}',
                                   command)
                        for c in protocol.configs(config, args.methods)]}


def _benchmark(config: BenchmarkConfig, requests: Optional[int], out: str,
               name: str, command: str) -> dict:
    # One request, or a stream of them, written into out.
    if requests is None:
        report = run_benchmark(config)
        report['command'] = command
        report['files'] = write_report(report, out, name)
        return report
    if requests < 1:
        raise ValueError(f"'--requests' must be at least 1 (got {requests})")
    report = run_stream_benchmark(config, requests)
    report['command'] = command
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f'{name}_stream.json')
    with atomic_open(path) as f:
        json.dump(report, f, indent=2)
    report['files'] = [path]
    return report


UNLEARNERS = {
    'ifru': IFRUnlearner,
    'finetune': FineTuneUnlearner,
    'warm-retrain': WarmRetrainUnlearner,
    'retrain': RetrainUnlearner,
}


def run_unlearn(args: argparse.Namespace) -> dict:
    r"""Applies a request file to a checkpoint, writes the new checkpoint,
    and returns the report."""
    request = read_request(args.request)
    # One writer of --out at a time, from reading the checkpoint to
    # writing the new one: a second run waits, then applies its request to
    # the first one's checkpoint instead of overwriting it.
    with file_lock(args.out, on_wait=lambda: print(
            f"waiting for another writer of '{args.out}'",
            file=sys.stderr, flush=True)):
        return _unlearn_locked(args, request)


def _unlearn_locked(args: argparse.Namespace, request: dict) -> dict:
    from torch_geometric_unlearn.checkpoint import Checkpoint
    from torch_geometric_unlearn.data.interactions import pair_keys
    ckpt = Checkpoint.load(args.checkpoint)
    cls = UNLEARNERS[args.method]
    ckpt.model.to(args.device)
    train_config = replace(ckpt.train_config,
                           progress=ckpt.train_config.progress and
                           not args.no_progress)
    kwargs = ({'horizon': None if ckpt.horizon is None else
               ckpt.horizon.to(args.device)} if cls is IFRUnlearner else
              {'config': train_config})
    unlearner = cls(ckpt.model, ckpt.data, ckpt.examples, ckpt.labels,
                    ckpt.train_config.l2, **kwargs)
    # Requests forgotten in earlier runs are recognised as such.
    unlearner._forgotten = pair_keys(ckpt.forgotten,
                                     ckpt.data.num_items).sort()[0]
    unlearner.ledger = ckpt.ledger  # continued, entry by entry
    before = evaluate(ckpt.model, ckpt.data)
    result = unlearner.unlearn(**request)
    forgotten = torch.cat([ckpt.forgotten, result.request.cpu()], 1)
    after = evaluate(result.model, result.data)
    report = {
        'checkpoint': args.checkpoint,
        'request': args.request,
        'method': result.method,
        'forgotten': result.request.size(1),
        'message': result.message,
        'timings': result.timings,
        'diagnostics': json_value(result.diagnostics, max_tensor=None),
        'certificate': (None if result.certificate is None else
                        str(result.certificate)),
        'test_before': before,
        'test_after': after,
        'out': args.out,
        'ledger_entry': (None if result.entry is None else
                         {k: getattr(result.entry, k) for k in
                          ('index', 'request_id', 'time', 'hash')}),
    }
    # One commit: the side outputs are written first and the checkpoint,
    # which says the request was applied, is renamed last.
    also = []
    if args.ledger:
        also.append((args.ledger, unlearner.ledger.write_jsonl, 'w'))
    if args.report:
        also.append((args.report, lambda f: json.dump(report, f, indent=2),
                     'w'))
    # Saved on the CPU, so that any machine can load it.
    Checkpoint(result.model.cpu(), unlearner.data, _cpu(unlearner.examples),
               _cpu(unlearner.labels), ckpt.train_config, forgotten,
               ckpt.horizon, unlearner.ledger).save(args.out, also=also)
    return report


def _cpu(tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    return None if tensor is None else tensor.cpu()


def build_parser() -> argparse.ArgumentParser:
    r"""The parser of every command."""
    parser = argparse.ArgumentParser(
        prog='torch-geometric-unlearn', formatter_class=_Formatter,
        description='Unlearning for PyTorch Geometric recommenders.')
    sub = parser.add_subparsers(dest='command', required=True)
    demo = sub.add_parser(
        'demo', formatter_class=_Formatter,
        help='train a LightGCN, forget 1%% of its interactions with IFRU and '
        'by retraining, and compare them with doing nothing')
    _model_options(demo)
    _run_options(demo)
    demo.add_argument('--fraction', type=float, default=0.01,
                      help='share of training interactions to forget')
    demo.add_argument('--out', default=None,
                      help='write the table as JSON to this file')
    train_cmd = sub.add_parser('train', formatter_class=_Formatter,
                               help='train a model on a data set')
    _model_options(train_cmd)
    _run_options(train_cmd)
    train_cmd.add_argument('--out', default=None,
                           help='write the record as JSON to this file')
    train_cmd.add_argument('--checkpoint', default=None,
                           help='save the model and its unlearning state '
                           'here, for the unlearn command')
    bench = sub.add_parser(
        'benchmark', formatter_class=_Formatter,
        help='compare unlearning methods against retraining; writes JSON, '
        'CSV and PNG into the folder --out')
    _benchmark_parser(bench)
    forget = sub.add_parser(
        'unlearn', formatter_class=_Formatter,
        help='apply a request file to a checkpoint and write a new '
        'checkpoint')
    forget.add_argument('--checkpoint', required=True,
                        help='checkpoint written by train --checkpoint or '
                        'by an earlier unlearn')
    forget.add_argument('--request', required=True,
                        help="CSV (header 'user,item', 'user' or 'item') or "
                        "JSON ({'interactions'|'users'|'items': [...]})")
    forget.add_argument('--method', choices=list(UNLEARNERS), default='ifru',
                        help='how to forget')
    forget.add_argument('--out', required=True,
                        help='where to write the new checkpoint')
    forget.add_argument('--report', default=None,
                        help='write the report as JSON here')
    forget.add_argument('--ledger', default=None,
                        help='also export the checkpoint\'s ledger of '
                        'applied requests as JSON Lines here')
    _run_options(forget)
    return parser


def _check_distinct(args: argparse.Namespace, outputs: dict):
    # Two outputs naming one file would leave only the last one written
    # (e.g. a ledger export in place of the checkpoint).  unlearn may write
    # its new checkpoint over the one it reads, but nothing else over it.
    named = [(option, path) for option, path in outputs.items() if path]
    if args.command == 'unlearn':
        named.insert(0, ('--checkpoint', args.checkpoint))
    seen = {}
    for option, path in named:
        real = os.path.realpath(path)
        in_place = args.command == 'unlearn' and {
            seen.get(real), option} == {'--out', '--checkpoint'}
        if real in seen and not in_place:
            raise ValueError(f"'{seen[real]}' and '{option}' name the same "
                             f"file '{path}': give each output its own")
        seen.setdefault(real, option)


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)

    run, show = {
        'demo': (run_demo, print_demo),
        'train': (run_train, print_train),
        'benchmark': (run_benchmark_cmd, print_benchmark),
        'unlearn': (run_unlearn, print_unlearn),
    }[args.command]
    outputs = {'--out': getattr(args, 'out', None),
               '--checkpoint': (args.checkpoint if args.command == 'train'
                                else None),
               '--report': getattr(args, 'report', None),
               '--ledger': getattr(args, 'ledger', None)}
    if args.command == 'benchmark':  # a folder, created if missing
        outputs['--out'] = None
    try:
        # Where the results go is checked before any long work.
        for option, path in outputs.items():
            if path is not None:
                check_output(path, f"'{option}'")
        _check_distinct(args, outputs)
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"'--threads' must be at least 1 (got "
                                 f"{args.threads})")
            torch.set_num_threads(args.threads)
        check_device(args.device)
        record = run(args)
    except (ValueError, TypeError, OSError, ImportError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    show(record)
    if args.command in ('demo', 'train') and args.out:
        with atomic_open(args.out) as f:
            json.dump(record, f, indent=2)
    return 0
