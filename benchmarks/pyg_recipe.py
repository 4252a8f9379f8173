r"""Unlearning a model trained by PyG's own recipe: ``LightGCN`` with
``recommendation_loss`` in a plain loop (items offset by the number of
users, uniform negatives every batch, ``lambda_reg``, with or without
``node_id``), as in PyG's LightGCN example.

For each ``lambda_reg`` the loop trains once; a request is then forgotten

* through the front door (``from_training_loop`` with the optimiser and the
  last epoch's negatives): the default, the trajectory step;
* the same with three snapshots of the run (a ``TrajectoryRecorder``), the
  step then following the run a segment at a time;
* the same without the optimiser (horizon read off the gradient);
* the way a user had to before the front door: ``IFRUnlearner`` with
  ``l2 = 2 * lambda_reg`` (the weight on a full batch), seeded negatives and
  the Newton step that was the default then;
* by dropping the edges (the do-nothing baseline);

and compared with the **paired retrain**: the same loop from the same seed
on the same stream of batches and negatives without the request.  Closure
of the forgotten pairs' score changes: 1 = the paired retrain's, 0 = no
change, higher is better.  Each run keeps its paired change
(``paired_change``), so that two seeds' files give the noise floor, the
same closure between the seeds' paired changes
(:func:`~torch_geometric_unlearn.evaluation.fidelity.noise_floor`).

    python benchmarks/pyg_recipe.py --data-dir ../shared/data --threads 1 \
        --lambda-reg 1e-4 --out benchmarks/results/pyg_recipe/ml100k_1e-4.json
"""
import argparse
import json
import time

import torch
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn import (IFRUConfig, IFRUnlearner, Recipe,
                                     TrajectoryRecorder, from_training_loop)
from torch_geometric_unlearn.data.datasets import movielens_100k, synthetic
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         score_change)
from torch_geometric_unlearn.influence import SolverError

parser = argparse.ArgumentParser(
    description=__doc__.split('\n\n')[0],
    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument('--data-dir', default=None,
                    help='folder holding ml-100k/ (else synthetic data)')
parser.add_argument('--lambda-reg', type=float, nargs='+',
                    default=[1e-4, 1e-2])
parser.add_argument('--node-id', type=int, nargs='+', default=[1, 0],
                    help='1: node_id=edge_label_index.unique(), 0: none')
parser.add_argument('--request', type=int, default=720,
                    help='random training interactions to forget (720 is '
                         '1%% of MovieLens-100K)')
parser.add_argument('--epochs', type=int, default=30)
parser.add_argument('--dim', type=int, default=64)
parser.add_argument('--batch-size', type=int, default=2048)
parser.add_argument('--lr', type=float, default=5e-3)
parser.add_argument('--seed', type=int, default=0,
                    help='seed of the original run and its paired retrain')
parser.add_argument('--threads', type=int, default=1)
parser.add_argument('--out', default=None, help='JSON file to write')
args = parser.parse_args()
torch.set_num_threads(args.threads)

data = (movielens_100k(args.data_dir) if args.data_dir else
        synthetic(1000, 1500, 30_000, seed=0))
num_users, num_items = data.num_users, data.num_items
pos_index = torch.stack([data.train_index[0],
                         data.train_index[1] + num_users])
edge_index = torch.cat([pos_index, pos_index.flip(0)], 1)
num = pos_index.size(1)


def fit(edge_index, lambda_reg, node_id, keep=None, seed=0):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = LightGCN(num_users + num_items, args.dim, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    recorder = TrajectoryRecorder(model.embedding.weight, optimizer, 3)
    for _ in range(args.epochs):
        order = torch.randperm(num, generator=gen)
        negatives = torch.randint(num_users, num_users + num_items, (num, ),
                                  generator=gen)
        for index in order.split(args.batch_size):
            if keep is not None:
                index = index[keep[index]]
            pos = pos_index[:, index]
            label_index = torch.cat(
                [pos, torch.stack([pos[0], negatives[index]])], 1)
            pos_rank, neg_rank = model(edge_index, label_index).chunk(2)
            loss = model.recommendation_loss(
                pos_rank, neg_rank, lambda_reg=lambda_reg,
                node_id=label_index.unique() if node_id else None)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        recorder.snapshot()
    return model, optimizer, negatives, recorder


gen = torch.Generator().manual_seed(100)
chosen = torch.randperm(num, generator=gen)[:args.request]
forget = pos_index[:, chosen]
keep = torch.ones(num, dtype=torch.bool)
keep[chosen] = False
pairs = torch.stack([forget[0], forget[1] - num_users])
new_edge_index = torch.cat([pos_index[:, keep], pos_index[:, keep].flip(0)],
                           1)
report = {'data': repr(data), 'args': vars(args), 'runs': []}

for lambda_reg in args.lambda_reg:
    for node_id in args.node_id:
        start = time.perf_counter()
        model, optimizer, last, recorder = fit(edge_index, lambda_reg,
                                               node_id, seed=args.seed)
        train_time = time.perf_counter() - start
        start = time.perf_counter()
        paired = fit(new_edge_index, lambda_reg, node_id, keep,
                     seed=args.seed)[0]
        paired_time = time.perf_counter() - start
        target = score_change(model, edge_index, paired, new_edge_index,
                              pairs, num_users)
        recipe = Recipe(lambda_reg=lambda_reg, batch_size=args.batch_size,
                        node_id=bool(node_id))
        methods = {
            'front door': lambda: from_training_loop(
                model, edge_index, num_users, recipe,
                edge_label_index=pos_index, negatives=last,
                optimizer=optimizer),
            'front door, 3 snapshots': lambda: from_training_loop(
                model, edge_index, num_users, recipe,
                edge_label_index=pos_index, negatives=last,
                optimizer=optimizer, trajectory=recorder),
            'front door, no optimiser': lambda: from_training_loop(
                model, edge_index, num_users, recipe,
                edge_label_index=pos_index, negatives=last),
            'before: l2=2*lambda_reg, Newton': lambda: IFRUnlearner(
                model, data, from_training_loop(
                    model, edge_index, num_users, recipe).examples,
                l2=2 * lambda_reg, config=IFRUConfig(step='newton')),
        }
        run = {'lambda_reg': lambda_reg, 'node_id': bool(node_id),
               'train_seconds': train_time, 'paired_seconds': paired_time,
               'paired_change': target.tolist(), 'methods': {}}

        for name, build in methods.items():
            try:
                result = build().unlearn(edge_index=forget)
            except SolverError as error:
                run['methods'][name] = {'error': str(error)}
                print(f'lambda_reg {lambda_reg:g} node_id {node_id} {name}: '
                      f'{error}')
                continue
            change = score_change(model, edge_index, result.model,
                                  result.edge_index, pairs, num_users)
            cert = result.certificate
            run['methods'][name] = {
                'closure': change_closure(change, target),
                'seconds': result.timings['total'],
                'certificate': str(cert), 'flags': cert.flags,
                'objective': result.diagnostics.get('objective')}
        change = score_change(model, edge_index, model, new_edge_index,
                              pairs, num_users)
        run['methods']['drop the edges'] = {
            'closure': change_closure(change, target)}
        report['runs'].append(run)
        print(f'lambda_reg {lambda_reg:g}, node_id {bool(node_id)}: '
              f'train {train_time:.0f} s')
        for name, entry in run['methods'].items():
            if 'closure' in entry:
                speed = (f", {paired_time / entry['seconds']:.0f}x faster "
                         f"than the paired retrain"
                         if 'seconds' in entry else '')
                print(f"  {name:34} closure {entry['closure']:6.2f}{speed}")
        if args.out:  # after every run: a long benchmark keeps its figures
            with open(args.out, 'w') as f:
                json.dump(report, f, indent=1)
