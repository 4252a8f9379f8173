r"""Poisoning removal: unlearn fake interactions that promote a few items.

Injects fake interactions between random users and a few unpopular target
items into MovieLens-100K, trains PyG's LightGCN on the poisoned data, then
forgets the fake interactions with IFRU and by retraining from scratch on
the clean data.  The attack shows in the targets' share of users' top-20
lists; unlearning should bring it back to where retraining puts it.

    python examples/poisoning.py --data-dir ../shared/data [--fraction 0.01]
    python examples/poisoning.py --tiny   # a small synthetic graph, seconds
"""
import argparse
import copy
import time

from torch_geometric_unlearn import (
    IFRUnlearner,
    TrainConfig,
    build_model,
    train,
)
from torch_geometric_unlearn.baselines import RetrainUnlearner
from torch_geometric_unlearn.datasets import load_dataset, synthetic
from torch_geometric_unlearn.deletion import inject_fake_interactions
from torch_geometric_unlearn.evaluation import evaluate, top_k_share

parser = argparse.ArgumentParser()
parser.add_argument('--data-dir', default=None,
                    help="folder holding 'ml-100k/' (default: $TGU_DATA_DIR)")
parser.add_argument('--tiny', action='store_true',
                    help='use a tiny synthetic graph instead (smoke test)')
parser.add_argument('--fraction', type=float, default=0.01,
                    help='fake interactions, as a fraction of the real ones')
parser.add_argument('--targets', type=int, default=5,
                    help='number of items the attack promotes')
parser.add_argument('--layers', type=int, default=2)
parser.add_argument('--dim', type=int, default=64)
parser.add_argument('--seed', type=int, default=0)
args = parser.parse_args()

clean = (synthetic(80, 120, 1500) if args.tiny else load_dataset(
    'ml-100k', args.data_dir))
attack = inject_fake_interactions(clean, fraction=args.fraction,
                                  num_targets=args.targets, seed=args.seed)
data = attack.data
print(f'{data}: {attack.request.size(1)} fake interactions promote items '
      f'{attack.target_items.tolist()}')

model = build_model(data, embedding_dim=args.dim, num_layers=args.layers)
config = TrainConfig(loss='bpr', l2=1.0, seed=args.seed, progress=False)
record = train(model, data, config)
print(f'trained LightGCN ({args.layers} layers, d={args.dim}) on the '
      f'poisoned data: {record.epochs} epochs, {record.wall_time:.1f} s')

# The poison is ordinary training interactions to the unlearner: forget
# them like any other request.
unlearner = IFRUnlearner(model, data, record.examples, l2=config.l2,
                         copy_model=True, horizon=record.horizon)
result = unlearner.unlearn(attack.request)

# Retraining on the remaining (clean) data is the reference.
start = time.perf_counter()
retrain = RetrainUnlearner(copy.deepcopy(model), data, record.examples,
                           l2=config.l2, config=config).unlearn(
                               attack.request)
retrain_seconds = time.perf_counter() - start

# The targets' top-20 share counts the slots that are not training items of
# the data each model was left with: after unlearning, the fake pairs are
# no longer training pairs and count as recommendations again.
share = {
    'poisoned': top_k_share(model, data, attack.target_items),
    'IFRU': top_k_share(result.model, result.data, attack.target_items),
    'retrain': top_k_share(retrain.model, retrain.data, attack.target_items),
}
metrics = {
    'poisoned': evaluate(model, data),
    'IFRU': evaluate(result.model, result.data),
    'retrain': evaluate(retrain.model, retrain.data),
}
seconds = {
    'poisoned': record.wall_time,
    'IFRU': result.timings['total'],
    'retrain': retrain_seconds,
}
print(f"\n{'model':9s} {'target top-20 share':>19s} {'Recall@20':>9s} "
      f"{'NDCG@20':>8s} {'seconds':>8s}")
for name in share:
    print(f"{name:9s} {share[name]:19.5f} {metrics[name]['recall@20']:9.4f} "
          f"{metrics[name]['ndcg@20']:8.4f} {seconds[name]:8.2f}")

# The share of the attack's lift over the clean retrain that IFRU undid.
lift = share['poisoned'] - share['retrain']
if lift > 0:
    removed = 1 - (share['IFRU'] - share['retrain']) / lift
    print(f'\nIFRU removed {removed:.0%} of the attack\'s lift in the '
          f'targets\' top-20 share, {retrain_seconds / seconds["IFRU"]:.0f}x '
          f'faster than retraining')
else:
    print('\nThe attack did not lift the targets above the clean retrain '
          '(try a larger --fraction)')
print(f'certificate: {result.certificate}')
