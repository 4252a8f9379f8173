import copy

import pytest
import torch

from torch_geometric_unlearn.data.datasets import synthetic
from torch_geometric_unlearn.data.deletion import random_interactions
from torch_geometric_unlearn.evaluation.benchmark import run_benchmark
from torch_geometric_unlearn.evaluation.config import BenchmarkConfig
from torch_geometric_unlearn.influence import SolverConfig
from torch_geometric_unlearn.training.trainer import (TrainConfig, build_model,
                                                      train)
from torch_geometric_unlearn.unlearn.ifru import IFRUConfig, IFRUnlearner

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='CUDA is not available')


@pytest.mark.parametrize('num_layers', [0, 2])
def test_ifru_on_cuda_matches_cpu(num_layers):
    data = synthetic(60, 80, 900, num_topics=4, seed=1)
    model = build_model(data, 8, num_layers)
    record = train(model, data, TrainConfig(max_epochs=5, progress=False))
    pairs = random_interactions(data, count=10, seed=0)
    config = IFRUConfig(curvature_dtype=torch.float64,
                        solver=SolverConfig(tol=1e-10, max_iter=1000,
                                            damping=0.0))
    results = []
    for device in ('cpu', 'cuda'):
        copy_ = copy.deepcopy(model).to(device)
        unlearner = IFRUnlearner(copy_, data, record.examples, None, 1.0,
                                 config=config)
        results.append(unlearner.unlearn(pairs).model.embedding.weight)
    torch.testing.assert_close(results[1].cpu(), results[0], rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize('kind', ['bpr', 'bce'])
def test_bilinear_products_on_cuda_match_cpu(kind):
    # The sampled dense product and the sparse-dense product of the pair
    # pattern run on cuSPARSE there.
    from torch_geometric_unlearn.influence.bilinear import BilinearLoss
    gen = torch.Generator().manual_seed(0)
    num_users, num_items, num = 40, 60, 3000
    user = torch.randint(num_users, (1, num), generator=gen)
    items = torch.randint(num_items, (2 if kind == 'bpr' else 1, num),
                          generator=gen)
    examples = torch.cat([user, items])
    labels = (None if kind == 'bpr' else
              torch.randint(2, (num, ), generator=gen))
    final = torch.randn(num_users + num_items, 8, generator=gen,
                        dtype=torch.float64)
    vec = torch.randn(final.shape, generator=gen, dtype=torch.float64)
    out = []
    for device in ('cpu', 'cuda'):
        loss = BilinearLoss(examples.to(device), None if labels is None
                            else labels.to(device), num_users,
                            final.size(0), torch.float64)
        f, v = final.to(device), vec.to(device)
        out.append([loss.grad(f).cpu(), loss.loss(f).cpu(),
                    loss.curvature(f).matvec(v).cpu(),
                    loss.curvature(f, gauss_newton=True).matvec(v).cpu()])
    for cuda, cpu in zip(out[1], out[0]):
        torch.testing.assert_close(cuda, cpu, rtol=1e-10, atol=1e-10)


def test_benchmark_runs_on_cuda():
    config = BenchmarkConfig(
        dataset_options=dict(num_users=60, num_items=90,
                             num_interactions=1500), layers=1, dim=8,
        request='random:20', methods=['ifru', 'retrain'], ifru_repeats=1,
        device='cuda', train=TrainConfig(max_epochs=2, progress=False),
        progress=False)
    report = run_benchmark(config)
    assert report['machine']['gpu']
    assert report['runs'][0]['methods']['ifru']['peak_mib'] >= 0


@pytest.mark.skipif(not torch.distributed.is_nccl_available(),
                    reason='NCCL is not available')
def test_nccl_shards_on_one_gpu_match_one_process(tmp_path):
    # The NCCL path of Shards as a one-rank smoke test: every collective
    # runs on CUDA tensors and must leave the update as without shards.
    import torch.distributed as dist

    from torch_geometric_unlearn.unlearn.distributed import Shards
    data = synthetic(60, 80, 900, num_topics=4, seed=1)
    model = build_model(data, 8, 2)
    record = train(model, data, TrainConfig(max_epochs=5, progress=False))
    pairs = random_interactions(data, count=10, seed=0)
    dist.init_process_group('nccl', init_method=f'file://{tmp_path}/rdv',
                            rank=0, world_size=1)
    try:
        shards = Shards()
        assert shards.device.type == 'cuda'
        results = []
        for option in (None, shards):
            copy_ = copy.deepcopy(model).to('cuda')
            unlearner = IFRUnlearner(copy_, data, record.examples, None, 1.0,
                                     shards=option)
            results.append(unlearner.unlearn(pairs).model.embedding.weight)
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=1e-6)
