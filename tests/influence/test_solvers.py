import warnings

import pytest
import torch
import torch.nn.functional as F

from torch_geometric_unlearn.influence import (HessianOperator, MatrixOperator,
                                               ParameterSelection,
                                               SolverConfig, SolverError,
                                               SolverMethod, SolverWarning,
                                               estimate_max_eigenvalue, solve)


def random_symmetric(eigenvalues, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen,
                                       dtype=torch.float64))
    eig = torch.as_tensor(eigenvalues, dtype=torch.float64)
    return q @ torch.diag(eig) @ q.t()


def rhs(n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, generator=gen, dtype=torch.float64)


SPD = random_symmetric(torch.linspace(1.0, 10.0, 40))
SETTINGS = {
    'cg': dict(tol=1e-10),
    'direct': dict(tol=1e-10),
    'minres': dict(tol=1e-10),
    'lissa': dict(tol=1e-8, max_iter=500),  # about log(1e8) * cond steps
    'adam': dict(tol=1e-4, max_iter=3000, lr=0.05),
}


@pytest.mark.parametrize('method', list(SETTINGS))
def test_solvers_reach_tolerance_on_spd(method):
    g = rhs(40)
    expected = torch.linalg.solve(SPD, g)
    op = MatrixOperator(SPD)
    x, diag = solve(op, g, method=method, **SETTINGS[method])
    assert diag.converged and diag.message == 'converged'
    assert diag.method == method
    true_residual = float((SPD @ x - g).norm() / g.norm())
    assert diag.residual == pytest.approx(true_residual, rel=1e-6, abs=1e-14)
    assert diag.residual <= SETTINGS[method]['tol']
    # Error is bounded by the condition number (10) times the residual.
    assert float((x - expected).norm() / expected.norm()) < \
        10 * SETTINGS[method]['tol']
    assert diag.num_hvps == op.num_hvps
    assert not diag.negative_curvature and diag.min_curvature > 0
    assert diag.time >= 0 and len(diag.residual_history) == (
        diag.iterations if method != 'direct' else 1)


def test_direct_reports_eigenvalues():
    _, diag = solve(MatrixOperator(SPD), rhs(40), method='direct')
    assert diag.min_curvature == pytest.approx(1.0)
    assert diag.max_eigenvalue == pytest.approx(10.0)
    assert diag.num_hvps == 40


@pytest.mark.parametrize('damping', [0.5, 'auto'])
def test_damping_replaces_operator_damping(damping):
    op = MatrixOperator(SPD, damping=100.0)
    g = rhs(40)
    x, diag = solve(op, g, method='cg', tol=1e-10, damping=damping,
                    damping_ratio=0.05)
    lam = 0.5 if damping == 0.5 else 0.05 * 10.0
    assert diag.damping == pytest.approx(lam, rel=5e-2)  # power iteration
    expected = torch.linalg.solve(SPD + diag.damping * torch.eye(40), g)
    assert torch.allclose(x, expected, rtol=1e-8)
    assert op.damping == 100.0  # the caller's operator is unchanged


def test_estimate_max_eigenvalue():
    op = MatrixOperator(random_symmetric([0.1, 0.5, 1.0, 2.0, 8.0]))
    assert estimate_max_eigenvalue(op, max_iter=200, rtol=1e-12) == \
        pytest.approx(8.0, rel=1e-6)


INDEFINITE = random_symmetric(
    torch.cat([torch.linspace(-3, -1, 4), torch.linspace(1, 10, 26)]))


def test_cg_detects_negative_curvature():
    with pytest.raises(SolverError, match='negative curvature') as info:
        solve(MatrixOperator(INDEFINITE), rhs(30), method='cg', tol=1e-8)
    diag = info.value.diagnostics
    assert diag.negative_curvature and diag.min_curvature <= 0
    assert not diag.converged
    assert info.value.solution.shape == (30, )


def test_minres_and_direct_solve_indefinite():
    g = rhs(30)
    expected = torch.linalg.solve(INDEFINITE, g)
    for method in ['minres', 'direct']:
        x, diag = solve(MatrixOperator(INDEFINITE), g, method=method,
                        tol=1e-10, max_iter=200)
        assert diag.converged
        assert torch.allclose(x, expected, rtol=1e-8, atol=1e-10)
    assert diag.negative_curvature and diag.min_curvature == \
        pytest.approx(-3.0)


def test_failure_raises_with_diagnostics():
    ill = random_symmetric(torch.logspace(-4, 0, 50))
    with pytest.raises(SolverError, match='missed the tolerance') as info:
        solve(MatrixOperator(ill), rhs(50), method='cg', max_iter=3)
    diag = info.value.diagnostics
    assert diag.iterations == 3 and not diag.converged
    assert diag.residual > 1e-4 and diag.num_hvps == 4


def test_failure_warns_and_returns_flagged():
    # LiSSA with a scale below lambda_max / 2 diverges.
    op = MatrixOperator(SPD)
    with pytest.warns(SolverWarning, match='diverged'):
        x, diag = solve(op, rhs(40), method='lissa', scale=2.0,
                        max_iter=500, on_failure='warn')
    assert not diag.converged and diag.message == 'residual diverged'
    assert diag.residual > 1e4
    assert diag.residual_history[-1] > diag.residual_history[0]


def test_nan_fails():
    matrix = SPD.clone()
    matrix[0, 0] = float('nan')
    with pytest.raises(SolverError, match='non-finite'):
        solve(MatrixOperator(matrix), rhs(40), method='cg')


def test_zero_rhs():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        x, diag = solve(MatrixOperator(SPD), torch.zeros(40,
                                                         dtype=torch.float64))
    assert torch.equal(x, torch.zeros(40, dtype=torch.float64))
    assert diag.converged and diag.residual == 0 and diag.num_hvps == 0


@pytest.mark.parametrize('kwargs, field', [
    (dict(method='newton'), "'method'"),
    (dict(on_failure='ignore'), "'on_failure'"),
    (dict(tol=0), "'tol'"),
    (dict(tol=float('nan')), "'tol'"),
    (dict(max_iter=0), "'max_iter'"),
    (dict(max_iter=2.5), "'max_iter'"),
    (dict(damping=-1.0), "'damping'"),
    (dict(damping='big'), "'damping'"),
    (dict(damping_ratio=0), "'damping_ratio'"),
    (dict(power_iters=True), "'power_iters'"),
    (dict(scale=-2.0), "'scale'"),
    (dict(lr='fast'), "'lr'"),
    (dict(divergence_factor=0.5), "'divergence_factor'"),
])
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SolverConfig(**kwargs)


def test_config_casts_strings():
    config = SolverConfig(method='minres', damping=1, on_failure='warn')
    assert config.method == SolverMethod.minres
    assert config.damping == 1.0 and isinstance(config.damping, float)
    with pytest.raises(ValueError, match='not both'):
        solve(MatrixOperator(SPD), rhs(40), config, tol=1e-3)
    with pytest.raises(ValueError, match=r"'g' must have shape \[40\]"):
        solve(MatrixOperator(SPD), rhs(3))


# Known answer: L2-regularised logistic regression, down-weighting one
# example by eps.  The Newton (influence) step from the old optimum must
# match the re-optimised optimum up to O(eps^2).

L2 = 1.0
NUM, FEATS = 40, 5


def logistic_data():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(NUM, FEATS, generator=gen, dtype=torch.float64)
    w = torch.randn(FEATS, generator=gen, dtype=torch.float64)
    y = (torch.rand(NUM, generator=gen, dtype=torch.float64) <
         torch.sigmoid(x @ w)).double()
    return x, y


def reference_loss(theta, x, y, weights):
    logits = x @ theta[:FEATS] + theta[FEATS]
    losses = F.binary_cross_entropy_with_logits(logits, y, reduction='none')
    return (weights * losses).sum() + 0.5 * L2 * theta.pow(2).sum()


def newton_optimum(x, y, weights):
    # Independent of the engine: explicit Hessians of a flat function.
    theta = torch.zeros(FEATS + 1, dtype=torch.float64)
    for _ in range(50):
        func = lambda t: reference_loss(t, x, y, weights)  # noqa: E731
        grad = torch.autograd.functional.jacobian(func, theta)
        if grad.norm() < 1e-14:
            break
        hess = torch.autograd.functional.hessian(func, theta)
        theta = theta - torch.linalg.solve(hess, grad)
    return theta


@pytest.mark.parametrize('method', ['cg', 'direct'])
def test_influence_update_matches_reoptimum_to_second_order(method):
    x, y = logistic_data()
    ones = torch.ones(NUM, dtype=torch.float64)
    theta_star = newton_optimum(x, y, ones)

    model = torch.nn.Linear(FEATS, 1).double()
    with torch.no_grad():
        model.weight.copy_(theta_star[:FEATS].view(1, FEATS))
        model.bias.copy_(theta_star[FEATS:])
    selection = ParameterSelection(model, {}, shared=['weight', 'bias'])

    def objective(weights):
        def func(f):
            logits = f(x).view(-1)
            losses = F.binary_cross_entropy_with_logits(logits, y,
                                                        reduction='none')
            return ((weights * losses).sum() +
                    0.5 * L2 * sum(p.pow(2).sum() for p in f.params.values()))

        return func

    op = HessianOperator.from_model(selection, objective(ones))
    influence_err, no_update_err = [], []
    for eps in [0.4, 0.2, 0.1]:
        weights = ones.clone()
        weights[7] -= eps
        theta_eps = newton_optimum(x, y, weights)
        # Newton step for the new objective, with the old Hessian.
        g = -selection.gradient(objective(weights))
        step, diag = solve(op, g, method=method, tol=1e-12)
        assert diag.converged
        before = selection.values()
        selection.apply_(step)
        influence_err.append(float((selection.values() - theta_eps).norm()))
        selection.assign_(before)
        no_update_err.append(float((theta_star - theta_eps).norm()))

    for k in range(2):
        assert 3.0 < influence_err[k] / influence_err[k + 1] < 5.0
        assert 1.6 < no_update_err[k] / no_update_err[k + 1] < 2.4
        assert influence_err[k] < 0.05 * no_update_err[k]
