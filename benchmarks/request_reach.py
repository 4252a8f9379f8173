r"""How much of the graph an exact request needs, independent of load: on
the synthetic graphs of ``request_cost.py`` (100 random interactions,
LightGCN-2), the share of the nodes within 0, 1 and 2 hops of the rows a
request solves for, and of the examples touching each ball, for the
default rows (the 90% most important candidates) and the request-local
ones (importance at least 1e-2).  The gradient of the rows needs every
example touching their 2-hop ball, so where that is every example no
exact gradient costs less than a whole-graph pass.

Example::

    python benchmarks/request_reach.py \
        --out benchmarks/results/request_reach.json
"""
import argparse
import json
import time

import torch

from torch_geometric_unlearn import IFRUnlearner, PruningConfig
from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.graph.region import affected_rows
from torch_geometric_unlearn.graph.tracer import SpilloverTracer
from torch_geometric_unlearn.training.trainer import build_model

ROWS = {'default': PruningConfig('quantile', 0.1),
        'local': PruningConfig('threshold', 1e-2)}


def reach(n: int) -> dict:
    data = synthetic(num_users=max(n // 30, 10), num_items=max(n // 20, 30),
                     num_interactions=n, seed=0)
    pairs = random_interactions(data, count=100, seed=0)
    # BPR triples whose negative is the positive item: the balls of the
    # graph's own pairs, without what sampled negatives add (74,772 default
    # rows at 10^6 here, 74,990 in request_cost.py).
    examples = torch.cat([data.train_index, data.train_index[1:]])
    unlearner = IFRUnlearner(build_model(data, 8, 2), data, examples, None,
                             1.0)
    request = unlearner._request(pairs)
    tracer = SpilloverTracer(data.edge_index, data.num_nodes)
    nodes = torch.cat([examples[:1], examples[1:] + data.num_users])
    out = {'interactions': n, 'nodes': data.num_nodes}
    for name, pruning in ROWS.items():
        rows = affected_rows(tracer, request, nodes, data.num_users, 2, 1,
                             pruning)[2]
        row = {'rows': rows.numel()}
        for hops in (0, 1, 2):
            ball = tracer.k_hop(rows, hops)
            row[f'{hops}_hop_nodes'] = float(ball.float().mean())
            row[f'{hops}_hop_examples'] = float(ball[nodes].any(0).float()
                                                .mean())
        out[name] = row
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=float, nargs='+',
                        default=[1e5, 1e6, 3e6])
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        rows.append(reach(int(n)))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump({'command': 'python benchmarks/request_reach.py',
                       'date': time.strftime('%Y-%m-%d'), 'rows': rows},
                      f, indent=2)


if __name__ == '__main__':
    main()
