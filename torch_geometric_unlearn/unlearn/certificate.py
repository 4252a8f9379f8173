r"""The per-request certificate: evidence about an unlearning update that a
user can check without retraining.

Every :class:`~torch_geometric_unlearn.unlearn.ifru.IFRUnlearner` result,
of either curvature backend, carries a :class:`Certificate`
(:attr:`UnlearnResult.certificate
<torch_geometric_unlearn.unlearn.base.UnlearnResult.certificate>`).  It
records which step ran and why, how well it was solved, how the remaining
objective's gradient changed, and flags when the update is suspect.  See
the "Reading the certificate" section of the concepts page.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from torch import Tensor

from torch_geometric_unlearn.data.interactions import hashed_negative_rows
from torch_geometric_unlearn.evaluation.metrics import auc_score

# Forgotten pairs that now score below this share of their users' unseen
# items have been pushed far past where a retrain puts them.  Measured on
# MovieLens-100K: paired retrains 0.20 (a 2-layer LightGCN forgetting its
# most popular item) to 0.93 (1% random); the Newton step on early-stopped
# models 0.01-0.10 where it overshot most.  A heuristic for gross
# overshoot, not a test of fidelity.
OVERSHOOT_AUC = 0.1
# The update moved the solved rows by more than their own norm.
LARGE_STEP = 1.0
# Neighbour pairs scored for Certificate.neighbour_shift, at most.
NEIGHBOURS = 20_000
# The neighbours' move owes more than this share of its size to the draw
# of the negatives (Certificate.draw_noise), and is longer than dropping
# the edges makes it: a quarter of its square and more is the draw's.
NOISY_DRAW = 0.5
# What to do about each flag.
ADVICE = {
    'fallback': "the exact Hessian failed: read 'fallback' and compare "
                "against a retrain",
    'unconverged': 'raise SolverConfig(max_iter=...) or its tol',
    'large_step': 'compare against a retrain',
    'overshoot': 'compare against a retrain',
    'off_minimum': "use IFRUConfig(step='auto'): the trajectory step",
    'reversed': 'a solver defect: compare against a retrain and report it',
    'response_bound': 'a solver defect: compare against a retrain and '
                      'report it',
    'noisy_draw': "average over more negatives: IFRUConfig("
                  "expected_negatives='all') for LightGCN and MF, a larger "
                  "sampled_negatives for other models",
}
# The salts of the check's draws (see hashed_negatives): far from the ones
# the update itself takes (1, 2, ... for its sampled negatives).
DRAW_SALT = 1 << 20
# Slack of the trajectory response's bounds, which hold exactly for the
# Lanczos estimate, for float32 products.
RESPONSE_SLACK = 1e-3


@dataclass
class Certificate:
    r"""What an unlearning update did, with the figures to check it.

    Args:
        step (str): :obj:`'trajectory'` (the response of the early-stopped
            training run, see
            :mod:`~torch_geometric_unlearn.influence.horizon`) or
            :obj:`'newton'` (IFRU's Newton step, for a model at a minimum).
        curvature (str): :obj:`'gauss_newton'` or :obj:`'exact'`.
        horizon (str): Where the trajectory's horizon came from:
            :obj:`'optimizer'` (the training run's optimiser state),
            :obj:`'residual'` (estimated from the stationarity residual), or
            :obj:`'infinite'` for a Newton step.
        stationarity (float): :math:`\lVert \nabla L(\theta)\rVert /
            \lVert g \rVert` on the solved rows: the old objective's
            gradient at the model, relative to the request's influence
            :math:`g`.  Small (:math:`\ll 1`) only at a minimum, where the
            Newton step is valid; the test that chose :attr:`step`.
        solve_residual (float): The solver's relative residual: the true
            residual :math:`\lVert Ax - b \rVert / \lVert b \rVert` of a
            Newton solve, or the last relative change of the Lanczos
            estimate of a trajectory response.
        solve_tol (float): The tolerance it was asked to meet.
        products (int): Curvature products spent, failed attempts included.
        gradient_before (float): :math:`\lVert \nabla L'(\theta) \rVert`,
            the remaining objective's gradient on the solved rows before the
            update.
        gradient_after (float): :math:`\lVert \nabla L'(\theta_U) \rVert`,
            after it.  A Newton step at a minimum drives it far below
            :attr:`gradient_before`; an early-stopped model keeps a
            gradient of the size of its training residual, and the
            trajectory step leaves it there.
        step_norm (float): :math:`\lVert \theta_U - \theta \rVert /
            \lVert \theta \rVert` on the solved rows.
        forgotten_auc_before (float, optional): How the forgotten pairs
            score against never-seen pairs of the same users (AUC; 0.5 =
            alike), before the update.
        forgotten_auc_after (float, optional): The same after it.
        fallback (str, optional): Why the first choice of curvature failed,
            if it did.
        objective (str, optional): How the fixed objective was obtained
            from your training loop (the loss, its L2 weights and where the
            frozen negatives and the horizon came from), for unlearners
            built by
            :func:`~torch_geometric_unlearn.unlearn.recipe.from_training_loop`.
        stationary_tol (float, optional): The stationarity below which the
            Newton step is valid (the config's); a Newton step above it is
            flagged.
        neighbour_shift (float, optional): How far the update moved the
            scores of the request's neighbours (up to :data:`NEIGHBOURS`
            remaining training pairs that share a user or an item with
            it), as a multiple of how far dropping the forgotten edges
            alone moves them (:func:`neighbour_shift`); :obj:`None` where
            dropping the edges moves nothing (MF) or there are none.  A
            figure, not a flag: on 81 own-loop updates labelled against
            paired retrains, above 2 it marked 43 of the 46 that hurt
            the neighbours or missed and none of the 10 good ones, but a
            good update of a package-trained LightGCN-2 (closure 0.97)
            reads 3.3: where a retrain itself moves the neighbours far,
            it cannot tell (see the benchmark docs).
        change_error (float, optional): Where the kept examples' averaged
            gradient change was taken over a sample of the items
            (:obj:`IFRUConfig.expected_samples`), its estimated relative
            standard error (:attr:`~torch_geometric_unlearn.influence.
            expected.ExpectedBPR.change_error`); :obj:`None` where it was
            exact.  A figure, not a flag: 0.03-0.19 on the requests where
            512 items left every closure within 0.001 of the exact pass.
        draw_noise (float, optional): How much the update's move of the
            request's neighbours (the pairs of :attr:`neighbour_shift`)
            owes to the draw of its negatives: the same request solved
            again with every negative its right-hand side takes drawn anew
            (:attr:`IFRUConfig.check_draws
            <torch_geometric_unlearn.unlearn.config.IFRUConfig.
            check_draws>`) moves them differently by this share of the move,
            per draw (:func:`draw_noise`).  :obj:`None` where the
            right-hand side takes no drawn negatives (the sampler's
            average: see :attr:`change_error`) or the check is off;
            infinite where the redrawn request's solve failed.
        restarted (bool): Every forgotten pair has an end that restarted
            from zero or was set to zero (e.g. an item whose every
            interaction is forgotten, see :attr:`IFRUConfig.
            reset_unsupported <torch_geometric_unlearn.unlearn.config.
            IFRUConfig.reset_unsupported>`): their scores are then the new
            objective's pull from zero, which puts them below the users'
            unseen items as a retrain does, and :obj:`'overshoot'` is not
            tested.
        response_alignment (float, optional): For a trajectory step,
            :math:`g^\top x / \sqrt{(g^\top \tau g)(x^\top \tau^{-1}
            x)}` of its last segment's response :math:`x` to the
            right-hand side :math:`g` over the horizon :math:`\tau`
            (:func:`response_figures`): in :math:`(0, 1]` for any response
            of gradient descent, whatever the curvature.
        response_bound (float, optional): The larger of
            :math:`x^\top \tau^{-1} x / g^\top x` and
            :math:`g^\top x / g^\top \tau g`, both at most 1 for such a
            response: above 1, the step is longer than gradient descent
            over the horizon can move.
        flags (List[str]): Why the update is suspect, if it is:
            :obj:`'fallback'` (the exact Hessian failed and Gauss-Newton
            ran), :obj:`'unconverged'` (the solve missed its tolerance),
            :obj:`'large_step'` (the rows moved by more than their norm),
            :obj:`'overshoot'` (the forgotten pairs now score below
            :data:`OVERSHOOT_AUC` of their users' unseen items: further down
            than retraining puts real interactions; not where
            :attr:`restarted`), :obj:`'off_minimum'`
            (a Newton step, forced by the config, on a model that is not at
            a minimum: on early-stopped models 7 of 9 such updates were
            far from a retrain's), :obj:`'reversed'` (the response points
            against its right-hand side) and :obj:`'response_bound'` (it is
            longer than any response over the horizon): a step the solver
            did not compute as the theory says; :obj:`'noisy_draw'`
            (:attr:`draw_noise` above :data:`NOISY_DRAW` and the
            neighbours moved further than by dropping the edges,
            :attr:`neighbour_shift` above 1: a move the draw of the
            negatives made).  :attr:`advice` says what to do about each.
    """
    step: str
    curvature: str
    horizon: str
    stationarity: float
    solve_residual: float
    solve_tol: float
    products: int
    gradient_before: float
    gradient_after: float
    step_norm: float
    forgotten_auc_before: Optional[float] = None
    forgotten_auc_after: Optional[float] = None
    fallback: Optional[str] = None
    objective: Optional[str] = None
    stationary_tol: Optional[float] = None
    neighbour_shift: Optional[float] = None
    change_error: Optional[float] = None
    draw_noise: Optional[float] = None
    restarted: bool = False
    response_alignment: Optional[float] = None
    response_bound: Optional[float] = None
    flags: List[str] = field(default_factory=list)

    def __post_init__(self):
        if self.fallback is not None:
            self.flags.append('fallback')
        if not self.solve_residual <= self.solve_tol:
            self.flags.append('unconverged')
        if self.step_norm > LARGE_STEP:
            self.flags.append('large_step')
        if self.forgotten_auc_after is not None and not self.restarted \
                and self.forgotten_auc_after < OVERSHOOT_AUC:
            self.flags.append('overshoot')
        if self.step == 'newton' and self.stationary_tol is not None and \
                self.stationarity > self.stationary_tol:
            self.flags.append('off_minimum')
        if self.response_alignment is not None and \
                not self.response_alignment > 0:
            self.flags.append('reversed')
        if self.response_bound is not None and \
                not self.response_bound <= 1 + RESPONSE_SLACK:
            self.flags.append('response_bound')
        if self.draw_noise is not None and not \
                self.draw_noise <= NOISY_DRAW and not (
                    self.neighbour_shift is not None and
                    self.neighbour_shift <= 1):
            self.flags.append('noisy_draw')

    @property
    def suspect(self) -> bool:
        r"""Whether any flag is raised."""
        return bool(self.flags)

    @property
    def advice(self) -> List[str]:
        r"""What to do about each flag, in their order."""
        return [f'{flag}: {ADVICE[flag]}' for flag in self.flags]

    def __str__(self) -> str:
        verdict = ('SUSPECT: ' + ', '.join(self.flags) + ' (' + '; '.join(
            self.advice) + ')' if self.flags else 'ok')
        auc = ('' if self.forgotten_auc_after is None else
               f', forgotten-vs-unseen AUC {self.forgotten_auc_before:.3f} '
               f'-> {self.forgotten_auc_after:.3f}')
        if self.neighbour_shift is not None:
            auc += (f', neighbours moved {self.neighbour_shift:.2f}x as far '
                    f'as by dropping the edges')
        if self.draw_noise is not None:
            auc += (f', {self.draw_noise:.2f} of their move owed to the '
                    f'draw of the negatives')
        if self.change_error is not None:
            auc += (f', sampled gradient change (error '
                    f'{self.change_error:.2g})')
        source = '' if self.objective is None else \
            f'objective: {self.objective}\n'
        return (f'{source}{self.step} step ({self.curvature}, horizon '
                f'{self.horizon}), stationarity {self.stationarity:.3g}, '
                f'solve residual {self.solve_residual:.2g} (tol '
                f'{self.solve_tol:g}, {self.products} products), gradient '
                f'{self.gradient_before:.3g} -> {self.gradient_after:.3g}, '
                f'step {self.step_norm:.3g} of the rows{auc}: {verdict}')


def restarted(pairs: Tensor, nodes: Tensor, num_users: int) -> bool:
    r"""Whether every user-item pair of :obj:`pairs` :obj:`[2, k]` has an
    end among :obj:`nodes` (node ids, items offset by :obj:`num_users`):
    the rows restarted from zero or set to zero."""
    nodes = nodes.to(pairs.device)
    return bool((torch.isin(pairs[0], nodes) | torch.isin(
        pairs[1] + num_users, nodes)).all())


def neighbour_pairs(train_pairs: Tensor, pairs: Tensor,
                    limit: int = NEIGHBOURS) -> Tensor:
    r"""The remaining training pairs :obj:`[2, k]` (of :obj:`train_pairs`,
    after the request) that share a user or an item with the request's
    :obj:`pairs`, at most :obj:`limit` drawn with a fixed seed."""
    near = torch.isin(train_pairs[0], pairs[0]) | torch.isin(
        train_pairs[1], pairs[1])
    near = train_pairs[:, near]
    if near.size(1) > limit:
        gen = torch.Generator().manual_seed(0)
        near = near[:, torch.randperm(near.size(1), generator=gen)[:limit]]
    return near


def neighbour_shift(before: Tensor, dropped: Tensor,
                    after: Tensor) -> Optional[float]:
    r"""How far the neighbours' scores moved under the update
    (:obj:`after` :obj:`[k]`) from :obj:`before`, as a multiple of how far
    dropping the forgotten edges alone moved them (:obj:`dropped`: the
    original parameters on the new graph); :obj:`None` if that is no
    move."""
    base = float((dropped - before).norm())
    if not base > 0:
        return None
    return float((after - before).norm()) / base


def draw_noise(before: Tensor, after: Tensor,
               redrawn: Optional[Tensor]) -> float:
    r"""How much the move of the neighbours' scores :obj:`[k]` from
    :obj:`before` to :obj:`after` owes to the draw of the negatives:
    :math:`\lVert a - r \rVert / (\sqrt{2} \lVert a - b \rVert)` for the
    scores :obj:`redrawn` after the same request solved with other draws
    (two independent draws differ by :math:`\sqrt{2}` times one draw's
    noise); infinite where that solve failed (:obj:`None`), zero where
    nothing moved."""
    if redrawn is None:
        return float('inf')
    move = float((after - before).norm())
    if not move > 0:
        return 0.0
    return float((after - redrawn).norm()) / (2 ** 0.5 * move)


def redrawn_negatives(pairs: Tensor, count: int, num_items: int,
                      known: Optional[Tensor]) -> Tensor:
    r"""The user-item :obj:`pairs` :obj:`[2, M]` joined by :obj:`count`
    rows of negatives drawn anew for :attr:`Certificate.draw_noise`
    (:func:`~torch_geometric_unlearn.data.interactions.hashed_negatives`
    with salts no update takes, :data:`DRAW_SALT` on; avoiding
    :obj:`known` keys if given): :obj:`[2 + count, M]`."""
    return torch.cat([pairs, hashed_negative_rows(
        pairs, num_items, known, range(DRAW_SALT, DRAW_SALT + count))])


def pair_dots(final: Tensor, pairs: Tensor, num_users: int) -> Tensor:
    r"""The scores :obj:`[k]` of user-item :obj:`pairs` :obj:`[2, k]` under
    final embeddings :obj:`[N, d]` (items offset by :obj:`num_users`)."""
    pairs = pairs.to(final.device)
    return (final[pairs[0]] * final[pairs[1] + num_users]).sum(1)


def auc_of(forgotten: Tensor, unseen: Tensor) -> float:
    r"""AUC of the forgotten pairs' scores :obj:`[k]` against never-seen
    pairs' :obj:`[k']` (0.5 = alike)."""
    label = torch.cat([torch.ones(forgotten.numel()),
                       torch.zeros(unseen.numel())])
    return auc_score(torch.cat([forgotten, unseen]).detach().cpu(), label)


def forgotten_auc(final: Tensor, pairs: Tensor, unseen: Tensor,
                  num_users: int) -> Optional[float]:
    r"""AUC of the scores of the forgotten :obj:`pairs` :obj:`[2, k]`
    against :obj:`unseen` pairs :obj:`[2, k']` (see
    :func:`~torch_geometric_unlearn.evaluation.metrics.unseen_pairs`),
    under final embeddings :obj:`final` :obj:`[N, d]`; :obj:`None` if
    either set is empty."""
    if pairs.size(1) == 0 or unseen.size(1) == 0:
        return None
    score = pair_dots(final, torch.cat([pairs, unseen], 1), num_users)
    return auc_of(score[:pairs.size(1)], score[pairs.size(1):])


def response_figures(g: Tensor, x: Tensor, horizon: Tensor
                     ) -> Dict[str, float]:
    r"""Checks of a trajectory response :math:`x = \tau^{1/2}
    \varphi(M) \tau^{1/2} g` (see
    :func:`~torch_geometric_unlearn.influence.trajectory.
    trajectory_response`), which hold for any positive semi-definite
    curvature because :math:`0 < \varphi \le 1`: with :math:`u =
    \tau^{1/2} g`, :math:`g^\top x = u^\top \varphi u \in (0, u^\top u]`
    and :math:`x^\top \tau^{-1} x = u^\top \varphi^2 u \le g^\top x`.
    A reversed step breaks the first, a step several times too long the
    others.  No products: three dot products.

    Args:
        g (torch.Tensor): The right-hand side, :obj:`[dim]`.
        x (torch.Tensor): The response, :obj:`[dim]`.
        horizon (torch.Tensor): :math:`\tau > 0`, :obj:`[dim]`.

    Returns:
        Dict[str, float]: :obj:`response_alignment` and
        :obj:`response_bound`, as :class:`Certificate` holds them.
    """
    g, x, tau = (t.double().reshape(-1) for t in (g, x, horizon))
    gx = float(g @ x)
    gtg = float(g @ (tau * g))
    xtx = float(x @ (x / tau))
    if gtg <= 0 or xtx <= 0:  # nothing to respond to, or no response
        return {}
    return {'response_alignment': gx / (gtg * xtx) ** 0.5,
            'response_bound': max(xtx / gx, gx / gtg) if gx > 0 else
            float('inf')}
