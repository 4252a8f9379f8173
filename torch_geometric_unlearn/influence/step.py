r"""Which update an influence unlearner takes, and how its Newton system is
solved, for both curvature backends of
:class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner` (the choices of
:class:`~torch_geometric_unlearn.unlearn.config.IFRUConfig`).

A stationarity test (:func:`choose_step`) compares the old objective's
gradient at the model with the request's influence: at a minimum IFRU's
Newton step runs (:func:`solve_hessian`), on an early-stopped model the
trajectory step (see :mod:`~torch_geometric_unlearn.influence.horizon`).
"""
from enum import Enum
from typing import Callable, Optional, Tuple

from torch import Tensor

from torch_geometric_unlearn.graph.pruning import PruningConfig
from torch_geometric_unlearn.influence import (LinearOperator, SolverConfig,
                                               SolverDiagnostics, SolverError,
                                               solve)


class StepType(Enum):
    r"""Which update the unlearner takes."""
    newton = 'newton'  # IFRU's Newton step; valid at a minimum
    trajectory = 'trajectory'  # the early-stopped run's response
    auto = 'auto'  # Newton if the model is stationary, else trajectory


class HessianType(Enum):
    r"""Which curvature the Newton step uses."""
    exact = 'exact'  # the Hessian; indefinite away from a minimum
    gauss_newton = 'gauss_newton'  # generalised Gauss-Newton: always PSD
    auto = 'auto'  # exact; Gauss-Newton if the exact solve fails


class GradientType(Enum):
    r"""Which right-hand side the Newton step uses."""
    stationary = 'stationary'  # IFRU's direct + spillover influence
    exact = 'exact'  # minus the gradient of the new objective


def coerce_enum(config, name: str, enum):
    r"""Replaces :obj:`config.<name>` by its :obj:`enum` member, or raises
    a :class:`ValueError` listing the choices."""
    try:
        setattr(config, name, enum(getattr(config, name)))
    except ValueError:
        raise ValueError(f"'{name}' must be one of "
                         f"{[e.value for e in enum]} "
                         f"(got {getattr(config, name)!r})") from None


def check_solve_options(config):
    r"""Validates the solve options of
    :class:`~torch_geometric_unlearn.unlearn.config.IFRUConfig`: pruning
    (:obj:`'auto'` for the backend's default), solver (:obj:`None` for the
    backend's default), extra hops and Newton steps."""
    if config.pruning is None:
        config.pruning = PruningConfig('none')
    if not isinstance(config.pruning, PruningConfig) and \
            config.pruning != 'auto':
        raise ValueError("'pruning' must be a PruningConfig, 'auto' or None")
    if config.solver is not None and \
            not isinstance(config.solver, SolverConfig):
        raise ValueError("'solver' must be a SolverConfig or None")
    for name, low in (('extra_hops', 0), ('newton_steps', 1)):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or \
                value < low:
            raise ValueError(f"'{name}' must be an int >= {low} "
                             f"(got {value!r})")


def check_step_options(config):
    r"""Validates the step options of
    :class:`~torch_geometric_unlearn.unlearn.config.IFRUConfig`:
    :obj:`step` and :obj:`stationary_tol`."""
    coerce_enum(config, 'step', StepType)
    if isinstance(config.stationary_tol, bool) or not isinstance(
            config.stationary_tol, (int, float)) or \
            not 0 <= config.stationary_tol < float('inf'):
        raise ValueError(f"'stationary_tol' must be a finite float >= 0 "
                         f"(got {config.stationary_tol!r})")


def choose_step(config, residual: Tensor, influence: Tensor,
                read_horizon: Callable[[], Optional[Tensor]]
                ) -> Tuple[bool, Optional[Tensor], float, Optional[str]]:
    r"""The stationarity test of
    :class:`~torch_geometric_unlearn.unlearn.config.IFRUConfig` (both
    curvature backends):
    whether the Newton step runs, from the old objective's gradient
    :obj:`residual` at the model against the request's :obj:`influence`
    on the solved parameters.

    Returns:
        (bool, torch.Tensor or None, float, str or None): Whether the
        Newton step runs; the trajectory step's horizon otherwise (from
        :obj:`read_horizon`); the stationarity; and why the trajectory
        step fell back to Newton, if it did.
    """
    scale = float(influence.norm())
    stationarity = (float(residual.norm()) / scale if scale > 0 else
                    float('inf'))
    newton = (config.step == StepType.newton or
              (config.step == StepType.auto and
               stationarity <= config.stationary_tol))
    horizon, route_fallback = None, None
    if not newton:
        try:
            horizon = read_horizon()
        except ValueError as error:
            if config.step == StepType.trajectory:
                raise
            # Documented in IFRUConfig: no early-stopping reading of the
            # residual, so the Newton step runs.
            newton, route_fallback = True, str(error)
    return newton, horizon, stationarity, route_fallback


def newton_hint(stationarity: float, config) -> str:
    r"""What to change when the Newton step fails, given the stationarity
    the test measured and the config."""
    tol = config.stationary_tol
    if stationarity > tol:
        return (f"The Newton step assumes a minimum of the training "
                f"objective, but this model is not at one (stationarity "
                f"{stationarity:.3g} > {tol}, e.g. early-stopped): the "
                f"default IFRUConfig(step='auto') takes the trajectory "
                f"step there")
    return ("Raise SolverConfig(max_iter=...) or its damping, or check "
            "that 'l2' is the weight the model was trained with")


def solve_hessian(build: Callable[[HessianType],
                                  Tuple[LinearOperator, Tensor]],
                  hessian: HessianType, config: SolverConfig
                  ) -> Tuple[Tensor, SolverDiagnostics]:
    r"""Solves the Newton system with the curvature :obj:`hessian` asks
    for.  :obj:`HessianType.auto` solves with the exact Hessian and, if
    that solve fails (negative curvature, or no convergence), again with
    the Gauss-Newton matrix; the returned record then counts the failed
    attempt's products and time and says why it failed.

    Args:
        build (Callable): Maps a :class:`HessianType` (exact or
            Gauss-Newton) to the operator and the right-hand side
            :obj:`[dim]` to solve it with.
        hessian (HessianType): The curvature.
        config (SolverConfig): The solver settings.

    Raises:
        SolverError: If the last solve fails.
    """
    kinds = ([HessianType.exact, HessianType.gauss_newton]
             if hessian == HessianType.auto else [hessian])
    failed = None
    for kind in kinds:
        operator, rhs = build(kind)
        try:
            step, record = solve(operator, rhs, config)
        except SolverError as error:
            if kind == kinds[-1]:
                raise
            failed = error.diagnostics
            continue
        finally:
            operator.release()
        record.message += f' ({kind.value} Hessian)'
        record.curvature = kind.value
        if failed is not None:
            record.num_hvps += failed.num_hvps
            record.time += failed.time
            record.fallback = (f'{failed.message}, {failed.num_hvps} '
                               f'products')
            record.message += (f' after the exact Hessian failed: '
                               f'{record.fallback}')
        return step, record
