import pytest
import torch
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn.influence import ParameterSelection


class TwoTables(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.user = torch.nn.Embedding(4, 2)
        self.item = torch.nn.Embedding(5, 2)
        self.scale = torch.nn.Parameter(torch.tensor([1.5]))

    def forward(self, pairs):
        return self.scale * (self.user(pairs[0]) *
                             self.item(pairs[1])).sum(-1)

    def squared(self, pairs):
        return self(pairs).pow(2)


def make_selection():
    torch.manual_seed(0)
    model = TwoTables().double()
    rows = {'item.weight': torch.tensor([4, 1]),
            'user.weight': torch.tensor([2])}
    return model, ParameterSelection(model, rows, shared=['scale'])


PAIRS = torch.tensor([[0, 2, 2, 3], [1, 4, 0, 1]])


def test_layout_and_substitution():
    model, selection = make_selection()
    assert selection.dim == 2 * 2 + 1 * 2 + 1
    assert selection.names == ['item.weight', 'user.weight', 'scale']
    delta = torch.arange(7, dtype=torch.float64)
    params = selection.substitute(delta)
    item = model.item.weight.detach().clone()
    item[4] += delta[0:2]
    item[1] += delta[2:4]
    user = model.user.weight.detach().clone()
    user[2] += delta[4:6]
    assert torch.equal(params['item.weight'], item)
    assert torch.equal(params['user.weight'], user)
    assert torch.equal(params['scale'], model.scale.detach() + 6)
    assert not any(p.requires_grad for p in params.values())
    assert 'ParameterSelection(item.weight[2], user.weight[1]' in repr(
        selection)


def test_functional_model_calls_any_method():
    model, selection = make_selection()
    delta = torch.zeros(selection.dim, dtype=torch.float64)
    delta[6] = 1.0  # scale 1.5 -> 2.5
    func = selection.functional(lambda f: f.call_method('squared', PAIRS)
                                .sum() + f(PAIRS).sum())
    expected = model(PAIRS) * 2.5 / 1.5
    assert torch.allclose(func(delta), (expected.pow(2) + expected).sum())


def test_gradient_matches_backward_and_apply_roundtrip():
    model, selection = make_selection()
    objective = lambda f: f(PAIRS).pow(3).sum()  # noqa: E731
    grad = selection.gradient(objective)
    model(PAIRS).pow(3).sum().backward()
    assert torch.allclose(grad, selection.gather_grad())
    before = selection.values()
    full_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    delta = torch.randn(selection.dim, dtype=torch.float64)
    selection.apply_(delta, alpha=0.5)
    assert torch.allclose(selection.values(), before + 0.5 * delta)
    # Rows outside the selection are untouched.
    assert torch.equal(model.user.weight[[0, 1, 3]],
                       full_before['user.weight'][[0, 1, 3]])
    selection.assign_(before)
    for name, param in model.named_parameters():
        assert torch.equal(param, full_before[name])


def test_gather_grad_zero_without_grad():
    _, selection = make_selection()
    assert torch.equal(selection.gather_grad(),
                       torch.zeros(selection.dim, dtype=torch.float64))


def test_works_on_pyg_lightgcn():
    model = LightGCN(6, 3, num_layers=1)
    selection = ParameterSelection(model, {'embedding.weight':
                                           torch.tensor([0, 5])})
    assert selection.dim == 6 and selection.dtype == torch.float32


@pytest.mark.parametrize('rows, shared, match', [
    ({'nope.weight': torch.tensor([0])}, (), "'rows' names 'nope.weight'"),
    ({'user.weight': torch.tensor([0, 0])}, (), 'duplicate'),
    ({'user.weight': torch.tensor([4])}, (), r'outside \[0, 4\)'),
    ({'user.weight': torch.tensor([0.0])}, (), '1-D long'),
    ({}, ('missing', ), "'shared' names 'missing'"),
    ({'user.weight': torch.tensor([0])}, ('user.weight', ), 'already'),
    ({}, (), 'no parameters'),
])
def test_validation(rows, shared, match):
    with pytest.raises(ValueError, match=match):
        ParameterSelection(TwoTables(), rows, shared)


def test_split_checks_shape():
    _, selection = make_selection()
    with pytest.raises(ValueError, match=r'shape \[7\]'):
        selection.apply_(torch.zeros(3, dtype=torch.float64))
