r"""Utility metrics: Recall@k and NDCG@k over all items with known
interactions excluded (PyG's :class:`~torch_geometric.metrics.LinkPredRecall`
and :class:`~torch_geometric.metrics.LinkPredNDCG`), and AUC."""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch_geometric.metrics import LinkPredNDCG, LinkPredRecall

from torch_geometric_unlearn.data.interactions import (InteractionData,
                                                       pair_keys,
                                                       sample_negatives)


def auc_score(score: Tensor, label: Tensor) -> float:
    r"""Area under the ROC curve, the probability that a random positive
    scores above a random negative (ties count one half).

    Args:
        score (torch.Tensor): Scores, shape :obj:`[N]`.
        label (torch.Tensor): Binary labels, shape :obj:`[N]`.
    """
    if score.shape != label.shape or score.dim() != 1:
        raise ValueError(f"'score' and 'label' must be 1-D of equal length "
                         f"(got {list(score.shape)} and {list(label.shape)})")
    label = label.bool()
    num_pos, num_neg = int(label.sum()), int((~label).sum())
    if num_pos == 0 or num_neg == 0:
        raise ValueError("AUC needs at least one positive and one negative")
    # Mid-ranks: tied scores share the mean of the ranks they span.
    _, inverse, counts = torch.unique(score.double(), return_inverse=True,
                                      return_counts=True)
    end = counts.cumsum(0).double()
    mid_rank = end - (counts.double() - 1) / 2
    rank_sum = mid_rank[inverse][label].sum().item()
    return (rank_sum - num_pos * (num_pos + 1) / 2) / (num_pos * num_neg)


@torch.no_grad()
def ranking_metrics(user_emb: Tensor, item_emb: Tensor, truth: Tensor,
                    exclude: Optional[Tensor] = None, k: int = 20,
                    batch_size: int = 1024) -> Tuple[float, float]:
    r"""Recall@k and NDCG@k of full rankings over all items.

    Every user with at least one ground-truth item is ranked against all
    items, except the pairs in :obj:`exclude` (e.g. the training
    interactions), and the means over those users are returned.

    Args:
        user_emb (torch.Tensor): User embeddings, :obj:`[num_users, d]`.
        item_emb (torch.Tensor): Item embeddings, :obj:`[num_items, d]`.
        truth (torch.Tensor): Ground-truth user-item pairs, :obj:`[2, N]`.
        exclude (torch.Tensor, optional): Pairs never ranked,
            :obj:`[2, M]`.
        k (int): The cut-off.
        batch_size (int): Users scored at once; bounds memory at
            :obj:`batch_size * num_items` scores.

    Returns:
        (float, float): Recall@k and NDCG@k.
    """
    num_items = item_emb.size(0)
    if k > num_items:
        raise ValueError(f"'k' ({k}) exceeds the number of items "
                         f"({num_items})")
    recall, ndcg = LinkPredRecall(k).to(user_emb.device), LinkPredNDCG(k).to(
        user_emb.device)
    users = torch.unique(truth[0])
    truth_keys = pair_keys(truth, num_items).sort()[0]
    excl_keys = (pair_keys(exclude, num_items).sort()[0]
                 if exclude is not None else truth_keys[:0])
    for batch in users.split(batch_size):
        score = user_emb[batch] @ item_emb.t()
        score[_rows_cols(excl_keys, batch, num_items)] = -float('inf')
        top = score.topk(k, dim=1).indices
        label_index = torch.stack(_rows_cols(truth_keys, batch, num_items))
        recall.update(top, label_index)
        ndcg.update(top, label_index)
    return float(recall.compute()), float(ndcg.compute())


def _rows_cols(keys: Tensor, batch: Tensor,
               num_items: int) -> Tuple[Tensor, Tensor]:
    # The pairs of the sorted user batch, as (row in batch, item): sorted
    # keys put them in one contiguous slice.
    lo, hi = int(batch[0]) * num_items, (int(batch[-1]) + 1) * num_items
    part = keys[torch.searchsorted(keys, lo):torch.searchsorted(keys, hi)]
    part = part[torch.isin(part // num_items, batch)]
    return torch.searchsorted(batch, part // num_items), part % num_items


def _split(data: InteractionData, split: str):
    if split not in ('val', 'test'):
        raise ValueError(f"'split' must be 'val' or 'test' (got {split!r})")
    index, label = getattr(data, f'{split}_index'), getattr(
        data, f'{split}_label')
    if index is None or index.size(1) == 0:
        raise ValueError(f"The data has no '{split}' interactions")
    exclude = [data.train_index]
    if split == 'test' and data.val_index is not None:
        exclude.append(data.val_index)
    return index, label, torch.cat(exclude, dim=1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: InteractionData,
             split: str = 'test', k: int = 20, adj: Optional[Tensor] = None,
             batch_size: int = 1024, seed: int = 0) -> Dict[str, float]:
    r"""Recall@k, NDCG@k and AUC of a LightGCN-like model on a split.

    Rankings exclude the training pairs (and, for :obj:`'test'`, the
    validation pairs).  For labelled splits the ranking ground truth is the
    positives and AUC uses the labels; for implicit data AUC compares each
    held-out pair with one random item the user has no interaction with.

    Args:
        model (torch.nn.Module): A model with :meth:`get_embedding`.
        data (InteractionData): The data.
        split (str): :obj:`'val'` or :obj:`'test'`.
        k (int): The ranking cut-off.
        adj (torch.Tensor, optional): The message-passing graph; defaults to
            :obj:`data.edge_index`.
        batch_size (int): Users scored at once.
        seed (int): Seed of AUC's negatives for implicit data.

    Returns:
        Dict[str, float]: :obj:`recall@k`, :obj:`ndcg@k` and :obj:`auc`.
    """
    index, label, exclude = _split(data, split)
    was_training = model.training
    model.eval()
    emb = model.get_embedding(data.edge_index if adj is None else adj)
    model.train(was_training)
    user_emb, item_emb = emb[:data.num_users], emb[data.num_users:]
    device = emb.device
    index, exclude = index.to(device), exclude.to(device)

    truth = index if label is None else index[:, label.to(device) == 1]
    recall, ndcg = ranking_metrics(user_emb, item_emb, truth, exclude, k,
                                   batch_size)

    if label is None:
        gen = torch.Generator().manual_seed(seed)
        known = torch.cat([exclude, index], dim=1).cpu()
        neg = sample_negatives(index.cpu(), data.num_items,
                               pair_keys(known, data.num_items).sort()[0],
                               gen).to(device)
        index = torch.cat([index, torch.stack([index[0], neg])], dim=1)
        label = torch.cat([torch.ones(neg.numel()), torch.zeros(neg.numel())])
    score = (user_emb[index[0]] * item_emb[index[1]]).sum(-1)
    auc = auc_score(score.cpu(), label.cpu())
    return {f'recall@{k}': recall, f'ndcg@{k}': ndcg, 'auc': auc}


def fixed_objective(model: torch.nn.Module, edge_index: Tensor,
                    examples: Tensor, labels: Optional[Tensor], l2: float,
                    num_users: int):
    r"""The fixed training objective :math:`L(E)` of a PyG LightGCN as a
    function of its embedding table, for :func:`converge` and for
    measuring fidelity.  Returns a callable :obj:`E -> scalar`."""
    from torch_geometric_unlearn.graph.propagation import LinearPropagation
    from torch_geometric_unlearn.influence.objectives import (example_margin,
                                                              margin_loss)
    prop = LinearPropagation.from_model(
        model, edge_index.to(model.embedding.weight.device))

    def objective(emb: Tensor) -> Tensor:
        margin = example_margin(prop(emb), examples, num_users)
        return margin_loss(margin, labels) + 0.5 * l2 * emb.pow(2).sum()

    return objective


def converge(model: torch.nn.Module, edge_index: Tensor, examples: Tensor,
             labels: Optional[Tensor], l2: float, num_users: int,
             tol: float = 1e-4, max_iter: int = 2000) -> float:
    r"""Optimises the fixed objective (frozen negatives, given graph) of a
    PyG LightGCN in place with full-batch L-BFGS until
    :math:`\lVert \nabla L \rVert \leq` :obj:`tol`
    :math:`\cdot \lVert \lambda E \rVert`.

    Influence functions approximate the optimum of such an objective, so
    parameter fidelity is measured between converged points (see the
    docs).  Returns the final gradient ratio.
    """
    objective = fixed_objective(model, edge_index, examples, labels, l2,
                                num_users)
    emb = model.embedding.weight.detach().clone().requires_grad_()
    optimizer = torch.optim.LBFGS([emb], lr=1, max_iter=max_iter,
                                  history_size=20,
                                  tolerance_grad=0, tolerance_change=0,
                                  line_search_fn='strong_wolfe')

    def ratio() -> float:
        grad = torch.autograd.grad(objective(emb), emb)[0]
        return float(grad.norm() / (l2 * emb.detach()).norm().clamp(
            min=1e-30))

    def closure():
        optimizer.zero_grad()
        loss = objective(emb)
        loss.backward()
        # Stop L-BFGS once the relative gradient is small enough.
        if float(emb.grad.norm()) <= tol * float(
                (l2 * emb.detach()).norm()):
            emb.grad.zero_()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        model.embedding.weight.copy_(emb)
    return ratio()


def closure_ratio(unlearned: Tensor, original: Tensor,
                  target: Tensor) -> float:
    r""":math:`1 - \lVert \theta_U - \theta' \rVert / \lVert \theta -
    \theta' \rVert`: the share of the gap between the original parameters
    and the target (e.g. retrained) parameters that unlearning closed; 1 is
    exact, 0 is no better than doing nothing."""
    gap = (original - target).norm()
    return float(1 - (unlearned - target).norm() / gap)


@torch.no_grad()
@torch.no_grad()
def pair_ranks(model: torch.nn.Module, edge_index: Tensor, pairs: Tensor,
               num_users: int, exclude: Tensor) -> Tensor:
    r"""The rank (1 = top) of each item of :obj:`pairs` :obj:`[2, k]` in
    its user's ranking over all items not in :obj:`exclude` :obj:`[2, M]`
    (e.g. the remaining training pairs), shape :obj:`[k]` (float64), in
    the order of :obj:`pairs`.  Items with equal scores share their mean
    rank, so that a user whose row was zeroed (every score 0, as IFRU
    leaves a forgotten user) ranks every item in the middle, not first."""
    emb = model.get_embedding(edge_index)
    user_emb, item_emb = emb[:num_users], emb[num_users:]
    num_items = item_emb.size(0)
    excl = pair_keys(exclude, num_items).sort()[0]
    ranks = torch.empty(pairs.size(1), dtype=torch.float64)
    for user in torch.unique(pairs[0]):
        score = user_emb[user] @ item_emb.t()
        own = excl[torch.searchsorted(excl, user * num_items):torch.
                   searchsorted(excl, (user + 1) * num_items)] % num_items
        score[own] = -float('inf')
        mine = (pairs[0] == user).nonzero().view(-1)
        own_score = score[pairs[1, mine]].view(-1, 1)
        above = (score.view(1, -1) > own_score).sum(1)
        tied = (score.view(1, -1) == own_score).sum(1) - 1  # but itself
        ranks[mine] = (1 + above + tied / 2).double().cpu()
    return ranks


def mean_rank(model: torch.nn.Module, edge_index: Tensor, pairs: Tensor,
              num_users: int, exclude: Tensor) -> float:
    r"""Mean rank (1 = top) of the items of :obj:`pairs` :obj:`[2, k]` in
    their users' rankings over all items not in :obj:`exclude`
    :obj:`[2, M]` (e.g. the remaining training pairs), see
    :func:`pair_ranks`.  Deleted interactions should fall to where a
    retrained model ranks them."""
    return float(pair_ranks(model, edge_index, pairs, num_users,
                            exclude).mean())


def _top_k(model: torch.nn.Module, data: InteractionData,
           users: Optional[Tensor], k: int, batch_size: int,
           edge_index: Optional[Tensor]):
    # Yields the top-k items (training items excluded) of the sorted users,
    # a batch at a time, :obj:`[b, k]`.
    emb = model.get_embedding(data.edge_index if edge_index is None else
                              edge_index)
    user_emb, item_emb = emb[:data.num_users], emb[data.num_users:]
    users = torch.arange(data.num_users) if users is None else users
    excl = pair_keys(data.train_index, data.num_items).sort()[0]
    for batch in users.sort()[0].split(batch_size):
        score = user_emb[batch.to(emb.device)] @ item_emb.t()
        score[_rows_cols(excl, batch, data.num_items)] = -float('inf')
        yield score.topk(k, dim=1).indices


@torch.no_grad()
def top_k_share(model: torch.nn.Module, data: InteractionData,
                items: Tensor, users: Optional[Tensor] = None,
                k: int = 20, batch_size: int = 1024,
                edge_index: Optional[Tensor] = None) -> float:
    r"""The share of the top-:obj:`k` slots (training items excluded) of
    :obj:`users` (default: all) that :obj:`items` take, e.g. the targets of
    a promotion attack."""
    tops = list(_top_k(model, data, users, k, batch_size, edge_index))
    hits = sum(int(torch.isin(top, items.to(top.device)).sum())
               for top in tops)
    return hits / (sum(top.size(0) for top in tops) * k)


@torch.no_grad()
def hit_ratio(model: torch.nn.Module, data: InteractionData, items: Tensor,
              users: Optional[Tensor] = None, k: int = 20,
              batch_size: int = 1024,
              edge_index: Optional[Tensor] = None) -> float:
    r"""The share of :obj:`users` (default: all) with at least one of
    :obj:`items` in their top-:obj:`k` (training items excluded), e.g. the
    targets of a promotion attack among real users."""
    tops = list(_top_k(model, data, users, k, batch_size, edge_index))
    hits = sum(int(torch.isin(top, items.to(top.device)).any(1).sum())
               for top in tops)
    return hits / sum(top.size(0) for top in tops)


@torch.no_grad()
def pair_scores(model: torch.nn.Module, edge_index: Tensor, pairs: Tensor,
                num_users: int) -> Tensor:
    r"""Scores of user-item :obj:`pairs` :obj:`[2, k]` under a
    LightGCN-like model predicting with :obj:`edge_index`; shape
    :obj:`[k]`."""
    emb = model.get_embedding(edge_index)
    pairs = pairs.to(emb.device)
    return (emb[pairs[0]] * emb[pairs[1] + num_users]).sum(-1)


def unseen_pairs(data: InteractionData, pairs: Tensor,
                 seed: int = 0) -> Tensor:
    r"""One pair per pair of :obj:`pairs` :obj:`[2, k]`, for the same user
    and an item that user has no known interaction with (training,
    validation or test): the "never seen" side of a membership-inference
    attack.  Users who know every item are left out.  Shape
    :obj:`[2, k']`, :math:`k' \leq k`."""
    known = [data.train_index, pairs] + [
        x for x in (data.val_index, data.test_index) if x is not None]
    forbidden = torch.unique(pair_keys(torch.cat(known, 1), data.num_items))
    # Users who know every item have no unseen pair: leave them out.
    full = torch.bincount(forbidden // data.num_items,
                          minlength=data.num_users) >= data.num_items
    pairs = pairs[:, ~full[pairs[0]]]
    neg = sample_negatives(pairs, data.num_items, forbidden,
                           torch.Generator().manual_seed(seed),
                           max_rounds=10_000)
    return torch.stack([pairs[0], neg])


def membership_inference_auc(model: torch.nn.Module, edge_index: Tensor,
                             forgotten: Tensor, unseen: Tensor,
                             num_users: int) -> float:
    r"""AUC of a score-threshold membership-inference attacker telling the
    :obj:`forgotten` pairs :obj:`[2, k]` from :obj:`unseen` ones
    :obj:`[2, k']` (see :func:`unseen_pairs`) by the model's score.

    0.5 means the attacker cannot tell them apart.  Forgotten interactions
    are real preferences, so a model retrained without them still scores
    them somewhat higher than unseen pairs: compare an unlearned model's
    AUC with the retrained model's, not with 0.5.
    """
    score = pair_scores(model, edge_index, torch.cat([forgotten, unseen], 1),
                        num_users)
    label = torch.cat([torch.ones(forgotten.size(1)),
                       torch.zeros(unseen.size(1))])
    return auc_score(score.cpu(), label)


def popularity_auc(data: InteractionData, forgotten: Tensor,
                   unseen: Tensor) -> float:
    r"""The AUC of :func:`membership_inference_auc`'s attacker when each
    pair is scored by its item's number of training interactions in
    :obj:`data` (the data after the request): what popularity alone tells
    forgotten pairs from unseen ones.  A model that ranks a user without
    data by popularity (shared terms, e.g. an aggregator's bias) reaches
    about this AUC with no memory of the request."""
    degree = torch.bincount(data.train_positive_index[1],
                            minlength=data.num_items).double()
    score = torch.cat([degree[forgotten[1]], degree[unseen[1]]])
    label = torch.cat([torch.ones(forgotten.size(1)),
                       torch.zeros(unseen.size(1))])
    return auc_score(score, label)


def score_correlation(model: torch.nn.Module, edge_index: Tensor,
                      reference: torch.nn.Module, reference_edge_index: Tensor,
                      probe: Tensor, num_users: int) -> float:
    r"""Pearson correlation of two models' scores on the :obj:`probe`
    pairs :obj:`[2, k]`, each predicting with its own graph."""
    a = pair_scores(model, edge_index, probe, num_users).double()
    b = pair_scores(reference, reference_edge_index, probe,
                    num_users).double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


@torch.no_grad()
def top_k_overlap(model: torch.nn.Module, reference: torch.nn.Module,
                  data: InteractionData, k: int = 20,
                  batch_size: int = 1024) -> float:
    r"""Mean share of the top-:obj:`k` items (training items excluded) that
    two models predicting with :obj:`data.edge_index` agree on, over all
    users; 1 means identical top-:obj:`k` sets."""
    embs = [m.get_embedding(data.edge_index) for m in (model, reference)]
    excl = pair_keys(data.train_index, data.num_items).sort()[0]
    shared = 0
    for batch in torch.arange(data.num_users).split(batch_size):
        mask = _rows_cols(excl, batch, data.num_items)
        tops = []
        for emb in embs:
            score = emb[batch.to(emb.device)] @ emb[data.num_users:].t()
            score[mask] = -float('inf')
            tops.append(score.topk(k, dim=1).indices)
        # Items are distinct within a row: count matches pairwise.
        shared += int((tops[0].unsqueeze(2) == tops[1].unsqueeze(1)).sum())
    return shared / (data.num_users * k)


def auc_on_pairs(model: torch.nn.Module, edge_index: Tensor, index: Tensor,
                 label: Tensor, num_users: int) -> Optional[float]:
    r"""AUC of a model's scores on labelled pairs :obj:`[2, k]`, or
    :obj:`None` when the pairs hold only one class."""
    if index.size(1) == 0 or label.min() == label.max():
        return None
    return auc_score(pair_scores(model, edge_index, index, num_users).cpu(),
                     label.cpu())
