import pytest
import torch
from test_base import Shift, triples

from torch_geometric_unlearn import RequestQueue
from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.training.trainer import build_model
from torch_geometric_unlearn.unlearn.request import RequestError


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def unlearner(small_data):
    return Shift(build_model(small_data, 4, 1), small_data,
                 triples(small_data), l2=1.0)


def test_due_by_count_and_by_wait(unlearner, small_data):
    clock = Clock()
    queue = RequestQueue(unlearner, max_requests=3, max_wait=60, clock=clock)
    assert queue.poll() is None and queue.flush() is None
    tickets = [queue.submit(small_data.train_index[:, [k]])
               for k in range(2)]
    clock.now = 59
    assert not queue.due and queue.poll() is None
    assert unlearner.data is small_data  # nothing applied yet
    clock.now = 60
    result = queue.poll()
    assert result.diagnostics['pairs'] == 2  # one update for both
    assert queue.last_tickets == tickets and len(queue) == 0
    assert unlearner.data.num_train == small_data.num_train - 2
    for k in range(2, 5):
        queue.submit(users=torch.tensor([int(small_data.train_index[0, k])]))
    assert queue.due  # three wait
    assert len(queue.poll().batch) == 3


def test_a_request_that_went_stale_is_named_by_its_ticket(unlearner,
                                                          small_data):
    queue = RequestQueue(unlearner)
    pair = small_data.train_index[:, :1]
    queue.submit(small_data.train_index[:, 1:2])
    ticket = queue.submit(pair)
    with pytest.raises(RequestError, match='outside'):
        queue.submit(torch.tensor([[0], [small_data.num_items]]))
    assert len(queue) == 2  # the refused one was not queued
    unlearner.unlearn(pair)  # forgotten meanwhile, outside the queue
    before = unlearner.model.embedding.weight.detach().clone()
    with pytest.raises(RequestError, match=f'ticket {ticket}: .*already'):
        queue.flush()
    assert len(queue) == 2
    assert torch.equal(unlearner.model.embedding.weight, before)
    kept = pair_keys(unlearner.data.train_index, small_data.num_items)
    assert bool(torch.isin(pair_keys(small_data.train_index[:, 1:2],
                                     small_data.num_items), kept))


def test_settings_are_checked(unlearner):
    for bad in (dict(max_requests=0), dict(max_requests=True),
                dict(max_wait=-1), dict(max_wait=float('nan'))):
        with pytest.raises(ValueError):
            RequestQueue(unlearner, **bad)
    with pytest.raises(TypeError):
        RequestQueue(object())
