import os
import os.path as osp
import subprocess
import sys

ROOT = osp.join(osp.dirname(osp.abspath(__file__)), '..')


def test_quick_start_runs_on_tiny_data():
    proc = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'examples', 'quick_start.py'), '--users', '80',
        '--items', '120', '--interactions', '1500', '--dim', '8'
    ], capture_output=True, text=True, timeout=300, env={
        **os.environ,
        # The package may be used from the checkout without being installed.
        'PYTHONPATH': os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')])
    })
    assert proc.returncode == 0, proc.stderr
    assert 'IFRU:' in proc.stdout and 'retrain:' in proc.stdout
