r"""What averaging the gradient change over a sample of the items costs in
fidelity and saves in time: IFRU on the package trainer's LightGCN-2 with
:obj:`IFRUConfig.expected_samples` at each ``--samples`` value and at
:obj:`None` (every item, the exact pass), interleaved in one process, on a
1% random request, 5 whole users and the most popular item.

Each variant's closure of the score change on the forgotten and probe pairs
is against the paired retrain (same seed and batches, without the
request), beside dropping the edges and the noise floor (the model trained
from the next seed against its own paired retrain).  Times are medians over
``--repeats`` of a fresh unlearner's :meth:`unlearn`; the gradient phase
is the one the sample shortens.

Example::

    python benchmarks/sampled_change.py --dataset ml-100k \
        --data-dir ../shared/data --threads 1 --repeats 5 \
        --out benchmarks/results/sampled_change/ml-100k.json
"""
import argparse
import json
import platform
import statistics
import sys
import time

import torch

from torch_geometric_unlearn import (IFRUConfig, IFRUnlearner, TrainConfig,
                                     build_model, train)
from torch_geometric_unlearn.data.datasets import load_dataset
from torch_geometric_unlearn.data.deletion import (item_interactions,
                                                   random_interactions,
                                                   random_users,
                                                   user_interactions)
from torch_geometric_unlearn.evaluation.fidelity import (change_closure,
                                                         noise_floor,
                                                         probe_pairs,
                                                         score_change)
from torch_geometric_unlearn.unlearn.base import UnlearnResult
from torch_geometric_unlearn.unlearn.baselines import PairedRetrainUnlearner

SEED = 100


def trained(data, seed):
    torch.manual_seed(seed)
    model = build_model(data, 64, 2)
    config = TrainConfig(seed=seed, progress=False)
    return model, train(model, data, config), config


def paired_change(model, data, record, config, pairs, sets):
    paired = PairedRetrainUnlearner(
        model, data, record.examples, None, config.l2, config=config,
        epochs=record.best_epoch, copy_model=True).unlearn(pairs)
    return {key: score_change(model, data.edge_index, paired.model,
                              paired.edge_index, index, data.num_users)
            for key, index in sets.items()}


def closures(model, data, result, sets, target):
    return {key: change_closure(score_change(
        model, data.edge_index, result.model, result.edge_index, index,
        data.num_users), target[key]) for key, index in sets.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', default='ml-100k')
    parser.add_argument('--data-dir', required=True)
    parser.add_argument('--samples', type=int, nargs='+', default=[512])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_dir)
    model, record, config = trained(data, 0)
    other, other_record, other_config = trained(data, 1)
    requests = {
        'random:0.01': random_interactions(data, fraction=0.01, seed=SEED),
        'users:5': user_interactions(data, random_users(data, 5, seed=SEED)),
        'popular:1': item_interactions(data, torch.bincount(
            data.train_index[1]).argmax().view(1)),
    }
    variants = {'exact': None, **{f'samples:{s}': s for s in args.samples}}
    out = {'command': 'python benchmarks/sampled_change.py ' + ' '.join(
        argv if argv is not None else sys.argv[1:]),
        'machine': {'cpu': platform.processor() or platform.machine(),
                    'threads': torch.get_num_threads(),
                    'torch': torch.__version__},
        'date': time.strftime('%Y-%m-%d'), 'dataset': args.dataset,
        'num_items': data.num_items, 'requests': {}}
    for name, pairs in requests.items():
        runs = {key: [] for key in variants}
        results = {}
        for _ in range(args.repeats):
            for key, samples in variants.items():
                unlearner = IFRUnlearner(
                    model, data, record.examples, l2=config.l2,
                    horizon=record.horizon,
                    config=IFRUConfig(expected_samples=samples))
                start = time.perf_counter()
                result = unlearner.unlearn(pairs)
                runs[key].append((time.perf_counter() - start,
                                  result.timings['gradient']))
                results[key] = result
        sets = {'forgotten': pairs, 'probe': probe_pairs(data, pairs,
                                                         seed=SEED)}
        target = paired_change(model, data, record, config, pairs, sets)
        floor = paired_change(other, data, other_record, other_config, pairs,
                              sets)
        row = {'pairs': pairs.size(1), 'noise_floor': {
            key: noise_floor([target[key], floor[key]]) for key in sets}}
        drop = UnlearnResult(model, results['exact'].data, pairs, 'drop')
        row['drop-edges'] = {'closure': closures(model, data, drop, sets,
                                                 target)}
        exact = results['exact'].model.embedding.weight.detach()
        step = float((exact - model.embedding.weight.detach()).norm())
        for key, result in results.items():
            certificate = result.certificate
            row[key] = {
                'seconds': statistics.median(t for t, _ in runs[key]),
                'gradient_seconds': statistics.median(
                    g for _, g in runs[key]),
                'all': runs[key],
                'closure': closures(model, data, result, sets, target),
                'change_error': result.diagnostics['change_error'],
                'update_difference_over_step': float(
                    (result.model.embedding.weight.detach() - exact).norm())
                / step,
                'certificate': {'step': certificate.step,
                                'flags': list(certificate.flags)}}
            row[key]['speedup_vs_exact'] = (row['exact']['seconds'] /
                                            row[key]['seconds'])
        out['requests'][name] = row
        print(name, {key: (round(row[key]['seconds'], 3),
                           round(row[key]['gradient_seconds'], 3),
                           {k: round(v, 4) for k, v in
                            row[key]['closure'].items()},
                           row[key]['change_error'])
                     for key in variants},
              'drop', row['drop-edges']['closure'], 'floor',
              row['noise_floor'], flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=2)


if __name__ == '__main__':
    main()
