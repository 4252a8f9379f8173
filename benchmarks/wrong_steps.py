r"""Does the certificate notice a solver that got the step wrong?  On
package-trained LightGCN-2 and MF (synthetic and MovieLens-100K), a 1%
random request and five whole users are unlearned with the trajectory
response as computed, reversed, and scaled by 3 and 10 (the response
function is wrapped, nothing else changes), and the certificate's flags and
response figures are recorded.

Example::

    python benchmarks/wrong_steps.py --data-dir ../shared/data \
        --out benchmarks/results/wrong_steps.json
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

import torch_geometric_unlearn.unlearn.ifru_update as ifru_update
from torch_geometric_unlearn import TrainConfig, build_model, train
from torch_geometric_unlearn.data.datasets import load_dataset, synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner

SCALES = (1, -1, 3, 10)


def scaled(solve, scale):
    def wrong(*args, **kwargs):
        x, diagnostics = solve(*args, **kwargs)
        return scale * x, diagnostics
    return wrong


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', default='../shared/data')
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    solve = ifru_update.trajectory_response
    datasets = {'synthetic': synthetic(300, 400, 8000, num_topics=6,
                                       seed=1),
                'ml-100k': load_dataset('ml-100k', args.data_dir)}
    rows = []
    for name, data in datasets.items():
        for layers in (2, 0):
            torch.manual_seed(0)
            model = build_model(data, 32, layers)
            record = train(model, data, TrainConfig(progress=False, l2=1.0,
                                                    max_epochs=40))
            requests = {
                'random:0.01': dict(interactions=random_interactions(
                    data, fraction=0.01, seed=1)),
                'users:5': dict(users=data.train_index[0].unique()[:5])}
            for request, kwargs in requests.items():
                for scale in SCALES:
                    ifru_update.trajectory_response = scaled(solve, scale)
                    try:
                        certificate = IFRUnlearner(
                            model, data, record.examples, record.labels,
                            1.0, horizon=record.horizon).unlearn(
                                **kwargs).certificate
                    finally:
                        ifru_update.trajectory_response = solve
                    rows.append({
                        'data': name, 'layers': layers, 'request': request,
                        'scale': scale, 'step': certificate.step,
                        'flags': certificate.flags,
                        'response_alignment':
                            certificate.response_alignment,
                        'response_bound': certificate.response_bound,
                        'forgotten_auc': [certificate.forgotten_auc_before,
                                          certificate.forgotten_auc_after]})
                    print(json.dumps(rows[-1]), flush=True)
    summary = {str(scale): {
        'updates': sum(r['scale'] == scale for r in rows),
        'flagged': sum(r['scale'] == scale and bool(r['flags'])
                       for r in rows)} for scale in SCALES}
    report = {
        'command': 'python benchmarks/wrong_steps.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'date': time.strftime('%Y-%m-%d'),
        'machine': f'{platform.machine()}, {os.cpu_count()} cores',
        'summary': summary, 'updates': rows}
    print(json.dumps(summary, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    main()
