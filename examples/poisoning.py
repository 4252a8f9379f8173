r"""Poisoning removal: unlearn fake users that promote a few items.

A promotion (bandwagon shilling) attack: fake users, appended after the
real ones, each interact with a few target items and with a few popular
"filler" items, so that the targets look like what popular items' fans
like.  PyG's LightGCN is trained on the poisoned data; the fake
interactions are then forgotten with IFRU, and compared with

* the clean model, trained without the attack (where the targets were),
* retraining from scratch on the data without the fake interactions (what
  unlearning approximates), and
* dropping the edges: the poisoned model, parameters unchanged, predicting
  with the graph without the fake interactions (the do-nothing baseline).

The attack shows in the targets' hit ratio (the share of real users with a
target in their top-20) and top-20 share (the share of real users' top-20
slots the targets take), training items excluded: higher means the attack
works.  Unlearning should bring both back down to the clean/retrained
level; "lift removed" is the share of the poisoned model's lift over the
clean one that each method undid (100% = back at the clean level).

    python examples/poisoning.py --data-dir ../shared/data
    python examples/poisoning.py --tiny   # a small synthetic graph, seconds
"""
import argparse
import time

import torch

from torch_geometric_unlearn import (IFRUnlearner, TrainConfig, build_model,
                                     train)
from torch_geometric_unlearn.data.datasets import load_dataset, synthetic
from torch_geometric_unlearn.data.deletion import inject_fake_users
from torch_geometric_unlearn.evaluation.metrics import (evaluate, hit_ratio,
                                                        top_k_share)
from torch_geometric_unlearn.unlearn.baselines import RetrainUnlearner

parser = argparse.ArgumentParser()
parser.add_argument('--data-dir', default=None,
                    help="folder holding 'ml-100k/' (default: $TGU_DATA_DIR)")
parser.add_argument('--tiny', action='store_true',
                    help='use a small synthetic graph instead (seconds)')
parser.add_argument('--fake-users', type=float, default=None,
                    help='fake users, as a fraction of the real ones '
                    '(default: 0.15 with --tiny, else 0.2)')
parser.add_argument('--targets', type=int, default=None,
                    help='items the attack promotes (default: 3 with --tiny, '
                    'else 5)')
parser.add_argument('--fillers', type=int, default=None,
                    help='popular items each fake user also interacts with '
                    '(default: 5 with --tiny, else 20)')
parser.add_argument('--layers', type=int, default=2)
parser.add_argument('--dim', type=int, default=None,
                    help='embedding size (default: 32 with --tiny, else 64)')
parser.add_argument('--lr', type=float, default=0.001,
                    help="the trainer's learning rate")
parser.add_argument('--seed', type=int, default=0,
                    help='seed of the attack and of training')
parser.add_argument('--threads', type=int, default=None,
                    help='torch.set_num_threads (1: bit-for-bit repeatable)')
args = parser.parse_args()
# --tiny scales the attack down with the graph (200 real users, 400
# items): 30 fake users on 3 targets lift them clearly in seconds.
for name, tiny, full in (('fake_users', 0.15, 0.2), ('targets', 3, 5),
                         ('fillers', 5, 20), ('dim', 32, 64)):
    if getattr(args, name) is None:
        setattr(args, name, tiny if args.tiny else full)
if args.threads is not None:
    torch.set_num_threads(args.threads)

clean = (synthetic(200, 400, 4000, seed=0) if args.tiny else load_dataset(
    'ml-100k', args.data_dir))
attack = inject_fake_users(clean, round(args.fake_users * clean.num_users),
                           num_targets=args.targets, num_filler=args.fillers,
                           seed=args.seed)
data = attack.data
real_users = torch.arange(clean.num_users)  # the fake ones come after
print(f'{data}: {data.num_users - clean.num_users} fake users, '
      f'{attack.request.size(1)} fake interactions, promote items '
      f'{attack.target_items.tolist()}')

config = TrainConfig(loss='bpr', l2=1.0, lr=args.lr, seed=args.seed,
                     progress=False)
clean_model = build_model(clean, embedding_dim=args.dim,
                          num_layers=args.layers)
clean_record = train(clean_model, clean, config)
model = build_model(data, embedding_dim=args.dim, num_layers=args.layers)
record = train(model, data, config)
print(f'trained LightGCN ({args.layers} layers, d={args.dim}, '
      f'lr={args.lr}) on the clean data in {clean_record.epochs} epochs, on '
      f'the poisoned data in {record.epochs} epochs')

# The poison is ordinary training interactions to the unlearner: forget
# them like any other request (the unlearner works on a copy).
unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         horizon=record.horizon)
result = unlearner.unlearn(attack.request)

# Retraining from scratch on the remaining (clean) data is the reference.
start = time.perf_counter()
retrain = RetrainUnlearner(model, data, record.examples,
                           config=config).unlearn(attack.request)
retrain_seconds = time.perf_counter() - start

# Every model is measured among the real users, whose training items are
# the same with or without the attack, each predicting with its own graph.
after = result.data  # the poisoned data without the fake interactions
runs = {  # name: (model, data, graph, seconds)
    'clean': (clean_model, clean, clean.edge_index, clean_record.wall_time),
    'poisoned': (model, data, data.edge_index, record.wall_time),
    'IFRU': (result.model, after, result.edge_index,
             result.timings['total']),
    'retrain': (retrain.model, retrain.data, retrain.edge_index,
                retrain_seconds),
    'drop edges': (model, after, after.edge_index, 0.0),
}
rows = {}
for name, (m, d, graph, seconds) in runs.items():
    rows[name] = {
        'hit': hit_ratio(m, d, attack.target_items, real_users,
                         edge_index=graph),
        'share': top_k_share(m, d, attack.target_items, real_users,
                             edge_index=graph),
        **evaluate(m, d, adj=graph), 'seconds': seconds,
    }


def removed(name: str, key: str) -> str:
    r"""The share of the attack's lift over the clean model that a method
    undid: 100% is back at the clean level, 0% no better than the poisoned
    model."""
    lift = rows['poisoned'][key] - rows['clean'][key]
    if lift <= 0:
        return 'n/a'
    return f"{(rows['poisoned'][key] - rows[name][key]) / lift:.0%}"


print('\nthe targets among real users (higher = the attack works; the goal '
      'after unlearning is the clean level)')
print(f"{'model':10s} {'hit ratio':>9s} {'top-20 share':>12s} "
      f"{'Recall@20':>9s} {'NDCG@20':>8s} {'seconds':>8s}")
for name, row in rows.items():
    print(f"{name:10s} {row['hit']:9.3f} {row['share']:12.4f} "
          f"{row['recall@20']:9.4f} {row['ndcg@20']:8.4f} "
          f"{row['seconds']:8.2f}")

clean_row, poisoned_row = rows['clean'], rows['poisoned']
if poisoned_row['share'] > clean_row['share']:
    print(f"\nthe attack lifted the targets' top-20 share from "
          f"{clean_row['share']:.4f} to {poisoned_row['share']:.4f} and "
          f"their hit ratio from {clean_row['hit']:.3f} to "
          f"{poisoned_row['hit']:.3f}; share of the lift removed (top-20 "
          f"share / hit ratio):")
    for name in ('IFRU', 'retrain', 'drop edges'):
        print(f"  {name:10s} {removed(name, 'share'):>5s} / "
              f"{removed(name, 'hit'):>5s}")
    print(f"IFRU took {result.timings['total']:.2f} s, "
          f"{retrain_seconds / result.timings['total']:.0f}x faster than "
          f"retraining")
else:
    print('\nThe attack did not lift the targets above the clean model '
          '(try more --fake-users or --fillers)')
print(f'certificate: {result.certificate}')
