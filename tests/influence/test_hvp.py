import pytest
import torch
from torch_geometric.nn import GCNConv, LightGCN

from torch_geometric_unlearn.influence import (HessianOperator, HVPMethod,
                                               MatrixOperator,
                                               ParameterSelection,
                                               to_edge_index)
from torch_geometric_unlearn.influence.objectives import (bce_scores_loss,
                                                          bpr_scores_loss,
                                                          l2_penalty)

NUM_USERS, NUM_ITEMS, DIM = 5, 6, 3
NUM_NODES = NUM_USERS + NUM_ITEMS
L2 = 0.3


def tiny_graph():
    gen = torch.Generator().manual_seed(0)
    pos = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4],
                        [0, 1, 1, 2, 2, 3, 4, 5, 0, 3, 5]])
    neg = torch.randint(0, NUM_ITEMS, (pos.size(1), ), generator=gen)
    user, item = pos[0], pos[1] + NUM_USERS
    edge_index = torch.stack([torch.cat([user, item]),
                              torch.cat([item, user])])
    pairs = torch.stack([
        torch.randint(0, NUM_USERS, (15, ), generator=gen),
        torch.randint(0, NUM_ITEMS, (15, ), generator=gen),
    ])
    labels = torch.randint(0, 2, (15, ), generator=gen)
    return edge_index, pos, neg, pairs, labels


def scores_loss(emb, loss, pos, neg, pairs, labels):
    if loss == 'bpr':
        return bpr_scores_loss(emb, pos, neg, NUM_USERS)
    return bce_scores_loss(emb, pairs, labels, NUM_USERS)


def dense_norm_adj(edge_index, self_loops):
    # An independent dense reference of PyG's symmetric normalisation.
    adj = torch.zeros(NUM_NODES, NUM_NODES, dtype=torch.float64)
    adj[edge_index[1], edge_index[0]] = 1.0
    if self_loops:
        adj = adj + torch.eye(NUM_NODES, dtype=torch.float64)
    deg_inv_sqrt = adj.sum(1).pow(-0.5)
    deg_inv_sqrt[torch.isinf(deg_inv_sqrt)] = 0
    return deg_inv_sqrt[:, None] * adj * deg_inv_sqrt[None, :]


ROWS = torch.tensor([7, 0, 3, 9, 5])  # a subset, deliberately unsorted


def flat_rows_index(rows, dim):
    # Positions of the given rows' entries in a row-major flattened table.
    return (rows[:, None] * dim + torch.arange(dim)).reshape(-1)


def assert_close_rel(actual, expected, rtol=1e-5):
    err = float((actual - expected).norm() / expected.norm())
    assert err < rtol, err


@pytest.mark.parametrize('num_layers', [0, 1, 2, 3])
@pytest.mark.parametrize('loss', ['bpr', 'bce'])
def test_lightgcn_hessian_on_rows(num_layers, loss):
    torch.manual_seed(num_layers)
    edge_index, pos, neg, pairs, labels = tiny_graph()
    model = LightGCN(NUM_NODES, DIM, num_layers).double()
    emb0 = model.embedding.weight.detach().clone()

    def objective(f):
        emb = f.call_method('get_embedding', edge_index)
        return (scores_loss(emb, loss, pos, neg, pairs, labels) +
                l2_penalty(f.params['embedding.weight'], L2))

    # Reference: hand-written dense LightGCN over the full table.
    norm = dense_norm_adj(edge_index, self_loops=False)

    def reference(flat):
        x = flat.view(NUM_NODES, DIM)
        out, layer = x, x
        for _ in range(num_layers):
            layer = norm @ layer
            out = out + layer
        out = out / (num_layers + 1)
        return (scores_loss(out, loss, pos, neg, pairs, labels) +
                l2_penalty(x, L2))

    full = emb0.reshape(-1)
    idx = flat_rows_index(ROWS, DIM)
    ref_hess = torch.autograd.functional.hessian(reference, full)[idx][:, idx]
    ref_grad = torch.autograd.functional.jacobian(reference, full)[idx]

    selection = ParameterSelection(model, {'embedding.weight': ROWS})
    assert selection.dim == len(ROWS) * DIM
    assert_close_rel(selection.gradient(objective), ref_grad)
    for method in HVPMethod:
        op = HessianOperator.from_model(selection, objective, method=method)
        assert_close_rel(op.to_dense(), ref_hess)
        assert op.num_hvps == selection.dim
    assert_close_rel(op.hessian(), ref_hess)


class GCNLinkPredictor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = torch.nn.Embedding(NUM_NODES, DIM)
        self.conv1 = GCNConv(DIM, DIM)
        self.conv2 = GCNConv(DIM, DIM)
        torch.nn.init.normal_(self.conv1.bias, std=0.3)

    def forward(self, edge_index):
        x = self.conv1(self.embedding.weight, edge_index).tanh()
        return self.conv2(x, edge_index)


def test_gcn_link_predictor_hessian_with_shared_weights():
    torch.manual_seed(0)
    edge_index, pos, neg, _, _ = tiny_graph()
    model = GCNLinkPredictor().double()
    shared = ['conv1.lin.weight', 'conv1.bias', 'conv2.lin.weight']

    def objective(f):
        emb = f(edge_index)
        return (bpr_scores_loss(emb, pos, neg, NUM_USERS) +
                l2_penalty(list(f.params.values()), L2))

    norm = dense_norm_adj(edge_index, self_loops=True)
    params = dict(model.named_parameters())
    names = ['embedding.weight', 'conv1.lin.weight', 'conv1.bias',
             'conv2.lin.weight', 'conv2.bias']
    sizes = [params[n].numel() for n in names]

    def reference(flat):
        emb, w1, b1, w2, b2 = (
            part.view(params[n].shape)
            for n, part in zip(names, flat.split(sizes)))
        x = (norm @ (emb @ w1.t()) + b1).tanh()
        out = norm @ (x @ w2.t()) + b2
        return (bpr_scores_loss(out, pos, neg, NUM_USERS) +
                l2_penalty([emb, w1, b1, w2, b2], L2))

    full = torch.cat([params[n].detach().reshape(-1) for n in names])
    offsets = torch.tensor(sizes).cumsum(0) - torch.tensor(sizes)
    idx = torch.cat([
        flat_rows_index(ROWS, DIM),  # embedding rows
        offsets[1] + torch.arange(sizes[1] + sizes[2]),  # conv1 weight, bias
        offsets[3] + torch.arange(sizes[3]),  # conv2 weight
    ])  # conv2.bias stays fixed
    ref_hess = torch.autograd.functional.hessian(reference, full)[idx][:, idx]

    selection = ParameterSelection(model, {'embedding.weight': ROWS}, shared)
    assert selection.dim == len(idx)
    for method in ['cached', 'vhp', 'jvp_grad']:
        op = HessianOperator.from_model(selection, objective, method=method)
        assert_close_rel(op.to_dense(), ref_hess)


def test_sparse_adjacency_converted_to_edge_index():
    torch.manual_seed(0)
    edge_index, pos, neg, _, _ = tiny_graph()
    adj = torch.sparse_coo_tensor(edge_index, torch.ones(edge_index.size(1)),
                                  (NUM_NODES, NUM_NODES)).coalesce()
    converted, weight = to_edge_index(adj.to_sparse_csr())
    assert torch.equal(weight, torch.ones(edge_index.size(1)))
    model = LightGCN(NUM_NODES, DIM, 2).double()
    selection = ParameterSelection(model, {'embedding.weight': ROWS})

    def make(index):
        def objective(f):
            emb = f.call_method('get_embedding', index)
            return bpr_scores_loss(emb, pos, neg, NUM_USERS)

        return objective

    hess = HessianOperator.from_model(selection, make(converted),
                                      method='jvp_grad')
    expected = HessianOperator.from_model(selection, make(edge_index))
    assert_close_rel(hess.to_dense(), expected.to_dense(), rtol=1e-12)
    same, no_weight = to_edge_index(edge_index)
    assert same is edge_index and no_weight is None
    with pytest.raises(ValueError, match='edge_index'):
        to_edge_index(torch.zeros(3, 3))


def test_operator_damping_views_share_count():
    matrix = torch.diag(torch.tensor([1.0, 2.0, 3.0]))
    op = MatrixOperator(matrix, damping=0.5)
    vec = torch.ones(3)
    assert torch.allclose(op.matvec(vec), torch.tensor([1.5, 2.5, 3.5]))
    view = op.with_damping(0.0)
    assert torch.allclose(view.matvec(vec), torch.tensor([1.0, 2.0, 3.0]))
    assert op.damping == 0.5 and op.num_hvps == view.num_hvps == 2
    with pytest.raises(ValueError, match="'damping'"):
        op.with_damping(-1.0)
    with pytest.raises(ValueError, match="'method'"):
        HessianOperator(lambda d: d.sum(), 3, method='newton')
    with pytest.raises(ValueError, match=r'shape \[3\]'):
        op.matvec(torch.ones(4))


def test_linear_objective_has_zero_hessian():
    op = HessianOperator(lambda d: (2 * d).sum(), 4, dtype=torch.float64)
    assert torch.equal(op.matvec(torch.ones(4, dtype=torch.float64)),
                       torch.zeros(4, dtype=torch.float64))
    assert torch.equal(op.gradient(), torch.full((4, ), 2.0,
                                                 dtype=torch.float64))
