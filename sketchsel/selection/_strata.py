"""Score-stratified sampling: a budget spread over the whole range of a score."""

import numpy as np

from ._policy import class_quotas


def stratified_sample(rng, scores, n, n_strata=10):
    """Draw n rows that cover the range of ``scores`` evenly, stratum by stratum.

    The range ``[min(scores), max(scores)]`` is cut into ``n_strata``
    intervals of equal width; the budget is shared among the non-empty ones
    by water-filling (every stratum gets the same share, and what a stratum
    too small for its share leaves goes to the others, again equally), and
    each stratum's rows are drawn uniformly without replacement. This is the
    sampling step of coverage-centric coreset selection (Zheng et al., ICLR
    2023): a sparse stratum is kept whole, a dense one is thinned, so the
    sample covers rare scores as well as common ones.

    Parameters
    ----------
    rng : numpy.random.Generator or numpy.random.RandomState
        Source of randomness.
    scores : ndarray of shape (m,)
        Finite scores.
    n : int
        Rows to draw, ``0 <= n <= m``.
    n_strata : int, default=10
        Intervals of equal width the score range is cut into.

    Returns
    -------
    indices : ndarray of shape (n,), int64
        Positions in ``scores``, grouped by stratum from the lowest scores up.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.selection._strata import stratified_sample
    >>> scores = np.r_[np.zeros(90), np.ones(10)]   # a rare score: 10 rows of 100
    >>> rows = stratified_sample(np.random.default_rng(0), scores, 20, n_strata=2)
    >>> int(np.sum(scores[rows] == 1))              # random rows would hold 2
    10
    """
    scores = np.asarray(scores, dtype=np.float64)
    low, high = float(scores.min(initial=0.0)), float(scores.max(initial=0.0))
    if high > low:
        edges = np.linspace(low, high, n_strata + 1)[1:-1]
        strata = np.searchsorted(edges, scores, side="right")
    else:
        strata = np.zeros(scores.shape[0], dtype=np.int64)
    return quota_sample(rng, strata, n)


def quota_sample(rng, groups, n, mode="equal"):
    """Draw n rows by group quotas, uniformly within groups.

    Parameters
    ----------
    rng : numpy.random.Generator or numpy.random.RandomState
        Source of randomness.
    groups : ndarray of shape (m,)
        Group label of each row.
    n : int
        Rows to draw, ``0 <= n <= m``.
    mode : {"equal", "proportional"}, default="equal"
        How ``n`` is shared among the groups: the same number from every
        group where it can (water-filling), or each group's share of the rows
        (see :func:`~sketchsel.selection._policy.class_quotas`).

    Returns
    -------
    indices : ndarray of shape (n,), int64
        Positions in ``groups``, grouped by group in sorted label order.
    """
    _, codes, counts = np.unique(groups, return_inverse=True, return_counts=True)
    quotas = class_quotas(counts, n, mode)
    parts = [
        rng.choice(np.flatnonzero(codes == code), quota, replace=False)
        for code, quota in enumerate(quotas)
    ]
    return np.concatenate([np.empty(0, dtype=np.int64), *parts]).astype(np.int64)
