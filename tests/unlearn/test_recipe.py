import copy

import pytest
import torch
import torch.nn.functional as F
from _pyg_loop import BATCH, make_graph, pyg_loop
from torch.func import functional_call
from torch_geometric.nn import LightGCN

from torch_geometric_unlearn import IFRUConfig
from torch_geometric_unlearn.graph.spillover import PruningConfig
from torch_geometric_unlearn.influence import SolverConfig
from torch_geometric_unlearn.influence.horizon import optimizer_horizon
from torch_geometric_unlearn.influence.objectives import BatchL2
from torch_geometric_unlearn.training.recorder import (Snapshot,
                                                       TrajectoryRecorder)
from torch_geometric_unlearn.unlearn.generic import LinkIFRUnlearner
from torch_geometric_unlearn.unlearn.ifru import (IFRUnlearner,
                                                  LightGCNIFRUnlearner)
from torch_geometric_unlearn.unlearn import ifru_update
from torch_geometric_unlearn.unlearn.recipe import Recipe, from_training_loop


@pytest.fixture(scope='module')
def graph():
    return make_graph()


def batches_holding(graph, node_id_negatives: bool, epochs: int):
    # Monte Carlo of the loop's batching: how many batches of an epoch
    # hold each node, averaged over epochs.
    _, train_eli, num_users, num_items = graph
    gen = torch.Generator().manual_seed(0)
    count = torch.zeros(num_users + num_items, dtype=torch.float64)
    for _ in range(epochs):
        for index in torch.randperm(train_eli.size(1),
                                    generator=gen).split(BATCH):
            nodes = train_eli[:, index].reshape(-1)
            if node_id_negatives:
                nodes = torch.cat([nodes, torch.randint(
                    num_users, num_users + num_items, (index.numel(), ),
                    generator=gen)])
            count[nodes.unique()] += 1
    return count / epochs


@pytest.mark.parametrize('negatives', [True, False])
def test_batch_l2_weights_match_the_loop_s_batches(graph, negatives):
    _, train_eli, num_users, num_items = graph
    pairs = torch.stack([train_eli[0], train_eli[1] - num_users])
    lambda_reg = 0.5
    weights = BatchL2(lambda_reg, BATCH, node_id=True).weights(
        pairs, num_users, num_items, sampled_negatives=negatives)
    expected = 2 * lambda_reg * batches_holding(graph, negatives, 3000)
    used = expected > 0
    assert torch.allclose(weights[used], expected[used], rtol=0.03)
    assert (weights[~used] == 0).all()
    # The test tells the two cases apart: items under BPR meet their
    # sampled negatives in extra batches.
    other = BatchL2(lambda_reg, BATCH, node_id=True).weights(
        pairs, num_users, num_items, sampled_negatives=not negatives)
    assert not torch.allclose(other[used], expected[used], rtol=0.03)
    # Without node_id every row is regularised in every batch.
    flat = BatchL2(lambda_reg, BATCH).weights(pairs, num_users, num_items,
                                              True)
    assert torch.allclose(flat, torch.full_like(
        flat, 2 * lambda_reg * train_eli.size(1) / BATCH))
    assert torch.allclose(
        BatchL2(0.0, BATCH, weight_decay=1e-3).weights(
            pairs, num_users, num_items, True),
        torch.full_like(flat, 1e-3 * train_eli.size(1)))


def objective(model, emb, edge_index, eli, neg, weights):
    # The summed objective written out from PyG's own forward pass: BPR of
    # every (positive, frozen negative) pair plus the per-row L2 term.
    pos_rank = functional_call(model, {'embedding.weight': emb},
                               (edge_index, eli))
    neg_eli = torch.stack([eli[0], neg])
    neg_rank = functional_call(model, {'embedding.weight': emb},
                               (edge_index, neg_eli))
    return F.softplus(neg_rank - pos_rank).sum() + 0.5 * (
        weights.view(-1, 1) * emb.pow(2)).sum()


@pytest.mark.parametrize('lambda_reg', [1e-4, 1e-2])
@pytest.mark.parametrize('node_id', [False, True])
def test_front_door_matches_an_explicit_newton_step(graph, lambda_reg,
                                                    node_id):
    edge_index, train_eli, num_users, num_items = graph
    model, optimizer, last = pyg_loop(graph, lambda_reg, node_id)
    recipe = Recipe(lambda_reg=lambda_reg, batch_size=BATCH, node_id=node_id)
    # The 40 most important rows keep the explicit Hessian small.
    newton = IFRUConfig(step='newton', hessian='exact',
                        pruning=PruningConfig('top_n', 40),
                        project_gauge=False, curvature_dtype=torch.float64,
                        solver=SolverConfig(method='direct', tol=1e-8))
    unlearner = from_training_loop(model, edge_index, num_users, recipe,
                                   edge_label_index=train_eli,
                                   negatives=last, optimizer=optimizer,
                                   config=newton)
    assert isinstance(unlearner, LightGCNIFRUnlearner)
    # Forget pairs whose user and item keep other interactions.
    degree = torch.bincount(train_eli.reshape(-1),
                            minlength=num_users + num_items)
    ok = (degree[train_eli] >= 4).all(0).nonzero().view(-1)
    forget = train_eli[:, ok[torch.randperm(
        ok.numel(), generator=torch.Generator().manual_seed(0))[:6]]]
    result = unlearner.unlearn(edge_index=forget)
    rows = result.diagnostics['rows']
    assert rows.numel() == 40 and result.certificate.step == 'newton'
    assert f'negatives: the {train_eli.size(1)} given' in \
        result.diagnostics['objective']

    # The reference: the old and the new objective written out, their
    # gradients and the exact Hessian by autograd, over the same rows.
    reference = copy.deepcopy(model).double()
    emb = model.embedding.weight.detach().double()
    keep = ~torch.isin(train_eli[0] * 10**6 + train_eli[1],
                       forget[0] * 10**6 + forget[1])
    new_eli = train_eli[:, keep]
    new_edges = torch.cat([new_eli, new_eli.flip(0)], 1)
    l2 = recipe.l2

    def weights(eli):
        return l2.weights(torch.stack([eli[0], eli[1] - num_users]),
                          num_users, num_items, sampled_negatives=True)

    def loss(free, edges, eli, neg, w):
        full = emb.clone()
        full[rows] = free
        return objective(reference, full, edges, eli, neg, w)

    old = (edge_index, train_eli, last, weights(train_eli))
    new = (new_edges, new_eli, last[keep], weights(new_eli))
    start = emb[rows].clone().requires_grad_()
    g_old = torch.autograd.grad(loss(start, *old), start)[0]
    g_new = torch.autograd.grad(loss(start, *new), start)[0]
    hessian = torch.autograd.functional.hessian(
        lambda x: loss(x.view_as(start), *new), start.detach().reshape(-1),
        vectorize=True)
    step = torch.linalg.solve(hessian, (g_old - g_new).reshape(-1))
    expected = emb[rows] + step.view_as(start)

    got = result.model.embedding.weight.detach().double()
    assert float(step.norm() / emb[rows].norm()) > 1e-3  # a real step
    assert torch.allclose(got[rows], expected, rtol=1e-5, atol=1e-7)
    others = torch.ones(emb.size(0), dtype=torch.bool)
    others[rows] = False
    assert torch.equal(got[others], emb[others])
    # The caller's model is left alone.
    assert torch.equal(model.embedding.weight.detach().double(), emb)


def test_default_front_door_takes_the_trajectory_step(graph):
    edge_index, train_eli, num_users, num_items = graph
    model, optimizer, _ = pyg_loop(graph, 1e-4, True, epochs=5)
    unlearner = from_training_loop(
        model, edge_index, num_users,
        Recipe(lambda_reg=1e-4, batch_size=BATCH, node_id=True),
        optimizer=optimizer)
    result = unlearner.unlearn(users=torch.tensor([3]))
    note = result.diagnostics['objective']
    assert 'drawn with seed 0' in note and "horizon: Adam's state" in note
    assert 'negatives drawn from every item' in note
    assert unlearner.config.negative_sampler == 'all'
    assert result.certificate.step == 'trajectory'
    assert result.certificate.horizon == 'optimizer'
    assert result.certificate.objective == note
    assert result.model.embedding.weight[3].abs().max() == 0


def test_a_custom_loss_takes_the_optimiser_s_horizon(graph):
    from torch_geometric_unlearn.influence.horizon import optimizer_horizon
    edge_index, train_eli, num_users, num_items = graph
    # Trained as in the test above, whose Adam steps are noise-driven; the
    # recipe's loss differs from the loop's (the plumbing is under test).
    model, optimizer, _ = pyg_loop(graph, 1e-4, True, epochs=5)

    def margin_loss(pos_rank, neg_rank):
        return F.relu(1 - pos_rank + neg_rank).pow(2).mean()

    recipe = Recipe(loss=margin_loss, lambda_reg=1e-4, batch_size=BATCH)
    unlearner = from_training_loop(model, edge_index, num_users, recipe,
                                   negatives=0, optimizer=optimizer)
    assert isinstance(unlearner, LinkIFRUnlearner)
    (name, ) = unlearner.model.node_params
    torch.testing.assert_close(
        unlearner.horizon[name], optimizer_horizon(
            optimizer, model.embedding.weight, train_eli.size(1)))
    result = unlearner.unlearn(edge_index=train_eli[:, :3])
    assert "horizon: Adam's state" in result.diagnostics['objective']
    assert result.diagnostics['step'] == 'trajectory'
    without = from_training_loop(model, edge_index, num_users, recipe,
                                 negatives=0)
    assert without.horizon is None
    assert "horizon: read off" in without.unlearn(
        edge_index=train_eli[:, :3]).diagnostics['objective']


def test_bce_and_a_custom_loss(graph):
    edge_index, train_eli, num_users, num_items = graph
    model = LightGCN(num_users + num_items, 4, 1)
    gen = torch.Generator().manual_seed(0)
    neg = torch.stack([train_eli[0], torch.randint(
        num_users, num_users + num_items, (train_eli.size(1), ),
        generator=gen)])
    known = train_eli[0] * 10**6 + train_eli[1]
    keys = neg[0] * 10**6 + neg[1]
    keys = torch.unique(keys[~torch.isin(keys, known)])
    neg = torch.stack([keys // 10**6, keys % 10**6])
    labelled = torch.cat([train_eli, neg], 1)
    labels = torch.cat([torch.ones(train_eli.size(1)),
                        torch.zeros(neg.size(1))])
    bce = from_training_loop(model, edge_index, num_users,
                             Recipe(loss='bce', lambda_reg=1e-3),
                             edge_label_index=labelled, labels=labels)
    assert isinstance(bce, LightGCNIFRUnlearner) and bce.labels.numel() == \
        labelled.size(1)
    result = bce.unlearn(edge_index=train_eli[:, :3])
    assert 'BCE with logits' in result.diagnostics['objective']

    def margin_loss(pos_rank, neg_rank):  # a hinge: no closed form here
        return F.relu(1 - pos_rank + neg_rank).pow(2).mean()

    custom = from_training_loop(model, edge_index, num_users,
                                Recipe(loss=margin_loss, lambda_reg=1e-2,
                                       batch_size=BATCH))
    assert isinstance(custom, LinkIFRUnlearner)
    # The mean over each batch is the sum over examples, scaled.
    assert custom.l2 == pytest.approx(2e-2 * train_eli.size(1) / BATCH)
    result = custom.unlearn(edge_index=train_eli[:, :3])
    assert 'margin_loss (mean over the batch)' in \
        result.diagnostics['objective']

    def squared(scores, labels):  # a callable on labelled pairs
        return (scores - labels).pow(2).sum()

    pairs = from_training_loop(model, edge_index, num_users,
                               Recipe(loss=squared, lambda_reg=0.0,
                                      weight_decay=1e-3, reduction='sum'),
                               edge_label_index=labelled, labels=labels)
    # Weight decay on the mean over an epoch's N examples, both labels.
    assert pairs.l2 == pytest.approx(1e-3 * labelled.size(1))
    pairs.unlearn(edge_index=train_eli[:, :3])


# Each case maps (train_eli, negatives, num_users) to the arguments that
# replace the good ones.
@pytest.mark.parametrize('change, match', [
    (lambda eli, neg, nu: dict(recipe=Recipe(lambda_reg=0.0), num_items=79),
     'embedding table has 140 rows'),
    (lambda eli, neg, nu: dict(negatives=neg - nu), 'outside the items'),
    (lambda eli, neg, nu: dict(negatives=neg[:-1]),
     'one item per training pair'),
    (lambda eli, neg, nu: dict(edge_label_index=torch.stack(
        [eli[0], eli[1] - nu])), 'row 1 items offset'),
    (lambda eli, neg, nu: dict(edge_label_index=eli[:, 1:],
                               negatives=neg[1:]), 'graph differ'),
    (lambda eli, neg, nu: dict(labels=torch.ones(eli.size(1))),
     "BPR takes no 'labels'"),
    (lambda eli, neg, nu: dict(recipe=Recipe(loss='bce', lambda_reg=0.0)),
     "BCE needs 'labels'"),
])
def test_bad_input_names_what_to_pass(graph, change, match):
    edge_index, train_eli, num_users, num_items = graph
    model = LightGCN(num_users + num_items, 4, 1)
    before = model.embedding.weight.detach().clone()
    negatives = train_eli[1].flip(0)
    kwargs = dict(recipe=Recipe(lambda_reg=1e-4), edge_label_index=train_eli,
                  negatives=negatives)
    kwargs.update(change(train_eli, negatives, num_users))
    recipe = kwargs.pop('recipe')
    with pytest.raises(ValueError, match=match):
        from_training_loop(model, edge_index, num_users, recipe, **kwargs)
    assert torch.equal(model.embedding.weight, before)


def test_the_optimiser_s_weight_decay_is_stated_once(graph):
    edge_index, train_eli, num_users, _ = graph
    model = LightGCN(num_users + 80, 4, 1)
    recipe = Recipe(lambda_reg=1e-4)
    decayed = torch.optim.Adam(model.parameters(), weight_decay=1e-3)
    with pytest.raises(ValueError, match='state the regularisation once'):
        from_training_loop(model, edge_index, num_users, recipe,
                           optimizer=decayed)
    decoupled = torch.optim.AdamW(model.parameters(), weight_decay=1e-2)
    with pytest.raises(ValueError, match='decoupled weight decay'):
        from_training_loop(model, edge_index, num_users, Recipe(
            lambda_reg=0.0, weight_decay=1e-2), optimizer=decoupled)
    # Stated once and equal: accepted (no step taken yet, so the horizon
    # falls back to the gradient's, and says so).
    unlearner = from_training_loop(
        model, edge_index, num_users,
        Recipe(lambda_reg=0.0, weight_decay=1e-3), optimizer=decayed)
    assert 'has taken no step' in unlearner.objective_note


def test_recipe_validates_itself():
    with pytest.raises(ValueError, match="State 'lambda_reg'"):
        Recipe()
    for kwargs, match in [(dict(loss='hinge'), "'loss'"),
                          (dict(lambda_reg=-1.0), 'lambda_reg'),
                          (dict(lambda_reg=0.0, batch_size=0), 'batch_size'),
                          (dict(lambda_reg=0.0, reduction='max'),
                           'reduction'),
                          (dict(lambda_reg=0.0, negative_sampler='popular'),
                           'negative_sampler'),
                          (dict(lambda_reg=float('nan')), 'lambda_reg')]:
        with pytest.raises(ValueError, match=match):
            Recipe(**kwargs)
    with pytest.raises(ValueError, match="'weight_decay'"):
        from_training_loop(
            torch.nn.Linear(2, 2), torch.tensor([[0], [1]]), 1,
            Recipe(loss=lambda p, n: p.sum(), lambda_reg=1.0,
                   node_id=True), num_items=1)


def test_the_negative_sampler_is_stated_once(graph):
    # The recipe says where the loop drew its negatives; a config that
    # says otherwise is refused, one that agrees or is silent is taken.
    edge_index, _, num_users, _ = graph
    model, optimizer, _ = pyg_loop(graph, 1e-4, True, epochs=1)
    recipe = Recipe(lambda_reg=1e-4, batch_size=BATCH,
                    negative_sampler='unseen')
    for config in (None, IFRUConfig(), IFRUConfig(negative_sampler='unseen')):
        unlearner = from_training_loop(model, edge_index, num_users, recipe,
                                       config=config)
        assert unlearner.config.negative_sampler == 'unseen'
        assert 'items the user has no pair with' in unlearner.objective_note
    with pytest.raises(ValueError, match=r'Recipe\(negative_sampler'):
        from_training_loop(model, edge_index, num_users, recipe,
                           config=IFRUConfig(negative_sampler='all'))


def test_a_recorded_run_is_followed_a_segment_at_a_time(graph):
    edge_index, train_eli, num_users, _ = graph
    model, optimizer, last, recorder = pyg_loop(
        graph, 1e-4, True, epochs=8,
        recorder=lambda m, o: TrajectoryRecorder(m.embedding.weight, o, 4))
    recipe = Recipe(lambda_reg=1e-4, batch_size=BATCH, node_id=True)
    result = from_training_loop(
        model, edge_index, num_users, recipe, edge_label_index=train_eli,
        negatives=last, optimizer=optimizer,
        trajectory=recorder).unlearn(edge_index=train_eli[:, :6])
    assert 'trajectory: 4 snapshots' in result.diagnostics['objective']
    # One Lanczos solve per segment.
    assert len(result.diagnostics['solver']) == 4
    assert result.certificate.step == 'trajectory'
    with pytest.raises(ValueError, match="LightGCN and MF"):
        from_training_loop(model, edge_index, num_users,
                           Recipe(loss=lambda p, n: F.softplus(n - p).sum(),
                                  lambda_reg=0.0, reduction='sum'),
                           trajectory=recorder)
    # A run whose last steps were sign-like: the front door leaves the
    # snapshots out and says so; given directly, they are refused.
    end = recorder.snapshots[-1]
    sign_like = recorder.snapshots[:-1] + [
        Snapshot(end.step, end.param, end.step_size, 0.5)]
    unlearner = from_training_loop(
        model, edge_index, num_users, recipe, edge_label_index=train_eli,
        negatives=last, optimizer=optimizer, trajectory=sign_like)
    assert unlearner.trajectory is None
    assert "trajectory: not followed, since Adam's last steps were " \
        "sign-like (0.50 > 0.2)" in unlearner.objective_note
    with pytest.raises(ValueError, match='sign-like'):
        IFRUnlearner(model, unlearner.data, unlearner.examples,
                     l2=1.0, trajectory=sign_like)


def test_the_autograd_backend_draws_from_the_recipe_s_sampler(graph):
    # A GNN's triples are averaged over negatives drawn from the sampler
    # the recipe names: never the user's items for 'unseen', any item for
    # 'all' (so some of them, on this graph).
    from _link_models import make

    from torch_geometric_unlearn.data.interactions import pair_keys
    edge_index, train_eli, num_users, num_items = graph
    model = make('sage', num_users, num_items, 4)
    known = pair_keys(torch.stack([train_eli[0], train_eli[1] - num_users]),
                      num_items)
    for sampler in ('all', 'unseen'):
        recipe = Recipe(lambda_reg=0.0, batch_size=BATCH,
                        negative_sampler=sampler)
        unlearner = from_training_loop(model, edge_index, num_users, recipe,
                                       num_items=num_items, negatives=0)
        assert isinstance(unlearner, LinkIFRUnlearner)
        assert unlearner.config.negative_sampler == sampler
        scored = unlearner.scored_examples()
        assert scored.size(0) == 2 + unlearner.config.sampled_negatives
        drawn = torch.stack([scored[0].repeat(scored.size(0) - 3),
                             scored[3:].reshape(-1)])
        hits = int(torch.isin(pair_keys(drawn, num_items), known).sum())
        assert (hits > 0) == (sampler == 'all')


@pytest.mark.parametrize('segmented', [False, True])
def test_a_restarted_item_takes_the_horizon_of_its_new_gradients(
        graph, monkeypatch, segmented):
    # Forgetting every interaction of the most popular item: its row
    # restarts from zero, and its horizon is Adam's rule at the second
    # moment its new gradients (only ever as a sampled negative) give,
    # written out here; every other row keeps the optimiser's.  With
    # snapshots, the last segment's share of it.
    edge_index, train_eli, num_users, num_items = graph
    recorder, share = None, 1.0
    if segmented:
        model, optimizer, last, recorder = pyg_loop(
            graph, 1e-4, True, epochs=5, recorder=lambda m, o:
            TrajectoryRecorder(m.embedding.weight, o, 3))
        steps = [snap.step for snap in recorder.snapshots]
        share = (steps[-1] - steps[-2]) / steps[-1]
    else:
        model, optimizer, last = pyg_loop(graph, 1e-4, True, epochs=5)
    recipe = Recipe(lambda_reg=1e-4, batch_size=BATCH, node_id=True)
    item = int(torch.bincount(train_eli[1]).argmax())
    seen = []
    solve = ifru_update.trajectory_response

    def spy(operator, rhs, horizon, *args, **kwargs):
        seen.append(horizon.clone())
        return solve(operator, rhs, horizon, *args, **kwargs)
    monkeypatch.setattr(ifru_update, 'trajectory_response', spy)
    unlearner = from_training_loop(model, edge_index, num_users, recipe,
                                   edge_label_index=train_eli,
                                   negatives=last, optimizer=optimizer,
                                   trajectory=recorder)
    result = unlearner.unlearn(items=torch.tensor([item]))
    assert result.diagnostics['reset_rows'] == 1
    assert len(seen) == (3 if segmented else 1)
    rows = result.diagnostics['rows']
    dim = model.embedding.weight.size(1)
    used = seen[-1].view(rows.numel(), dim)

    keep = train_eli[1] != item
    kept = train_eli[:, keep]
    new_graph = torch.cat([kept, kept.flip(0)], 1)
    start = copy.deepcopy(model)
    with torch.no_grad():
        start.embedding.weight[item] = 0
        final = start.get_embedding(new_graph).double()
    users, items = kept
    margin = (final[users] * (final[item] - final[items])).sum(1)
    grads = torch.sigmoid(margin).view(-1, 1) * final[users] * float(
        model.alpha[0])
    prob = 1 / num_items  # the recipe's sampler: every item
    second = (prob * grads.pow(2)).mean(0) / BATCH + (prob * grads.mean(0))**2
    state = optimizer.state[model.embedding.weight]
    group = optimizer.param_groups[0]
    expected = float(state['step']) * group['lr'] / (
        (second.sqrt() + group['eps']) * train_eli.size(1))
    reset = rows == item
    torch.testing.assert_close(used[reset][0], share * expected.to(used),
                               rtol=1e-4, atol=0)
    if segmented:
        return
    given = optimizer_horizon(optimizer, model.embedding.weight,
                              train_eli.size(1))
    torch.testing.assert_close(used[~reset], given[rows[~reset]].to(used))
    assert result.diagnostics['restart_horizon'] == pytest.approx(float(
        (expected / given[item].double()).mean()), rel=1e-4)
    assert result.diagnostics['restart_horizon'] > 1
