r"""Quick start: train PyG's LightGCN, forget 1% of its training
interactions with IFRU, and compare with retraining from scratch.

    python examples/quick_start.py \
        [--users 1000 --items 1500 --interactions 30000]
    python examples/quick_start.py --tiny   # 80 users, 120 items, seconds
"""
import argparse

import torch

from torch_geometric_unlearn import (IFRUnlearner, TrainConfig, build_model,
                                     train)
from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.evaluation.metrics import evaluate
from torch_geometric_unlearn.unlearn.baselines import RetrainUnlearner

parser = argparse.ArgumentParser()
parser.add_argument('--tiny', action='store_true',
                    help='a tiny graph (80 users, 120 items, 1500 '
                    'interactions) unless sizes are given (smoke test)')
parser.add_argument('--users', type=int, default=None,
                    help='default: 1000 (80 with --tiny)')
parser.add_argument('--items', type=int, default=None,
                    help='default: 1500 (120 with --tiny)')
parser.add_argument('--interactions', type=int, default=None,
                    help='default: 30000 (1500 with --tiny)')
parser.add_argument('--dim', type=int, default=64)
parser.add_argument('--threads', type=int, default=None,
                    help='torch.set_num_threads (1: bit-for-bit repeatable)')
args = parser.parse_args()
for name, tiny, full in (('users', 80, 1000), ('items', 120, 1500),
                         ('interactions', 1500, 30_000)):
    if getattr(args, name) is None:
        setattr(args, name, tiny if args.tiny else full)
if args.threads is not None:
    torch.set_num_threads(args.threads)

data = synthetic(args.users, args.items, args.interactions)
model = build_model(data, embedding_dim=args.dim, num_layers=2)  # LightGCN
config = TrainConfig(loss='bpr', l2=1.0, progress=False)
record = train(model, data, config)
print(f'trained on {data}: {record.epochs} epochs, {record.wall_time:.1f} s')

request = random_interactions(data, fraction=0.01, seed=0)  # [2, k] pairs

# IFRU updates the parameters; predict with the graph without the request.
unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         horizon=record.horizon)  # works on a copy
result = unlearner.unlearn(request)
print(f'certificate: {result.certificate}')

retrain = RetrainUnlearner(model, data, record.examples,
                           config=config).unlearn(request)

# Test metrics (higher is better) on the data after the request; dropping
# the edges and keeping the parameters is the do-nothing baseline.
rows = [('original (old graph)', model, data.edge_index, None),
        ('drop the edges (baseline)', model, result.edge_index, None),
        ('IFRU', result.model, result.edge_index, result.timings['total']),
        ('retrain from scratch', retrain.model, retrain.edge_index,
         retrain.timings['total'])]
print(f"{'':26} {'recall@20':>9} {'ndcg@20':>8} {'seconds':>8}")
for name, m, edge_index, seconds in rows:
    test = evaluate(m, result.data, adj=edge_index)
    took = '' if seconds is None else f'{seconds:.2f}'
    print(f"{name:26} {test['recall@20']:9.4f} {test['ndcg@20']:8.4f} "
          f"{took:>8}")
