import dataclasses
import json

import pytest
import torch
from test_base import Shift, triples

from torch_geometric_unlearn.checkpoint import Checkpoint
from torch_geometric_unlearn.cli import main
from torch_geometric_unlearn.training.trainer import build_model
from torch_geometric_unlearn.unlearn.ledger import (Ledger, LedgerError,
                                                    data_fingerprint,
                                                    model_fingerprint)


@pytest.fixture
def applied(small_data):
    # Three requests on one unlearner.
    unlearner = Shift(build_model(small_data, 4, 1), small_data,
                      triples(small_data), l2=1.0)
    results = [unlearner.unlearn(small_data.train_index[:, [i, i + 40,
                                                            i + 80]])
               for i in range(3)]
    return unlearner, results


def test_every_request_leaves_a_chained_entry(applied):
    unlearner, results = applied
    ledger = unlearner.ledger
    assert len(ledger) == 3 and ledger.head == ledger.entries[-1].hash
    for k, (entry, result) in enumerate(zip(ledger.entries, results)):
        assert result.entry == entry and entry.index == k
        assert entry.method == 'shift' and entry.count == 3
        assert entry.pairs == result.request.t().tolist()
        if k:
            assert entry.previous == ledger.entries[k - 1].hash
            assert entry.model_before == ledger.entries[k - 1].model_after
    assert ledger.entries[-1].model_after == model_fingerprint(
        unlearner.model)
    assert ledger.entries[-1].data_after == data_fingerprint(unlearner.data)
    assert ledger.entries[0].config['l2'] == 1.0
    ledger.verify()


def edited(ledger, position, **change):
    entries = list(ledger.entries)
    entries[position] = dataclasses.replace(entries[position], **change)
    return [dataclasses.asdict(e) for e in entries]


def test_tampering_is_detected(applied):
    ledger = applied[0].ledger
    raw = ledger.to_list()
    cases = [
        (edited(ledger, 1, count=2), 'entry 1 was edited'),
        (raw[:1] + raw[2:], 'entry 1 says it is entry 2'),
        ([raw[1], raw[0], raw[2]], 'entry 0 says it is entry 1'),
        (edited(ledger, 0, pairs=[[0, 1], [0, 2], [0, 3]]),
         'entry 0 was edited'),
    ]
    # An edit whose entry hash was recomputed still breaks the chain.
    forged = ledger.entries[1]
    body = dict(forged.body(), count=7)
    from torch_geometric_unlearn.unlearn.ledger import _entry_hash
    cases.append((edited(ledger, 1, count=7, hash=_entry_hash(body)),
                  'entry 2 is not chained'))
    for entries, match in cases:
        with pytest.raises(LedgerError, match=match):
            Ledger.from_list(entries)


def test_every_field_edited_is_refused(applied):
    # Each field of an entry edited in turn, the entry's hash recomputed
    # (as a forger would): the chain or the pairs' digest refuses it.
    from torch_geometric_unlearn.unlearn.ledger import (LedgerEntry,
                                                        _entry_hash)
    ledger = applied[0].ledger
    other = {int: 7, str: 'f' * 64, list: [[0, 1]], dict: {'l2': 0.5}}
    for field in dataclasses.fields(LedgerEntry):
        if field.name == 'hash':
            continue
        old = getattr(ledger.entries[1], field.name)
        value = (None if old is not None and field.name == 'certificate'
                 else other[type(old)] if type(old) in other else 7)
        if value == old:
            value = 'edited'
        body = dict(ledger.entries[1].body(), **{field.name: value})
        raw = edited(ledger, 1, **{field.name: value},
                     hash=_entry_hash(body))
        with pytest.raises(LedgerError):
            Ledger.from_list(raw)
    # Pairs of three ids, hash recomputed: refused by name, no traceback.
    body = dict(ledger.entries[0].body(), pairs=[[0, 1, 2]])
    with pytest.raises(LedgerError, match='two integers'):
        Ledger.from_list(edited(ledger, 0, pairs=[[0, 1, 2]],
                                hash=_entry_hash(body)))


def test_the_model_edited_through_data_is_recorded(small_data):
    # copy_model=False: the caller edits the model between requests
    # through .data, which moves no version counter; the next entry's
    # model_before must be the edited model, not the one cached.
    model = build_model(small_data, 4, 1)
    unlearner = Shift(model, small_data, triples(small_data), l2=1.0,
                      copy_model=False)
    unlearner.unlearn(small_data.train_index[:, [0, 40, 80]])
    model.embedding.weight.data[0, 0] += 0.5
    edited_print = model_fingerprint(model)
    entry = unlearner.unlearn(small_data.train_index[:, [1, 41, 81]]).entry
    assert entry.model_before == edited_print
    assert entry.model_before != unlearner.ledger.entries[0].model_after


def test_json_lines_and_salt(applied, tmp_path, small_data):
    ledger = applied[0].ledger
    path = tmp_path / 'ledger.jsonl'
    ledger.to_jsonl(str(path))
    assert len(path.read_text().splitlines()) == 3
    assert Ledger.from_jsonl(str(path)).entries == ledger.entries
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record['time'] = '1999-01-01T00:00:00Z'
    path.write_text('\n'.join([json.dumps(record)] + lines[1:]) + '\n')
    with pytest.raises(LedgerError, match='entry 0 was edited'):
        Ledger.from_jsonl(str(path))
    path.write_bytes(b'\xff\xfe not text\n')
    with pytest.raises(LedgerError, match='is not JSON Lines'):
        Ledger.from_jsonl(str(path))
    # Salted: a digest of the pairs, never the pairs.
    salted = Shift(build_model(small_data, 4, 1), small_data,
                   triples(small_data), l2=1.0)
    salted.ledger = Ledger(salt='s3cret')
    entry = salted.unlearn(small_data.train_index[:, [5, 6, 7]]).entry
    assert entry.pairs is None and entry.count == 3
    assert entry.pairs_digest != ledger.entries[0].pairs_digest


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    # A trained checkpoint and the one two requests later.
    folder = tmp_path_factory.mktemp('ledger')
    first = folder / 'model.pt'
    assert main(['train', '--layers', '1', '--dim', '8', '--max-epochs', '2',
                 '--no-progress', '--checkpoint', str(first)]) == 0
    users = folder / 'users.csv'
    users.write_text('user\n3\n')
    items = folder / 'items.csv'
    items.write_text('item\n11\n')
    last = folder / 'after.pt'
    assert main(['unlearn', '--checkpoint', str(first), '--request',
                 str(users), '--out', str(last)]) == 0
    assert main(['unlearn', '--checkpoint', str(last), '--request',
                 str(items), '--out', str(last), '--ledger',
                 str(folder / 'ledger.jsonl')]) == 0
    return first, last


def test_checkpoints_carry_their_ledger(checkpoints):
    first, last = checkpoints
    assert len(Checkpoint.load(str(first)).ledger) == 0
    ckpt = Checkpoint.load(str(last))
    assert [e.count > 0 for e in ckpt.ledger.entries] == [True, True]
    exported = Ledger.from_jsonl(str(last.parent / 'ledger.jsonl'))
    assert exported.entries == ckpt.ledger.entries


def swap(raw, other, key):
    out = dict(raw)
    out[key] = other[key]
    return out


def test_parts_that_do_not_belong_are_refused(checkpoints, tmp_path):
    first, last = checkpoints
    raw = torch.load(last, weights_only=True)
    old = torch.load(first, weights_only=True)
    forgotten = raw['forgotten'][:, 1:]
    cases = [
        (swap(raw, old, 'model'), 'the model part does not match'),
        (swap(raw, old, 'examples'), 'the examples part does not match'),
        (swap(raw, old, 'data'), 'the data part does not match'),
        (dict(raw, ledger=raw['ledger'][:1]),
         'the model is not the one the ledger'),
        (dict(raw, ledger=[dict(raw['ledger'][0], method='retrain'),
                           raw['ledger'][1]]), 'entry 0 was edited'),
        (dict(raw, forgotten=forgotten), 'record of forgotten pairs'),
        (dict(raw, fingerprints=None), 'lacks the fingerprints'),
    ]
    # A model and fingerprints swapped together: the ledger still objects.
    swapped = swap(swap(raw, old, 'model'), old, 'fingerprints')
    swapped['fingerprints'] = dict(raw['fingerprints'],
                                   model=old['fingerprints']['model'])
    cases.append((swapped, 'the model is not the one the ledger'))
    for payload, match in cases:
        path = tmp_path / 'tampered.pt'
        torch.save(payload, path)
        with pytest.raises(LedgerError, match=match):
            Checkpoint.load(str(path))
    Checkpoint.load(str(last))  # the original still loads


def test_saving_over_another_writer_s_requests_is_refused(checkpoints,
                                                          tmp_path):
    from torch_geometric_unlearn.checkpoint import CheckpointConflict
    first, last = checkpoints
    path = tmp_path / 'model.pt'
    path.write_bytes(last.read_bytes())
    mine = Checkpoint.load(str(path))
    # Another writer applies a request after 'mine' was loaded.
    request = tmp_path / 'user.csv'
    request.write_text(f'user\n{int(mine.data.train_index[0, 0])}\n')
    assert main(['unlearn', '--checkpoint', str(path), '--request',
                 str(request), '--out', str(path)]) == 0
    theirs = path.read_bytes()
    with pytest.raises(CheckpointConflict, match='3 ledger entries there, '
                                                 '2 here'):
        mine.save(str(path))
    assert path.read_bytes() == theirs  # nothing written
    # An untouched trained checkpoint saved over one with requests, and a
    # file of the format before the ledger whose forgotten pairs are not
    # held, are refused too; saving over the same requests or a file
    # without any is not.
    with pytest.raises(CheckpointConflict):
        Checkpoint.load(str(first)).save(str(path))
    old = dict(torch.load(last, weights_only=True),
               format='torch_geometric_unlearn.checkpoint/1', ledger=[])
    torch.save(old, tmp_path / 'old.pt')
    with pytest.raises(CheckpointConflict, match='0 ledger entries there'):
        Checkpoint.load(str(first)).save(str(tmp_path / 'old.pt'))
    Checkpoint.load(str(last)).save(str(tmp_path / 'old.pt'))
    Checkpoint.load(str(path)).save(str(path))
    Checkpoint.load(str(last)).save(str(tmp_path / 'new.pt'))
    Checkpoint.load(str(first)).save(str(tmp_path / 'new.pt'),
                                     overwrite=True)
    assert len(Checkpoint.load(str(tmp_path / 'new.pt')).ledger) == 0


def unlearn_in_place(path, user):
    request = path.parent / f'user{user}.csv'
    request.write_text(f'user\n{user}\n')
    return main(['unlearn', '--checkpoint', str(path), '--request',
                 str(request), '--out', str(path), '--no-progress'])


def test_a_checkpoint_before_the_ledger_is_upgraded_and_loads_after(
        checkpoints, tmp_path):
    # As the release before the ledger wrote it after a request: no ledger,
    # no fingerprints, a record of forgotten pairs.
    first, last = checkpoints
    raw = torch.load(last, weights_only=True)
    old = {k: v for k, v in raw.items()
           if k not in ('ledger', 'ledger_salt', 'fingerprints')}
    old['format'] = 'torch_geometric_unlearn.checkpoint/1'
    path = tmp_path / 'old.pt'
    torch.save(old, path)
    loaded = Checkpoint.load(str(path))
    [entry] = loaded.ledger.entries
    assert entry.method == 'upgrade' and entry.count == \
        raw['forgotten'].size(1)
    assert entry.model_after == model_fingerprint(loaded.model)
    users = loaded.data.train_index[0].unique()[:2].tolist()
    for number, user in enumerate(users):
        assert unlearn_in_place(path, user) == 0
        after = Checkpoint.load(str(path))
        assert len(after.ledger) == 2 + number
        assert after.forgotten.size(1) == sum(
            e.count for e in after.ledger.entries)


def test_relabelled_emptied_and_edited_checkpoints_are_refused(checkpoints,
                                                               tmp_path):
    first, last = checkpoints
    raw = torch.load(last, weights_only=True)
    horizon = torch.ones(3) if raw['horizon'] is None else \
        raw['horizon'] * 2
    cases = [
        (dict(raw, format='torch_geometric_unlearn.checkpoint/1'),
         LedgerError, r"says it is .*/1.* but holds \['ledger'"),
        (dict(raw, format='torch_geometric_unlearn.checkpoint/2'),
         LedgerError, r"says it is .*/2.* but holds \['ledger_salt'"),
        (dict(raw, ledger=[]), LedgerError,
         'records forgotten pairs but its ledger is empty'),
        (dict(raw, horizon=horizon), LedgerError,
         'the horizon part does not match'),
        (dict(raw, train_config=dict(raw['train_config'], l2=0.5)),
         LedgerError, 'the train config part does not match'),
        (dict(raw, forgotten=[3, 1]), ValueError,
         r'must be a torch.long tensor \[2, F\] \(got list\)'),
        (dict(raw, forgotten=torch.tensor([3, 1])), ValueError,
         r'\(got \[2\]\)'),
        (dict(raw, forgotten=raw['forgotten'].float()), ValueError,
         'must be a torch.long tensor'),
    ]
    for payload, error, match in cases:
        path = tmp_path / 'tampered.pt'
        torch.save(payload, path)
        with pytest.raises(error, match=match):
            Checkpoint.load(str(path))
    # Through the command line: one error line, exit 2.
    assert unlearn_in_place(path, 0) == 2
    # A genuine file of the format before the horizon was fingerprinted
    # still loads, and the next save fingerprints it.
    genuine = dict(raw, format='torch_geometric_unlearn.checkpoint/2',
                   fingerprints={k: raw['fingerprints'][k] for k in
                                 ('model', 'data', 'examples')})
    genuine.pop('ledger_salt')
    torch.save(genuine, path)
    Checkpoint.load(str(path)).save(str(path))
    assert torch.load(path, weights_only=True)['format'].endswith('/3')


def test_a_salted_ledger_keeps_its_salt(small_data, tmp_path, checkpoints):
    first, _ = checkpoints
    ckpt = Checkpoint.load(str(first))
    unlearner = Shift(ckpt.model, ckpt.data, ckpt.examples, l2=1.0)
    unlearner.ledger = Ledger(salt='s3cret')
    result = unlearner.unlearn(ckpt.data.train_index[:, [1, 2, 3]])
    assert result.entry.pairs is None
    Checkpoint(unlearner.model, unlearner.data, unlearner.examples, None,
               ckpt.train_config, result.request, ckpt.horizon,
               unlearner.ledger).save(str(tmp_path / 'salted.pt'))
    loaded = Checkpoint.load(str(tmp_path / 'salted.pt'))
    assert loaded.ledger.salt == 's3cret'
    unlearner.ledger = loaded.ledger
    assert unlearner.unlearn(ckpt.data.train_index[:, [4]]).entry.pairs \
        is None
    # Without its salt the ledger refuses to append an entry in clear.
    unlearner.ledger = Ledger(loaded.ledger.entries)
    with pytest.raises(LedgerError, match='salted digests'):
        unlearner.unlearn(ckpt.data.train_index[:, [5]])
