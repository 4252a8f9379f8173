r"""Forget me: a user withdraws their history from a trained recommender.

Trains PyG's LightGCN on MovieLens-100K, forgets every training interaction
of one user with IFRU, and compares the result with retraining from scratch:
the user's own recommendations, those of the user most like them, test
metrics and the time each method took.

    python examples/forget_me.py --data-dir ../shared/data [--user 42]
    python examples/forget_me.py --tiny   # a small synthetic graph, seconds
"""
import argparse
import copy
import os.path as osp
import time

import torch

from torch_geometric_unlearn import (IFRUnlearner, TrainConfig, build_model,
                                     train)
from torch_geometric_unlearn.data.datasets import (data_root, load_dataset,
                                                   synthetic)
from torch_geometric_unlearn.data.deletion import random_users
from torch_geometric_unlearn.evaluation.metrics import evaluate
from torch_geometric_unlearn.unlearn.baselines import RetrainUnlearner

parser = argparse.ArgumentParser()
parser.add_argument('--data-dir', default=None,
                    help="folder holding 'ml-100k/' (default: $TGU_DATA_DIR)")
parser.add_argument('--tiny', action='store_true',
                    help='use a tiny synthetic graph instead (smoke test)')
parser.add_argument('--user', type=int, default=None,
                    help='the user to forget (default: a random one)')
parser.add_argument('--layers', type=int, default=2)
parser.add_argument('--dim', type=int, default=64)
parser.add_argument('--threads', type=int, default=None,
                    help='torch.set_num_threads (1: bit-for-bit repeatable)')
args = parser.parse_args()
if args.threads is not None:
    torch.set_num_threads(args.threads)

if args.tiny:
    data, titles = synthetic(80, 120, 1500), None
else:
    data = load_dataset('ml-100k', args.data_dir)
    # PyG's MovieLens100K numbers the movies in the order of 'u.item'.
    root = data_root(args.data_dir)
    folder = osp.join(root, 'ml-100k')
    path = osp.join(folder if osp.isdir(folder) else root, 'u.item')
    with open(path, encoding='latin-1') as f:
        titles = [line.split('|')[1] for line in f if line.strip()]


def name(item: int) -> str:
    return titles[item] if titles else f'item {item}'


@torch.no_grad()
def recommend(model, data, user: int, exclude: torch.Tensor, k: int = 5):
    r"""The user's top-k items with their scores, never recommending the
    items in :obj:`exclude` (the user's training items)."""
    emb = model.get_embedding(data.edge_index)
    score = emb[data.num_users:] @ emb[user]
    score[exclude] = -float('inf')
    top = score.topk(k)
    return list(zip(top.indices.tolist(), top.values.tolist()))


def show(title: str, recs):
    print(f'  {title}:')
    for item, score in recs:
        print(f'    {score:7.3f}  {name(item)}')


model = build_model(data, embedding_dim=args.dim, num_layers=args.layers)
config = TrainConfig(loss='bpr', l2=1.0, progress=False)
record = train(model, data, config)
print(f'trained LightGCN ({args.layers} layers, d={args.dim}) on {data}: '
      f'{record.epochs} epochs, {record.wall_time:.1f} s')

user = (int(random_users(data, 1)[0]) if args.user is None else args.user)
history = data.train_index[1, data.train_index[0] == user]
# The user who shares the most training items with the forgotten one: its
# recommendations show how forgetting spills over to others.
shared = data.train_index[0, torch.isin(data.train_index[1], history)]
shared = shared[shared != user]
neighbour = int(torch.bincount(shared, minlength=data.num_users).argmax())
neighbour_history = data.train_index[1, data.train_index[0] == neighbour]
print(f'user {user} asks to be forgotten: {history.numel()} training '
      f'interactions; user {neighbour} shares the most items with them')

# Forget every training interaction of the user; copy_model keeps the
# original for the comparison below.
unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         copy_model=True, horizon=record.horizon)
result = unlearner.unlearn(users=torch.tensor([user]))

start = time.perf_counter()
retrain = RetrainUnlearner(copy.deepcopy(model), data, record.examples,
                           l2=config.l2, config=config).unlearn(
                               users=torch.tensor([user]))
retrain_seconds = time.perf_counter() - start

print(f'\nuser {user}:')
show('before', recommend(model, data, user, history))
for label, out in (('IFRU', result), ('retrain', retrain)):
    # Without interactions or training examples, only the L2 term acts on
    # the user's row: its optimum is zero, which IFRU sets directly and
    # retraining approaches.  A zero row scores every item the same.
    row = out.model.embedding.weight[user].norm()
    print(f'  after {label}: embedding row norm {row:.3f}')

print(f'\nuser {neighbour}:')
for label, m, d in (('before', model, data), ('after IFRU', result.model,
                                              result.data),
                    ('after retrain', retrain.model, retrain.data)):
    show(label, recommend(m, d, neighbour, neighbour_history))

print('\ntest metrics (higher is better; "drop the edges" keeps the '
      'parameters on the new graph, the do-nothing baseline):')
for label, m, d, adj in (
        ('original', model, data, None),
        ('drop the edges', model, result.data, result.edge_index),
        ('IFRU', result.model, result.data, None),
        ('retrain', retrain.model, retrain.data, None)):
    scores = evaluate(m, d, adj=adj)
    print(f"  {label:14s} Recall@20 {scores['recall@20']:.4f}  "
          f"NDCG@20 {scores['ndcg@20']:.4f}")

total = result.timings['total']
phases = ', '.join(f'{k} {v:.2f} s' for k, v in result.timings.items()
                   if k != 'total')
print(f'\nIFRU took {total:.2f} s ({phases}); retraining took '
      f'{retrain_seconds:.2f} s, {retrain_seconds / total:.0f}x longer')
diagnostics = result.diagnostics
print(f"  {diagnostics['deleted_edges']} deleted edges, "
      f"{diagnostics['changed_examples']} training examples changed by "
      f"spillover, {diagnostics['solve_rows']} embedding rows solved for, "
      f"{diagnostics['zeroed_rows']} set to zero")
print(f'  certificate: {result.certificate}')
