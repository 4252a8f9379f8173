r"""The items a request frees: negatives of their users in a run without it.

The package's trainer draws each positive pair's negative among the items
its user has no pair with.  A request removes pairs, so a run on the
remaining data may draw their items as negatives of their users; the
original run never did.  This script measures what that does, on the
package trainer's LightGCN (its defaults, the early-stopped epoch) or, with
``--model sage``, a SAGE link predictor trained by the package's link
trainer (``benchmarks/generic_ml100k.py``'s model and defaults; IFRU's
autograd backend):

* three paired retrains of each request, all with the original run's seed,
  batches and negatives otherwise: ``original`` (the stream as the
  original run drew it, minus the request: every paired retrain before
  ``paired_stream`` took the freed items), ``freed`` (today's: each kept
  negative of a user who lost :math:`D_u` pairs becomes one of them with
  probability :math:`D_u / (C_u + D_u)`), and ``control`` (as many
  negatives redrawn, at random among every item: a perturbation of the same
  size without the freed items);
* IFRU at its defaults, with and without the sampler's shift
  (``sampler_shift``; the shift switched off by patching
  ``IFRUpdate._sampler_shift``, or ``LinkIFRUnlearner._freed`` for the
  autograd backend, here: the package has no switch for it),
  and dropping the edges;

each as the closure of the score change of the forgotten and probe pairs
against each paired retrain, and the mean score change.

Example::

    python benchmarks/freed_negatives.py --dataset ml-100k \
        --data-dir ../shared/data \
        --out benchmarks/results/freed_negatives/ml-100k.json
"""
import argparse
import dataclasses
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from weight_path import write_report  # noqa: E402

import torch_geometric_unlearn.training.trainer as trainer  # noqa: E402
from generic_ml100k import build as build_link  # noqa: E402
from torch_geometric_unlearn import (IFRUConfig, IFRUnlearner,  # noqa: E402
                                     TrainConfig, build_model, train)
from torch_geometric_unlearn.data.datasets import load_dataset  # noqa: E402
from torch_geometric_unlearn.data.deletion import (  # noqa: E402
    item_interactions, random_interactions, random_users, user_interactions)
from torch_geometric_unlearn.evaluation.fidelity import (  # noqa: E402
    change_closure, probe_pairs, score_change)
from torch_geometric_unlearn.training.link import train_link_model  # noqa
from torch_geometric_unlearn.training.trainer import (  # noqa: E402
    fixed_epochs, paired_stream)
from torch_geometric_unlearn.unlearn.generic import (  # noqa: E402
    LinkIFRUnlearner)
from torch_geometric_unlearn.unlearn.ifru_update import IFRUpdate  # noqa

SEED = 100


class Family:
    r"""How a model of ``--model`` is built, trained, retrained and
    scored."""
    def __init__(self, args, data):
        self.args, self.data = args, data
        self.link = args.model == 'sage'
        if self.link:  # generic_ml100k.py's defaults
            self.config = TrainConfig(l2=10.0, lr=0.01, patience=3,
                                      batch_size=8192, max_epochs=300,
                                      eval_every=2, seed=0, progress=False)
        else:
            self.config = TrainConfig(seed=0, progress=False)

    def build(self):
        torch.manual_seed(0)
        if self.link:
            return build_link('sage', self.data, 32)
        return build_model(self.data, 64, self.args.layers)

    def train(self, model, epochs=None, exclude=None):
        config = self.config
        if epochs is not None:
            config = (dataclasses.replace(config, max_epochs=epochs,
                                          eval_every=epochs, patience=1)
                      if self.link else fixed_epochs(config, epochs))
        fit = train_link_model if self.link else train
        return fit(model, self.data, config, exclude=exclude)

    @staticmethod
    @torch.no_grad()
    def scores(model, train_index, pairs):
        # A link predictor's scores of 'pairs' on the graph of its
        # training pairs.
        model.eval()
        return model(model.graph(train_index), pairs).double()


def paired_retrain(family, record, pairs, kind):
    # The paired retrain with the stream 'kind' (see the module docs).
    def stream(examples, labels, batches, dropped, data_, gen):
        if kind == 'original':
            gen = None
        elif kind == 'control':
            # As many draws as 'freed' makes, each to a random item.
            freed, _, _ = paired_stream(examples, labels, batches, dropped,
                                        data_, gen)
            out, labels_, batches_ = paired_stream(examples, labels, batches,
                                                   dropped, data_)
            moved = (freed[2] != out[2]).nonzero().view(-1)
            out = out.clone()
            out[2, moved] = torch.randint(0, data_.num_items,
                                          (moved.numel(), ), generator=gen)
            return out, labels_, batches_
        return paired_stream(examples, labels, batches, dropped, data_, gen)

    original = trainer.paired_stream
    trainer.paired_stream = stream
    try:
        retrain = family.build()
        family.train(retrain, record.best_epoch, exclude=pairs)
    finally:
        trainer.paired_stream = original
    return retrain


def unlearn(family, model, record, pairs, shift: bool):
    owner, name = ((LinkIFRUnlearner, '_freed') if family.link else
                   (IFRUpdate, '_sampler_shift'))
    original = getattr(owner, name)
    if not shift:
        setattr(owner, name, lambda self, *args: None)
    try:
        unlearner = IFRUnlearner(model, family.data, record.examples,
                                 l2=family.config.l2,
                                 horizon=record.horizon,
                                 config=IFRUConfig(check_draws=False))
        result = unlearner.unlearn(pairs)
    finally:
        setattr(owner, name, original)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='ml-100k')
    parser.add_argument('--data-dir', default='../shared/data')
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--model', choices=['lightgcn', 'sage'],
                        default='lightgcn')
    parser.add_argument('--requests', nargs='+',
                        default=['random:0.01', 'popular:1', 'users:5'])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    data = load_dataset(args.dataset, args.data_dir)
    family = Family(args, data)
    model = family.build()
    record = family.train(model)
    report = {'command': 'python ' + ' '.join(sys.argv),
              'config': vars(args), 'best_epoch': record.best_epoch,
              'requests': {}}
    for spec in args.requests:
        kind, size = spec.split(':')
        if kind == 'random':
            pairs = random_interactions(data, fraction=float(size),
                                        seed=SEED)
        elif kind == 'users':
            pairs = user_interactions(data, random_users(data, int(size),
                                                         seed=SEED))
        else:
            pairs = item_interactions(data, torch.bincount(
                data.train_index[1]).argmax().view(1))
        sets = {'forgotten': pairs,
                'probe': probe_pairs(data, pairs, seed=SEED)}
        after = {}
        for name, shift in (('ifru', True), ('ifru, no shift', False)):
            result = unlearn(family, model, record, pairs, shift)
            after[name] = result.model
            if shift:
                shift_ratio = result.diagnostics['sampler_shift']
        after['drop the edges'] = model
        retrains = {kind: paired_retrain(family, record, pairs, kind)
                    for kind in ('original', 'freed', 'control')}
        after.update(retrains)
        new_index = result.data.train_positive_index

        def moved(m, index):
            if family.link:
                return (family.scores(m, new_index, index) -
                        family.scores(model, data.train_positive_index,
                                      index))
            return score_change(model, data.edge_index, m,
                                result.edge_index, index, data.num_users)

        change = {name: {key: moved(m, index) for key, index in sets.items()}
                  for name, m in after.items()}
        entry = {'pairs': pairs.size(1), 'sampler_shift': shift_ratio,
                 'mean_change': {name: {key: float(v.mean())
                                        for key, v in c.items()}
                                 for name, c in change.items()},
                 'closure': {}}
        for reference in retrains:
            entry['closure'][reference] = {
                name: {key: change_closure(c[key], change[reference][key])
                       for key in sets}
                for name, c in change.items() if name != reference}
        report['requests'][spec] = entry
        print(spec, 'shift/influence', shift_ratio, flush=True)
        for reference, rows in entry['closure'].items():
            print(f'  against the {reference} paired retrain:', {
                name: {k: round(v, 3) for k, v in sets_.items()}
                for name, sets_ in rows.items()}, flush=True)
    report['seconds'] = time.perf_counter() - start
    if args.out:
        write_report(args.out, report)


if __name__ == '__main__':
    main()
