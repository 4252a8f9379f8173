import copy

import pytest
import torch
from torch.autograd.functional import hessian, jacobian

from torch_geometric_unlearn.bilinear import BilinearLoss
from torch_geometric_unlearn.datasets import synthetic
from torch_geometric_unlearn.deletion import random_interactions, random_users
from torch_geometric_unlearn.evaluation import (
    closure_ratio,
    converge,
    fixed_objective,
)
from torch_geometric_unlearn.ifru import (
    GaugeProjection,
    IFRUConfig,
    IFRUnlearner,
    PropagatedHessian,
)
from torch_geometric_unlearn.influence import SolverConfig, SolverError
from torch_geometric_unlearn.objectives import example_margin
from torch_geometric_unlearn.propagation import LinearPropagation
from torch_geometric_unlearn.spillover import SpilloverTracer
from torch_geometric_unlearn.training import TrainConfig, build_model, train
from torch_geometric_unlearn.unlearner import remaining_data

L2 = 1.0
EXACT = dict(pruning=None, extra_hops=9)


@pytest.fixture(scope='module')
def tiny():
    return synthetic(60, 80, 900, num_topics=4, seed=1)


def stationary(data, num_layers, dim=4):
    # theta_hat: trained, then the fixed objective converged in float64.
    model = build_model(data, dim, num_layers).double()
    record = train(model, data, TrainConfig(progress=False, lr=0.01,
                                            batch_size=256, l2=L2))
    converge(model, data.edge_index, record.examples, None, L2,
             data.num_users, tol=1e-9)
    return model, record


@pytest.fixture(scope='module', params=[0, 2])
def converged(request, tiny):
    return (request.param, ) + stationary(tiny, request.param)


def retrained(model, data, record, pairs):
    # theta_hat': the fixed objective without the request, from theta_hat.
    probe = IFRUnlearner(model, data, record.examples, l2=L2,
                         copy_model=True)
    req = probe._request(pairs)
    after = remaining_data(data, req.train_mask)
    target = copy.deepcopy(model)
    converge(target, after.edge_index, record.examples[:, req.example_mask],
             None, L2, data.num_users, tol=1e-9)
    return target.embedding.weight.detach(), after, req


def unlearn(model, data, record, pairs, **config):
    unlearner = IFRUnlearner(model, data, record.examples, l2=L2,
                             config=IFRUConfig(**config), copy_model=True)
    return unlearner.unlearn(pairs)


@pytest.mark.parametrize('gauss_newton', [False, True])
def test_operator_matches_explicit_hessian(converged, tiny, gauss_newton):
    num_layers, model, record = converged
    emb = model.embedding.weight.detach()
    rows = torch.tensor([0, 3, 61, 70, 100])
    prop = LinearPropagation.from_model(model, tiny.edge_index)
    examples = record.examples

    def restricted(flat):
        full = emb.clone()
        full[rows] = flat.view(rows.numel(), -1)
        return full

    if gauss_newton:
        # J^T diag(sigma'(m)) J + l2 I from an explicit Jacobian.
        jac = jacobian(
            lambda flat: example_margin(prop(restricted(flat)), examples,
                                        tiny.num_users), emb[rows].flatten())
        prob = torch.sigmoid(example_margin(prop(emb), examples,
                                            tiny.num_users))
        expected = jac.t() @ (jac * (prob * (1 - prob)).view(-1, 1))
        expected += L2 * torch.eye(expected.size(0), dtype=expected.dtype)
    else:
        objective = fixed_objective(model, tiny.edge_index, examples, None,
                                    L2, tiny.num_users)
        expected = hessian(lambda flat: objective(restricted(flat)),
                           emb[rows].flatten())
    loss = BilinearLoss(examples, None, tiny.num_users, tiny.num_nodes,
                        emb.dtype)
    operator = PropagatedHessian(prop, prop(emb), rows, loss, L2,
                                 gauss_newton)
    torch.testing.assert_close(operator.to_dense(), expected, rtol=1e-8,
                               atol=1e-10)

    # The same on a region in local ids: the rows' L-hop ball (edges it
    # induces, the whole graph's degrees) and the examples touching it.
    ball = SpilloverTracer(tiny.edge_index, tiny.num_nodes).k_hop(
        rows, num_layers)
    nodes = torch.cat([examples[:1], examples[1:] + tiny.num_users])
    touched = ball[nodes].any(0)
    local = torch.unique(torch.cat([ball.nonzero().view(-1),
                                    nodes[:, touched].reshape(-1)]))
    node_map = torch.full((tiny.num_nodes, ), -1)
    node_map[local] = torch.arange(local.numel())
    local_loss = BilinearLoss(examples[:, touched], None, tiny.num_users,
                              local.numel(), emb.dtype, node_map)
    local_prop = LinearPropagation.induced(model, tiny.edge_index, ball,
                                           node_map, local.numel())
    operator = PropagatedHessian(local_prop, prop(emb)[local],
                                 node_map[rows], local_loss, L2,
                                 gauss_newton)
    torch.testing.assert_close(operator.to_dense(), expected, rtol=1e-8,
                               atol=1e-10)


@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_region_operator_is_exact_on_a_sparse_graph(num_layers):
    # A graph where the rows' ball is a small part of it, at a random
    # point (the identity holds anywhere, not only at an optimum).
    data = synthetic(300, 400, 700, num_topics=4, seed=2)
    model = build_model(data, 3, num_layers).double()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model.embedding.weight.copy_(
            torch.randn(model.embedding.weight.shape, generator=gen,
                        dtype=torch.float64))
    pos = data.train_index
    examples = torch.cat([pos, torch.randint(data.num_items,
                                             (1, pos.size(1)),
                                             generator=gen)])
    emb = model.embedding.weight.detach()
    rows = torch.tensor([2, 7, 300 + 5])
    ball = SpilloverTracer(data.edge_index, data.num_nodes).k_hop(
        rows, num_layers)
    nodes = torch.cat([examples[:1], examples[1:] + data.num_users])
    touched = ball[nodes].any(0)
    local = torch.unique(torch.cat([ball.nonzero().view(-1),
                                    nodes[:, touched].reshape(-1)]))
    assert local.numel() < data.num_nodes // 2
    node_map = torch.full((data.num_nodes, ), -1)
    node_map[local] = torch.arange(local.numel())
    final = LinearPropagation.from_model(model, data.edge_index)(emb)
    operator = PropagatedHessian(
        LinearPropagation.induced(model, data.edge_index, ball, node_map,
                                  local.numel()), final[local],
        node_map[rows],
        BilinearLoss(examples[:, touched], None, data.num_users,
                     local.numel(), emb.dtype, node_map), L2)

    objective = fixed_objective(model, data.edge_index, examples, None, L2,
                                data.num_users)

    def restricted(flat):
        full = emb.clone()
        full[rows] = flat.view(rows.numel(), -1)
        return objective(full)

    torch.testing.assert_close(operator.to_dense(),
                               hessian(restricted, emb[rows].flatten()),
                               rtol=1e-8, atol=1e-10)


def test_gauge_projection_removes_rotations_only():
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(30, 5, generator=gen, dtype=torch.float64)
    project = GaugeProjection(emb)
    skew = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    skew = skew - skew.t()
    rotation = (emb @ skew).flatten()
    assert project(rotation).norm() < 1e-10 * rotation.norm()
    vec = torch.randn(150, generator=gen, dtype=torch.float64)
    out = project(vec)
    torch.testing.assert_close(project(out), out)  # idempotent
    # The removed part is a rotation direction, orthogonal to the rest.
    assert abs(float(out @ (vec - out))) < 1e-10 * float(vec @ vec)
    other = torch.randn(150, generator=gen, dtype=torch.float64)
    assert float(project(other) @ vec) == pytest.approx(
        float(other @ project(vec)))  # symmetric


def test_solve_equals_dense_projected_newton_step(converged, tiny):
    num_layers, model, record = converged
    pairs = random_interactions(tiny, count=10, seed=3)
    _, after, req = retrained(model, tiny, record, pairs)
    emb = model.embedding.weight.detach()
    objective = fixed_objective(model, after.edge_index,
                                record.examples[:, req.example_mask], None,
                                L2, tiny.num_users)
    flat = emb.flatten()
    hess = hessian(lambda x: objective(x.view_as(emb)), flat)
    grad = jacobian(lambda x: objective(x.view_as(emb)), flat)
    eye = torch.eye(flat.numel(), dtype=flat.dtype)
    proj = torch.stack([GaugeProjection(emb)(e) for e in eye], 1)
    step = torch.linalg.lstsq(proj @ hess @ proj, -proj @ grad).solution
    expected = emb + (proj @ step).view_as(emb)

    result = unlearn(model, tiny, record, pairs, gradient='exact',
                     hessian='exact', curvature_dtype=torch.float64, **EXACT,
                     solver=SolverConfig(
                         method='cg', tol=1e-10, max_iter=2000, damping=0.0))
    torch.testing.assert_close(result.model.embedding.weight.detach(),
                               expected, rtol=1e-6, atol=1e-7)


def test_ifru_closes_the_gap_to_retraining(converged, tiny):
    num_layers, model, record = converged
    pairs = random_interactions(tiny, count=10, seed=3)
    target, _, _ = retrained(model, tiny, record, pairs)
    theta = model.embedding.weight.detach()

    def closure(**config):
        result = unlearn(model, tiny, record, pairs, **config)
        return closure_ratio(result.model.embedding.weight.detach(), theta,
                             target)

    one_step, two_steps = closure(**EXACT), closure(newton_steps=2, **EXACT)
    # Measured: 0.53 / 0.84 for MF and 0.97 / 1.00 for 2-layer LightGCN.
    assert one_step > (0.45 if num_layers == 0 else 0.9)
    assert two_steps > max(one_step, 0.75)
    if num_layers > 0:
        assert closure(spillover=False, **EXACT) < one_step - 0.05
    # Without the gauge projection the undamped step runs off.
    assert closure(project_gauge=False, hessian='exact', **EXACT,
                   solver=SolverConfig(method='minres', tol=1e-10,
                                       max_iter=3000, damping=0.0,
                                       on_failure='warn')) < one_step


def test_stationary_and_exact_gradients_agree_at_an_optimum(converged, tiny):
    num_layers, model, record = converged
    pairs = random_interactions(tiny, count=10, seed=4)
    # Tight float64 solves, so that only the right-hand sides differ.
    tight = dict(EXACT, curvature_dtype=torch.float64,
                 solver=SolverConfig(tol=1e-9, max_iter=2000, damping=0.0))
    a = unlearn(model, tiny, record, pairs, **tight).model
    b = unlearn(model, tiny, record, pairs, gradient='exact', **tight).model
    theta = model.embedding.weight.detach()
    gap = (a.embedding.weight - theta).norm()
    assert (a.embedding.weight - b.embedding.weight).norm() < 1e-3 * gap


def test_forgotten_user_rows_are_zero(tiny):
    model, record = stationary(tiny, 1)
    users = random_users(tiny, 2, seed=0)
    unlearner = IFRUnlearner(model, tiny, record.examples, l2=L2)
    result = unlearner.unlearn(users=users)
    assert result.diagnostics['zeroed_rows'] == 2
    assert result.model.embedding.weight[users].abs().max() == 0
    assert not torch.isin(result.edge_index, users).any()
    assert result.diagnostics['solve_rows'] > 0


def test_solver_failure_leaves_the_model_unchanged(tiny):
    model, record = stationary(tiny, 1)
    before = model.embedding.weight.detach().clone()
    unlearner = IFRUnlearner(
        model, tiny, record.examples, l2=L2,
        config=IFRUConfig(solver=SolverConfig(method='cg', tol=1e-12,
                                              max_iter=1)))
    with pytest.raises(SolverError, match='tolerance'):
        unlearner.unlearn(random_interactions(tiny, count=5))
    assert torch.equal(model.embedding.weight, before)
    assert unlearner.data is tiny


def test_auto_falls_back_to_gauss_newton_on_any_exact_failure(
        tiny, monkeypatch):
    # The exact solve misses its tolerance (no negative curvature): 'auto'
    # must retry on the Gauss-Newton matrix rather than give up.
    from torch_geometric_unlearn import ifru
    model, record = stationary(tiny, 1)
    real, calls, spent = ifru.solve, [], []

    def failing_first(operator, rhs, config):
        calls.append(config)
        if len(calls) == 1:
            config = SolverConfig(method='cg', tol=1e-12, max_iter=1,
                                  damping=0.0)
        before = operator.num_hvps
        try:
            return real(operator, rhs, config)
        finally:
            spent.append(operator.num_hvps - before)

    monkeypatch.setattr(ifru, 'solve', failing_first)
    result = unlearn(model, tiny, record, random_interactions(tiny, count=5))
    assert len(calls) == 2 and min(spent) > 0
    solved = result.diagnostics['solver'][0]
    assert '(gauss_newton Hessian) after the exact Hessian failed' in \
        solved.message
    # The failed attempt's products are part of the cost.
    assert solved.num_hvps == sum(spent)
    with pytest.raises(SolverError):
        unlearn(model, tiny, record, random_interactions(tiny, count=5),
                hessian='exact',
                solver=SolverConfig(method='cg', tol=1e-12, max_iter=1))


def test_other_models_get_a_clear_error(tiny):
    with pytest.raises(TypeError, match="needs PyG's LightGCN"):
        IFRUnlearner(torch.nn.Embedding(tiny.num_nodes, 4), tiny,
                     torch.zeros(3, 1, dtype=torch.long))


def test_config_validates_itself():
    assert IFRUConfig(pruning=None).pruning.strategy.value == 'none'
    for kwargs, match in [(dict(gradient='newton'), 'gradient'),
                          (dict(hessian='fisher'), 'hessian'),
                          (dict(newton_steps=0), 'newton_steps'),
                          (dict(extra_hops=-1), 'extra_hops'),
                          (dict(solver='cg'), 'solver')]:
        with pytest.raises(ValueError, match=match):
            IFRUConfig(**kwargs)
