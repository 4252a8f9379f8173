r"""Forget interactions from a heterogeneous recommender: user and item
embeddings and a ``to_hetero`` SAGE encoder over ``('user', 'rates',
'item')`` and its reverse, the shape of PyG's
``examples/hetero/recommender_system.py``.

    python examples/hetero_recommender.py [--tiny]

``--tiny`` (or ``TGU_TINY=1``) runs on a few hundred interactions in
seconds.
"""
import argparse
import copy
import os
import time

import torch
from torch_geometric.data import HeteroData
from torch_geometric.nn import SAGEConv, to_hetero

from torch_geometric_unlearn import IFRUnlearner
from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.models import HeteroLinkModel
from torch_geometric_unlearn.training.link import (evaluate_link_model,
                                                   train_link_model)
from torch_geometric_unlearn.training.trainer import TrainConfig

parser = argparse.ArgumentParser()
parser.add_argument('--dim', type=int, default=32)
parser.add_argument('--tiny', action='store_true',
                    default=bool(os.environ.get('TGU_TINY')))
parser.add_argument('--threads', type=int, default=None,
                    help='torch.set_num_threads (1: bit-for-bit repeatable)')
args = parser.parse_args()
if args.threads is not None:
    torch.set_num_threads(args.threads)

data = (synthetic(60, 80, 1000, seed=0) if args.tiny else
        synthetic(1000, 1500, 30_000, seed=0))

# The graph's node types, with item features; the interactions themselves
# come from `data` (the unlearner rebuilds both edge types from them).
graph = HeteroData()
graph['user'].num_nodes = data.num_users
graph['item'].x = torch.randn(data.num_items, 8)  # e.g. genre features
graph['user', 'rates', 'item'].edge_index = data.train_index
graph['item', 'rev_rates', 'user'].edge_index = data.train_index.flip(0)


class Encoder(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv1, self.conv2 = SAGEConv(dim, dim), SAGEConv(dim, dim)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).tanh(), edge_index)


class Recommender(torch.nn.Module):
    def __init__(self, num_users, num_items, dim):
        super().__init__()
        self.user_emb = torch.nn.Embedding(num_users, dim)
        self.item_emb = torch.nn.Embedding(num_items, dim)
        self.item_lin = torch.nn.Linear(8, dim)
        self.encoder = to_hetero(Encoder(dim), graph.metadata(), aggr='sum')

    def forward(self, x_dict, edge_index_dict, edge_label_index):
        x_dict = {
            'user': self.user_emb.weight,
            'item': self.item_emb.weight + self.item_lin(x_dict['item']),
        }
        z_dict = self.encoder(x_dict, edge_index_dict)
        row, col = edge_label_index
        return (z_dict['user'][row] * z_dict['item'][col]).sum(-1)


model = HeteroLinkModel(Recommender(data.num_users, data.num_items,
                                    args.dim), graph,
                        edge_type=('user', 'rates', 'item'))
print(model)  # user_emb -> 'user', item_emb -> 'item'; 2 hops
config = TrainConfig(loss='bpr', l2=1.0, lr=0.01, patience=3,
                     max_epochs=10 if args.tiny else 100, progress=False)
record = train_link_model(model, data, config)
print(f'trained on {data}: {record.epochs} epochs, '
      f'{record.wall_time:.1f} s')

# A request names (user, item) pairs of ('user', 'rates', 'item'); both
# directions leave the graph.
request = random_interactions(data, fraction=0.01, seed=0)
unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         copy_model=True)
result = unlearner.unlearn(request)
solver = result.diagnostics['solver'][0]
print(f"IFRU: {result.timings['total']:.2f} s, {solver.iterations} CG "
      f"iterations, residual {solver.residual:.1e}, {solver.message}")
edge_index_dict = result.model.graph(result.data.train_positive_index)
print('  edges', {k: v.size(1) for k, v in edge_index_dict.items()})
print('  test', evaluate_link_model(result.model, result.data))

start = time.perf_counter()
retrained = copy.deepcopy(model)
train_link_model(retrained, result.data, config)
print(f'retrain: {time.perf_counter() - start:.2f} s')
print('  test', evaluate_link_model(retrained, result.data))
