import pytest
import torch

from torch_geometric_unlearn.data.interactions import (hashed_negatives,
                                                       pair_keys)
from torch_geometric_unlearn.unlearn.certificate import (LARGE_STEP,
                                                         NOISY_DRAW,
                                                         OVERSHOOT_AUC,
                                                         Certificate,
                                                         draw_noise,
                                                         forgotten_auc,
                                                         neighbour_pairs,
                                                         neighbour_shift,
                                                         redrawn_negatives,
                                                         response_figures,
                                                         restarted)

OK = dict(step='trajectory', curvature='gauss_newton', horizon='optimizer',
          stationarity=10.0, solve_residual=0.005, solve_tol=0.01,
          products=7, gradient_before=80.0, gradient_after=80.1,
          step_norm=0.02, forgotten_auc_before=0.9, forgotten_auc_after=0.8)


def test_a_clean_update_raises_no_flag():
    certificate = Certificate(**OK)
    assert certificate.flags == [] and not certificate.suspect
    assert str(certificate).endswith(': ok')


@pytest.mark.parametrize('change, flag', [
    (dict(fallback='negative curvature, 6 products'), 'fallback'),
    (dict(solve_residual=0.02), 'unconverged'),
    (dict(solve_residual=float('nan')), 'unconverged'),
    (dict(step_norm=LARGE_STEP + 0.1), 'large_step'),
    (dict(forgotten_auc_after=OVERSHOOT_AUC - 0.01), 'overshoot'),
    (dict(step='newton', horizon='infinite', stationary_tol=0.1),
     'off_minimum'),
    (dict(response_alignment=-0.5, response_bound=0.5), 'reversed'),
    (dict(response_alignment=0.9, response_bound=1.01), 'response_bound'),
    (dict(draw_noise=NOISY_DRAW + 0.01), 'noisy_draw'),
    (dict(draw_noise=float('inf')), 'noisy_draw'),
])
def test_each_flag(change, flag):
    certificate = Certificate(**{**OK, **change})
    assert certificate.flags == [flag] and certificate.suspect
    assert f'SUSPECT: {flag}' in str(certificate)


def test_a_sampled_change_is_a_figure_not_a_flag():
    certificate = Certificate(**OK, change_error=0.4)
    assert certificate.flags == []
    assert 'sampled gradient change (error 0.4)' in str(certificate)


def test_a_move_mostly_its_own_is_not_flagged():
    certificate = Certificate(**OK, draw_noise=NOISY_DRAW - 0.01)
    assert certificate.flags == []
    assert f'{NOISY_DRAW - 0.01:.2f} of their move owed to the draw' in str(
        certificate)
    # Nor a noisy move no longer than dropping the edges makes.
    assert Certificate(**OK, draw_noise=2 * NOISY_DRAW,
                       neighbour_shift=0.9).flags == []
    assert Certificate(**OK, draw_noise=2 * NOISY_DRAW,
                       neighbour_shift=1.1).flags == ['noisy_draw']


def test_each_flag_comes_with_advice():
    certificate = Certificate(**{**OK, 'solve_residual': 0.02,
                                 'draw_noise': 1.0})
    assert certificate.flags == ['unconverged', 'noisy_draw']
    assert [a.split(':')[0] for a in certificate.advice] == certificate.flags
    assert "expected_negatives='all'" in certificate.advice[1]
    assert certificate.advice[1] in str(certificate)
    assert Certificate(**OK).advice == []


def test_draw_noise_against_a_direct_computation():
    before = torch.tensor([1.0, 2.0, 0.0])
    after = torch.tensor([4.0, 6.0, 0.0])  # moved by 5
    redrawn = torch.tensor([4.0, 6.0, 1.0])  # 1 apart
    assert draw_noise(before, after, redrawn) == pytest.approx(
        1 / (5 * 2 ** 0.5))
    assert draw_noise(before, after, after) == 0.0
    assert draw_noise(before, before, redrawn) == 0.0
    assert draw_noise(before, after, None) == float('inf')


def test_redrawn_negatives_are_new_draws_from_the_sampler():
    gen = torch.Generator().manual_seed(0)
    num_users, num_items = 50, 40
    train = torch.stack([torch.randint(num_users, (600,), generator=gen),
                         torch.randint(num_items, (600,), generator=gen)])
    train = torch.unique(train, dim=1)
    known = pair_keys(train, num_items).sort()[0]
    out = redrawn_negatives(train, 3, num_items, known)
    assert out.shape == (5, train.size(1))
    assert torch.equal(out[:2], train)
    for row in out[2:]:
        assert not torch.isin(pair_keys(torch.stack([train[0], row]),
                                        num_items), known).any()
    # Not the draws an update takes (salts 1, 2, ...), nor one another.
    for k in range(2, 5):
        for salt in (1, 2, 3):
            same = out[k] == hashed_negatives(train, num_items, known, salt)
            assert same.float().mean() < 0.2
    assert (out[2] == out[3]).float().mean() < 0.2
    assert not torch.isin(pair_keys(torch.stack([
        train[0], redrawn_negatives(train, 1, num_items, None)[2]]),
        num_items), known).all()


def test_restarted_rows_are_not_tested_for_overshoot():
    pairs = torch.tensor([[0, 1, 2], [5, 5, 3]])  # 4 users: item 5 is 9
    assert restarted(pairs, torch.tensor([9, 2]), 4)
    assert not restarted(pairs, torch.tensor([9]), 4)
    assert not restarted(pairs, torch.tensor([5]), 4)  # user 5, not item
    certificate = Certificate(**{**OK, 'forgotten_auc_after': 0.01},
                              restarted=True)
    assert certificate.flags == []


def test_a_newton_step_at_a_minimum_is_not_flagged():
    certificate = Certificate(**{**OK, 'step': 'newton', 'stationarity':
                                 0.05, 'stationary_tol': 0.1})
    assert certificate.flags == []


def test_forgotten_auc_against_brute_force():
    gen = torch.Generator().manual_seed(0)
    final = torch.randn(7, 3, generator=gen)  # 3 users, 4 items
    forgotten = torch.tensor([[0, 1, 2], [1, 3, 0]])
    unseen = torch.tensor([[0, 1, 2, 2], [2, 0, 3, 1]])

    def score(pairs):
        return [float(final[u] @ final[3 + i]) for u, i in pairs.t().tolist()]

    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0
               for a in score(forgotten) for b in score(unseen))
    assert forgotten_auc(final, forgotten, unseen, 3) == pytest.approx(
        wins / 12)
    assert forgotten_auc(final, forgotten[:, :0], unseen, 3) is None


def test_neighbour_pairs_and_their_shift():
    train = torch.tensor([[0, 0, 1, 2, 3, 3], [5, 6, 5, 7, 8, 9]])
    request = torch.tensor([[0], [7]])
    # User 0's other pairs, and item 7's.
    assert neighbour_pairs(train, request).tolist() == [[0, 0, 2],
                                                        [5, 6, 7]]
    assert neighbour_pairs(train, request, limit=2).size(1) == 2
    before = torch.tensor([1.0, 2.0, 3.0])
    dropped = before + torch.tensor([0.0, 3.0, 4.0])  # moved by 5
    after = before + torch.tensor([6.0, 8.0, 0.0])  # moved by 10
    assert neighbour_shift(before, dropped, after) == pytest.approx(2.0)
    assert neighbour_shift(before, before, after) is None


def test_response_figures_against_the_dense_response():
    # The response of gradient descent over a per-coordinate horizon tau on
    # a random PSD quadratic, by eigendecomposition; its figures are within
    # the bounds whatever the curvature; a reversed step is flagged.
    gen = torch.Generator().manual_seed(0)
    for rank in (2, 12):
        root = torch.randn(12, rank, dtype=torch.float64, generator=gen)
        a = root @ root.t()
        tau = torch.rand(12, dtype=torch.float64, generator=gen) * 3 + 0.1
        g = torch.randn(12, dtype=torch.float64, generator=gen)
        half = tau.sqrt()
        lam, vec = torch.linalg.eigh(half[:, None] * a * half[None, :])
        phi = torch.where(lam.abs() > 1e-12, -torch.expm1(-lam) / lam,
                          torch.ones_like(lam))
        x = half * (vec @ (phi * (vec.t() @ (half * g))))
        figures = response_figures(g, x, tau)
        assert 0 < figures['response_alignment'] <= 1
        assert figures['response_bound'] <= 1 + 1e-12
        u = half * g
        assert figures['response_bound'] == pytest.approx(max(
            float((x / half).pow(2).sum() / (g @ x)),
            float((g @ x) / (u @ u))))
        assert response_figures(g, -x, tau)['response_alignment'] < 0
        # A step s times too long reads s times the bound: flagged once s
        # passes 1 / bound (at most 1.4 on the package's updates measured).
        assert response_figures(g, 3 * x, tau)['response_bound'] == \
            pytest.approx(3 * figures['response_bound'])
