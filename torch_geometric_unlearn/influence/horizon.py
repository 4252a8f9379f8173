r"""How far training could move each parameter: the *horizon* of an
early-stopped model.

Influence functions assume the trained parameters :math:`\theta^*`
minimise the training objective.  Early-stopped models do not: training
ran :math:`T` optimiser steps and stopped.  Linearised around
:math:`\theta^*`, a run on the data without a request differs from the
original run by

.. math::
    x = \sum_{t < T} (I - \eta P A)^t \, \eta P g
      \approx \tau^{1/2} \varphi(\tau^{1/2} A \tau^{1/2}) \tau^{1/2} g,
    \qquad \varphi(z) = \frac{1 - e^{-z}}{z},

where :math:`g` is the request's influence on the gradient, :math:`A` the
curvature, :math:`\eta P` the optimiser's per-coordinate step size and
:math:`\tau = T \eta P` the *horizon* (see
:func:`~torch_geometric_unlearn.influence.trajectory.trajectory_response`).
Where :math:`\tau \mu \gg 1` this is the Newton step :math:`A^{-1} g` of IFRU;
where training had too little time to follow the curvature it is the
shorter move that training actually makes.  With :math:`\tau \to \infty`
(training run to convergence) it is the Newton step.

Units: :math:`\tau` is a displacement per unit of gradient of the *summed*
objective (see :mod:`~torch_geometric_unlearn.influence.objectives`).  An
optimiser that minimises the mean over :math:`N` examples (the loss of a batch,
averaged) steps :math:`N` times less per unit of summed gradient, so its
step sizes are divided by :obj:`loss_scale` :math:`= N`.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

# Above this median share of the squared mean gradient in Adam's second
# moment, the run was not noise-driven and its step size gives no horizon.
MAX_SIGNAL_SHARE = 0.2


def optimizer_horizon(optimizer: torch.optim.Optimizer, param: Tensor,
                      loss_scale: float) -> Tensor:
    r"""The horizon :math:`\tau` of :obj:`param` from the state of the
    optimiser that trained it, read at the parameters kept (e.g. at the
    best validation epoch): :math:`T` steps of the step size
    :func:`step_size` gives, per unit of gradient of the summed objective,
    :math:`\tau = T \eta / N`.

    Args:
        optimizer (torch.optim.Optimizer): The optimiser.
        param (torch.Tensor): The parameter (e.g. the embedding table),
            shape :obj:`[n, d]`.
        loss_scale (float): :math:`N`, the summed objective divided by the
            loss the optimiser minimised (the number of training examples
            for a loss averaged over each batch; 1 for a summed loss).

    Returns:
        torch.Tensor: :math:`\tau`, the shape of :obj:`param`.

    Raises:
        ValueError: If the state cannot give a horizon (no step taken, or
            Adam's steps sign-like).
    """
    if not loss_scale > 0:
        raise ValueError(f"'loss_scale' must be positive (got {loss_scale})")
    steps, size, _ = step_size(optimizer, param)
    return (steps * size / loss_scale).detach().clone()


@dataclass(frozen=True)
class AdamRule:
    r"""How Adam's horizon is made, so that it can be rebuilt for rows whose
    gradients a request changes wholesale: :math:`\tau = T \,
    \mathrm{lr} / ((\sqrt{\hat v} + \epsilon) N)` (see
    :func:`optimizer_horizon`).  An item whose every interaction is
    forgotten restarts from zero and afterwards only ever appears as a
    sampled negative: a retrain keeps a far smaller :math:`\hat v` on its
    row than the run that saw it popular (on own-loop LightGCN-2s 20-36
    times, see the benchmark docs), and steps it that much further.

    Args:
        steps (int): :math:`T`, the steps taken.
        lr (float): The learning rate.
        eps (float): Adam's :math:`\epsilon`.
        loss_scale (float): :math:`N` (see :func:`optimizer_horizon`).
        batch_size (int): The examples of a batch, :math:`B`.
    """
    steps: int
    lr: float
    eps: float
    loss_scale: float
    batch_size: int

    def horizon(self, root_second_moment: Tensor) -> Tensor:
        r"""The horizon for rows with Adam's :math:`\sqrt{\hat v}`
        :obj:`root_second_moment` (any shape)."""
        return self.steps * self.lr / (
            (root_second_moment + self.eps) * self.loss_scale)


def adam_rule(optimizer: torch.optim.Optimizer, param: Tensor,
              loss_scale: float, batch_size: int) -> Optional[AdamRule]:
    r"""The :class:`AdamRule` of :obj:`param` under :obj:`optimizer`, or
    :obj:`None` for another optimiser or a parameter without steps."""
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return None
    group = next((g for g in optimizer.param_groups
                  if any(p is param for p in g['params'])), None)
    state = optimizer.state.get(param, {})
    if group is None or 'step' not in state:
        return None
    return AdamRule(int(float(state['step'])), float(group['lr']),
                    float(group['eps']), float(loss_scale), int(batch_size))


def sampled_row_moment(grads: Tensor, prob: Tensor, batch_size: int,
                       reduce=None) -> Tensor:
    r"""Adam's second moment for a row that enters the loss only as a
    sampled negative: each of :math:`M` examples draws it with probability
    :math:`p_e`, contributing :math:`c_e` to the gradient, and a batch
    averages :math:`B` random examples, so the batch gradient's second
    moment is :math:`E[g_b^2] \approx \overline{p c^2} / B +
    (\overline{p c})^2` (means over the examples; Poisson occurrences).

    Args:
        grads (torch.Tensor): :math:`c_e`, :obj:`[M, d]`.
        prob (torch.Tensor): :math:`p_e`, :obj:`[M]`.
        batch_size (int): :math:`B`.
        reduce (Callable, optional): Sums a tensor over the shards of the
            examples (see :class:`~torch_geometric_unlearn.unlearn.
            distributed.Shards`).

    Returns:
        torch.Tensor: :math:`E[g_b^2]` per coordinate, :obj:`[d]`.
    """
    weighted = prob.view(-1, 1) * grads
    sums = torch.cat([(weighted * grads).sum(0), weighted.sum(0),
                      grads.new_tensor([float(grads.size(0))])])
    if reduce is not None:
        sums = reduce(sums)
    dim = grads.size(1)
    count = sums[-1].clamp(min=1)
    return sums[:dim] / count / batch_size + (sums[dim:2 * dim] / count)**2


def step_size(optimizer: torch.optim.Optimizer, param: Tensor,
              check: bool = True) -> Tuple[int, Tensor, Optional[float]]:
    r"""The steps an optimiser has taken on :obj:`param` and its step size
    :math:`\eta` per coordinate, per unit of gradient, as it stands.

    * :class:`torch.optim.Adam` / :class:`~torch.optim.AdamW`:
      :math:`\eta_k = \mathrm{lr} / (\sqrt{\hat v_k} + \epsilon)` with
      the bias-corrected second moment :math:`\hat v`.  This linear
      response holds while gradient noise dominates :math:`\hat v`
      (mini-batch training past its first epochs); where the gradient
      itself does, Adam's steps are sign-like and barely respond.  So
      (with :obj:`check`) the median over rows of :math:`\lVert \hat m
      \rVert^2 / \sum \hat v` must be at most :data:`MAX_SIGNAL_SHARE`.
      Measured: 0.03 for MF and 2-layer LightGCN on MovieLens-100K, 0.12
      for LightGCN-1 with BCE, 0.38 for a 2-layer LightGCN on Last.fm
      restored after two epochs, where this horizon overshot (closure
      -0.02 against 0.75 for the residual's).  On quadratics the response
      of paired Adam runs was predicted to 3-5% at shares of 0.05-0.07 and
      off by 0.4-4.7 times at 0.26-0.91.  (Decoupled weight decay is not
      modelled.)
    * :class:`torch.optim.SGD`: :math:`\mathrm{lr}` times what momentum
      :math:`\mu` (dampening :math:`d`) makes of a steady gradient,
      :math:`(1 - d) / (1 - \mu)`, or :math:`1 + \mu (1 - d) / (1 - \mu)`
      with Nesterov's; :math:`T` must be set as
      :obj:`optimizer.state[param]['step']` (SGD keeps no step count).
      Without the momentum factor the horizon of an own loop's SGD with
      :math:`\mu = 0.9` was ten times short: closure 0.28 on
      MovieLens-100K (1% random) where the run's own first-order response
      closes 0.67; with it, 0.57.

    Args:
        optimizer (torch.optim.Optimizer): The optimiser.
        param (torch.Tensor): The parameter it optimises.
        check (bool): Refuse Adam's sign-like steps.

    Returns:
        (int, torch.Tensor, float or None): :math:`T`, :math:`\eta` (the
        shape of :obj:`param`) and, for Adam, the median share of the
        gradient's square in its second moment.

    Raises:
        ValueError: If the state cannot give a step size.
        TypeError: For another optimiser.
    """
    group = next((g for g in optimizer.param_groups
                  if any(p is param for p in g['params'])), None)
    if group is None:
        raise ValueError("'param' is not optimised by 'optimizer'")
    state = optimizer.state.get(param, {})
    if 'step' not in state:
        raise ValueError("The optimiser has taken no step on 'param' (its "
                         "state holds no 'step')")
    steps, signal = int(float(state['step'])), None
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        beta1, beta2 = group['betas']
        v_hat = state['exp_avg_sq'] / (1 - beta2**steps)
        m_hat = state['exp_avg'] / (1 - beta1**steps)
        rows = v_hat.reshape(v_hat.size(0), -1) if v_hat.dim() > 1 else \
            v_hat.view(-1, 1)
        signal = float(((m_hat**2).reshape_as(rows).sum(1) /
                        rows.sum(1).clamp(min=1e-300)).median())
        if check and signal > MAX_SIGNAL_SHARE:
            raise ValueError(
                f"Adam's steps were sign-like, not noise-driven (median "
                f"share of the gradient's square in its second moment "
                f"{signal:.2f} > {MAX_SIGNAL_SHARE}): its step size does "
                f"not predict how the run responds to a change")
        size = group['lr'] / (v_hat.sqrt() + group['eps'])
    elif isinstance(optimizer, torch.optim.SGD):
        momentum, dampening = group['momentum'], group['dampening']
        factor = 1.0
        if momentum:
            steady = (1 - dampening) / (1 - momentum)
            factor = 1 + momentum * steady if group['nesterov'] else steady
        size = torch.full_like(param, group['lr'] * factor)
    else:
        raise TypeError(f"No horizon for {type(optimizer).__name__}: use "
                        f"Adam, AdamW or SGD, or let the unlearner estimate "
                        f"it from the stationarity residual")
    return steps, size.detach(), signal


def residual_horizon(residual: Tensor, emb: Tensor,
                     spread: float = 1.0) -> Tensor:
    r"""A horizon per row estimated from the model alone, when the
    optimiser's state is not known.

    Gradient descent stopped early behaves like training to convergence
    with an extra L2 pull :math:`\delta` towards the (small) initial
    parameters, :math:`\delta \approx 1 / \tau`.  At such a point the
    objective's gradient is :math:`\nabla L \approx -\delta\, \theta`, so
    :math:`\delta_v = -\langle r_v, \theta_v \rangle / \lVert \theta_v
    \rVert^2` for each row :math:`v` of the residual :math:`r = \nabla
    L(\theta)`.  Every horizon is capped at :obj:`spread` times the median
    reading; rows whose residual does not pull them outwards look
    converged and get the cap.  Long readings are where this estimate is
    least reliable (it grows like :math:`e^{\tau \mu}`), and a long
    horizon on a flat direction moves a row far: on MovieLens-100K and
    small unregularised models a cap at the median (:obj:`spread=1`)
    closed more of the gap to the paired retrain than caps of 3, 10 or
    100, with fewer products.

    Measured on MovieLens-100K (see the benchmark docs) this closes less of
    the gap to retraining than the optimiser's own horizon
    (:func:`optimizer_horizon`), which should be preferred.

    Args:
        residual (torch.Tensor): :math:`\nabla L(\theta)` on the rows,
            shape :obj:`[r, d]`.
        emb (torch.Tensor): :math:`\theta` on the rows, shape
            :obj:`[r, d]`.
        spread (float): The cap, relative to the median horizon.

    Returns:
        torch.Tensor: :math:`\tau`, shape :obj:`[r, d]` (constant per row).
    """
    return row_horizon(decay_rates(residual, emb), spread).view(
        -1, 1).expand_as(emb).clone()


def decay_rates(residual: Tensor, emb: Tensor) -> Tensor:
    r"""The L2 pull :math:`\delta_v = -\langle r_v, \theta_v \rangle /
    \lVert \theta_v \rVert^2` of each row :math:`v` (see
    :func:`residual_horizon`), shape :obj:`[r]`.

    Args:
        residual (torch.Tensor): :math:`\nabla L(\theta)`, :obj:`[r, k]`.
        emb (torch.Tensor): :math:`\theta`, :obj:`[r, k]`.
    """
    pull = -(residual * emb).sum(1)
    norm = (emb * emb).sum(1)
    return pull / norm.clamp(min=torch.finfo(emb.dtype).tiny)


def row_horizon(rates: Tensor, spread: float = 1.0) -> Tensor:
    r"""The horizon :math:`1 / \delta_v` of each row from its
    :func:`decay_rates`, capped at :obj:`spread` over the median rate;
    rows that are not pulled outwards get the cap.  Shape :obj:`[r]`.

    Raises:
        ValueError: If no row is pulled outwards.
    """
    positive = rates > 0
    if not bool(positive.any()):
        raise ValueError("The residual pulls no row outwards: the model "
                         "looks converged, so it has no finite horizon "
                         "(use the Newton step)")
    horizon = torch.full_like(rates, float(spread) / float(
        rates[positive].median()))
    horizon[positive] = torch.minimum(1 / rates[positive],
                                      horizon[positive])
    return horizon
