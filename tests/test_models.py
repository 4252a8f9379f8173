import pytest
import torch
from _link_models import FAMILIES, GNN, hetero_template, make
from torch_geometric.nn import GCNConv, HeteroConv, LightGCN, SAGEConv
from torch_geometric.utils import get_num_hops

from torch_geometric_unlearn.data.interactions import to_undirected_homogeneous
from torch_geometric_unlearn.graph.spillover import trace_spillover
from torch_geometric_unlearn.models import (HeteroLinkModel, LinkModel,
                                            num_message_passing_layers)

NUM_USERS, NUM_ITEMS = 25, 35


def random_pairs(seed, num_pairs=50):
    gen = torch.Generator().manual_seed(seed)
    key = torch.randperm(NUM_USERS * NUM_ITEMS, generator=gen)[:num_pairs]
    return torch.stack([key // NUM_ITEMS, key % NUM_ITEMS])


def node_embeddings(link_model, pairs):
    r"""Final embeddings of every node, homogeneous order (users first)."""
    with torch.no_grad():
        z = link_model.embed(link_model.graph(pairs))
    return torch.cat([z['user'], z['item']]) if isinstance(z, dict) else z


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_traced_spillover_covers_every_changed_embedding(family, seed):
    pairs = random_pairs(seed)
    link_model = make(family, NUM_USERS, NUM_ITEMS, 6, seed=seed)
    gen = torch.Generator().manual_seed(100 + seed)
    drop = torch.randperm(pairs.size(1), generator=gen)[:2]
    keep = torch.ones(pairs.size(1), dtype=torch.bool)
    keep[drop] = False
    deleted = torch.stack([pairs[0, drop], pairs[1, drop] + NUM_USERS])

    result = trace_spillover(to_undirected_homogeneous(pairs, NUM_USERS),
                             deleted, link_model.num_hops,
                             num_nodes=NUM_USERS + NUM_ITEMS)
    # Brute force: the embeddings on the graph rebuilt without the pairs.
    before = node_embeddings(link_model, pairs)
    after = node_embeddings(link_model, pairs[:, keep])
    changed = set(((before - after).abs().amax(1) > 1e-12).nonzero()
                  .view(-1).tolist())
    traced = set(result.spillover_nodes.tolist())
    assert link_model.num_hops == 2
    assert changed <= traced
    assert changed - set(result.direct_nodes.tolist())  # Not vacuous.
    if family == 'gcn':
        # Self-loops and degree normalisation: the deleted edges' endpoints
        # change their neighbours' messages in the first layer already, so
        # the whole 2-hop region changes.
        assert changed == traced
    else:
        # Mean aggregation: a node changes once a neighbour's mean did, so
        # one hop less suffices; the trace is a safe superset.
        one_hop = trace_spillover(
            to_undirected_homogeneous(pairs, NUM_USERS), deleted, 1,
            num_nodes=NUM_USERS + NUM_ITEMS).spillover_nodes
        assert changed == set(one_hop.tolist())


def test_num_message_passing_layers():
    assert num_message_passing_layers(LightGCN(10, 4, 3)) == 3
    assert num_message_passing_layers(GNN(10, 4, GCNConv)) == 2
    hetero = make('hetero', 5, 6, 4).model
    # PyG's count sees one conv per edge type and layer.
    assert get_num_hops(hetero) == 4
    assert num_message_passing_layers(hetero) == 2
    convs = [HeteroConv({('user', 'rates', 'item'): SAGEConv((4, 4), 4),
                         ('item', 'rev_rates', 'user'): SAGEConv((4, 4), 4)})
             for _ in range(2)]
    assert num_message_passing_layers(torch.nn.ModuleList(convs)) == 2
    assert make('sage', 5, 6, 4, num_hops=5).num_hops == 5


def test_node_parameters_are_found_and_mapped():
    link_model = make('gcn', 5, 6, 4)
    assert link_model.node_params == {'model.emb.weight': 'node'}
    nodes = torch.tensor([0, 4, 5, 10])
    assert link_model.rows('model.emb.weight', nodes).tolist() == [
        0, 4, 5, 10]
    hetero = make('hetero', 5, 6, 4)
    assert hetero.node_params == {'model.user_emb.weight': 'user',
                                  'model.item_emb.weight': 'item'}
    assert hetero.rows('model.user_emb.weight', nodes).tolist() == [0, 4]
    assert hetero.rows('model.item_emb.weight', nodes).tolist() == [0, 5]
    # A dense weight whose width equals a node count is not a node table.
    gnn = GNN(8, 4, GCNConv)
    gnn.encoder.convs[1] = GCNConv(4, 8)
    assert LinkModel(gnn, 4, 4).node_params == {'model.emb.weight': 'node'}
    with pytest.raises(ValueError, match="pass 'node_params'"):
        LinkModel(torch.nn.Embedding(3, 4), 3, 3)  # A user or item table?
    assert LinkModel(torch.nn.Embedding(3, 4), 3, 3,
                     node_params={'weight': 'item'}).node_params == {
                         'model.weight': 'item'}
    with pytest.raises(ValueError, match='not a parameter'):
        LinkModel(gnn, 4, 4, node_params={'emb': 'node'})
    with pytest.raises(ValueError, match='first dimension'):
        LinkModel(gnn, 4, 4, node_params={'emb.weight': 'user'})


def test_hetero_graph_has_both_directions():
    hetero = make('hetero', 5, 6, 4)
    pairs = torch.tensor([[0, 1], [2, 5]])
    graph = hetero.graph(pairs)
    assert graph[('user', 'rates', 'item')].tolist() == pairs.tolist()
    assert graph[('item', 'rev_rates', 'user')].tolist() == [[2, 5], [0, 1]]
    assert hetero(graph, pairs).shape == (2, )


def test_unsupported_models_get_clear_errors():
    pairs = torch.tensor([[0, 1], [0, 1]])
    with pytest.raises(TypeError, match='torch.nn.Module'):
        LinkModel(lambda x: x, 2, 3)
    with pytest.raises(ValueError, match='cached=True'):
        LinkModel(torch.nn.Sequential(GCNConv(4, 4, cached=True)), 2, 3)
    with pytest.raises(ValueError, match="both 'encode' and 'decode'"):
        LinkModel(GNN(5, 4, GCNConv), 2, 3, encode='encode')
    with pytest.raises(TypeError, match="no method 'embed'"):
        LinkModel(GNN(5, 4, GCNConv), 2, 3, encode='embed', decode='decode')
    # A node classifier: called as model(edge_index, edge_label_index) it
    # fails, and the error says what the contract needs.
    classifier = LinkModel(GCNConv(4, 4), 2, 3)
    with pytest.raises(TypeError, match=r'model\(edge_index, '
                       r'edge_label_index\) must return scores'):
        classifier.check(pairs)

    class Matrix(torch.nn.Module):  # Scores per pair must be [B].
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(5, 4)

        def forward(self, edge_index, edge_label_index):
            return self.emb.weight @ self.emb.weight.t()

    with pytest.raises(TypeError, match='one float score per pair'):
        LinkModel(Matrix(), 2, 3).check(pairs)


def test_hetero_data_is_checked():
    model = make('hetero', 5, 6, 4).model
    template = hetero_template(5, 6)
    template['item', 'in', 'genre'].edge_index = torch.zeros(2, 1).long()
    with pytest.raises(ValueError, match='spillover is not traced'):
        HeteroLinkModel(model, template)
    with pytest.raises(ValueError, match="'rev_edge_type' must lead"):
        HeteroLinkModel(model, hetero_template(5, 6),
                        rev_edge_type=('user', 'rev_rates', 'item'))
    with pytest.raises(TypeError, match='HeteroData'):
        HeteroLinkModel(model, {'user': 5})
