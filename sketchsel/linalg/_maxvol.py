"""Maximum-volume row selection: maxvol, rectangular maxvol and greedy LU pivots.

The algorithms follow Goreinov et al., "How to find a good submatrix" (2010)
and Mikhalev & Oseledets, "Rectangular maximum-volume submatrices and their
applications" (2018), with maxvolpy's leading arguments and defaults; maxvolpy's
full signatures are in :mod:`sketchsel.linalg.maxvolpy`.

NumPy input runs LAPACK for the start (``getrf`` pivot indices, never a dense
permutation matrix), a Numba kernel for the swaps and a lazy greedy for the
rectangular additions; any other array-API
namespace (CuPy, PyTorch, ...) runs the reference implementation below, which
the tests hold the kernels to.
"""

import heapq
from numbers import Integral, Real

import numpy as np
import scipy.linalg
from array_api_compat import is_numpy_namespace
from sklearn.utils._param_validation import Interval, validate_params

from .._array_api import check_array, device

# The start used by rect_maxvol, as in maxvolpy.
_START_TOL = 1.05
# Stale leverages recomputed at once by the rectangular additions (one matrix product).
_RECOMPUTE_BLOCK = 64


# ----------------------------------------------------------------- reference


def _pivot_size(xp, column):
    """What getrf compares to choose a pivot: |x|, and |Re x| + |Im x| for complex x
    (BLAS's i?amax), so that every namespace picks LAPACK's rows."""
    if xp.isdtype(column.dtype, "complex floating"):
        return xp.abs(xp.real(column)) + xp.abs(xp.imag(column))
    return xp.abs(column)


def _greedy_pivots_reference(xp, A, n_pivots):
    """Rows chosen by LU with partial pivoting on the first n_pivots columns.

    Returns the rows and the magnitudes of their pivots (the diagonal of U);
    stops early when the remaining columns vanish.
    """
    residual = xp.asarray(A, copy=True)
    n = A.shape[0]
    rows = xp.arange(n, device=device(A))
    taken = xp.zeros(n, dtype=xp.bool, device=device(A))
    pivots, magnitudes = [], []
    for k in range(n_pivots):
        column = xp.where(taken, -1.0, _pivot_size(xp, residual[:, k]))
        p = int(xp.argmax(column))
        if float(column[p]) <= 0.0:
            break
        pivots.append(p)
        magnitudes.append(float(xp.abs(residual[p, k])))
        taken = xp.logical_or(taken, rows == p)
        factors = residual[:, k] / residual[p, k]
        residual = residual - factors[:, None] * residual[p, :][None, :]
    return pivots, magnitudes


def _coefficients(xp, A, pivots):
    """C = A A[pivots]^-1, by a solve with the small square submatrix."""
    square = xp.take(A, xp.asarray(pivots, device=device(A)), axis=0)
    return xp.linalg.solve(square.T, A.T).T


def _swap_loop_reference(xp, C, pivots, tol, max_iters):
    n, r = C.shape
    n_iter = 0
    unit = xp.eye(r, dtype=C.dtype, device=device(C))
    rows = xp.arange(n, device=device(C))
    while n_iter < max_iters:
        flat = int(xp.argmax(xp.reshape(xp.abs(C), (-1,))))
        i, j = divmod(flat, r)
        if float(xp.abs(C[i, j])) <= tol:
            break
        pivots[j] = i
        row = C[i, :] / C[i, j] - unit[j, :] / C[i, j]
        C = C - C[:, j][:, None] * row[None, :]
        # The new pivot row is e_j exactly (see the Numba kernel).
        C = xp.where((rows == i)[:, None], unit[j, :][None, :], C)
        n_iter += 1
    return C, n_iter


def _conj(xp, x):
    """The complex conjugate of x; x itself when it is real, with no copy."""
    return xp.conj(x) if xp.isdtype(x.dtype, "complex floating") else x


def _squared_moduli(xp, x):
    return xp.real(x * xp.conj(x)) if xp.isdtype(x.dtype, "complex floating") else x * x


def _add_rows_reference(xp, C, pivots, tol, max_rows, min_rows, n_candidates=None):
    n = C.shape[0]
    n_candidates = n if n_candidates is None else n_candidates
    norms = xp.sum(_squared_moduli(xp, C), axis=1)
    rows = xp.arange(n, device=device(C))
    chosen = rows >= n_candidates
    for p in pivots:
        chosen = xp.logical_or(chosen, rows == p)
    while len(pivots) < max_rows:
        candidates = xp.where(chosen, -1.0, norms)
        i = int(xp.argmax(candidates))
        best = float(candidates[i])
        if best < 0.0 or (best <= tol * tol and len(pivots) >= min_rows):
            break
        coef = C[i, :]
        # The least-squares update on the rows S + {i}: C <- [C - s v c, s v] with
        # v = C c^H and s = 1 / (1 + |c|^2); c stays unconjugated in the product.
        v = C @ _conj(xp, coef)
        scale = 1.0 / (1.0 + float(norms[i]))
        C = xp.concat([C - scale * v[:, None] * coef[None, :], scale * v[:, None]], axis=1)
        norms = norms - scale * _squared_moduli(xp, v)
        chosen = xp.logical_or(chosen, rows == i)
        pivots.append(i)
    return C


# ------------------------------------------------------------- NumPy/LAPACK


def _lapack_start(A, n_pivots):
    """getrf of A[:, :n_pivots]: pivot rows, pivot magnitudes, and the factors.

    The pivot rows come from getrf's row interchanges, in O(N) memory.
    """
    from . import _maxvol_numba

    n = A.shape[0]
    column_major = np.empty((n_pivots, n), dtype=A.dtype).T
    with _maxvol_numba.threads_for(column_major):
        _maxvol_numba.copy_into(A[:, :n_pivots], column_major)
    getrf = scipy.linalg.lapack.get_lapack_funcs("getrf", (A,))
    lu, ipiv, _ = getrf(column_major, overwrite_a=True)
    order = np.arange(A.shape[0])
    for k, p in enumerate(ipiv):
        order[k], order[p] = order[p], order[k]
    magnitudes = np.abs(np.diag(lu))
    vanished = np.flatnonzero(magnitudes == 0)
    found = int(vanished[0]) if vanished.size else magnitudes.size
    return order[:found].tolist(), magnitudes[:found].tolist(), lu, order


def _lapack_coefficients(lu, order):
    """C = A A[pivots]^-1 = L L_r^-1 from the LU factors of a full-rank square start.

    With A[order] = L U, row ``order[k]`` of C is ``L[k] L_r^-1``: the pivot
    rows are the identity and the others one triangular solve (in place, on
    the factors), whose unit lower-triangular matrix is better conditioned
    than A[pivots] itself.
    """
    from . import _maxvol_numba

    r = lu.shape[1]
    lower_r = lu[:r].copy()
    lu[:r] = np.tril(lower_r, -1) + np.eye(r, dtype=lu.dtype)
    trsm = scipy.linalg.blas.get_blas_funcs("trsm", (lu,))
    # Solve X L_r = L in place (right side, lower, unit diagonal); lu stays
    # column-major and whole, so BLAS works on it without a copy.
    lu = trsm(1.0, lower_r, lu, side=1, lower=1, diag=1, overwrite_b=1)
    with _maxvol_numba.threads_for(lu):
        C = _maxvol_numba.copy_into(lu, np.empty(lu.shape, dtype=lu.dtype))
    # getrf's interchanges move at most 2 r rows: put those back in place.
    moved = np.flatnonzero(order != np.arange(order.size))
    C[order[moved]] = lu[moved]
    return C


def _start(xp, A, n_pivots):
    """Greedy pivots of the first n_pivots columns, their magnitudes, and the LU factors.

    The factors (None on the reference path) give C without another solve.
    """
    if is_numpy_namespace(xp):
        pivots, magnitudes, lu, order = _lapack_start(A, n_pivots)
        return pivots, magnitudes, (lu, order)
    return (*_greedy_pivots_reference(xp, A, n_pivots), None)


def _range_basis(xp, A):
    """Orthonormal basis of the numerical range of A (rank-revealing)."""
    if is_numpy_namespace(xp):
        q, r, _ = scipy.linalg.qr(A, mode="economic", pivoting=True, check_finite=False)
        magnitudes = np.abs(np.diag(r))
    else:  # the array API has no pivoted QR; the SVD reveals the rank as well
        q, magnitudes, _ = xp.linalg.svd(A, full_matrices=False)
    rank = _rank(xp, A, [float(m) for m in magnitudes])
    return q[:, :rank]


def _rank(xp, A, magnitudes):
    """Count of pivot magnitudes above ``max(A.shape) * eps`` times the largest."""
    if not magnitudes or magnitudes[0] <= 0:
        return 0
    threshold = max(magnitudes) * max(A.shape) * float(xp.finfo(A.dtype).eps)
    return sum(1 for m in magnitudes if m > threshold)


def _maxvol(xp, A, tol, max_iters):
    """Body of maxvol on a validated array; returns (pivots list, C, n_iter)."""
    n, r = A.shape
    if n <= r:
        return list(range(n)), xp.eye(n, dtype=A.dtype, device=device(A)), 0
    pivots, magnitudes, factors = _start(xp, A, r)
    if len(pivots) < r or _rank(xp, A, magnitudes) < r:
        # A[pivots] would be (nearly) singular: search in an orthonormal basis
        # of the range of A instead; C is the same function of the rows there,
        # and A = C A[pivots] still holds.
        A = _range_basis(xp, A)
        if A.shape[1] == 0:
            return [], xp.zeros((n, 0), dtype=A.dtype, device=device(A)), 0
        pivots, _, factors = _start(xp, A, A.shape[1])
    if factors is None:
        C = _coefficients(xp, A, pivots)
        C, n_iter = _swap_loop_reference(xp, C, pivots, tol, max_iters)
        return pivots, C, n_iter
    from . import _maxvol_numba

    C = _lapack_coefficients(*factors)
    pivot_array = np.asarray(pivots, dtype=np.int64)
    with _maxvol_numba.threads_for(C):
        n_iter = _maxvol_numba.swap_loop(C, pivot_array, tol, max_iters)
    return pivot_array.tolist(), C, int(n_iter)


def _maxvol_among(xp, A, n_candidates, tol, max_iters):
    """maxvol with the pivots drawn from the first n_candidates rows; C covers every row.

    The swaps on the candidates' rows of C do not read the other rows, so the
    search runs on ``A[:n_candidates]`` and the other rows' coefficients on the
    chosen rows come from one least-squares solve at the end.
    """
    n = A.shape[0]
    if n_candidates >= n:
        return _maxvol(xp, A, tol, max_iters)
    head = A[:n_candidates, :]
    pivots, C, n_iter = _maxvol(xp, head, tol, max_iters)
    if n_candidates == A.shape[1]:
        # A square block is all chosen; maxvolpy orders it as its LU pivots, and
        # C[lu_pivots[k]] = e_k then asks for the columns of the identity in that order.
        lu_pivots = _start(xp, head, n_candidates)[0]
        if len(lu_pivots) == n_candidates:
            pivots = lu_pivots
            C = xp.take(C, xp.asarray(pivots, dtype=xp.int64, device=device(A)), axis=1)
    square = xp.take(A, xp.asarray(pivots, dtype=xp.int64, device=device(A)), axis=0)
    rest = A[n_candidates:, :] @ xp.linalg.pinv(square)
    return pivots, xp.concat([C, xp.astype(rest, C.dtype)], axis=0), n_iter


def _rect_maxvol(xp, A, tol, max_rows, min_rows, start_maxvol_iters, n_candidates=None):
    n = A.shape[0]
    n_candidates = n if n_candidates is None else min(n_candidates, n)
    pivots, C, n_iter = _maxvol_among(xp, A, n_candidates, _START_TOL, start_maxvol_iters)
    max_rows = n_candidates if max_rows is None else min(max_rows, n_candidates)
    min_rows = 0 if min_rows is None else min(min_rows, max_rows)
    pivots, C = _add_rows(xp, C, pivots, tol, max_rows, min_rows, n_candidates)
    return pivots, C, n_iter


def _add_rows(xp, C, pivots, tol, max_rows, min_rows, n_candidates=None):
    """Rectangular maxvol additions to a square start (pivots, C).

    Row i's squared coefficient norm on the chosen rows S is its leverage
    ``b_i^T (B_S^T B_S)^-1 b_i``, with B the start's coefficients (B_S = I at
    the start). A row joining S can only lower the others' leverages, so a
    stale value bounds the current one: a lazy greedy keeps them in a heap and
    recomputes only the top, O(r^2) each, where updating every row's
    coefficients would cost O(N |S|) per row added. C is formed once at the end.
    Only the first ``n_candidates`` rows (None: all) may be added.
    """
    pivots = list(pivots)
    if not is_numpy_namespace(xp):
        return pivots, _add_rows_reference(xp, C, pivots, tol, max_rows, min_rows, n_candidates)
    if len(pivots) >= max_rows:
        return pivots, C
    n = C.shape[0]
    n_candidates = n if n_candidates is None else n_candidates
    B = np.asarray(C, dtype=np.result_type(C.dtype, np.float64))
    inverse = np.eye(B.shape[1], dtype=B.dtype)  # (B_S^H B_S)^-1
    leverages = np.einsum("ij,ij->i", B, _conj(xp, B)).real
    unchosen = np.zeros(n, dtype=np.bool_)
    unchosen[:n_candidates] = True
    unchosen[pivots] = False
    # Entries (-leverage, row, step it was computed at): the largest leverage first,
    # the first row among equals, as argmax would take it. Only an entry computed
    # at the current step is exact; stale ones at the top are recomputed in blocks.
    heap = [(-value, i, 0) for value, i in zip(leverages[unchosen].tolist(),
                                                np.flatnonzero(unchosen).tolist())]
    heapq.heapify(heap)
    tol2 = tol * tol
    step = 0
    while heap and len(pivots) < max_rows:
        if heap[0][2] != step:
            stale = [heapq.heappop(heap)[1] for _ in range(min(_RECOMPUTE_BLOCK, len(heap)))]
            rows = B[stale]
            values = np.maximum(np.einsum("ij,ij->i", rows @ inverse, _conj(xp, rows)).real, 0.0)
            for value, i in zip(values.tolist(), stale):
                heapq.heappush(heap, (-value, i, step))
            continue
        negative, i, _ = heapq.heappop(heap)
        leverage = -negative
        if leverage <= tol2 and len(pivots) >= min_rows:
            break
        w = inverse @ _conj(xp, B[i])
        inverse -= np.outer(w, _conj(xp, w)) / (1.0 + leverage)
        pivots.append(i)
        step += 1
    # In C's dtype: the N x n result is the one large array here.
    return pivots, C @ (inverse @ _conj(xp, B[pivots]).T).astype(C.dtype)


def _result(xp, A, pivots, C, n_iter, return_n_iter):
    pivots = xp.asarray(pivots, dtype=xp.int64, device=device(A))
    return (pivots, C, n_iter) if return_n_iter else (pivots, C)


# -------------------------------------------------------------------- public


@validate_params(
    {
        "A": ["array-like"],
        "tol": [Interval(Real, 1, None, closed="left")],
        "max_iters": [Interval(Integral, 0, None, closed="left")],
        "return_n_iter": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def maxvol(A, tol=1.05, max_iters=100, *, return_n_iter=False):
    """Rows of A spanning a submatrix of (locally) maximal volume.

    Starting from the rows chosen by LU with partial pivoting, rows are
    swapped into the square submatrix ``A[pivots]`` while some coefficient
    of ``C = A @ inv(A[pivots])`` exceeds ``tol`` in absolute value; each
    swap multiplies ``|det A[pivots]|`` by that coefficient. At the end
    ``A[pivots]`` is dominant: every row of A is a combination of the
    pivot rows with coefficients at most ``tol``.

    Parameters
    ----------
    A : array-like of shape (n_samples, rank)
        Tall real or complex matrix, usually ``n_samples >> rank``; any array
        namespace.
    tol : float, default=1.05
        Dominance threshold, at least 1 (1 asks for a true local maximum
        and may take many swaps). Values below 1 are an error.
    max_iters : int, default=100
        Largest number of swaps.
    return_n_iter : bool, default=False
        Also return the number of swaps made.

    Returns
    -------
    pivots : array of shape (rank,), int64
        Row indices, in the order of the columns of C.
    C : array of shape (n_samples, rank)
        Coefficients, ``A = C @ A[pivots]``, with ``C[pivots]`` the identity.
        After convergence ``max |C| <= tol``.
    n_iter : int
        Number of swaps, only when ``return_n_iter`` is True.

    Notes
    -----
    Special cases, each returning a result rather than failing:

    - ``n_samples <= rank``: every row is a pivot and C is the identity.
    - A of numerical rank ``k < rank`` (QR with column pivoting, relative
      threshold ``max(A.shape) * eps``): the search runs on an orthonormal
      basis of the range of A and returns k pivots, with ``A = C @ A[pivots]``
      still exact to round-off; an all-zero A returns no pivots.
    - Duplicate rows are never both chosen when A has full rank, since the
      submatrix would be singular. C is invariant under scaling of A, so tiny
      and huge scales give the same pivots.

    The start costs O(n rank^2) and each swap O(n rank), one pass over C.

    References
    ----------
    .. [1] S. A. Goreinov, I. V. Oseledets, D. V. Savostyanov, E. E.
       Tyrtyshnikov and N. L. Zamarashkin, "How to find a good submatrix",
       in Matrix Methods: Theory, Algorithms and Applications, 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.linalg import maxvol
    >>> A = np.random.default_rng(0).standard_normal((1000, 10))
    >>> pivots, C = maxvol(A)
    >>> pivots.shape, bool(np.abs(C).max() <= 1.05)
    ((10,), True)
    >>> bool(np.allclose(C @ A[pivots], A))
    True
    """
    A, xp = check_array(A, name="A", allow_complex=True)
    pivots, C, n_iter = _maxvol(xp, A, tol, max_iters)
    return _result(xp, A, pivots, C, n_iter, return_n_iter)


@validate_params(
    {
        "A": ["array-like"],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_rows": [Interval(Integral, 1, None, closed="left"), None],
        "min_rows": [Interval(Integral, 0, None, closed="left"), None],
        "start_maxvol_iters": [Interval(Integral, 0, None, closed="left")],
        "return_n_iter": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def rect_maxvol(
    A, tol=1.0, max_rows=None, *, min_rows=None, start_maxvol_iters=10, return_n_iter=False
):
    """Rows of A spanning a rectangular submatrix of large volume.

    Starts from :func:`maxvol` (``tol=1.05``, ``start_maxvol_iters`` swaps),
    then adds, one at a time, the row whose least-squares coefficients on
    the chosen rows have the largest norm, until every other row's norm is at
    most ``tol`` (and at least ``min_rows`` rows are chosen, at most
    ``max_rows``). The volume ``sqrt(det(A_S^T A_S))`` grows with each row
    by the factor ``sqrt(1 + |c|^2)``: a greedy D-optimal design.

    Parameters
    ----------
    A : array-like of shape (n_samples, rank)
        Tall real or complex matrix; any array namespace.
    tol : float, default=1.0
        Largest allowed Euclidean norm of a row of C for the rows not chosen.
    max_rows : int, default=None
        Most rows to choose; None allows all ``n_samples``. Must be at least
        the number of columns of A.
    min_rows : int, default=None
        Fewest rows to choose, whatever ``tol``; None means no minimum beyond
        the square start. Keyword-only, as is ``start_maxvol_iters``: the
        fourth positional argument of maxvolpy's ``rect_maxvol`` is
        ``min_add_K``, so a maxvolpy call must not run here with another
        meaning.
    start_maxvol_iters : int, default=10
        Swaps of the square start.
    return_n_iter : bool, default=False
        Also return the number of swaps of the square start.

    Returns
    -------
    pivots : array of shape (n_rows,), int64
        Row indices, in the order they were chosen.
    C : array of shape (n_samples, n_rows)
        Minimum-norm least-squares coefficients of each row of A on the
        chosen rows, ``C = A @ pinv(A[pivots])``, so ``A = C @ A[pivots]``
        when the chosen rows span the row space of A.
    n_iter : int
        Swaps of the square start, only when ``return_n_iter`` is True.

    Notes
    -----
    A row's squared coefficient norm is its leverage against the chosen
    rows, which can only fall as rows are added; on NumPy arrays the rows are
    kept in a heap of these bounds and only those at its top are recomputed,
    O(rank^2) each, and C is formed once at the end, O(n_samples rank n_rows),
    where updating C for every row added costs O(n_samples n_rows) per row
    (maxvolpy, and the reference path of other namespaces). The rows chosen
    are the same. Rank deficiency and ``n_samples <= rank`` are handled as in
    :func:`maxvol`.

    References
    ----------
    .. [1] A. Mikhalev and I. V. Oseledets, "Rectangular maximum-volume
       submatrices and their applications", Linear Algebra Appl. 538, 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.linalg import rect_maxvol
    >>> A = np.random.default_rng(0).standard_normal((1000, 10))
    >>> pivots, C = rect_maxvol(A, tol=1.0)
    >>> bool(len(pivots) >= 10 and np.linalg.norm(C, axis=1).max() <= 1.0 + 1e-12)
    True
    >>> bool(np.allclose(C @ A[pivots], A))
    True
    """
    A, xp = check_array(A, name="A", allow_complex=True)
    if max_rows is not None and max_rows < A.shape[1]:
        raise ValueError(
            f"max_rows={max_rows} is below the number of columns of A ({A.shape[1]}); "
            f"rect_maxvol starts from a square submatrix, so raise max_rows or use fewer "
            f"columns."
        )
    if min_rows is not None and max_rows is not None and min_rows > max_rows:
        raise ValueError(f"min_rows={min_rows} must be <= max_rows={max_rows}.")
    pivots, C, n_iter = _rect_maxvol(xp, A, tol, max_rows, min_rows, start_maxvol_iters)
    return _result(xp, A, pivots, C, n_iter, return_n_iter)


@validate_params(
    {"A": ["array-like"], "n_pivots": [Interval(Integral, 1, None, closed="left"), None]},
    prefer_skip_nested_validation=True,
)
def fast_maxvol(A, n_pivots=None):
    """Greedy LU pivoting: the rows GRAFT's "Fast MaxVol" selects.

    Picks, for each of the first ``n_pivots`` columns in turn, the row with
    the largest entry of the column after eliminating the rows already
    picked, i.e. the pivot rows of LU with partial pivoting. Applied to the
    top right singular vectors of a batch, it picks rows spanning its dominant
    subspace; it is also the start of :func:`maxvol`. This is the standard
    rank-1 elimination, not the reference GRAFT code's pseudo-inverse
    update, which can pick a row twice.

    Parameters
    ----------
    A : array-like of shape (n_samples, rank)
        Real or complex, usually orthonormal columns (singular vectors); any
        array namespace.
    n_pivots : int, default=None
        Number of rows to pick, at most ``rank``; None picks ``rank``.

    Returns
    -------
    pivots : array of shape (n_found,), int64
        Distinct row indices in the order picked; fewer than ``n_pivots`` when
        the remaining columns vanish (rank deficiency).

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.linalg import fast_maxvol
    >>> A = np.array([[1.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
    >>> fast_maxvol(A)
    array([1, 2])
    """
    A, xp = check_array(A, name="A", allow_complex=True)
    n_pivots = A.shape[1] if n_pivots is None else n_pivots
    if n_pivots > A.shape[1]:
        raise ValueError(
            f"n_pivots={n_pivots} exceeds the number of columns of A ({A.shape[1]}); "
            f"greedy pivoting picks at most one row per column."
        )
    pivots = _start(xp, A, min(n_pivots, A.shape[0]))[0]
    return xp.asarray(pivots, dtype=xp.int64, device=device(A))


__all__ = ["fast_maxvol", "maxvol", "rect_maxvol"]
