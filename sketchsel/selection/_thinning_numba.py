"""The Numba kernel of group thinning on NumPy arrays (see ``_thinning``).

This module imports Numba; it is imported only when the NumPy kernel runs.
"""

import numpy as np
from numba import njit

# Reassociation lets LLVM vectorise the sums over a row's features, two to three times
# faster at 128 to 256 features; the sums stay finite (no "nnan"/"ninf": the first cost
# is compared with inf), and a change of rounding of that size is far below the tie.
_FASTMATH = {"reassoc", "nsz", "arcp", "contract"}


@njit(cache=True, fastmath=_FASTMATH)
def thin(rows, order, bounds, out, tie, factors):
    """Fill ``out`` with one row of each group of ``order[bounds[j]:bounds[j + 1]]``.

    The walk follows ``rows * factors[:, None]``, each product in the rows'
    dtype. The running difference is kept in float64; each group's rows are
    gathered (and scaled) once into a float64 block, summed for its mean as
    they are gathered, and read again for the costs (the rows are visited in
    random order, so a second gather would read memory again). Costs within
    ``tie`` of each other, relative to their terms, are a tie, which goes to
    the first row visited (an argument, not a global, so that Numba's cache
    cannot keep an old value).
    """
    n_features = rows.shape[1]
    difference = np.zeros(n_features)
    total = np.empty(n_features)
    largest = 0
    for group in range(bounds.shape[0] - 1):
        largest = max(largest, bounds[group + 1] - bounds[group])
    block = np.empty((largest, n_features))
    for group in range(bounds.shape[0] - 1):
        start, size = bounds[group], bounds[group + 1] - bounds[group]
        total[:] = 0.0
        for i in range(size):
            row = order[start + i]
            factor = factors[row]
            for c in range(n_features):
                value = np.float64(rows[row, c] * factor)
                block[i, c] = value
                total[c] += value
        for c in range(n_features):
            difference[c] -= total[c] / size
        best, best_cost = 0, np.inf
        for i in range(size):
            cost, scale = 0.0, 0.0
            for c in range(n_features):
                value = block[i, c]
                twice = 2.0 * difference[c]
                cost += value * (twice + value)
                scale += value * value + abs(twice * value)
            if i == 0 or cost < best_cost - tie * (scale + abs(best_cost)):
                best, best_cost = i, cost
        for c in range(n_features):
            difference[c] += block[best, c]
        out[group] = order[start + best]
    return out
