"""Euclidean projection onto the capped simplex, and linear minimisation over it.

The capped simplex ``{s : 0 <= s_i <= cap, sum(s) = 1}`` is the feasible set of
a relaxed choice of ``1 / cap`` rows out of ``n``: each row gets a share of at
most ``cap``, and the shares sum to one. Both routines are written against the
array API, so they run in the namespace (and on the device) of their input.
"""

from numbers import Real

import numpy as np
from array_api_compat import is_array_api_obj
from sklearn.utils._param_validation import Interval, validate_params

from .._array_api import array_namespace, device


def _as_vector(v, name):
    xp = array_namespace(v)
    if v.ndim != 1 or v.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array; got shape {tuple(v.shape)}.")
    if not xp.isdtype(v.dtype, "real floating"):
        v = xp.astype(v, xp.float64)
    return v, xp


def _capped_simplex_projection(xp, v, cap):
    """The body of :func:`capped_simplex_projection`, for validated input."""
    n = v.shape[0]
    # s = clip(v - tau, 0, cap) with phi(tau) = sum(s) = 1; phi is piecewise
    # linear and non-increasing, with kinks at v_i and v_i - cap. A binary
    # search over the sorted kinks finds the piece holding the root, O(log n)
    # evaluations of phi, on which phi is linear and solved exactly.
    w = xp.sort(v)
    zero = xp.zeros(1, dtype=w.dtype, device=device(w))
    prefix = xp.concat([zero, xp.cumulative_sum(w)])
    # Two sorted runs: a stable sort merges them in linear time.
    kinks = xp.sort(xp.concat([w - cap, w]))

    def pieces(tau):
        """At the points tau: cap times the capped count, the sum and count of the rest."""
        above = xp.searchsorted(w, tau + cap, side="left")  # rows below the cap: w < tau + cap
        below = xp.searchsorted(w, tau, side="right")  # rows at zero: w <= tau
        capped = cap * float(n - int(above[0]))
        return capped, float(xp.take(prefix, above)[0] - xp.take(prefix, below)[0]), int(
            above[0] - below[0]
        )

    def phi(k):
        capped, partial, count = pieces(kinks[k : k + 1])
        return capped + partial - float(kinks[k]) * count

    # phi(min(v) - cap) = n * cap >= 1 and phi(max(v)) = 0 < 1.
    low, high = 0, kinks.shape[0] - 1
    while high - low > 1:
        middle = (low + high) // 2
        if phi(middle) >= 1.0:
            low = middle
        else:
            high = middle
    capped, partial, count = pieces((kinks[low : low + 1] + kinks[high : high + 1]) / 2)
    tau = kinks[low] if count == 0 else (capped + partial - 1.0) / count
    return xp.clip(v - tau, 0.0, cap)


@validate_params(
    {"v": ["array-like"], "cap": [Interval(Real, 0, None, closed="neither")]},
    prefer_skip_nested_validation=True,
)
def capped_simplex_projection(v, cap):
    """Closest point to v of the capped simplex ``{s : 0 <= s_i <= cap, sum(s) = 1}``.

    The projection is ``clip(v - tau, 0, cap)`` for the one shift ``tau``
    that makes it sum to one, found exactly (not by bisection) in
    O(n log n) operations.

    Parameters
    ----------
    v : array of shape (n,)
        Point to project, from any array-API namespace.
    cap : float
        Largest share of one entry; ``n * cap >= 1`` is needed for the set to
        be non-empty (``cap = 1 / k`` relaxes a choice of k entries out of n).

    Returns
    -------
    s : array of shape (n,)
        The projection, in the namespace, device and floating dtype of v
        (integers become float64).

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.linalg import capped_simplex_projection
    >>> s = capped_simplex_projection(np.array([3.0, 1.0, 0.2, -1.0]), cap=0.5)
    >>> s
    array([0.5, 0.5, 0. , 0. ])
    >>> capped_simplex_projection(np.array([0.3, 0.2, 0.1]), cap=0.5)
    array([0.43333333, 0.33333333, 0.23333333])
    """
    v, xp = _as_vector(v if is_array_api_obj(v) else np.asarray(v), "v")
    n = v.shape[0]
    if n * cap < 1 - 1e-12:
        raise ValueError(
            f"cap={cap} is too small for {n} entries: shares of at most cap cannot sum to 1 "
            f"unless n * cap >= 1; raise cap to at least 1 / {n}."
        )
    if not bool(xp.all(xp.isfinite(v))):
        raise ValueError("v contains NaN or infinity; project finite points only.")
    return _capped_simplex_projection(xp, v, cap)


def capped_simplex_minimum(xp, g, n_select):
    """``min <g, t>`` over the capped simplex with cap ``1 / n_select``.

    The minimum puts ``1 / n_select`` on the n_select smallest entries of g
    (a vertex of the set); it is the linear minimisation step of Frank-Wolfe
    and gives the duality gap of a convex problem over the set.
    """
    return float(xp.sum(xp.sort(g)[:n_select])) / n_select
