"""AgreementSelector (SAGE) against brute force on the exact gradients."""

import array_api_strict
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

import sketchsel
from sketchsel import AgreementSelector, FastMaxVol


def exact_scores(G, labels=None):
    """Cosine of each gradient with the normalised mean of the unit gradients (of its class)."""
    norms = np.linalg.norm(G, axis=1, keepdims=True)
    units = np.divide(G, norms, out=np.zeros_like(G), where=norms > 0)
    scores = np.zeros(len(G))
    groups = [np.arange(len(G))] if labels is None else [
        np.flatnonzero(labels == c) for c in np.unique(labels)
    ]
    for rows in groups:
        mean = units[rows].mean(axis=0)
        if np.linalg.norm(mean) > 0:
            scores[rows] = units[rows] @ (mean / np.linalg.norm(mean))
    return scores


def gradients(n=300, d=40, rank=8, seed=0, shift=1.0):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))
    return G + shift * rng.standard_normal(d) * (rank >= d)


@given(st.integers(2, 200), st.integers(1, 30), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_scores_are_exact_cosines_when_the_sketch_spans_the_gradients(n, d, rank, seed):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) + rng.standard_normal(d)
    selector = AgreementSelector(n_select=1, sketch_size=min(rank + 1, d)).fit(G)
    assert_allclose(selector.scores_, exact_scores(G), atol=1e-7)


def test_top_scores_are_kept_with_ties_to_the_lower_index():
    G = gradients()
    selector = AgreementSelector(n_select=30, sketch_size=64, strategy="top").fit(G)
    order = np.argsort(-selector.scores_, kind="stable")
    assert_array_equal(selector.select(), np.sort(order[:30]))
    # Equal scores (rows along one direction, lengths apart by powers of two, so that
    # their unit rows are equal to the last bit): the lowest indices win.
    same = np.outer(2.0 ** np.arange(20), G[0])
    assert_array_equal(AgreementSelector(n_select=3, strategy="top").fit(same).select(), [0, 1, 2])


@pytest.mark.parametrize("mode", ["equal", "proportional"])
def test_class_balance_uses_each_class_consensus_and_quota(mode):
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], [400, 60, 5])
    G = gradients(n=y.size, d=30, rank=30, seed=1) + 3 * np.eye(3)[y] @ rng.standard_normal((3, 30))
    selector = AgreementSelector(
        n_select=90, sketch_size=64, class_balance=mode, strategy="top", hard_cutoff=0.0
    ).fit(G, y)
    assert_allclose(selector.scores_, exact_scores(G, y), atol=1e-7)
    chosen = selector.select()
    counts = np.bincount(y[chosen], minlength=3)
    assert counts.tolist() == selector.class_quotas_.tolist()
    assert counts.sum() == 90
    # By hand: proportional shares by largest remainder; equal quotas water-filled
    # (the 5-row class gives all it has, the others share the other 85).
    assert counts.tolist() == ([43, 42, 5] if mode == "equal" else [77, 12, 1])
    for c in range(3):  # within a class, the top scores: 90 rows are below half of 465
        rows = np.flatnonzero(y == c)
        top = rows[np.argsort(-selector.scores_[rows], kind="stable")[: counts[c]]]
        assert set(top) == set(chosen[y[chosen] == c])


def test_diversity_greedy_matches_brute_force():
    G = gradients(n=120, d=20, rank=20, seed=2)
    lam = 0.5
    selector = AgreementSelector(n_select=15, sketch_size=32, strategy="diverse", diversity=lam,
                                 prefer="easy").fit(G)
    units = G / np.linalg.norm(G, axis=1, keepdims=True)
    scores = exact_scores(G)
    picked = []
    for _ in range(15):
        gain = scores - lam * np.max(units @ units[picked].T, axis=1) if picked else scores.copy()
        gain[picked] = -np.inf
        picked.append(int(np.argmax(gain)))
    assert_array_equal(selector.select(), np.sort(picked))


def test_zero_gradients_score_zero():
    G = gradients(n=50, d=10, rank=10, seed=3)
    G[[4, 7]] = 0.0
    selector = AgreementSelector(n_select=10).fit(G)
    assert selector.scores_[4] == 0 and selector.scores_[7] == 0
    assert AgreementSelector(n_select=2).fit(np.zeros((5, 3))).scores_.tolist() == [0.0] * 5


@pytest.mark.parametrize("projection", ["fd", "gaussian"])
@pytest.mark.parametrize("balance", [None, "equal", "proportional"])
@pytest.mark.parametrize("store", [True, False])  # two passes, or three and O(N) memory
@pytest.mark.parametrize("n_select", [0.1, 0.3])  # with a hard cutoff (by class), and without
def test_a_source_of_batches_gives_the_in_memory_selection(projection, balance, store, n_select):
    rng = np.random.default_rng(4)
    G = gradients(n=500, d=60, rank=12, seed=4)
    y = rng.integers(0, 4, 500)
    # Without stored projections only the scores are kept, which "diverse" cannot use.
    params = dict(n_select=n_select, sketch_size=16, projection=projection,
                  class_balance=balance, strategy="diverse" if store else "top", random_state=0)
    in_memory = AgreementSelector(**params).fit(G, y)

    def source():
        return ((G[i : i + 64], y[i : i + 64]) for i in range(0, 500, 64))

    streamed = AgreementSelector(**params, store_projections=store).fit(source)
    assert_allclose(streamed.scores_, in_memory.scores_, atol=1e-8)
    assert_array_equal(streamed.select(), in_memory.select())
    assert streamed.n_hard_cut_ == in_memory.n_hard_cut_
    # From a fifth of a class on, maxvol chooses the cover's rows, from the source too.
    assert streamed.fallback_used_ == in_memory.fallback_used_
    assert np.any(in_memory.fallback_used_) == (n_select == 0.3 and store)
    assert np.any(in_memory.n_hard_cut_) == (n_select == 0.1 and balance is not None)
    # The first 12 directions span the gradients (rank 12); the others are arbitrary.
    k = 12 if projection == "fd" else 16
    assert_allclose(streamed.components_[:k], in_memory.components_[:k], atol=1e-8)
    assert streamed.n_features_in_ == 60


def test_gaussian_projection_approximates_the_cosines_and_is_seeded():
    rng = np.random.default_rng(5)
    direction = rng.standard_normal(300)
    # Agreement varying from opposed to aligned, so the scores spread over [-1, 1].
    G = np.outer(rng.uniform(-1, 2, 400), direction) + rng.standard_normal((400, 300))
    fit = lambda seed: AgreementSelector(  # noqa: E731
        n_select=40, sketch_size=200, projection="gaussian", random_state=seed
    ).fit(G)
    assert_array_equal(fit(0).select(), fit(0).select())
    assert np.corrcoef(fit(0).scores_, exact_scores(G))[0, 1] > 0.9


@pytest.mark.parametrize("strategy", ["thinning", "diverse"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtypes_and_namespaces_agree(dtype, strategy):
    G = gradients(n=200, d=30, rank=6, seed=6).astype(dtype)
    params = dict(n_select=20, sketch_size=8, strategy=strategy, random_state=0)
    expected = AgreementSelector(**params).fit(G)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert_allclose(expected.scores_, exact_scores(G.astype(float)), atol=tol)
    for convert in (torch.from_numpy, array_api_strict.asarray):
        with sketchsel.config_context(backend="array_api"):
            got = AgreementSelector(**params).fit(convert(G))
        assert_allclose(got.scores_, expected.scores_, atol=tol)
        assert_array_equal(got.select(), expected.select())


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda G, y: AgreementSelector(class_balance="equal").fit(G, y[:-1]), ValueError,
         "y has 99 labels but X has 100 rows"),
        (lambda G, y: AgreementSelector(n_select=0).fit(G), InvalidParameterError, "n_select"),
        (lambda G, y: AgreementSelector(n_select=101).fit(G), ValueError,
         "n_select=101 is larger than the number of samples"),
        (lambda G, y: AgreementSelector(class_balance="max").fit(G, y), InvalidParameterError,
         "class_balance"),
        (lambda G, y: AgreementSelector(projection="pca").fit(G), InvalidParameterError,
         "projection"),
        (lambda G, y: AgreementSelector(hard_cutoff=1.0).fit(G, y), InvalidParameterError,
         "hard_cutoff"),
        (lambda G, y: AgreementSelector(hard_cutoff="hard").fit(G, y), InvalidParameterError,
         "hard_cutoff"),
        (lambda G, y: AgreementSelector(fallback="top").fit(G, y), InvalidParameterError,
         "fallback"),
    ],
)
def test_bad_input_is_explained(call, error, match):
    G = gradients(n=100, d=10, rank=10, seed=7)
    with pytest.raises(error, match=match):
        call(G, np.arange(100) % 3)


def test_non_finite_rows_are_named():
    G = gradients(n=100, d=10, rank=10, seed=8)
    G[13, 2] = np.nan
    with pytest.raises(ValueError, match=r"\[13\]"):
        AgreementSelector().fit(G)


def test_a_source_must_repeat_itself():
    G = gradients(n=100, d=10, rank=10, seed=9)
    calls = []

    def shrinking_source():
        calls.append(None)
        return iter([G[: 100 - 10 * len(calls)]])

    # A sketch narrower than the rows: a pass to sketch, then one to project. (With as
    # many directions as features one pass projects it, and nothing can disagree.)
    with pytest.raises(ValueError, match="90 rows in one pass and 80 in the next"):
        AgreementSelector(n_select=5, sketch_size=8).fit(shrinking_source)


def test_a_growing_source_and_a_failed_fit_leave_nothing_behind():
    G = gradients(n=100, d=10, rank=10, seed=10)
    calls = []

    def growing_source():
        calls.append(None)
        return iter([G[: 40 + 20 * len(calls)]])

    with pytest.raises(ValueError, match="60 rows in one pass and more in the next"):
        AgreementSelector(n_select=5, sketch_size=8).fit(growing_source)
    selector = AgreementSelector(n_select=500)
    with pytest.raises(ValueError, match="n_select=500 is larger"):
        selector.fit(lambda: iter([G]))
    # The failed streamed fit must not leak its projection into the next fit.
    assert_allclose(selector.set_params(n_select=5).fit(G).scores_, exact_scores(G), atol=1e-7)


def test_three_passes_cannot_serve_the_greedy_variant():
    G = gradients(n=100, d=10, rank=10, seed=12)
    with pytest.raises(ValueError, match="needs store_projections=True"):
        AgreementSelector(diversity=0.5, store_projections=False).fit(lambda: iter([G]))


@pytest.mark.parametrize("strategy", ["thinning", "diverse"])
def test_passes_by_hand_match_fit(strategy):
    G = gradients(n=300, d=40, rank=40, seed=13)
    batches = np.array_split(G, 7)
    selector = AgreementSelector(n_select=30, sketch_size=12, strategy=strategy, random_state=0)
    for batch in batches:
        selector.partial_fit(batch)
    assert selector.n_features_in_ == 40
    Z = np.vstack([selector.project(batch) for batch in batches])
    assert Z.shape == (300, 12)
    assert_allclose(Z, G @ selector.sketch_.components_.T)
    params = dict(n_select=30, strategy=strategy, random_state=0)
    by_hand = AgreementSelector(**params).fit(Z)
    whole = AgreementSelector(**params, sketch_size=12).fit(G)
    assert_allclose(by_hand.scores_, whole.scores_, atol=1e-8)
    # With labels, hard_cutoff reads the projections' lengths, which Z keeps (thinning
    # caps the long rows instead of cutting them).
    y = np.arange(300) % 2
    labelled = AgreementSelector(**params).fit(Z, y)
    assert labelled.n_hard_cut_ == ([0, 0] if strategy == "thinning" else [15, 15])
    assert_array_equal(labelled.select(),
                       AgreementSelector(**params, sketch_size=12).fit(G, y).select())
    # After fit, project uses the fitted directions.
    assert_allclose(np.abs(whole.project(G[:3])), np.abs(Z[:3]), atol=1e-8)


def test_project_needs_directions_and_matching_features():
    from sklearn.exceptions import NotFittedError

    G = gradients(n=50, d=10, rank=10, seed=14)
    with pytest.raises(NotFittedError):
        AgreementSelector().project(G)
    with pytest.raises(ValueError, match="X has 9 features, but the directions have 10"):
        AgreementSelector(n_select=5).fit(G).project(G[:, :9])


def greedy(units, preference, n, lam):
    """The diversity greedy, brute force: gain = preference - lam * max cosine to the chosen."""
    picked = []
    for _ in range(n):
        gain = preference - lam * np.max(units @ units[picked].T, axis=1) if picked \
            else preference.copy()
        gain[picked] = -np.inf
        picked.append(int(np.argmax(gain)))
    return picked


def test_diverse_is_the_diversity_greedy_within_each_class_share():
    rng = np.random.default_rng(20)
    y = rng.integers(0, 3, 240)
    G = gradients(n=240, d=24, rank=24, seed=20) + 2 * np.eye(3)[y] @ rng.standard_normal((3, 24))
    selector = AgreementSelector(n_select=30, strategy="diverse").fit(G, y)
    assert selector.class_balance_ == "proportional"
    lengths = np.linalg.norm(G, axis=1)
    units = G / lengths[:, None]
    scores = exact_scores(G, y)
    expected = []
    for c, quota in enumerate(selector.class_quotas_):
        rows = np.flatnonzero(y == c)
        # hard_cutoff="auto": quotas below a fifth of the class, so its longest tenth is out.
        assert quota < rows.size / 5
        rows = rows[np.argsort(lengths[rows], kind="stable")[: rows.size - rows.size // 10]]
        # prefer="auto" is "hard" for the greedy: the least agreeing rows first.
        expected += rows[greedy(units[rows], -scores[rows], quota, 32.0)].tolist()
    assert_array_equal(selector.select(), np.sort(expected))
    assert selector.n_hard_cut_ == [np.sum(y == c) // 10 for c in range(3)]
    # Without labels, one consensus and one greedy over all rows.
    alone = AgreementSelector(n_select=30, strategy="diverse").fit(G)
    assert alone.class_balance_ is None
    assert_array_equal(alone.select(), np.sort(greedy(units, -exact_scores(G), 30, 32.0)))
    easy = AgreementSelector(n_select=30, strategy="diverse", prefer="easy").fit(G)
    assert_array_equal(easy.select(), np.sort(greedy(units, exact_scores(G), 30, 32.0)))


@pytest.mark.parametrize("n_select, hard", [(40, False), (149, False), (150, True), (260, True)])
def test_prefer_auto_keeps_easy_rows_below_half_the_rows_and_hard_ones_above(n_select, hard):
    G = gradients()  # 300 rows
    kwargs = dict(n_select=n_select, sketch_size=64, strategy="top")
    auto = AgreementSelector(**kwargs, prefer="auto").fit(G)
    scores = auto.scores_
    order = np.argsort(scores if hard else -scores, kind="stable")
    assert_array_equal(auto.select(), np.sort(order[:n_select]))
    explicit = AgreementSelector(**kwargs, prefer="hard" if hard else "easy").fit(G)
    assert_array_equal(explicit.select(), auto.select())


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(30, 120), st.floats(0, 0.95), st.data())
def test_hard_cutoff_leaves_out_each_class_longest_rows(seed, n, fraction, data):
    """Brute force: per class, the top preferred among all but its longest rows."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    G = rng.standard_normal((n, 8)) + 2 * np.eye(3)[y, :1]
    # Lengths at least 1.4% apart: no two rows tie for the cut.
    G *= (rng.permutation(np.geomspace(0.1, 5.0, n)) / np.linalg.norm(G, axis=1))[:, None]
    n_select = data.draw(st.integers(1, n))
    copy = G.copy()
    params = dict(n_select=n_select, strategy="top", class_balance="proportional")
    selector = AgreementSelector(hard_cutoff=fraction, **params).fit(G, y)
    assert_array_equal(G, copy)
    # The cutoff removes candidates, not evidence: every row keeps its score.
    assert_allclose(selector.scores_, AgreementSelector(hard_cutoff=0.0, **params)
                    .fit(G, y).scores_, atol=1e-12)
    lengths = np.linalg.norm(G, axis=1)
    expected, cut = [], []
    for label, quota in zip(selector.classes_, selector.class_quotas_):
        rows = np.flatnonzero(y == label)
        # prefer="auto" with "top": easy rows below half of all the rows, hard from there.
        preference = selector.scores_ if 2 * n_select < n else -selector.scores_
        n_cut = min(int(fraction * rows.size), rows.size - quota)
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        kept = np.sort(rows[: rows.size - n_cut])
        expected += kept[np.argsort(-preference[kept], kind="stable")[:quota]].tolist()
        cut.append(n_cut if quota else None)
    assert selector.n_hard_cut_ == cut
    assert_array_equal(selector.select(), np.sort(expected))


def test_rows_a_small_class_leaves_go_to_rows_the_hard_cutoff_kept():
    rng = np.random.default_rng(23)
    y = np.repeat([0, 1], [200, 4])
    G = rng.standard_normal((204, 12)) * rng.uniform(0.5, 3.0, 204)[:, None] + np.eye(12)[y]
    selector = AgreementSelector(n_select=40, strategy="top", prefer="hard",
                                 class_balance="equal").fit(G, y)
    # Quota 36 of class 0's 200 rows, below a fifth: its 20 longest rows are cut.
    assert selector.n_hard_cut_ == [20, 0]
    assert selector.class_quotas_.tolist() == [36, 4]
    zeros = np.flatnonzero(y == 0)
    kept = np.sort(zeros[np.argsort(np.linalg.norm(G[zeros], axis=1), kind="stable")[:180]])
    chosen = selector.select()
    expected = kept[np.argsort(selector.scores_[kept], kind="stable")[:36]]
    assert_array_equal(np.sort(chosen[y[chosen] == 0]), np.sort(expected))


def test_the_cut_never_leaves_a_class_fewer_rows_than_its_quota():
    rng = np.random.default_rng(24)
    y = np.repeat([0, 1], [10, 2])
    G = rng.standard_normal((12, 4)) * np.geomspace(1, 4, 12)[:, None]
    selector = AgreementSelector(n_select=10, strategy="top", prefer="hard",
                                 class_balance="equal", hard_cutoff=0.5).fit(G, y)
    # Equal quotas water-filled: class 1 gives its 2 rows, class 0 the other 8. Half of
    # class 0 would be cut, but that would leave 5 rows for a quota of 8: only 2 are.
    assert selector.class_quotas_.tolist() == [8, 2]
    assert selector.n_hard_cut_ == [2, 0]
    zeros = np.arange(10)
    kept = zeros[np.argsort(np.linalg.norm(G[zeros], axis=1), kind="stable")[:8]]
    assert_array_equal(selector.select(), np.sort(np.concatenate([kept, [10, 11]])))


def test_equal_quotas_beside_a_small_class_take_the_least_agreeing_of_the_large_one():
    rng = np.random.default_rng(21)
    y = np.repeat([0, 1], [200, 4])
    G = gradients(n=y.size, d=20, rank=20, seed=21) + 2 * np.eye(2)[y] @ rng.standard_normal((2, 20))
    selector = AgreementSelector(
        n_select=40, sketch_size=32, strategy="top", prefer="hard", class_balance="equal",
        hard_cutoff=0.0,
    ).fit(G, y)
    scores = selector.scores_
    chosen = selector.select()
    assert np.sum(y[chosen] == 1) == 4
    zeros = np.flatnonzero(y == 0)
    assert_array_equal(np.sort(chosen[y[chosen] == 0]),
                       np.sort(zeros[np.argsort(scores[zeros], kind="stable")[:36]]))


@pytest.mark.parametrize("prefer", ["easy", "hard"])
def test_proportional_sampling_draws_rows_in_proportion_to_their_agreement(prefer):
    rng = np.random.default_rng(22)
    G = rng.standard_normal((6, 3)) + np.array([2.0, 0.0, 0.0])
    scores = exact_scores(G)
    weights = (1 + scores) / 2 if prefer == "easy" else (1 - scores) / 2
    expected = 3000 * weights / weights.sum()
    counts = np.zeros(6)
    selector = AgreementSelector(n_select=1, strategy="proportional", prefer=prefer)
    for seed in range(3000):
        counts[selector.set_params(random_state=seed).fit(G).select()] += 1
    # Binomial counts: within 5 standard deviations of their expectation.
    sd = np.sqrt(expected * (1 - expected / 3000))
    assert np.all(np.abs(counts - expected) <= 5 * sd + 1)


@pytest.mark.parametrize("prefer", ["easy", "hard"])
def test_stratified_strategy_prunes_the_unwanted_half_and_covers_the_rest(prefer):
    G = gradients(n=400, d=30, rank=30, seed=23)
    selector = AgreementSelector(n_select=50, strategy="stratified", prune=0.5, n_strata=5,
                                 prefer=prefer, random_state=0).fit(G)
    scores = selector.scores_
    chosen = scores[selector.select()]
    kept = np.sort(scores)[200:] if prefer == "easy" else np.sort(scores)[:200]
    assert kept.min() <= chosen.min() and chosen.max() <= kept.max()
    # Five strata of equal width over the kept range, each holding some of the 50 rows.
    edges = np.linspace(kept.min(), kept.max(), 6)
    assert np.all(np.histogram(chosen, edges)[0] >= 1)
    again = AgreementSelector(n_select=50, strategy="stratified", prune=0.5, n_strata=5,
                              prefer=prefer, random_state=0).fit(G)
    assert_array_equal(again.select(), selector.select())


def test_randomised_strategies_follow_the_seed():
    G = gradients(n=300, d=20, rank=20, seed=24)
    for strategy in ("stratified", "proportional"):
        fit = lambda seed: AgreementSelector(  # noqa: E731
            n_select=30, strategy=strategy, random_state=seed).fit(G).select()
        assert_array_equal(fit(3), fit(3))
        assert not np.array_equal(fit(3), fit(4))


@pytest.mark.parametrize("fallback", [None, "maxvol"])  # the greedy, or maxvol at 95%
def test_zero_gradients_come_last_in_the_diverse_greedy(fallback):
    G = gradients(n=60, d=12, rank=12, seed=25)
    G[[3, 8, 11]] = 0.0
    selector = AgreementSelector(n_select=57, sketch_size=12, strategy="diverse",
                                 fallback=fallback).fit(G)
    assert selector.fallback_used_ == (fallback is not None)
    assert selector.scores_[[3, 8, 11]].tolist() == [0.0, 0.0, 0.0]
    assert set(np.setdiff1d(np.arange(60), selector.select())) == {3, 8, 11}


def test_proportional_weights_survive_float32_cosines_above_one():
    rng = np.random.default_rng(298)
    G = (rng.standard_normal(16) + 1e-4 * rng.standard_normal((20, 16))).astype(np.float32)
    for prefer in ("easy", "hard"):
        chosen = AgreementSelector(n_select=5, strategy="proportional", prefer=prefer,
                                   projection="gaussian", random_state=0).fit(G).select()
        assert chosen.size == 5 == np.unique(chosen).size


@pytest.mark.parametrize("store", [True, False])
def test_auto_balancing_from_a_source_decides_on_all_the_labels(store):
    """A continuous target whose first batch happens to hold whole numbers: no classes."""
    G = gradients(n=300, d=20, rank=20, seed=26)
    target = np.random.default_rng(26).normal(size=300)
    target[:100] = np.round(target[:100])
    params = dict(n_select=30, sketch_size=8, strategy="top", store_projections=store)
    in_memory = AgreementSelector(**params).fit(G, target)
    assert in_memory.class_balance_ is None
    streamed = AgreementSelector(**params).fit(
        lambda: ((G[i : i + 100], target[i : i + 100]) for i in range(0, 300, 100)))
    assert streamed.class_balance_ is None
    assert_allclose(streamed.scores_, in_memory.scores_, atol=1e-8)
    assert_array_equal(streamed.select(), in_memory.select())


@pytest.mark.parametrize("store", [True, False])
def test_labels_in_some_batches_only_are_a_clear_error(store):
    G = gradients(n=300, d=20, rank=20, seed=27)
    y = np.arange(300) % 3

    def source():
        yield G[:100], y[:100]
        yield G[100:]

    with pytest.raises(ValueError, match="Some batches yielded labels and others did not"):
        AgreementSelector(n_select=30, sketch_size=8, strategy="top",
                          store_projections=store).fit(source)


def test_from_a_fifth_of_a_class_maxvol_chooses_on_the_raw_projections():
    rng = np.random.default_rng(27)
    y = rng.integers(0, 3, 300)
    G = gradients(n=300, d=24, rank=24, seed=27) + 2 * np.eye(3)[y] @ rng.standard_normal((3, 24))
    G[:6] *= 50.0  # six very long gradients, which the volume of raw rows takes first
    copy = G.copy()
    for n_select in (0.25, 0.5):
        selector = AgreementSelector(n_select=n_select, strategy="diverse").fit(G, y)
        assert_array_equal(G, copy)
        assert selector.fallback_used_ == [True, True, True]
        assert selector.n_hard_cut_ == [0, 0, 0]
        # FastMaxVol's defaults use rows as given from a fifth of them on.
        Z = selector.project(G)
        expected = []
        for label, quota in zip(selector.classes_, selector.class_quotas_):
            rows = np.flatnonzero(y == label)
            assert 5 * quota >= rows.size
            expected += rows[FastMaxVol(quota, strategy="maxvol", row_norms=None)
                             .fit(Z[rows]).select()].tolist()
        assert_array_equal(selector.select(), np.sort(expected))
        assert set(range(6)) <= set(selector.select().tolist())
        # The scores are those of the agreement, whatever chose the rows.
        assert_allclose(selector.scores_, exact_scores(G, y), atol=1e-8)
    # Without the fallback, the greedy cover within each class.
    cover = AgreementSelector(n_select=0.25, strategy="diverse", fallback=None).fit(G, y)
    assert cover.fallback_used_ == [False, False, False]
    units = G / np.linalg.norm(G, axis=1, keepdims=True)
    scores = exact_scores(G, y)
    expected = []
    for label, quota in zip(cover.classes_, cover.class_quotas_):
        rows = np.flatnonzero(y == label)
        expected += rows[greedy(units[rows], -scores[rows], quota, 32.0)].tolist()
    assert_array_equal(cover.select(), np.sort(expected))


def test_a_zero_diversity_ranks_by_score_without_the_projections_at_any_budget():
    G = gradients(n=300, d=20, rank=20, seed=29)
    y = np.repeat([0, 1, 2], 100)
    params = dict(n_select=0.3, strategy="diverse", diversity=0.0, random_state=0)
    in_memory = AgreementSelector(**params).fit(G, y)
    assert in_memory.fallback_used_ == [False, False, False]

    def source():
        return ((G[i : i + 64], y[i : i + 64]) for i in range(0, 300, 64))

    streamed = AgreementSelector(**params, store_projections=False).fit(source)
    assert_array_equal(streamed.select(), in_memory.select())
    top = AgreementSelector(n_select=0.3, strategy="top").fit(G, y)
    assert_array_equal(in_memory.select(), top.select())


def test_the_fallback_is_decided_per_class_at_a_fifth_and_only_for_the_cover():
    G = gradients(n=300, d=20, rank=20, seed=28)
    y = np.repeat([0, 1], [100, 200])
    # Equal quotas of 20: a fifth of class 0, a tenth of class 1.
    selector = AgreementSelector(n_select=40, strategy="diverse", class_balance="equal").fit(G, y)
    assert selector.fallback_used_ == [True, False]
    assert selector.n_hard_cut_ == [0, 20]
    # Without labels one group: from 60 of the 300 rows on.
    assert AgreementSelector(n_select=60, strategy="diverse").fit(G).fallback_used_ is True
    assert AgreementSelector(n_select=59, strategy="diverse").fit(G).fallback_used_ is False
    for strategy in ("thinning", "top", "stratified", "proportional"):
        chosen = AgreementSelector(n_select=0.5, strategy=strategy, random_state=0).fit(G)
        assert chosen.fallback_used_ is False


@pytest.mark.parametrize("strategy", ["thinning", "top", "diverse"])
def test_keeping_every_direction_chooses_as_the_exact_rotation_without_one(strategy):
    # With as many directions as features the FD projection is a rotation: the fit uses
    # the rows as they are (components_ the identity) and must choose what it chooses on
    # the rows rotated by the exact right singular vectors, the projection it skips.
    G = gradients(n=400, d=24, rank=24, seed=21)
    y = np.arange(400) % 3
    V = np.linalg.svd(G, full_matrices=False)[2]
    params = dict(n_select=40, strategy=strategy, random_state=0)
    fast = AgreementSelector(**params).fit(G, y)
    rotated = AgreementSelector(**params).fit(G @ V.T, y)
    assert_array_equal(fast.components_, np.eye(24))
    assert_array_equal(fast.project(G), G)
    assert_array_equal(fast.select(), rotated.select())
    assert_allclose(fast.scores_, exact_scores(G, y), atol=1e-8)
    assert_allclose(rotated.scores_, fast.scores_, atol=1e-8)


# Every direction kept: the first batch tells the width, and one pass projects; else a
# pass sketches and one projects.
@pytest.mark.parametrize(("sketch_size", "rows_read"), [(24, 50 + 300), (8, 2 * 300)])
def test_a_source_is_projected_in_one_pass_when_every_direction_is_kept(sketch_size, rows_read):
    G = gradients(n=300, d=24, rank=24, seed=22)
    y = np.arange(300) % 2
    read = []

    def source():
        for i in range(0, 300, 50):
            read.append(50)
            yield G[i:i + 50], y[i:i + 50]

    params = dict(n_select=30, sketch_size=sketch_size, random_state=0)
    streamed = AgreementSelector(**params).fit(source)
    assert sum(read) == rows_read
    in_memory = AgreementSelector(**params).fit(G, y)
    assert_array_equal(streamed.select(), in_memory.select())
    assert_allclose(streamed.scores_, in_memory.scores_, atol=1e-8)


def test_float32_scores_of_many_rows_are_the_float64_cosines():
    # More rows than one block of the float64 sums (16,384): the consensus is summed
    # block by block, and a float32 row's cosine is off by float32 round-off only.
    rng = np.random.default_rng(23)
    G = rng.standard_normal((40_000, 16)) + 0.5
    y = rng.integers(0, 2, 40_000)
    scores = AgreementSelector(n_select=0.1).fit(G.astype(np.float32), y).scores_
    assert_allclose(scores, exact_scores(G.astype(np.float32).astype(np.float64), y),
                    atol=2e-6)
