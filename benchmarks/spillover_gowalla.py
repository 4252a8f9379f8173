r"""Spillover tracing and pruning on Gowalla (LightGCN, 3 hops).

For random deletion requests of 10, 100 and 1% of the training interactions
and pruning quantiles 0, 0.4 and 0.8, reports the time to trace and prune
(median of repeats, tracer already built) and the sizes of the direct,
spillover and solve regions, the changed examples and the kept nodes.

The examples are the training pairs as BPR triples :obj:`(u, i, j)` with one
uniformly random negative item :obj:`j` per pair that the user has not
interacted with.

    python benchmarks/spillover_gowalla.py --data-dir /work/shared/data
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import sys
import time

import torch
import torch_geometric

# Runs from a checkout without installing the package.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from torch_geometric_unlearn.data.interactions import (  # noqa: E402
    pair_keys, to_undirected_homogeneous)
from torch_geometric_unlearn.graph.spillover import \
    SpilloverTracer  # noqa: E402


def read_gowalla_train(data_dir):
    r"""Reads :obj:`gowalla/train.txt` (one line per user:
    :obj:`user item item ...`) into user-item pairs :obj:`[2, N]`."""
    users, items = [], []
    with open(osp.join(data_dir, 'gowalla', 'train.txt')) as f:
        for line in f:
            ids = [int(x) for x in line.split()]
            users.extend(ids[:1] * (len(ids) - 1))
            items.extend(ids[1:])
    pairs = torch.tensor([users, items])
    return pairs, int(pairs[0].max()) + 1, int(pairs[1].max()) + 1


def sample_negatives(pairs, num_items, gen):
    r"""One uniformly random item per pair, resampled until it is not a
    positive of the pair's user."""
    positive = pair_keys(pairs, num_items)
    positive = positive.sort().values
    neg = torch.randint(num_items, (pairs.size(1), ), generator=gen)
    while True:
        key = pairs[0] * num_items + neg
        pos = torch.searchsorted(positive, key).clamp_max(positive.numel() - 1)
        clash = (positive[pos] == key).nonzero().view(-1)
        if clash.numel() == 0:
            return neg
        neg[clash] = torch.randint(num_items, (clash.numel(), ), generator=gen)


def median_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-dir', default=os.environ.get('TGU_DATA_DIR'),
                        help='folder holding gowalla/train.txt')
    parser.add_argument('--out',
                        default='benchmarks/results/spillover_gowalla.json')
    parser.add_argument('--num-hops', type=int, default=3)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--backend', default=None,
                        choices=['torch', 'torch_sparse'])
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch\'s own)')
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error('pass --data-dir or set $TGU_DATA_DIR')
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    pairs, num_users, num_items = read_gowalla_train(args.data_dir)
    num_nodes = num_users + num_items
    edge_index = to_undirected_homogeneous(pairs, num_users)
    gen = torch.Generator().manual_seed(args.seed)
    negatives = sample_negatives(pairs, num_items, gen)
    examples = torch.stack([pairs[0], pairs[1] + num_users,
                            negatives + num_users])
    print(f'Gowalla: {num_users} users, {num_items} items, '
          f'{pairs.size(1)} training pairs, {edge_index.size(1)} directed '
          f'edges; {examples.size(1)} BPR triples; {args.num_hops} hops; '
          f'{torch.get_num_threads()} threads')

    build_time, tracer = median_time(
        lambda: SpilloverTracer(edge_index, num_nodes, args.backend),
        args.repeats)
    print(f'backend {tracer.backend}: building the tracer took '
          f'{build_time:.3f} s (median of {args.repeats})\n')

    sizes = [10, 100, round(0.01 * pairs.size(1))]
    rows = []
    header = (f"{'request':>8} {'quantile':>8} {'time (s)':>9} "
              f"{'direct':>7} {'spillover':>9} {'solve':>7} "
              f"{'changed ex.':>11} {'kept':>7}")
    print(header)
    print('-' * len(header))
    for size in sizes:
        drop = torch.randperm(pairs.size(1), generator=gen)[:size]
        deleted = torch.stack([pairs[0, drop], pairs[1, drop] + num_users])
        for quantile in (0.0, 0.4, 0.8):
            seconds, result = median_time(
                lambda: tracer.trace(deleted, args.num_hops, examples,
                                     ('quantile', quantile)), args.repeats)
            row = dict(request=size, quantile=quantile, seconds=seconds,
                       **result.sizes())
            rows.append(row)
            print(f"{size:>8} {quantile:>8.1f} {seconds:>9.3f} "
                  f"{row['direct_nodes']:>7} {row['spillover_nodes']:>9} "
                  f"{row['solve_nodes']:>7} {row['changed_examples']:>11} "
                  f"{row['kept_nodes']:>7}")

    report = dict(
        dataset='gowalla', num_users=num_users, num_items=num_items,
        num_nodes=num_nodes, num_train_pairs=pairs.size(1),
        num_directed_edges=edge_index.size(1),
        examples='BPR triples, one random non-positive negative per pair',
        num_examples=examples.size(1), num_hops=args.num_hops,
        seed=args.seed, repeats=args.repeats, backend=tracer.backend,
        build_seconds=build_time, threads=torch.get_num_threads(),
        torch=torch.__version__, torch_geometric=torch_geometric.__version__,
        machine=platform.machine(), processor=platform.processor(),
        timing='median wall-clock seconds of SpilloverTracer.trace '
        '(trace + importance + pruning), tracer already built',
        rows=rows)
    os.makedirs(osp.dirname(args.out) or '.', exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(report, f, indent=2)
    print(f'\nwrote {args.out}')


if __name__ == '__main__':
    main()
