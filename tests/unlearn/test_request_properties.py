r"""Property-based tests of request handling: every accepted request
forgets exactly the pairs it names, every refused one changes nothing."""
import copy
import csv
import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from _pyg_loop import BATCH, make_graph, pyg_loop
from hypothesis import strategies as st
from test_base import Shift, triples

from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.data.request_file import read_request
from torch_geometric_unlearn.training.trainer import build_model
from torch_geometric_unlearn.unlearn.recipe import Recipe, from_training_loop
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


@pytest.fixture(scope='module')
def front_door():
    # PyG's LightGCN example on 60 users and 80 items, so that item ids and
    # item node ids (60 to 139) overlap where a misread is silent.
    graph = make_graph()
    edge_index, train_eli, num_users, _ = graph
    model, optimizer, last = pyg_loop(graph, 1e-4, True, epochs=2)
    return from_training_loop(
        model, edge_index, num_users,
        Recipe(lambda_reg=1e-4, batch_size=BATCH, node_id=True),
        edge_label_index=train_eli, negatives=last, optimizer=optimizer)


@st.composite
def named_pairs(draw, data):
    # Training pairs named in one of the five forms, items given as item
    # ids or as node ids (offset by the number of users).
    form = draw(st.sampled_from(['interactions', 'tuple', 'items', 'users',
                                 'edge_index']))
    offset = draw(st.sampled_from([0, data.num_users]))
    k = draw(st.integers(1, 4))
    picks = draw(st.lists(st.integers(0, data.num_train - 1), min_size=k,
                          max_size=k))
    users, items = data.train_index[:, picks]
    if form == 'interactions':
        return form, {'interactions': torch.stack([users, items + offset])}
    if form == 'tuple':
        return form, {'interactions': (users, items + offset)}
    if form in ('users', 'items'):
        return form, {form: users if form == 'users' else items + offset}
    flip = torch.tensor(draw(st.lists(st.booleans(), min_size=k,
                                      max_size=k)))
    pairs = torch.stack([users, items + offset])
    return form, {'edge_index': torch.where(flip, pairs.flip(0), pairs)}


def read_by_hand(data, form, request, node_ids):
    # The pairs (item ids) a request names when its numbers are read in the
    # unlearner's id space, or None where it must be refused.
    users_, items_ = data.num_users, data.num_items
    offset = users_ if node_ids else 0
    train = {tuple(p) for p in data.train_index.t().tolist()}
    if form == 'users':
        ids = set(request['users'].tolist())
        named = {p for p in train if p[0] in ids}
        return named if {p[0] for p in named} == ids else None
    if form == 'items':
        ids = request['items'] - offset
        if ((ids < 0) | (ids >= items_)).any():
            return None
        ids = set(ids.tolist())
        named = {p for p in train if p[1] in ids}
        return named if {p[1] for p in named} == ids else None
    if form == 'edge_index':
        low, high = request['edge_index'].sort(0).values
        if (low >= users_).any() or (high < users_).any():
            return None
        users, items = low, high - users_
    else:
        pairs = request['interactions']
        if isinstance(pairs, torch.Tensor) and pairs.size(1) == 2:
            return None  # [2, 2] is ambiguous as pairs, refused
        users, items = pairs[0], pairs[1] - offset
    if ((items < 0) | (items >= items_)).any():
        return None
    named = set(zip(users.tolist(), items.tolist()))
    return named if named <= train else None


@SETTINGS
@given(data=st.data())
@pytest.mark.parametrize('which', ['package', 'front door'])
def test_every_form_in_either_id_space_forgets_what_it_names(
        subject, front_door, which, data):
    # The package's unlearners read item ids, an unlearner from an own loop
    # reads node ids (items offset), as that loop numbered them; ids in the
    # other space either name exactly what that reading says or are
    # refused, never a silent third thing.
    unlearner = subject if which == 'package' else front_door
    form, request = data.draw(named_pairs(unlearner.data))
    expected = read_by_hand(unlearner.data, form, request,
                            node_ids=which == 'front door')
    trial = copy.deepcopy(unlearner)
    try:
        result = trial.unlearn(**request)
    except RequestError:
        assert expected is None
        return
    assert expected is not None
    assert {tuple(p) for p in result.request.t().tolist()} == expected
    assert trial.data.num_train == unlearner.data.num_train - len(expected)


def test_an_item_id_on_an_own_loop_unlearner_is_refused_naming_both(
        front_door):
    # The reported misuse: an item's id given where the loop's node id is
    # read.  Item 5's node id forgets item 5; item id 5 is refused.
    data, users = front_door.data, front_door.data.num_users
    assert front_door.node_ids and users < data.num_items
    item = int(data.train_index[1, 0])
    result = copy.deepcopy(front_door).unlearn(
        items=torch.tensor([item + users]))
    assert (result.request[1] == item).all()
    assert result.request.size(1) == int((data.train_index[1] ==
                                          item).sum())
    with pytest.raises(RequestError, match=rf'\[{users}, {users + 80}\)'):
        front_door.unlearn(items=torch.tensor([users - 1]))


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
