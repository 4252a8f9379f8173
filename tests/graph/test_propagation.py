import pytest
import torch
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.graph.propagation import LinearPropagation
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
