"""Group thinning: a subset whose mean follows the data's, in one pass over the rows.

Random subsets match the data's mean at the Monte-Carlo rate, an error of
order ``1 / sqrt(k)`` for ``k`` rows. Thinning chooses each row so that the
subset cancels its own discrepancy: the rows are visited in random order in
``k`` consecutive groups of about ``n / k`` rows, and from each group it keeps
the row that best cancels the running difference between the sum of the rows
kept and the sum of the groups' means. This is the one-pass, grouped form of
kernel herding with a linear kernel (Chen, Welling & Smola, UAI 2010; the
self-balancing walks of kernel thinning, Dwivedi & Mackey, COLT 2021, bound
the same running sum). It takes no more than one row from each group, so it
cannot crowd into the long rows, outliers or wrong labels, which volume and
hardness rules pick. O(n * d) time, O(d) memory besides the rows.
"""

import numpy as np
from array_api_compat import is_numpy_namespace

from .._array_api import cap_factors, device, median_norm, row_norms, to_numpy

# Costs closer than this, relative to their terms, are a tie, which goes to the first row
# visited: the first group's two rows cost exactly alike, and rounding must not decide.
TIE = 1e-12


def median_cap(xp, rows, norms=None):
    """The factor of each row that caps it at the median non-zero length; None if all are 0.

    What thinning follows: a row's pull on the running sum is its length, so
    uncapped the longest gradients (hard examples and wrong labels, the
    rows a hard cutoff would drop) steer the walk. Capped, they stay
    eligible but pull no harder than a typical row; on imbalanced data a
    cut instead loses the majority rows nearest the minority
    (``benchmarks/results/bench_quality.md``). The walk applies the factors
    as it reads the rows (``group_thinning``'s ``scale``), so no capped copy
    is made. ``norms``: the rows' norms where the caller has them already
    (float64 on the host, cast back to the rows' dtype: the norms computed
    in that dtype, exactly).
    """
    if norms is None:
        norms = row_norms(xp, rows)
    else:
        norms = xp.asarray(norms, dtype=rows.dtype, device=device(rows))
    cap = median_norm([norms])
    return None if cap is None else cap_factors(xp, norms, cap)


def group_bounds(n_rows, n_groups):
    """Bounds of ``n_groups`` consecutive groups of ``n_rows`` rows, sizes within one."""
    return (np.arange(n_groups + 1, dtype=np.int64) * n_rows) // n_groups


def group_thinning(xp, rows, n_select, rng, scale=None):
    """Positions of ``n_select`` of ``rows`` chosen by group thinning.

    Parameters
    ----------
    xp : namespace
        The array namespace of ``rows``.
    rows : array of shape (n_rows, d)
        Coordinates of the rows (a class's projections on leading directions,
        say); their mean is what the subset follows.
    n_select : int
        Rows to choose, ``1 <= n_select <= n_rows``.
    rng : numpy.random.RandomState or numpy.random.Generator
        Draws the order in which the rows are visited.
    scale : array of shape (n_rows,) or None, default=None
        A factor for each row, in the rows' dtype: the walk follows
        ``rows * scale[:, None]`` (the median cap, :func:`median_cap`)
        without making that copy.

    Returns
    -------
    positions : ndarray of shape (n_select,), int64
        Positions in ``rows``, one from each group, in the order chosen.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.selection._thinning import group_thinning
    >>> rows = np.random.default_rng(0).standard_normal((10_000, 8))
    >>> chosen = group_thinning(np, rows, 100, np.random.RandomState(0))
    >>> thinned = np.linalg.norm(rows[chosen].mean(axis=0) - rows.mean(axis=0))
    >>> random = np.linalg.norm(rows[:100].mean(axis=0) - rows.mean(axis=0))
    >>> bool(thinned < random / 10)
    True
    """
    n_rows = rows.shape[0]
    order = rng.permutation(n_rows).astype(np.int64)
    bounds = group_bounds(n_rows, n_select)
    if is_numpy_namespace(xp):
        from ._thinning_numba import thin

        scale = np.ones(n_rows, dtype=rows.dtype) if scale is None else np.asarray(scale)
        return thin(np.ascontiguousarray(rows), order, bounds, np.empty(n_select, np.int64),
                    TIE, scale)
    return _thin_reference(xp, rows if scale is None else rows * scale[:, None], order, bounds)


def _thin_reference(xp, rows, order, bounds):
    """The array-API form of the Numba kernel, group by group; the sums in float64."""
    difference = xp.zeros(rows.shape[1], dtype=xp.float64, device=device(rows))
    chosen = np.empty(bounds.size - 1, dtype=np.int64)
    for group in range(bounds.size - 1):
        members = order[bounds[group]:bounds[group + 1]]
        block = xp.astype(xp.take(rows, xp.asarray(members, device=device(rows)), axis=0),
                          xp.float64)
        difference = difference - xp.sum(block, axis=0) / block.shape[0]
        # ||difference + x||^2 - ||difference||^2, for each row x of the group
        cost = np.asarray(to_numpy(xp.sum(block * (2 * difference + block), axis=1)))
        scale = np.asarray(to_numpy(xp.sum(block * block + xp.abs(2 * block * difference),
                                           axis=1)))
        best = _first_best(cost, scale)
        difference = difference + block[best, :]
        chosen[group] = members[best]
    return chosen



def _first_best(cost, scale):
    """The first position of least cost, a tie within TIE of the terms going to the first."""
    best = 0
    for position in range(1, cost.size):
        if cost[position] < cost[best] - TIE * (scale[position] + abs(cost[best])):
            best = position
    return best
