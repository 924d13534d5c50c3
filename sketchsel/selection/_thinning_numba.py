"""The Numba kernel of group thinning on NumPy arrays (see ``_thinning``).

This module imports Numba; it is imported only when the NumPy kernel runs.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def thin(rows, order, bounds, out, tie):
    """Fill ``out`` with one row of each group of ``order[bounds[j]:bounds[j + 1]]``.

    The running difference is kept in float64; each group is read twice,
    once for its mean and once for the costs. Costs within ``tie`` of each
    other, relative to their terms, are a tie, which goes to the first row
    visited (an argument, not a global, so that Numba's cache cannot keep
    an old value).
    """
    n_features = rows.shape[1]
    difference = np.zeros(n_features)
    total = np.zeros(n_features)
    for group in range(bounds.shape[0] - 1):
        start, stop = bounds[group], bounds[group + 1]
        total[:] = 0.0
        for p in range(start, stop):
            for c in range(n_features):
                total[c] += rows[order[p], c]
        for c in range(n_features):
            difference[c] -= total[c] / (stop - start)
        best, best_cost = order[start], np.inf
        for p in range(start, stop):
            cost, scale = 0.0, 0.0
            for c in range(n_features):
                value = rows[order[p], c]
                cost += value * (2.0 * difference[c] + value)
                scale += value * value + abs(2.0 * value * difference[c])
            if p == start or cost < best_cost - tie * (scale + abs(best_cost)):
                best, best_cost = order[p], cost
        for c in range(n_features):
            difference[c] += rows[best, c]
        out[group] = best
    return out
