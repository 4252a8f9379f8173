import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..')


def run_example(name, *args):
    proc = subprocess.run([
        sys.executable, osp.join(ROOT, 'examples', name), *args
    ], capture_output=True, text=True, timeout=300, env={
        **os.environ,
        # The package may be used from the checkout without being installed.
        'PYTHONPATH': os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')])
    })
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_quick_start_runs_on_tiny_data():
    out = run_example('quick_start.py', '--users', '80', '--items', '120',
                      '--interactions', '1500', '--dim', '8')
    assert 'IFRU:' in out and 'retrain:' in out


@pytest.mark.parametrize('name, expected', [
    ('forget_me.py', ['after IFRU: embedding row norm 0.000', 'IFRU took']),
    ('poisoning.py', ['target top-20 share', 'retrain']),
    ('sequential.py', ['AlreadyForgottenError', 'retrained']),
    ('gnn_link_predictor.py', ['IFRU:', 'converged', 'retrain:']),
    ('hetero_recommender.py', ["('item', 'rev_rates', 'user'): 693",
                               'IFRU:', 'retrain:']),
])
def test_example_runs_on_tiny_data(name, expected):
    out = run_example(name, '--tiny', '--dim', '8')
    for text in expected:
        assert text in out
