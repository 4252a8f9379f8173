import os
import os.path as osp
import re
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
    # --tiny picks the sizes; one given explicitly still wins.
    out = run_example('quick_start.py', '--tiny', '--users', '60', '--dim',
                      '8', '--threads', '1')
    assert 'users=60, items=120' in out
    for row in ('original (old graph)', 'drop the edges (baseline)', 'IFRU',
                'retrain from scratch'):
        assert re.search(rf'^{re.escape(row)} +0\.\d+ +0\.\d+', out,
                         re.MULTILINE), out
    assert 'certificate: ' in out


@pytest.mark.parametrize('name, expected', [
    ('forget_me.py', ['after IFRU: embedding row norm 0.000', 'IFRU took']),
    ('sequential.py', ['AlreadyForgottenError', 'retrained']),
    ('gnn_link_predictor.py', ['IFRU:', 'converged', 'retrain:']),
    ('hetero_recommender.py', ["('item', 'rev_rates', 'user'): 693",
                               'IFRU:', 'retrain:']),
])
def test_example_runs_on_tiny_data(name, expected):
    out = run_example(name, '--tiny', '--dim', '8', '--threads', '1')
    for text in expected:
        assert text in out


def test_poisoning_attack_lifts_targets_and_ifru_removes_it():
    out = run_example('poisoning.py', '--tiny', '--threads', '1')
    # The table: model, the targets' hit ratio and top-20 share among the
    # real users, ...
    rows = {
        name: (float(hit), float(share))
        for name, hit, share in re.findall(
            r'^(clean|poisoned|IFRU|retrain|drop edges) +([\d.]+) +'
            r'([\d.]+)', out, re.MULTILINE)
    }
    assert set(rows) == {'clean', 'poisoned', 'IFRU', 'retrain',
                         'drop edges'}, out
    hit = {name: row[0] for name, row in rows.items()}
    share = {name: row[1] for name, row in rows.items()}

    # The attack works: the targets take several times their clean share of
    # real users' top-20 slots, and reach many more users.
    assert share['poisoned'] > 3 * share['clean'], out
    assert hit['poisoned'] > hit['clean'] + 0.3, out
    # Retraining without the fake interactions undoes it ...
    assert share['retrain'] < share['clean'] + 0.5 * (share['poisoned'] -
                                                      share['clean']), out

    def removed(name, metric):
        return ((metric['poisoned'] - metric[name]) /
                (metric['poisoned'] - metric['clean']))

    # ... and so does IFRU, most of the lift, far more than keeping the
    # poisoned parameters on the clean graph.
    assert removed('IFRU', share) > 0.7, out
    assert removed('IFRU', hit) > 0.7, out
    assert removed('IFRU', share) > removed('drop edges', share) + 0.2, out
    # The printed summary agrees with the table.
    printed = re.search(r'^  IFRU +(-?\d+)% /', out, re.MULTILINE)
    assert printed, out
    assert abs(int(printed.group(1)) - 100 * removed('IFRU', share)) < 2, out
    assert 'did not lift' not in out


def closures(out):
    # The closing lines: "  <method>  <closure>".
    return {name.strip(): float(value) for name, value in re.findall(
        r'^  (IFRU|drop the edges \(baseline\)) +(-?[\d.]+)$', out,
        re.MULTILINE)}


def test_own_training_loop_template():
    out = run_example('own_training_loop.py', '--tiny', '--threads', '1')
    assert 'objective: BPR' in out and 'node_id' in out
    assert 'trajectory step' in out and ': ok' in out
    found = closures(out)
    assert set(found) == {'IFRU', 'drop the edges (baseline)'}, out
    # Measured 0.83 against 0.38: IFRU must beat doing nothing clearly.
    assert found['IFRU'] > 0.6, out
    assert found['IFRU'] > found['drop the edges (baseline)'] + 0.2, out


def test_own_loop_sage_template():
    # The generic trajectory step on an early-stopped SAGE, with Adam's
    # horizon: the example prints its closure beside the baseline, whatever
    # it is (0.36 against 0.41 when measured); here that the template runs
    # end to end, on the path the docstring describes.
    out = run_example('own_loop_sage.py', '--tiny', '--threads', '1')
    assert 'weight_decay=0.0001' in out and 'IFRU took' in out
    assert "horizon: Adam's state" in out and 'step: trajectory' in out
    assert set(closures(out)) == {'IFRU', 'drop the edges (baseline)'}, out


def test_sparse_tensor_loop():
    # Needs torch-sparse: runs in CI's second environment ('full' extra).
    import torch_geometric.typing
    if not torch_geometric.typing.WITH_TORCH_SPARSE:
        if os.environ.get('TGU_FULL') == '1':
            raise AssertionError('TGU_FULL=1 but torch-sparse is missing')
        pytest.skip('torch-sparse is not installed')
    out = run_example('sparse_tensor_loop.py')
    assert 'new graph: SparseTensor with' in out and 'certificate:' in out
