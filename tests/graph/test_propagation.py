import pytest
import torch
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.graph.propagation import (LinearPropagation,
                                                       PropagationChange)
from torch_geometric_unlearn.graph.spillover import SpilloverTracer


@pytest.mark.parametrize('num_layers', [0, 1, 3])
def test_matches_lightgcn_get_embedding(small_data, num_layers):
    model = LightGCN(small_data.num_nodes, 8, num_layers).double()
    prop = LinearPropagation.from_model(model, small_data.edge_index)
    expected = model.get_embedding(small_data.edge_index)
    out = prop(model.embedding.weight)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_is_symmetric_so_gradients_map_back(small_data):
    # <P x, y> == <x, P y>: the gradient of a loss of P E is P applied to
    # the gradient with respect to the final embeddings.
    model = LightGCN(small_data.num_nodes, 4, 2).double()
    prop = LinearPropagation.from_model(model, small_data.edge_index)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(small_data.num_nodes, 4, generator=gen,
                    dtype=torch.float64)
    y = torch.randn(small_data.num_nodes, 4, generator=gen,
                    dtype=torch.float64)
    assert float((prop(x) * y).sum()) == pytest.approx(
        float((x * prop(y)).sum()), rel=1e-12)


def test_rejects_other_models():
    with pytest.raises(TypeError, match="LightGCN"):
        LinearPropagation.from_model(torch.nn.Linear(2, 2),
                                     torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.parametrize('shuffle', [False, True])
def test_restriction_to_a_ball_is_exact_on_its_centre(small_data, shuffle):
    # Local ids in any order (shuffled: the CSR is sorted again).
    model = LightGCN(small_data.num_nodes, 4, 2).double()
    centre = torch.tensor([3, 50, small_data.num_users + 7])
    ball = SpilloverTracer(small_data.edge_index,
                           small_data.num_nodes).k_hop(centre, 2)
    nodes = ball.nonzero().view(-1)
    if shuffle:
        nodes = nodes[torch.randperm(nodes.numel(),
                                     generator=torch.Generator()
                                     .manual_seed(0))]
    node_map = torch.full((small_data.num_nodes, ), -1)
    node_map[nodes] = torch.arange(nodes.numel())
    local = LinearPropagation.from_model(
        model, small_data.edge_index).restrict(ball, node_map, nodes.numel())
    emb = model.embedding.weight
    expected = model.get_embedding(small_data.edge_index)[centre]
    torch.testing.assert_close(local(emb[nodes])[node_map[centre]],
                               expected)


def hub_edge_removed(data):
    # The graph without one edge of its busiest item and two other edges:
    # a change of about 1e-3 of P x, where subtracting two float32
    # propagations loses 1e-5 of it.
    tracer = SpilloverTracer(data.edge_index, data.num_nodes)
    hub = torch.bincount(data.train_index[1]).argmax()
    pairs = torch.cat([data.train_index[:, data.train_index[1] == hub][:, :1],
                       data.train_index[:, 100:102]], 1)
    edges = torch.stack([pairs[0], pairs[1] + data.num_users])
    return (tracer, tracer.remove_edges(tracer.find_edges(edges)[1]),
            edges.flip(0))


@pytest.mark.parametrize('num_layers', [0, 1, 2, 3])
def test_propagation_change_keeps_float32_accuracy(small_data, num_layers):
    old_tracer, new_tracer, edges = hub_edge_removed(small_data)
    alpha = torch.rand(num_layers + 1, generator=torch.Generator()
                       .manual_seed(num_layers))
    old, new = (LinearPropagation.from_csr(t.rowptr, t.col, alpha,
                                           torch.float64)
                for t in (old_tracer, new_tracer))
    x = 1 + torch.randn(small_data.num_nodes, 4, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(0))
    expected = old(x) - new(x)

    prop, change = PropagationChange.removing(old, new, edges)(x)
    torch.testing.assert_close(prop, old(x), rtol=0, atol=0)
    torch.testing.assert_close(change, expected, rtol=0, atol=1e-14)

    single = [p.to(torch.float32) for p in (old, new)]
    prop, change = PropagationChange.removing(*single, edges)(x.float())
    torch.testing.assert_close(prop, single[0](x.float()))
    if num_layers == 0:
        assert not change.any()
        return

    def error(y):
        return float((y.double() - expected).norm() / expected.norm())

    assert error(change) < 1e-6
    # What the difference of two float32 propagations gives instead.
    assert error(single[0](x.float()) - single[1](x.float())) > 1e-5


def test_propagation_change_on_a_ball(small_data):
    # Both propagations restricted to the same ball, in local ids (the
    # ball holds one removed edge and cuts the other edges of its ends).
    old_tracer, new_tracer, edges = hub_edge_removed(small_data)
    alpha = torch.tensor([0.2, 0.3, 0.5])
    ball = old_tracer.k_hop(edges[:, 0], 1)
    nodes = ball.nonzero().view(-1)
    node_map = torch.full((small_data.num_nodes, ), -1)
    node_map[nodes] = torch.arange(nodes.numel())
    whole = [LinearPropagation.from_csr(t.rowptr, t.col, alpha,
                                        torch.float64)
             for t in (old_tracer, new_tracer)]
    old, new = (p.restrict(ball, node_map, nodes.numel()) for p in whole)
    x = torch.randn(nodes.numel(), 3, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1))
    change = PropagationChange.removing(*whole, edges).restrict(
        old, new, ball, node_map, nodes.numel())
    assert (old(x) - new(x)).abs().max() > 1e-3
    torch.testing.assert_close(change(x)[1], old(x) - new(x), rtol=0,
                               atol=1e-14)


def test_propagation_change_needs_the_removed_edges(small_data):
    old_tracer, new_tracer, edges = hub_edge_removed(small_data)
    alpha = torch.tensor([0.5, 0.5])
    old, new = (LinearPropagation.from_csr(t.rowptr, t.col, alpha)
                for t in (old_tracer, new_tracer))
    with pytest.raises(ValueError, match='without the'):
        PropagationChange.removing(old, new, edges[:, :2])
    with pytest.raises(ValueError, match='without the'):
        PropagationChange.removing(new, old, edges)
    with pytest.raises(ValueError, match='same nodes'):
        PropagationChange.removing(old, LinearPropagation.from_csr(
            new_tracer.rowptr, new_tracer.col, torch.tensor([1.0])), edges)
