import os

import pytest
import torch
import torch_geometric.typing
from _pyg_loop import make_graph, pyg_loop
from torch_geometric import EdgeIndex
from torch_geometric.typing import SparseTensor

from torch_geometric_unlearn.data.interactions import pair_keys
from torch_geometric_unlearn.evaluation.metrics import evaluate
from torch_geometric_unlearn.graph.adjacency import (FORMS, adjacency_form,
                                                     as_form, to_edge_index)
from torch_geometric_unlearn.graph.spillover import SpilloverTracer
from torch_geometric_unlearn.training.trainer import build_model
from torch_geometric_unlearn.unlearn.recipe import Recipe, from_training_loop

# In CI's second environment (the 'full' extra) nothing may skip for want
# of torch-sparse.
FULL = os.environ.get('TGU_FULL') == '1'


@pytest.fixture(scope='module')
def graph():
    return make_graph()


def available(form):
    if form == 'SparseTensor' and not torch_geometric.typing.WITH_TORCH_SPARSE:
        if FULL:
            raise AssertionError('TGU_FULL=1 but torch-sparse is missing')
        pytest.skip('torch-sparse is not installed')
    return form


def keys(edge_index, num_nodes):
    return torch.sort(edge_index[0] * num_nodes + edge_index[1])[0]


@pytest.mark.parametrize('form', FORMS)
def test_every_form_round_trips(graph, form):  # noqa: F811
    edge_index, _, num_users, num_items = graph
    n = num_users + num_items
    adj = as_form(edge_index, available(form), n)
    assert adjacency_form(adj) == form
    back, found = to_edge_index(adj, n)
    assert found == form and back.dtype == torch.long
    assert torch.equal(keys(back, n), keys(edge_index, n))


@pytest.mark.parametrize('form', FORMS)
def test_the_tracer_reads_every_form(graph, form):  # noqa: F811
    edge_index, _, num_users, num_items = graph
    n = num_users + num_items
    reference = SpilloverTracer(edge_index, n, backend='torch')
    tracer = SpilloverTracer(as_form(edge_index, available(form), n), n,
                             backend='torch')
    deleted = edge_index[:, :5]
    deleted = torch.cat([deleted, deleted.flip(0)], 1)
    for hops in (1, 2):
        one, two = reference.trace(deleted, hops), tracer.trace(deleted, hops)
        assert torch.equal(one.spillover_nodes, two.spillover_nodes)
        assert torch.equal(one.solve_nodes, two.solve_nodes)
        assert torch.equal(one.deleted_edge_index, two.deleted_edge_index)


@pytest.mark.parametrize('form', FORMS)
def test_unlearning_is_the_same_in_every_form(graph, form):  # noqa: F811
    # A model trained by PyG's own loop, handed over with its graph in
    # each form: the same update, and the new graph back in that form.
    edge_index, train_eli, num_users, num_items = graph
    n = num_users + num_items
    model, optimizer, last = pyg_loop(graph, 1e-4, False, epochs=5)
    recipe = Recipe('bpr', lambda_reg=1e-4, batch_size=150)
    kwargs = dict(edge_label_index=train_eli, negatives=last,
                  optimizer=optimizer)
    reference = from_training_loop(model, edge_index, num_users, recipe,
                                   **kwargs)
    adj = as_form(edge_index, available(form), n)
    unlearner = from_training_loop(model, adj, num_users, recipe, **kwargs)
    assert unlearner.adjacency_form == form
    request = edge_index[:, [0, 7, 30]]
    expected = reference.unlearn(edge_index=request)
    result = unlearner.unlearn(edge_index=request)
    torch.testing.assert_close(result.model.embedding.weight,
                               expected.model.embedding.weight, rtol=0,
                               atol=1e-6)
    assert adjacency_form(result.adj) == form
    new, _ = to_edge_index(result.adj, n)
    assert torch.equal(keys(new, n), keys(expected.edge_index, n))
    # PyG's LightGCN predicts the same on either form of the new graph.
    torch.testing.assert_close(result.model.get_embedding(result.adj),
                               result.model.get_embedding(new))
    removed = pair_keys(torch.stack([request[0], request[1] - num_users]),
                        num_items)
    left = pair_keys(result.data.train_index, num_items)
    assert not torch.isin(removed, left).any()


@pytest.mark.parametrize('form', FORMS)
def test_evaluation_takes_every_form(small_data, form):
    model = build_model(small_data, 8, 2)
    n = small_data.num_nodes
    adj = as_form(small_data.edge_index, available(form), n)
    assert evaluate(model, small_data, adj=adj) == pytest.approx(
        evaluate(model, small_data, adj=small_data.edge_index))


def test_bad_adjacencies_name_the_mismatch(graph):  # noqa: F811
    edge_index, _, num_users, num_items = graph
    n = num_users + num_items
    cases = [
        (as_form(edge_index, 'sparse_csr', n + 1), rf'\[{n + 1}, {n + 1}\], '
         rf'but it must be \[{n}, {n}\]'),
        (torch.sparse_coo_tensor(edge_index, torch.full(
            (edge_index.size(1), ), 2.0), (n, n)), 'values other than 1'),
        (edge_index.float(), r'integer tensor of shape \[2, E\]'),
        (edge_index[:, :10] + n, r'node ids outside'),
        (EdgeIndex(edge_index, sparse_size=(n, n + 3)), 'must be'),
    ]
    for adj, match in cases:
        with pytest.raises(ValueError, match=match):
            to_edge_index(adj, n)
    with pytest.raises(TypeError, match='must be an edge_index'):
        to_edge_index([[0, 1], [1, 0]], n)
    with pytest.raises(TypeError, match='convert it to CSR or COO'):
        to_edge_index(as_form(edge_index, 'sparse_csr', n).to_sparse_csc(),
                      n)
    # A directed graph where both directions are expected.
    with pytest.raises(ValueError, match='undirected|both directions'):
        SpilloverTracer(as_form(edge_index[:, :20], 'sparse_csr', n), n)
    if torch_geometric.typing.WITH_TORCH_SPARSE:
        weighted = SparseTensor(row=edge_index[1], col=edge_index[0],
                                value=torch.rand(edge_index.size(1)),
                                sparse_sizes=(n, n))
        with pytest.raises(ValueError, match='values other than 1'):
            to_edge_index(weighted, n)
