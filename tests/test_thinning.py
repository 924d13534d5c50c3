"""Group thinning: the walk against brute force, the mean it keeps, and the selector's use."""

import array_api_strict
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from sklearn.linear_model import LogisticRegression

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector
from sketchsel.selection._thinning import group_bounds, group_thinning


def capped_at_median(rows):
    """The rows thinning walks: each longer than the median non-zero length cut down to it."""
    norms = np.linalg.norm(rows, axis=1)
    median = np.median(norms[norms > 0])
    return rows * np.minimum(1.0, median / np.where(norms > 0, norms, 1.0))[:, None]


def assert_walk(rows, chosen, seed):
    """Brute force, step by step: each row kept is from its own group and is, of that group,
    the one that leaves the sum of the rows kept closest to the sum of the groups' means.

    The closest is checked to rounding error: a group of two rows, say, ties exactly when
    the sums agree before it.
    """
    n_select = chosen.shape[0]
    order = np.random.RandomState(seed).permutation(rows.shape[0])
    bounds = group_bounds(rows.shape[0], n_select)
    means = np.zeros(rows.shape[1])
    for group in range(n_select):
        members = order[bounds[group]:bounds[group + 1]]
        assert chosen[group] in members
        means += rows[members].mean(axis=0)
        target = means - rows[chosen[:group]].sum(axis=0)
        distances = np.linalg.norm(rows[members] - target, axis=1)
        assert distances[members == chosen[group]][0] <= distances.min() + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(1, 6), st.integers(0, 2**31 - 1), st.data())
def test_the_walk_is_the_brute_force_one_row_a_group(n_rows, d, seed, data):
    rows = np.random.default_rng(seed).standard_normal((n_rows, d))
    n_select = data.draw(st.integers(1, n_rows))
    chosen = group_thinning(np, rows, n_select, np.random.RandomState(seed))
    assert_walk(rows, chosen, seed)
    strict = group_thinning(array_api_strict, array_api_strict.asarray(rows), n_select,
                            np.random.RandomState(seed))
    assert_walk(rows, np.asarray(strict), seed)


@given(st.integers(1, 1000), st.data())
def test_groups_partition_the_rows_in_sizes_within_one(n_rows, data):
    n_groups = data.draw(st.integers(1, n_rows))
    sizes = np.diff(group_bounds(n_rows, n_groups))
    assert sizes.sum() == n_rows and sizes.size == n_groups
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1


def test_a_thinned_subset_keeps_the_mean_better_than_random_subsets():
    ratios = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        centres = 3 * rng.standard_normal((3, 10))
        X = centres[rng.integers(0, 3, 4000)] + rng.standard_normal((4000, 10))
        thinned = group_thinning(np, X, 100, np.random.RandomState(seed))
        random = rng.choice(4000, 100, replace=False)
        error = [np.linalg.norm(X[rows].mean(axis=0) - X.mean(axis=0))
                 for rows in (thinned, random)]
        ratios.append(error[0] / error[1])
    # Random subsets err by about sqrt(d / k); the walk's error falls as 1 / k.
    assert max(ratios) < 1 and np.mean(ratios) < 0.2


def noisy_gradients(seed, n=2000, n_classes=4, noise=0.2):
    """Last-layer gradients of a fitted logistic model, with a fifth of the labels wrong."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = 2 * rng.standard_normal((n_classes, 12))[y] + rng.standard_normal((n, 12))
    model = LogisticRegression(max_iter=500).fit(X, y)
    wrong = rng.random(n) < noise
    labels = y.copy()
    labels[wrong] = (y[wrong] + rng.integers(1, n_classes, wrong.sum())) % n_classes
    residuals = model.predict_proba(X)
    residuals[np.arange(n), labels] -= 1
    G = (residuals[:, :, None] * np.c_[X, np.ones(n)][:, None, :]).reshape(n, -1)
    return G, labels, wrong


@pytest.mark.parametrize("seed", range(3))
def test_mislabelled_rows_are_not_over_selected(seed):
    G, y, wrong = noisy_gradients(seed)
    thinned = AgreementSelector(0.1, strategy="thinning", hard_cutoff=0.0,
                                random_state=seed).fit(G, y).select()
    assert wrong[thinned].mean() <= wrong.mean() + 0.05
    # The planted rows are what volume picks: the test data have teeth.
    volume = FastMaxVol(0.1, strategy="maxvol", row_norms=None, hard_cutoff=0.0).fit(G, y)
    assert wrong[volume.select()].mean() > 0.5


@pytest.mark.parametrize("class_balance", [None, "equal", "proportional"])
def test_the_selector_thins_each_class_to_its_quota(class_balance):
    G, y, _ = noisy_gradients(3, n=900, n_classes=3, noise=0.0)
    copy = G.copy()
    selector = AgreementSelector(60, strategy="thinning", class_balance=class_balance,
                                 hard_cutoff=0.0, random_state=0).fit(G, y)
    assert_array_equal(G, copy)
    chosen = selector.select()
    if class_balance is None:
        rows = [np.arange(900)]
    else:
        assert np.bincount(y[chosen]).tolist() == selector.class_quotas_.tolist()
        rows = [np.flatnonzero(y == label) for label in selector.classes_]
    projections = selector.project(G)
    rng = np.random.RandomState(0)  # one generator for all classes, in their order
    expected = [group[group_thinning(np, capped_at_median(projections[group]), int(quota), rng)]
                for group, quota in zip(rows, [60] if class_balance is None
                                        else selector.class_quotas_)]
    assert_array_equal(chosen, np.sort(np.concatenate(expected)))


def test_thinning_follows_the_seed_and_keeps_float32():
    G = noisy_gradients(4, n=600)[0].astype(np.float32)
    fit = lambda seed: AgreementSelector(  # noqa: E731
        50, strategy="thinning", random_state=seed).fit(G)
    assert_array_equal(fit(3).select(), fit(3).select())
    assert not np.array_equal(fit(3).select(), fit(4).select())
    assert fit(3).components_.dtype == np.float32


@pytest.mark.parametrize("store", [True, False])
def test_thinning_from_a_source_is_the_in_memory_choice(store):
    G, y, _ = noisy_gradients(5, n=700)
    params = dict(n_select=0.1, sketch_size=16, projection="gaussian", strategy="thinning",
                  random_state=0)

    def source():
        return ((G[i : i + 64], y[i : i + 64]) for i in range(0, 700, 64))

    if not store:
        with pytest.raises(ValueError, match="store_projections=True"):
            AgreementSelector(**params, store_projections=False).fit(source)
        return
    streamed = AgreementSelector(**params).fit(source)
    assert_array_equal(streamed.select(), AgreementSelector(**params).fit(G, y).select())


def test_thinning_chooses_on_torch_tensors_what_it_chooses_on_numpy():
    torch = pytest.importorskip("torch")
    G, y, _ = noisy_gradients(6, n=800)
    params = dict(n_select=0.1, strategy="thinning", random_state=0)
    on_torch = AgreementSelector(**params).fit(torch.from_numpy(G), y)
    assert_array_equal(on_torch.select(), AgreementSelector(**params).fit(G, y).select())


def test_thinning_is_every_selector_default_and_walks_its_representation():
    assert {cls().strategy for cls in (AgreementSelector, FastMaxVol, MomentMatchingSelector)} \
        == {"thinning"}
    G = noisy_gradients(7, n=500)[0]
    # Moment matching thins its seeded sketch of the rows.
    moment = MomentMatchingSelector(40, sketch_size=16, hard_cutoff=0.0, class_balance=None,
                                    random_state=0).fit(G)
    expected = group_thinning(np, capped_at_median(moment.project(G)), 40,
                              np.random.RandomState(0))
    assert_array_equal(moment.select(), np.sort(expected))
    # FastMaxVol thins the rows as given when they are no wider than the budget.
    X = G[:, :8]
    maxvol = FastMaxVol(40, row_norms=None, hard_cutoff=0.0, class_balance=None,
                        random_state=0).fit(X)
    assert not hasattr(maxvol, "coefficients_")
    assert_array_equal(maxvol.select(),
                       np.sort(group_thinning(np, capped_at_median(X), 40,
                                              np.random.RandomState(0))))


@settings(max_examples=40, deadline=None)
@given(st.integers(60, 300), st.integers(0, 2**31 - 1), st.floats(1.0, 1e6))
def test_thinning_does_not_see_how_far_a_row_exceeds_the_median_length(n, seed, factor):
    # Lengthening the rows already above the median changes nothing: a wrong label's long
    # gradient pulls on the walk no harder than a typical row.
    G = np.random.default_rng(seed).standard_normal((n, 6))
    norms = np.linalg.norm(G, axis=1)
    longer = G.copy()
    # Above the upper middle row: the median (of an even count, the middle two's mean) stays.
    longer[norms > np.sort(norms)[n // 2]] *= factor
    # FastMaxVol thins rows no wider than the budget as given.
    params = dict(n_select=n // 7, row_norms=None, hard_cutoff=0.0, class_balance=None,
                  random_state=seed)
    fit = lambda X: FastMaxVol(**params).fit(X)  # noqa: E731
    assert_array_equal(fit(G).select(), fit(longer).select())



@given(st.integers(1, 60), st.integers(1, 9), st.integers(0, 2**31 - 1),
       st.sampled_from([np.float32, np.float64]))
def test_the_median_cap_from_known_norms_is_the_cap_from_the_rows(n, d, seed, dtype):
    # The selectors pass the norms they computed already (float64 on the host); cast back
    # to the rows' dtype they are those norms, so the factors are the same to the bit.
    from sketchsel.selection._base import row_lengths
    from sketchsel.selection._thinning import median_cap

    rows = np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)
    rows[::4] = 0.0
    computed, given_norms = median_cap(np, rows), median_cap(np, rows, row_lengths(rows))
    if computed is None:
        assert given_norms is None
    else:
        assert given_norms.dtype == dtype
        assert_array_equal(given_norms, computed)
