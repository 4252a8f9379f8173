r"""Would curvature kept across requests pay?  The trajectory step's
operator, its spectrum, and a deflated solve.

For each request, the trajectory step's operator
:math:`M = \tau^{1/2} A \tau^{1/2}` and right-hand side
:math:`b = \tau^{1/2} g` are captured as IFRU at its defaults builds them
(``trajectory_response`` patched to record its arguments; the draw check
off).  Then, per pair of requests (sketch from one, solve for the other):

* the top of :math:`M`'s spectrum (Ritz values of 60-120 Lanczos steps with
  full reorthogonalisation from a random start, the sketch a request would
  keep);
* how much of the other request's :math:`b` lies outside the top-:math:`k`
  Ritz vectors (the share a sketch cannot answer);
* the products a deflated solve needs: the sketch's part exactly (its
  :math:`k` products counted apart, as a kept sketch would not pay them
  again), the complement by Lanczos on the deflated operator at the
  package's tolerance, and the error of the sum against a tight solve;
* beside the package's own Lanczos solve: its products and error;
* and what the request costs at IFRU's defaults with and without the
  certificate's draw check (``check_draws``: a second solve with every
  frozen negative drawn anew), medians of three.

The sketch's vectors are mapped between requests by node id (rows one
request solves for and the other does not are zero).

Example::

    python benchmarks/curvature_sketch.py --dataset ml-100k \
        --data-dir ../shared/data \
        --out benchmarks/results/curvature_sketch/ml-100k.json
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from weight_path import write_report  # noqa: E402

import torch_geometric_unlearn.unlearn.ifru_update as ifru_update  # noqa
from torch_geometric_unlearn import (IFRUConfig, IFRUnlearner,  # noqa: E402
                                     TrainConfig, build_model, train)
from torch_geometric_unlearn.data.datasets import (load_dataset,  # noqa
                                                   synthetic)
from torch_geometric_unlearn.data.deletion import (  # noqa: E402
    random_interactions, random_users, user_interactions)
from torch_geometric_unlearn.data.interactions import (  # noqa: E402
    pair_keys, sample_negatives)
from torch_geometric_unlearn.influence.trajectory import (  # noqa: E402
    _phi, trajectory_response)
from torch_geometric_unlearn.training.trainer import adjacency  # noqa: E402


class Scaled:
    r""":math:`M = s A s` on flat vectors, deflated by the orthonormal
    columns :obj:`basis` if given (:math:`(I - QQ^T) M (I - QQ^T)`)."""
    def __init__(self, operator, scale, basis=None):
        self.operator, self.scale, self.basis = operator, scale, basis
        self.dim, self.dtype = operator.dim, operator.dtype
        self.damping, self.num_hvps = operator.damping, 0

    def _project(self, v):
        return v if self.basis is None else \
            v - self.basis @ (self.basis.t() @ v)

    def matvec(self, v):
        self.num_hvps += 1
        v = self._project(v)
        return self._project(
            self.operator.matvec(self.scale * v) * self.scale)


def ritz(operator, steps, seed=0):
    # Top Ritz pairs of 'operator' from 'steps' Lanczos steps with full
    # reorthogonalisation: values ascending, vectors as columns.
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(operator.dim, generator=gen, dtype=operator.dtype)
    basis, alphas, betas = [q / q.norm()], [], []
    for _ in range(steps):
        w = operator.matvec(basis[-1])
        alphas.append(float(basis[-1] @ w))
        stacked = torch.stack(basis)
        for _ in range(2):
            w = w - stacked.t() @ (stacked @ w)
        betas.append(float(w.norm()))
        basis.append(w / betas[-1])
    tri = (torch.diag(torch.tensor(alphas, dtype=torch.float64)) +
           torch.diag(torch.tensor(betas[:-1], dtype=torch.float64), 1) +
           torch.diag(torch.tensor(betas[:-1], dtype=torch.float64), -1))
    values, vectors = torch.linalg.eigh(tri)
    return values, (torch.stack(basis[:-1]).t().double() @ vectors).to(
        operator.dtype)


def moved(vectors, rows_from, rows_to):
    # Ritz vectors of one request's rows on another's, by node id.
    dim = vectors.size(0) // rows_from.numel()
    at = {int(v): k for k, v in enumerate(rows_from)}
    index = torch.tensor([at.get(int(v), -1) for v in rows_to])
    blocks = vectors.view(rows_from.numel(), dim, -1)
    out = blocks.new_zeros(rows_to.numel(), dim, blocks.size(-1))
    out[index >= 0] = blocks[index[index >= 0]]
    return out.reshape(-1, blocks.size(-1))


def capture(unlearner_of, pairs):
    seen = {}
    original = ifru_update.trajectory_response

    def record(operator, g, horizon, *args, **kwargs):
        seen['args'] = (operator, g, horizon)
        return original(operator, g, horizon, *args, **kwargs)

    ifru_update.trajectory_response = record
    try:
        result = unlearner_of().unlearn(pairs)
    finally:
        ifru_update.trajectory_response = original
    operator, g, horizon = seen['args']
    return operator, g, horizon, result.diagnostics['rows']


def timed(unlearner_of, pairs, check: bool, repeats: int = 3):
    # Median seconds and timings of the request at the defaults, with or
    # without the draw check.
    runs = []
    for _ in range(repeats):
        unlearner = unlearner_of(check)
        start = time.perf_counter()
        result = unlearner.unlearn(pairs)
        runs.append((time.perf_counter() - start, result.timings))
    runs.sort(key=lambda run: run[0])
    seconds, timings = runs[len(runs) // 2]
    return {'seconds': seconds, 'timings': timings}


def setup(args):
    if args.dataset.startswith('synthetic'):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from scaling import fit
        n = int(float(args.dataset.split('-')[1]))
        data = synthetic(num_users=max(n // 30, 10),
                         num_items=max(n // 20, 30), num_interactions=n,
                         seed=0)
        torch.manual_seed(0)
        model = build_model(data, 64, 2)
        gen = torch.Generator().manual_seed(0)
        pos = data.train_index
        neg = sample_negatives(pos, data.num_items, pair_keys(
            pos, data.num_items).sort()[0], gen)
        examples = torch.cat([pos, neg.view(1, -1)])
        l2 = TrainConfig().l2
        fit(model, adjacency(data.edge_index, data.num_nodes), examples,
            data.num_users, l2, 30, 0.05)
        requests = {f'random:100 seed {s}': random_interactions(
            data, count=100, seed=s) for s in (0, 1)}
        return lambda check=False: IFRUnlearner(
            model, data, examples, None, l2, copy_model=True,
            config=IFRUConfig(check_draws=check)), requests
    data = load_dataset(args.dataset, args.data_dir)
    torch.manual_seed(0)
    model = build_model(data, 64, 2)
    config = TrainConfig(seed=0, progress=False)
    record = train(model, data, config)
    requests = {f'random:0.01 seed {s}': random_interactions(
        data, fraction=0.01, seed=s) for s in (100, 101)}
    requests['users:5'] = user_interactions(data, random_users(data, 5,
                                                               seed=100))
    return lambda check=False: IFRUnlearner(
        model, data, record.examples, l2=config.l2, horizon=record.horizon,
        copy_model=True, config=IFRUConfig(check_draws=check)), requests


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='ml-100k',
                        help="a data set, or 'synthetic-1e5'")
    parser.add_argument('--data-dir', default='../shared/data')
    parser.add_argument('--ritz-steps', type=int, default=60)
    parser.add_argument('--ks', type=int, nargs='+', default=[10, 30])
    parser.add_argument('--tol', type=float, default=1e-2)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    unlearner_of, requests = setup(args)
    captured = {}
    report = {'command': 'python ' + ' '.join(sys.argv),
              'config': vars(args), 'requests': {}}
    for name, pairs in requests.items():
        operator, g, horizon, rows = capture(unlearner_of, pairs)
        scale = horizon.sqrt().to(g)
        exact, record = trajectory_response(operator, g, horizon, tol=1e-6,
                                            max_iter=300)
        default, own = trajectory_response(operator, g, horizon,
                                           tol=args.tol)
        values, vectors = ritz(Scaled(operator, scale), args.ritz_steps)
        captured[name] = dict(operator=operator, g=g, horizon=horizon,
                              scale=scale, rows=rows, exact=exact,
                              vectors=vectors)
        report['requests'][name] = {
            'dim': operator.dim, 'rows': rows.numel(),
            'top_ritz': values.flip(0)[:20].tolist(),
            'min_ritz': float(values[0]),
            'default_products': own.num_hvps,
            'default_error': float((default - exact).norm() /
                                   exact.norm()),
            'tight_products': record.num_hvps, 'sketch': {},
            'request': {'draw check': timed(unlearner_of, pairs, True),
                        'no draw check': timed(unlearner_of, pairs, False)}}
        print(name, report['requests'][name]['top_ritz'][:8],
              'min', float(values[0]), 'products', own.num_hvps, flush=True)
    for source, kept in captured.items():
        for target, data in captured.items():
            b = data['scale'] * data['g']
            vectors = moved(kept['vectors'], kept['rows'], data['rows'])
            for k in args.ks:
                basis, _ = torch.linalg.qr(vectors[:, -k:])
                plain = Scaled(data['operator'], data['scale'])
                top = torch.stack([plain.matvec(basis[:, i])
                                   for i in range(k)], 1)
                small = basis.t() @ top
                coupling = float((top - basis @ small).norm() / top.norm())
                lam, vec = torch.linalg.eigh(small)
                coords = basis.t() @ b
                inside = basis @ (vec @ (_phi(lam) * (vec.t() @ coords)))
                rest = b - basis @ coords
                deflated = Scaled(data['operator'], data['scale'], basis)
                x_rest, solve = trajectory_response(
                    deflated, rest, torch.ones_like(b), tol=args.tol)
                x = data['scale'] * (inside + x_rest)
                row = {'outside_share': float(rest.norm() / b.norm()),
                       'coupling': coupling,
                       'deflated_products': solve.num_hvps,
                       'error': float((x - data['exact']).norm() /
                                      data['exact'].norm())}
                report['requests'][target]['sketch'][
                    f'{source}, k={k}'] = row
                print(f'  sketch of {source} for {target}, k={k}:', {
                    key: round(v, 4) for key, v in row.items()}, flush=True)
    report['seconds'] = time.perf_counter() - start
    if args.out:
        write_report(args.out, report)


if __name__ == '__main__':
    main()
