import argparse
import json
import subprocess
import sys

import pytest
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
    for amount in ('inf', 'nan'):
        assert main(['benchmark', '--request', f'random:{amount}',
                     '--no-progress', '--out', str(tmp_path)]) == 2
        assert 'positive, finite number' in capsys.readouterr().err


def test_a_full_disk_under_out_is_one_error_line(checkpoint, tmp_path,
                                                 monkeypatch, capsys):
    # torch.save reports a failed write as a RuntimeError.
    def full(*args, **kwargs):
        raise RuntimeError('PytorchStreamWriter failed writing file data/0: '
                           'file write failed')
    request = tmp_path / 'user.csv'
    request.write_text('user\n1\n')
    monkeypatch.setattr('torch.save', full)
    assert main(['unlearn', '--checkpoint', str(checkpoint), '--request',
                 str(request), '--out', str(tmp_path / 'o.pt')]) == 2
    assert 'error: writing the checkpoint failed' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.o.pt.lock',
                                                          'user.csv']


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


COMMANDS = {
    'demo': [],
    'train': [],
    'benchmark': [],
    'unlearn': ['--checkpoint', 'c.pt', '--request', 'r.csv', '--out', 'o.pt'],
}


def _subparsers():
    from torch_geometric_unlearn.cli import build_parser
    parser = build_parser()
    action = next(a for a in parser._actions
                  if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_help_shows_every_default(capsys):
    for name, sub in _subparsers().items():
        for action in sub._actions:
            if action.dest != 'help':
                assert action.help, f'{name} {action.option_strings}'
        with pytest.raises(SystemExit) as exit:
            main([name, '--help'])
        assert exit.value.code == 0
        text = ' '.join(capsys.readouterr().out.split())
        assert '--device DEVICE torch device' in text
        if name != 'unlearn':
            assert '(default: 1000)' in text  # --max-epochs
        assert '(default: cpu)' in text
    # The benchmark writes into a folder.
    with pytest.raises(SystemExit):
        main(['benchmark', '--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert '--out OUT folder to write NAME.json' in text
    assert '(default: benchmark-results)' in text


def test_every_command_takes_threads_device_and_no_progress():
    from torch_geometric_unlearn.cli import build_parser
    for name, required in COMMANDS.items():
        args = build_parser().parse_args([name, *required, '--threads', '1',
                                          '--device', 'cpu', '--no-progress'])
        assert (args.threads, args.device, args.no_progress) == (1, 'cpu',
                                                                 True)


@pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is available')
def test_unavailable_device_is_a_clean_error(capsys):
    for name, required in COMMANDS.items():
        assert main([name, *required, '--device', 'cuda']) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: device 'cuda' is not available") and \
            'Traceback' not in err, name
    assert main(['train', '--device', 'gpu0']) == 2
    err = capsys.readouterr().err
    assert "'--device gpu0' is not a torch device" in err
    assert err.count('\n') == 1  # one line


def test_progress_bars_stay_off_a_pipe(capsys):
    # Progress is on, but the output is no terminal: nothing is drawn.
    assert main(['train', '--layers', '1', '--dim', '8', '--max-epochs', '2',
                 '--threads', '1']) == 0
    assert capsys.readouterr().err == ''


def test_demo_table_names_directions_and_the_baseline(capsys):
    code = main(['demo', '--layers', '1', '--dim', '8', '--max-epochs', '2',
                 '--threads', '1', '--no-progress'])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ['method', 'seconds', 'speed-up', 'recall@20',
                                'ndcg@20', 'forgotten', 'rank', 'rank',
                                'shift']
    assert lines[2].split() == ['better:', 'lower', 'higher', 'higher',
                                'higher', '=', 'retrain', 'near', '1']
    assert [line.split()[0] for line in lines[3:7]] == [
        'original', 'ifru', 'retrain', 'drop']
    legend = ' '.join(' '.join(lines[7:]).split())
    assert 'do-nothing baseline' in legend
    assert "the target is the retrain's value" in legend


def test_demo_record_keeps_its_keys():
    from argparse import Namespace

    from torch_geometric_unlearn.cli import run_demo
    args = Namespace(dataset='synthetic', data_dir=None, layers=0, dim=8,
                     loss='bpr', l2=1.0, lr=1e-2, batch_size=2048,
                     max_epochs=2, patience=10, seed=0, device='cpu',
                     no_progress=True, fraction=0.01)
    methods = run_demo(args)['methods']
    assert list(methods) == ['original (old graph)', 'ifru', 'retrain',
                             'drop edges, no update']
    for row in methods.values():
        assert {'seconds', 'recall@20', 'ndcg@20', 'deleted_mean_rank',
                'rank_shift'} <= set(row)
    assert methods['retrain']['rank_shift'] == 1
    assert methods['original (old graph)']['rank_shift'] == 0
    assert methods['ifru']['speedup_vs_retrain'] > 0


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'model.pt'
    assert main(['train', '--layers', '1', '--dim', '8', '--max-epochs', '2',
                 '--no-progress', '--checkpoint', str(path)]) == 0
    return path


def _no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('trained before the arguments were checked')
    monkeypatch.setattr('torch_geometric_unlearn.cli.train', refuse)


@pytest.mark.parametrize('args, match', [
    (['--l2', 'nan'], "'l2' must be a finite number >= 0 .got nan"),
    (['--lr', 'inf'], "'lr' must be a finite number > 0 .got inf"),
    (['--checkpoint', 'missing/model.pt'],
     "'--checkpoint' 'missing/model.pt': the folder .* does not exist"),
    (['--out', 'missing/record.json'], "'--out' 'missing/record.json'"),
    (['--dim', '0'], r"'embedding_dim' \(--dim\) must be at least 1 .got 0"),
    (['--dim', '-4'], r"must be at least 1 .got -4"),
])
def test_train_refuses_bad_values_before_training(args, match, tmp_path,
                                                  monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _no_training(monkeypatch)
    assert main(['train', '--no-progress'] + args) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
    assert __import__('re').search(match, err), err
    assert list(tmp_path.iterdir()) == []


def test_unlearn_refuses_malformed_requests_and_outputs(checkpoint, tmp_path,
                                                        capsys):
    before = checkpoint.read_bytes()
    bad = tmp_path / 'bad.csv'
    bad.write_text('user,item\n1,2,3\n')
    out = tmp_path / 'out.pt'
    cases = [
        (['--request', str(bad), '--out', str(out)],
         "line 2: 3 values, but the header 'user,item' names 2"),
        (['--request', str(bad), '--out', str(tmp_path / 'no' / 'o.pt')],
         "'--out' .* does not exist"),
        (['--request', str(bad), '--out', str(out), '--report',
          str(tmp_path / 'no' / 'r.json')], "'--report' .* does not exist"),
    ]
    # Outputs naming one file, checked before the request is even read.
    good = tmp_path / 'good.csv'
    good.write_text('user\n1\n')
    same = tmp_path / '.' / 'out.pt'
    for option, other in [('--ledger', out), ('--report', out),
                          ('--report', checkpoint), ('--ledger', same)]:
        cases.append((['--request', str(good), '--out', str(same), option,
                       str(other)], f"'(--out|--checkpoint)' and "
                      f"'{option}' name the same file"))
    cases.append((['--request', str(good), '--out', str(out), '--report',
                   str(tmp_path / 'r'), '--ledger', str(tmp_path / 'r')],
                  "'--report' and '--ledger' name the same file"))
    for args, match in cases:
        assert main(['unlearn', '--checkpoint', str(checkpoint)] + args) == 2
        err = capsys.readouterr().err
        assert __import__('re').search(match, err), err
        assert not out.exists()
    assert checkpoint.read_bytes() == before


def test_unlearn_may_write_over_its_checkpoint(checkpoint, tmp_path, capsys):
    from torch_geometric_unlearn.checkpoint import Checkpoint
    path = tmp_path / 'model.pt'
    path.write_bytes(checkpoint.read_bytes())
    first = Checkpoint.load(str(path))
    request = tmp_path / 'pairs.csv'
    pairs = first.data.train_index[:, :2]
    request.write_text('user,item\n' + ''.join(
        f'{u},{i}\n' for u, i in pairs.t().tolist()))
    assert main(['unlearn', '--checkpoint', str(path), '--request',
                 str(request), '--out', str(path)]) == 0
    after = Checkpoint.load(str(path))
    assert after.data.num_train == first.data.num_train - 2
    keys = pairs[0] * first.data.num_items + pairs[1]
    assert torch.equal(after.forgotten, pairs[:, keys.argsort()])
    # No temporary file is left; the writer's lock file stays (removing it
    # would race with the next writer).
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        '.model.pt.lock', 'model.pt', 'pairs.csv']


def test_broken_checkpoints_are_named_errors(checkpoint, tmp_path, capsys):
    raw = torch.load(checkpoint, weights_only=True)
    request = tmp_path / 'u.csv'
    request.write_text('user\n1\n')
    nan = dict(raw, model=dict(raw['model']))
    state = dict(nan['model']['state_dict'])
    state['embedding.weight'] = state['embedding.weight'].clone()
    state['embedding.weight'][3, 1] = float('nan')
    nan['model']['state_dict'] = state
    missing = {k: v for k, v in raw.items() if k != 'examples'}
    for payload, match in ((nan, "'embedding.weight' holds NaN"),
                           (missing, "lacks ['examples']")):
        path = tmp_path / 'broken.pt'
        torch.save(payload, path)
        assert main(['unlearn', '--checkpoint', str(path), '--request',
                     str(request), '--out', str(tmp_path / 'o.pt')]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and match in err, err
        assert not (tmp_path / 'o.pt').exists()


def test_concurrent_unlearn_runs_lose_no_request(checkpoint, tmp_path):
    # Three runs on one checkpoint at once, each forgetting another user:
    # each waits for the one before, so the file ends with all three, one
    # ledger chain.  (benchmarks/concurrent_writers.py runs many trials.)
    from torch_geometric_unlearn.checkpoint import Checkpoint
    path = tmp_path / 'model.pt'
    path.write_bytes(checkpoint.read_bytes())
    users = Checkpoint.load(str(path)).data.train_index[0].unique()[:3]
    runs = []
    for user in users.tolist():
        request = tmp_path / f'user{user}.csv'
        request.write_text(f'user\n{user}\n')
        runs.append(subprocess.Popen(
            [sys.executable, '-m', 'torch_geometric_unlearn', 'unlearn',
             '--checkpoint', str(path), '--request', str(request), '--out',
             str(path), '--no-progress', '--threads', '1'],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    errors = [run.communicate()[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], errors
    after = Checkpoint.load(str(path))
    assert len(after.ledger) == 3
    assert set(after.forgotten[0].tolist()) == set(users.tolist())
    assert not torch.isin(after.data.train_index[0], users).any()


def test_train_refuses_one_file_for_two_outputs(tmp_path, monkeypatch,
                                                capsys):
    _no_training(monkeypatch)
    path = str(tmp_path / 'both')
    assert main(['train', '--out', path, '--checkpoint', path]) == 2
    assert "'--out' and '--checkpoint' name the same file" in \
        capsys.readouterr().err


def test_a_failed_side_output_leaves_the_checkpoint_as_it_was(
        checkpoint, tmp_path, monkeypatch, capsys):
    # A full disk while the ledger export is written: the checkpoint keeps
    # its old state (not the request applied without its export), no
    # temporary file stays, and the rerun applies the request.
    import errno

    from torch_geometric_unlearn.unlearn.ledger import Ledger
    path = tmp_path / 'model.pt'
    path.write_bytes(checkpoint.read_bytes())
    path.chmod(0o600)  # it holds the training data: private stays private
    before = path.read_bytes()
    request = tmp_path / 'user.csv'
    request.write_text('user\n2\n')
    args = ['unlearn', '--checkpoint', str(path), '--request', str(request),
            '--out', str(path), '--ledger', str(tmp_path / 'ledger.jsonl'),
            '--report', str(tmp_path / 'report.json')]
    write = Ledger.write_jsonl

    def full(self, f):
        write(self, f)
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(Ledger, 'write_jsonl', full)
    assert main(args) == 2
    assert 'No space left on device' in capsys.readouterr().err
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        '.model.pt.lock', 'model.pt', 'user.csv']
    monkeypatch.setattr(Ledger, 'write_jsonl', write)
    assert main(args) == 0
    assert (path.stat().st_mode & 0o777) == 0o600
    assert json.loads((tmp_path / 'report.json').read_text())[
        'forgotten'] > 0
    assert len(Ledger.from_jsonl(str(tmp_path / 'ledger.jsonl'))) == 1
