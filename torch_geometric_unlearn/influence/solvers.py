r"""Solvers for the damped influence system :math:`(H + \lambda I)x = g`.

Every solver sits behind :func:`solve` and returns the solution together
with a :class:`SolverDiagnostics` record whose :attr:`residual` is the *true*
relative residual :math:`\lVert (H + \lambda I)x - g \rVert /
\lVert g \rVert`, recomputed at the end, never a recursive estimate.  A solve
that does not reach its tolerance, produces NaNs, diverges, or (for CG) meets
negative curvature either raises :class:`SolverError` or returns flagged with
a :class:`SolverWarning`, as :attr:`SolverConfig.on_failure` asks: nothing
fails silently.

Damping is fixed (:obj:`damping=0.1`) or automatic (:obj:`damping="auto"`):
the largest eigenvalue :math:`\lambda_{\max}` of the undamped operator is
estimated by power iteration and the damping is
:math:`\text{damping_ratio} \cdot \lambda_{\max}`.  This caps the condition
number of :math:`H + \lambda I` on a positive semi-definite :math:`H` at
about :math:`1 / \text{damping_ratio}`, and keeps the damping on the scale
of the problem whatever the loss's normalisation.  Embedding Hessians are
singular along the rotations :math:`E \mapsto ER` (gauge symmetry), so some
damping, or a projection, is needed for CG there.
"""
import math
import time
import warnings
from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from torch_geometric_unlearn.influence.hvp import (LinearOperator, _enum,
                                                   check_damping,
                                                   estimate_max_eigenvalue)


class SolverMethod(Enum):
    r"""The solver.

    - :obj:`"cg"`: conjugate gradient (default).  Needs
      :math:`H + \lambda I` positive definite; stops on negative curvature.
    - :obj:`"direct"`: builds the matrix from :attr:`dim` products and
      calls :func:`torch.linalg.solve`; reports the extreme eigenvalues.
      Small problems only.
    - :obj:`"lissa"`: the LiSSA recursion
      :math:`x_{k+1} = x_k + (g - (H + \lambda I)x_k) / s`.  It converges
      if and only if the spectrum of :math:`(H + \lambda I)/s` lies in
      :math:`(0, 2)`; a scale :math:`s \geq \lambda_{\max}` puts it in
      :math:`(0, 1]`, where the error shrinks monotonically by the factor
      :math:`1 - \lambda_{\min}/s` per step.
    - :obj:`"minres"`: MINRES, for symmetric indefinite systems.
    - :obj:`"adam"`: Adam on the quadratic
      :math:`\frac12 x^\top (H + \lambda I) x - g^\top x`, as the IFRU
      paper does, but stopping on the residual.  Sensitive to :obj:`lr`;
      for comparison only.
    """
    cg = 'cg'
    direct = 'direct'
    lissa = 'lissa'
    minres = 'minres'
    adam = 'adam'


class OnFailure(Enum):
    r"""What a failed solve does: :obj:`"raise"` a :class:`SolverError`, or
    :obj:`"warn"` with a :class:`SolverWarning` and return the flagged
    result."""
    raise_error = 'raise'
    warn = 'warn'


@dataclass
class SolverConfig:
    r"""Configuration of :func:`solve`, validated on construction.

    Args:
        method (SolverMethod or str, optional): The solver.
            (default: :obj:`"cg"`)
        tol (float, optional): Target relative residual
            :math:`\lVert (H + \lambda I)x - g \rVert / \lVert g \rVert`.
            (default: :obj:`1e-4`)
        max_iter (int, optional): Most iterations (products), not counting
            damping estimation and the final residual check; LiSSA's
            recursion depth. (default: :obj:`100`)
        damping (float or str, optional): :obj:`None` keeps the operator's
            own damping; a float :math:`\geq 0` replaces it for this solve;
            :obj:`"auto"` sets :obj:`damping_ratio` times the estimated
            :math:`\lambda_{\max}`. (default: :obj:`None`)
        damping_ratio (float, optional): See :obj:`damping`.
            (default: :obj:`1e-3`)
        power_iters (int, optional): Most power iterations to estimate
            :math:`\lambda_{\max}`. (default: :obj:`20`)
        scale (float, optional): LiSSA's scale :math:`s`; :obj:`None` uses
            :math:`1.05\,\lambda_{\max}(H + \lambda I)`, estimated.
            (default: :obj:`None`)
        lr (float, optional): Adam's step size. (default: :obj:`1e-2`)
        divergence_factor (float, optional): A residual above this many
            times :math:`\lVert g \rVert` counts as divergence.
            (default: :obj:`1e4`)
        on_failure (OnFailure or str, optional): :obj:`"raise"` or
            :obj:`"warn"`. (default: :obj:`"raise"`)
    """
    method: Union[SolverMethod, str] = SolverMethod.cg
    tol: float = 1e-4
    max_iter: int = 100
    damping: Union[float, str, None] = None
    damping_ratio: float = 1e-3
    power_iters: int = 20
    scale: Optional[float] = None
    lr: float = 1e-2
    divergence_factor: float = 1e4
    on_failure: Union[OnFailure, str] = OnFailure.raise_error

    def __post_init__(self):
        self.method = _enum(SolverMethod, self.method, 'method')
        self.on_failure = _enum(OnFailure, self.on_failure, 'on_failure')
        for name in ('tol', 'damping_ratio', 'lr'):
            _check_positive(self, name)
        for name in ('max_iter', 'power_iters'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or value < 1:
                raise ValueError(f"'{name}' must be an int >= 1 "
                                 f"(got {value!r})")
        if self.scale is not None:
            _check_positive(self, 'scale')
        _check_positive(self, 'divergence_factor')
        if self.divergence_factor <= 1:
            raise ValueError(f"'divergence_factor' must be > 1 "
                             f"(got {self.divergence_factor!r})")
        if self.damping is not None and self.damping != 'auto':
            self.damping = check_damping(self.damping)


def _check_positive(config: SolverConfig, name: str):
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 < value < float('inf'):
        raise ValueError(f"'{name}' must be a finite float > 0 "
                         f"(got {value!r})")
    setattr(config, name, float(value))


@dataclass
class SolverDiagnostics:
    r"""What a solve did.

    Attributes:
        method (str): The solver.
        converged (bool): Whether the true relative residual met the
            tolerance and nothing failed.
        iterations (int): Iterations run.
        residual (float): The true relative residual
            :math:`\lVert (H + \lambda I)x - g \rVert / \lVert g \rVert`
            of the returned solution.
        tol (float): The tolerance asked for.
        damping (float): The damping :math:`\lambda` of the solved system.
        num_hvps (int): Operator products spent, including damping or
            scale estimation and the final residual check.
        time (float): Wall-clock seconds.
        negative_curvature (bool): Whether a direction :math:`p` with
            :math:`p^\top (H + \lambda I) p \leq 0` was seen.
        min_curvature (float, optional): The least Rayleigh quotient
            :math:`p^\top (H + \lambda I)p / p^\top p` seen (CG directions,
            MINRES Lanczos vectors, iterates of LiSSA and Adam, the least
            eigenvalue for the direct solve).
        max_eigenvalue (float, optional): The estimated or computed
            largest eigenvalue of :math:`H + \lambda I`, where known.
        residual_history (List[float]): Relative residual after each
            iteration (recursive estimates for CG and MINRES).
        message (str): Why the solve stopped.
        curvature (str, optional): Which curvature an influence solve used
            (:obj:`'exact'` or :obj:`'gauss_newton'`), where the caller
            records it.
        fallback (str, optional): Why a first attempt with the exact
            Hessian failed, where the caller fell back.
        reorthogonalized (int, optional): Lanczos iterations that
            reorthogonalised against the whole basis (trajectory response).
    """
    method: str
    converged: bool
    iterations: int
    residual: float
    tol: float
    damping: float
    num_hvps: int
    time: float
    negative_curvature: bool = False
    min_curvature: Optional[float] = None
    max_eigenvalue: Optional[float] = None
    residual_history: List[float] = field(default_factory=list)
    message: str = ''
    curvature: Optional[str] = None
    fallback: Optional[str] = None
    reorthogonalized: Optional[int] = None


class SolverError(RuntimeError):
    r"""A solve failed.  :attr:`diagnostics` says how, :attr:`solution`
    holds the last iterate."""
    def __init__(self, message: str, diagnostics: SolverDiagnostics,
                 solution: Tensor):
        super().__init__(message)
        self.diagnostics = diagnostics
        self.solution = solution


class SolverWarning(RuntimeWarning):
    r"""A solve failed and :obj:`on_failure="warn"` was asked for."""


@dataclass
class _Run:
    # What one solver loop hands back to `solve`.
    x: Tensor
    iterations: int
    history: List[float]
    failure: Optional[str] = None  # None: stopped normally
    min_curvature: Optional[float] = None
    max_eigenvalue: Optional[float] = None
    residual: Optional[float] = None  # true relative residual, if known


def solve(operator: LinearOperator, g: Tensor,
          config: Optional[SolverConfig] = None,
          **kwargs) -> Tuple[Tensor, SolverDiagnostics]:
    r"""Solves :math:`(H + \lambda I)x = g`.

    Args:
        operator (LinearOperator): :math:`H` (with its own damping, used
            when :obj:`config.damping` is :obj:`None`).
        g (torch.Tensor): The right-hand side, shape :obj:`[dim]`.
        config (SolverConfig, optional): The solver settings.  If
            :obj:`None`, :obj:`**kwargs` build one.

    Returns:
        (torch.Tensor, SolverDiagnostics): The solution :math:`x` of shape
        :obj:`[dim]`, and what the solve did.

    Raises:
        SolverError: If the solve failed and :obj:`on_failure="raise"`.
    """
    if config is None:
        config = SolverConfig(**kwargs)
    elif kwargs:
        raise ValueError("Pass either 'config' or keyword settings, not "
                         "both")
    if g.shape != (operator.dim, ):
        raise ValueError(f"'g' must have shape [{operator.dim}] (got "
                         f"{list(g.shape)})")
    g = g.detach().to(operator.dtype)
    start_time, start_hvps = time.perf_counter(), operator.num_hvps

    lambda_max = None
    if config.damping == 'auto' or (config.method == SolverMethod.lissa
                                    and config.scale is None):
        lambda_max = estimate_max_eigenvalue(
            operator.with_damping(0.0), config.power_iters)
    if config.damping == 'auto':
        operator = operator.with_damping(config.damping_ratio * lambda_max)
    elif config.damping is not None:
        operator = operator.with_damping(config.damping)

    g_norm = float(g.norm())
    if g_norm == 0:
        run = _Run(torch.zeros_like(g), 0, [], residual=0.0)
    elif config.method == SolverMethod.cg:
        run = _cg(operator, g, config)
    elif config.method == SolverMethod.direct:
        run = _direct(operator, g)
    elif config.method == SolverMethod.lissa:
        scale = config.scale
        if scale is None:
            scale = 1.05 * (lambda_max + operator.damping)
        run = _lissa(operator, g, config, scale)
    elif config.method == SolverMethod.minres:
        run = _minres(operator, g, config)
    else:
        run = _adam(operator, g, config)

    residual = run.residual
    if residual is None:
        residual = float((operator.matvec(run.x) - g).norm()) / g_norm
    failure = run.failure
    if failure is None and not math.isfinite(residual):
        failure = 'non-finite residual'
    elif failure is None and residual > config.tol:
        failure = (f'missed the tolerance {config.tol:g} after '
                   f'{run.iterations} iterations')
    max_eig = run.max_eigenvalue
    if max_eig is None and lambda_max is not None:
        max_eig = lambda_max + operator.damping
    diagnostics = SolverDiagnostics(
        method=config.method.value,
        converged=failure is None,
        iterations=run.iterations,
        residual=residual,
        tol=config.tol,
        damping=operator.damping,
        num_hvps=operator.num_hvps - start_hvps,
        time=time.perf_counter() - start_time,
        negative_curvature=(run.min_curvature is not None
                            and run.min_curvature <= 0),
        min_curvature=run.min_curvature,
        max_eigenvalue=max_eig,
        residual_history=run.history,
        message=failure or 'converged',
    )
    if failure is not None:
        message = (f"{config.method.value} solve failed: {failure} "
                   f"(relative residual {residual:.3g}, damping "
                   f"{operator.damping:.3g})")
        if config.on_failure == OnFailure.raise_error:
            raise SolverError(message, diagnostics, run.x)
        warnings.warn(message, SolverWarning, stacklevel=2)
    return run.x, diagnostics


def _failure(rel: float, config: SolverConfig) -> Optional[str]:
    # Why an iteration with relative residual `rel` must stop, if it must.
    if not math.isfinite(rel):
        return 'non-finite residual'
    if rel > config.divergence_factor:
        return 'residual diverged'
    return None


def _cg(op: LinearOperator, g: Tensor, config: SolverConfig) -> _Run:
    g_norm = float(g.norm())
    x = torch.zeros_like(g)
    r = g.clone()
    p = r.clone()
    rs = float(r @ r)
    history: List[float] = []
    min_curv = math.inf
    iterations = 0
    while iterations < config.max_iter:
        ap = op.matvec(p)
        iterations += 1
        p_ap = float(p @ ap)
        min_curv = min(min_curv, p_ap / float(p @ p))
        if not p_ap > 0:  # also catches NaN
            failure = ('negative curvature' if p_ap <= 0 else
                       'non-finite curvature')
            return _Run(x, iterations, history, failure, min_curv)
        alpha = rs / p_ap
        x.add_(p, alpha=alpha)
        r.sub_(ap, alpha=alpha)
        rs_new = float(r @ r)
        rel = math.sqrt(rs_new) / g_norm
        history.append(rel)
        failure = _failure(rel, config)
        if failure is not None:
            return _Run(x, iterations, history, failure, min_curv)
        if rel <= config.tol:
            # The recursive residual drifts from the true one in low
            # precision: check, and restart from the true residual if the
            # two disagree.
            r = g - op.matvec(x)
            rs_new = float(r @ r)
            true_rel = math.sqrt(rs_new) / g_norm
            if true_rel <= config.tol:
                return _Run(x, iterations, history, None, min_curv,
                            residual=true_rel)
            p = r.clone()
        else:
            p = r + (rs_new / rs) * p
        rs = rs_new
    return _Run(x, iterations, history, None, min_curv)


def _direct(op: LinearOperator, g: Tensor) -> _Run:
    matrix = op.to_dense()
    eigenvalues = torch.linalg.eigvalsh(matrix)
    min_eig, max_eig = float(eigenvalues[0]), float(eigenvalues[-1])
    try:
        x = torch.linalg.solve(matrix, g)
    except torch.linalg.LinAlgError:
        return _Run(torch.zeros_like(g), 1, [], 'singular matrix', min_eig,
                    max_eig)
    residual = float((matrix @ x - g).norm() / g.norm())
    return _Run(x, 1, [residual], None, min_eig, max_eig, residual)


def _richardson_like(op: LinearOperator, g: Tensor, config: SolverConfig,
                     step) -> _Run:
    # LiSSA and Adam both compute (H + damping) x each iteration, so the
    # true residual and the curvature along the iterate come for free.
    g_norm = float(g.norm())
    x = torch.zeros_like(g)
    r = g.clone()
    history: List[float] = []
    min_curv = math.inf
    for iterations in range(1, config.max_iter + 1):
        x = step(x, r)
        ax = op.matvec(x)
        r = g - ax
        x_sq = float(x @ x)
        if x_sq > 0:
            min_curv = min(min_curv, float(x @ ax) / x_sq)
        rel = float(r.norm()) / g_norm
        history.append(rel)
        failure = _failure(rel, config)
        if failure is not None:
            return _Run(x, iterations, history, failure, min_curv)
        if rel <= config.tol:
            return _Run(x, iterations, history, None, min_curv, residual=rel)
    return _Run(x, config.max_iter, history, None, min_curv, residual=rel)


def _lissa(op: LinearOperator, g: Tensor, config: SolverConfig,
           scale: float) -> _Run:
    return _richardson_like(op, g, config, lambda x, r: x + r / scale)


def _adam(op: LinearOperator, g: Tensor, config: SolverConfig) -> _Run:
    beta1, beta2, eps = 0.9, 0.999, 1e-12
    state = {'m': torch.zeros_like(g), 'v': torch.zeros_like(g), 't': 0}

    def step(x: Tensor, r: Tensor) -> Tensor:
        grad = -r  # the quadratic's gradient (H + damping) x - g
        state['t'] += 1
        state['m'].mul_(beta1).add_(grad, alpha=1 - beta1)
        state['v'].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        m_hat = state['m'] / (1 - beta1**state['t'])
        v_hat = state['v'] / (1 - beta2**state['t'])
        return x - config.lr * m_hat / (v_hat.sqrt() + eps)

    return _richardson_like(op, g, config, step)


def _minres(op: LinearOperator, g: Tensor, config: SolverConfig) -> _Run:
    # Paige and Saunders' MINRES without preconditioner, as in SciPy: a
    # Lanczos recurrence whose tridiagonal least-squares problem is
    # updated by Givens rotations, one product per iteration.
    beta1 = float(g.norm())
    x = torch.zeros_like(g)
    r1 = g.clone()
    r2 = g.clone()
    y = g.clone()
    w = torch.zeros_like(g)
    w2 = torch.zeros_like(g)
    old_b, beta, dbar, epsln, phibar = 0.0, beta1, 0.0, 0.0, beta1
    cs, sn = -1.0, 0.0
    history: List[float] = []
    min_curv = math.inf
    tiny = torch.finfo(g.dtype).eps
    for iterations in range(1, config.max_iter + 1):
        v = y / beta
        y = op.matvec(v)
        if iterations >= 2:
            y = y - (beta / old_b) * r1
        alpha = float(v @ y)  # the Rayleigh quotient of the unit vector v
        min_curv = min(min_curv, alpha)
        y = y - (alpha / beta) * r2
        r1, r2 = r2, y
        old_b, beta = beta, float(y.norm())
        old_eps = epsln
        delta = cs * dbar + sn * alpha
        gbar = sn * dbar - cs * alpha
        epsln = sn * beta
        dbar = -cs * beta
        gamma = max(math.hypot(gbar, beta), tiny)
        cs, sn = gbar / gamma, beta / gamma
        phi = cs * phibar
        phibar = sn * phibar
        w1, w2 = w2, w
        w = (v - old_eps * w1 - delta * w2) / gamma
        x = x + phi * w
        rel = phibar / beta1
        history.append(rel)
        if not math.isfinite(rel) or not math.isfinite(alpha):
            return _Run(x, iterations, history, 'non-finite residual',
                        min_curv)
        if rel <= config.tol or beta <= tiny * beta1:
            # A vanishing beta means the Krylov space is exhausted: exact.
            break
    return _Run(x, iterations, history, None, min_curv)
