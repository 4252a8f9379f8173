r"""The BPR products of :mod:`torch_geometric_unlearn.influence.bilinear`
against another copy of the package, in one process: building the loss
and its curvature, one Gauss-Newton product (float32, as the solve runs
it) and one gradient (float64, as the influence runs it), with the
largest difference of the results.  Also the whole Gauss-Newton product of
a LightGCN with two layers as the solve calls it
(:class:`~torch_geometric_unlearn.influence.curvature.PropagatedHessian`:
float64 vectors on 90% of the rows, both propagations, float32 products).

The examples are every training pair with one frozen negative, the
embeddings random (a product's cost does not depend on their values).
The other copy is imported as ``tgu_old`` from ``--old DIR``, e.g. the
commit before the pattern products::

    mkdir -p /tmp/head && git archive c911449 torch_geometric_unlearn | \
        tar -x -C /tmp/head && mv /tmp/head/torch_geometric_unlearn \
        /tmp/head/tgu_old && grep -rl torch_geometric_unlearn \
        /tmp/head/tgu_old | xargs sed -i s/torch_geometric_unlearn/tgu_old/g

Example::

    python benchmarks/bilinear_products.py --old /tmp/head --threads 1 \
        --out benchmarks/results/bilinear_products.json
"""
import argparse
import importlib
import json
import statistics
import sys
import time

import torch

import torch_geometric_unlearn
from torch_geometric_unlearn.data.datasets import load_dataset, synthetic
from torch_geometric_unlearn.data.interactions import (pair_keys,
                                                       sample_negatives)


def graph(name, data_dir):
    if name == 'ml-100k':
        return load_dataset('ml-100k', data_dir)
    n = int(float(name))
    return synthetic(num_users=n // 30, num_items=n // 20,
                     num_interactions=n, seed=0)


def measure(package, edge_index, examples, num_users, num_nodes, dim,
            repeats):
    gen = torch.Generator().manual_seed(0)
    final = 0.1 * torch.randn(num_nodes, dim, generator=gen)
    vec = torch.randn(num_nodes, dim, generator=gen)
    rows = torch.randperm(num_nodes, generator=gen)[:num_nodes * 9 // 10]
    rows = rows.sort()[0]
    prop = package.graph.propagation.LinearPropagation(
        edge_index, num_nodes, torch.full((3, ), 1 / 3), torch.float32)
    flat = vec[rows].double().reshape(-1)
    times = {'build': [], 'product': [], 'gradient': [],
             'propagated_product': []}
    for _ in range(repeats):
        start = time.perf_counter()
        loss = package.influence.bilinear.BilinearLoss(
            examples, None, num_users, num_nodes, torch.float32)
        curvature = loss.curvature(final, gauss_newton=True)
        times['build'].append(time.perf_counter() - start)
        start = time.perf_counter()
        product = curvature.matvec(vec)
        times['product'].append(time.perf_counter() - start)
        start = time.perf_counter()
        grad = loss.grad(final.double())
        times['gradient'].append(time.perf_counter() - start)
        operator = package.influence.curvature.PropagatedHessian(
            prop, final, rows, loss, 1.0, gauss_newton=True)
        start = time.perf_counter()
        whole = operator.matvec(flat)
        times['propagated_product'].append(time.perf_counter() - start)
    return ({k: statistics.median(v) for k, v in times.items()},
            (product, grad, whole))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--old', required=True,
                        help='folder holding the other copy as tgu_old')
    parser.add_argument('--graphs', nargs='+',
                        default=['ml-100k', '1e5', '1e6'])
    parser.add_argument('--data-dir', default='../shared/data')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, args.old)
    old = importlib.import_module('tgu_old')
    importlib.import_module('tgu_old.influence.curvature')
    importlib.import_module('tgu_old.graph.propagation')
    rows = []
    for name in args.graphs:
        data = graph(name, args.data_dir)
        pos = data.train_index
        neg = sample_negatives(pos, data.num_items,
                               pair_keys(pos, data.num_items).sort()[0],
                               torch.Generator().manual_seed(0))
        examples = torch.cat([pos, neg.view(1, -1)])
        shape = (data.edge_index, examples, data.num_users, data.num_nodes,
                 64, args.repeats)
        before, results_old = measure(old, *shape)
        after, results = measure(torch_geometric_unlearn, *shape)
        row = {'graph': name, 'examples': examples.size(1),
               'nodes': data.num_nodes, 'before': before, 'after': after,
               'speedup': {k: before[k] / after[k] for k in before}}
        for key, new, previous in zip(
                ('product', 'gradient', 'propagated_product'), results,
                results_old):
            row[key + '_difference'] = float(
                (new - previous).abs().max() / previous.abs().max())
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'command': 'python benchmarks/bilinear_products.py ' +
                       ' '.join(sys.argv[1:]),
                       'torch': torch.__version__,
                       'threads': torch.get_num_threads(),
                       'date': time.strftime('%Y-%m-%d'), 'rows': rows},
                      f, indent=2)


if __name__ == '__main__':
    main()
