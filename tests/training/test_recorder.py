import pytest
import torch

from torch_geometric_unlearn.training.recorder import (Snapshot,
                                                       TrajectoryRecorder)


def run(steps: int, record_every: int, max_snapshots: int = 3, pin=()):
    # Adam on a quadratic; a snapshot every 'record_every' steps.
    param = torch.nn.Parameter(torch.ones(4, 2))
    optimizer = torch.optim.Adam([param], lr=0.1)
    recorder = TrajectoryRecorder(param, optimizer, max_snapshots)
    kept = {}
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        (param**2).sum().backward()
        optimizer.step()
        if step % record_every == 0:
            recorder.snapshot(pin=step in pin)
            kept[step] = param.detach().clone()
    return param, optimizer, recorder, kept


def test_snapshots_hold_the_parameters_and_adam_s_step_size():
    param, optimizer, recorder, kept = run(6, 2)
    assert [s.step for s in recorder.snapshots] == [2, 4, 6]
    for s in recorder.snapshots:
        assert torch.equal(s.param, kept[s.step])
    state = optimizer.state[param]
    v_hat = state['exp_avg_sq'] / (1 - 0.999**6)
    torch.testing.assert_close(recorder.snapshots[-1].step_size,
                               0.1 / (v_hat.sqrt() + 1e-8))
    assert recorder.nbytes == 3 * 2 * param.nbytes
    # Full-batch steps on a quadratic: Adam's steps are sign-like.
    m_hat = state['exp_avg'] / (1 - 0.9**6)
    assert recorder.snapshots[-1].signal == pytest.approx(float(
        ((m_hat**2).sum(1) / v_hat.sum(1)).median()))
    assert recorder.snapshots[-1].signal > 0.2
    # Copies: training on does not move them.
    assert not torch.equal(recorder.snapshots[-1].param, torch.ones(4, 2))


def test_the_shortest_segment_is_merged_and_the_newest_kept():
    _, _, recorder, _ = run(12, 1, max_snapshots=4)
    steps = [s.step for s in recorder.snapshots]
    assert len(steps) == 4 and steps[-1] == 12
    segments = [b - a for a, b in zip([0] + steps, steps)]
    # Spread over the run: no segment more than twice another's length.
    assert max(segments) <= 2 * min(segments)


def test_a_pinned_snapshot_survives_and_restore_ends_there():
    param, _, recorder, kept = run(12, 1, max_snapshots=3, pin=(5, ))
    assert 5 in [s.step for s in recorder.snapshots]
    recorder.restore()
    assert recorder.snapshots[-1].step == 5
    assert torch.equal(recorder.snapshots[-1].param, kept[5])


def test_bad_use_is_refused():
    param = torch.nn.Parameter(torch.ones(2, 2))
    optimizer = torch.optim.Adam([param])
    with pytest.raises(ValueError, match='max_snapshots'):
        TrajectoryRecorder(param, optimizer, 1)
    with pytest.raises(TypeError, match='optimizer'):
        TrajectoryRecorder(param, 'adam')
    recorder = TrajectoryRecorder(param, optimizer)
    with pytest.raises(ValueError, match='no step'):
        recorder.snapshot()
    param.grad = torch.ones(2, 2)
    optimizer.step()
    recorder.snapshot()
    with pytest.raises(ValueError, match='no step since'):
        recorder.snapshot()
    with pytest.raises(ValueError, match='pinned'):
        recorder.restore()
    assert isinstance(recorder.snapshots[0], Snapshot)
