r"""Unlearning generic PyG recommenders on MovieLens-100K: a 2-layer SAGEConv
link predictor and a to_hetero SAGE recommender, against retraining.

For each model: train with the reference trainer for link models, forget 1%
random training interactions (or ``--users`` users' interactions) with
:class:`IFRUnlearner` (its autograd backend; the ``--variants`` settings)
and by retraining from scratch (same trainer, same process), and report

* speed: unlearning wall time against the scratch retrain's;
* utility: Recall@20 / NDCG@20 on the test split, predicting with the new
  graph;
* completeness: mean rank of the forgotten interactions among their users'
  non-training items, as a share of the way from the original model to the
  scratch retrain (1 = where retraining puts them);
* closure against the paired retrain (``--paired``): the score change on
  the forgotten pairs and on probe pairs (see
  :mod:`~torch_geometric_unlearn.evaluation.fidelity`) against that of the
  same run retrained without the request (same seed, the original example
  stream minus the request's, as many epochs as the original kept), beside
  dropping the edges, and (``--noise-floor``) the same closure between
  the paired changes of two seeds;
* fidelity (unless ``--no-fidelity``): parameter and score closure between
  converged points, theta_hat (the fixed objective on the full data) and
  theta_hat' (without the request), both by damped Newton in float64,
  unlearning from theta_hat.  The converged gradient ratios are recorded
  with that of the request's own gradient at theta_hat: a closure means
  something only where both lie far below it.

Example::

    python benchmarks/generic_ml100k.py --data-dir ../shared/data \
        --out benchmarks/results/generic_ml100k.json
"""
import argparse
import copy
import dataclasses
import json
import platform
import statistics
import sys
import time

import torch
from torch_geometric.data import HeteroData
from torch_geometric.nn import SAGEConv, to_hetero

from torch_geometric_unlearn.data.datasets import load_dataset
from torch_geometric_unlearn.data.deletion import (random_interactions,
                                                   random_users,
                                                   user_interactions)
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs)
from torch_geometric_unlearn.evaluation.metrics import closure_ratio
from torch_geometric_unlearn.influence import SolverError
from torch_geometric_unlearn.influence.objectives import ExampleObjective
from torch_geometric_unlearn.models import HeteroLinkModel, LinkModel
from torch_geometric_unlearn.training.link import (converge_link_model,
                                                   evaluate_link_model,
                                                   link_mean_rank,
                                                   train_link_model)
from torch_geometric_unlearn.training.trainer import TrainConfig
from torch_geometric_unlearn.unlearn.base import remaining_data
from torch_geometric_unlearn.unlearn.config import IFRUConfig
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner

# The unlearner settings measured (``--variants`` picks some).
VARIANTS = {
    'ifru': {},
    'ifru-adam': {},  # with the training run's horizon (Adam's state)
    'ifru-newton': {'step': 'newton'},  # the default before 2026-12-06
    'ifru-nospill': {'spillover': False},
    # Items left only as sampled negatives keep their trained rows.
    'ifru-noreset': {'reset_unsupported': False},
    'ifru-shared': {'shared': True},
    'ifru-last': {'shared': '.conv2.'},  # the last layer's weights free
    'ifru-whole': {'region': False},  # every product on the whole graph
    # Each triple's frozen negative alone (the default before 2026-12-08).
    'ifru-neg1': {'sampled_negatives': 1},
    # All weights free, three Newton steps: Newton's method on the new
    # objective, for the converged point.
    'ifru-shared-3': {'shared': True, 'newton_steps': 3},
}


def settings_for(name, model):
    r"""The config of variant :obj:`name`; a string :obj:`shared` frees
    the shared weights whose names contain it."""
    settings = dict(VARIANTS[name])
    if isinstance(settings.get('shared'), str):
        settings['shared'] = [
            key for key, _ in model.named_parameters()
            if key not in model.node_params and settings['shared'] in key]
    return settings


class Encoder(torch.nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv1, self.conv2 = SAGEConv(dim, dim), SAGEConv(dim, dim)

    def forward(self, x, edge_index):
        return self.conv2(self.conv1(x, edge_index).tanh(), edge_index)


class SAGELinkPredictor(torch.nn.Module):
    def __init__(self, num_nodes, dim):
        super().__init__()
        self.emb = torch.nn.Embedding(num_nodes, dim)
        self.encoder = Encoder(dim)

    def encode(self, edge_index):
        return self.encoder(self.emb.weight, edge_index)

    def decode(self, z, edge_label_index):
        return (z[edge_label_index[0]] * z[edge_label_index[1]]).sum(-1)


class HeteroRecommender(torch.nn.Module):
    def __init__(self, num_users, num_items, dim, metadata):
        super().__init__()
        self.user_emb = torch.nn.Embedding(num_users, dim)
        self.item_emb = torch.nn.Embedding(num_items, dim)
        self.encoder = to_hetero(Encoder(dim), metadata, aggr='sum')

    def encode(self, x_dict, edge_index_dict):
        x_dict = {'user': self.user_emb.weight, 'item': self.item_emb.weight}
        return self.encoder(x_dict, edge_index_dict)

    def decode(self, z_dict, edge_label_index):
        row, col = edge_label_index
        return (z_dict['user'][row] * z_dict['item'][col]).sum(-1)


def build(kind, data, dim):
    if kind == 'sage':
        return LinkModel(SAGELinkPredictor(data.num_nodes, dim),
                         data.num_users, data.num_items, encode='encode',
                         decode='decode')
    template = HeteroData()
    template['user'].num_nodes = data.num_users
    template['item'].num_nodes = data.num_items
    for edge_type in [('user', 'rates', 'item'), ('item', 'rev_rates',
                                                  'user')]:
        template[edge_type].edge_index = torch.empty(2, 0, dtype=torch.long)
    model = HeteroRecommender(data.num_users, data.num_items, dim,
                              template.metadata())
    return HeteroLinkModel(model, template, encode='encode', decode='decode')


def flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@torch.no_grad()
def scores(model, graph, pairs):
    model.eval()
    return model(graph, pairs)


def log(message):
    print(f'[{time.strftime("%H:%M:%S")}] {message}', file=sys.stderr,
          flush=True)


def run(kind, data, args, config):
    if args.users:
        pairs = user_interactions(data, random_users(data, args.users,
                                                     seed=args.seed))
    else:
        pairs = random_interactions(data, fraction=0.01, seed=args.seed)
    model = build(kind, data, args.dim)
    record = train_link_model(model, data, config)
    log(f'{kind}: trained, {record.epochs} epochs, {record.wall_time:.0f} s')
    out = {'model': repr(model), 'request_size': pairs.size(1),
           'train': {'epochs': record.epochs, 'seconds': record.wall_time},
           'original': evaluate_link_model(model, data)}

    start = time.perf_counter()
    retrained = copy.deepcopy(model)
    after = remaining_data(data, IFRUnlearner(
        model, data, record.examples, l2=config.l2,
        copy_model=True)._request(pairs).train_mask)
    retrain_record = train_link_model(retrained, after, config)
    retrain_seconds = time.perf_counter() - start
    log(f'{kind}: retrained in {retrain_seconds:.0f} s')

    old_graph = model.graph(data.train_positive_index)
    new_graph = model.graph(after.train_positive_index)
    original_rank = link_mean_rank(model, old_graph, pairs, after.train_index)
    retrain_rank = link_mean_rank(retrained, new_graph, pairs,
                                  after.train_index)

    def entry(predictor, seconds):
        rank = link_mean_rank(predictor, new_graph, pairs, after.train_index)
        return {'seconds': seconds,
                'speedup_vs_retrain': (retrain_seconds / seconds
                                       if seconds else None),
                'test': evaluate_link_model(predictor, after),
                'deleted_mean_rank': rank,
                'rank_shift': (rank - original_rank) /
                (retrain_rank - original_rank)}

    paired = None
    if args.paired:
        start = time.perf_counter()
        paired = copy.deepcopy(model)
        epochs = record.best_epoch
        train_link_model(paired, data, dataclasses.replace(
            config, max_epochs=epochs, eval_every=epochs, patience=1),
            exclude=pairs)
        out['paired_retrain'] = {'epochs': epochs,
                                 'seconds': time.perf_counter() - start}
        log(f'{kind}: paired retrain in {time.perf_counter() - start:.0f} s')
        probes = {'forgotten': pairs, 'probe': probe_pairs(data, pairs)}
        before = {key: scores(model, old_graph, index)
                  for key, index in probes.items()}
        target = {key: scores(paired, new_graph, index) - before[key]
                  for key, index in probes.items()}
        if args.noise_floor:
            out['noise_floor'] = noise(kind, data, args, config, pairs,
                                       probes, target, old_graph, new_graph)
            log(f'{kind}: noise floor {out["noise_floor"]}')

    def closures(predictor):
        return {key: change_closure(
            scores(predictor, new_graph, index) - before[key], target[key])
            for key, index in probes.items()}

    out['methods'] = {}
    for name in args.variants:
        settings = settings_for(name, model)
        horizon = record.horizon if name == 'ifru-adam' else None
        if name == 'ifru-adam' and horizon is None:
            out['methods'][name] = {'error': 'no horizon recorded (Adam '
                                             'steps sign-like)'}
            continue
        times = []
        for _ in range(args.repeats):
            unlearner = IFRUnlearner(
                model, data, record.examples, l2=config.l2, copy_model=True,
                config=IFRUConfig(**settings), horizon=horizon)
            start = time.perf_counter()
            result = unlearner.unlearn(pairs)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        log(f'{kind}: {name} in {seconds:.1f} s')
        out['methods'][name] = {
            **entry(result.model, seconds), 'all_seconds': times,
            'timings': result.timings,
            'solve_rows': result.diagnostics['solve_rows'],
            'hessian_examples': result.diagnostics['hessian_examples'],
            'region_nodes': result.diagnostics['region_nodes'],
            'region_edges': result.diagnostics['region_edges'],
            'step': result.diagnostics.get('step'),
            'stationarity': result.diagnostics.get('stationarity'),
            'solver': [{'iterations': s.iterations, 'residual': s.residual,
                        'hvps': s.num_hvps, 'message': s.message}
                       for s in result.diagnostics['solver']],
        }
        if paired is not None:
            out['methods'][name]['closure_vs_paired'] = closures(
                result.model)
    out['methods']['drop-edges'] = entry(model, 0.0)
    if paired is not None:
        out['methods']['drop-edges']['closure_vs_paired'] = closures(model)
    out['methods']['retrain'] = {**entry(retrained, retrain_seconds),
                                 'epochs': retrain_record.epochs}
    out['original']['deleted_mean_rank'] = original_rank
    if args.fidelity:
        out['fidelity'] = fidelity(model, data, record, pairs, config, args)
    return out


def noise(kind, data, args, config, pairs, probes, target, old_graph,
          new_graph):
    r"""The noise floor of the paired reference: the closure between the
    paired change of this run and that of a run from the next seed."""
    seeded = dataclasses.replace(config, seed=config.seed + 1)
    model = build(kind, data, args.dim)
    record = train_link_model(model, data, seeded)
    paired = copy.deepcopy(model)
    epochs = record.best_epoch
    train_link_model(paired, data, dataclasses.replace(
        seeded, max_epochs=epochs, eval_every=epochs, patience=1),
        exclude=pairs)
    return {key: noise_floor([
        target[key], scores(paired, new_graph, index) -
        scores(model, old_graph, index)]) for key, index in probes.items()}


def fidelity(model, data, record, pairs, config, args):
    start = time.perf_counter()
    # Float64: the converged points must be stationary far below the
    # change a request makes.
    hat = copy.deepcopy(model).double()
    objective = ExampleObjective(record.examples, record.labels)
    ratio = converge_link_model(hat, hat.graph(data.train_positive_index),
                                objective, config.l2, tol=args.converge_tol,
                                max_iter=args.converge_iter)
    log(f'theta_hat: gradient ratio {ratio:.1e}, '
        f'{time.perf_counter() - start:.0f} s')
    request = IFRUnlearner(hat, data, record.examples, record.labels,
                           config.l2, copy_model=True)._request(pairs)
    after = remaining_data(data, request.train_mask)
    target = copy.deepcopy(hat)
    labels = (None if record.labels is None else
              record.labels[request.example_mask])
    new_objective = ExampleObjective(record.examples[:, request.example_mask],
                                     labels)
    # The request's own gradient at theta_hat (no step is taken): the
    # converged ratios must lie far below it.
    ratio_request = converge_link_model(
        target, target.graph(after.train_positive_index), new_objective,
        config.l2, max_iter=0)
    ratio_new = converge_link_model(
        target, target.graph(after.train_positive_index), new_objective,
        config.l2, tol=args.converge_tol, max_iter=args.converge_iter)
    converge_seconds = time.perf_counter() - start
    log(f'converged: {ratio:.1e} / {ratio_new:.1e} in '
        f'{converge_seconds:.0f} s')
    out = {'grad_ratio_hat': ratio, 'grad_ratio_hat_new': ratio_new,
           'grad_ratio_request': ratio_request,
           'converge_seconds': converge_seconds}

    # Scores of 200 random users against all items, on the new graph.
    gen = torch.Generator().manual_seed(args.seed)
    users = torch.randperm(data.num_users, generator=gen)[:200]
    grid = torch.cartesian_prod(users, torch.arange(data.num_items)).t()
    graph = hat.graph(after.train_positive_index)
    s_hat, s_new = scores(hat, graph, grid), scores(target, graph, grid)
    out['relative_move'] = float((s_new - s_hat).norm() / s_hat.norm())
    for name in args.variants:
        settings = settings_for(name, hat)
        unlearner = IFRUnlearner(
            hat, data, record.examples, record.labels, config.l2,
            copy_model=True, config=IFRUConfig(**settings))
        begin = time.perf_counter()
        try:
            result = unlearner.unlearn(pairs)
        except SolverError as error:
            out[name] = {'error': str(error)}
            continue
        solver = result.diagnostics['solver'][0]
        out[name] = {
            'seconds': time.perf_counter() - begin,
            'hvps': sum(s.num_hvps for s in result.diagnostics['solver']),
            'message': solver.message,
            'param_closure': closure_ratio(flat(result.model), flat(hat),
                                           flat(target)),
            'score_closure': closure_ratio(scores(result.model, graph, grid),
                                           s_hat, s_new),
        }
        log(f'{name}: score closure {out[name]["score_closure"]:.3f}')
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', default=None)
    parser.add_argument('--models', nargs='+', default=['sage', 'hetero'])
    parser.add_argument('--dim', type=int, default=32)
    parser.add_argument('--users', type=int, default=0,
                        help='forget this many random users instead of 1%% '
                             'random interactions')
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS),
                        choices=list(VARIANTS))
    parser.add_argument('--paired', action='store_true',
                        help='also retrain paired with the original run')
    parser.add_argument('--noise-floor', action='store_true',
                        help='with --paired: the paired change of a run '
                        'from the next seed, against this one')
    parser.add_argument('--repeats', type=int, default=1,
                        help='unlearning calls per variant (median)')
    parser.add_argument('--l2', type=float, default=10.0)
    parser.add_argument('--lr', type=float, default=0.01)
    parser.add_argument('--patience', type=int, default=3)
    parser.add_argument('--batch-size', type=int, default=8192)
    parser.add_argument('--max-epochs', type=int, default=300)
    parser.add_argument('--eval-every', type=int, default=2)
    parser.add_argument('--no-fidelity', dest='fidelity',
                        action='store_false')
    parser.add_argument('--converge-tol', type=float, default=1e-8)
    parser.add_argument('--converge-iter', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--out', default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset('ml-100k', args.data_dir)
    config = TrainConfig(l2=args.l2, lr=args.lr, patience=args.patience,
                         batch_size=args.batch_size,
                         max_epochs=args.max_epochs,
                         eval_every=args.eval_every, seed=args.seed,
                         progress=False)
    report = {
        'command': 'python benchmarks/generic_ml100k.py ' +
        ' '.join(sys.argv[1:]),
        'dataset': repr(data),
        'dim': args.dim,
        'train_config': {k: str(v) for k, v in vars(config).items()},
        'machine': {'platform': platform.platform(),
                    'threads': torch.get_num_threads(),
                    'torch': torch.__version__},
        'date': time.strftime('%Y-%m-%d'),
        'models': {},
    }
    for kind in args.models:
        report['models'][kind] = run(kind, data, args, config)
        print(json.dumps(report['models'][kind], indent=1, default=str),
              flush=True)
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(report, f, indent=1, default=str)


if __name__ == '__main__':
    main()
