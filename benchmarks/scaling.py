r"""Scaling: IFRU's time to forget a fixed request (100 random interactions)
against graph size, with the reference trainer's time per epoch beside it.

For each size, a synthetic data set (users n/30, items n/20, Zipf degrees;
see :func:`~torch_geometric_unlearn.data.datasets.synthetic`) gets a LightGCN
fitted by a fixed budget of full-batch Adam steps on BPR with frozen
negatives, the objective IFRU then unlearns from.  The trainer's epoch time
is the time of its mini-batch step (median of a few, after a warm-up)
times the number of steps in an epoch: training these graphs to an early
stop would take hours on the CPU box, and the trainer's validation ranking
(every user against every item) does not fit at 10^7.

Example::

    python benchmarks/scaling.py --layers 0 --out benchmarks/results/scaling_mf.json
"""
import argparse
import json
import math
import os
import platform
import statistics
import time

import torch

from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.interactions import (pair_keys,
                                                       sample_negatives)
from torch_geometric_unlearn.influence.objectives import l2_penalty
from torch_geometric_unlearn.training.trainer import (TrainConfig, adjacency,
                                                      build_model,
                                                      example_loss)
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner


def step_seconds(model, adj, examples, num_users, batch_size, l2, steps):
    # The reference trainer's mini-batch step: full propagation, BPR on the
    # batch, L2 on all parameters, Adam.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    num = examples.size(1)
    gen = torch.Generator().manual_seed(0)
    times = []
    for _ in range(steps + 1):
        batch = torch.randint(num, (batch_size, ), generator=gen)
        start = time.perf_counter()
        optimizer.zero_grad()
        emb = model.get_embedding(adj)
        loss = example_loss(emb, examples[:, batch], None, num_users)
        loss = (loss * num / batch_size +
                l2_penalty(list(model.parameters()), l2)) / num
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def fit(model, adj, examples, num_users, l2, steps, lr):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    num = examples.size(1)
    for _ in range(steps):
        optimizer.zero_grad()
        emb = model.get_embedding(adj)
        loss = (example_loss(emb, examples, None, num_users) +
                l2_penalty(list(model.parameters()), l2)) / num
        loss.backward()
        optimizer.step()


def run_size(n, args):
    data = synthetic(num_users=max(n // 30, 10), num_items=max(n // 20, 30),
                     num_interactions=n, seed=args.seed)
    torch.manual_seed(args.seed)
    model = build_model(data, args.dim, args.layers)
    adj = adjacency(data.edge_index, data.num_nodes)
    gen = torch.Generator().manual_seed(args.seed)
    pos = data.train_index
    forbidden = pair_keys(pos, data.num_items).sort()[0]
    neg = sample_negatives(pos, data.num_items, forbidden, gen)
    examples = torch.cat([pos, neg.view(1, -1)])
    l2, batch_size = TrainConfig().l2, TrainConfig().batch_size

    start = time.perf_counter()
    fit(model, adj, examples, data.num_users, l2, args.fit_steps, args.lr)
    fit_seconds = time.perf_counter() - start
    step = step_seconds(model, adj, examples, data.num_users, batch_size, l2,
                        args.timed_steps)
    steps_per_epoch = math.ceil(examples.size(1) / batch_size)

    pairs = random_interactions(data, count=args.request, seed=args.seed)
    times, result = [], None
    for _ in range(args.repeats):
        unlearner = IFRUnlearner(model, data, examples, None, l2,
                                 copy_model=True)
        start = time.perf_counter()
        result = unlearner.unlearn(pairs)
        times.append(time.perf_counter() - start)
    diag = result.diagnostics
    epoch = step * steps_per_epoch
    row = {
        'interactions': n,
        'train_interactions': data.num_train,
        'nodes': data.num_nodes,
        'edges': data.edge_index.size(1),
        'fit_seconds': fit_seconds,
        'step_seconds': step,
        'steps_per_epoch': steps_per_epoch,
        'epoch_seconds': epoch,
        'unlearn_seconds': statistics.median(times),
        'unlearn_all_seconds': times,
        'timings': result.timings,
        'speedup_vs_one_epoch': epoch / statistics.median(times),
        'region_nodes': diag['region_nodes'],
        'region_examples': diag['region_examples'],
        'solve_rows': diag['solve_rows'],
        'changed_examples': diag['changed_examples'],
        'solver': [{
            'iterations': s.iterations,
            'residual': s.residual,
            'message': s.message
        } for s in diag['solver']],
    }
    print(json.dumps({k: v for k, v in row.items()
                      if k != 'unlearn_all_seconds'}),
          flush=True)
    return row


def plot(rows, path, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = [r['interactions'] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.loglog(n, [r['unlearn_seconds'] for r in rows], 'o-',
                label='IFRU unlearn (100 interactions)')
    left.loglog(n, [r['epoch_seconds'] for r in rows], 's--',
                label='retrain: one epoch')
    left.set_xlabel('interactions')
    left.set_ylabel('seconds')
    left.legend()
    right.loglog(n, [r['region_examples'] for r in rows], 'o-',
                 label='examples in the solve region')
    right.loglog(n, [r['train_interactions'] for r in rows], 's--',
                 label='training examples')
    right.set_xlabel('interactions')
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', type=float, nargs='+',
                        default=[1e4, 3e4, 1e5, 3e5, 1e6, 3e6, 1e7])
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--request', type=int, default=100)
    parser.add_argument('--fit-steps', type=int, default=30)
    parser.add_argument('--lr', type=float, default=0.05)
    parser.add_argument('--timed-steps', type=int, default=5)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [run_size(int(n), args) for n in args.sizes]
    report = {
        'command': 'python benchmarks/scaling.py ' + ' '.join(
            os.sys.argv[1:]),
        'machine': {
            'cpu': platform.processor() or platform.machine(),
            'threads': torch.get_num_threads(),
            'torch': torch.__version__,
        },
        'date': time.strftime('%Y-%m-%d'),
        'settings': vars(args),
        'rows': rows,
    }
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=2)
        model = 'MF' if args.layers == 0 else f'{args.layers}-layer LightGCN'
        plot(rows, os.path.splitext(args.out)[0] + '.png',
             f'Scaling on synthetic data, {model}, d={args.dim}')


if __name__ == '__main__':
    main()
