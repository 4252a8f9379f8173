r"""How the L2 weight decides whether one influence step can follow a
retrain of a nonlinear GNN recommender.

On a small synthetic graph, for each L2 weight: train the 2-layer SAGE link
predictor or the to_hetero recommender of ``generic_ml100k.py``, converge
the fixed objective with and without 10 random interactions (theta_hat and
theta_hat', both by damped Newton from the trained model, float64), unlearn
from theta_hat with :class:`IFRUnlearner` (its autograd backend) and report

* the score closure on every user-item pair of the new graph (0: keeping
  theta_hat, 1: theta_hat'), with the default rows-only solve and with the
  shared weights free;
* the size of the move, ``|s(theta_hat') - s(theta_hat)|`` over
  ``|s(theta_hat)|``: a Newton step is exact only while the objective
  stays quadratic over this distance.

Example::

    python benchmarks/generic_l2_sweep.py --out benchmarks/results/generic_l2_sweep.json
"""
import argparse
import copy
import json
import sys
import time

import torch
from generic_ml100k import build

from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.evaluation.metrics import closure_ratio
from torch_geometric_unlearn.influence.objectives import ExampleObjective
from torch_geometric_unlearn.training.link import (converge_link_model,
                                                   train_link_model)
from torch_geometric_unlearn.training.trainer import TrainConfig
from torch_geometric_unlearn.unlearn.base import remaining_data
from torch_geometric_unlearn.unlearn.config import IFRUConfig
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner


def measure(kind, data, l2, args):
    torch.manual_seed(args.seed)
    model = build(kind, data, args.dim)
    record = train_link_model(model, data, TrainConfig(
        l2=l2, lr=0.01, batch_size=256, max_epochs=10, progress=False,
        seed=args.seed))
    model = model.double()
    ratio = converge_link_model(model, model.graph(data.train_positive_index),
                                ExampleObjective(record.examples), l2,
                                tol=1e-9)
    pairs = random_interactions(data, count=args.count, seed=args.seed)
    request = IFRUnlearner(model, data, record.examples, l2=l2,
                           copy_model=True)._request(pairs)
    after = remaining_data(data, request.train_mask)
    graph = model.graph(after.train_positive_index)
    target = copy.deepcopy(model)
    ratio_new = converge_link_model(
        target, graph, ExampleObjective(record.examples[:,
                                                        request.example_mask]),
        l2, tol=1e-9)
    grid = torch.cartesian_prod(torch.arange(data.num_users),
                                torch.arange(data.num_items)).t()

    def scores(m):
        with torch.no_grad():
            return m.eval()(graph, grid)

    s_hat, s_new = scores(model), scores(target)
    out = {'l2': l2, 'grad_ratio': [ratio, ratio_new],
           'relative_move': float((s_new - s_hat).norm() / s_hat.norm())}
    for name, config in [('rows', {}), ('shared', {'shared': True})]:
        result = IFRUnlearner(
            model, data, record.examples, l2=l2, copy_model=True,
            config=IFRUConfig(pruning=None, **config)).unlearn(pairs)
        out[f'closure_{name}'] = closure_ratio(scores(result.model), s_hat,
                                               s_new)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=['sage', 'hetero'])
    parser.add_argument('--l2', nargs='+', type=float,
                        default=[0.3, 1.0, 3.0, 10.0, 30.0])
    parser.add_argument('--dim', type=int, default=8)
    parser.add_argument('--count', type=int, default=10)
    parser.add_argument('--seeds', type=int, default=3)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = synthetic(60, 80, 2000, num_topics=4, seed=1)
    report = {'command': 'python benchmarks/generic_l2_sweep.py ' +
              ' '.join(sys.argv[1:]), 'dataset': repr(data),
              'date': time.strftime('%Y-%m-%d'), 'runs': []}
    for kind in args.models:
        for l2 in args.l2:
            for seed in range(args.seeds):
                args.seed = seed
                run = {'model': kind, 'seed': seed,
                       **measure(kind, data, l2, args)}
                print(json.dumps(run), flush=True)
                report['runs'].append(run)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
