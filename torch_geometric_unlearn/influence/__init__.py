r"""The influence engine: gradients and Hessian-vector products over a few
rows of any model's parameters, solvers for the damped system
:math:`(H + \lambda I)x = g`, and the trajectory response of an
early-stopped optimiser."""
from torch_geometric_unlearn.influence.hvp import (HessianOperator, HVPMethod,
                                                   LinearOperator,
                                                   MatrixOperator,
                                                   estimate_max_eigenvalue,
                                                   to_edge_index)
from torch_geometric_unlearn.influence.params import (FunctionalModel,
                                                      ParameterSelection)
from torch_geometric_unlearn.influence.solvers import (OnFailure, SolverConfig,
                                                       SolverDiagnostics,
                                                       SolverError,
                                                       SolverMethod,
                                                       SolverWarning, solve)
from torch_geometric_unlearn.influence.trajectory import trajectory_response

__all__ = [
    'FunctionalModel',
    'ParameterSelection',
    'LinearOperator',
    'MatrixOperator',
    'HessianOperator',
    'HVPMethod',
    'to_edge_index',
    'SolverMethod',
    'OnFailure',
    'SolverConfig',
    'SolverDiagnostics',
    'SolverError',
    'SolverWarning',
    'estimate_max_eigenvalue',
    'solve',
    'trajectory_response',
]
