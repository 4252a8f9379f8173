r"""Unlearning benchmark: IFRU and its ablations against retraining, in one
process, on one data set.

For each request kind, a model is trained with the reference trainer, then
every method forgets the request from a copy of it:

* speed: the method's wall time against the scratch retrain's (the same
  trainer, run to its early stop, in this process);
* utility: Recall@20 / NDCG@20 on the test split, predicting with the new
  graph;
* completeness: mean rank of the forgotten interactions among their users'
  non-training items, as a share of the way from the original model to the
  scratch retrain (random and poison requests);
* fidelity (IFRU variants): parameter closure between converged points,
  theta_hat (full data) and theta_hat' (without the request), raw and up
  to an orthogonal rotation (Procrustes);
* poison: the target items' share of users' top-20 lists.

Example::

    python benchmarks/unlearn.py --data-dir ../shared/data --layers 2 \
        --out benchmarks/results/unlearn_ml100k_lightgcn2.json
"""
import argparse
import copy
import json
import platform
import statistics
import time

import torch

from torch_geometric_unlearn.baselines import (
    FineTuneUnlearner,
    RetrainUnlearner,
    WarmRetrainUnlearner,
)
from torch_geometric_unlearn.datasets import load_dataset
from torch_geometric_unlearn.deletion import (
    inject_fake_interactions,
    random_interactions,
    random_users,
    user_interactions,
)
from torch_geometric_unlearn.evaluation import (
    closure_ratio,
    converge,
    evaluate,
    mean_rank,
    top_k_share,
)
from torch_geometric_unlearn.ifru import IFRUConfig, IFRUnlearner
from torch_geometric_unlearn.training import TrainConfig, build_model, train
from torch_geometric_unlearn.unlearner import remaining_data

METHODS = ['ifru', 'ifru-nospill', 'ifru-noprune', 'drop-edges', 'finetune',
           'warm-retrain', 'retrain']


def procrustes_closure(unlearned, original, target):
    # Embeddings are defined up to a rotation E -> E R: align each to the
    # target before measuring the gap.
    def align(a):
        u, _, vt = torch.linalg.svd(a.t() @ target)
        return a @ (u @ vt)

    return float(1 - (align(unlearned) - target).norm() /
                 (align(original) - target).norm())


def make_unlearner(method, model, data, record, config):
    args = (model, data, record.examples, record.labels, config.l2)
    if method == 'ifru':
        return IFRUnlearner(*args, copy_model=True)
    if method == 'ifru-nospill':
        return IFRUnlearner(*args, config=IFRUConfig(spillover=False),
                            copy_model=True)
    if method == 'ifru-noprune':
        return IFRUnlearner(*args, config=IFRUConfig(pruning=None),
                            copy_model=True)
    if method == 'finetune':
        return FineTuneUnlearner(*args, config=config, copy_model=True)
    if method == 'warm-retrain':
        return WarmRetrainUnlearner(*args, config=config, copy_model=True)
    return RetrainUnlearner(*args, config=config, copy_model=True)


def run_request(kind, data, args, config):
    if kind == 'poison':
        attack = inject_fake_interactions(data, fraction=0.01, seed=args.seed)
        data, pairs, targets = attack.data, attack.request, attack.target_items
    elif kind == 'users':
        users = random_users(data, 5, seed=args.seed)
        pairs, targets = user_interactions(data, users), None
    else:
        pairs = random_interactions(data, fraction=0.01, seed=args.seed)
        targets = None

    model = build_model(data, args.dim, args.layers)
    record = train(model, data, config)
    out = {
        'request': kind,
        'request_size': pairs.size(1),
        'train': {'epochs': record.epochs, 'seconds': record.wall_time},
        'original': evaluate(model, data),
        'methods': {},
    }
    after = None
    models = {}
    for method in args.methods:
        if method == 'drop-edges':
            continue
        # IFRU takes seconds: report the median of several runs, each on a
        # fresh copy (the first call of a process also pays for warm-up).
        times = []
        for _ in range(args.repeats if method.startswith('ifru') else 1):
            unlearner = make_unlearner(method, model, data, record, config)
            start = time.perf_counter()
            result = unlearner.unlearn(pairs)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        after, models[method] = result.data, result.model
        entry = {'seconds': seconds, 'all_seconds': times,
                 'timings': result.timings}
        if method.startswith('ifru'):
            entry['solve_rows'] = result.diagnostics['solve_rows']
            entry['solver'] = [{
                'iterations': s.iterations,
                'residual': s.residual,
                'hvps': s.num_hvps
            } for s in result.diagnostics['solver']]
        else:
            entry.update(result.diagnostics)
        out['methods'][method] = entry
    if 'drop-edges' in args.methods:
        models['drop-edges'] = model
        out['methods']['drop-edges'] = {'seconds': 0.0}

    retrain_seconds = out['methods'].get('retrain', {}).get('seconds')
    rank_of = {}
    users = pairs[0]
    for method, m in models.items():
        entry = out['methods'][method]
        entry['test'] = evaluate(m, after)
        if retrain_seconds and entry['seconds'] > 0:
            entry['speedup_vs_retrain'] = retrain_seconds / max(
                entry['seconds'], 1e-9)
        if kind == 'users':
            emb = m.embedding.weight.detach()
            entry['forgotten_user_row_norm'] = float(emb[users].norm())
        else:
            rank_of[method] = mean_rank(m, after.edge_index, pairs,
                                        data.num_users, after.train_index)
            entry['deleted_mean_rank'] = rank_of[method]
        if targets is not None:
            entry['target_top20_share'] = top_k_share(m, after, targets)
    if kind != 'users':
        original = mean_rank(model, data.edge_index, pairs, data.num_users,
                             after.train_index)
        out['original']['deleted_mean_rank'] = original
        if 'retrain' in rank_of:
            for method, rank in rank_of.items():
                out['methods'][method]['rank_shift'] = (
                    (rank - original) / (rank_of['retrain'] - original))
    if targets is not None:
        out['original']['target_top20_share'] = top_k_share(
            model, data, targets)
        if 'retrain' in out['methods']:
            base = out['methods']['retrain']['target_top20_share']
            gap = out['original']['target_top20_share'] - base
            for entry in out['methods'].values():
                entry['poison_share_removed'] = 1 - (
                    entry['target_top20_share'] - base) / gap

    if args.fidelity:
        out['fidelity'] = fidelity(model, data, record, pairs, config, args)
    return out


def fidelity(model, data, record, pairs, config, args):
    # theta_hat: the fixed objective converged on the full data;
    # theta_hat': the same without the request, from theta_hat.
    start = time.perf_counter()
    hat = copy.deepcopy(model)
    ratio = converge(hat, data.edge_index, record.examples, record.labels,
                     config.l2, data.num_users)
    probe = IFRUnlearner(hat, data, record.examples, record.labels,
                         config.l2, copy_model=True)
    request = probe._request(pairs)
    after = remaining_data(data, request.train_mask)
    hat_new = copy.deepcopy(hat)
    labels = (None if record.labels is None else
              record.labels[request.example_mask])
    ratio_new = converge(hat_new, after.edge_index,
                         record.examples[:, request.example_mask], labels,
                         config.l2, data.num_users)
    theta, target = hat.embedding.weight.detach(), \
        hat_new.embedding.weight.detach()
    out = {
        'grad_ratio_hat': ratio,
        'grad_ratio_hat_new': ratio_new,
        'converge_seconds': time.perf_counter() - start,
        'methods': {},
    }
    for method in [m for m in args.methods if m.startswith('ifru')]:
        unlearner = make_unlearner(method, hat, data, record, config)
        result = unlearner.unlearn(pairs)
        emb = result.model.embedding.weight.detach()
        out['methods'][method] = {
            'closure': closure_ratio(emb, theta, target),
            'closure_up_to_rotation': procrustes_closure(emb, theta, target),
        }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='ml-100k')
    parser.add_argument('--data-dir', default=None)
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--dim', type=int, default=64)
    parser.add_argument('--requests', nargs='+',
                        default=['random', 'users', 'poison'])
    parser.add_argument('--methods', nargs='+', default=METHODS)
    parser.add_argument('--no-fidelity', dest='fidelity',
                        action='store_false')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--repeats', type=int, default=3,
                        help='runs of each IFRU variant (median reported)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset, args.data_dir)
    config = TrainConfig(seed=args.seed, progress=False)
    report = {
        'command': 'python benchmarks/unlearn.py ' + ' '.join(
            __import__('sys').argv[1:]),
        'dataset': repr(data),
        'model': f'LightGCN(num_layers={args.layers}, dim={args.dim})',
        'train_config': {k: str(v) for k, v in vars(config).items()},
        'machine': {
            'platform': platform.platform(),
            'threads': torch.get_num_threads(),
            'torch': torch.__version__,
        },
        'date': time.strftime('%Y-%m-%d'),
        'requests': [],
    }
    for kind in args.requests:
        result = run_request(kind, data, args, config)
        report['requests'].append(result)
        print(json.dumps(summary(result), indent=1), flush=True)
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(report, f, indent=1)


def summary(result):
    rows = {}
    for method, entry in result['methods'].items():
        rows[method] = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in entry.items() if k in (
                'seconds', 'speedup_vs_retrain', 'rank_shift',
                'poison_share_removed', 'forgotten_user_row_norm')
        }
        rows[method]['recall@20'] = round(entry['test']['recall@20'], 4)
        rows[method]['ndcg@20'] = round(entry['test']['ndcg@20'], 4)
    out = {'request': result['request'], 'size': result['request_size'],
           'methods': rows}
    if 'fidelity' in result:
        out['fidelity'] = result['fidelity']['methods']
    return out


if __name__ == '__main__':
    main()
