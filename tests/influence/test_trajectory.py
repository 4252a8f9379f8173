import pytest
import torch
from test_solvers import SPD, random_symmetric, rhs

from torch_geometric_unlearn.influence import (MatrixOperator, SolverError,
                                               trajectory_response)


def test_trajectory_response_matches_the_spectral_formula():
    # x = tau^1/2 phi(S) tau^1/2 g with S = tau^1/2 A tau^1/2, phi(z) =
    # (1 - e^-z) / z, written out with an eigendecomposition.
    a = random_symmetric(torch.cat([torch.zeros(3),
                                    torch.logspace(-2, 2, 37)]))
    g = rhs(40)
    gen = torch.Generator().manual_seed(2)
    horizon = torch.rand(40, generator=gen, dtype=torch.float64) * 3 + 0.1
    half = horizon.sqrt()
    eig, vec = torch.linalg.eigh(half.view(-1, 1) * a * half.view(1, -1))
    phi = torch.where(eig.abs() < 1e-12, torch.ones_like(eig),
                      -torch.expm1(-eig) / eig)
    expected = half * (vec @ (phi * (vec.t() @ (half * g))))
    op = MatrixOperator(a)
    x, diag = trajectory_response(op, g, horizon, tol=1e-10, max_iter=40)
    torch.testing.assert_close(x, expected, rtol=1e-8, atol=1e-10)
    assert diag.converged and diag.method == 'lanczos'
    assert diag.num_hvps == op.num_hvps == diag.iterations <= 40
    assert diag.residual <= 1e-10


def test_trajectory_response_reorthogonalizes_only_where_needed():
    # A bulk and five isolated eigenvalues: the isolated Ritz values
    # converge at once, and plain Lanczos then loses orthogonality (it
    # measured 24 iterations and an error of 5e-11 here, against 18 and
    # 5e-12 for the partial reorthogonalisation).
    n = 400
    gen = torch.Generator().manual_seed(0)
    spectrum = torch.cat([torch.linspace(0.01, 1, n - 5),
                          torch.tensor([50., 80., 120., 200., 400.])])
    basis, _ = torch.linalg.qr(torch.randn(n, n, generator=gen,
                                           dtype=torch.float64))
    a = basis @ torch.diag(spectrum.double()) @ basis.t()
    g = torch.randn(n, generator=gen, dtype=torch.float64)
    horizon = torch.rand(n, generator=gen, dtype=torch.float64) * 5 + 0.5
    half = horizon.sqrt()
    eig, vec = torch.linalg.eigh(half.view(-1, 1) * a * half.view(1, -1))
    expected = half * (vec @ (-torch.expm1(-eig) / eig *
                              (vec.t() @ (half * g))))
    x, diag = trajectory_response(MatrixOperator(a), g, horizon, tol=1e-10,
                                  max_iter=100)
    assert float((x - expected).norm() / expected.norm()) < 1e-11
    assert diag.iterations <= 20
    assert 0 < diag.reorthogonalized < diag.iterations
    # A well-conditioned operator at the default tolerance never needs it.
    x, diag = trajectory_response(MatrixOperator(SPD), rhs(40),
                                  torch.full((40, ), 0.1, dtype=torch.float64))
    assert diag.reorthogonalized == 0 and diag.converged


def test_trajectory_response_is_gradient_descent_over_the_horizon():
    # The independent reference: T explicit steps of gradient descent with
    # per-coordinate step sizes eta on 1/2 x'Ax - g'x from x = 0.
    a = random_symmetric(torch.linspace(0.0, 5.0, 30), seed=3)
    g = rhs(30, seed=4)
    gen = torch.Generator().manual_seed(5)
    eta = (torch.rand(30, generator=gen, dtype=torch.float64) + 0.5) * 1e-4
    steps = 20_000
    x = torch.zeros(30, dtype=torch.float64)
    for _ in range(steps):
        x = x - eta * (a @ x - g)
    out, _ = trajectory_response(MatrixOperator(a), g, steps * eta,
                                 tol=1e-10, max_iter=30)
    # The continuous-time filter differs from the discrete steps by
    # O(eta * curvature) = O(1e-3).
    assert float((out - x).norm() / x.norm()) < 2e-3
    # Far from the Newton step: training had too little time.
    newton = torch.linalg.lstsq(a, g).solution
    assert float((out - newton).norm() / newton.norm()) > 0.3


def test_trajectory_response_long_horizon_is_newton():
    g = rhs(40)
    x, _ = trajectory_response(MatrixOperator(SPD), g,
                               torch.full((40, ), 1e3, dtype=torch.float64),
                               tol=1e-12, max_iter=40)
    torch.testing.assert_close(x, torch.linalg.solve(SPD, g), rtol=1e-8,
                               atol=1e-10)


def test_trajectory_response_rejects_bad_input():
    a = random_symmetric(torch.linspace(-1.0, 1.0, 10))
    ones = torch.ones(10, dtype=torch.float64)
    with pytest.raises(SolverError, match='negative curvature'):
        trajectory_response(MatrixOperator(a), rhs(10), ones, max_iter=10)
    with pytest.raises(ValueError, match='horizon'):
        trajectory_response(MatrixOperator(SPD), rhs(40),
                            -torch.ones(40, dtype=torch.float64))
    with pytest.raises(ValueError, match='shape'):
        trajectory_response(MatrixOperator(SPD), rhs(40), ones)
    with pytest.raises(SolverError, match='still changed'):
        trajectory_response(MatrixOperator(SPD), rhs(40),
                            torch.ones(40, dtype=torch.float64), tol=1e-14,
                            max_iter=2)
