"""The Numba kernel of group thinning on NumPy arrays (see ``_thinning``).

This module imports Numba; it is imported only when the NumPy kernel runs.
"""

import numpy as np
from numba import njit

# Costs closer than this, relative to their terms, are a tie.
TIE = 1e-12


@njit(cache=True)
def thin(rows, order, bounds, out):
    """Fill ``out`` with one row of each group of ``order[bounds[j]:bounds[j + 1]]``.

    The running difference is kept in float64; each group is read twice,
    once for its mean and once for the costs.
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
            # Ties (the first group's two rows cost exactly alike) go to the first row
            # visited, whatever the rounding of the back-end: a relative tolerance.
            if p == start or cost < best_cost - TIE * (scale + abs(best_cost)):
                best, best_cost = order[p], cost
        for c in range(n_features):
            difference[c] += rows[best, c]
        out[group] = best
    return out
