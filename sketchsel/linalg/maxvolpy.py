"""maxvolpy's ``maxvol`` and ``rect_maxvol``, with its signatures, on sketchsel's kernels.

maxvolpy no longer builds on NumPy 2. Code written for it runs unchanged after
one edit of the import::

    from maxvolpy.maxvol import maxvol, rect_maxvol            # before
    from sketchsel.linalg.maxvolpy import maxvol, rect_maxvol  # after

Positional order, names and defaults are maxvolpy's, and so is the treatment
of out-of-range values (``tol < 1`` raised to 1 by ``maxvol``, ``maxK`` and
``minK`` clipped to ``[rank, n_samples]``). What differs is listed in each
function's Notes and in the migration section of ``docs/maxvol.md``; for new
code, :func:`sketchsel.linalg.maxvol` and :func:`sketchsel.linalg.rect_maxvol`
are the main API.

.. autosummary::

   maxvol
   rect_maxvol
"""

from numbers import Integral, Real

from array_api_compat import is_numpy_namespace
from sklearn.utils._param_validation import Interval, validate_params

from .._array_api import check_array, device
from ._maxvol import _maxvol_among, _rect_maxvol, _result

__all__ = ["maxvol", "rect_maxvol"]


def _n_candidates(top_k_index, n, rank):
    """maxvolpy's reading of top_k_index: -1 or more than n is every row, and fewer than
    the columns is as many rows as columns."""
    if top_k_index == -1 or top_k_index > n:
        return n
    return max(top_k_index, rank)


def _row_limits(n, rank, maxK, min_add_K, minK):
    """(max_rows, min_rows) as maxvolpy clips them: into [rank, n], the minimum at least
    rank + min_add_K, and never above the maximum."""
    max_rows = n if maxK is None else min(max(maxK, rank), n)
    min_rows = rank if minK is None else min(max(minK, rank), n)
    if min_add_K is not None:
        min_rows = max(min_rows, rank + min_add_K)
    return max_rows, min(min_rows, max_rows)


def _identity_on_pivots(xp, C, pivots):
    """C with the chosen rows replaced by the identity: row pivots[k] becomes e_k."""
    if is_numpy_namespace(xp):
        C[pivots] = xp.eye(len(pivots), dtype=C.dtype)
        return C
    # Without item assignment by index arrays (not in the array API standard): the
    # indicator of (row == pivots[k]) is that identity on the chosen rows and 0 elsewhere.
    rows = xp.arange(C.shape[0], device=device(C))[:, None]
    indicator = rows == xp.asarray(pivots, dtype=rows.dtype, device=device(C))[None, :]
    chosen = xp.any(indicator, axis=1)[:, None]
    return xp.where(chosen, xp.astype(indicator, C.dtype), C)


@validate_params(
    {
        "A": ["array-like"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iters": [Interval(Integral, 0, None, closed="left")],
        "top_k_index": [Interval(Integral, -1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def maxvol(A, tol=1.05, max_iters=100, top_k_index=-1):
    """Good square submatrix, with maxvolpy's signature: ``maxvolpy.maxvol.maxvol``.

    The rows are those :func:`sketchsel.linalg.maxvol` chooses: LU with
    partial pivoting, then swaps while some ``|C_ij| > tol``.

    Parameters
    ----------
    A : array-like of shape (N, r)
        Real or complex matrix, ``N >= r``; any array namespace.
    tol : float, default=1.05
        Upper bound for the Chebyshev norm of the coefficients. Values below 1
        are raised to 1, as in maxvolpy (:func:`sketchsel.linalg.maxvol`
        refuses them).
    max_iters : int, default=100
        Largest number of swaps.
    top_k_index : int, default=-1
        Pivots are chosen among rows ``0 .. top_k_index - 1``; -1 allows all.
        Values above N allow all, values below r are raised to r.

    Returns
    -------
    piv : array of shape (r,), int64
        Rows of the submatrix (maxvolpy's are int32).
    C : array of shape (N, r)
        Coefficients, ``A = C @ A[piv]``, in A's dtype; real integer input
        gives float64.

    Notes
    -----
    Where A has numerical rank ``k < r``, ``piv`` holds k rows, where
    maxvolpy returns r rows of which ``r - k`` are chosen by round-off, with
    a numerically singular submatrix; see :func:`sketchsel.linalg.maxvol`.
    With ``top_k_index``, the coefficients of the rows after it come from a
    least-squares solve on the chosen rows, where maxvolpy updates them at
    every swap; the values are the same up to round-off.

    Examples
    --------
    maxvolpy's own example, with its complex 1000 x 30 matrix:

    >>> import numpy as np
    >>> from sketchsel.linalg.maxvolpy import maxvol
    >>> np.random.seed(100)
    >>> a = np.random.rand(1000, 30, 2).view(dtype=np.complex128)[:,:,0]
    >>> piv, C = maxvol(a, 1.05)
    >>> np.allclose(a, C.dot(a[piv]))
    True
    >>> print('Chebyshev norm of matrix C: {:.5f}'.format(abs(C).max()))
    Chebyshev norm of matrix C: 1.04641
    """
    A, xp = check_array(A, name="A", allow_complex=True)
    n, rank = A.shape
    pivots, C, n_iter = _maxvol_among(
        xp, A, _n_candidates(top_k_index, n, rank), max(tol, 1.0), max_iters)
    return _result(xp, A, pivots, C, n_iter, False)


@validate_params(
    {
        "A": ["array-like"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "maxK": [Interval(Integral, 0, None, closed="left"), None],
        "min_add_K": [Interval(Integral, 0, None, closed="left"), None],
        "minK": [Interval(Integral, 0, None, closed="left"), None],
        "start_maxvol_iters": [Interval(Integral, 0, None, closed="left")],
        "identity_submatrix": ["boolean"],
        "top_k_index": [Interval(Integral, -1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def rect_maxvol(A, tol=1., maxK=None, min_add_K=None, minK=None, start_maxvol_iters=10,
                identity_submatrix=True, top_k_index=-1):
    """Good rectangular submatrix, with maxvolpy's signature: ``maxvolpy.maxvol.rect_maxvol``.

    The rows are those :func:`sketchsel.linalg.rect_maxvol` chooses: a
    square :func:`maxvol` start, then the row with the largest least-squares
    coefficient norm, one at a time, while that norm exceeds ``tol``.

    Parameters
    ----------
    A : array-like of shape (N, r)
        Real or complex matrix, ``N >= r``; any array namespace.
    tol : float, default=1.0
        Upper bound for the Euclidean norm of a row of coefficients.
    maxK : int, default=None
        Most rows; None or above N allows N, below r is raised to r.
    min_add_K : int, default=None
        Fewest rows to add to the square start: at least ``r + min_add_K``
        rows in all. None sets no such minimum.
    minK : int, default=None
        Fewest rows; None or below r means r. A minimum above ``maxK`` is
        lowered to it.
    start_maxvol_iters : int, default=10
        Swaps of the square start (``tol=1.05``).
    identity_submatrix : bool, default=True
        Set the chosen rows of C to the identity (``A[piv] = I @ A[piv]``).
        False keeps their least-squares coefficients, a projection, as
        :func:`sketchsel.linalg.rect_maxvol` returns them.
    top_k_index : int, default=-1
        Rows are chosen among rows ``0 .. top_k_index - 1``; -1 allows all.
        Values above N allow all, values below r are raised to r.

    Returns
    -------
    piv : array of shape (K,), int64
        Rows of the submatrix, in the order they were chosen (maxvolpy's are
        int32).
    C : array of shape (N, K)
        Coefficients, ``A = C @ A[piv]``, in A's dtype; real integer input
        gives float64.

    Notes
    -----
    maxvolpy updates every coefficient for every row added, O(N K) a row;
    here a lazy greedy recomputes only the rows that may be the next one, and
    C is formed once (:func:`sketchsel.linalg.rect_maxvol`). Numerical rank
    below r gives fewer start rows, as for :func:`maxvol`. With
    ``top_k_index``, at most that many rows are chosen, where maxvolpy,
    asked for more by ``minK``, takes a chosen row again.

    Examples
    --------
    maxvolpy's own example, with its complex 1000 x 30 matrix:

    >>> import numpy as np
    >>> from sketchsel.linalg.maxvolpy import rect_maxvol
    >>> np.random.seed(100)
    >>> a = np.random.rand(1000, 30, 2).view(dtype=np.complex128)[:,:,0]
    >>> piv, C = rect_maxvol(a, 1.5)
    >>> np.allclose(a, C.dot(a[piv]))
    True
    >>> print('maximum euclidian norm of row in matrix C: {:.5f}'.
    ... format(max([np.linalg.norm(C[i], 2) for i in range(1000)])))
    maximum euclidian norm of row in matrix C: 1.49193
    """
    A, xp = check_array(A, name="A", allow_complex=True)
    n, rank = A.shape
    max_rows, min_rows = _row_limits(n, rank, maxK, min_add_K, minK)
    pivots, C, n_iter = _rect_maxvol(xp, A, tol, max_rows, min_rows, start_maxvol_iters,
                                     _n_candidates(top_k_index, n, rank))
    if identity_submatrix:
        C = _identity_on_pivots(xp, C, pivots)
    return _result(xp, A, pivots, C, n_iter, False)
