"""Score-stratified and equal-quota sampling against brute force on known strata."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from sketchsel.selection._strata import quota_sample, stratified_sample


def round_robin(sizes, n):
    """Brute force of the equal quotas: one row per stratum in turn, lowest stratum first."""
    quotas, left = [0] * len(sizes), n
    while left:
        for j, size in enumerate(sizes):
            if left and quotas[j] < size:
                quotas[j] += 1
                left -= 1
    return quotas


@given(
    st.integers(1, 12),
    st.lists(st.integers(0, 11), min_size=1, max_size=80),
    st.floats(0, 1),
    st.integers(0, 2**31 - 1),
)
def test_every_stratum_gets_its_equal_share(n_strata, labels, share, seed):
    """Scores built inside known strata: stratum j holds scores in (j + 0.1, j + 0.9)."""
    rng = np.random.default_rng(seed)
    strata = np.minimum(np.asarray(labels), n_strata - 1)
    scores = strata + rng.uniform(0.1, 0.9, strata.size)
    # Two anchors pin the range to [0, n_strata], so the edges are the integers.
    scores = np.r_[scores, 0.0, float(n_strata)]
    strata = np.r_[strata, 0, n_strata - 1]
    n = int(share * scores.size)
    rows = stratified_sample(np.random.default_rng(seed), scores, n, n_strata)
    assert rows.dtype == np.int64 and rows.size == n == np.unique(rows).size
    present = np.unique(strata)
    sizes = [int(np.sum(strata == j)) for j in present]
    taken = [int(np.sum(strata[rows] == j)) for j in present]
    assert taken == round_robin(sizes, n)
    if n >= present.size:
        assert min(taken) >= 1  # every stratum is covered


def test_rare_scores_are_kept_where_random_rows_would_miss_them():
    scores = np.r_[np.zeros(990), np.ones(10)]
    rows = stratified_sample(np.random.default_rng(0), scores, 20, n_strata=2)
    assert np.sum(scores[rows] == 1) == 10


def test_equal_scores_are_one_stratum_drawn_uniformly():
    counts = np.zeros(10)
    for seed in range(2000):
        counts[stratified_sample(np.random.default_rng(seed), np.full(10, 0.3), 3)] += 1
    # Each row is drawn with probability 3/10: 600 times in expectation, sd about 20.5.
    assert np.all(np.abs(counts - 600) < 6 * 20.5)


def test_same_generator_state_gives_the_same_rows():
    scores = np.random.default_rng(1).standard_normal(200)
    first = stratified_sample(np.random.default_rng(5), scores, 40)
    assert_array_equal(first, stratified_sample(np.random.default_rng(5), scores, 40))


def test_quota_sample_water_fills_the_groups():
    groups = np.repeat(["a", "b", "c"], [2, 30, 50])
    rows = quota_sample(np.random.default_rng(0), groups, 40)
    assert [int(np.sum(groups[rows] == g)) for g in "abc"] == [2, 19, 19]
    assert np.unique(rows).size == 40
