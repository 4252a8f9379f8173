r"""The trajectory response: not the solution of the influence system but
the change that :math:`T` steps of a preconditioned gradient method make in
response to :math:`g`, linearised; it is what an early-stopped model would
have moved (see :mod:`~torch_geometric_unlearn.influence.horizon`).
:func:`trajectory_response` computes it by Lanczos with partial
reorthogonalisation.
"""
import math
import time
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from torch_geometric_unlearn.influence.hvp import LinearOperator
from torch_geometric_unlearn.influence.solvers import (SolverDiagnostics,
                                                       SolverError)

__all__ = ['trajectory_response']


def _phi(z: Tensor) -> Tensor:
    # (1 - exp(-z)) / z, continued by 1 at z = 0.
    small = z.abs() < 1e-8
    safe = torch.where(small, torch.ones_like(z), z)
    return torch.where(small, 1 - z / 2, -torch.expm1(-safe) / safe)


def trajectory_response(operator: LinearOperator, g: Tensor, horizon: Tensor,
                        tol: float = 1e-2, max_iter: int = 100,
                        eps: Optional[float] = None
                        ) -> Tuple[Tensor, SolverDiagnostics]:
    r"""The change that gradient descent on the quadratic
    :math:`\frac12 x^\top A x - g^\top x` makes from :math:`x = 0` over a
    per-coordinate *horizon* :math:`\tau` (step size times number of
    steps, see :mod:`~torch_geometric_unlearn.influence.horizon`):

    .. math::
        x = \tau^{1/2} \varphi(\tau^{1/2} A \tau^{1/2}) \tau^{1/2} g,
        \qquad \varphi(z) = \frac{1 - e^{-z}}{z},

    the continuous-time limit of :math:`\sum_{t < T} (I - \eta A)^t \eta g`
    with :math:`\tau = T\eta`.  Directions of curvature
    :math:`\mu \gg 1/\tau` get the Newton response :math:`g / \mu`, flat
    ones :math:`\tau g`: the response is finite even where :math:`A` is
    singular, so no damping is needed.  Computed by Lanczos on
    :math:`\tau^{1/2} A \tau^{1/2}`, one product per iteration, with
    partial reorthogonalisation (Simon, 1984): the loss of orthogonality
    is estimated from the recurrence's coefficients (the
    :math:`\omega`-recurrence) and the basis is read to restore it only
    where the estimate passes :math:`\sqrt{\epsilon}`.  With vectors the
    size of the 10^6-interaction synthetic graph's, 13 iterations cost
    1.6 s beyond the products, against 6.7 s with full reorthogonalisation
    and out-of-place updates (``benchmarks/lanczos_overhead.py``); on the
    requests measured the estimate never called for it.

    Args:
        operator (LinearOperator): :math:`A` (its damping included); must
            be positive semi-definite.
        g (torch.Tensor): :math:`g`, shape :obj:`[dim]`.
        horizon (torch.Tensor): :math:`\tau > 0`, shape :obj:`[dim]`.
        tol (float): Stop once an iteration changes the estimate by at
            most this much, relative to its norm.
        max_iter (int): Most iterations.
        eps (float, optional): The relative accuracy :math:`\epsilon` of the
            operator's products (e.g. that of float32 where it computes in
            float32); the machine epsilon of :obj:`g`'s dtype by default.

    Returns:
        (torch.Tensor, SolverDiagnostics): :math:`x` and what the solve
        did.  :attr:`SolverDiagnostics.residual` is the relative change of
        the last iteration, an a-posteriori error estimate: there is no
        linear system whose residual could be checked.
        :attr:`SolverDiagnostics.reorthogonalized` counts the iterations
        that read the basis.

    Raises:
        SolverError: If :math:`\tau^{1/2} A \tau^{1/2}` shows negative
            curvature (the response would grow exponentially), the estimate
            turns non-finite, or it has not settled within
            :obj:`max_iter` iterations.
    """
    if g.shape != (operator.dim, ) or horizon.shape != (operator.dim, ):
        raise ValueError(f"'g' and 'horizon' must have shape "
                         f"[{operator.dim}] (got {list(g.shape)} and "
                         f"{list(horizon.shape)})")
    if not bool((horizon > 0).all()) or not bool(torch.isfinite(
            horizon).all()):
        raise ValueError("'horizon' must be finite and positive")
    start_time, start_hvps = time.perf_counter(), operator.num_hvps
    g = g.detach().to(operator.dtype)
    eps = float(torch.finfo(g.dtype).eps if eps is None else eps)
    reorthogonalized = 0
    scale = horizon.to(g).sqrt()
    b = scale * g
    b_norm = float(b.norm())
    x = torch.zeros_like(g)
    history: List[float] = []
    failure, change, ritz = None, 0.0, torch.zeros(0, dtype=g.dtype)
    iterations = 0
    if b_norm > 0:
        # The Lanczos vectors, one tensor each: every vector operation is
        # in place, and the basis is read only to reorthogonalise (38 MB a
        # vector at 10^6 interactions).
        basis = [b / b_norm]
        alphas: List[float] = []
        betas: List[float] = []
        previous = None
        # omega[k] estimates q_j . q_k for the current vector j (and
        # omega_prev for the one before).
        omega, omega_prev = torch.ones(1, dtype=torch.float64), None
        again = False
        while iterations < max_iter:
            w = operator.matvec(scale * basis[-1]).mul_(scale)
            iterations += 1
            alphas.append(float(basis[-1] @ w))
            w.sub_(basis[-1], alpha=alphas[-1])
            if betas:
                w.sub_(basis[-2], alpha=betas[-1])
            beta = float(w.norm())
            omega, omega_prev = _omega(omega, omega_prev, alphas, betas,
                                       beta, eps, b.numel())
            if again or float(omega[:-1].abs().max()) > math.sqrt(eps):
                # Against the whole basis, with a second pass only where
                # the first removed much of what was left (Daniel, Gragg,
                # Kaufman and Stewart's criterion); the next vector too,
                # as the recurrence's own error has reached both.
                before = beta
                _orthogonalize(w, basis)
                beta = float(w.norm())
                if beta < 0.7071 * before:
                    _orthogonalize(w, basis)
                    beta = float(w.norm())
                omega[:-1] = eps
                again = not again
                reorthogonalized += 1
            tri = torch.diag(torch.tensor(alphas, dtype=g.dtype))
            if betas:
                off = torch.tensor(betas, dtype=g.dtype)
                tri += torch.diag(off, 1) + torch.diag(off, -1)
            ritz, vecs = torch.linalg.eigh(tri)
            if float(ritz[0]) < -1e-6 * max(float(ritz[-1]), 1e-30):
                failure = 'negative curvature'
                break
            # The estimate in the orthonormal basis: its change and norm
            # are those of the coordinates, so the n-vector is formed once.
            coords = vecs @ (_phi(ritz) * vecs[0]) * b_norm
            if not bool(torch.isfinite(coords).all()):
                failure = 'non-finite response'
                break
            if previous is not None:
                previous = torch.cat([previous, previous.new_zeros(1)])
                change = float((coords - previous).norm() /
                               coords.norm().clamp(min=1e-300))
                history.append(change)
            previous = coords
            if change <= tol and len(history):
                break
            if beta <= 1e-12 * b_norm:  # the Krylov space is exhausted
                change = 0.0
                break
            betas.append(beta)
            basis.append(w.div_(beta))
        else:
            failure = (f'the estimate still changed by {change:.3g} after '
                       f'{iterations} iterations')
        if previous is not None:
            for coord, vector in zip(previous.tolist(), basis):
                x.add_(vector, alpha=coord)
            x.mul_(scale)
    diagnostics = SolverDiagnostics(
        method='lanczos',
        converged=failure is None,
        iterations=iterations,
        residual=change,
        tol=tol,
        damping=operator.damping,
        num_hvps=operator.num_hvps - start_hvps,
        time=time.perf_counter() - start_time,
        negative_curvature=failure == 'negative curvature',
        min_curvature=float(ritz[0]) if ritz.numel() else None,
        max_eigenvalue=float(ritz[-1]) if ritz.numel() else None,
        residual_history=history,
        message=failure or 'converged',
        reorthogonalized=reorthogonalized,
    )
    if failure is not None:
        raise SolverError(f"trajectory response failed: {failure}",
                          diagnostics, x)
    return x, diagnostics


def _orthogonalize(w: Tensor, basis: List[Tensor]):
    # Classical Gram-Schmidt of w against the basis, in place.
    coefficients = [float(q @ w) for q in basis]
    for coefficient, q in zip(coefficients, basis):
        w.sub_(q, alpha=coefficient)


def _omega(omega: Tensor, omega_prev: Optional[Tensor], alphas: List[float],
           betas: List[float], beta: float, eps: float, n: int
           ) -> Tuple[Tensor, Tensor]:
    # Simon's omega-recurrence for the next Lanczos vector q_{j+1} (before
    # it is normalised by beta = beta_j): estimates of q_{j+1} . q_k for
    # k <= j, then 1 for itself; and the current estimates, which become
    # the previous ones.  The rounding term carries the sign of what it is
    # added to, so that the estimate never falls to zero by cancellation.
    j = len(alphas) - 1
    out = torch.empty(j + 2, dtype=torch.float64)
    if beta == 0:
        out.fill_(0)
    else:
        alpha = torch.tensor(alphas, dtype=torch.float64)
        coupling = torch.tensor(betas + [beta], dtype=torch.float64)
        k = torch.arange(j)
        t = coupling[k] * omega[k + 1] + (alpha[k] - alpha[j]) * omega[k]
        t[1:] += coupling[k[1:] - 1] * omega[k[1:] - 1]
        if omega_prev is not None and j > 0:
            t -= coupling[j - 1] * omega_prev[k]
        noise = eps * (alpha[k].abs() + coupling[k] + abs(alphas[j]) + beta)
        out[:j] = (t + torch.where(t < 0, -noise, noise)) / beta
        out[j] = torch.finfo(torch.float64).eps * math.sqrt(n)
    out[j + 1] = 1
    return out, omega
