r"""Whether a change of the package's code changed what it computes: runs a
fixed set of unlearning configurations and saves every update, so that two
commits can be compared bitwise (and, where they differ, by how much).

The set: PyG's LightGCN with 0-2 layers, BPR and BCE, every step of
:class:`IFRUConfig` (auto, Newton, exact Newton, trajectory), the local
variant, no spillover, no reset, each with and without a given horizon (the
training run's, or a constant one where the short run records none) and for
two successive requests; and GCN, SAGE and ``to_hetero``
link predictors with the default, Newton, exact-gradient, shared-weight and
whole-graph settings.  Errors are recorded by their message, so the failure
paths are compared too.  It imports the package from ``sys.path``: put the
other commit's checkout first to run it there.  Root imports only, as the
module layout may differ between the two commits.

Example::

    git worktree add /tmp/before <commit>
    PYTHONPATH=/tmp/before python benchmarks/same_updates.py \
        --tests /tmp/before/tests --out /tmp/before.pt
    python benchmarks/same_updates.py --tests tests --out /tmp/after.pt
    python benchmarks/same_updates.py --compare /tmp/before.pt /tmp/after.pt
"""
import argparse
import itertools
import sys
import warnings

import torch


def synthetic():
    try:
        from torch_geometric_unlearn.data import synthetic
    except ImportError:  # before the data subpackage
        from torch_geometric_unlearn.datasets import synthetic
    return synthetic


def lightgcn_updates(out):
    from torch_geometric_unlearn import (IFRUConfig, IFRUnlearner,
                                         PruningConfig, TrainConfig,
                                         build_model, train)
    data = synthetic()(80, 120, 2500, num_topics=4, seed=3)
    for layers, loss in itertools.product([0, 1, 2], ['bpr', 'bce']):
        model = build_model(data, 8, layers)
        record = train(model, data, TrainConfig(
            loss=loss, l2=1.0, max_epochs=6, progress=False, lr=0.02))
        configs = {
            'default': IFRUConfig(),
            'newton': IFRUConfig(step='newton'),
            'newton-exact': IFRUConfig(step='newton', hessian='exact',
                                       gradient='exact'),
            'trajectory': IFRUConfig(step='trajectory'),
            'local': IFRUConfig(pruning=PruningConfig('threshold', 1e-2),
                                curvature_hops=0),
            'nospill': IFRUConfig(spillover=False),
            'noreset': IFRUConfig(reset_unsupported=False,
                                  expected_negatives=False),
        }
        # A run this short ends with sign-like Adam steps and records no
        # horizon: a constant one exercises the given-horizon path.
        given = (torch.full_like(model.embedding.weight, 5.0)
                 if record.horizon is None else record.horizon)
        for name, config in configs.items():
            for horizon in (None, given):
                key = ('lightgcn', layers, loss, name, horizon is None)
                unlearner = IFRUnlearner(model, data, record.examples,
                                         record.labels, l2=1.0,
                                         config=config, horizon=horizon)
                try:
                    first = unlearner.unlearn(data.train_index[:, :25])
                    second = unlearner.unlearn(users=torch.tensor([5, 7]))
                    out[key] = (first.model.embedding.weight.detach().clone(),
                                second.model.embedding.weight.detach().clone(),
                                str(first.certificate))
                except Exception as error:  # the failure paths count too
                    out[key] = repr(error)


def link_updates(out, tests):
    sys.path.insert(0, tests)
    from _link_models import make

    from torch_geometric_unlearn import IFRUnlearner, TrainConfig
    try:  # Before the one IFRUnlearner, the generic class and its config.
        from torch_geometric_unlearn import IFRUConfig, LinkIFRUnlearner
        unlearner_class, config_class, exact = (
            IFRUnlearner, IFRUConfig, {'gradient': 'exact'})
        del LinkIFRUnlearner
    except ImportError:
        from torch_geometric_unlearn import (GenericIFRUConfig,
                                             GenericIFRUnlearner)
        unlearner_class, config_class, exact = (
            GenericIFRUnlearner, GenericIFRUConfig, {'exact_gradient': True})
    try:
        from torch_geometric_unlearn.training.link import train_link_model
    except ImportError:
        from torch_geometric_unlearn.link_training import train_link_model
    data = synthetic()(60, 80, 2000, num_topics=4, seed=1)
    pairs = data.train_index[:, :10]
    settings = {'default': {}, 'newton': {'step': 'newton'},
                'exact': {'step': 'newton', **exact},
                'shared': {'shared': True}, 'whole': {'region': False}}
    for family in ('gcn', 'sage', 'hetero'):
        model = make(family, data.num_users, data.num_items, 4)
        record = train_link_model(model, data, TrainConfig(
            progress=False, lr=0.01, batch_size=256, l2=3.0, max_epochs=5))
        for name, kwargs in settings.items():
            key = ('link', family, name)
            try:
                result = unlearner_class(
                    model, data, record.examples, l2=3.0,
                    config=config_class(**kwargs)).unlearn(pairs)
                out[key] = torch.cat([p.detach().reshape(-1)
                                      for p in result.model.parameters()])
            except Exception as error:
                out[key] = repr(error)


def compare(path_a, path_b) -> int:
    a, b = (torch.load(p, weights_only=False) for p in (path_a, path_b))
    keys = sorted(set(a) | set(b), key=str)
    different = []
    for key in keys:
        x, y = a.get(key), b.get(key)
        same = (type(x) is type(y) and
                (x == y if isinstance(x, str) else
                 all(torch.equal(u, v) if isinstance(u, torch.Tensor)
                     else u == v for u, v in zip(x, y))
                 if isinstance(x, tuple) else torch.equal(x, y)))
        if not same:
            different.append(key)
    print(f'{len(keys)} configurations, {len(different)} different')
    for key in different:
        print('  ', key, gap(a.get(key), b.get(key)))
    return 1 if different else 0


def gap(x, y) -> str:
    # How far two differing updates are apart: the largest difference of
    # their tensors relative to the largest entry.
    if isinstance(x, tuple) and isinstance(y, tuple):
        pairs = [(u, v) for u, v in zip(x, y) if isinstance(u, torch.Tensor)
                 and isinstance(v, torch.Tensor)]
    elif isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
        pairs = [(x, y)]
    else:
        return f'{x!r:.60} / {y!r:.60}'
    if any(u.shape != v.shape for u, v in pairs):
        return 'shapes differ'
    worst = max((float((u - v).abs().max() / u.abs().max().clamp(min=1e-300))
                 for u, v in pairs if u.numel()), default=0.0)
    return f'largest difference {worst:.1e} of the largest entry'


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out')
    parser.add_argument('--tests', default='tests',
                        help="the checkout's tests folder (for its small "
                        "link models)")
    parser.add_argument('--compare', nargs=2, metavar=('A', 'B'))
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    torch.set_num_threads(1)
    warnings.simplefilter('ignore', DeprecationWarning)
    out = {}
    lightgcn_updates(out)
    link_updates(out, args.tests)
    torch.save(out, args.out)
    print(f'{len(out)} configurations written to {args.out}')


if __name__ == '__main__':
    main()
