r"""Cost of the influence engine on Gowalla with PyG's LightGCN.

Setup: LightGCN (3 layers, d=64, float32, PyG's random initialisation),
BPR with one frozen random negative per training positive, L2 weight 1.0 on
the summed loss, computed on *all* training examples over the *whole*
graph (on Gowalla the 3-hop receptive field of even a few rows covers
nearly every node, so a "subgraph" would be the whole graph anyway).

Free rows: the endpoints of random training interactions (one tenth of the
budget) plus their graph neighbours, in random order, up to the budget.  The
right-hand side :math:`g` is the gradient of those seed interactions' BPR
terms (the direct influence of deleting them), restricted to the free rows.

Stages:

1. HVP methods compared on a small LightGCN (the first :obj:`--small-users`
   Gowalla users and their items): median time per product against a
   forward+backward pass, and agreement between the methods.
2. Whole Gowalla: median forward+backward time of the training loss.
3. For each row budget: a short undamped CG probe, which at PyG's random
   initialisation meets negative curvature (the BPR + L2 objective sits
   near its saddle at E = 0), then CG to a relative residual of 1e-4 with
   damping :obj:`--damping` (default 5.0), doubled whenever CG meets
   negative curvature, each solve capped at :obj:`--max-iter` iterations
   and all together at about :obj:`--cg-budget` seconds (reported when the
   cap binds).  The median time per HVP comes from the CG iterations
   themselves.

Example (from the repository root, with the package installed or on
:obj:`PYTHONPATH`)::

    PYTHONPATH=. python benchmarks/influence_gowalla.py --data-dir /work/shared/data \
        --out benchmarks/results/influence_gowalla.json
"""
import argparse
import json
import os
import os.path as osp
import platform
import statistics
import time
import warnings

import torch
from torch import Tensor
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.influence import (HessianOperator, HVPMethod,
                                               LinearOperator,
                                               ParameterSelection,
                                               SolverConfig, SolverWarning,
                                               solve)
from torch_geometric_unlearn.influence.objectives import (bpr_scores_loss,
                                                          l2_penalty)

L2 = 1.0
DIM, LAYERS = 64, 3


def read_train(path: str) -> Tensor:
    r"""Reads a LightGCN-format :obj:`train.txt` (:obj:`user item item ...`
    per line) into user-item pairs of shape :obj:`[2, N]`."""
    users, items = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            user = int(parts[0])
            users.extend([user] * (len(parts) - 1))
            items.extend(int(p) for p in parts[1:])
    return torch.tensor([users, items])


class Problem:
    r"""A BPR recommendation problem on one user-item graph."""
    def __init__(self, pos: Tensor, seed: int):
        self.pos = pos
        self.num_users = int(pos[0].max()) + 1
        self.num_items = int(pos[1].max()) + 1
        self.num_nodes = self.num_users + self.num_items
        user, item = pos[0], pos[1] + self.num_users
        self.edge_index = torch.stack([torch.cat([user, item]),
                                       torch.cat([item, user])])
        gen = torch.Generator().manual_seed(seed)
        self.neg = torch.randint(0, self.num_items, (pos.size(1), ),
                                 generator=gen)
        torch.manual_seed(seed)
        self.model = LightGCN(self.num_nodes, DIM, LAYERS)

    def objective(self, f) -> Tensor:
        emb = f.call_method('get_embedding', self.edge_index)
        return (bpr_scores_loss(emb, self.pos, self.neg, self.num_users) +
                l2_penalty(f.params['embedding.weight'], L2))

    def seed_objective(self, index: Tensor):
        def objective(f):
            emb = f.call_method('get_embedding', self.edge_index)
            return bpr_scores_loss(emb, self.pos[:, index], self.neg[index],
                                   self.num_users)

        return objective

    def forward_backward(self):
        self.model.zero_grad()
        emb = self.model.get_embedding(self.edge_index)
        loss = (bpr_scores_loss(emb, self.pos, self.neg, self.num_users) +
                l2_penalty(self.model.embedding.weight, L2))
        loss.backward()

    def pick_rows(self, budget: int, seed: int):
        r"""Endpoints of random interactions plus their neighbours; returns
        the rows and the seed interactions' column indices."""
        gen = torch.Generator().manual_seed(seed)
        perm = torch.randperm(self.pos.size(1), generator=gen)
        seeds, picked = [], set()
        for col in perm.tolist():
            if len(picked) >= max(budget // 10, 2):
                break
            seeds.append(col)
            picked.update((int(self.pos[0, col]),
                           int(self.pos[1, col]) + self.num_users))
        seed_nodes = torch.tensor(sorted(picked))
        mask = torch.isin(self.edge_index[0], seed_nodes)
        nbrs = self.edge_index[1, mask].unique()
        nbrs = nbrs[~torch.isin(nbrs, seed_nodes)]
        nbrs = nbrs[torch.randperm(nbrs.numel(), generator=gen)]
        rows = torch.cat([seed_nodes, nbrs])[:budget]
        if rows.numel() < budget:  # a sparse neighbourhood: pad at random
            rest = torch.randperm(self.num_nodes, generator=gen)
            rest = rest[~torch.isin(rest, rows)][:budget - rows.numel()]
            rows = torch.cat([rows, rest])
        return rows, torch.tensor(seeds)


class TimedOperator(LinearOperator):
    r"""Records the wall time of every product of another operator."""
    def __init__(self, base: LinearOperator):
        super().__init__(base.dim, base.dtype, base.device, base.damping)
        self.base = base
        self.times = []

    def _apply(self, vec: Tensor) -> Tensor:
        start = time.perf_counter()
        out = self.base.hvp(vec)
        self.times.append(time.perf_counter() - start)
        return out


def timed(fn, repeats: int):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def compare_methods(pos: Tensor, small_users: int, repeats: int, seed: int):
    small = pos[:, pos[0] < small_users]
    # Re-index the items these users touch, so the graph has no isolated
    # item nodes.
    _, small_items = small[1].unique(return_inverse=True)
    problem = Problem(torch.stack([small[0], small_items]), seed)
    rows, _ = problem.pick_rows(min(500, problem.num_nodes // 4), seed)
    selection = ParameterSelection(problem.model,
                                   {'embedding.weight': rows})
    problem.forward_backward()  # warm-up
    fb = statistics.median(timed(problem.forward_backward, repeats))
    vec = torch.randn(selection.dim,
                      generator=torch.Generator().manual_seed(seed))
    result = {
        'num_users': problem.num_users,
        'num_items': problem.num_items,
        'num_interactions': problem.pos.size(1),
        'free_rows': rows.numel(),
        'forward_backward_s': fb,
        'methods': {},
    }
    reference = None
    for method in HVPMethod:
        op = HessianOperator.from_model(selection, problem.objective,
                                        method=method)
        start = time.perf_counter()
        out = op.matvec(vec)  # warm-up; builds the graph for 'cached'
        first = time.perf_counter() - start
        median = statistics.median(timed(lambda: op.matvec(vec), repeats))
        reference = out if reference is None else reference
        result['methods'][method.value] = {
            'first_s': first,
            'hvp_s': median,
            'hvp_over_fb': median / fb,
            'rel_diff_to_cached': float((out - reference).norm() /
                                        reference.norm()),
        }
        op.release()
    return result


def cg_record(op: LinearOperator, g: Tensor, config: SolverConfig):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', SolverWarning)  # recorded instead
        x, diag = solve(op, g, config)
    return {
        'damping': diag.damping,
        'max_iter': config.max_iter,
        'iterations': diag.iterations,
        'hvps': diag.num_hvps,
        'time_s': diag.time,
        'residual': diag.residual,
        'converged': diag.converged,
        'message': diag.message,
        'negative_curvature': diag.negative_curvature,
        'min_curvature': diag.min_curvature,
        'residual_history': diag.residual_history,
        'solution_norm': float(x.norm()),
    }


def run_rows(problem: Problem, budget: int, args, fb: float):
    rows, seeds = problem.pick_rows(budget, args.seed)
    selection = ParameterSelection(problem.model, {'embedding.weight': rows})
    start = time.perf_counter()
    g = selection.gradient(problem.seed_objective(seeds))
    grad_s = time.perf_counter() - start
    base = HessianOperator.from_model(selection, problem.objective,
                                      method=args.method)
    op = TimedOperator(base)
    result = {
        'free_rows': rows.numel(),
        'seed_interactions': seeds.numel(),
        'dim': selection.dim,
        'gradient_s': grad_s,
        'rhs_norm': float(g.norm()),
    }
    # First undamped, to show where the point stands: at PyG's random
    # initialisation the objective sits near its saddle at E = 0.  Then
    # damped, doubling the damping whenever CG meets negative curvature,
    # until the time budget is spent.  All solves reuse the cached graph.
    config = SolverConfig(method='cg', tol=args.tol,
                          max_iter=args.probe_iter, damping=0.0,
                          on_failure='warn')
    attempts = [cg_record(op, g, config)]
    damping, deadline = args.damping, time.perf_counter() + args.cg_budget
    while True:
        max_iter = int((deadline - time.perf_counter()) / fb)
        if max_iter < 1:
            break
        config = SolverConfig(method='cg', tol=args.tol,
                              max_iter=min(args.max_iter, max_iter),
                              damping=damping, on_failure='warn')
        attempts.append(cg_record(op, g, config))
        if not attempts[-1]['negative_curvature']:
            break
        damping *= 2
    result['attempts'] = attempts
    base.release()
    # The first product also built the cached gradient graph.
    hvp_s = statistics.median(op.times[1:])
    result.update(graph_setup_s=op.times[0] - hvp_s, hvp_s=hvp_s,
                  hvp_over_fb=hvp_s / fb, num_hvps=len(op.times))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-dir', default=os.environ.get('TGU_DATA_DIR'),
                        help="folder holding 'gowalla/train.txt'")
    parser.add_argument('--out',
                        default='benchmarks/results/influence_gowalla.json')
    parser.add_argument('--rows', type=int, nargs='+', default=[1000, 20000])
    parser.add_argument('--method', default='cached',
                        choices=[m.value for m in HVPMethod])
    parser.add_argument('--tol', type=float, default=1e-4)
    parser.add_argument('--damping', type=float, default=5.0,
                        help='added to H, which already holds the L2 weight')
    parser.add_argument('--probe-iter', type=int, default=10,
                        help='most iterations of the undamped CG probe')
    parser.add_argument('--max-iter', type=int, default=200)
    parser.add_argument('--cg-budget', type=float, default=200.0,
                        help='caps the damped CG solves at about this many '
                        'seconds per row budget')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--small-users', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error('pass --data-dir or set $TGU_DATA_DIR')
    path = osp.join(args.data_dir, 'gowalla', 'train.txt')
    if not osp.isfile(path):
        parser.error(f"'{path}' does not exist")

    total = time.perf_counter()
    pos = read_train(path)
    small = compare_methods(pos, args.small_users, 5, args.seed)
    print(f"Small LightGCN ({small['num_users']} users, "
          f"{small['num_items']} items, {small['num_interactions']} "
          f"interactions, {small['free_rows']} free rows): forward+backward "
          f"{1e3 * small['forward_backward_s']:.1f} ms")
    print(f"{'method':<16}{'HVP ms':>10}{'HVP/fb':>9}{'first ms':>10}"
          f"{'rel diff':>10}")
    for name, rec in small['methods'].items():
        print(f"{name:<16}{1e3 * rec['hvp_s']:>10.1f}"
              f"{rec['hvp_over_fb']:>9.2f}{1e3 * rec['first_s']:>10.1f}"
              f"{rec['rel_diff_to_cached']:>10.1e}")

    problem = Problem(pos, args.seed)
    fb = statistics.median(timed(problem.forward_backward, args.repeats))
    print(f"\nGowalla: {problem.num_users} users, {problem.num_items} "
          f"items, {problem.pos.size(1)} interactions; forward+backward "
          f"(all BPR terms) {fb:.2f} s (median of {args.repeats})")
    runs = [run_rows(problem, budget, args, fb) for budget in args.rows]
    print(f"{'rows':>7}{'dim':>9}{'HVP s':>8}{'HVP/fb':>8}{'setup s':>9}"
          f"{'damping':>9}{'CG it':>7}{'CG s':>8}{'residual':>10}"
          f"{'min curv':>10}  status")
    for run in runs:
        for cg in run['attempts']:
            print(f"{run['free_rows']:>7}{run['dim']:>9}{run['hvp_s']:>8.2f}"
                  f"{run['hvp_over_fb']:>8.2f}{run['graph_setup_s']:>9.2f}"
                  f"{cg['damping']:>9g}{cg['iterations']:>7}"
                  f"{cg['time_s']:>8.1f}{cg['residual']:>10.2e}"
                  f"{cg['min_curvature']:>10.3g}  {cg['message']} "
                  f"(cap {cg['max_iter']})")

    result = {
        'setup': {
            'model': f'LightGCN(layers={LAYERS}, dim={DIM}), float32, PyG '
            f'random init',
            'loss': 'BPR, one frozen random negative per positive, all '
            'training examples, whole graph; L2 1.0 on the summed loss',
            'rows': 'endpoints of random interactions plus neighbours',
            'rhs': "gradient of the seed interactions' BPR terms",
            'hvp_method': args.method,
            'tol': args.tol,
            'initial_damping': args.damping,
            'torch': torch.__version__,
            'threads': torch.get_num_threads(),
            'machine': platform.processor() or platform.machine(),
            'command': 'PYTHONPATH=. python benchmarks/influence_gowalla.py '
            '--data-dir <data>',
        },
        'small_method_comparison': small,
        'gowalla': {
            'num_users': problem.num_users,
            'num_items': problem.num_items,
            'num_interactions': problem.pos.size(1),
            'forward_backward_s': fb,
            'runs': runs,
        },
        'total_s': time.perf_counter() - total,
    }
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(result, f, indent=2)
    print(f"\nTotal {result['total_s']:.0f} s; wrote {args.out}")


if __name__ == '__main__':
    main()
