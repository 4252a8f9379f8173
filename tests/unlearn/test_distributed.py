r"""Two gloo processes on one machine, each with half of the examples,
against one process with all of them."""
import datetime
import os.path as osp
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from torch_geometric_unlearn import TrainConfig, build_model, train
from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.influence.bilinear import BilinearLoss
from torch_geometric_unlearn.unlearn.distributed import (ShardError, Shards,
                                                         pair_shards)
from torch_geometric_unlearn.unlearn.config import IFRUConfig
from torch_geometric_unlearn.unlearn.ifru import IFRUnlearner
from torch_geometric_unlearn.unlearn.request import RequestError

L2 = 1.0
WORLD = 2


def setup():
    data = synthetic(80, 120, 1500, num_topics=4, seed=3)
    torch.manual_seed(0)
    model = build_model(data, 8, 2)
    record = train(model, data, TrainConfig(progress=False, l2=L2,
                                            max_epochs=8, batch_size=256))
    first = random_interactions(data, count=12, seed=1)
    keys = pair_keys(first, data.num_items)
    rest = data.train_index[:, ~torch.isin(pair_keys(data.train_index,
                                                     data.num_items), keys)]
    second = rest[:, torch.randperm(rest.size(1), generator=torch.Generator()
                                    .manual_seed(2))[:9]]
    return data, model, record, first, second


def expect(error, call):
    try:
        call()
    except error as e:
        return type(e).__name__
    return 'no error'


def timed(error, call):
    # The error's name and how long the rank took to raise it.
    start = time.monotonic()
    return expect(error, call), time.monotonic() - start


def worker(rank, folder):
    dist.init_process_group('gloo', init_method=f'file://{folder}/rdv',
                            rank=rank, world_size=WORLD,
                            timeout=datetime.timedelta(seconds=30))
    torch.set_num_threads(1)
    data, model, record, first, second = torch.load(
        osp.join(folder, 'setup.pt'), weights_only=False)
    examples = record.examples
    shard = examples[:, pair_shards(data, examples, WORLD) == rank]
    out = {}

    # Sums over examples: gradient and Gauss-Newton product of each
    # shard, all-reduced, against those of every example.
    shards = Shards()
    gen = torch.Generator().manual_seed(5)  # the same on every rank
    final, vec = (torch.randn(data.num_nodes, 8, dtype=torch.float64,
                              generator=gen) for _ in range(2))
    whole = BilinearLoss(examples, None, data.num_users, data.num_nodes,
                         torch.float64)
    part = BilinearLoss(shard, None, data.num_users, data.num_nodes,
                        torch.float64, reduce=shards.sum_)
    out['grad_gap'] = float((part.grad(final) - whole.grad(final))
                            .abs().max())
    out['hvp_gap'] = float((part.curvature(final, True).matvec(vec) -
                            whole.curvature(final, True).matvec(vec))
                           .abs().max())

    # Bad shards: every rank refuses, none hangs.
    overlap = examples if rank == 1 else shard
    out['overlap'] = expect(ShardError, lambda: IFRUnlearner(
        model, data, overlap, l2=L2, shards=shards))
    # Rank 1 holds another data set (and examples that fit it).
    other = synthetic(80, 120, 1500, num_topics=4, seed=4)
    mine = (data, shard) if rank == 0 else (other, torch.cat(
        [other.train_index, other.train_index[1:]]))
    out['other_data'] = expect(ShardError, lambda: IFRUnlearner(
        model, *mine, l2=L2, shards=shards))

    # Ranks that hold another model, l2, horizon or configuration, or
    # refuse their arguments, all raise ShardError at once (the group's
    # timeout is 30 s).
    other_model = build_model(data, 8, 2)
    ones = torch.ones_like(model.embedding.weight)
    mismatches = {
        'model': dict(model=other_model if rank == 1 else model),
        'l2': dict(l2=2 * L2 if rank == 1 else L2),
        'horizon': dict(horizon=ones if rank == 1 else record.horizon),
        'config': dict(config=IFRUConfig(curvature_negatives=2)
                       if rank == 1 else None),
        'bad horizon': dict(horizon=-ones if rank == 1 else
                            record.horizon),
    }
    for name, change in mismatches.items():
        kwargs = dict(model=model, l2=L2, horizon=record.horizon)
        kwargs.update(change)
        out[f'mismatch {name}'] = timed(ShardError, lambda: IFRUnlearner(
            kwargs.pop('model'), data, shard, shards=shards, **kwargs))

    unlearner = IFRUnlearner(model, data, shard, l2=L2,
                             horizon=record.horizon, shards=shards)
    # A request one rank refuses (malformed there): every rank stops.
    bad = torch.tensor([[0, 1], [2, 3]]) if rank == 1 else first
    out['refused'] = timed(ShardError, lambda: unlearner.unlearn(bad))
    # Refused on every rank: each raises the refusal itself.
    out['refused everywhere'] = expect(RequestError, lambda: unlearner
                                       .unlearn(torch.tensor([[0, 1],
                                                              [2, 3]])))
    result = unlearner.unlearn(first)
    out['first'] = result.model.embedding.weight.detach().clone()
    out['certificate'] = result.certificate.gradient_after
    # Different requests on the ranks: refused on both, nothing changed.
    before = unlearner.model.embedding.weight.detach().clone()
    data_before = unlearner.data
    out['mismatch'] = expect(ShardError, lambda: unlearner.unlearn(
        second if rank == 0 else second[:, :5]))
    # A fault on rank 1 only: both roll back.
    update = unlearner._update

    def broken(request):
        timings, diagnostics = update(request)
        if rank == 1:
            with torch.no_grad():
                unlearner.model.embedding.weight[0, 0] = float('nan')
        return timings, diagnostics

    unlearner._update = broken
    out['fault'] = expect((ShardError, FloatingPointError),
                          lambda: unlearner.unlearn(second))
    del unlearner._update
    out['unchanged'] = (torch.equal(unlearner.model.embedding.weight, before)
                        and unlearner.data is data_before)
    result = unlearner.unlearn(second)
    out['second'] = result.model.embedding.weight.detach().clone()
    out['ledger_head'] = unlearner.ledger.head
    # The certificate's check on the draws solves the request again on
    # every rank, with the same draws as one process.
    out['draw_noise'] = IFRUnlearner(
        model, data, shard, l2=L2, horizon=record.horizon, shards=shards,
        config=IFRUConfig(expected_negatives='forgotten')).unlearn(
            first).certificate.draw_noise
    torch.save(out, osp.join(folder, f'rank{rank}.pt'))
    dist.destroy_process_group()


def test_sharded_over_two_processes_equals_one(tmp_path):
    data, model, record, first, second = setup()
    torch.save((data, model, record, first, second), tmp_path / 'setup.pt')
    mp.spawn(worker, args=(str(tmp_path), ), nprocs=WORLD, join=True)
    outs = [torch.load(tmp_path / f'rank{r}.pt') for r in range(WORLD)]

    single = IFRUnlearner(model, data, record.examples, l2=L2,
                          horizon=record.horizon)
    first_result = single.unlearn(first)
    # The unseen sampler's change on the freed items is in it (and so
    # summed over the ranks below).
    assert first_result.diagnostics['sampler_shift'] > 0
    expected_first = first_result.model.embedding.weight.detach().clone()
    result = single.unlearn(second)
    draw_noise = IFRUnlearner(
        model, data, record.examples, l2=L2, horizon=record.horizon,
        config=IFRUConfig(expected_negatives='forgotten')).unlearn(
            first).certificate.draw_noise
    assert draw_noise > 0
    for out in outs:
        assert out['draw_noise'] == pytest.approx(draw_noise, rel=1e-5)
        assert out['grad_gap'] < 1e-12 and out['hvp_gap'] < 1e-12
        assert out['overlap'] == 'ShardError'
        assert out['other_data'] == 'ShardError'
        assert out['mismatch'] == 'ShardError'
        for name in ('model', 'l2', 'horizon', 'config', 'bad horizon'):
            assert out[f'mismatch {name}'][0] == 'ShardError', name
            assert out[f'mismatch {name}'][1] < 10, name
        assert out['refused'][0] == 'ShardError' and out['refused'][1] < 10
        assert out['refused everywhere'] == 'RequestError'
        assert out['unchanged']
        torch.testing.assert_close(out['first'], expected_first, rtol=0,
                                   atol=1e-6)
        torch.testing.assert_close(out['second'],
                                   result.model.embedding.weight.detach(),
                                   rtol=0, atol=1e-6)
    # The ranks end bit-identical, with one ledger.
    assert torch.equal(outs[0]['second'], outs[1]['second'])
    assert outs[0]['ledger_head'] == outs[1]['ledger_head']
    assert {outs[0]['fault'], outs[1]['fault']} == {'ShardError',
                                                    'FloatingPointError'}


def test_shards_need_a_process_group():
    if dist.is_initialized():
        pytest.skip('a process group is already initialised')
    with pytest.raises(RuntimeError, match='init_process_group'):
        Shards()
