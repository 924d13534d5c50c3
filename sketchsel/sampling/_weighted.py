"""Weighted sampling without replacement by exponential keys."""

import numpy as np


def weighted_sample_without_replacement(rng, weights, n):
    """Draw n distinct rows, one after another, with probabilities proportional to weights.

    Successive sampling: the first row is i with probability ``w_i / W``,
    the next with ``w_j / (W - w_i)`` among the rest, and so on. It is done
    in one pass with exponential keys (Efraimidis & Spirakis, 2006): with
    ``E_i ~ Exp(1)``, the rows sorted by ``E_i / w_i`` come in that order,
    because the smallest of independent exponentials with rates ``w_i`` is
    row i with probability ``w_i / W``, and the rest are again exponentials.

    Rows of zero weight are drawn only when fewer than n rows have a
    positive weight, and then uniformly at random among the zero-weight rows,
    after all the positive ones; all weights zero gives a uniform sample.

    Parameters
    ----------
    rng : numpy.random.Generator or numpy.random.RandomState
        Source of randomness; the draws are a function of its state.
    weights : array-like of shape (m,)
        Non-negative finite weights, not necessarily normalised.
    n : int
        Rows to draw, ``0 <= n <= m``.

    Returns
    -------
    indices : ndarray of shape (n,), int64
        Positions in ``weights``, in the order they are drawn.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.sampling._weighted import weighted_sample_without_replacement
    >>> rng = np.random.default_rng(0)
    >>> drawn = weighted_sample_without_replacement(rng, [0.0, 5.0, 1.0, 0.0], 3)
    >>> drawn.dtype, sorted(drawn[:2].tolist())
    (dtype('int64'), [1, 2])
    """
    if not isinstance(rng, (np.random.Generator, np.random.RandomState)):
        raise TypeError(
            f"rng must be a numpy.random.Generator or RandomState, got {type(rng).__name__}; "
            f"make one with numpy.random.default_rng(seed)."
        )
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1:
        raise ValueError(f"weights must be 1-D; got shape {weights.shape}.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("weights must be finite and non-negative.")
    m = weights.shape[0]
    n = int(n)
    if not 0 <= n <= m:
        raise ValueError(f"n={n} rows cannot be drawn without replacement from {m}.")
    positive = np.flatnonzero(weights > 0)
    keys = rng.standard_exponential(positive.shape[0]) / weights[positive]
    if positive.shape[0] >= n:
        if n < positive.shape[0]:
            # The n smallest keys, then in increasing order: O(m + n log n).
            part = np.argpartition(keys, n - 1)[:n] if n > 0 else np.empty(0, dtype=np.intp)
            part = part[np.argsort(keys[part], kind="stable")]
        else:
            part = np.argsort(keys, kind="stable")
        return positive[part].astype(np.int64)
    # Every positive row, in key order, then zero-weight rows by a uniform second key.
    first = positive[np.argsort(keys, kind="stable")]
    zero = np.flatnonzero(weights == 0)
    second = rng.random(zero.shape[0])
    rest = zero[np.argsort(second, kind="stable")[: n - positive.shape[0]]]
    return np.concatenate([first, rest]).astype(np.int64)
