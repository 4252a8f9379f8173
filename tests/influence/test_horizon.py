import pytest
import torch

from torch_geometric_unlearn.influence import (MatrixOperator,
                                               trajectory_response)
from torch_geometric_unlearn.influence.horizon import (adam_rule,
                                                       optimizer_horizon,
                                                       residual_horizon,
                                                       sampled_row_moment,
                                                       step_size)

N, ROWS, DIM = 100, 20, 4


def quadratic(seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(ROWS * DIM, ROWS * DIM, generator=gen,
                                       dtype=torch.float64))
    eig = torch.logspace(-1, 2, ROWS * DIM, dtype=torch.float64)
    a = q @ torch.diag(eig) @ q.t()
    c = 10 * torch.randn(ROWS * DIM, generator=gen, dtype=torch.float64)
    return a, c


def run(a, c, optimizer, steps, noise, **kwargs):
    r"""Minimises (x'Ax/2 - c'x) / N from a small start, with a gradient
    noise stream of its own seed (so that two runs are paired)."""
    gen = torch.Generator().manual_seed(1)
    param = torch.nn.Parameter(0.01 * torch.randn(
        ROWS, DIM, generator=gen, dtype=torch.float64))
    opt = optimizer([param], **kwargs)
    for step in range(steps):
        opt.zero_grad()
        x = param.view(-1)
        shift = noise * torch.randn(x.numel(), generator=gen,
                                    dtype=torch.float64)
        ((0.5 * x @ a @ x - (c + shift) @ x) / N).backward()
        opt.step()
        if isinstance(opt, torch.optim.SGD):  # SGD keeps no step count
            opt.state[param]['step'] = torch.tensor(float(step + 1))
    return param, opt


@pytest.mark.parametrize('optimizer, kwargs, steps, noise, tol', [
    # Linear dynamics: the response is exact up to the continuous-time
    # filter's O(step * curvature).
    (torch.optim.SGD, dict(lr=0.05), 500, 0.0, 1e-3),
    # Momentum multiplies a steady step by (1 - dampening) / (1 - momentum)
    # (by 1 + momentum times that with Nesterov's), up to a transient of
    # about momentum / (1 - momentum) steps (measured: 0.011, 0.010 and
    # 0.010; without the factor the horizon was 10, 10 and 5 times short).
    (torch.optim.SGD, dict(lr=0.005, momentum=0.9), 500, 0.0, 0.03),
    (torch.optim.SGD, dict(lr=0.005, momentum=0.9, nesterov=True), 500,
     0.0, 0.03),
    (torch.optim.SGD, dict(lr=0.01, momentum=0.9, dampening=0.5), 500,
     0.0, 0.03),
    # Adam with gradient noise dominating its second moment, as in
    # mini-batch training (measured: 0.046 and 0.027; without noise Adam's
    # normalisation is far from linear and the error is 0.9-1.4).
    (torch.optim.Adam, dict(lr=1e-2), 300, 100.0, 0.1),
    (torch.optim.Adam, dict(lr=1e-3), 1000, 100.0, 0.1),
])
def test_horizon_predicts_a_paired_run(optimizer, kwargs, steps, noise, tol):
    a, c = quadratic()
    gen = torch.Generator().manual_seed(2)
    change = 0.1 * torch.randn(c.numel(), generator=gen,
                               dtype=torch.float64)
    first, opt = run(a, c, optimizer, steps, noise, **kwargs)
    second, _ = run(a, c + change, optimizer, steps, noise, **kwargs)
    actual = (second - first).detach().view(-1)

    horizon = optimizer_horizon(opt, first, loss_scale=N)
    assert horizon.shape == first.shape and bool((horizon > 0).all())
    predicted, _ = trajectory_response(MatrixOperator(a), change,
                                       horizon.view(-1), tol=1e-10,
                                       max_iter=80)
    error = float((predicted - actual).norm() / actual.norm())
    assert error < tol
    # The Newton step, IFRU's premise, is off by far more.
    newton = torch.linalg.solve(a, change)
    assert float((newton - actual).norm() / actual.norm()) > 10 * error


def test_residual_horizon_reads_early_stopped_gradient_descent():
    # Rows with curvature a_v trained by gradient descent from zero for a
    # horizon tau: theta_v = (1 - e^{-tau a_v}) c_v / a_v and the residual
    # r_v = -e^{-tau a_v} c_v, whose reading (e^{tau a_v} - 1) / a_v is
    # tau to first order in tau * a_v.
    gen = torch.Generator().manual_seed(3)
    tau = 2.0
    curvature = torch.linspace(0.01, 0.05, ROWS, dtype=torch.float64)
    target = torch.randn(ROWS, DIM, generator=gen, dtype=torch.float64)
    decay = torch.exp(-tau * curvature).view(-1, 1)
    theta = (1 - decay) * target / curvature.view(-1, 1)
    residual = -decay * target
    horizon = residual_horizon(residual, theta, spread=1e9)
    assert horizon.shape == theta.shape
    expected = torch.expm1(tau * curvature) / curvature
    torch.testing.assert_close(horizon[:, 0], expected)
    assert float((horizon[:, 0] / tau - 1).abs().max()) < 0.06
    # By default every reading is capped at the median (of the pulls).
    cap = 1 / float((1 / expected).median())
    torch.testing.assert_close(residual_horizon(residual, theta)[:, 0],
                               expected.clamp(max=cap))
    # A row the residual pulls inwards looks converged: capped horizon.
    residual[0] = theta[0]
    capped = residual_horizon(residual, theta, spread=10.0)
    assert float(capped[0, 0]) == pytest.approx(
        10 * float(capped[1:, 0].median()))
    with pytest.raises(ValueError, match='converged'):
        residual_horizon(theta, theta)


def test_sign_like_adam_gives_no_horizon():
    # Without gradient noise Adam's steps are sign-like: the linear
    # response is off (by 0.9-4.7 times on such runs), so no horizon.
    a, c = quadratic()
    param, opt = run(a, c, torch.optim.Adam, 300, 0.0, lr=1e-2)
    with pytest.raises(ValueError, match='sign-like'):
        optimizer_horizon(opt, param, loss_scale=N)


def test_optimizer_horizon_rejects_what_it_cannot_read():
    param = torch.nn.Parameter(torch.zeros(3, 2))
    adam = torch.optim.Adam([param])
    with pytest.raises(ValueError, match='no step'):
        optimizer_horizon(adam, param, 10)
    with pytest.raises(ValueError, match='not optimised'):
        optimizer_horizon(adam, torch.nn.Parameter(torch.zeros(1)), 10)
    with pytest.raises(ValueError, match='loss_scale'):
        optimizer_horizon(adam, param, 0)
    rms = torch.optim.RMSprop([param])
    param.sum().backward()
    rms.step()
    with pytest.raises(TypeError, match='RMSprop'):
        optimizer_horizon(rms, param, 10)


def test_sampled_row_moment_against_simulated_batches():
    # A row drawn as the negative of each example with probability p_e:
    # the mean squared batch gradient over many simulated batches.
    gen = torch.Generator().manual_seed(0)
    num, dim, batch = 400, 3, 32
    grads = torch.randn(num, dim, generator=gen, dtype=torch.float64) + 0.5
    prob = 0.02 + 0.1 * torch.rand(num, generator=gen, dtype=torch.float64)
    trials = 200_000
    index = torch.randint(num, (trials, batch), generator=gen)
    drawn = torch.rand(trials, batch, generator=gen,
                       dtype=torch.float64) < prob[index]
    batch_grad = (drawn.unsqueeze(-1) * grads[index]).sum(1) / batch
    simulated = batch_grad.pow(2).mean(0)
    # The estimate drops the (1 - p) of Bernoulli draws: within a few %.
    torch.testing.assert_close(sampled_row_moment(grads, prob, batch),
                               simulated, rtol=0.08, atol=0)


def test_adam_rule_rebuilds_the_optimiser_s_horizon():
    param = torch.nn.Parameter(torch.randn(5, 2))
    optimizer = torch.optim.Adam([param], lr=0.03, eps=1e-6)
    for _ in range(7):
        optimizer.zero_grad()
        (param.pow(2).sum() + torch.randn(5, 2).mul(param).sum()).backward()
        optimizer.step()
    rule = adam_rule(optimizer, param, 40.0, 8)
    assert (rule.steps, rule.batch_size) == (7, 8)
    v_hat = optimizer.state[param]['exp_avg_sq'] / (1 - 0.999**7)
    steps, size, _ = step_size(optimizer, param, check=False)
    torch.testing.assert_close(rule.horizon(v_hat.sqrt()),
                               steps * size / 40.0)
    assert adam_rule(torch.optim.SGD([param], lr=0.1), param, 40.0,
                     8) is None
