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
  update.

The set-up is ``request_cost.py``'s synthetic one (LightGCN-2, d = 64, 30
full-batch Adam steps on BPR with frozen negatives, 100 random
interactions), for IFRU's default rows and the request-local ones, with
``check_draws=False`` (the draw check's twin would be truncated alike).
Times are not reported: the truncated run still does the dense work.

Example::

    python benchmarks/request_mass.py --sizes 1e5 3e5 1e6 \
        --out benchmarks/results/request_mass.json
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from request_cost import LOCAL, synthetic_model  # noqa: E402

from torch_geometric_unlearn import IFRUConfig, IFRUnlearner  # noqa: E402
from torch_geometric_unlearn.evaluation.fidelity import (  # noqa: E402
    change_closure, probe_pairs, score_change)
from torch_geometric_unlearn.unlearn.base import UnlearnResult  # noqa: E402
from torch_geometric_unlearn.unlearn.ifru_update import \
    IFRUpdate  # noqa: E402


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
        norms = delta.norm(dim=1)
        keep = (norms > 0) & (norms >= self.tol * norms.max())
        self.log.append((keep, float(norms[keep].pow(2).sum() /
                                     norms.pow(2).sum())))
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


def size_row(n: int, tolerances, seed: int) -> dict:
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
    for name, local in (('default', {}), ('local', LOCAL)):
        exact, exact_influence, exact_change = None, None, None
        entries = []
        for tol in tolerances:
            unlearner = IFRUnlearner(model, data, examples, None, l2,
                                     config=IFRUConfig(check_draws=False,
                                                       **local))
            result, influence, (keep, mass) = truncated_update(
                unlearner, pairs, tol)
            moved = change(result)
            if exact is None:  # tolerances[0] is 0: the exact update
                exact, exact_influence, exact_change = (result, influence,
                                                        moved)
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
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tolerances = [0.0] + sorted(t for t in args.tolerances if t > 0)
    rows = [size_row(int(n), tolerances, args.seed) for n in args.sizes]
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
