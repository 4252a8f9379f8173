import json
import subprocess
import sys

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
