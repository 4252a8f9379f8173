r"""Forget interactions from a homogeneous GNN link predictor: learned user
and item embeddings, two GCNConv or SAGEConv layers, a dot-product decoder.

    python examples/gnn_link_predictor.py [--conv sage] [--tiny]

``--tiny`` (or ``TGU_TINY=1``) runs on a few hundred interactions in
seconds.
"""
import argparse
import copy
import os
import time

import torch
from torch_geometric.nn import GCNConv, SAGEConv

from torch_geometric_unlearn import IFRUnlearner
from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.models import LinkModel
from torch_geometric_unlearn.training.link import (evaluate_link_model,
                                                   train_link_model)
from torch_geometric_unlearn.training.trainer import TrainConfig

parser = argparse.ArgumentParser()
parser.add_argument('--conv', choices=['gcn', 'sage'], default='gcn')
parser.add_argument('--dim', type=int, default=32)
parser.add_argument('--tiny', action='store_true',
                    default=bool(os.environ.get('TGU_TINY')))
parser.add_argument('--threads', type=int, default=None,
                    help='torch.set_num_threads (1: bit-for-bit repeatable)')
args = parser.parse_args()
if args.threads is not None:
    torch.set_num_threads(args.threads)


class GNN(torch.nn.Module):
    def __init__(self, num_nodes, dim, conv):
        super().__init__()
        self.emb = torch.nn.Embedding(num_nodes, dim)
        self.conv1, self.conv2 = conv(dim, dim), conv(dim, dim)

    def encode(self, edge_index):  # graph -> node embeddings
        x = self.conv1(self.emb.weight, edge_index).tanh()
        return self.conv2(x, edge_index)

    def decode(self, z, edge_label_index):  # embeddings, pairs -> scores
        return (z[edge_label_index[0]] * z[edge_label_index[1]]).sum(-1)


data = (synthetic(60, 80, 1000, seed=0) if args.tiny else
        synthetic(1000, 1500, 30_000, seed=0))
conv = GCNConv if args.conv == 'gcn' else SAGEConv
# Users are nodes 0..num_users-1, items follow (as in PyG's LightGCN).
model = LinkModel(GNN(data.num_nodes, args.dim, conv), data.num_users,
                  data.num_items, encode='encode', decode='decode')
print(model)  # the embedding table is found as a node-indexed parameter
config = TrainConfig(loss='bpr', l2=1.0, lr=0.01, patience=3,
                     max_epochs=10 if args.tiny else 100, progress=False)
record = train_link_model(model, data, config)
print(f'trained on {data}: {record.epochs} epochs, '
      f'{record.wall_time:.1f} s')

request = random_interactions(data, fraction=0.01, seed=0)
unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         copy_model=True)
result = unlearner.unlearn(request)
solver = result.diagnostics['solver'][0]
print(f"IFRU: {result.timings['total']:.2f} s, {solver.iterations} CG "
      f"iterations, residual {solver.residual:.1e}, {solver.message}")
# The model now predicts on the graph without the forgotten interactions.
print('  test', evaluate_link_model(result.model, result.data))

start = time.perf_counter()
retrained = copy.deepcopy(model)
train_link_model(retrained, result.data, config)
print(f'retrain: {time.perf_counter() - start:.2f} s')
print('  test', evaluate_link_model(retrained, result.data))
