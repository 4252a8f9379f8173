r"""What the trajectory step's Lanczos costs beyond its products: a fixed
number of iterations of :func:`trajectory_response` with a diagonal
operator (one cheap elementwise product) on vectors the size of a graph's
solve (region nodes x d), median over repeats, one thread.

Run it against another commit's package (e.g. a ``git worktree`` on
``PYTHONPATH``) to compare versions; it passes only arguments every
version takes.

Example::

    python benchmarks/lanczos_overhead.py --dim 5332608 --iterations 13
"""
import argparse
import json
import statistics
import time

import torch

from torch_geometric_unlearn.influence import (LinearOperator, SolverError,
                                               trajectory_response)


class Diagonal(LinearOperator):
    # A LinearOperator whose product is one elementwise multiplication.
    def __init__(self, diagonal):
        super().__init__(diagonal.numel(), diagonal.dtype, diagonal.device)
        self.diagonal = diagonal

    def _apply(self, vec):
        return self.diagonal * vec


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    # 83,322 region nodes x 64: the 10^6-interaction synthetic graph.
    parser.add_argument('--dim', type=int, default=83322 * 64)
    parser.add_argument('--iterations', type=int, default=13)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    diagonal = torch.rand(args.dim, generator=gen, dtype=torch.float64) * 10
    g = torch.randn(args.dim, generator=gen, dtype=torch.float64)
    horizon = torch.ones(args.dim, dtype=torch.float64)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        try:  # a tolerance it cannot meet: exactly --iterations iterations
            trajectory_response(Diagonal(diagonal + 0.1), g, horizon,
                                tol=1e-14, max_iter=args.iterations)
        except SolverError:
            pass
        times.append(time.perf_counter() - start)
    print(json.dumps({'dim': args.dim, 'iterations': args.iterations,
                      'seconds': statistics.median(times),
                      'all_seconds': times, 'torch': torch.__version__}))


if __name__ == '__main__':
    main()
