"""The selector base and FastMaxVol."""

import itertools

import array_api_strict
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

import sketchsel
from sketchsel import FastMaxVol
from sketchsel.linalg import maxvol
from sketchsel.selection._base import resolve_n_select
from sketchsel.selection._policy import class_quotas


@given(st.lists(st.integers(1, 50), min_size=1, max_size=8), st.data())
def test_class_quotas_spend_the_budget_within_each_class(counts, data):
    counts = np.array(counts)
    n_select = data.draw(st.integers(1, int(counts.sum())))
    for mode in ("equal", "proportional"):
        quotas = class_quotas(counts, n_select, mode)
        assert quotas.sum() == n_select
        assert np.all((0 <= quotas) & (quotas <= counts))
    proportional = class_quotas(counts, n_select, "proportional")
    assert np.all(np.abs(proportional - n_select * counts / counts.sum()) < 1)
    equal = class_quotas(counts, n_select, "equal")
    # Water-filling: no class gets more than one row above a class that still
    # has rows to give; only exhausted classes fall further behind.
    open_quotas = equal[equal < counts]
    if open_quotas.size:
        assert equal.max() <= open_quotas.min() + 1


def test_equal_quota_of_a_small_class_goes_to_the_others():
    assert class_quotas([2, 100, 100], 30, "equal").tolist() == [2, 14, 14]
    assert class_quotas([2, 100, 100], 31, "equal").tolist() == [2, 15, 14]


def test_budget_as_count_or_fraction():
    assert resolve_n_select(5, 10) == 5
    assert resolve_n_select(0.25, 10) == 2
    assert resolve_n_select(0.01, 10) == 1
    assert resolve_n_select(1.0, 10) == 10
    with pytest.raises(ValueError, match="n_select=11 is larger than the number of samples"):
        resolve_n_select(11, 10)


# FastMaxVol's default (thinning, seeded) and the published rule (maxvol, deterministic).
CHOICES = {"thinning": {"random_state": 0}, "maxvol": {"strategy": "maxvol"}}
by_choice = pytest.mark.parametrize("choice", list(CHOICES))


def low_rank(n=600, d=30, rank=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))


@by_choice
def test_selection_readers_agree(choice):
    X = low_rank()
    selector = FastMaxVol(n_select=0.05, **CHOICES[choice]).fit(X)
    chosen = selector.select()
    assert chosen.dtype == np.int64 and chosen.size == 30
    assert np.all(np.diff(chosen) > 0)
    assert_array_equal(selector.get_support(indices=True), chosen)
    mask = selector.get_support()
    assert mask.shape == (600,) and mask.sum() == 30 and np.all(mask[chosen])
    assert_array_equal(FastMaxVol(n_select=0.05, **CHOICES[choice]).fit_select(X), chosen)
    y = np.arange(600)  # row numbers, not classes: nothing to balance
    X_res, y_res = FastMaxVol(n_select=0.05, class_balance=None,
                              **CHOICES[choice]).fit_resample(X, y)
    assert_array_equal(X_res, X[chosen])
    assert_array_equal(y_res, chosen)


def test_rank_many_rows_span_a_low_rank_matrix():
    X = low_rank(rank=6)
    selector = FastMaxVol(n_select=6, strategy="maxvol", row_norms=None, hard_cutoff=0.0).fit(X)
    assert selector.rank_ == 6
    assert_allclose(selector.coefficients_ @ X[selector.pivots_], X, atol=1e-8)
    assert np.abs(selector.coefficients_).max() <= 1.05 + 1e-9


def test_features_used_as_they_are_give_the_maxvol_rows():
    X = np.random.default_rng(1).standard_normal((400, 8))
    selector = FastMaxVol(n_select=8, strategy="maxvol", row_norms=None, hard_cutoff=0.0).fit(X)
    assert_array_equal(selector.pivots_, maxvol(X)[0])


@given(st.integers(0, 2**31 - 1))
def test_volume_within_the_dominance_factor_of_brute_force(seed):
    X = np.random.default_rng(seed).standard_normal((9, 2))
    selector = FastMaxVol(n_select=2, strategy="maxvol", row_norms=None, hard_cutoff=0.0).fit(X)
    best = max(np.linalg.slogdet(X[list(rows)])[1] for rows in itertools.combinations(range(9), 2))
    assert selector.volume_ >= best - 2 * np.log(1.05 * np.sqrt(2)) - 1e-9


def test_budget_above_the_rank_is_met_with_distinct_rows():
    X = low_rank(rank=4)
    selector = FastMaxVol(n_select=25, strategy="maxvol", rank=4).fit(X)
    assert selector.select().size == 25 == np.unique(selector.pivots_).size
    assert selector.coefficients_.shape == (600, 25)
    # A rank-deficient X with a budget above its rank is still met, by either rule.
    for params in CHOICES.values():
        assert FastMaxVol(n_select=12, **params).fit(X).select().size == 12
        thinned = FastMaxVol(n_select=25, rank=4, **params).fit(X)
        assert thinned.select().size == 25 == np.unique(thinned.pivots_).size


def test_larger_budgets_do_not_lose_volume_in_the_leading_rows():
    X = np.random.default_rng(2).standard_normal((500, 10))
    small = FastMaxVol(n_select=10, strategy="maxvol", rank=10).fit(X)
    large = FastMaxVol(n_select=40, strategy="maxvol", rank=10).fit(X)
    assert large.volume_ >= small.volume_ - 1e-9
    assert set(small.pivots_.tolist()) <= set(large.pivots_.tolist())


@by_choice
@pytest.mark.parametrize("mode", ["equal", "proportional"])
def test_class_balance_takes_each_class_quota(mode, choice):
    rng = np.random.default_rng(3)
    y = np.repeat(["a", "b", "c"], [300, 50, 8])
    X = rng.standard_normal((y.size, 12))
    selector = FastMaxVol(n_select=60, class_balance=mode, **CHOICES[choice]).fit(X, y)
    chosen_labels = y[selector.select()]
    counts = [int(np.sum(chosen_labels == c)) for c in ["a", "b", "c"]]
    assert counts == selector.class_quotas_.tolist()
    assert counts == class_quotas([300, 50, 8], 60, mode).tolist()
    assert list(selector.classes_) == ["a", "b", "c"]
    assert len(selector.volume_) == 3


def test_class_balance_needs_class_labels():
    X = np.random.default_rng(4).standard_normal((50, 3))
    with pytest.raises(ValueError, match="needs the class labels y"):
        FastMaxVol(n_select=5, class_balance="equal").fit(X)
    with pytest.raises(ValueError, match="y has 49 labels but X has 50 rows"):
        FastMaxVol(n_select=5, class_balance="equal").fit(X, np.zeros(49))
    with pytest.raises(ValueError, match="Unknown label type"):
        FastMaxVol(n_select=5, class_balance="equal").fit(X, np.linspace(0, 1, 50))
    # Without class balancing a continuous target is fine.
    assert FastMaxVol(n_select=5).fit(X, np.linspace(0, 1, 50)).select().size == 5


@pytest.mark.parametrize(
    "params, match",
    [({"n_select": 0}, "n_select"), ({"n_select": 1.5}, "n_select"), ({"rank": 0}, "rank"),
     ({"tol": 0.9}, "tol"), ({"class_balance": "max"}, "class_balance"),
     ({"hard_cutoff": 1.0}, "hard_cutoff"), ({"row_norms": "max"}, "row_norms"),
     ({"strategy": "moments"}, "strategy")],
)
def test_invalid_parameters_name_the_parameter(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        FastMaxVol(**params).fit(np.ones((10, 3)))


def test_bad_input_is_rejected_with_the_rows():
    X = np.random.default_rng(5).standard_normal((20, 3))
    X[[2, 9]] = np.nan
    with pytest.raises(ValueError, match=r"2 row\(s\): \[2, 9\]"):
        FastMaxVol(n_select=3).fit(X)
    with pytest.raises(ValueError, match="n_select=30 is larger than the number of samples"):
        FastMaxVol(n_select=30).fit(np.ones((20, 3)))


@by_choice
def test_same_input_same_selection_and_input_untouched(choice):
    X = low_rank(seed=6)
    copy = X.copy()
    first = FastMaxVol(n_select=0.1, **CHOICES[choice]).fit_select(X)
    assert_array_equal(FastMaxVol(n_select=0.1, **CHOICES[choice]).fit_select(X), first)
    assert_array_equal(X, copy)


@by_choice
@pytest.mark.parametrize("convert", [torch.from_numpy, array_api_strict.asarray])
def test_other_namespaces_select_the_same_rows(convert, choice):
    X = low_rank(seed=7)
    expected = FastMaxVol(n_select=20, rank=6, **CHOICES[choice]).fit_select(X)
    with sketchsel.config_context(backend="array_api"):
        got = FastMaxVol(n_select=20, rank=6, **CHOICES[choice]).fit_select(convert(X))
    assert_array_equal(got, expected)


def test_works_as_a_sampler_in_an_imblearn_pipeline():
    from imblearn.pipeline import Pipeline
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(8)
    X = rng.standard_normal((300, 5))
    y = (X[:, 0] > 0).astype(int)
    pipe = Pipeline([("select", FastMaxVol(n_select=0.2)), ("model", LogisticRegression())])
    pipe.fit(X, y)
    assert pipe.named_steps["model"].n_features_in_ == 5
    assert pipe.named_steps["select"].select().size == 60
    assert pipe.predict(X).shape == (300,)


# ------------------------------------------------------------ GRAFT's dynamic rank


def graft_problem(seed=0, n=160, d=24, n_classes=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * 0.9 ** np.arange(d)
    G = rng.standard_normal((n, n_classes))
    G -= G.mean(axis=1, keepdims=True)  # logit gradients of cross-entropy sum to zero
    return X, G


def oracle_residual(X, G, rank):
    """Rows of maxvol on the exact top-rank singular directions, and their residual."""
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    pivots, _ = maxvol(X @ vt[:rank].T)
    target = G.mean(axis=0)
    w, *_ = np.linalg.lstsq(G[pivots].T, target, rcond=None)
    return pivots, np.linalg.norm(G[pivots].T @ w - target) / np.linalg.norm(target)


@pytest.mark.parametrize("eps", [0.5, 0.05])
def test_dynamic_rank_is_the_smallest_rank_within_eps(eps):
    X, G = graft_problem()
    selector = FastMaxVol(n_select=12, strategy="maxvol", rank="auto", eps=eps, row_norms=None,
                          hard_cutoff=0.0).fit(X, gradients=G)
    tried = selector.residuals_
    assert sorted(tried) == list(range(1, selector.rank_ + 1))
    assert selector.residual_ <= eps
    assert all(tried[r] > eps for r in tried if r < selector.rank_)
    for rank, residual in tried.items():
        assert residual == pytest.approx(oracle_residual(X, G, rank)[1], abs=1e-6)
    assert selector.select().size == selector.rank_
    # Zero-sum logit gradients are reproduced exactly by n_classes - 1 rows.
    assert selector.rank_ <= 7


def test_min_residual_rule_samples_candidates_reproducibly():
    X, G = graft_problem(seed=1)
    fit = lambda: FastMaxVol(  # noqa: E731
        n_select=20, strategy="maxvol", rank="auto", rank_rule="min_residual",
        n_rank_candidates=4, random_state=3,
    ).fit(X, gradients=G)
    first, second = fit(), fit()
    assert len(first.residuals_) == 4
    assert first.residuals_ == second.residuals_
    best = min(first.residuals_.values())
    assert first.rank_ == min(r for r, v in first.residuals_.items() if v == best)
    assert_array_equal(first.select(), second.select())


@by_choice
def test_sample_weights_reproduce_the_mean_gradient(choice):
    X, G = graft_problem(seed=2)
    selector = FastMaxVol(n_select=10, **CHOICES[choice]).fit(X, gradients=G)
    chosen = selector.select()
    assert selector.sample_weight_.shape == chosen.shape
    assert selector.residual_ < 1e-8
    assert_allclose(G[chosen].T @ selector.sample_weight_, G.mean(axis=0), atol=1e-8)


def test_dynamic_rank_needs_matching_gradients():
    X, G = graft_problem()
    with pytest.raises(ValueError, match="pass fit\\(X, y, gradients=G\\)"):
        FastMaxVol(strategy="maxvol", rank="auto").fit(X)
    with pytest.raises(ValueError, match="gradients has 159 rows but X has 160"):
        FastMaxVol(strategy="maxvol", rank="auto").fit(X, gradients=G[:-1])
    with pytest.raises(ValueError, match=r"gradients contains NaN or infinity"):
        bad = G.copy()
        bad[0, 0] = np.inf
        FastMaxVol(strategy="maxvol", rank="auto").fit(X, gradients=bad)
    # GRAFT's rank is maxvol's: the default (thinning) refuses it, with or without gradients.
    for gradients in (None, G):
        with pytest.raises(ValueError, match='rank="auto" is GRAFT\'s rank for maxvol: pass '
                                             'strategy="maxvol"'):
            FastMaxVol(rank="auto").fit(X, gradients=gradients)


# ------------------------------------------------------------ sources of batches


@by_choice
def test_a_source_of_batches_selects_what_the_array_does(choice):
    rng = np.random.default_rng(9)
    X = low_rank(n=900, d=40, rank=5, seed=9) + 0.01 * rng.standard_normal((900, 40))
    y = rng.integers(0, 3, 900)
    params = CHOICES[choice]
    expected = FastMaxVol(n_select=0.02, **params).fit(X, y)

    def source():
        return ((X[i : i + 100], y[i : i + 100]) for i in range(0, 900, 100))

    # The last two ask for a rank above the 40 features: X is then used as it is.
    for n_select, rank in [(0.02, None), (18, None), (30, 6), (12, 30), (0.02, 30), (60, None),
                           (50, 45)]:
        for balance in ("auto", None):  # by class (the labels of the batches), and not
            in_memory = FastMaxVol(n_select=n_select, rank=rank, class_balance=balance, **params)
            streamed = FastMaxVol(n_select=n_select, rank=rank, class_balance=balance, **params)
            assert_array_equal(streamed.fit(source).select(), in_memory.fit(X, y).select())
            assert streamed.n_features_in_ == 40
    streamed = FastMaxVol(n_select=0.02, **params).fit(source)
    assert streamed.sampling_strategy_ == expected.sampling_strategy_


@by_choice
def test_a_torch_dataloader_is_a_source(choice):
    from torch.utils.data import DataLoader, TensorDataset

    X = low_rank(n=300, d=20, rank=4, seed=10)
    loader = DataLoader(TensorDataset(torch.from_numpy(X), torch.zeros(300)), batch_size=64)
    expected = FastMaxVol(n_select=4, **CHOICES[choice]).fit_select(X)
    assert_array_equal(FastMaxVol(n_select=4, **CHOICES[choice]).fit(loader).select(), expected)


def test_sources_that_cannot_work_are_refused_clearly():
    X = low_rank(n=200, d=20, rank=4)
    one_shot = (X[i : i + 50] for i in range(0, 200, 50))
    with pytest.raises(TypeError, match="one-shot iterator"):
        FastMaxVol(n_select=4).fit(one_shot)
    source = lambda: iter([X[:100], X[100:]])  # noqa: E731
    with pytest.raises(ValueError, match="labels come from the batches"):
        FastMaxVol(n_select=4).fit(source, np.zeros(200))
    with pytest.raises(ValueError, match=r"yield \(X_batch, y_batch\) pairs"):
        FastMaxVol(n_select=4, class_balance="equal").fit(source)
    with pytest.raises(ValueError, match="no rows"):
        FastMaxVol(n_select=4).fit(lambda: iter([]))


def test_a_source_whose_passes_differ_is_refused_clearly():
    rng = np.random.default_rng(36)
    X, y = rng.standard_normal((300, 10)), np.arange(300) % 3
    passes = []

    def source(first, later, order=lambda n: np.arange(n)):
        def make():
            passes.append(1)
            rows = order(300)[: first if len(passes) == 1 else later]
            return ((X[rows[i : i + 50]], y[rows[i : i + 50]]) for i in range(0, rows.size, 50))
        return make

    for made, message in [
        (source(250, 300), "250 rows in one pass and more in the next"),
        (source(300, 250), "300 rows in one pass and 250 in the next"),
        # A shuffling loader: each pass in another order.
        (source(300, 300, rng.permutation), "other labels in one pass than in the next"),
    ]:
        passes.clear()
        with pytest.raises(ValueError, match=message):
            FastMaxVol(n_select=0.1).fit(made)
    # One sketch per class would take batches of other widths without complaint.
    widths = lambda: iter([(X[:200], y[:200]), (X[200:, :8], y[200:])])  # noqa: E731
    with pytest.raises(ValueError, match="has 8 columns and the first had 10"):
        FastMaxVol(n_select=0.1).fit(widths)


# Each selector with each pass it reads a labelled source in.
@pytest.mark.parametrize(
    "make, pass_that_fails",
    [(lambda: sketchsel.AgreementSelector(n_select=0.1, sketch_size=8, random_state=0), n)
     for n in (1, 2)]
    + [(lambda: sketchsel.AgreementSelector(n_select=0.1, sketch_size=8, strategy="diverse"), n)
       for n in (1, 2)]
    + [(lambda: sketchsel.MomentMatchingSelector(n_select=0.1, sketch_size=8,
                                                  random_state=0), 1)]
    + [(lambda: sketchsel.MomentMatchingSelector(n_select=0.1, sketch_size=8,
                                                  strategy="moments", random_state=0), 1)]
    # rank=4: rows of 10 need a sketch, so FastMaxVol reads the source three times.
    + [(lambda: FastMaxVol(n_select=0.1, rank=4, random_state=0), n) for n in (1, 2, 3)]
    + [(lambda: FastMaxVol(n_select=0.1, rank=4, strategy="maxvol"), n) for n in (1, 2, 3)],
    ids=["agreement-1", "agreement-2", "agreement_diverse-1", "agreement_diverse-2", "moment-1",
         "moment_moments-1", "fast_maxvol-1", "fast_maxvol-2", "fast_maxvol-3", "maxvol-1",
         "maxvol-2", "maxvol-3"],
)
def test_a_fit_that_fails_leaves_the_selector_unfitted(make, pass_that_fails):
    from sklearn.exceptions import NotFittedError

    rng = np.random.default_rng(37)
    X, y = rng.standard_normal((300, 10)), np.arange(300) % 3
    passes = []

    def source():
        passes.append(1)
        for start in range(0, 300, 50):
            if len(passes) == pass_that_fails and start == 150:
                raise OSError("the disk went away")
            yield X[start : start + 50], y[start : start + 50]

    selector = make().fit(X, y)  # an earlier fit, whose choice must not outlive the next
    with pytest.raises(OSError, match="the disk went away"):
        selector.fit(source)
    with pytest.raises(NotFittedError):
        selector.select()
    assert [name for name in vars(selector) if name.endswith("_")] == []
    # And it fits again, to what a fresh selector chooses.
    assert_array_equal(selector.fit(X, y).select(), make().fit(X, y).select())


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: sketchsel.AgreementSelector(n_select=40, sketch_size=16, random_state=0,
                                                 **kw),
        lambda **kw: sketchsel.AgreementSelector(n_select=40, sketch_size=16,
                                                 strategy="diverse", **kw),
        lambda **kw: sketchsel.MomentMatchingSelector(n_select=40, sketch_size=16,
                                                      random_state=0, **kw),
        lambda **kw: sketchsel.MomentMatchingSelector(n_select=40, sketch_size=16,
                                                      strategy="moments", random_state=0, **kw),
        lambda **kw: FastMaxVol(n_select=40, random_state=0, **kw),
        lambda **kw: FastMaxVol(n_select=40, strategy="maxvol", **kw),
    ],
    ids=["agreement", "agreement_diverse", "moment", "moment_moments", "fast_maxvol", "maxvol"],
)
def test_auto_class_balance_is_proportional_with_class_labels_and_none_without(make):
    rng = np.random.default_rng(30)
    X = rng.standard_normal((300, 20))
    y = np.repeat([0, 1, 2], [200, 80, 20])
    auto = make(class_balance="auto").fit(X, y)
    assert auto.class_balance_ == "proportional"
    assert auto.class_quotas_.tolist() == [27, 11, 2]
    assert_array_equal(auto.select(), make(class_balance="proportional").fit(X, y).select())
    unbalanced = make(class_balance=None).fit(X).select()
    for target in (None, rng.standard_normal(300)):  # no labels, or a continuous target
        alone = make(class_balance="auto").fit(X, target)
        assert alone.class_balance_ is None and not hasattr(alone, "classes_")
        assert_array_equal(alone.select(), unbalanced)


def test_row_norms_cap_the_long_rows_at_the_median_or_scale_every_row_to_unit_norm():
    rng = np.random.default_rng(31)
    X = rng.standard_normal((500, 12)) * rng.uniform(0.5, 2.0, (500, 1))
    X[:5] *= 100.0  # five huge rows: raw maxvol takes them first
    X[5:9] = 0.0  # zero rows do not pull the median down
    given = X.copy()
    norms = np.linalg.norm(X, axis=1)
    median = np.median(norms[norms > 0])
    capped = X * np.minimum(1.0, median / np.maximum(norms, 1e-300))[:, None]
    units = X / np.maximum(norms, 1e-300)[:, None]
    def maxvol(row_norms):
        return FastMaxVol(n_select=12, strategy="maxvol", row_norms=row_norms, hard_cutoff=0.0)

    raw = maxvol(None).fit(X)
    assert set(range(5)) <= set(raw.select().tolist()) and raw.norm_cap_ is None
    default = maxvol("median").fit(X)
    assert default.norm_cap_ == pytest.approx(median, rel=1e-12)
    assert not set(range(5)) <= set(default.select().tolist())
    assert_array_equal(default.select(), maxvol(None).fit(capped).select())
    scaled = maxvol("unit").fit(X)
    assert_array_equal(scaled.select(), maxvol(None).fit(units).select())
    assert_allclose(scaled.coefficients_ @ units[scaled.pivots_], units @ np.eye(12), atol=1e-8)
    assert_array_equal(X, given)  # the rows given are not changed
    # Gradients stay as given.
    G = rng.standard_normal((500, 3))
    weighted = FastMaxVol(n_select=12, strategy="maxvol", hard_cutoff=0.0).fit(X, gradients=G)
    chosen = weighted.select()
    target = G.mean(axis=0)
    assert_allclose(G[chosen].T @ weighted.sample_weight_,
                    G[chosen].T @ np.linalg.lstsq(G[chosen].T, target, rcond=None)[0])
    # Every row zero: nothing to cap.
    assert FastMaxVol(n_select=3, strategy="maxvol").fit(np.zeros((20, 4))).norm_cap_ is None


@by_choice
@given(st.integers(1, 80), st.data())
def test_row_norms_auto_caps_below_a_fifth_of_the_rows_and_uses_them_as_given_from_there(
        choice, n, data):
    n_select = data.draw(st.integers(1, n))
    X = np.random.default_rng(n).standard_normal((n, 4)) * np.geomspace(0.1, 10, n)[:, None]
    params = CHOICES[choice]
    auto = FastMaxVol(n_select=n_select, **params).fit(X)
    # Thinning caps its own coordinates, so "auto" leaves the rows as given for it.
    resolved = "median" if 5 * n_select < n and choice == "maxvol" else None
    assert auto.row_norms_ == resolved
    explicit = FastMaxVol(n_select=n_select, row_norms=resolved, **params).fit(X)
    # The cap is the median row length, whichever budget decides to use it.
    assert auto.norm_cap_ == FastMaxVol(n_select=n_select, row_norms="median",
                                        **params).fit(X).norm_cap_
    assert_array_equal(auto.select(), explicit.select())


def test_row_norms_auto_takes_the_longest_rows_only_from_a_fifth_of_the_rows():
    rng = np.random.default_rng(33)
    X = rng.standard_normal((500, 12)) * rng.uniform(0.5, 2.0, (500, 1))
    X[:5] *= 100.0
    for n_select in (100, 0.5):
        chosen = FastMaxVol(n_select=n_select, strategy="maxvol").fit(X).select()
        assert set(range(5)) <= set(chosen.tolist())


@by_choice
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(10, 80), st.floats(0, 0.95), st.data())
def test_hard_cutoff_leaves_out_the_longest_rows_brute_force(choice, seed, n, fraction, data):
    """The cut rows are zero rows to maxvol: chosen only when the others run out; thinning
    chooses among the others only."""
    rng = np.random.default_rng(seed)
    n_select = data.draw(st.integers(1, n))
    # Lengths at least 1.4% apart: no two rows tie for the cut.
    X = rng.standard_normal((n, 6))
    X *= (rng.permutation(np.geomspace(0.1, 5.0, n)) / np.linalg.norm(X, axis=1))[:, None]
    copy = X.copy()
    params = dict(n_select=n_select, row_norms=None, **CHOICES[choice])
    selector = FastMaxVol(hard_cutoff=fraction, **params).fit(X)
    assert_array_equal(X, copy)
    n_cut = min(int(fraction * n), n - n_select)
    assert selector.n_hard_cut_ == n_cut
    cut = np.argsort(np.linalg.norm(X, axis=1))[n - n_cut:]
    if choice == "maxvol":
        zeroed = X.copy()
        zeroed[cut] = 0.0
        expected = FastMaxVol(hard_cutoff=0.0, **params).fit(zeroed)
        assert_array_equal(selector.select(), expected.select())
    # n - n_cut >= n_select rows kept, none of them zero: no cut row is needed.
    assert not np.isin(cut, selector.select()).any()


def test_hard_cutoff_auto_leaves_out_a_tenth_below_a_fifth_with_or_without_labels():
    rng = np.random.default_rng(34)
    X = rng.standard_normal((300, 20)) * rng.uniform(0.2, 3.0, (300, 1))
    y = np.repeat([0, 1, 2], [150, 100, 50])
    lengths = np.linalg.norm(X, axis=1)
    params = CHOICES["maxvol"]  # thinning cuts none (test_policy)
    for n_select, n_cut in ((30, 30), (59, 30), (60, 0), (0.5, 0)):
        selector = FastMaxVol(n_select=n_select, **params).fit(X)
        assert selector.n_hard_cut_ == n_cut
        assert not np.isin(np.argsort(lengths)[300 - n_cut:], selector.select()).any()
    # By class: each class's own tenth, decided on its quota.
    balanced = FastMaxVol(n_select=30, class_balance="proportional", **params).fit(X, y)
    assert balanced.class_quotas_.tolist() == [15, 10, 5]
    assert balanced.n_hard_cut_ == [15, 10, 5]
    for label in range(3):
        rows = np.flatnonzero(y == label)
        longest = rows[np.argsort(lengths[rows])[-rows.size // 10:]]
        assert not np.isin(longest, balanced.select()).any()
    equal = FastMaxVol(n_select=30, class_balance="equal", **params).fit(X, y)
    assert equal.n_hard_cut_ == [15, 10, 0]  # a quota of 10 of 50 is a fifth


@by_choice
def test_row_norms_from_a_source_of_batches_equal_the_in_memory_choice(choice):
    rng = np.random.default_rng(32)
    X = rng.standard_normal((400, 30)) * rng.uniform(0.1, 10, (400, 1))
    for row_norms, hard_cutoff in itertools.product(("auto", "median", "unit", None),
                                                    ("auto", 0.0, 0.3)):
        for n_select in (20, 0.1, 0.5, 80):
            params = dict(n_select=n_select, row_norms=row_norms, hard_cutoff=hard_cutoff,
                          **CHOICES[choice])
            in_memory = FastMaxVol(**params).fit(X)
            streamed = FastMaxVol(**params).fit(lambda: iter(np.array_split(X, 6)))
            assert streamed.row_norms_ == in_memory.row_norms_
            assert streamed.norm_cap_ == in_memory.norm_cap_
            small = 5 * resolve_n_select(n_select, 400) < 400
            cuts = small and choice == "maxvol"  # thinning caps the long rows instead
            expected = {"auto": 40 if cuts else 0, 0.0: 0, 0.3: 120}[hard_cutoff]
            assert streamed.n_hard_cut_ == in_memory.n_hard_cut_ == expected
            assert_array_equal(streamed.select(), in_memory.select())


def test_proportional_quotas_break_equal_remainders_towards_the_first_classes():
    # 40 * [200, 80, 20] / 300 = [26.67, 10.67, 2.67]: three equal remainders, two rows left.
    assert class_quotas([200, 80, 20], 40, "proportional").tolist() == [27, 11, 2]
    assert class_quotas([20, 80, 200], 40, "proportional").tolist() == [3, 11, 26]


@by_choice
@pytest.mark.parametrize("class_balance", ["auto", "proportional", "equal"])
def test_class_balance_from_a_source_of_batches_equals_the_in_memory_choice(class_balance,
                                                                           choice):
    rng = np.random.default_rng(33)
    X = rng.standard_normal((400, 30)) * rng.uniform(0.1, 10, (400, 1))
    sorted_y = np.repeat([0, 1, 2], [250, 120, 30])

    # Budgets with a class left without rows (2), classes wider and narrower than their
    # rank (0.5: quotas of 125 and 15 with 30 features), a rank below the quotas, and
    # batches of mixed classes or mostly of one.
    for n_select, rank, row_norms, hard_cutoff, y in itertools.product(
            (2, 20, 0.1, 0.5), (None, 4), ("auto", None), ("auto", 0.0),
            (rng.permutation(sorted_y), sorted_y)):
        params = dict(n_select=n_select, rank=rank, row_norms=row_norms,
                      hard_cutoff=hard_cutoff, class_balance=class_balance, **CHOICES[choice])
        in_memory = FastMaxVol(**params).fit(X, y)
        streamed = FastMaxVol(**params).fit(
            lambda: ((X[i : i + 70], y[i : i + 70]) for i in range(0, 400, 70)))
        assert_array_equal(streamed.class_quotas_, in_memory.class_quotas_)
        assert streamed.n_hard_cut_ == in_memory.n_hard_cut_
        assert streamed.rank_ == in_memory.rank_
        assert_array_equal(streamed.select(), in_memory.select())


def test_a_source_is_read_in_three_passes_or_two_when_nothing_needs_one():
    rng = np.random.default_rng(35)
    X, y = rng.standard_normal((300, 12)), np.arange(300) % 3
    passes = []

    def source():
        passes.append(1)
        return ((X[i : i + 64], y[i : i + 64]) for i in range(0, 300, 64))

    # rank=4: rows of 12 need a sketch. Without it, rows no wider than the directions
    # kept (2 * 128 under thinning; under maxvol the rank, here the quota of 20) need none:
    # the lengths, then the rows.
    for params, expected in [({"rank": 4}, 3), ({"rank": 4, "class_balance": None}, 3),
                             ({"rank": 4, "class_balance": None, "row_norms": None,
                               "hard_cutoff": 0.0}, 2),
                             ({"rank": 4, "row_norms": None, "hard_cutoff": 0.0}, 3),
                             ({}, 2), ({"strategy": "maxvol", "class_balance": None}, 2)]:
        passes.clear()
        FastMaxVol(n_select=20, **params).fit(source)
        assert len(passes) == expected, params


@by_choice
def test_auto_balancing_of_maxvol_from_an_unlabelled_source_is_none(choice):
    X = np.random.default_rng(33).standard_normal((200, 10))
    params = CHOICES[choice]
    unlabelled = FastMaxVol(n_select=20, **params).fit(lambda: iter(np.array_split(X, 4)))
    assert unlabelled.class_balance_ is None
    assert_array_equal(unlabelled.select(), FastMaxVol(n_select=20, **params).fit(X).select())
    y = np.arange(200) % 2
    with pytest.raises(ValueError, match="Some batches yielded labels"):
        sketchsel.MomentMatchingSelector(n_select=20, sketch_size=4).fit(
            lambda: iter([(X[:100], y[:100]), X[100:]]))


@settings(max_examples=30, deadline=None)
@given(st.integers(20, 400), st.integers(1, 300), st.integers(0, 2**31 - 1))
def test_thinning_represents_on_a_fixed_rank_and_maxvol_on_the_quota(n_rows, n_features, seed):
    from sketchsel.selection._fast_maxvol import THINNING_RANK

    X = np.random.default_rng(seed).standard_normal((n_rows, n_features))
    for n_select in (1, n_rows // 10 or 1, n_rows // 2):
        thinned = FastMaxVol(n_select=n_select, random_state=seed).fit(X)
        assert thinned.rank_ == min(THINNING_RANK, n_features)
        assert thinned.select().size == n_select
        maxvol = FastMaxVol(n_select=n_select, strategy="maxvol").fit(X)
        assert maxvol.rank_ == min(n_select, n_features)


def test_thinning_follows_each_class_on_its_own_leading_directions():
    """Exact SVD as the oracle: a class's directions, in the span of all the rows' sketch."""
    from sklearn.utils import check_random_state

    from sketchsel.selection._thinning import group_thinning

    rng = np.random.default_rng(5)
    rank = 4
    # Rank 7 < 2 * rank: the span of the sketch of all the rows (2 * rank directions) holds
    # every row, so each class's leading directions in it are those of its exact SVD.
    basis = np.linalg.qr(rng.standard_normal((30, 7)))[0]
    y = rng.integers(0, 3, 600)
    # Class 1 is long where the others are short: one set of directions for all chooses
    # otherwise.
    spectrum = np.where((y == 1)[:, None], np.linspace(1.0, 6.0, 7), np.linspace(6.0, 1.0, 7))
    X = rng.standard_normal((600, 7)) * spectrum @ basis.T
    selector = FastMaxVol(n_select=60, rank=rank, random_state=0).fit(X, y)
    generator, expected = check_random_state(0), []
    for label, quota in zip(selector.classes_, selector.class_quotas_):
        rows = np.flatnonzero(y == label)
        directions = np.linalg.svd(X[rows], full_matrices=False)[2][:rank].T
        coordinates = X[rows] @ directions
        norms = np.linalg.norm(coordinates, axis=1)
        capped = coordinates * np.minimum(1.0, np.median(norms) / norms)[:, None]
        expected.append(rows[group_thinning(np, capped, quota, generator)])
    assert_array_equal(selector.select(), np.sort(np.concatenate(expected)))
