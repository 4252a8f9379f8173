r"""Unlearning a model from your own training loop.

PyG's LightGCN is trained with its own ``recommendation_loss`` in a plain
loop, as in PyG's LightGCN example (items offset by the number of users,
fresh uniform negatives every batch, ``node_id`` regularisation).  Ten
training interactions are then forgotten through the front door,
``from_training_loop``, and the certificate is checked.  To show what the
update is worth, the same loop is rerun without the ten interactions (same
seed, same batches and negatives minus theirs: the *paired retrain*), and
the forgotten pairs' score changes are compared: IFRU's, and those of
doing nothing but dropping the edges.

    python examples/own_training_loop.py --tiny --threads 1
    python examples/own_training_loop.py --data-dir ../shared/data  # ML-100K

``--tiny`` (or ``TGU_TINY=1``) runs on a synthetic graph in seconds.
"""
import argparse
import os
import time

import torch
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn import Recipe, from_training_loop
from torch_geometric_unlearn.data.datasets import movielens_100k, synthetic
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         score_change)

parser = argparse.ArgumentParser(
    formatter_class=argparse.ArgumentDefaultsHelpFormatter)
parser.add_argument('--data-dir', default=None,
                    help='folder holding ml-100k/ (else synthetic data)')
parser.add_argument('--tiny', action='store_true',
                    default=bool(os.environ.get('TGU_TINY')),
                    help='a small synthetic graph, seconds to run')
parser.add_argument('--lambda-reg', type=float, default=1e-4,
                    help="recommendation_loss's lambda_reg (PyG's default)")
parser.add_argument('--epochs', type=int, default=None,
                    help='training epochs (default: 20 tiny, 30 otherwise)')
parser.add_argument('--dim', type=int, default=64)
parser.add_argument('--threads', type=int, default=None,
                    help='torch.set_num_threads (1: bit-for-bit repeatable)')
args = parser.parse_args()
if args.threads is not None:
    torch.set_num_threads(args.threads)

if args.data_dir:
    data = movielens_100k(args.data_dir)
elif args.tiny:
    data = synthetic(200, 300, 5000, seed=0)
else:
    data = synthetic(1000, 1500, 30_000, seed=0)
epochs = args.epochs or (20 if args.tiny else 30)

# PyG's conventions: one homogeneous graph, items offset by num_users.
num_users, num_items = data.num_users, data.num_items
train_edge_label_index = torch.stack(
    [data.train_index[0], data.train_index[1] + num_users])
edge_index = torch.cat(
    [train_edge_label_index, train_edge_label_index.flip(0)], dim=1)
batch_size, lambda_reg = 1024, args.lambda_reg


def fit(edge_index, keep=None, seed=0):
    r"""The training loop of PyG's LightGCN example.  :obj:`keep` masks
    training pairs out of the same seeded stream (the paired retrain)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = LightGCN(num_users + num_items, args.dim, num_layers=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    num = train_edge_label_index.size(1)
    last_negatives = torch.empty(num, dtype=torch.long)
    for _ in range(epochs):
        order = torch.randperm(num, generator=gen)
        negatives = torch.randint(num_users, num_users + num_items, (num, ),
                                  generator=gen)
        for index in order.split(batch_size):
            if keep is not None:
                index = index[keep[index]]
            pos = train_edge_label_index[:, index]
            neg = torch.stack([pos[0], negatives[index]])
            edge_label_index = torch.cat([pos, neg], dim=1)
            pos_rank, neg_rank = model(edge_index,
                                       edge_label_index).chunk(2)
            loss = model.recommendation_loss(
                pos_rank, neg_rank, node_id=edge_label_index.unique(),
                lambda_reg=lambda_reg)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        last_negatives = negatives
    return model, optimizer, last_negatives


start = time.perf_counter()
model, optimizer, last_negatives = fit(edge_index)
train_seconds = time.perf_counter() - start
print(f'trained LightGCN on {data} for {epochs} epochs in '
      f'{train_seconds:.1f} s')

# The front door: the model, graph and loss as the loop used them.
recipe = Recipe(loss='bpr', lambda_reg=lambda_reg, batch_size=batch_size,
                node_id=True)
unlearner = from_training_loop(model, edge_index, num_users, recipe,
                               edge_label_index=train_edge_label_index,
                               negatives=last_negatives,
                               optimizer=optimizer)
gen = torch.Generator().manual_seed(1)
forget = train_edge_label_index[:, torch.randperm(
    train_edge_label_index.size(1), generator=gen)[:10]]
result = unlearner.unlearn(edge_index=forget)  # node ids, items offset
print(f"IFRU took {result.timings['total']:.2f} s "
      f"({train_seconds / result.timings['total']:.0f}x faster than "
      f"training)")
print(result.certificate)
if result.certificate.suspect:
    print('the certificate flags this update: check it before use')

# What it is worth: the forgotten pairs' score change against the paired
# retrain's.  Closure 1 = the retrain's change, 0 = no change at all.
keep = torch.ones(train_edge_label_index.size(1), dtype=torch.bool)
keep[torch.isin(train_edge_label_index[0] * (num_users + num_items) +
                train_edge_label_index[1],
                forget[0] * (num_users + num_items) + forget[1])] = False
retrain, _, _ = fit(result.edge_index, keep)
pairs = torch.stack([forget[0], forget[1] - num_users])
target = score_change(model, edge_index, retrain, result.edge_index, pairs,
                      num_users)
print('closure of the forgotten pairs\' score change to the paired '
      'retrain\'s (1 = the retrain, 0 = nothing; higher is better):')
for name, after in [('IFRU', result.model),
                    ('drop the edges (baseline)', model)]:
    change = score_change(model, edge_index, after, result.edge_index,
                          pairs, num_users)
    print(f'  {name:26} {change_closure(change, target):6.2f}')
