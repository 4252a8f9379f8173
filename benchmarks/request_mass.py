r"""Where a request's change lives, and what a truncated gradient would
cost the update: issue 30's "gradients that touch only what moved",
measured before it is built.

A request's influence is :math:`(P - P')c + P'(\Delta g + g_R)`, where
:math:`\Delta g` is the kept examples' gradient change caused by
:math:`\Delta F = (P - P')E`, the change of the final embeddings.
:math:`\Delta F` is non-zero on the 2-hop ball of the removed edges' ends,
which on these graphs holds nearly every node (``request_reach.py``), so
the exact :math:`\Delta g` is a pass over every example.  A push-style
gradient would keep only the rows of :math:`\Delta F` above a tolerance
and score only the examples touching them.  This script runs IFRU's own
update with :math:`\Delta F`'s rows below ``tol`` times its largest row
norm set to zero (everything else exact) and reports, per tolerance:

* ``nodes``: the rows of :math:`\Delta F` kept, and ``mass``: the share of
  its squared norm they hold;
* ``examples``: the share of the examples that touch a kept row (the work
  of :math:`\Delta g`), and ``push_edges``: the kept rows' degrees summed
  (the work of one more propagation step from them);
* ``influence_error``: :math:`\lVert b_\epsilon - b \rVert / \lVert b
  \rVert` of the influence on the solved rows;
* ``closure_vs_exact``: the closure of the update's score change against
  the exact update's, on the forgotten pairs and on probe pairs (1 = the
  same update), beside dropping the edges' closure against the exact
  update; and ``local_closure_vs_default``, the local rows' exact update
  against the default rows'.

The set-up is ``request_cost.py``'s synthetic one (LightGCN-2, d = 64, 30
full-batch Adam steps on BPR with frozen negatives, 100 random
interactions), for IFRU's default rows and the request-local ones, with
``check_draws=False`` (the draw check's twin would be truncated alike).
Times are not reported there: the truncated run still does the dense
work.

With ``--push``, each size also gets what a push would cost, timed in one
process (medians of ``--repeats``) against the dense passes it replaces:
:math:`\Delta F` formed by frontier (:func:`pushed_change`: the changed
normalisation's entries, then one more layer pushed from the rows of the
first layer's change above ``tol`` times its largest, on the CSR rows of
those nodes; the first layer :math:`\hat{A}E` is taken as kept with the
model's state) against the dense pass that forms :math:`PE` and
:math:`(P - P')E`, its relative error, and the kept examples' gradient
change on the examples touching its rows above ``tol`` (their loss built
anew) against the whole pass that forms the gradient and its change,
with its relative error and the whole gradient's own time (what stays
whole-graph unless kept with the state).

Example::

    python benchmarks/request_mass.py --sizes 1e5 3e5 1e6 \
        --out benchmarks/results/request_mass.json
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Tuple

import torch
from torch import Tensor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from request_cost import LOCAL, synthetic_model  # noqa: E402

from torch_geometric_unlearn import IFRUConfig, IFRUnlearner  # noqa: E402
from torch_geometric_unlearn.data.interactions import (  # noqa: E402
    pair_keys, remaining_data)
from torch_geometric_unlearn.evaluation.fidelity import (  # noqa: E402
    change_closure, probe_pairs, score_change)
from torch_geometric_unlearn.graph.propagation import (  # noqa: E402
    LinearPropagation, PropagationChange)
from torch_geometric_unlearn.influence.bilinear import \
    BilinearLoss  # noqa: E402
from torch_geometric_unlearn.unlearn.base import UnlearnResult  # noqa: E402
from torch_geometric_unlearn.unlearn.ifru_update import \
    IFRUpdate  # noqa: E402


def above(x: Tensor, tol: float) -> Tensor:
    r"""The non-zero rows of :obj:`x` :obj:`[N, d]` whose norm is at least
    :obj:`tol` times the largest, as a mask :obj:`[N]`."""
    norms = x.norm(dim=1)
    return (norms > 0) & (norms >= tol * norms.max())


class Truncated:
    r"""A :class:`PropagationChange` whose :math:`(P - P')x` keeps only the
    rows of norm at least :obj:`tol` times the largest; what it kept is
    appended to :obj:`log`."""
    def __init__(self, change, tol: float, log: list):
        self.change, self.tol, self.log = change, tol, log

    def __getattr__(self, name):
        return getattr(self.change, name)

    def __call__(self, x):
        full, delta = self.change(x)
        keep = above(delta, self.tol)
        squares = delta.pow(2).sum(1)
        self.log.append((keep, float(squares[keep].sum() / squares.sum())))
        return full, delta * keep.view(-1, 1).to(delta)


def truncated_update(unlearner, pairs, tol):
    r"""The unlearner's update of :obj:`pairs` with :math:`\Delta F`
    truncated at :obj:`tol`; the result, the last influence on the rows
    and the last truncation's (kept rows, kept mass)."""
    changes, influence = IFRUpdate._changes, IFRUpdate._influence
    log, seen = [], []

    def _changes(self, dtype):
        whole, region = changes(self, dtype)
        # A region that is the whole graph propagates the gradients with
        # the same object: those stay exact.
        return Truncated(whole, tol, log), region

    def _influence(self, dtype):
        out = influence(self, dtype)
        seen.append(out[1].detach().clone())
        return out

    IFRUpdate._changes, IFRUpdate._influence = _changes, _influence
    try:
        result = unlearner.unlearn(pairs)
    finally:
        IFRUpdate._changes, IFRUpdate._influence = changes, influence
    return result, seen[-1], log[-1]


def _entries(prop, rows: Tensor) -> Tuple[Tensor, Tensor]:
    # The CSR entries of the nodes 'rows': for each, its position among
    # 'rows' and its index in the CSR.
    start = prop.rowptr[rows]
    count = prop.rowptr[rows + 1] - start
    which = torch.repeat_interleave(torch.arange(rows.numel()), count)
    entry = torch.arange(which.numel()) - torch.repeat_interleave(
        torch.cumsum(count, 0) - count, count) + start[which]
    return which, entry


def push_mm(prop, rows: Tensor, x: Tensor) -> Tensor:
    r""":math:`\hat{A} x` :obj:`[N, d]` for :obj:`x` :obj:`[R, d]` held on
    the nodes :obj:`rows` alone, from those nodes' CSR rows (the matrix is
    symmetric): the work follows their degrees, not the graph."""
    which, entry = _entries(prop, rows)
    value = prop.adj.values()[entry].to(x.dtype).view(-1, 1)
    return x.new_zeros(prop.num_nodes, x.size(1)).index_add_(
        0, prop.col[entry], value * x[which])


def pushed_change(change: PropagationChange, emb: Tensor, layer: Tensor,
                  tol: float) -> Tensor:
    r""":math:`(P - P')E` :obj:`[N, d]` of a 2-layer propagation by
    frontier, given the first layer :math:`\hat{A}E` :obj:`layer` (kept
    with the model's state, as :math:`E` is): :math:`\delta_1 =
    \Delta\hat{A} E` and :math:`\delta_2 = \Delta\hat{A}\,\hat{A}E +
    \hat{A}'\delta_1`, the last product pushed from the rows of
    :math:`\delta_1` of norm at least :obj:`tol` times the largest only."""
    if len(change.alpha) != 3:
        raise ValueError('pushed_change takes a 2-layer propagation')
    first = change.delta @ emb
    rows = above(first, tol).nonzero().view(-1)
    second = change.delta @ layer + push_mm(change.new, rows, first[rows])
    return change.alpha[1] * first + change.alpha[2] * second


def median_time(call, repeats: int):
    r"""Median seconds of :obj:`call()` over :obj:`repeats`, and its last
    result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def push_costs(data, model, examples, pairs, tolerances,
               repeats: int) -> dict:
    r"""What forming :math:`\Delta F` and the kept examples' gradient
    change by frontier costs against the dense passes, and their errors
    (see the module docs)."""
    nu, num, items = data.num_users, data.num_nodes, data.num_items
    forgotten = pair_keys(pairs, items)
    kept_train = ~torch.isin(pair_keys(data.train_index, items), forgotten)
    old = LinearPropagation(data.edge_index, num, model.alpha, torch.float32)
    new = LinearPropagation(remaining_data(data, kept_train).edge_index, num,
                            model.alpha, torch.float32)
    change = PropagationChange.removing(
        old, new, torch.stack([pairs[0], pairs[1] + nu]))
    emb = model.embedding.weight.detach().float()
    kept = examples[:, ~torch.isin(pair_keys(examples[:2], items),
                                   forgotten)]
    nodes = torch.cat([kept[:1], kept[1:] + nu])
    loss = BilinearLoss(kept, None, nu, num, torch.float32)
    dense, (final, exact) = median_time(lambda: change(emb), repeats)
    layer = old.adj @ emb  # the model's state: not timed
    gradient, _ = median_time(lambda: loss.grad(final), repeats)
    both, (_, moved) = median_time(
        lambda: loss.gradient_change(final, exact), repeats)
    out = {'dense_propagation_seconds': dense,
           'dense_gradient_seconds': gradient,
           'dense_gradient_and_change_seconds': both, 'tolerances': []}
    for tol in tolerances:
        seconds, pushed = median_time(
            lambda: pushed_change(change, emb, layer, tol), repeats)
        rows = above(pushed, tol)
        pushed = pushed * rows.view(-1, 1)
        touched = rows[nodes].any(0)

        def part_change():
            part = BilinearLoss(kept[:, touched], None, nu, num,
                                torch.float32)
            return part.gradient_change(final, pushed)[1]
        part_seconds, part = median_time(part_change, repeats)
        entry = {
            'tol': tol,
            'push_seconds': seconds,
            'change_error': float((pushed - exact).norm() / exact.norm()),
            'rows': int(rows.sum()),
            'examples': int(touched.sum()),
            'touched_change_seconds': part_seconds,
            'gradient_change_error': float((part - moved).norm() /
                                           moved.norm()),
        }
        out['tolerances'].append(entry)
        print(data.num_nodes, 'push', json.dumps(entry), flush=True)
    return out


def size_row(n: int, tolerances, seed: int, push: bool = False,
             repeats: int = 3, updates: bool = True) -> dict:
    data, model, examples, l2, _, pairs = synthetic_model(n)
    nu = data.num_users
    nodes = torch.cat([examples[:1], examples[1:] + nu])
    degree = torch.bincount(data.edge_index[0], minlength=data.num_nodes)
    sets = {'forgotten': pairs, 'probe': probe_pairs(data, pairs, seed=seed)}

    def change(result):
        return {key: score_change(model, data.edge_index, result.model,
                                  result.edge_index, index, nu)
                for key, index in sets.items()}

    row = {'interactions': n, 'nodes': data.num_nodes,
           'examples': examples.size(1)}
    if push:
        row['push'] = push_costs(data, model, examples, pairs,
                                 [t for t in tolerances if t > 0], repeats)
    exacts = {}
    for name, local in (('default', {}), ('local', LOCAL)) if updates \
            else ():
        exact_influence, exact_change = None, None
        entries = []
        for tol in tolerances:
            unlearner = IFRUnlearner(model, data, examples, None, l2,
                                     config=IFRUConfig(check_draws=False,
                                                       **local))
            result, influence, (keep, mass) = truncated_update(
                unlearner, pairs, tol)
            moved = change(result)
            if exact_change is None:  # tolerances[0] is 0: the exact one
                exact_influence, exact_change = influence, moved
                drop = change(UnlearnResult(model, result.data, pairs,
                                            'drop'))
                entries_drop = {key: change_closure(drop[key],
                                                    exact_change[key])
                                for key in sets}
            touched = keep[nodes].any(0)
            entry = {
                'tol': tol,
                'nodes': int(keep.sum()),
                'node_share': float(keep.float().mean()),
                'mass': mass,
                'examples': float(touched.float().mean()),
                'push_edges': int(degree[keep].sum()),
                'influence_error': float(
                    (influence - exact_influence).norm() /
                    exact_influence.norm()),
                'closure_vs_exact': {key: change_closure(
                    moved[key], exact_change[key]) for key in sets},
                'solve_rows': result.diagnostics['solve_rows'],
                'products': result.certificate.products,
                'step': result.certificate.step,
            }
            entries.append(entry)
            print(n, name, json.dumps(entry), flush=True)
        row[name] = {'tolerances': entries,
                     'drop_edges_closure_vs_exact': entries_drop}
        exacts[name] = exact_change
    if updates:
        # How much of the default update's score change the local rows'
        # exact update makes.
        row['local_closure_vs_default'] = {key: change_closure(
            exacts['local'][key], exacts['default'][key]) for key in sets}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sizes', type=float, nargs='+',
                        default=[1e5, 3e5, 1e6])
    parser.add_argument('--tolerances', type=float, nargs='+',
                        default=[1e-4, 1e-3, 1e-2, 3e-2, 1e-1])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--seed', type=int, default=100,
                        help='seed of the probe pairs')
    parser.add_argument('--push', action='store_true',
                        help='also time the frontier push against the '
                        'dense passes')
    parser.add_argument('--repeats', type=int, default=3,
                        help='timed calls per push figure (median)')
    parser.add_argument('--updates', action=argparse.BooleanOptionalAction,
                        default=True, help='run the truncated updates')
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tolerances = [0.0] + sorted(t for t in args.tolerances if t > 0)
    rows = [size_row(int(n), tolerances, args.seed, args.push, args.repeats,
                     args.updates) for n in args.sizes]
    out = {'command': 'python benchmarks/request_mass.py ' +
           ' '.join(sys.argv[1:] if argv is None else argv),
           'machine': {'cpu': platform.machine(),
                       'cpu_count': os.cpu_count(),
                       'torch': torch.__version__},
           'date': time.strftime('%Y-%m-%d'),
           'seconds': time.perf_counter() - start,
           'settings': vars(args), 'rows': rows}
    if args.out:
        os.makedirs(os.path.dirname(args.out) or '.', exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(out, f, indent=2)


if __name__ == '__main__':
    main()
