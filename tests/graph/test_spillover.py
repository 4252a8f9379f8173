import math

import pytest
import torch
from torch_geometric.nn import GCNConv
from torch_geometric.nn.models import LightGCN
from torch_geometric.typing import WITH_TORCH_SPARSE
from torch_geometric.utils import k_hop_subgraph, subgraph

import torch_geometric_unlearn.graph.tracer as tracer_module
from torch_geometric_unlearn.data.interactions import to_undirected_homogeneous
from torch_geometric_unlearn.graph.spillover import (PruningConfig,
                                                     PruningStrategy,
                                                     SpilloverTracer,
                                                     infer_num_hops,
                                                     trace_spillover)

NUM_USERS, NUM_ITEMS = 25, 35


def random_pairs(seed, num_users=NUM_USERS, num_items=NUM_ITEMS,
                 num_pairs=55):
    r"""Unique random user-item pairs ``[2, n]``; sparse enough that a few
    hops do not cover the whole graph."""
    gen = torch.Generator().manual_seed(seed)
    key = torch.randperm(num_users * num_items, generator=gen)[:num_pairs]
    return torch.stack([key // num_items, key % num_items])


def homogeneous(pairs, num_users=NUM_USERS):
    return to_undirected_homogeneous(pairs, num_users)


def embeddings(edge_index, num_layers, seed=0,
               num_nodes=NUM_USERS + NUM_ITEMS):
    torch.manual_seed(seed)
    model = LightGCN(num_nodes, 8, num_layers).double()
    with torch.no_grad():
        return model.get_embedding(edge_index)


def k_hop_set(nodes, num_hops, edge_index):
    r"""The reference k-hop set from PyG."""
    subset = k_hop_subgraph(nodes, num_hops, edge_index,
                            num_nodes=NUM_USERS + NUM_ITEMS)[0]
    return set(subset.tolist())


def bpr_triples(pairs, seed, num_users=NUM_USERS, num_items=NUM_ITEMS):
    gen = torch.Generator().manual_seed(seed)
    neg = torch.randint(num_items, (pairs.size(1), ), generator=gen)
    return torch.stack([pairs[0], pairs[1] + num_users, neg + num_users])


def pair_scores(emb, examples):
    return torch.stack([(emb[examples[0]] * emb[examples[j]]).sum(-1)
                        for j in range(1, examples.size(0))])


@pytest.mark.parametrize('num_layers', [0, 1, 2, 3])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_brute_force_lightgcn(num_layers, seed):
    pairs = random_pairs(seed)
    edge_index = homogeneous(pairs)
    gen = torch.Generator().manual_seed(100 + seed)
    drop = torch.randperm(pairs.size(1), generator=gen)[:2]
    keep = torch.ones(pairs.size(1), dtype=torch.bool)
    keep[drop] = False
    deleted = torch.stack([pairs[0, drop], pairs[1, drop] + NUM_USERS])
    examples = bpr_triples(pairs, seed)

    result = trace_spillover(edge_index, deleted, num_layers, examples,
                             num_nodes=NUM_USERS + NUM_ITEMS)

    # The graph after deletion, rebuilt from the kept pairs, not the mask:
    after_index = homogeneous(pairs[:, keep])
    before = embeddings(edge_index, num_layers, seed)
    after = embeddings(after_index, num_layers, seed)
    change = (after - before).norm(dim=-1)
    changed_nodes = (change > 1e-6 * before.norm(dim=-1)).nonzero().view(-1)

    spillover = set(result.spillover_nodes.tolist())
    direct = set(deleted.view(-1).tolist())
    assert set(result.direct_nodes.tolist()) == direct
    assert set(changed_nodes.tolist()) <= spillover
    assert spillover == k_hop_set(deleted.view(-1), num_layers, edge_index)
    # Tight, not only sound: with generic embeddings every traced node moves
    # (with no layers nothing moves; the endpoints only lose loss terms).
    if num_layers > 0:
        assert set(changed_nodes.tolist()) == spillover

    score_change = (pair_scores(after, examples) -
                    pair_scores(before, examples)).abs().amax(0)
    changed_examples = set(result.changed_examples.tolist())
    moved = set((score_change > 1e-9).nonzero().view(-1).tolist())
    assert moved <= changed_examples
    touches = torch.isin(examples, torch.tensor(sorted(spillover))).any(0)
    assert changed_examples == set(touches.nonzero().view(-1).tolist())
    # Every deleted interaction's triple touches a direct node:
    assert set(drop.tolist()) <= changed_examples

    targets = torch.cat([deleted.view(-1),
                         examples[:, result.changed_examples].reshape(-1)])
    assert set(result.solve_nodes.tolist()) == k_hop_set(
        targets.unique(), num_layers, edge_index)


@pytest.mark.parametrize('num_layers', [0, 1, 2, 3])
def test_solve_region_and_subgraph_are_exact(num_layers):
    # Sparse enough that the solve region is a real cut of the graph.
    num_users, num_items = 80, 120
    num_nodes = num_users + num_items
    pairs = random_pairs(7, num_users, num_items, num_pairs=170)
    edge_index = homogeneous(pairs, num_users)
    deleted = torch.stack([pairs[0, :1], pairs[1, :1] + num_users])
    examples = bpr_triples(pairs, 7, num_users, num_items)[:, :20]
    result = trace_spillover(edge_index, deleted, num_layers, examples,
                             num_nodes=num_nodes)
    changed = examples[:, result.changed_examples]
    targets = torch.cat([deleted.view(-1), changed.reshape(-1)]).unique()
    assert result.solve_edge_mask.sum() < edge_index.size(1)  # a real cut

    # Before deletion, and after it (the full graph rebuilt from the pairs).
    for mask, full_index in [
        (result.solve_edge_mask, edge_index),
        (result.solve_edge_mask & ~result.deleted_edge_mask,
         homogeneous(pairs[:, 1:], num_users)),
    ]:
        full = embeddings(full_index, num_layers, num_nodes=num_nodes)
        sub = embeddings(edge_index[:, mask], num_layers, num_nodes=num_nodes)
        assert torch.allclose(sub[targets], full[targets], atol=1e-12)

    # Parameters outside the solve region receive no gradient.
    torch.manual_seed(0)
    model = LightGCN(num_nodes, 8, num_layers).double()
    emb = model.get_embedding(edge_index)
    weight = torch.randn(changed.size(1), dtype=torch.float64)
    (pair_scores(emb, changed) * weight).sum().backward()
    has_grad = model.embedding.weight.grad.abs().sum(-1) > 0
    assert set(has_grad.nonzero().view(-1).tolist()) <= set(
        result.solve_nodes.tolist())


@pytest.mark.parametrize('dense_frontier', [0., math.inf])
def test_gather_and_mat_vec_expansion_agree(monkeypatch, dense_frontier):
    # 0 expands every frontier by a sparse mat-vec, inf by a gather.
    monkeypatch.setattr(tracer_module, 'DENSE_FRONTIER', dense_frontier)
    pairs = random_pairs(11)
    edge_index = homogeneous(pairs)
    tracer = SpilloverTracer(edge_index, NUM_USERS + NUM_ITEMS)
    for seeds in ([0], [0, 5, 30], list(range(0, 60, 3))):
        seeds = torch.tensor(seeds)
        for num_hops in range(5):
            mask = tracer.k_hop(seeds, num_hops)
            assert set(mask.nonzero().view(-1).tolist()) == k_hop_set(
                seeds, num_hops, edge_index)


def test_k_hop_induced_subgraph_is_not_enough():
    # Path 0-1-2: 1-layer embedding of node 0 needs deg(1), i.e. edge 1-2.
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    tracer = SpilloverTracer(edge_index)
    model = LightGCN(3, 4, 1).double()
    with torch.no_grad():
        full = model.get_embedding(edge_index)[0]
        exact = model.get_embedding(
            edge_index[:, tracer.subgraph_mask(torch.tensor([0]), 1)])[0]
        short = model.get_embedding(
            subgraph(torch.tensor([0, 1]), edge_index)[0])[0]
    assert torch.allclose(exact, full)
    assert not torch.allclose(short, full)


@pytest.mark.parametrize('num_hops', [0, 1, 2, 3])
def test_isolated_edge_gives_its_endpoints(num_hops):
    pairs = torch.tensor([[0, 1, 1, 2], [0, 1, 2, 2]])  # (0, 0) is isolated
    edge_index = homogeneous(pairs, num_users=3)
    deleted = torch.tensor([[0], [3]])
    result = trace_spillover(edge_index, deleted, num_hops)
    assert result.direct_nodes.tolist() == [0, 3]
    assert result.spillover_nodes.tolist() == [0, 3]
    assert result.kept_nodes.tolist() == [0, 3]


def test_matrix_factorisation_gives_only_endpoints():
    pairs = random_pairs(3)
    edge_index = homogeneous(pairs)
    deleted = torch.stack([pairs[0, :3], pairs[1, :3] + NUM_USERS])
    result = trace_spillover(edge_index, deleted, 0, bpr_triples(pairs, 3))
    assert result.spillover_nodes.tolist() == sorted(
        set(deleted.view(-1).tolist()))
    assert torch.equal(result.solve_nodes.sort().values,
                       result.solve_nodes)  # sorted, as documented


def test_one_direction_removes_both_and_merges_duplicates():
    pairs = random_pairs(4)
    edge_index = homogeneous(pairs)
    u, i = int(pairs[0, 0]), int(pairs[1, 0]) + NUM_USERS
    tracer = SpilloverTracer(edge_index)
    forward = tracer.trace(torch.tensor([[u], [i]]), 2)
    reverse = tracer.trace(torch.tensor([[i], [u]]), 2)
    twice = tracer.trace(torch.tensor([[u, i, u], [i, u, i]]), 2)
    for other in (reverse, twice):
        assert torch.equal(other.deleted_edge_mask, forward.deleted_edge_mask)
        assert torch.equal(other.importance, forward.importance)
        assert torch.equal(other.spillover_nodes, forward.spillover_nodes)
    removed = edge_index[:, forward.deleted_edge_mask]
    assert sorted(map(tuple, removed.t().tolist())) == [(u, i), (i, u)]
    assert forward.deleted_edge_index.tolist() == [[u], [i]]


def test_parallel_edges_are_removed_together():
    edge_index = torch.tensor([[0, 1, 0, 1, 1, 2], [1, 0, 1, 0, 2, 1]])
    result = trace_spillover(edge_index, torch.tensor([[1], [0]]), 1)
    assert result.deleted_edge_mask.tolist() == [True] * 4 + [False] * 2
    # Both copies of {0, 1} leave node 1 with 2 of its 3 edges:
    assert result.importance[1] >= 2 / 3


def test_importance_hand_computed():
    # Path 0-1-2-3, delete {0, 1}: deg = (1, 2, 2, 1), s0 = (1, 1/2, 0, 0).
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    tracer = SpilloverTracer(edge_index)
    mask = tracer.find_edges(torch.tensor([[0], [1]]))[1]
    r = 1 / math.sqrt(2)
    expected = {
        0: [1, 0.5, 0, 0],
        1: [1 + 0.5 * r, 0.5 + r, 0.25, 0],
        2: [1 + 0.5 * r + 0.5, 0.5 + r + 0.375, 0.25 + 0.5 * r, 0.25 * r],
    }
    for num_hops, values in expected.items():
        score = tracer.importance(mask, num_hops)
        assert torch.allclose(score, torch.tensor(values, dtype=score.dtype))


def test_importance_matches_dense_reference():
    pairs = random_pairs(5)
    edge_index = homogeneous(pairs)
    num_nodes = NUM_USERS + NUM_ITEMS
    deleted = torch.stack([pairs[0, :4], pairs[1, :4] + NUM_USERS])
    result = trace_spillover(edge_index, deleted, 3, num_nodes=num_nodes)

    adj = torch.zeros(num_nodes, num_nodes, dtype=torch.float64)
    adj[edge_index[0], edge_index[1]] = 1.
    deg = adj.sum(1)
    inv_sqrt = torch.where(deg > 0, deg.pow(-0.5), torch.zeros_like(deg))
    norm = inv_sqrt.view(-1, 1) * adj * inv_sqrt.view(1, -1)
    seed = torch.zeros(num_nodes, dtype=torch.float64)
    for a, b in deleted.t().tolist():
        seed[a] += 1 / deg[a]
        seed[b] += 1 / deg[b]
    expected = sum(torch.linalg.matrix_power(norm, h) @ seed
                   for h in range(4))
    assert torch.allclose(result.importance, expected, atol=1e-14)
    # Positive exactly on the spillover region:
    positive = (result.importance > 0).nonzero().view(-1)
    assert torch.equal(positive, result.spillover_nodes)


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason='torch-sparse is not '
                    'installed, so there is no second backend to compare')
def test_backends_agree():
    pairs = random_pairs(6, num_pairs=120)
    edge_index = homogeneous(pairs)
    deleted = torch.stack([pairs[0, :5], pairs[1, :5] + NUM_USERS])
    examples = bpr_triples(pairs, 6)
    out = [
        trace_spillover(edge_index, deleted, 2, examples, ('quantile', 0.4),
                        backend=backend)
        for backend in ('torch', 'torch_sparse')
    ]
    assert torch.allclose(out[0].importance, out[1].importance, atol=1e-14)
    for name in ('spillover_nodes', 'changed_examples', 'solve_nodes',
                 'solve_edge_mask', 'kept_nodes'):
        assert torch.equal(getattr(out[0], name), getattr(out[1], name))


def test_unknown_or_missing_backend():
    edge_index = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="'backend'"):
        SpilloverTracer(edge_index, backend='scipy')
    if not WITH_TORCH_SPARSE:
        with pytest.raises(ImportError, match='torch-sparse'):
            SpilloverTracer(edge_index, backend='torch_sparse')


def test_edge_order_does_not_matter():
    pairs = random_pairs(8)
    edge_index = homogeneous(pairs)
    perm = torch.randperm(edge_index.size(1),
                          generator=torch.Generator().manual_seed(0))
    deleted = torch.stack([pairs[0, :3], pairs[1, :3] + NUM_USERS])
    a = trace_spillover(edge_index, deleted, 2, pruning=('quantile', 0.5))
    b = trace_spillover(edge_index[:, perm], deleted, 2,
                        pruning=('quantile', 0.5))
    assert torch.equal(a.deleted_edge_mask[perm], b.deleted_edge_mask)
    assert torch.equal(a.solve_edge_mask[perm], b.solve_edge_mask)
    assert torch.allclose(a.importance, b.importance, atol=1e-15)
    assert torch.equal(a.kept_nodes, b.kept_nodes)


def test_huge_node_count_is_never_densified():
    # An N x N buffer (or an N-sized one per edge) would not fit in memory;
    # everything here is O(N + E).
    num_nodes = 10_000_000
    edge_index = torch.tensor([[0, 7, 7, num_nodes - 1],
                               [7, 0, num_nodes - 1, 7]])
    result = trace_spillover(edge_index, torch.tensor([[0], [7]]), 3,
                             num_nodes=num_nodes)
    assert result.spillover_nodes.tolist() == [0, 7, num_nodes - 1]


# Pruning ---------------------------------------------------------------------


def select(config, importance, candidates, direct):
    return PruningConfig.cast(config).select(
        torch.tensor(importance, dtype=torch.float64),
        torch.tensor(candidates), torch.tensor(direct)).tolist()


def test_pruning_strategies_by_hand():
    importance = [0., .9, .1, .5, .5, .2, .5, .05]
    candidates, direct = [1, 2, 3, 4, 5, 6, 7], [1, 7]
    # Ranking: 1 (.9), then 3, 4, 6 (tied at .5, by id), 5, 2, 7.
    assert select('none', importance, candidates, direct) == candidates
    assert select(('top_n', 3), importance, candidates, direct) == [1, 3, 7]
    assert select(('top_n', 3, 1, False), importance, candidates,
                  direct) == [1, 3, 4]
    # Quantile 0.4 of 7 drops floor(2.8) = 2 and keeps 5, direct included:
    assert select(('quantile', 0.4), importance, candidates,
                  direct) == [1, 3, 4, 6, 7]
    with pytest.warns(UserWarning, match='exceed the pruning budget'):
        assert select(('quantile', 1.), importance, candidates,
                      direct) == [1, 7]
    assert select(('quantile', 0.0), importance, candidates,
                  direct) == candidates
    # A budget of 200 parameters at 64 per node is 3 nodes:
    assert select(('budget', 200, 64), importance, candidates,
                  direct) == [1, 3, 7]
    assert select(('threshold', 0.5), importance, candidates,
                  direct) == [1, 3, 4, 6, 7]
    assert select(dict(strategy='threshold', value=0.5, keep_direct=False),
                  importance, candidates, direct) == [1, 3, 4, 6]


def test_pruning_quantile_counts_exactly():
    importance = torch.rand(200, dtype=torch.float64)
    candidates = torch.arange(100)
    kept = PruningConfig('quantile', 0.29, keep_direct=False).select(
        importance, candidates, torch.tensor([], dtype=torch.long))
    assert kept.numel() == 71  # 0.29 * 100 is 28.999... in floating point


def test_pruning_budget_direct_nodes_first_and_warning():
    importance = [0., .9, .8, .7, .1]
    with pytest.warns(UserWarning, match='exceed the pruning budget'):
        kept = select(('top_n', 1), importance, [1, 2, 3, 4], [3, 4])
    assert kept == [3, 4]
    assert select(('top_n', 1, 1, False), importance, [1, 2, 3, 4],
                  [3, 4]) == [1]


@pytest.mark.parametrize('pruning', [('quantile', 0.4), ('quantile', 0.8),
                                     ('top_n', 12), ('budget', 12 * 64, 64),
                                     ('threshold', 0.05)])
def test_pruning_on_a_graph(pruning):
    pairs = random_pairs(9, num_pairs=150)
    edge_index = homogeneous(pairs)
    deleted = torch.stack([pairs[0, :3], pairs[1, :3] + NUM_USERS])
    results = [trace_spillover(edge_index, deleted, 2, pruning=pruning)
               for _ in range(2)]
    kept, result = results[0].kept_nodes, results[0]
    assert torch.equal(kept, results[1].kept_nodes)  # deterministic
    assert torch.isin(result.direct_nodes, kept).all()
    assert torch.isin(kept, result.spillover_nodes).all()
    config = result.pruning
    num_kept = config.num_kept(result.spillover_nodes.numel())
    if num_kept is not None:
        assert kept.numel() == num_kept
    else:
        free = kept[~torch.isin(kept, result.direct_nodes)]
        dropped = result.spillover_nodes[~torch.isin(
            result.spillover_nodes, kept)]
        assert (result.importance[free] >= config.value).all()
        assert (result.importance[dropped] < config.value).all()
    # Whatever is kept outranks whatever is dropped, direct nodes aside.
    free = kept[~torch.isin(kept, result.direct_nodes)]
    dropped = result.spillover_nodes[~torch.isin(result.spillover_nodes,
                                                 kept)]
    if free.numel() and dropped.numel():
        assert result.importance[free].min() >= result.importance[
            dropped].max()


@pytest.mark.parametrize('kwargs, field', [
    (dict(strategy='median'), "'strategy'"),
    (dict(strategy='none', value=0.3), "'value'"),
    (dict(strategy='quantile'), "'value'"),
    (dict(strategy='quantile', value=1.5), "'value'"),
    (dict(strategy='quantile', value=-0.1), "'value'"),
    (dict(strategy='quantile', value=True), "'value'"),
    (dict(strategy='top_n', value=2.5), "'value'"),
    (dict(strategy='top_n', value=-1), "'value'"),
    (dict(strategy='budget', value=100, params_per_node=0),
     "'params_per_node'"),
    (dict(strategy='threshold', value=float('nan')), "'value'"),
    (dict(strategy='threshold', value=-1.), "'value'"),
    (dict(strategy='none', keep_direct='yes'), "'keep_direct'"),
])
def test_pruning_config_validates(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PruningConfig(**kwargs)


def test_pruning_config_casts():
    assert PruningConfig.cast('none').strategy == PruningStrategy.none
    config = PruningConfig.cast(('quantile', 0.4))
    assert config.strategy == PruningStrategy.quantile
    assert config.value == 0.4 and config.keep_direct


# Model hops and bad input ----------------------------------------------------


@pytest.mark.parametrize('num_layers', [0, 1, 2, 3])
def test_infer_num_hops_lightgcn(num_layers):
    assert infer_num_hops(LightGCN(10, 4, num_layers)) == num_layers


def test_infer_num_hops_override_and_errors():
    class TwoConvs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = GCNConv(4, 4), GCNConv(4, 4)

    assert infer_num_hops(TwoConvs()) == 2
    assert infer_num_hops(TwoConvs(), num_hops=5) == 5
    with pytest.raises(TypeError, match="'model'"):
        infer_num_hops('lightgcn')
    with pytest.raises(ValueError, match="'num_hops'"):
        infer_num_hops(TwoConvs(), num_hops=-1)


@pytest.fixture
def tracer():
    return SpilloverTracer(homogeneous(random_pairs(10)))


@pytest.mark.parametrize('deleted, error, match', [
    (torch.tensor([[0], [NUM_USERS + NUM_ITEMS]]), ValueError, 'outside'),
    (torch.tensor([[-1], [NUM_USERS]]), ValueError, 'outside'),
    (torch.zeros(2, 0, dtype=torch.long), ValueError, 'empty'),
    (torch.tensor([[0.], [30.]]), TypeError, 'dtype'),
    (torch.tensor([0, 30]), ValueError, r'shape \[2, n\]'),
    (torch.tensor([[0], [1], [2]]), ValueError, r'shape \[2, n\]'),
    ([[0], [30]], TypeError, 'torch.Tensor'),
    (torch.tensor([[0], [1]]), ValueError, 'not in the graph'),  # user-user
])
def test_bad_requests(tracer, deleted, error, match):
    with pytest.raises(error, match=match):
        tracer.trace(deleted, 2)


def test_edge_not_in_graph_is_named(tracer):
    pairs = random_pairs(10)
    existing = set(zip(pairs[0].tolist(), pairs[1].tolist()))
    missing = next((u, i) for u in range(NUM_USERS) for i in range(NUM_ITEMS)
                   if (u, i) not in existing)
    u, i = int(pairs[0, 0]), int(pairs[1, 0])
    deleted = torch.tensor([[u, missing[0]],
                            [i + NUM_USERS, missing[1] + NUM_USERS]])
    with pytest.raises(ValueError, match=rf'\({missing[0]}, '
                       rf'{missing[1] + NUM_USERS}\)'):
        tracer.trace(deleted, 2)


def test_bad_examples_and_hops(tracer):
    deleted = tracer.edge_index[:, :1]
    for examples, error, match in [
        (torch.zeros(4, 3, dtype=torch.long), ValueError, r'\[3, M\]'),
        (torch.zeros(3, dtype=torch.long), ValueError, r'\[3, M\]'),
        (torch.zeros(3, 3), TypeError, 'dtype'),
        (torch.full((2, 3), 1000), ValueError, 'outside'),
    ]:
        with pytest.raises(error, match=match):
            tracer.trace(deleted, 1, examples)
    with pytest.raises(ValueError, match="'num_hops'"):
        tracer.trace(deleted, -1)
    with pytest.raises(TypeError, match="'num_hops'"):
        tracer.trace(deleted, 2.0)


def test_bad_graphs():
    with pytest.raises(ValueError, match='undirected.*\\(0, 1\\)'):
        SpilloverTracer(torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(ValueError, match='parallel'):
        SpilloverTracer(torch.tensor([[0, 0, 1], [1, 1, 0]]))
    with pytest.raises(ValueError, match="'edge_index' holds node id 5"):
        SpilloverTracer(torch.tensor([[0, 5], [5, 0]]), num_nodes=5)
    with pytest.raises(TypeError, match="'edge_index'.*dtype"):
        SpilloverTracer(torch.tensor([[0, 1], [1, 0]], dtype=torch.int32))
    with pytest.raises(ValueError, match="'num_nodes'"):
        SpilloverTracer(torch.tensor([[0, 1], [1, 0]]), num_nodes=-3)


def test_bad_importance_mask(tracer):
    with pytest.raises(ValueError, match="'deleted_edge_mask'"):
        tracer.importance(torch.ones(3, dtype=torch.bool), 1)
