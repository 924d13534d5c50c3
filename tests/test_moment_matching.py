"""MomentMatchingSelector (SkMM): the capped simplex, the moment-matching program, the selector."""

import itertools
import warnings

import array_api_compat.numpy as xp_numpy
import array_api_strict
import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

import sketchsel
from sketchsel import FastMaxVol, MomentMatchingSelector
from sketchsel.linalg import capped_simplex_projection, random_projection
from sketchsel.linalg._simplex import capped_simplex_minimum
from sketchsel.selection._moment_qp import best_gamma, moment_terms, solve_moment_matching

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)


def vectors(max_size=40):
    return st.integers(1, max_size).flatmap(lambda n: arrays(np.float64, n, elements=finite))


def feasible_points(rng, n, cap, count):
    """Random points of the capped simplex: projections of random vectors."""
    return [capped_simplex_projection(rng.standard_normal(n) * 3, cap) for _ in range(count)]


# ------------------------------------------------------------------ capped simplex


@given(vectors(), st.data())
def test_projection_is_the_closest_feasible_point(v, data):
    n = v.size
    k = data.draw(st.integers(1, n))
    cap = 1.0 / k
    s = capped_simplex_projection(v, cap)
    assert s.shape == v.shape and s.dtype == np.float64
    assert np.all(s >= 0) and np.all(s <= cap * (1 + 1e-12))
    assert s.sum() == pytest.approx(1.0, abs=1e-9)
    # Optimality (variational inequality): <v - s, t - s> <= 0 for every feasible t;
    # the vertices of the set, k entries at 1/k, are enough to check when n is small.
    scale = 1 + np.abs(v).max()
    if n <= 8:
        for rows in itertools.combinations(range(n), k):
            t = np.zeros(n)
            t[list(rows)] = cap
            assert np.dot(v - s, t - s) <= 1e-9 * scale
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    for t in feasible_points(rng, n, cap, 5):
        assert np.dot(v - s, t - s) <= 1e-9 * scale
    assert_allclose(capped_simplex_projection(s, cap), s, atol=1e-12)


@given(st.integers(0, 2**32 - 1), st.integers(2, 12))
def test_projection_matches_a_general_solver(seed, n):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n)
    cap = 1.0 / rng.integers(1, n + 1)
    result = scipy.optimize.minimize(
        lambda s: np.sum((s - v) ** 2), np.full(n, 1.0 / n), jac=lambda s: 2 * (s - v),
        bounds=[(0, cap)] * n, constraints=[{"type": "eq", "fun": lambda s: s.sum() - 1}],
        method="SLSQP", options={"ftol": 1e-14, "maxiter": 500},
    )
    assert_allclose(capped_simplex_projection(v, cap), result.x, atol=1e-6)


@given(vectors(max_size=9), st.data())
def test_linear_minimum_is_the_best_vertex(g, data):
    k = data.draw(st.integers(1, g.size))
    best = min(g[list(rows)].sum() / k for rows in itertools.combinations(range(g.size), k))
    assert capped_simplex_minimum(xp_numpy, g, k) == pytest.approx(best, abs=1e-9)


@pytest.mark.parametrize("convert", [torch.from_numpy, array_api_strict.asarray])
def test_projection_stays_in_the_namespace(convert):
    v = np.random.default_rng(0).standard_normal(50)
    s = capped_simplex_projection(convert(v), 0.1)
    assert type(s) is type(convert(v))
    assert_allclose(np.asarray(s), capped_simplex_projection(v, 0.1), atol=1e-12)


def test_projection_refuses_what_it_cannot_project():
    with pytest.raises(ValueError, match="cap=0.1 is too small for 5 entries"):
        capped_simplex_projection(np.zeros(5), 0.1)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        capped_simplex_projection(np.zeros((2, 2)), 1.0)
    with pytest.raises(ValueError, match="NaN or infinity"):
        capped_simplex_projection(np.array([0.0, np.nan]), 1.0)
    with pytest.raises(InvalidParameterError, match="cap"):
        capped_simplex_projection(np.zeros(3), 0)


# ------------------------------------------------------------------ the program


def problem(seed, n_rows=30, dim=4, n_select=5, coef=0.8):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n_rows, dim)) * rng.uniform(0.2, 2.0, dim)
    G[: n_rows // 3] *= rng.uniform(0.1, 3.0)  # uneven row energies
    eigenvalues, A = moment_terms(xp_numpy, G)
    return G, eigenvalues, A, eigenvalues / coef, n_select


def reduced_objective(A, target, s):
    return np.sum(np.clip(target - A.T @ s, 0, None) ** 2)


def joint_objective(A, eigenvalues, s, gamma):
    """The program as the paper writes it, in s and gamma."""
    return np.sum((A.T @ s - gamma * eigenvalues) ** 2)


def uniform(n):
    return np.full(n, 1.0 / n)


def test_moment_terms_are_the_eigen_decomposition():
    G, eigenvalues, A, _, _ = problem(0)
    expected = np.linalg.eigvalsh(G.T @ G / G.shape[0])[::-1]
    assert_allclose(eigenvalues, expected, rtol=1e-10)
    # Uniform shares reproduce the eigenvalues: sum_i (g_i . v_j)^2 / N = lambda_j.
    assert_allclose(A.T @ uniform(G.shape[0]), eigenvalues, rtol=1e-10)


@given(st.integers(0, 2**32 - 1), st.sampled_from([0.5, 0.8, 1.0]), st.integers(1, 12))
def test_objective_never_increases_and_the_gap_is_certified(seed, coef, n_select):
    _, _, A, target, _ = problem(seed, coef=coef)
    solution = solve_moment_matching(
        xp_numpy, A, target, n_select, uniform(A.shape[0]), tol=1e-6, max_iter=20_000
    )
    history = solution.objective_history
    assert history.size == solution.n_iter + 1
    assert np.all(np.diff(history) <= 0)
    s = solution.shares
    assert np.all(s >= 0) and np.all(s <= 1 / n_select + 1e-12)
    assert s.sum() == pytest.approx(1.0)
    assert solution.objective == pytest.approx(reduced_objective(A, target, s), abs=1e-14)
    assert_allclose(solution.moments, A.T @ s, rtol=1e-12, atol=1e-15)
    assert solution.converged
    assert solution.duality_gap <= 1e-6 * np.sum(target**2)


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.3, 0.6, 0.9]))
def test_solution_is_optimal_against_scipy_on_the_paper_form(seed, coef):
    # A general solver on the program in (s, gamma) as the paper writes it:
    # no elimination of gamma, no projection, no restarts in common.
    _, eigenvalues, A, target, n_select = problem(seed, n_rows=10, dim=3, n_select=3, coef=coef)
    n, m = A.shape
    result = scipy.optimize.minimize(
        lambda x: joint_objective(A, eigenvalues, x[:n], x[n:]),
        np.concatenate([uniform(n), np.full(m, 1 / coef)]),
        bounds=[(0, 1 / n_select)] * n + [(1 / coef, None)] * m,
        constraints=[{"type": "eq", "fun": lambda x: x[:n].sum() - 1}],
        method="SLSQP", options={"ftol": 1e-15, "maxiter": 1000},
    )
    # Some 10-row programs need about 50,000 iterations to reach this tol (seed 357, c = 0.6).
    ours = solve_moment_matching(xp_numpy, A, target, n_select, uniform(n), tol=1e-9,
                                 max_iter=60_000)
    scale = np.sum(target**2)
    gamma = best_gamma(xp_numpy, A.T @ ours.shares, eigenvalues, 1 / coef)
    assert np.all(gamma >= 1 / coef)
    assert joint_objective(A, eigenvalues, ours.shares, gamma) == pytest.approx(
        ours.objective, abs=1e-12 * scale
    )
    # SLSQP may end slightly outside the set: its point is made feasible first.
    theirs = capped_simplex_projection(result.x[:n], 1 / n_select)
    value = joint_objective(A, eigenvalues, theirs, np.maximum(result.x[n:], 1 / coef))
    assert reduced_objective(A, target, theirs) <= value + 1e-12 * scale
    assert ours.objective <= value + 1e-8 * scale
    # The gap bounds the distance to the best value any feasible point reaches.
    assert reduced_objective(A, target, theirs) >= ours.objective - ours.duality_gap - 1e-12 * scale


def test_kkt_conditions_hold_at_the_solution():
    _, _, A, target, n_select = problem(3, n_rows=200, dim=6, n_select=4, coef=0.3)
    solution = solve_moment_matching(xp_numpy, A, target, n_select, uniform(200), tol=1e-12,
                                     max_iter=50_000)
    s = solution.shares
    assert solution.objective > 0  # the coverage asked for is out of reach: a real optimum
    gradient = -2 * A @ np.clip(target - A.T @ s, 0, None)
    cap = 1 / n_select
    free = (s > 1e-9) & (s < cap - 1e-9)
    # One multiplier mu: gradient = mu on free rows, >= mu at zero, <= mu at the cap.
    # Without free rows, any mu between the two groups does.
    tolerance = 1e-5 * np.abs(gradient).max()
    at_zero, at_cap = gradient[s <= 1e-9], gradient[s >= cap - 1e-9]
    mu = np.median(gradient[free]) if free.any() else at_cap.max()
    assert np.all(np.abs(gradient[free] - mu) <= tolerance)
    assert np.all(at_zero >= mu - tolerance)
    assert np.all(at_cap <= mu + tolerance)
    assert free.any() or at_zero.min() >= at_cap.max() - tolerance


def test_best_gamma_minimises_the_paper_objective():
    _, eigenvalues, A, _, _ = problem(4)
    rng = np.random.default_rng(4)
    s = capped_simplex_projection(rng.standard_normal(A.shape[0]), 0.2)
    gamma = best_gamma(xp_numpy, A.T @ s, eigenvalues, 1 / 0.8)
    best = joint_objective(A, eigenvalues, s, gamma)
    for _ in range(200):
        other = 1 / 0.8 + rng.exponential(0.5, gamma.size) * rng.integers(0, 2, gamma.size)
        assert joint_objective(A, eigenvalues, s, other) >= best - 1e-15


# ------------------------------------------------------------------ the selector


def gradients(seed=0, n=600, d=120, dtype=np.float64):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, d)) * 0.9 ** np.arange(d)
    G[: n // 10] *= 4.0
    return G.astype(dtype)


def test_fitted_attributes_describe_the_solution():
    G = gradients()
    selector = MomentMatchingSelector(n_select=60, sketch_size=16, strategy="moments",
                                      random_state=0).fit(G)
    chosen = selector.select()
    assert chosen.dtype == np.int64 and chosen.size == 60 and np.all(np.diff(chosen) > 0)
    assert np.all((selector.scores_ >= 0) & (selector.scores_ <= 1 + 1e-12))
    assert selector.scores_.sum() == pytest.approx(60)
    assert selector.eigenvalues_.shape == selector.gamma_.shape == (16,)
    assert np.all(np.diff(selector.eigenvalues_) <= 0)
    assert selector.objective_ == selector.objective_history_[-1]
    assert selector.objective_history_.size == selector.n_iter_ + 1
    assert selector.n_features_in_ == 120
    # Rows without a share are never drawn.
    assert np.all(selector.scores_[chosen] > 0)


@pytest.mark.parametrize("strategy", ["thinning", "moments"])
def test_stage_one_is_the_seeded_projection(strategy):
    G = gradients(1)
    selector = MomentMatchingSelector(n_select=40, sketch_size=24, projection="rademacher",
                                      strategy=strategy, hard_cutoff=0.0, random_state=5).fit(G)
    sketch = random_projection(G, 24, kind="rademacher", random_state=5)
    on_sketch = MomentMatchingSelector(n_select=40, sketch_size=24, strategy=strategy,
                                       hard_cutoff=0.0, random_state=5).fit(sketch)
    assert_array_equal(selector.select(), on_sketch.select())
    if strategy == "thinning":  # the program's attributes are the program's alone
        assert not hasattr(selector, "scores_") and not hasattr(selector, "eigenvalues_")
        return
    assert_allclose(selector.scores_, on_sketch.scores_, atol=1e-10)
    assert_allclose(
        selector.eigenvalues_, np.linalg.eigvalsh(sketch.T @ sketch / 600)[::-1], rtol=1e-9
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"strategy": "moments", "rounding": "sample"}, {"strategy": "moments", "rounding": "top"}],
    ids=["thinning", "moments-sample", "moments-top"],
)
def test_same_random_state_same_selection_input_untouched(params):
    G = gradients(2)
    copy = G.copy()
    fit = lambda state: MomentMatchingSelector(  # noqa: E731
        n_select=0.1, sketch_size=20, random_state=state, **params
    ).fit(G)
    first, second = fit(3), fit(3)
    assert_array_equal(first.select(), second.select())
    assert_array_equal(G, copy)
    if not params:  # thinning: another projection and another order, another choice
        assert not np.array_equal(fit(4).select(), first.select())
        return
    assert_array_equal(first.scores_, second.scores_)
    assert not np.array_equal(fit(4).scores_, first.scores_)  # another projection


def test_top_rounding_keeps_the_largest_shares():
    G = gradients(3)
    selector = MomentMatchingSelector(n_select=30, sketch_size=10, strategy="moments",
                                      rounding="top", moment_coef=0.3, random_state=0).fit(G)
    chosen = selector.select()
    others = np.setdiff1d(np.arange(600), chosen)
    assert selector.scores_[chosen].min() >= selector.scores_[others].max()


def test_sampling_follows_the_shares():
    shares = np.array([0.5, 0.25, 0.125, 0.125, 0.0])
    counts = np.zeros(5)
    draws = 20_000
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        picked = MomentMatchingSelector(rounding="sample")._round(shares, 1, rng)
        counts[picked] += 1
    assert counts[4] == 0
    # Chi-square against the shares, 3 degrees of freedom: 16.3 is the 0.1% quantile.
    expected = draws * shares[:4]
    assert np.sum((counts[:4] - expected) ** 2 / expected) < 16.3
    # Without replacement: two draws never repeat a row, and a zero share is never drawn.
    for seed in range(200):
        rng = np.random.default_rng(seed)
        picked = MomentMatchingSelector(rounding="sample")._round(shares, 4, rng)
        assert sorted(picked.tolist()) == [0, 1, 2, 3]


def test_relative_scale_covers_a_weak_direction_that_absolute_ignores():
    # 950 rows along e1 with norm 10, 50 along e2 with norm 1. Whitened, an e2 row
    # carries 20 units of its direction's moment and an e1 row about 1.05 of its own;
    # with c = 0.5 both directions ask for 2 units. The optimum of
    # (2 - 1.0526 (1 - p))^2 + (2 - 20 p)^2 puts p = 0.0973 of the shares on e2, about
    # 1.95 rows of n = 20; the absolute program, where e1 weighs 10^4 times more,
    # puts none there.
    X = np.zeros((1000, 2))
    X[:950, 0] = 10.0
    X[950:, 1] = 1.0
    common = dict(n_select=20, strategy="moments", moment_coef=0.5, hard_cutoff=0.0, tol=1e-6,
                  max_iter=20_000)
    relative = MomentMatchingSelector(**common).fit(X)
    absolute = MomentMatchingSelector(moment_scale="absolute", **common).fit(X)
    units = 1 / (950 * 100 / 1000)
    best = 39.0 / 401.1
    p = scipy.optimize.minimize_scalar(
        lambda p: (2 - 100 * units * (1 - p)) ** 2 + (2 - 20 * p) ** 2, bounds=(0, 1)
    ).x
    assert p == pytest.approx(best, rel=1e-2)
    assert relative.scores_[950:].sum() == pytest.approx(20 * p, rel=1e-4)
    assert absolute.scores_[950:].sum() < 1e-6
    assert np.all(relative.gamma_ >= 2.0) and np.all(absolute.gamma_ >= 2.0)
    # The relative objective is the paper's with each residual divided by lambda_j.
    assert relative.objective_ == pytest.approx(
        (2 - 100 * units * (1 - p)) ** 2 + (2 - 20 * p) ** 2, rel=1e-6
    )


def test_more_coverage_asked_means_more_weight_on_high_energy_rows():
    G = gradients(4)
    loose = MomentMatchingSelector(n_select=60, sketch_size=16, strategy="moments",
                                   moment_coef=1.0, random_state=0).fit(G)
    tight = MomentMatchingSelector(n_select=60, sketch_size=16, strategy="moments",
                                   moment_coef=0.5, random_state=0).fit(G)
    energetic = slice(0, 60)  # the rows scaled up by 4
    assert tight.scores_[energetic].sum() > loose.scores_[energetic].sum()
    assert np.all(loose.gamma_ >= 1.0) and np.all(tight.gamma_ >= 2.0)


@pytest.mark.parametrize("strategy", ["thinning", "moments"])
def test_a_source_of_batches_selects_what_the_array_does(strategy):
    G = gradients(5, n=900, d=150)
    y = np.random.default_rng(5).integers(0, 3, 900)

    def source():
        return ((G[i : i + 128], y[i : i + 128]) for i in range(0, 900, 128))

    for params in [{}, {"class_balance": "equal"}, {"projection": "countsketch"}]:
        kwargs = dict(n_select=0.1, sketch_size=24, strategy=strategy, random_state=1, **params)
        in_memory = MomentMatchingSelector(**kwargs).fit(G, y)
        streamed = MomentMatchingSelector(**kwargs).fit(source)
        assert_array_equal(streamed.select(), in_memory.select())
        assert streamed.n_features_in_ == 150
    with pytest.raises(ValueError, match="batch has 149 features but the first had 150"):
        MomentMatchingSelector(sketch_size=24).fit(lambda: iter([G[:100], G[100:, :-1]]))
    with pytest.raises(ValueError, match="no rows"):
        MomentMatchingSelector().fit(lambda: iter([]))


@pytest.mark.parametrize("strategy", ["thinning", "moments"])
def test_batches_projected_by_hand_select_what_fit_does(strategy):
    G = gradients(11, n=500, d=90).astype(np.float32)
    selector = MomentMatchingSelector(n_select=0.1, sketch_size=16, strategy=strategy,
                                      random_state=2)
    sketch = np.vstack([selector.project(batch) for batch in np.array_split(G, 7)])
    assert sketch.dtype == np.float32 and sketch.shape == (500, 16)
    assert_allclose(sketch, random_projection(G, 16, random_state=2), rtol=1e-5, atol=1e-5)
    assert_array_equal(selector.fit(sketch).select(), selector.fit(G).select())
    with pytest.raises(ValueError, match="project needs an int random_state"):
        MomentMatchingSelector(sketch_size=16).project(G)


@pytest.mark.parametrize("mode", ["equal", "proportional"])
def test_class_balance_solves_one_program_per_class(mode):
    G = gradients(6, n=500, d=40)
    y = np.repeat([0, 1, 2], [300, 150, 50])
    selector = MomentMatchingSelector(n_select=60, sketch_size=12, strategy="moments",
                                      class_balance=mode, hard_cutoff=0.0,
                                      random_state=0).fit(G, y)
    counts = np.bincount(y[selector.select()], minlength=3)
    assert counts.tolist() == selector.class_quotas_.tolist()
    assert len(selector.eigenvalues_) == 3
    # One score per row, in the order of X: each class's relaxed selection at its rows.
    assert selector.scores_.shape == (500,)
    chosen = selector.get_support()
    for label, quota in enumerate(selector.class_quotas_):
        ours = y == label
        assert selector.scores_[ours].sum() == pytest.approx(quota, rel=1e-9)
        assert selector.scores_[ours & chosen].min() >= selector.scores_[ours & ~chosen].max()
    sketch = random_projection(G, 12, random_state=0)
    for label in range(3):
        part = sketch[y == label]
        expected = np.linalg.eigvalsh(part.T @ part / part.shape[0])[::-1]
        assert_allclose(selector.eigenvalues_[label], expected, rtol=1e-9, atol=1e-12)


def low_rank(seed, n=300, d=20, rank=12):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))
    G[: n // 10] *= 5.0  # long rows, which the program's shares favour
    return G


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
def test_below_the_sketch_rank_maxvol_chooses_and_the_program_scores_its_rows():
    G, n_select, coef = low_rank(12), 8, 0.3
    copy = G.copy()
    selector = MomentMatchingSelector(n_select=n_select, strategy="moments", moment_coef=coef,
                                      hard_cutoff=0.0).fit(G)
    chosen = selector.select()
    assert selector.fallback_used_ and selector.n_iter_ == 0
    assert_array_equal(chosen, FastMaxVol(n_select=n_select, strategy="maxvol",
                                          hard_cutoff=0.0).fit(G).select())
    assert np.linalg.matrix_rank(G[chosen]) == n_select
    assert_array_equal(selector.scores_, np.isin(np.arange(300), chosen).astype(float))
    assert_array_equal(G, copy)
    # The attributes describe uniform shares on the chosen rows: exact SVD as the oracle.
    _, singular, Vt = np.linalg.svd(G, full_matrices=False)
    eigenvalues = singular**2 / 300
    kept = eigenvalues > 1e-10 * eigenvalues[0]
    assert kept.sum() == 12
    moments = np.mean((G[chosen] @ Vt[kept].T) ** 2, axis=0) / eigenvalues[kept]
    assert selector.objective_ == pytest.approx(np.sum(np.clip(1 / coef - moments, 0, None) ** 2))
    assert_allclose(selector.gamma_[kept], np.maximum(1 / coef, moments), rtol=1e-8)
    assert_allclose(selector.gamma_[~kept], 1 / coef)
    assert_allclose(selector.eigenvalues_, eigenvalues, atol=1e-9)


def test_at_the_sketch_rank_or_without_fallback_the_program_chooses():
    G = low_rank(13)
    program = dict(strategy="moments", hard_cutoff=0.0)
    at_rank = MomentMatchingSelector(n_select=12, **program).fit(G)
    assert not at_rank.fallback_used_ and at_rank.n_iter_ > 0
    assert_array_equal(at_rank.select(), MomentMatchingSelector(n_select=12, fallback=None,
                                                                **program).fit(G).select())
    below = MomentMatchingSelector(n_select=8, fallback=None, **program).fit(G)
    assert not below.fallback_used_ and below.n_iter_ > 0
    # Without the fallback, the rows with the largest shares: here the long rows.
    chosen = below.select()
    others = np.setdiff1d(np.arange(300), chosen)
    assert below.scores_[chosen].min() >= below.scores_[others].max()
    assert np.all(chosen < 30)


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")
def test_the_fallback_is_decided_per_class_and_streamed_as_in_memory():
    G = np.vstack([low_rank(14, n=200, rank=12), low_rank(15, n=100, rank=4)])
    y = np.repeat([0, 1], [200, 100])
    selector = MomentMatchingSelector(n_select=15, strategy="moments").fit(G, y)  # balance "auto"
    # Quotas 10 and 5: below the first class's rank of 12, above the second's of 4.
    assert selector.class_quotas_.tolist() == [10, 5]
    assert selector.fallback_used_ == [True, False]

    def source():
        return ((G[i : i + 64], y[i : i + 64]) for i in range(0, 300, 64))

    # Sketched to 16 columns: rank 16 in all, 12 and 4 per class.
    for params, used in [({"class_balance": None}, True), ({}, [True, False])]:
        kwargs = dict(n_select=15, sketch_size=16, strategy="moments", random_state=0, **params)
        in_memory = MomentMatchingSelector(**kwargs).fit(G, y)
        assert in_memory.fallback_used_ == used
        assert_array_equal(MomentMatchingSelector(**kwargs).fit(source).select(),
                           in_memory.select())


def test_the_fallback_takes_the_rows_as_given_from_a_fifth_of_them():
    G = low_rank(17, n=200, d=80, rank=60)  # the first 20 rows are long
    for n_select, row_norms in ((30, "median"), (50, None)):
        selector = MomentMatchingSelector(n_select=n_select, strategy="moments",
                                          hard_cutoff=0.0).fit(G)
        assert selector.fallback_used_
        expected = FastMaxVol(n_select, strategy="maxvol", row_norms=row_norms,
                              hard_cutoff=0.0).fit(G).select()
        assert_array_equal(selector.select(), expected)


def test_the_fallback_chooses_alike_in_float32_and_other_namespaces():
    G = low_rank(16)
    expected = MomentMatchingSelector(n_select=8, strategy="moments").fit(G)
    assert expected.fallback_used_
    single = MomentMatchingSelector(n_select=8, strategy="moments").fit(G.astype(np.float32))
    assert single.fallback_used_
    assert_array_equal(single.select(), expected.select())
    for convert in (torch.from_numpy, array_api_strict.asarray):
        with sketchsel.config_context(backend="array_api"):
            got = MomentMatchingSelector(n_select=8, strategy="moments").fit(convert(G))
        assert got.fallback_used_
        assert_array_equal(got.select(), expected.select())
        assert got.objective_ == pytest.approx(expected.objective_, rel=1e-10)


@pytest.mark.parametrize(
    "params", [{"random_state": 0}, {"strategy": "moments", "rounding": "top"}],
    ids=["thinning", "moments"],
)
def test_float32_and_other_namespaces_agree(params):
    G = gradients(7, d=30)
    make = lambda: MomentMatchingSelector(n_select=50, sketch_size=64, **params)  # noqa: E731
    expected = make().fit(G)
    single = make().fit(G.astype(np.float32))
    program = "strategy" in params
    if program:
        assert_allclose(single.scores_, expected.scores_, atol=1e-4)
    else:  # the same walk on the float32 sketch
        assert_array_equal(single.select(), expected.select())
    for convert in (torch.from_numpy, array_api_strict.asarray):
        with sketchsel.config_context(backend="array_api"):
            got = make().fit(convert(G))
        if program:
            assert_allclose(got.scores_, expected.scores_, atol=1e-8)
        assert_array_equal(got.select(), expected.select())


def test_too_few_iterations_warn():
    G = gradients(8)
    with pytest.warns(ConvergenceWarning, match="max_iter=1 iterations"):
        MomentMatchingSelector(n_select=30, sketch_size=16, strategy="moments",
                               max_iter=1).fit(G)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        MomentMatchingSelector(n_select=30, sketch_size=16, strategy="moments").fit(G)
        # Thinning runs no program: max_iter does not apply and nothing warns.
        MomentMatchingSelector(n_select=30, sketch_size=16, max_iter=1, random_state=0).fit(G)


def longest(G, count):
    """Positions of the count longest rows of G (ties to the higher index, as stable sorting)."""
    return np.argsort(np.linalg.norm(G, axis=1), kind="stable")[G.shape[0] - count:]


@pytest.mark.parametrize("strategy", ["thinning", "moments"])
@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(20, 80), st.floats(0, 0.95), st.data())
def test_hard_cutoff_leaves_out_the_longest_rows_and_matches_the_rest(strategy, seed, n,
                                                                      fraction, data):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, 6))
    # Lengths at least 1.7% apart: no two rows tie for the cut.
    G *= (rng.permutation(np.geomspace(1, 8, n)) / np.linalg.norm(G, axis=1))[:, None]
    n_select = data.draw(st.integers(1, n))
    copy = G.copy()
    params = dict(n_select=n_select, strategy=strategy, random_state=0)
    selector = MomentMatchingSelector(hard_cutoff=fraction, **params).fit(G)
    n_dropped = min(int(fraction * n), n - n_select)
    assert selector.n_hard_cut_ == n_dropped
    dropped = longest(G, n_dropped)
    kept = np.setdiff1d(np.arange(n), dropped)
    # Brute force: the selection is the one without a cutoff on the rows kept, mapped back.
    reference = MomentMatchingSelector(hard_cutoff=0.0, **params).fit(G[kept])
    assert_array_equal(selector.select(), kept[reference.select()])
    assert_array_equal(G, copy)
    if strategy == "moments":
        assert_allclose(selector.scores_[kept], reference.scores_)
        assert np.all(selector.scores_[dropped] == 0)


@pytest.mark.parametrize("strategy", ["thinning", "moments"])
def test_hard_cutoff_leaves_rows_of_one_length_alone(strategy):
    G = np.repeat(np.eye(6), 50, axis=0)  # 300 rows of length 1, by class
    y = np.repeat(np.arange(6), 50)
    params = dict(n_select=30, strategy=strategy, random_state=0)
    selector = MomentMatchingSelector(**params).fit(G, y)
    assert selector.n_hard_cut_ == [0] * 6
    assert_array_equal(selector.select(),
                       MomentMatchingSelector(**params, hard_cutoff=0.0).fit(G, y).select())
    # Float32 rounding of the lengths is no difference either.
    units = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
    units /= np.linalg.norm(units, axis=1, keepdims=True)
    assert MomentMatchingSelector(**params).fit(units, y).n_hard_cut_ == [0] * 6


@pytest.mark.parametrize("strategy", ["moments"])  # thinning cuts none (test_policy)
def test_hard_cutoff_auto_leaves_out_a_tenth_of_a_class_below_a_fifth_of_its_rows(strategy):
    G = gradients(17, n=300, d=30)
    y = np.zeros(300, dtype=int)  # one class: its quota is the budget
    for n_select, fraction in [(59, 0.1), (60, 0.0), (150, 0.0)]:
        auto = MomentMatchingSelector(n_select=n_select, sketch_size=16, strategy=strategy,
                                      random_state=0)
        fixed = MomentMatchingSelector(n_select=n_select, sketch_size=16, strategy=strategy,
                                       hard_cutoff=fraction, random_state=0)
        auto.fit(G, y)
        assert auto.n_hard_cut_ == [int(fraction * 300)]
        assert_array_equal(auto.select(), fixed.fit(G, y).select())
    # Below a fifth, the tenth of the rows longest in the sketch is never chosen.
    chosen = MomentMatchingSelector(n_select=30, sketch_size=16, strategy=strategy,
                                    random_state=0).fit(G, y).select()
    sketch = random_projection(G, 16, random_state=0)
    assert chosen.size == 30 and not np.isin(longest(sketch, 30), chosen).any()
    # Without class labels, or selecting across classes, "auto" leaves nothing out.
    for selector in (MomentMatchingSelector(n_select=30, sketch_size=16,
                                            strategy=strategy).fit(G),
                     MomentMatchingSelector(n_select=30, sketch_size=16, strategy=strategy,
                                            class_balance=None).fit(G, y)):
        assert selector.n_hard_cut_ == 0


@pytest.mark.parametrize("strategy", ["thinning", "moments"])
def test_hard_cutoff_is_decided_per_class_and_streamed_as_in_memory(strategy):
    G = gradients(18, n=300, d=12)
    y = np.repeat([0, 1], [200, 100])
    selector = MomentMatchingSelector(n_select=30, strategy=strategy, random_state=0).fit(G, y)
    assert selector.class_quotas_.tolist() == [20, 10]
    chosen = selector.select()
    if strategy == "thinning":  # it caps the long rows instead
        assert selector.n_hard_cut_ == [0, 0]
    else:
        assert selector.n_hard_cut_ == [20, 10]
        for rows in (np.arange(200), np.arange(200, 300)):
            assert not np.isin(rows[longest(G[rows], rows.size // 10)], chosen).any()

    def source():
        return ((G[i : i + 64], y[i : i + 64]) for i in range(0, 300, 64))

    assert_array_equal(MomentMatchingSelector(n_select=30, strategy=strategy,
                                              random_state=0).fit(source).select(), chosen)


@pytest.mark.parametrize("strategy", ["thinning", "moments"])
def test_every_row_asked_for_is_every_row(strategy):
    G = gradients(9, n=40, d=10)
    selector = MomentMatchingSelector(n_select=40, sketch_size=4, strategy=strategy).fit(G)
    assert_array_equal(selector.select(), np.arange(40))
    if strategy == "moments":
        assert_allclose(selector.scores_, 1.0)


@pytest.mark.parametrize(
    "params, match",
    [({"moment_coef": 0}, "moment_coef"), ({"moment_coef": 1.5}, "moment_coef"),
     ({"rounding": "round"}, "rounding"), ({"projection": "fd"}, "projection"),
     ({"strategy": "maxvol"}, "strategy"),
     ({"fallback": "top"}, "fallback"), ({"hard_cutoff": 1.0}, "hard_cutoff"),
     ({"hard_cutoff": -0.1}, "hard_cutoff"), ({"hard_cutoff": "hard"}, "hard_cutoff"),
     ({"sketch_size": 0}, "sketch_size"), ({"tol": -1.0}, "tol"), ({"max_iter": -1}, "max_iter")],
)
def test_invalid_parameters_name_the_parameter(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        MomentMatchingSelector(**params).fit(np.ones((10, 3)))


def test_bad_input_is_rejected_clearly():
    G = gradients(10, n=50, d=5)
    G[[3, 7]] = np.inf
    with pytest.raises(ValueError, match=r"2 row\(s\): \[3, 7\]"):
        MomentMatchingSelector(n_select=5).fit(G)
    with pytest.raises(ValueError, match="n_select=60 is larger than the number of samples"):
        MomentMatchingSelector(n_select=60).fit(np.ones((50, 3)))
    with pytest.raises(ValueError, match="needs the class labels y"):
        MomentMatchingSelector(n_select=5, class_balance="equal").fit(np.ones((50, 3)))
