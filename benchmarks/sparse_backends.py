r"""torch-sparse and torch-scatter against the torch-only path, on the same
work: the spillover trace, LightGCN's propagation, a training step and one
unlearning request.  Run in an environment with both installed (the
``full`` extra); every pair of rows is timed in one process, alternating,
median over ``--repeats``.

* **trace**: :meth:`SpilloverTracer.trace` of a 100-interaction request,
  2 hops, on the ``torch_sparse`` backend (the default when installed)
  against ``torch`` (CSR).
* **propagation**: :meth:`LightGCN.get_embedding` on a ``SparseTensor``
  ``adj_t`` against a torch CSR matrix and against ``edge_index``
  (gather-scatter, which uses torch-scatter when installed).
* **training step**: forward and backward of
  :meth:`LightGCN.recommendation_loss` on a batch of 2,048 triples over
  each adjacency form; an epoch is this times the number of batches.
* **request**: :meth:`IFRUnlearner.unlearn` of the 100 interactions with
  the tracer on each backend.

Example::

    python benchmarks/sparse_backends.py --data-dir ../shared/data \
        --threads 1 --out benchmarks/results/sparse_backends.json
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch_geometric.typing
from torch_geometric.nn import LightGCN

import torch_geometric_unlearn.graph.cache as graph_cache
from torch_geometric_unlearn import IFRUnlearner
from torch_geometric_unlearn.data.datasets import load_dataset
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.interactions import (pair_keys,
                                                       sample_negatives)
from torch_geometric_unlearn.graph.adjacency import as_form
from torch_geometric_unlearn.graph.spillover import SpilloverTracer
from torch_geometric_unlearn.training.trainer import TrainConfig


def median_time(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(calls, repeats):
    # Alternating, so that load on the box falls on every row alike.
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def run(name, args):
    data = load_dataset(name, args.data_dir)
    n = data.num_nodes
    edge_index = data.edge_index
    pairs = random_interactions(data, count=100, seed=0)
    deleted = torch.stack([pairs[0], pairs[1] + data.num_users])
    deleted = torch.cat([deleted, deleted.flip(0)], 1)
    row = {'data': repr(data), 'edges': edge_index.size(1)}

    tracers = {b: SpilloverTracer(edge_index, n, backend=b)
               for b in ('torch_sparse', 'torch')}
    row['trace_seconds'] = compare(
        {b: (lambda t=t: t.trace(deleted, 2)) for b, t in tracers.items()},
        args.repeats)

    torch.manual_seed(0)
    model = LightGCN(n, 64, 2)
    forms = {'SparseTensor': as_form(edge_index, 'SparseTensor', n),
             'sparse_csr': as_form(edge_index, 'sparse_csr', n),
             'edge_index': edge_index}
    with torch.no_grad():
        row['propagation_seconds'] = compare(
            {f: (lambda a=a: model.get_embedding(a))
             for f, a in forms.items()}, args.repeats)

    gen = torch.Generator().manual_seed(0)
    pos = data.train_index[:, torch.randperm(data.num_train,
                                             generator=gen)[:2048]]
    neg = torch.randint(data.num_items, (2048, ), generator=gen)
    eli = torch.cat([torch.stack([pos[0], pos[1] + data.num_users]),
                     torch.stack([pos[0], neg + data.num_users])], 1)

    def step(adj):
        pos_rank, neg_rank = model(adj, eli).chunk(2)
        loss = model.recommendation_loss(pos_rank, neg_rank,
                                         lambda_reg=1e-4)
        model.zero_grad()
        loss.backward()

    batches = -(-data.num_train // 2048)
    steps = compare({f: (lambda a=a: step(a)) for f, a in forms.items()},
                    args.repeats)
    row['training_step_seconds'] = steps
    row['epoch_seconds_estimate'] = {f: s * batches
                                     for f, s in steps.items()}

    neg_all = sample_negatives(data.train_index, data.num_items,
                               pair_keys(data.train_index,
                                         data.num_items).sort()[0], gen)
    examples = torch.cat([data.train_index, neg_all.view(1, -1)])
    l2 = TrainConfig().l2
    times = {}
    for backend in ('torch_sparse', 'torch'):
        original = graph_cache.SpilloverTracer

        def tracer(*a, backend=backend, **k):
            return original(*a, backend=backend, **k)

        graph_cache.SpilloverTracer = tracer
        try:
            times[backend] = median_time(
                lambda: IFRUnlearner(model, data, examples, l2=l2)
                .unlearn(pairs), args.repeats)
        finally:
            graph_cache.SpilloverTracer = original
    row['request_seconds'] = times
    print(name, json.dumps({k: v for k, v in row.items()}), flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', default='../shared/data')
    parser.add_argument('--datasets', nargs='+',
                        default=['ml-100k', 'gowalla'])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    if not (torch_geometric.typing.WITH_TORCH_SPARSE and
            torch_geometric.typing.WITH_TORCH_SCATTER):
        sys.exit('needs torch-sparse and torch-scatter installed')
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {
        'command': 'python benchmarks/sparse_backends.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'date': time.strftime('%Y-%m-%d'),
        'machine': {'cpu_count': os.cpu_count(),
                    'threads': torch.get_num_threads(),
                    'torch': torch.__version__},
        'rows': {name: run(name, args) for name in args.datasets},
    }
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
