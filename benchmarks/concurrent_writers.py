r"""Concurrent writers of one checkpoint: start two or three ``unlearn``
commands at once on the same checkpoint, written in place (``--out`` equal
to ``--checkpoint``), each forgetting another user, and check that no
request is lost: every run exits 0, the final ledger is one chain holding
one entry per run, and every user's pairs are forgotten.

Example::

    python benchmarks/concurrent_writers.py --trials 50 --writers 2 3 \
        --out benchmarks/results/concurrent_writers.json
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import torch

from torch_geometric_unlearn.checkpoint import Checkpoint


def command(path, request):
    return [sys.executable, '-m', 'torch_geometric_unlearn', 'unlearn',
            '--checkpoint', path, '--request', request, '--out', path,
            '--no-progress', '--threads', '1']


def trial(original, folder, users):
    # One trial: the writers start together; returns what survived.
    path = os.path.join(folder, 'model.pt')
    shutil.copy(original, path)
    runs = []
    for user in users:
        request = os.path.join(folder, f'user{user}.csv')
        with open(request, 'w') as f:
            f.write(f'user\n{user}\n')
        runs.append(subprocess.Popen(command(path, request),
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True))
    errors = [run.communicate()[1] for run in runs]
    codes = [run.returncode for run in runs]
    after = Checkpoint.load(path)  # verifies the ledger chain and bindings
    kept = set(after.forgotten[0].tolist())
    applied = [user for user in users
               if user in kept and not bool(torch.isin(
                   after.data.train_index[0], torch.tensor([user])).any())]
    return {'exit_codes': codes, 'ledger_entries': len(after.ledger),
            'requests_kept': len(applied),
            'waited': sum('waiting for another writer' in e for e in errors),
            'errors': [e.strip().splitlines()[-1] for e in errors if
                       e.strip() and 'waiting' not in e.strip()
                       .splitlines()[-1]]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--trials', type=int, default=50)
    parser.add_argument('--writers', type=int, nargs='+', default=[2, 3])
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp()
    original = os.path.join(folder, 'original.pt')
    subprocess.run([sys.executable, '-m', 'torch_geometric_unlearn', 'train',
                    '--dataset', 'synthetic', '--layers', '1', '--dim', '16',
                    '--max-epochs', '2', '--no-progress', '--checkpoint',
                    original], check=True, capture_output=True)
    users = Checkpoint.load(original).data.train_index[0].unique().tolist()
    rows = []
    for writers in args.writers:
        for number in range(args.trials):
            start = time.perf_counter()
            row = trial(original, folder, users[:writers])
            row.update(writers=writers, trial=number,
                       seconds=time.perf_counter() - start)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        str(w): {
            'trials': sum(r['writers'] == w for r in rows),
            'lost_requests': sum(w - r['requests_kept'] for r in rows
                                 if r['writers'] == w),
            'failed_runs': sum(c != 0 for r in rows if r['writers'] == w
                               for c in r['exit_codes']),
            'trials_where_a_run_waited': sum(r['waited'] > 0 for r in rows
                                             if r['writers'] == w),
            'chains_with_one_entry_per_run': sum(
                r['ledger_entries'] == w for r in rows
                if r['writers'] == w),
        } for w in args.writers}
    report = {
        'command': 'python benchmarks/concurrent_writers.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'date': time.strftime('%Y-%m-%d'),
        'machine': f'{platform.machine()}, {os.cpu_count()} cores',
        'summary': summary,
        'trials': rows,
    }
    print(json.dumps(summary, indent=1))
    shutil.rmtree(folder)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    lost = sum(s['lost_requests'] + s['failed_runs']
               for s in summary.values())
    return 1 if lost else 0


if __name__ == '__main__':
    sys.exit(main())
