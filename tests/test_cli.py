import json
import subprocess
import sys

import torch

from torch_geometric_unlearn.cli import main


def test_train_writes_a_record(tmp_path, capsys):
    out = tmp_path / 'record.json'
    code = main(['train', '--layers', '1', '--dim', '16', '--max-epochs', '2',
                 '--no-progress', '--out', str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'recall@20' in printed and 'epochs: 2' in printed
    record = json.loads(out.read_text())
    assert record['epochs'] == 2
    assert 0 <= record['test']['recall@20'] <= 1


def test_bad_input_is_a_clean_error(tmp_path, capsys):
    code = main(['train', '--dataset', 'lastfm', '--data-dir',
                 str(tmp_path / 'missing'), '--no-progress'])
    assert code == 2
    assert 'does not exist' in capsys.readouterr().err


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, '-m', 'torch_geometric_unlearn',
                           '--help'], capture_output=True, text=True)
    assert proc.returncode == 0 and 'demo' in proc.stdout


def test_benchmark_writes_json_csv_png(tmp_path, capsys):
    code = main(['benchmark', '--synthetic-size', '1500', '--layers', '1',
                 '--dim', '8', '--max-epochs', '2', '--methods', 'ifru',
                 'retrain', '--ifru-repeats', '1', '--request', 'users:2',
                 '--no-progress', '--out', str(tmp_path), '--name', 'b'])
    assert code == 0
    printed = capsys.readouterr().out
    assert '| ifru |' in printed and 'request users:2' in printed
    assert {p.name for p in tmp_path.iterdir()} == {'b.json', 'b.csv',
                                                    'b.png'}
    report = json.loads((tmp_path / 'b.json').read_text())
    assert report['command'].startswith(
        'python -m torch_geometric_unlearn benchmark --synthetic-size 1500')
    assert report['runs'][0]['methods']['ifru']['forgotten_user_row_norm'] \
        == 0


def test_benchmark_rejects_bad_request(tmp_path, capsys):
    code = main(['benchmark', '--request', 'flip:0.01', '--no-progress',
                 '--out', str(tmp_path)])
    assert code == 2
    assert 'BCE' in capsys.readouterr().err


def test_unlearn_applies_request_files_to_checkpoints(tmp_path, capsys):
    ckpt = tmp_path / 'model.pt'
    assert main(['train', '--layers', '1', '--dim', '8', '--max-epochs', '2',
                 '--no-progress', '--checkpoint', str(ckpt)]) == 0
    from torch_geometric_unlearn.checkpoint import Checkpoint
    first = Checkpoint.load(str(ckpt))
    pairs = first.data.train_index[:, :3]
    request = tmp_path / 'pairs.json'
    request.write_text(json.dumps({'interactions': pairs.t().tolist()}))
    out, report = tmp_path / 'after.pt', tmp_path / 'report.json'
    assert main(['unlearn', '--checkpoint', str(ckpt), '--request',
                 str(request), '--out', str(out), '--report',
                 str(report)]) == 0
    after = Checkpoint.load(str(out))
    assert after.data.num_train == first.data.num_train - 3
    # The training run's horizon travels with the checkpoint, and the
    # trajectory step used it.
    assert first.horizon is not None and torch.equal(after.horizon,
                                                     first.horizon)
    printed = capsys.readouterr().out
    assert 'certificate: trajectory step' in printed and \
        'horizon optimizer' in printed
    keys = pairs[0] * first.data.num_items + pairs[1]
    assert torch.equal(after.forgotten, pairs[:, keys.argsort()])
    assert json.loads(report.read_text())['forgotten'] == 3
    assert not torch.equal(after.model.embedding.weight,
                           first.model.embedding.weight)

    # A user deletion from CSV on the new checkpoint, then the same pairs
    # again: the checkpoint remembers what was forgotten.
    users = tmp_path / 'users.csv'
    users.write_text('user\n7\n9\n')
    assert main(['unlearn', '--checkpoint', str(out), '--request',
                 str(users), '--out', str(tmp_path / 'after2.pt')]) == 0
    capsys.readouterr()
    assert main(['unlearn', '--checkpoint', str(out), '--request',
                 str(request), '--out', str(tmp_path / 'x.pt')]) == 2
    assert 'already forgotten' in capsys.readouterr().err
    assert not (tmp_path / 'x.pt').exists()

    bad = tmp_path / 'bad.csv'
    bad.write_text('uid,iid\n1,2\n')
    assert main(['unlearn', '--checkpoint', str(out), '--request', str(bad),
                 '--out', str(tmp_path / 'y.pt')]) == 2
    assert "header 'user,item'" in capsys.readouterr().err
