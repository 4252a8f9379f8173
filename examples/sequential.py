r"""Sequential requests: one unlearner serves deletion requests as they come.

Each successful request moves the unlearner's state forward: its graph,
training pairs and examples lose the forgotten interactions, and the next
request starts from there.  A request that names interactions forgotten
before raises :class:`AlreadyForgottenError` and changes nothing.  At the
end, the model is compared with one retrained from scratch on what is left.

    python examples/sequential.py --data-dir ../shared/data
    python examples/sequential.py --tiny   # a small synthetic graph, seconds
"""
import argparse

import torch

from torch_geometric_unlearn import (AlreadyForgottenError, IFRUnlearner,
                                     TrainConfig, build_model, train)
from torch_geometric_unlearn.data.datasets import load_dataset, synthetic
from torch_geometric_unlearn.data.deletion import (random_interactions,
                                                   random_items, random_users)
from torch_geometric_unlearn.evaluation.metrics import evaluate

parser = argparse.ArgumentParser()
parser.add_argument('--data-dir', default=None,
                    help="folder holding 'ml-100k/' (default: $TGU_DATA_DIR)")
parser.add_argument('--tiny', action='store_true',
                    help='use a tiny synthetic graph instead (smoke test)')
parser.add_argument('--layers', type=int, default=2)
parser.add_argument('--dim', type=int, default=64)
parser.add_argument('--threads', type=int, default=None,
                    help='torch.set_num_threads (1: bit-for-bit repeatable)')
args = parser.parse_args()
if args.threads is not None:
    torch.set_num_threads(args.threads)

data = (synthetic(80, 120, 1500)
        if args.tiny else load_dataset('ml-100k', args.data_dir))
model = build_model(data, embedding_dim=args.dim, num_layers=args.layers)
config = TrainConfig(loss='bpr', l2=1.0, progress=False)
record = train(model, data, config)
print(f'trained LightGCN ({args.layers} layers, d={args.dim}) on {data}: '
      f'{record.epochs} epochs, {record.wall_time:.1f} s\n')

unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         copy_model=True, horizon=record.horizon)


def forget(what: str, **request):
    before = unlearner.edge_index.size(1)
    result = unlearner.unlearn(**request)
    print(f'{what}: forgot {result.request.size(1)} interactions in '
          f"{result.timings['total']:.2f} s; graph "
          f'{before} -> {result.edge_index.size(1)} directed edges')
    print(f'  certificate: {result.certificate}')
    return result


# Draw each request from the unlearner's current data: what earlier
# requests forgot is no longer there to ask for.
pairs = random_interactions(unlearner.data, fraction=0.005, seed=0)
forget('0.5% random interactions', interactions=pairs)
users = random_users(unlearner.data, 3, seed=1)
forget(f'users {users.tolist()}', users=users)
items = random_items(unlearner.data, 1, seed=2)
forget(f'item {items.tolist()}', items=items)
# PyG's own edge format works too: homogeneous node pairs, items offset by
# the number of users, in either direction.
edges = unlearner.edge_index[:, -5:]
forget('5 edges of edge_index', edge_index=edges)

# Asking again is an error, and the state stays as it was.
for what, request in (('the random interactions', {'interactions': pairs}),
                      ('the users', {'users': users})):
    num_train = unlearner.data.num_train
    try:
        unlearner.unlearn(**request)
    except AlreadyForgottenError as error:
        assert unlearner.data.num_train == num_train
        print(f'forgetting {what} again: AlreadyForgottenError: {error}')

print(f'\n{data.num_train - unlearner.data.num_train} training interactions '
      f'forgotten in all; retraining from scratch on the remaining '
      f'{unlearner.data.num_train} ...')
retrained = build_model(data, embedding_dim=args.dim, num_layers=args.layers)
retrain_record = train(retrained, unlearner.data, config)
print(f'retrained in {retrain_record.wall_time:.1f} s\n')
for name, m, d in (('original', model, data),
                   ('unlearned', unlearner.model, unlearner.data),
                   ('retrained', retrained, unlearner.data)):
    scores = evaluate(m, d)
    print(f"{name:9s} Recall@20 {scores['recall@20']:.4f}  "
          f"NDCG@20 {scores['ndcg@20']:.4f}")
