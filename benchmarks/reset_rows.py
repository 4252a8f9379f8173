r"""What the reset rows' sparse gradient saves: IFRU at its defaults on the
package trainer's MovieLens-100K LightGCN-2, with the change of the
averaged-negative gradient that resetting a few item rows causes computed
on their pairs and columns alone (the default) or by a full pass over
every pair and item (the code before it), interleaved in one process.

A reset row is an item whose every interaction is forgotten: the most
popular item's request has one, a 1% random request on this long-tailed
data some, whole users usually none (the script says how many).

Example::

    python benchmarks/reset_rows.py --data-dir ../shared/data --threads 1 \
        --repeats 5 --out benchmarks/results/reset_rows.json
"""
import argparse
import json
import platform
import statistics
import time

import torch

from torch_geometric_unlearn import IFRUnlearner, TrainConfig, build_model, \
    train
from torch_geometric_unlearn.data.datasets import load_dataset
from torch_geometric_unlearn.data.deletion import (item_interactions,
                                                   random_interactions,
                                                   random_users,
                                                   user_interactions)
from torch_geometric_unlearn.influence.expected import ExpectedBPR

SPARSE = ExpectedBPR._sparse_change


def full_pass(self, final, change, rows):
    # Never the sparse pass: the code before it.
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data-dir', required=True)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset('ml-100k', args.data_dir)
    torch.manual_seed(0)
    model = build_model(data, 64, 2)
    config = TrainConfig(seed=0, progress=False)
    record = train(model, data, config)
    popular = torch.bincount(data.train_index[1]).argmax().view(1)
    requests = {
        'popular:1': item_interactions(data, popular),
        'random:0.01': random_interactions(data, fraction=0.01, seed=0),
        'users:5': user_interactions(data, random_users(data, 5, seed=0)),
    }
    out = {'command': 'python benchmarks/reset_rows.py ' + ' '.join(
        argv if argv is not None else __import__('sys').argv[1:]),
        'machine': {'cpu': platform.processor() or platform.machine(),
                    'threads': torch.get_num_threads(),
                    'torch': torch.__version__},
        'date': time.strftime('%Y-%m-%d'), 'requests': {}}
    for name, pairs in requests.items():
        runs = {'sparse': [], 'full': []}
        updates = {}
        for _ in range(args.repeats):
            for mode in runs:
                ExpectedBPR._sparse_change = (SPARSE if mode == 'sparse'
                                              else full_pass)
                unlearner = IFRUnlearner(model, data, record.examples,
                                         l2=config.l2,
                                         horizon=record.horizon)
                start = time.perf_counter()
                result = unlearner.unlearn(pairs)
                runs[mode].append((time.perf_counter() - start,
                                   result.timings['gradient']))
                certificate = result.certificate
                updates[mode] = result.model.embedding.weight.detach()
        ExpectedBPR._sparse_change = SPARSE
        step = float((updates['full'] -
                      model.embedding.weight.detach()).norm())
        row = {'pairs': pairs.size(1),
               'reset_rows': result.diagnostics['reset_rows'],
               'certificate': {'step': certificate.step,
                               'flags': list(certificate.flags)},
               'update_difference_over_step': float(
                   (updates['sparse'] - updates['full']).norm()) / step}
        for mode, times in runs.items():
            row[mode] = {'seconds': statistics.median(t for t, _ in times),
                         'gradient_seconds': statistics.median(
                             g for _, g in times),
                         'all': times}
        row['speedup'] = row['full']['seconds'] / row['sparse']['seconds']
        out['requests'][name] = row
        print(name, json.dumps({k: v for k, v in row.items()
                                if not isinstance(v, dict)}),
              {m: (round(row[m]['seconds'], 3),
                   round(row[m]['gradient_seconds'], 3)) for m in runs},
              flush=True)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=2)


if __name__ == '__main__':
    main()
