r"""Time per request against the number of processes, with the training
examples sharded over a gloo process group (one thread per process).

The synthetic graph (LightGCN-2, d=64, fitted as ``benchmarks/scaling.py``
fits it) serves one 100-interaction request with ``IFRUnlearner(...,
shards=Shards())`` in 1, 2, ... processes.  Reported per run:

* the request's wall time on rank 0 (median over ``--repeats``, each on a
  fresh unlearner), and its update's largest difference from the one
  process run;
* what one Hessian-vector product sends: one all-reduce of the curvature
  region's final embeddings, ``region nodes x d`` in the products'
  precision (float32), and what a gradient sends (float64).

With ``--estimate``, an estimate of one request on a graph of
``--target`` interactions over ``--gpus`` GPUs, from measured costs (see
:func:`estimate`).

Example::

    python benchmarks/distributed.py --interactions 1000000 --procs 1 2 \
        --out benchmarks/results/distributed.json
"""
import argparse
import datetime
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from sparse_backends import median_time  # noqa: E402

from torch_geometric_unlearn import IFRUnlearner, TrainConfig  # noqa: E402
from torch_geometric_unlearn.data.interactions import pair_keys  # noqa: E402
from torch_geometric_unlearn.unlearn.distributed import Shards  # noqa: E402
from torch_geometric_unlearn.unlearn.distributed import pair_shards


def setup(n, folder):
    from scaling import fit

    from torch_geometric_unlearn import build_model
    from torch_geometric_unlearn.data.datasets import synthetic
    from torch_geometric_unlearn.data.deletion import random_interactions
    from torch_geometric_unlearn.data.interactions import sample_negatives
    from torch_geometric_unlearn.training.trainer import adjacency
    data = synthetic(num_users=max(n // 30, 10), num_items=max(n // 20, 30),
                     num_interactions=n, seed=0)
    torch.manual_seed(0)
    model = build_model(data, 64, 2)
    gen = torch.Generator().manual_seed(0)
    pos = data.train_index
    neg = sample_negatives(pos, data.num_items,
                           pair_keys(pos, data.num_items).sort()[0], gen)
    examples = torch.cat([pos, neg.view(1, -1)])
    l2 = TrainConfig().l2
    fit(model, adjacency(data.edge_index, data.num_nodes), examples,
        data.num_users, l2, 30, 0.05)
    pairs = random_interactions(data, count=100, seed=0)
    path = osp.join(folder, 'setup.pt')
    torch.save((data, model, examples, l2, pairs), path)
    return path


def worker(rank, world, folder, repeats):
    dist.init_process_group('gloo', init_method=f'file://{folder}/rdv{world}',
                            rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=30))
    torch.set_num_threads(1)
    data, model, examples, l2, pairs = torch.load(
        osp.join(folder, 'setup.pt'), weights_only=False)
    shard = examples[:, pair_shards(data, examples, world) == rank]
    shards = Shards()
    times, result = [], None
    for _ in range(repeats):
        unlearner = IFRUnlearner(model, data, shard, l2=l2, shards=shards)
        dist.barrier()
        start = time.perf_counter()
        result = unlearner.unlearn(pairs)
        times.append(time.perf_counter() - start)
    if rank == 0:
        d = result.diagnostics
        torch.save({'seconds': statistics.median(times), 'all': times,
                    'weight': result.model.embedding.weight.detach(),
                    'products': result.certificate.products,
                    'region_nodes': d['region_nodes'],
                    'curvature_examples': d['curvature_examples'],
                    'solve_rows': d['solve_rows'],
                    'timings': result.timings,
                    'examples_per_rank': shard.size(1)},
                   osp.join(folder, f'world{world}.pt'))
    dist.destroy_process_group()


def product_parts(folder):
    r"""One thread's time for the two parts of a Gauss-Newton product on
    the benchmark's graph: the propagation :math:`Pv` (replicated on every
    rank; a product applies it twice) and the examples' curvature (split
    over the ranks), float32 as the solver's products run."""
    from torch_geometric_unlearn.graph.propagation import LinearPropagation
    from torch_geometric_unlearn.influence.bilinear import BilinearLoss
    data, model, examples, _, _ = torch.load(
        osp.join(folder, 'setup.pt'), weights_only=False)
    prop = LinearPropagation.from_model(model, data.edge_index, torch.float32)
    with torch.no_grad():
        final = prop(model.embedding.weight.float())
        curvature = BilinearLoss(examples, None, data.num_users,
                                 data.num_nodes, torch.float32).curvature(
                                     final, gauss_newton=True)
        vec = torch.randn_like(final)
        return {'propagation': median_time(lambda: prop(vec), 5),
                'examples': median_time(lambda: curvature.matvec(vec), 5),
                'num_examples': examples.size(1),
                'num_edges': data.edge_index.size(1)}


def gowalla_propagation():
    r"""One thread's time for a LightGCN-3 propagation (d=64, float32) of
    Gowalla's 810,128 training interactions: the full forward the design
    notes timed at 5 ms on an H200."""
    from torch_geometric_unlearn.data.datasets import gowalla
    from torch_geometric_unlearn.graph.propagation import LinearPropagation
    data = gowalla(val_ratio=0.0)
    prop = LinearPropagation(data.edge_index, data.num_nodes,
                             torch.full((4, ), 0.25), torch.float32)
    vec = torch.randn(data.num_nodes, 64)
    with torch.no_grad():
        return {'seconds': median_time(lambda: prop(vec), 5),
                'interactions': data.train_index.size(1)}


# Stated, not measured here: the design notes' H200 time for that forward,
# and the all-reduce bus bandwidth NCCL reaches on one 8-GPU NVLink node
# (NVIDIA's nccl-tests report roughly 400 GB/s on H100/H200 SXM nodes).
H200_GOWALLA_FORWARD = 0.005
NVLINK_BUS_BYTES_PER_S = 400e9


def estimate(parts, gowalla, run, interactions, target, gpus):
    r"""One request on :obj:`target` interactions over :obj:`gpus` GPUs.

    The request is counted in product equivalents (its one-process wall
    time over one product's, both measured here).  Every part scales
    linearly with the graph (products, regions and examples all do on
    these small-world graphs); only the examples' part is divided by the
    GPUs.  CPU seconds become GPU seconds by the ratio of this box's
    Gowalla forward to the H200's.  Each product adds one ring all-reduce
    of the region's float32 final embeddings, the region grown with the
    graph.
    """
    product = 2 * parts['propagation'] + parts['examples']
    equivalents = run['seconds'] / product
    scale = target / interactions
    gpu_per_cpu = H200_GOWALLA_FORWARD / gowalla['seconds']
    replicated = 2 * parts['propagation'] * scale * gpu_per_cpu
    sharded = parts['examples'] * scale * gpu_per_cpu / gpus
    allreduce_bytes = run['bytes_per_product_allreduce'] * scale
    allreduce = (2 * (gpus - 1) / gpus * allreduce_bytes /
                 NVLINK_BUS_BYTES_PER_S)
    one_gpu = equivalents * (replicated + parts['examples'] * scale *
                             gpu_per_cpu)
    return {
        'target_interactions': target, 'gpus': gpus,
        'product_seconds_here': product,
        'examples_share_of_product': parts['examples'] / product,
        'request_in_products': equivalents,
        'products_in_request': run['products'],
        'gpu_over_cpu_time': gpu_per_cpu,
        'product_seconds_gpu': replicated + sharded + allreduce,
        'product_parts_gpu': {'propagation_replicated': replicated,
                              'examples_sharded': sharded,
                              'allreduce': allreduce},
        'allreduce_bytes_per_product': allreduce_bytes,
        'request_seconds': equivalents * (replicated + sharded + allreduce),
        'request_seconds_one_gpu_if_it_fit': one_gpu,
        'assumed': {'h200_gowalla_forward_s': H200_GOWALLA_FORWARD,
                    'nccl_bus_bytes_per_s': NVLINK_BUS_BYTES_PER_S,
                    'scaling': 'linear in interactions, same product '
                               'count as measured here'},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--interactions', type=float, default=1e6)
    parser.add_argument('--procs', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--estimate', action='store_true')
    parser.add_argument('--target', type=float, default=1e8)
    parser.add_argument('--gpus', type=int, default=8)
    parser.add_argument('--out', default=None)
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp()
    setup(int(args.interactions), folder)
    runs = {}
    for world in args.procs:
        mp.spawn(worker, args=(world, folder, args.repeats), nprocs=world,
                 join=True)
        runs[world] = torch.load(osp.join(folder, f'world{world}.pt'))
        print(world, runs[world]['seconds'], runs[world]['timings'],
              flush=True)
    base = runs[args.procs[0]]
    d = 64
    rows = {}
    for world, run in runs.items():
        rows[world] = {
            'seconds': run['seconds'], 'all_seconds': run['all'],
            'speedup_vs_first': base['seconds'] / run['seconds'],
            'max_abs_difference_from_first': float(
                (run['weight'] - base['weight']).abs().max()),
            'products': run['products'],
            'examples_per_rank': run['examples_per_rank'],
            'timings': run['timings'],
            'region_nodes': run['region_nodes'],
            'bytes_per_product_allreduce': run['region_nodes'] * d * 4,
            'bytes_per_gradient_allreduce': run['region_nodes'] * d * 8,
        }
    report = {
        'command': 'python benchmarks/distributed.py ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'date': time.strftime('%Y-%m-%d'),
        'machine': {'cpu_count': os.cpu_count(), 'threads_per_process': 1,
                    'torch': torch.__version__, 'backend': 'gloo'},
        'interactions': args.interactions,
        'runs': rows,
    }
    if args.estimate:
        torch.set_num_threads(1)
        parts = product_parts(folder)
        report['product_parts_one_thread'] = parts
        report['gowalla_lightgcn3_forward_one_thread'] = gowalla_propagation()
        report['estimate'] = estimate(
            parts, report['gowalla_lightgcn3_forward_one_thread'],
            rows[args.procs[0]], args.interactions, args.target, args.gpus)
    print(json.dumps(report, indent=1, default=str))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1, default=str)


if __name__ == '__main__':
    main()
