"""The selection policy: one plan, the same quotas, cut and labels in every selector."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.preprocessing import label_binarize

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector
from sketchsel.linalg import projection_block
from sketchsel.selection._policy import class_quotas

SELECTORS = [AgreementSelector, FastMaxVol, MomentMatchingSelector]
# Each selector's published rule: hard_cutoff="auto" cuts under it, not under thinning.
PUBLISHED = {AgreementSelector: "top", FastMaxVol: "maxvol", MomentMatchingSelector: "moments"}
SIZES = [400, 120, 50, 20, 10]


def round_robin_quotas(counts, n_select):
    """Brute force of "equal": one row at a time to the class with the fewest so far
    that still has rows, ties to the class listed first."""
    quotas = [0] * len(counts)
    for _ in range(n_select):
        open_classes = [c for c in range(len(counts)) if quotas[c] < counts[c]]
        quotas[min(open_classes, key=lambda c: (quotas[c], c))] += 1
    return quotas


def largest_remainder_quotas(counts, n_select):
    """Brute force of "proportional", in exact fractions: floors, then one row each to the
    largest remainders, ties to the class listed first."""
    shares = [Fraction(n_select * count, sum(counts)) for count in counts]
    quotas = [int(share) for share in shares]
    order = sorted(range(len(counts)), key=lambda c: (-(shares[c] - quotas[c]), c))
    for c in order[: n_select - sum(quotas)]:
        quotas[c] += 1
    return quotas


@given(st.lists(st.integers(1, 60), min_size=1, max_size=6), st.data())
def test_class_quotas_against_brute_force(counts, data):
    n_select = data.draw(st.integers(0, sum(counts)))
    assert class_quotas(counts, n_select, "equal").tolist() == round_robin_quotas(
        counts, n_select)
    assert class_quotas(counts, n_select, "proportional").tolist() == (
        largest_remainder_quotas(counts, n_select))


def long_tailed(seed=0, d=40):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.repeat(np.arange(len(SIZES)), SIZES))
    G = rng.standard_normal((len(SIZES), d))[y] * 2 + rng.standard_normal((y.size, d))
    return G * rng.uniform(0.5, 3.0, (y.size, 1)), y


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("class_balance", ["equal", "proportional", "auto"])
@pytest.mark.parametrize("n_select", [150, 60, 330])
@pytest.mark.parametrize("thins", [True, False], ids=["thinning", "published"])
def test_every_selector_plans_the_same_quotas_and_cut(selector, class_balance, n_select, thins):
    G, y = long_tailed()
    strategy = "thinning" if thins else PUBLISHED[selector]
    fitted = selector(n_select=n_select, class_balance=class_balance, strategy=strategy,
                      random_state=0).fit(G, y)
    brute = round_robin_quotas if class_balance == "equal" else largest_remainder_quotas
    quotas = brute(SIZES, n_select)
    assert fitted.class_quotas_.tolist() == quotas
    assert np.bincount(y[fitted.select()], minlength=len(SIZES)).tolist() == quotas
    # hard_cutoff="auto": none under thinning, which caps the long rows; otherwise a tenth
    # of a class whose quota is below a fifth of its rows, never leaving fewer rows than
    # the quota (the lengths here have no ties).
    assert fitted.n_hard_cut_ == [
        None if quota == 0 else 0 if thins else min(size // 10, size - quota)
        if 5 * quota < size else 0 for size, quota in zip(SIZES, quotas)
    ]


def test_the_issue_cases_of_equal_quotas():
    assert class_quotas(SIZES, 150, "equal").tolist() == [40, 40, 40, 20, 10]
    assert class_quotas([100, 100, 3], 60, "equal").tolist() == [29, 28, 3]


def test_the_cutoff_row_norms_and_fallback_are_judged_per_class():
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], [500, 20])
    X = rng.standard_normal((520, 6)) * rng.uniform(0.5, 3.0, (520, 1))
    # Equal quotas of 20: small for the 500 rows of class 0, the whole of class 1.
    maxvol = FastMaxVol(n_select=40, strategy="maxvol", class_balance="equal").fit(X, y)
    assert maxvol.row_norms_ == ["median", None]
    assert maxvol.n_hard_cut_ == [50, 0]
    agreement = AgreementSelector(n_select=40, strategy="diverse", class_balance="equal").fit(X, y)
    assert agreement.fallback_used_ == [False, True]
    assert agreement.n_hard_cut_ == [50, 0]


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("class_balance", ["auto", "equal"])
def test_a_label_indicator_y_is_read_as_its_labels(selector, class_balance):
    G, y = long_tailed(seed=1)
    labels = selector(n_select=80, class_balance=class_balance, random_state=0).fit(G, y)
    onehot = label_binarize(y, classes=np.arange(len(SIZES)))
    indicator = selector(n_select=80, class_balance=class_balance, random_state=0)
    X_small, y_small = indicator.fit_resample(G, onehot)
    assert_array_equal(indicator.select(), labels.select())
    assert_array_equal(indicator.class_quotas_, labels.class_quotas_)
    assert_array_equal(y_small, onehot[labels.select()])
    assert indicator.sampling_strategy_ == labels.sampling_strategy_


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda cls: cls.__name__)
def test_a_label_indicator_from_a_source_is_read_as_its_labels(selector):
    G, y = long_tailed(seed=2)
    onehot = label_binarize(y, classes=np.arange(len(SIZES)))

    def batches():
        for start in range(0, y.size, 128):
            yield G[start:start + 128], onehot[start:start + 128]

    from_source = selector(n_select=60, random_state=0).fit(batches)
    assert_array_equal(from_source.select(),
                       selector(n_select=60, random_state=0).fit(G, y).select())


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda cls: cls.__name__)
def test_a_2d_y_that_is_not_an_indicator_is_refused(selector):
    G, y = long_tailed(seed=3)
    several = label_binarize(y, classes=np.arange(len(SIZES)))
    several[0] = 1  # a row with every label
    for bad in (several, np.random.default_rng(0).standard_normal((y.size, 2))):
        with pytest.raises(ValueError, match="label-indicator matrix with a single 1"):
            selector(n_select=20).fit(G, bad)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(2, 40), st.integers(41, 300))
def test_one_gaussian_projection_for_every_selector(seed, k, d):
    G = np.random.default_rng(seed).standard_normal((50, d))
    agreement = AgreementSelector(n_select=5, projection="gaussian", sketch_size=k,
                                  random_state=seed).fit(G)
    assert_array_equal(agreement.components_, projection_block(0, d, k, seed=seed).T)
    moment = MomentMatchingSelector(n_select=5, sketch_size=k, random_state=seed)
    assert_allclose(moment.project(G), agreement.project(G), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda cls: cls.__name__)
def test_class_docstrings_are_short_and_filled(selector):
    lines = selector.__doc__.splitlines()
    assert len(lines) <= 175
    assert not any("[[" in line for line in lines)
    assert any(line.strip().startswith("class_balance : ") for line in lines)


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda cls: cls.__name__)
def test_labels_of_another_length_are_refused_without_class_balancing_too(selector):
    G, y = long_tailed(seed=4)
    with pytest.raises(ValueError, match=f"y has {y.size - 1} labels but X has {y.size}"):
        selector(n_select=20, class_balance=None).fit(G, y[:-1])


def test_the_preference_is_one_decision_for_the_whole_subset():
    """Brute force: below half of all the rows, every class keeps its most agreeing rows."""
    rng = np.random.default_rng(7)
    y = np.repeat([0, 1], [300, 30])
    X = rng.standard_normal((330, 6))
    # Equal quotas of 20: a fifteenth of class 0, two thirds of class 1, 40 of 330 rows.
    selector = AgreementSelector(n_select=40, strategy="top", class_balance="equal",
                                 hard_cutoff=0.0).fit(X, y)
    expected = []
    for label, quota in zip(selector.classes_, selector.class_quotas_):
        rows = np.flatnonzero(y == label)
        expected += rows[np.argsort(-selector.scores_[rows], kind="stable")[:quota]].tolist()
    assert_array_equal(selector.select(), np.sort(expected))
