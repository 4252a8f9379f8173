r"""BPR averaged over the negative sampler.

A trainer that draws a fresh negative for every positive pair in every
epoch follows, on average, the gradient of

.. math::
    L(F) = \sum_p w_p\, \mathbb{E}_{j}\, \mathrm{softplus}(F_{u_p} \cdot F_j
    - F_{u_p} \cdot F_{i_p}),

the BPR loss of the positive pairs :math:`(u_p, i_p)` averaged over a
negative item :math:`j` drawn uniformly, from every item (PyG's
``torch.randint(num_users, num_users + num_items, ...)``) or from the
items :math:`u_p` has no known pair with (the package's trainer).  A frozen
triple :math:`(u, i, j)` is one draw of this average; as the gradient of a
whole training set the draws' noise is large: on an own PyG loop's
LightGCN on MovieLens-100K the last epoch's triples gave a gradient of
twice the norm of this average's, at cosine 0.23 to it.  Influence terms
built on that gradient (the spillover of a request through the residual of
an early-stopped model) inherit the noise; see the benchmark docs.

The average needs every item's score for every pair, :math:`P \times I`
sigmoids, but no :math:`[P, I, d]` work: with :math:`W_{pj}` the sampler's
weight times :math:`\sigma(F_u \cdot F_j - F_u \cdot F_{i_p})`, the
gradient is a pair of products of :math:`W` with the item and user tables.
Pairs are taken a block of whole users at a time.

The gradient's *change* between two embedding tables can instead be
averaged over :obj:`samples` of the items, the same ones for both tables:
:math:`P \times S` sigmoids instead of :math:`P \times I`.  The items whose
rows carry most of the change (all but :data:`HEAVY_TAIL` of its squared
norm, at most :math:`S/2` of them) are taken exactly; the others are drawn
anew for every :data:`DRAW_USERS` consecutive user ids from the seed and
those ids alone (so the estimate is the same however the pairs are split
into blocks or dealt to ranks), in two halves, each its own average.
Their mean is the change and half their difference estimates its standard
error (:attr:`ExpectedBPR.change_error`).  The
gradient itself stays exact: at a trained model it is a near-cancelling
sum that a sample swamps (on MovieLens-100K, 512 of 1,682 items gave it a
relative error of 1.0, where the change kept cosine 0.99 to the exact
one).  A popular item's request moves one item's row most: without that
column taken exactly, an own loop's update moved the item's users' other
pairs the wrong way (closure -0.12 against 0.02 exactly).
"""
from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['ExpectedBPR', 'expected_negative_grad', 'freed_triples',
           'sampler_shift']

#: Share of the items' squared change that ExpectedBPR's sampled change may
#: leave to the sample; the items holding the rest are taken exactly.
HEAVY_TAIL = 0.1
#: Consecutive user ids that share one draw of the sampled items.
DRAW_USERS = 32


class ExpectedBPR:
    r"""The BPR loss of positive pairs averaged over a uniform negative
    sampler, as gradients with respect to the final embeddings :math:`F`
    (see the module docs).

    Args:
        pairs (torch.Tensor): The positive pairs :math:`(u_p, i_p)`,
            :obj:`[2, P]`, item ids from 0.
        num_users (int): Number of users; :math:`F` holds the users' rows,
            then the items'.
        num_items (int): Number of items :math:`I`.
        known (torch.Tensor, optional): Sorted keys (see
            :func:`~torch_geometric_unlearn.data.interactions.pair_keys`)
            of the pairs the sampler never draws; :obj:`None` draws from
            every item.
        weight (torch.Tensor, optional): :math:`w_p`, :obj:`[P]`; 1 by
            default.
        chunk (int): Pairs times items scored at once (memory: a few
            tensors of :obj:`chunk` entries).
        reduce (Callable, optional): Applied to every gradient before it
            is returned, e.g. a sum over the ranks that hold the other
            shards of the pairs.
        samples (int, optional): Items :math:`S` over which
            :meth:`gradient_change` averages the change, per group of
            users (see the module docs); :obj:`None` (or at least
            :math:`I`): every item, exactly.
        seed (int): Seed of the sampled items.

    Attributes:
        change_error (float, optional): After :meth:`gradient_change`, the
            sampled change's estimated relative standard error,
            :math:`\lVert c_1 - c_2 \rVert / \lVert c_1 + c_2 \rVert` for
            the two halves' estimates :math:`c_1, c_2` (half their
            difference over their mean); :obj:`None` where it was exact.
    """
    def __init__(self, pairs: Tensor, num_users: int, num_items: int,
                 known: Optional[Tensor] = None,
                 weight: Optional[Tensor] = None, chunk: int = 1 << 22,
                 reduce: Optional[Callable[[Tensor], Tensor]] = None,
                 samples: Optional[int] = None, seed: int = 0):
        if pairs.dim() != 2 or pairs.size(0) != 2:
            raise ValueError(f"'pairs' must have shape [2, P] (got "
                             f"{list(pairs.shape)})")
        if samples is not None and not (isinstance(samples, int) and
                                        samples >= 2):
            raise ValueError(f"'samples' must be an integer of at least 2 "
                             f"or None (got {samples!r})")
        self.samples = (None if samples is None or samples >= num_items
                        else samples)
        self.seed, self.change_error = seed, None
        order = torch.argsort(pairs[0], stable=True)
        self.pairs = pairs[:, order]
        self.weight = (None if weight is None else
                       weight.to(pairs.device)[order])
        self.num_users, self.num_items = num_users, num_items
        self.known, self.reduce, self.chunk = known, reduce, chunk
        self.users, counts = torch.unique_consecutive(self.pairs[0],
                                                      return_counts=True)
        self.slot = torch.repeat_interleave(
            torch.arange(self.users.numel(), device=pairs.device), counts)
        # Where each user's pairs start, and the end.
        self._offsets = [0] + torch.cumsum(counts, 0).tolist()
        if known is None:
            candidates = torch.full_like(self.users, num_items)
        else:
            self._start = torch.searchsorted(known, torch.arange(
                num_users + 1, device=known.device) * num_items)
            candidates = num_items - (self._start[self.users + 1] -
                                      self._start[self.users]).to(
                                          self.users.device)
        self.candidates = candidates.clamp(min=1)
        # Blocks of whole users, at most 'chunk' pair-item entries each
        # (a user with more pairs than that is a block of its own).
        budget = max(1, chunk // num_items)
        self.blocks: List[Tuple[int, int]] = []
        first = 0
        for k in range(self.users.numel()):
            if self._offsets[k + 1] - self._offsets[first] >= budget or \
                    k == self.users.numel() - 1:
                self.blocks.append((first, k + 1))
                first = k + 1

    def _block(self, first: int, last: int):
        # The block's users, each pair's slot among them, its item, and
        # its row scale w_p / (number of candidate negatives).
        lo, hi = self._offsets[first], self._offsets[last]
        users = self.users[first:last]
        slot = self.slot[lo:hi] - first
        items = self.pairs[1, lo:hi]
        scale = 1 / self.candidates[first:last][slot].to(torch.float64)
        if self.weight is not None:
            scale = scale * self.weight[lo:hi].to(scale)
        return users, slot, items, scale

    def _mask(self, users: Tensor) -> Optional[Tensor]:
        # [U_b, I]: the known pairs of the block's users.
        if self.known is None:
            return None
        begin, end = self._start[users], self._start[users + 1]
        count = end - begin
        row = torch.repeat_interleave(torch.arange(users.numel(),
                                                   device=users.device),
                                      count)
        offset = torch.arange(row.numel(), device=users.device) - \
            torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        mask = torch.zeros(users.numel(), self.num_items, dtype=torch.bool,
                           device=users.device)
        mask[row, self.known[torch.repeat_interleave(begin, count) +
                             offset] % self.num_items] = True
        return mask

    def _margins(self, scores: Tensor, slot: Tensor, positive: Tensor,
                 mask: Optional[Tensor] = None,
                 fill: float = 0.0) -> Tensor:
        # [P_b, C]: s_uj - s_{u i_p} from the block's users' scores
        # [U_b, C] on C items and the pairs' own scores 'positive' [P_b];
        # with 'mask' ([U_b, C], the known pairs), the users' known items'
        # scores are 'fill' first (in place: a user's [U_b, C] row costs
        # 1/P_u of its pairs' [P_b, C] rows).
        if mask is not None:
            scores.masked_fill_(mask, fill)
        return scores[slot].sub_(positive.view(-1, 1))

    def _scatter(self, weights: Tensor, x: Tensor, users: Tensor,
                 slot: Tensor, items: Tensor, scale: Tensor, out: Tensor,
                 alpha: float = 1.0, columns: Optional[Tensor] = None):
        # out += alpha times the gradient of sum_p scale_p sum_j W_pj
        # (x_u . x_j - x_u . x_{i_p}) at x, the weights W [P_b, C] on the
        # items 'columns' (every item by default) held fixed.  Summed per
        # user first: the products with the tables are then [U_b, C] (a
        # user's pairs share them), not [P_b, C].
        nu = self.num_users
        table = x[nu:] if columns is None else x[nu + columns]
        if self.weight is not None:
            weights = weights * scale.to(weights.dtype).view(-1, 1)
            scale = torch.ones_like(scale)
        # Without weights the scale is one per user.
        user_scale = torch.zeros(users.numel(), dtype=x.dtype,
                                 device=x.device).index_copy_(
                                     0, slot, scale.to(x.dtype))
        summed = weights.new_zeros(users.numel(), weights.size(1)).index_add_(
            0, slot, weights).mul_(user_scale.view(-1, 1))
        total = (weights.sum(1) * scale.to(x.dtype)).view(-1, 1)
        xu = x[users]
        user_rows = summed @ table
        user_rows.index_add_(0, slot, -total * x[nu:][items])
        out.index_add_(0, users, user_rows, alpha=alpha)
        if columns is None:
            out[nu:].add_(summed.t() @ xu, alpha=alpha)
        else:
            out.index_add_(0, nu + columns, summed.t() @ xu, alpha=alpha)
        out.index_add_(0, items + nu, -total * xu[slot], alpha=alpha)

    def grad(self, final: Tensor) -> Tensor:
        r"""The gradient at :math:`F` = :obj:`final` :obj:`[N, d]`."""
        out = self._grad(final)
        return out if self.reduce is None else self.reduce(out)

    def _grad(self, final: Tensor) -> Tensor:
        # The gradient before the reduction.
        out = torch.zeros_like(final)
        for first, last in self.blocks:
            users, slot, items, scale = self._block(first, last)
            scores = final[users] @ final[self.num_users:].t()
            # Known items never drawn: margin -inf, weight 0.
            prob = torch.sigmoid_(self._margins(
                scores, slot, scores[slot, items], self._mask(users),
                -float('inf')))
            self._scatter(prob, final, users, slot, items, scale, out)
        return out

    def gradient_change(self, final: Tensor, change: Tensor,
                        rows: Optional[Tensor] = None
                        ) -> Tuple[Tensor, Tensor]:
        r"""The gradient at :math:`F` = :obj:`final` and how much it exceeds
        the gradient at :math:`F - \Delta F` (:obj:`change`), both
        :obj:`[N, d]`.

        As :meth:`~torch_geometric_unlearn.influence.bilinear.BilinearLoss.
        gradient_change` forms it: from each margin's change
        :math:`\Delta m` (bilinear in :math:`\Delta F`) and the sigmoid's,
        :math:`\sigma(m) - \sigma(m - \Delta m) = \sigma(m)\,
        \sigma(\Delta m - m)(1 - e^{-\Delta m})`, never as the difference of
        two nearly equal gradients.

        Args:
            final (torch.Tensor): :math:`F`, :obj:`[N, d]`.
            change (torch.Tensor): :math:`\Delta F`, :obj:`[N, d]`.
            rows (torch.Tensor, optional): The node ids :obj:`[R]` where
                the gradient is wanted: it is then returned on them alone
                (zero elsewhere), and the work follows the rows that
                :obj:`change` moves and :obj:`rows`.  A pair of such a user
                or positive item is scored against every item, any other
                pair against those items alone (its other margins do not
                move); the result is the same.  Where that would cost over
                half of the full pass, the full pass runs.
        """
        sparse = (None if rows is None else
                  self._sparse_change(final, change, rows))
        halves = None
        if sparse is not None:
            grad, out = sparse
        elif self.samples is None:
            grad, out = self._full_change(final, change)
        else:
            grad = self._grad(final)
            halves = self._sampled_change(final, change)
        if rows is not None:
            wanted = torch.zeros(final.size(0), dtype=torch.bool,
                                 device=final.device)
            wanted[rows] = True
            grad[~wanted] = 0
        if self.reduce is not None:
            grad = self.reduce(grad)
            if halves is None:
                out = self.reduce(out)
            else:
                halves = [self.reduce(half) for half in halves]
        self.change_error = None
        if halves is not None:
            out = (halves[0] + halves[1]) / 2
            self.change_error = float((halves[0] - halves[1]).norm() / 2 /
                                      out.norm().clamp(min=1e-300))
        return grad, out

    def _sparse_change(self, final: Tensor, change: Tensor,
                       rows: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
        # gradient_change on the rows that move (before 'rows' and the
        # reduction): the pairs of a moving user or positive item in full,
        # the others on the moving items' columns alone; None where that is
        # not cheaper by half.
        nu, num_items = self.num_users, self.num_items
        moving = change.ne(0).any(1)
        moving[rows] = True
        moving = moving.to(self.pairs.device)
        whole = moving[self.pairs[0]] | moving[self.pairs[1] + nu]
        columns = moving[nu:].nonzero().view(-1)
        pairs = self.pairs.size(1)
        if int(whole.sum()) * num_items + pairs * columns.numel() > \
                pairs * num_items / 2:
            return None
        grad, out = torch.zeros_like(final), torch.zeros_like(final)
        if bool(whole.any()):
            part = ExpectedBPR(self.pairs[:, whole], nu, num_items,
                               self.known, None if self.weight is None else
                               self.weight[whole], self.chunk)
            grad, out = part._full_change(final, change)
        rest = (~whole).nonzero().view(-1)
        if columns.numel() and rest.numel():
            self._column_change(final, change, rest, columns, grad, out)
        return grad, out

    def _column_change(self, final: Tensor, change: Tensor, rest: Tensor,
                       columns: Tensor, grad: Tensor, out: Tensor):
        # The pairs 'rest' (user and positive item unmoved) on the moving
        # items 'columns' alone: the gradient at F on those items, and the
        # change G(shift, F - dF) + G(prob, dF) with G bilinear, as in the
        # full pass, where dF is zero on the pair's user and item.
        nu = self.num_users
        scale = 1 / self.candidates[self.slot[rest]].to(final.dtype)
        if self.weight is not None:
            scale = scale * self.weight[rest].to(final.dtype)
        table, moved = final[nu + columns], change[nu + columns]
        before = table - moved
        budget = max(1, self.chunk // columns.numel())
        for block in torch.arange(rest.numel(),
                                  device=rest.device).split(budget):
            user, item = self.pairs[:, rest[block]]
            fu, fi = final[user], final[nu + item]
            margin = (fu @ table.t()).sub_((fu * fi).sum(1, keepdim=True))
            step = fu @ moved.t()
            if self.known is not None:
                keys = user.view(-1, 1) * self.num_items + columns
                at = torch.searchsorted(self.known, keys).clamp_(
                    max=self.known.numel() - 1)
                never = self.known[at] == keys
                margin.masked_fill_(never, -float('inf'))
                step.masked_fill_(never, 0.0)
            prob = torch.sigmoid(margin)
            shift = torch.sub(step, margin).sigmoid_().mul_(prob)
            shift.mul_(step.neg().expm1_()).neg_()
            prob.mul_(scale[block].view(-1, 1))
            shift.mul_(scale[block].view(-1, 1))
            grad.index_add_(0, nu + columns, prob.t() @ fu)
            out.index_add_(0, user, shift @ before - shift.sum(
                1, keepdim=True) * fi + prob @ moved)
            out.index_add_(0, nu + columns, shift.t() @ fu)
            out.index_add_(0, nu + item, -shift.sum(1, keepdim=True) * fu)

    def _full_change(self, final: Tensor,
                     change: Tensor) -> Tuple[Tensor, Tensor]:
        # gradient_change over every pair and item (before the reduction).
        grad, out = torch.zeros_like(final), torch.zeros_like(final)
        before = final - change
        both = torch.cat([final, change], 1)
        d = final.size(1)
        for first, last in self.blocks:
            users, slot, items, scale = self._block(first, last)
            part = torch.zeros_like(both)
            self._change_block(final, change, before, users, slot, items,
                               scale, self._mask(users), None, part, both)
            grad += part[:, :d]
            out += part[:, d:]
        return grad, out

    def _sampled_change(self, final: Tensor,
                        change: Tensor) -> List[Tensor]:
        # The change as two estimates (before the reduction), each exact
        # on the items whose rows carry most of the change and averaged
        # over its own half of the others.  The others are drawn for every
        # DRAW_USERS consecutive user ids from (seed, their group) alone,
        # so that the estimate does not depend on how the pairs are split
        # into blocks ('chunk') or dealt to ranks ('reduce').
        halves = [torch.zeros_like(final), torch.zeros_like(final)]
        exact = torch.zeros_like(final)
        before = final - change
        heavy = self._heavy_items(change)
        rest = torch.ones(self.num_items, dtype=torch.bool)
        rest[heavy.cpu()] = False
        rest = rest.nonzero().view(-1)
        draw = min(self.samples - heavy.numel(), rest.numel())
        for first, last, group in self._groups():
            generator = torch.Generator().manual_seed(
                self.seed * 1_000_003 + group)
            drawn = rest[torch.randperm(rest.numel(), generator=generator)[
                :draw]].to(final.device)
            self._sampled_block(final, change, before, first, last, heavy,
                                drawn, halves, exact)
        for out in halves:
            out += exact
        return halves

    def _groups(self):
        # The blocks split where the users' group of DRAW_USERS ids
        # changes: (first, last, group), users first:last.
        group = torch.div(self.users, DRAW_USERS,
                          rounding_mode='floor').tolist()
        for first, last in self.blocks:
            start = first
            for k in range(first + 1, last + 1):
                if k == last or group[k] != group[start]:
                    yield start, k, group[start]
                    start = k

    def _sampled_block(self, final: Tensor, change: Tensor, before: Tensor,
                       first: int, last: int, heavy: Tensor, drawn: Tensor,
                       halves: List[Tensor], exact: Tensor):
        # The users first:last's change over the items 'heavy' into
        # 'exact' and over the items 'drawn', one half of them into each
        # of 'halves'.
        users, slot, items, scale = self._block(first, last)
        mask = self._mask(users)
        if heavy.numel():
            self._change_block(final, change, before, users, slot, items,
                               scale, None if mask is None else
                               mask[:, heavy], heavy, exact)
        # The drawable items outside 'heavy', per user.
        outside = self.candidates[first:last] - (
            heavy.numel() if mask is None else
            (~mask[:, heavy]).sum(1).to(self.candidates))
        for out, columns in zip(halves, drawn.chunk(2)):
            sub = None if mask is None else mask[:, columns]
            # Each half averages over its own drawable items (a user with
            # none there: weight 0).
            count = (torch.full((users.numel(), ), columns.numel(),
                                device=users.device) if sub is None
                     else (~sub).sum(1)).clamp(min=1)
            rescale = scale * (outside / count).to(scale)[slot]
            self._change_block(final, change, before, users, slot, items,
                               rescale, sub, columns, out)

    def _heavy_items(self, change: Tensor) -> Tensor:
        # The fewest items whose rows of 'change' hold all but HEAVY_TAIL of
        # the items' squared change, at most half the sample: a change
        # concentrated on a few items (a popular item's request) is then
        # exact where a sample would hit or miss it.
        mass = change[self.num_users:].pow(2).sum(1)
        total = float(mass.sum())
        if total == 0:
            return mass.new_zeros(0, dtype=torch.long)
        order = torch.argsort(mass, descending=True)
        held = torch.cumsum(mass[order], 0)
        count = int((held < (1 - HEAVY_TAIL) * total).sum()) + 1
        return order[:min(count, self.samples // 2)].sort()[0]

    def _change_block(self, final: Tensor, change: Tensor, before: Tensor,
                      users: Tensor, slot: Tensor, items: Tensor,
                      scale: Tensor, mask: Optional[Tensor],
                      columns: Optional[Tensor], out: Tensor,
                      both: Optional[Tensor] = None):
        # One block's gradient change on the items 'columns' (all by
        # default) into 'out'; with 'both' (F and dF side by side), the
        # gradient at F into out[:, :d] and the change into out[:, d:].
        nu = self.num_users
        table = final[nu:] if columns is None else final[nu + columns]
        moved = change[nu:] if columns is None else change[nu + columns]
        fu, cu, bu = final[users], change[users], before[users]
        fi, ci = final[nu + items], change[nu + items]
        scores = fu @ table.t()
        # dm = m(F) - m(F - dF), bilinear in the two tables.
        steps = cu @ table.t()
        steps.addmm_(bu, moved.t())
        # Known items never drawn: margin -inf, so that the weight and
        # its shift are 0 (their score change 0 keeps expm1 finite).
        margin = self._margins(scores, slot, (fu[slot] * fi).sum(1), mask,
                               -float('inf'))
        step = self._margins(steps, slot, (cu[slot] * fi).sum(1) +
                             (bu[slot] * ci).sum(1), mask, 0.0)
        prob = torch.sigmoid(margin)
        # -shift = sigma(m) sigma(dm - m) expm1(-dm), in place.
        shift = torch.sub(step, margin, out=margin).sigmoid_().mul_(prob)
        shift.mul_(step.neg_().expm1_())
        # grad(F) - grad(F - dF) = G(shift, F - dF) + G(prob, dF), with G
        # bilinear in the weights and the embeddings.
        if both is None:
            self._scatter(prob, change, users, slot, items, scale, out,
                          columns=columns)
        else:
            self._scatter(prob, both, users, slot, items, scale, out,
                          columns=columns)
            out = out[:, final.size(1):]
        self._scatter(shift, before, users, slot, items, scale, out,
                      alpha=-1.0, columns=columns)


def expected_negative_grad(final: Tensor, pairs: Tensor, num_users: int,
                           known: Optional[Tensor],
                           weight: Optional[Tensor] = None,
                           chunk: int = 1 << 22) -> Tensor:
    r"""The gradient with respect to the final embeddings :math:`F`
    :obj:`[N, d]` (items offset by :obj:`num_users`) of the BPR loss of the
    positive pairs :obj:`[2, k]` averaged over the negative sampler (see
    :class:`ExpectedBPR`, whose arguments these are)."""
    return ExpectedBPR(pairs, num_users, final.size(0) - num_users, known,
                       weight, chunk).grad(final)


def sampler_shift(final: Tensor, pairs: Tensor, removed: Tensor,
                  num_users: int, known: Tensor,
                  chunk: int = 1 << 22) -> Tensor:
    r"""How much the averaged BPR gradient of the positive pairs
    :obj:`pairs` at :math:`F` exceeds its value once the pairs
    :obj:`removed` are no longer known to the sampler of unseen items:
    their items become negatives that their users can draw.

    For a user :math:`u` with :math:`D_u` removed pairs, items
    :math:`\mathcal{D}_u`, and :math:`C_u` candidate negatives before,

    .. math::
        \sum_{p \ni u} \Big[\frac{D_u}{C_u + D_u} \frac{1}{C_u}
        \sum_{j \notin K_u} \sigma(m_{pj}) \nabla m_{pj}
        - \frac{1}{C_u + D_u} \sum_{j \in \mathcal{D}_u}
        \sigma(m_{pj}) \nabla m_{pj}\Big],
        \qquad m_{pj} = F_u \cdot F_j - F_u \cdot F_{i_p},

    the first term the old candidates' weight falling from :math:`1/C_u`
    to :math:`1/(C_u + D_u)`, the second the freed items' weight rising
    from 0; no two nearly equal gradients are subtracted.  Only the pairs
    of users with removed pairs contribute.

    Args:
        final (torch.Tensor): :math:`F`, :obj:`[N, d]`, users first.
        pairs (torch.Tensor): The kept positive pairs :obj:`[2, P]`, item
            ids from 0.
        removed (torch.Tensor): The removed pairs :obj:`[2, R]`, item ids
            from 0, each a known pair.
        num_users (int): Number of users.
        known (torch.Tensor): Sorted keys of the known pairs before the
            removal (see :class:`ExpectedBPR`).
        chunk (int): As in :class:`ExpectedBPR`.

    Returns:
        torch.Tensor: The gradient's excess, :obj:`[N, d]`.
    """
    num_items = final.size(0) - num_users
    out = torch.zeros_like(final)
    lost = torch.bincount(removed[0].to(final.device), minlength=num_users)
    pairs = pairs[:, lost[pairs[0]] > 0].to(final.device)
    if pairs.size(1) == 0:
        return out
    users = pairs[0]
    grown = _grown(lost, num_items, known)
    out += ExpectedBPR(pairs, num_users, num_items, known,
                       weight=(lost[users] / grown[users]).to(final.dtype),
                       chunk=chunk).grad(final)
    triples, weight, _ = freed_triples(pairs, removed, num_users,
                                       num_items, known)
    user, item = triples[0], triples[1] + num_users
    negative = triples[2] + num_users
    fu, gap = final[user], final[negative] - final[item]
    w = (torch.sigmoid((fu * gap).sum(1)) * weight.to(final.dtype)).view(
        -1, 1)
    out.index_add_(0, user, -w * gap)
    out.index_add_(0, negative, -w * fu)
    out.index_add_(0, item, w * fu)
    return out


def _grown(lost: Tensor, num_items: int, known: Tensor) -> Tensor:
    # Each user's candidate negatives once its removed pairs are freed,
    # C_u + D_u, [U].
    num_users = lost.numel()
    start = torch.searchsorted(known, torch.arange(
        num_users + 1, device=known.device) * num_items).to(lost.device)
    return num_items - (start[1:] - start[:-1]) + lost


def freed_triples(pairs: Tensor, removed: Tensor, num_users: int,
                  num_items: int, known: Tensor
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The BPR triples that a sampler of unseen items can draw once the
    pairs :obj:`removed` are freed and the original one could not: each
    positive pair of :obj:`pairs` with each removed item of its user, and
    their weight :math:`1 / (C_u + D_u)` in the sampler's average (see
    :func:`sampler_shift`).

    Args:
        pairs (torch.Tensor): Positive pairs :obj:`[2, P]`, item ids from 0.
        removed (torch.Tensor): Removed pairs :obj:`[2, R]`, item ids from
            0, each a known pair.
        num_users (int): Number of users.
        num_items (int): Number of items.
        known (torch.Tensor): Sorted keys of the known pairs before the
            removal.

    Returns:
        (torch.Tensor, torch.Tensor, torch.Tensor): The triples
        :obj:`[3, T]` (user, positive item, freed item; item ids from 0),
        their weights :obj:`[T]` (float64) and the column of :obj:`pairs`
        each comes from, :obj:`[T]`.
    """
    device = pairs.device
    removed = removed.to(device)
    lost = torch.bincount(removed[0], minlength=num_users)
    grown = _grown(lost, num_items, known.to(device))
    order = torch.argsort(removed[0], stable=True)
    freed = removed[:, order]
    users = pairs[0]
    first = torch.searchsorted(freed[0], users)
    count = lost[users]
    which = torch.repeat_interleave(torch.arange(users.numel(),
                                                 device=device), count)
    offset = torch.arange(which.numel(), device=device) - \
        torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    triples = torch.stack([users[which], pairs[1, which],
                           freed[1, first[which] + offset]])
    return triples, 1 / grown[triples[0]].to(torch.float64), which
