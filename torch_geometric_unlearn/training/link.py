r"""The reference trainer and evaluation for any
:class:`~torch_geometric_unlearn.models.LinkModel`.

The same objective and settings as
:func:`~torch_geometric_unlearn.training.trainer.train` (summed BPR with
per-epoch negatives or BCE, L2 on all parameters, Adam, early stopping on
validation Recall@k or AUC), with the model scoring pairs through the
:class:`~.models.LinkModel` contract instead of LightGCN's embedding table.
It trains the first model, and retrains from scratch, so that unlearning is
compared with retraining on equal terms.  :func:`converge_link_model` takes
a model on to the optimum of its fixed objective, where parameter fidelity
is measured.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.metrics import LinkPredNDCG, LinkPredRecall
from tqdm.auto import tqdm

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       sample_negatives)
from torch_geometric_unlearn.evaluation.metrics import (_rows_cols, _split,
                                                        auc_score)
from torch_geometric_unlearn.influence import (ParameterSelection,
                                               SolverConfig, SolverError,
                                               solve)
from torch_geometric_unlearn.influence.gauss_newton import exact_hessian
from torch_geometric_unlearn.influence.horizon import optimizer_horizon
from torch_geometric_unlearn.influence.objectives import (ExampleLoss,
                                                          ExampleObjective)
from torch_geometric_unlearn.models import LinkModel
from torch_geometric_unlearn.training.trainer import (TrainConfig, TrainResult,
                                                      fit)

__all__ = ['train_link_model', 'evaluate_link_model', 'link_mean_rank',
           'converge_link_model']


def _reset(module: torch.nn.Module):
    for child in module.modules():
        if child is not module and hasattr(child, 'reset_parameters'):
            child.reset_parameters()


def train_link_model(model: LinkModel, data: InteractionData,
                     config: Optional[TrainConfig] = None,
                     warm_start: bool = False,
                     loss: Optional[ExampleLoss] = None,
                     exclude: Optional[Tensor] = None) -> TrainResult:
    r"""Trains :obj:`model` on :obj:`data` with early stopping and restores
    the parameters of the best validation epoch.

    Args:
        model (LinkModel): The wrapped model.
        data (InteractionData): The data; it needs a validation split.
        config (TrainConfig, optional): The settings (loss, L2, Adam, batch
            size, early stopping).
        warm_start (bool): Continue from the current parameters instead of
            resetting every submodule that has :meth:`reset_parameters`.
        loss (ExampleLoss, optional): A summed loss of the sampled
            examples instead of BPR or BCE.
        exclude (torch.Tensor, optional): Training pairs :obj:`[2, k]` to
            leave out while drawing the example stream of :obj:`data`:
            with the same seed, the paired retrain of a request (see
            :func:`~torch_geometric_unlearn.training.trainer.train`).

    Returns:
        TrainResult: With the frozen examples of the best epoch, and as
        :obj:`horizon` the run's horizon per node table (a dict by
        parameter name, for :class:`~torch_geometric_unlearn.unlearn.ifru.
        IFRUnlearner`), or :obj:`None` where Adam's steps were
        sign-like.
    """
    config = config or TrainConfig()
    if not isinstance(model, LinkModel):
        raise TypeError(f"'model' must be a LinkModel "
                        f"(got {type(model).__name__})")

    def batch_loss(graph, examples: Tensor, labels: Optional[Tensor],
                   batch: Tensor) -> Tensor:
        return ExampleObjective(examples, labels, loss)(model, graph, batch)

    def horizon(optimizer: torch.optim.Optimizer, num: int
                ) -> Dict[str, Tensor]:
        return {name: optimizer_horizon(optimizer, model.get_parameter(name),
                                        num)
                for name in model.node_params}

    return fit(model, data, config,
               [p for p in model.parameters() if p.requires_grad],
               None if warm_start else lambda: _reset(model.model),
               lambda data: model.graph(data.train_positive_index),
               batch_loss,
               lambda graph, data: evaluate_link_model(
                   model, data, 'val', config.k)[config.metric],
               horizon, exclude)


@torch.no_grad()
def _user_scores(model: LinkModel, embedding, users: Tensor) -> Tensor:
    r"""Scores :obj:`[len(users), num_items]` of every item for
    :obj:`users`."""
    items = torch.arange(model.num_items)
    pairs = torch.stack([users.repeat_interleave(model.num_items),
                         items.repeat(users.numel())])
    return model.decode(embedding, pairs).view(users.numel(), -1)


@torch.no_grad()
def evaluate_link_model(model: LinkModel, data: InteractionData,
                        split: str = 'test', k: int = 20,
                        batch_size: int = 256,
                        seed: int = 0) -> Dict[str, float]:
    r"""Recall@k, NDCG@k and AUC of a :class:`~.models.LinkModel` on a split,
    predicting on the graph of :obj:`data`'s positive training pairs, as
    :func:`~torch_geometric_unlearn.evaluation.metrics.evaluate` does for
    LightGCN (training pairs, and validation pairs on :obj:`'test'`, are never
    ranked)."""
    index, label, exclude = _split(data, split)
    was_training = model.training
    model.eval()
    embedding = model.embed(model.graph(data.train_positive_index))
    truth = index if label is None else index[:, label == 1]
    recall, ndcg = LinkPredRecall(k), LinkPredNDCG(k)
    truth_keys = pair_keys(truth, data.num_items).sort()[0]
    excl_keys = pair_keys(exclude, data.num_items).sort()[0]
    for batch in torch.unique(truth[0]).split(batch_size):
        score = _user_scores(model, embedding, batch)
        score[_rows_cols(excl_keys, batch, data.num_items)] = -float('inf')
        top = score.topk(k, dim=1).indices
        label_index = torch.stack(_rows_cols(truth_keys, batch,
                                             data.num_items))
        recall.update(top, label_index)
        ndcg.update(top, label_index)

    if label is None:
        gen = torch.Generator().manual_seed(seed)
        known = torch.cat([exclude, index], dim=1)
        neg = sample_negatives(index, data.num_items,
                               pair_keys(known, data.num_items).sort()[0],
                               gen)
        index = torch.cat([index, torch.stack([index[0], neg])], dim=1)
        label = torch.cat([torch.ones(neg.numel()), torch.zeros(neg.numel())])
    auc = auc_score(model.decode(embedding, index).float(), label)
    model.train(was_training)
    return {f'recall@{k}': float(recall.compute()),
            f'ndcg@{k}': float(ndcg.compute()), 'auc': auc}


@torch.no_grad()
def link_mean_rank(model: LinkModel, graph, pairs: Tensor,
                   exclude: Tensor) -> float:
    r"""Mean rank (1 = top) of the items of :obj:`pairs` :obj:`[2, k]` in
    their users' rankings over all items not in :obj:`exclude`
    :obj:`[2, M]`, as
    :func:`~torch_geometric_unlearn.evaluation.metrics.mean_rank`
    computes it for LightGCN."""
    was_training = model.training
    model.eval()
    embedding = model.embed(graph)
    users = torch.unique(pairs[0])
    excl = pair_keys(exclude, model.num_items).sort()[0]
    ranks = []
    for batch in users.split(256):
        score = _user_scores(model, embedding, batch)
        score[_rows_cols(excl, batch, model.num_items)] = -float('inf')
        mine = torch.isin(pairs[0], batch)
        row = torch.searchsorted(batch, pairs[0, mine])
        own = score[row, pairs[1, mine]]
        ranks.append(1 + (score[row] > own.view(-1, 1)).sum(1))
    model.train(was_training)
    return float(torch.cat(ranks).double().mean())


def converge_link_model(model: LinkModel, graph, objective: ExampleObjective,
                        l2: float, tol: float = 1e-6, max_iter: int = 200,
                        progress: bool = False) -> float:
    r"""Minimises :math:`L(\theta) = \sum_z \ell(z) + \frac{\lambda}{2}
    \lVert\theta\rVert^2` over all parameters of :obj:`model` in place, in
    eval mode, until :math:`\lVert \nabla L \rVert \leq` :obj:`tol`
    :math:`\cdot \lVert \lambda \theta \rVert`.

    Influence functions approximate the optimum of such a fixed objective,
    so parameter fidelity is measured between converged points.  The method
    is a damped Newton-CG: each step solves :math:`(H + \mu I) d =
    -\nabla L` with the exact Hessian by CG, to a relative residual that
    shrinks with the gradient, and backtracks until :math:`L` decreases
    enough (Armijo).  Where CG meets negative curvature, its last iterate
    is the step and :math:`\mu` grows tenfold; it shrinks tenfold after
    every full step, so the last steps are plain Newton steps and converge
    quadratically.  First-order methods
    (L-BFGS, Adam) stall far from the optimum of these ill-conditioned
    objectives on real data.

    Args:
        model (LinkModel): The model, updated in place.
        graph: Its message-passing input (see :meth:`LinkModel.graph`).
        objective (ExampleObjective): The examples and loss.
        l2 (float): :math:`\lambda`.
        tol (float): The gradient ratio to reach.
        max_iter (int): Most Newton steps.
        progress (bool): Show a progress bar.

    Returns:
        float: The final gradient ratio :math:`\lVert \nabla L \rVert /
        \lVert \lambda \theta \rVert`.
    """
    names = [name for name, p in model.named_parameters() if p.requires_grad]
    selection = ParameterSelection(model, {}, names)
    func = selection.functional(lambda m: objective(m, graph))
    was_training = model.training
    model.eval()

    def total(delta: Tensor) -> float:
        with torch.no_grad():
            return float(func(delta) + 0.5 * l2 * (
                selection.values() + delta).pow(2).sum())

    def gradient() -> Tuple[Tensor, float]:
        grad = selection.gradient(lambda m: objective(m, graph)) + \
            l2 * selection.values()
        scale = float(l2 * selection.values().norm())
        return grad, float(grad.norm()) / max(scale, 1e-30)

    grad, ratio = gradient()
    damping = 1e-3 * l2
    for _ in tqdm(range(max_iter), disable=not progress, desc='converge',
                  leave=False):
        if ratio <= tol:
            break
        hessian = exact_hessian(selection, objective, graph, l2)
        config = SolverConfig(method='cg', max_iter=500, damping=damping,
                              tol=max(min(0.1, ratio), 1e-10))
        try:
            step = solve(hessian, -grad, config)[0]
        except SolverError as error:
            # Negative curvature (e.g. along the models' rotation
            # symmetries away from the optimum): CG's last iterate still
            # descends (Steihaug); damp the next steps more.
            step = error.solution
            damping *= 10
        hessian.release()
        if not float(grad @ step) < 0:
            step = -grad / (l2 + damping)
        slope, value = float(grad @ step), total(selection.zeros())
        alpha = 1.0
        while total(alpha * step) > value + 1e-4 * alpha * slope:
            alpha /= 2
            if alpha < 1e-6:  # Rounding noise: no progress left to make.
                model.train(was_training)
                return ratio
        if alpha == 1.0:
            damping = max(damping / 10, 1e-8 * l2)
        selection.apply_(step, alpha)
        grad, ratio = gradient()
    model.train(was_training)
    return ratio
