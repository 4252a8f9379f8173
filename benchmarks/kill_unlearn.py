r"""Kill test of the ``unlearn`` command: SIGKILL it at random moments while
it writes its new checkpoint over the one it read (``--out`` equal to
``--checkpoint``), and check that the file is always a whole checkpoint,
the old one or the new one, never a torn one.

Each kill waits until the write has begun (a temporary file appears beside
the checkpoint, or the checkpoint itself changes), then a random
0-``--window`` seconds more.

Example::

    python benchmarks/kill_unlearn.py --kills 50 \
        --out benchmarks/results/kill_unlearn.json
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from torch_geometric_unlearn.checkpoint import Checkpoint


def command(path, request):
    return [sys.executable, '-m', 'torch_geometric_unlearn', 'unlearn',
            '--checkpoint', path, '--request', request, '--out', path,
            '--no-progress']


def writing(folder, path, stat) -> bool:
    # The write has begun: a temporary file beside the target, or the
    # target itself changed (a write in place).
    if any(name.endswith('.tmp') for name in os.listdir(folder)):
        return True
    now = os.stat(path)
    return (now.st_size, now.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns)


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kills', type=int, default=50)
    parser.add_argument('--window', type=float, default=0.005,
                        help='longest wait after the write began')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp()
    original = os.path.join(folder, 'original.pt')
    subprocess.run([sys.executable, '-m', 'torch_geometric_unlearn', 'train',
                    '--dataset', 'synthetic',
                    '--dim', '512', '--max-epochs', '1', '--no-progress',
                    '--checkpoint', original], check=True,
                   capture_output=True)
    request = os.path.join(folder, 'users.csv')
    with open(request, 'w') as f:
        f.write('user\n5\n')
    path = os.path.join(folder, 'model.pt')
    shutil.copy(original, path)
    start = time.perf_counter()
    subprocess.run(command(path, request), check=True, capture_output=True)
    duration = time.perf_counter() - start
    old = digest(original)

    rng = random.Random(args.seed)
    outcomes = {'old': 0, 'new': 0, 'torn': 0}
    for _ in range(args.kills):
        shutil.copy(original, path)
        proc = subprocess.Popen(command(path, request),
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        stat = os.stat(path)
        while proc.poll() is None and not writing(folder, path, stat):
            time.sleep(0.0005)
        time.sleep(rng.uniform(0, args.window))
        proc.kill()
        proc.wait()
        for name in os.listdir(folder):  # what a kill leaves behind
            if name.endswith('.tmp'):
                os.unlink(os.path.join(folder, name))
        if digest(path) == old:
            outcomes['old'] += 1
            continue
        try:  # not the old file: it must be a whole new checkpoint
            outcomes['new' if len(Checkpoint.load(path).ledger) == 1 else
                     'torn'] += 1
        except Exception:
            outcomes['torn'] += 1
    report = {
        'command': 'python benchmarks/kill_unlearn.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'date': time.strftime('%Y-%m-%d'),
        'run_seconds': duration,
        'kills': args.kills,
        'outcomes': outcomes,
    }
    print(json.dumps(report, indent=1))
    shutil.rmtree(folder)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)
    return 1 if outcomes['torn'] else 0


if __name__ == '__main__':
    sys.exit(main())
