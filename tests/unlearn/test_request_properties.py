r"""Property-based tests of request handling: every accepted request
forgets exactly the pairs it names, every refused one changes nothing."""
import csv
import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_base import Shift, triples

from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.data.request_file import read_request
from torch_geometric_unlearn.training.trainer import build_model
from torch_geometric_unlearn.unlearn.request import RequestError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])


@pytest.fixture(scope='module')
def subject(small_data):
    return Shift(build_model(small_data, 4, 1), small_data,
                 triples(small_data), l2=1.0)


def snapshot(unlearner):
    return dict(vars(unlearner)), unlearner.model.embedding.weight.clone()


def unchanged(unlearner, saved):
    attributes, weight = saved
    assert vars(unlearner).keys() == attributes.keys()
    assert all(vars(unlearner)[k] is v for k, v in attributes.items())
    assert torch.equal(unlearner.model.embedding.weight, weight)


@st.composite
def tensors(draw, data):
    # Mostly training pairs, sometimes not; every layout and dtype.
    k = draw(st.integers(0, 5))
    picks = draw(st.lists(st.integers(0, data.num_train - 1), min_size=k,
                          max_size=k))
    pairs = data.train_index[:, picks]
    if draw(st.booleans()):  # a pair that may not be a training pair
        user = draw(st.integers(-2, data.num_users + 1))
        item = draw(st.integers(-2, data.num_items + 1))
        pairs = torch.cat([pairs, torch.tensor([[user], [item]])], 1)
    layout = draw(st.sampled_from(['columns', 'rows', 'tuple', 'flat']))
    dtype = draw(st.sampled_from([torch.long, torch.long, torch.int32,
                                  torch.float32, torch.bool]))
    if layout == 'columns':
        value = pairs.to(dtype)
    elif layout == 'rows':
        value = pairs.t().contiguous().to(dtype)
    elif layout == 'tuple':
        value = (pairs[0].to(dtype), pairs[1].to(dtype))
    else:
        value = pairs.reshape(-1).to(dtype)
    return pairs, layout, dtype, value


@SETTINGS
@given(data=st.data())
def test_tensors_forget_exactly_what_they_name(subject, small_data, data):
    pairs, layout, dtype, value = data.draw(tensors(small_data))
    saved = snapshot(subject)
    train = pair_keys(subject.data.train_index, small_data.num_items)
    try:
        result = subject.unlearn(value)
    except RequestError:
        unchanged(subject, saved)
        return
    # Accepted: a long [2, k] (k != 2) or (users, items), naming only
    # training pairs; exactly those left the data.
    assert dtype == torch.long and layout in ('columns', 'tuple')
    assert layout == 'tuple' or pairs.size(1) != 2
    named = torch.unique(pair_keys(pairs, small_data.num_items))
    assert torch.isin(named, train).all()
    left = pair_keys(subject.data.train_index, small_data.num_items)
    assert torch.equal(torch.sort(train[~torch.isin(train, left)])[0],
                       named)
    assert torch.equal(pair_keys(result.request, small_data.num_items),
                       named)
    # Put the subject back for the next example.
    vars(subject).clear()
    vars(subject).update(saved[0])
    subject.model.embedding.weight.data.copy_(saved[1])


CELL = st.one_of(st.integers(-3, 400).map(str),
                 st.sampled_from(['', ' ', '1.0', '2e3', 'x', 'True',
                                  ' 7 ', '+4', '99999999999999999999']))


@SETTINGS
@given(rows=st.lists(st.lists(CELL, min_size=0, max_size=4), max_size=6))
def test_csv_files_are_read_exactly_or_refused(tmp_path_factory, rows):
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(['user', 'item'])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp('csv') / 'request.csv'
    path.write_text(text.getvalue())
    kept = [row for row in rows if row]
    exact = all(len(row) == 2 and all(
        c.strip().lstrip('+-').isdigit() and abs(int(c)) < 2**63
        for c in row) for row in kept)
    try:
        users, items = read_request(str(path))['interactions']
    except ValueError as e:
        assert not exact, e
        assert str(path) in str(e)
        return
    assert exact
    assert users.tolist() == [int(row[0]) for row in kept]
    assert items.tolist() == [int(row[1]) for row in kept]
