import pytest
import torch

from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.training.trainer import build_model
from torch_geometric_unlearn.unlearn.base import Unlearner
from torch_geometric_unlearn.unlearn.ledger import Ledger
from torch_geometric_unlearn.unlearn.request import (AlreadyForgottenError,
                                                     RequestError)


class Shift(Unlearner):
    # Adds one to every weight: enough to see state move forward.
    method = 'shift'

    def _update(self, request):
        with torch.no_grad():
            self.model.embedding.weight += 1
        return {}, {'pairs': request.pairs.size(1)}


class Failing(Unlearner):
    method = 'failing'

    def _update(self, request):
        with torch.no_grad():
            self.model.embedding.weight.mul_(0)
        raise KeyboardInterrupt  # even an interrupt must roll back


def triples(data):
    gen = torch.Generator().manual_seed(0)
    neg = torch.randint(data.num_items, (data.num_train, ), generator=gen)
    return torch.cat([data.train_index, neg.view(1, -1)])


@pytest.fixture
def unlearner(small_data):
    model = build_model(small_data, 4, 1)
    return Shift(model, small_data, triples(small_data), l2=1.0)


def test_interactions_are_forgotten_and_state_moves_forward(unlearner,
                                                            small_data):
    pairs = small_data.train_index[:, [5, 9, 9]]  # a duplicate is merged
    before = unlearner.model.embedding.weight.detach().clone()
    result = unlearner.unlearn(pairs)
    assert result.request.size(1) == 2
    assert result.diagnostics == {'pairs': 2}
    assert 'total' in result.timings
    assert torch.equal(result.model.embedding.weight, before + 1)
    assert unlearner.data.num_train == small_data.num_train - 2
    assert unlearner.examples.size(1) == small_data.num_train - 2
    keys = pair_keys(pairs, small_data.num_items)
    assert not torch.isin(pair_keys(unlearner.data.train_index,
                                    small_data.num_items), keys).any()
    # The new graph lacks both directions of both edges.
    assert result.edge_index.size(1) == small_data.edge_index.size(1) - 4

    with pytest.raises(AlreadyForgottenError, match='already forgotten'):
        unlearner.unlearn(pairs[:, :1])


def test_users_items_and_homogeneous_requests(unlearner, small_data):
    user = int(small_data.train_index[0, 0])
    count = int((small_data.train_index[0] == user).sum())
    result = unlearner.unlearn(users=torch.tensor([user]))
    assert result.request.size(1) == count
    assert (result.request[0] == user).all()
    with pytest.raises(AlreadyForgottenError, match='forgotten before'):
        unlearner.unlearn(users=torch.tensor([user]))

    item = int(unlearner.data.train_index[1, 0])
    result = unlearner.unlearn(items=torch.tensor([item]))
    assert (result.request[1] == item).all()

    # Ids as a plain list, as users write them.
    other = int(unlearner.data.train_index[0, 0])
    result = unlearner.unlearn(users=[other])
    assert (result.request[0] == other).all()

    pair = unlearner.data.train_index[:, :1]
    # Homogeneous ids, item first: the same interaction.
    edge = torch.stack([pair[1] + small_data.num_users, pair[0]])
    result = unlearner.unlearn(edge_index=edge)
    assert torch.equal(result.request, pair)


def test_empty_request_is_a_no_op(unlearner, small_data):
    before = unlearner.model.embedding.weight.detach().clone()
    result = unlearner.unlearn(torch.empty(2, 0, dtype=torch.long))
    assert 'nothing to forget' in result.message
    assert torch.equal(unlearner.model.embedding.weight, before)
    assert unlearner.data is small_data


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(interactions=torch.tensor([[0], [300]])), RequestError,
     'item id 300'),
    (dict(interactions=torch.tensor([[0.], [1.]])), RequestError,
     'torch.long'),
    (dict(interactions=torch.tensor([0, 1])), RequestError, r'\[2, k\]'),
    # Rows of pairs, [[u1, i1], [u2, i2]], look like columns: refused.
    (dict(interactions=torch.tensor([[0, 5], [1, 7]])), RequestError,
     r'\[2, 2\] .* is ambiguous'),
    (dict(interactions=torch.tensor([[0, 5], [1, 7], [2, 9]])),
     RequestError, r'rows of pairs\? pass interactions.t\(\)'),
    (dict(interactions=(torch.tensor([0, 1]), torch.tensor([5]))),
     RequestError, 'differ in length'),
    (dict(interactions=(torch.tensor([0.]), torch.tensor([5]))),
     RequestError, 'torch.long'),
    (dict(users=torch.tensor([200])), RequestError, 'outside'),
    (dict(users=[1, 2.0]), RequestError, 'must hold Python ints'),
    (dict(items=[True]), RequestError, 'must hold Python ints'),
    (dict(users='1'), RequestError, 'torch.long'),
    (dict(edge_index=torch.tensor([[0], [1]])), RequestError,
     'user and an item'),
    (dict(), RequestError, 'exactly one'),
])
def test_bad_requests_change_nothing(unlearner, small_data, kwargs, error,
                                     match):
    before = unlearner.model.embedding.weight.detach().clone()
    with pytest.raises(error, match=match):
        unlearner.unlearn(**kwargs)
    assert torch.equal(unlearner.model.embedding.weight, before)
    assert unlearner.data is small_data


def test_two_pairs_are_named_by_users_and_items(unlearner, small_data):
    # The unambiguous layout of two pairs: (users, items).
    pairs = small_data.train_index[:, [4, 11]]
    result = unlearner.unlearn((pairs[0], pairs[1]))
    keys = pair_keys(pairs, small_data.num_items)
    assert torch.equal(pair_keys(result.request, small_data.num_items),
                       keys.sort()[0])
    assert unlearner.data.num_train == small_data.num_train - 2


def test_unknown_interaction_is_named(unlearner, small_data):
    own = small_data.train_index[1, small_data.train_index[0] == 0]
    item = int(torch.isin(torch.arange(300), own).logical_not().nonzero()[0])
    with pytest.raises(RequestError, match=rf'\(0, {item}\).*not training'):
        unlearner.unlearn(torch.tensor([[0], [item]]))
    assert unlearner.data is small_data


def test_failure_rolls_back_everything(small_data):
    model = build_model(small_data, 4, 1)
    before = model.embedding.weight.detach().clone()
    unlearner = Failing(model, small_data, triples(small_data), l2=1.0)
    with pytest.raises(KeyboardInterrupt):
        unlearner.unlearn(small_data.train_index[:, :3])
    assert torch.equal(unlearner.model.embedding.weight, before)
    assert unlearner.data is small_data
    assert unlearner.examples.size(1) == small_data.num_train


class Broken(Exception):
    pass


@pytest.mark.parametrize('stage', ['update', 'finite', 'advance-start',
                                   'advance-end', 'ledger'])
def test_a_fault_at_any_stage_changes_nothing(small_data, monkeypatch,
                                              stage):
    # A fault anywhere in the transaction, the state advance included,
    # leaves every attribute and parameter as it was, and a retry gives
    # what a clean first attempt gives.
    from torch_geometric_unlearn.unlearn import base as module
    model = build_model(small_data, 4, 1)
    pairs = small_data.train_index[:, [2, 8, 13]]
    clean = Shift(model, small_data, triples(small_data), l2=1.0)
    expected = clean.unlearn(pairs)
    subject = Shift(model, small_data, triples(small_data), l2=1.0)
    subject.unlearn(small_data.train_index[:, [30]])
    attributes = dict(vars(subject))
    weights = subject.model.embedding.weight.detach().clone()
    with monkeypatch.context() as patch:
        if stage == 'update':
            patch.setattr(Shift, '_update', lambda self, r: _raise_after(
                lambda: self.model.embedding.weight.data.add_(5)))
        elif stage == 'finite':
            patch.setattr(Shift, '_update', lambda self, r: (
                self.model.embedding.weight.data.fill_(float('nan')),
                ({}, {}))[1])
        elif stage == 'advance-start':
            patch.setattr(module, 'remaining_data', _raise)
        elif stage == 'ledger':  # after everything else moved on
            patch.setattr(Ledger, 'extended', _raise)
        else:  # after the base state moved on (a subclass's own step)
            advance = Shift._advance
            patch.setattr(Shift, '_advance', lambda self, r: (
                advance(self, r), _raise()))
        with pytest.raises((Broken, FloatingPointError)):
            subject.unlearn(pairs)
    assert vars(subject).keys() == attributes.keys()
    for name, value in attributes.items():
        assert vars(subject)[name] is value, name
    assert torch.equal(subject.model.embedding.weight, weights)
    # The retry: as a clean attempt from the same state.
    reference = Shift(subject.model, subject.data, subject.examples, l2=1.0)
    reference._forgotten = subject._forgotten
    retry, again = subject.unlearn(pairs), reference.unlearn(pairs)
    assert torch.equal(retry.model.embedding.weight,
                       again.model.embedding.weight)
    assert torch.equal(subject.data.train_index, again.data.train_index)
    assert torch.equal(subject._forgotten, reference._forgotten)
    assert expected.request.size(1) == retry.request.size(1) == 3


def _raise(*args, **kwargs):
    raise Broken('injected')


def _raise_after(change):
    change()
    raise Broken('injected')


def test_copy_model_leaves_the_original_alone(small_data):
    model = build_model(small_data, 4, 1)
    before = model.embedding.weight.detach().clone()
    unlearner = Shift(model, small_data, triples(small_data), l2=1.0)
    result = unlearner.unlearn(small_data.train_index[:, :1])
    assert torch.equal(model.embedding.weight, before)
    assert result.model is not model
    # In place only when asked for.
    in_place = Shift(model, small_data, triples(small_data), l2=1.0,
                     copy_model=False).unlearn(small_data.train_index[:, :1])
    assert in_place.model is model
    assert not torch.equal(model.embedding.weight, before)


def test_l2_must_be_stated(small_data):
    model = build_model(small_data, 4, 1)
    with pytest.raises(ValueError, match="State the L2 weight 'l2'"):
        Shift(model, small_data, triples(small_data))


def test_examples_must_match_the_data(small_data):
    model = build_model(small_data, 4, 1)
    examples = triples(small_data)
    moved = examples.clone()
    moved[1, 0] = (moved[1, 0] + 1) % small_data.num_items
    while bool(torch.isin(moved[0, 0] * small_data.num_items + moved[1, 0],
                          small_data.train_index[0] * small_data.num_items +
                          small_data.train_index[1])):
        moved[1, 0] = (moved[1, 0] + 1) % small_data.num_items
    with pytest.raises(ValueError, match='1 examples do not match'):
        Shift(model, small_data, moved, l2=1.0)
    with pytest.raises(ValueError, match='2 training pairs have no example'):
        Shift(model, small_data, examples[:, 2:], l2=1.0)
    offset = examples.clone()
    offset[1:] += small_data.num_users  # PyG's edge_label_index ids
    with pytest.raises(ValueError, match='subtract num_users'):
        Shift(model, small_data, offset, l2=1.0)


def test_constructor_checks_model_and_examples(small_data):
    model = build_model(small_data, 4, 1)
    with pytest.raises(ValueError, match='BPR triples'):
        Shift(model, small_data, small_data.train_index.float(), l2=1.0)
    with pytest.raises(ValueError, match='need .labels.'):
        Shift(model, small_data, small_data.train_index, l2=1.0)
    with pytest.raises(ValueError, match=r'row 0 holds user id .*outside'):
        Shift(model, small_data, triples(small_data) + 1000, l2=1.0)


def test_a_batch_forgets_the_union_once_and_keeps_each_request(
        unlearner, small_data):
    user = int(small_data.train_index[0, 0])
    of_user = small_data.train_index[:, small_data.train_index[0] == user]
    item = int(of_user[1, 0])  # shared with the user's request
    pairs = small_data.train_index[:, [7, 8, 9]]
    result = unlearner.unlearn_batch([
        pairs, {'users': torch.tensor([user])},
        {'items': torch.tensor([item])}])
    of_item = small_data.train_index[:, small_data.train_index[1] == item]
    expected = torch.unique(pair_keys(torch.cat([pairs, of_user, of_item],
                                                1), small_data.num_items))
    assert torch.equal(pair_keys(result.request, small_data.num_items),
                       expected)
    assert result.diagnostics['pairs'] == expected.numel()  # one update
    assert result.diagnostics['batch'] == [3, of_user.size(1),
                                           of_item.size(1)]
    assert torch.equal(result.batch[1][0], torch.full_like(
        result.batch[1][0], user))
    assert unlearner.data.num_train == small_data.num_train - \
        expected.numel()


def test_a_bad_request_in_a_batch_changes_nothing(unlearner, small_data):
    before = unlearner.model.embedding.weight.detach().clone()
    good = small_data.train_index[:, :3]
    never = torch.tensor([[0], [0]])
    while bool(torch.isin(pair_keys(never, small_data.num_items),
                          pair_keys(small_data.train_index,
                                    small_data.num_items))):
        never[1] += 1
    with pytest.raises(RequestError, match='request 1: .*not training') as e:
        unlearner.unlearn_batch([good, never])
    assert e.value.position == 1
    with pytest.raises(RequestError, match="request 0: unknown keys"):
        unlearner.unlearn_batch([{'user': torch.tensor([0])}])
    with pytest.raises(RequestError, match='sequence'):
        unlearner.unlearn_batch(good)
    assert torch.equal(unlearner.model.embedding.weight, before)
    assert unlearner.data is small_data
    unlearner.unlearn(good[:, :1])
    with pytest.raises(AlreadyForgottenError, match='request 0'):
        unlearner.unlearn_batch([good])
    assert unlearner.unlearn_batch([]).message.startswith('empty')


def test_forgetting_every_pair_is_refused_before_any_work(small_data):
    class Counting(Shift):
        updates = 0

        def _update(self, request):
            Counting.updates += 1
            return super()._update(request)
    unlearner = Counting(build_model(small_data, 4, 1), small_data,
                         triples(small_data), l2=1.0)
    with pytest.raises(RequestError, match='every training interaction'):
        unlearner.unlearn(small_data.train_index)
    assert Counting.updates == 0 and unlearner.data is small_data
