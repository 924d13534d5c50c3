"""The Frequent Directions shrink step, on any array-API namespace.

One step takes the current sketch S (rows ``diag(sigma) V^T``) and new rows X
and returns the sketch of the stacked rows ``C = [S; X]``: with
``lambda_1 >= lambda_2 >= ...`` the eigenvalues of ``C^T C`` and
``delta = lambda_{l+1}``, the new sketch is ``diag(sqrt(lambda_i - delta)) v_i^T``
for ``i <= l``. That removes at least ``(l + 1) * delta`` of squared Frobenius
mass while changing ``C^T C`` by at most ``delta`` in spectral norm, the two
facts every guarantee of :class:`~sketchsel.FrequentDirections` rests on.

The eigenproblem is solved on the smaller Gram matrix, ``C C^T`` (m x m) or
``C^T C`` (D x D), so the work is one symmetric rank-k update (matrix-multiply
speed) and one small dense ``eigh`` in float64, instead of an SVD of C.
Squaring the singular values costs relative accuracy only in the directions
with eigenvalues below ``eps * ||C||_2^2``, an absolute error far below the
shrinkage the guarantees allow.

A stream is absorbed by one of two routes (:func:`plan_blocks`):

- ``"rows"``: new rows wait in a buffer of ``block`` rows, and each full
  buffer is shrunk with the ``m x m`` Gram matrix, ``m = l + block <= D``.
  Memory O((l + block) D); the route for large D.
- ``"gram"``: new rows are folded at once into ``C^T C`` (D x D, float64), and
  the shrink runs every ``block`` rows, or only when the sketch is read when
  ``block`` is None; that limit gives the best rank-l sketch,
  ``delta = lambda_{l+1}(A^T A)``. Memory O(D^2); the route for small D.
"""

from .._array_api import device

# Cost model constants for planning the blocks, measured on a 2-core x86
# machine with OpenBLAS: seconds per multiply-add of a float32 GEMM, and the
# time of a dense float64 eigh of order k as a k**2 and a k**3 term (small
# eigenproblems are dominated by per-call overhead, not flops).
_SECONDS_PER_MULADD = 8e-12
_EIGH_SECONDS_K2 = 1.3e-7
_EIGH_SECONDS_K3 = 6e-11
# Memory the automatic plan may take, for the row buffer or the D x D Gram.
_AUTO_BYTES = 128 * 2**20
# D x D float64 arrays alive at a shrink of the Gram route.
_GRAM_ROUTE_ARRAYS = 4
# Rows per product summed in the working dtype before the float64 accumulation.
_GRAM_ROWS = 16384


def _eigh_seconds(k):
    return _EIGH_SECONDS_K2 * k**2 + _EIGH_SECONDS_K3 * k**3


def _rows_seconds_per_row(sketch_rows, block, n_features, itemsize):
    m = sketch_rows + block
    muladds = (m * m / 2 + sketch_rows * m) * n_features  # Gram (syrk) + projection
    return (muladds * _SECONDS_PER_MULADD * itemsize / 4 + _eigh_seconds(m)) / block


def plan_blocks(sketch_rows, n_features, itemsize, block_size="auto"):
    """Choose the route and the rows absorbed between two shrinks.

    Parameters
    ----------
    sketch_rows : int
        Rows of the sketch, ``min(sketch_size, n_features)``.
    n_features : int
        Columns D.
    itemsize : int
        Bytes per element of the working dtype.
    block_size : int or "auto"
        A given block size is kept; its route is "rows" when
        ``sketch_rows + block_size <= n_features`` and "gram" otherwise.

    Returns
    -------
    route : {"rows", "gram"}
    block : int or None
        None (route "gram" only) shrinks only when the sketch is read.

    Notes
    -----
    "auto" takes the Gram route, shrunk only when read, whenever its four
    D x D float64 arrays fit in 128 MiB (D <= 2048). That gives the best
    rank-l sketch, ``delta = lambda_{l+1}(A^T A)``, so the error and its bound
    never grow with sketch_size. A row buffer of about l rows is faster at
    small l but far less accurate, and choosing between the two by speed made
    the error jump as sketch_size grew (``benchmarks/bench_fd.py`` measures
    both). Above 2048 features the row buffer takes the best block by a cost
    model among ``sketch_rows`` times a power of two, half of it, and the
    largest that fits in 128 MiB; its error is not guaranteed to be monotone
    in sketch_size.
    The plan depends on the arguments only, so a given stream always gives
    the same sketch.
    """
    if block_size != "auto":
        route = "rows" if sketch_rows + block_size <= n_features else "gram"
        return route, block_size
    # The Gram state, its copy with the sketch added, and eigh's eigenvectors
    # and workspace: about four D x D float64 arrays at the shrink.
    if _GRAM_ROUTE_ARRAYS * n_features * n_features * 8 <= _AUTO_BYTES or sketch_rows == n_features:
        return "gram", None
    largest = min(n_features - sketch_rows, _AUTO_BYTES // (n_features * itemsize) - sketch_rows)
    candidates = {b for b in (sketch_rows // 2, largest) if b >= 1}
    block = sketch_rows
    while block <= largest:
        candidates.add(block)
        block *= 2
    best = min(
        sorted(candidates),
        key=lambda b: _rows_seconds_per_row(sketch_rows, b, n_features, itemsize),
    )
    return "rows", best


def _top_eigenpairs(xp, gram, k):
    """The k largest eigenpairs of a float64 Gram matrix, descending, and the next eigenvalue.

    The next eigenvalue is the shrinkage delta (0 when there is none). eigh
    sorts ascending, and round-off can make zero eigenvalues slightly
    negative: they are clamped, so ``lambda - delta`` is never NaN.
    """
    eigvals, eigvecs = xp.linalg.eigh(gram)
    eigvals = xp.clip(xp.flip(eigvals), min=0.0)
    eigvecs = xp.flip(eigvecs, axis=1)
    k = min(k, eigvals.shape[0])
    delta = float(eigvals[k]) if eigvals.shape[0] > k else 0.0
    return eigvals[:k], eigvecs[:, :k], delta


def shrink_gram(xp, gram, sketch_rows):
    """Sketch, in float64, of rows whose Gram matrix ``C^T C`` is ``gram`` (D x D, float64).

    Returns
    -------
    new_sketch : array of shape (min(sketch_rows, D), D), float64
        Rows ``sqrt(lambda_i - delta) v_i^T`` in decreasing order.
    delta : float
        ``lambda_{sketch_rows + 1}``, or 0 when D <= sketch_rows.
    """
    top, vectors, delta = _top_eigenpairs(xp, gram, sketch_rows)
    return xp.sqrt(xp.clip(top - delta, min=0.0))[:, None] * vectors.T, delta


def gram64(xp, rows):
    """``rows^T rows`` in float64, from products in the rows' dtype.

    Each product spans at most ``_GRAM_ROWS`` rows, so that float32 sums stay
    short (round-off grows with the number of terms) while the products keep
    matrix-multiply speed; the partial sums are added in float64.
    """
    return _sum64(xp, rows, (rows.shape[1],) * 2,
                  lambda start, stop: rows[start:stop, :].T @ rows[start:stop, :])


def weighted_sum64(xp, weights, rows):
    """``weights @ rows`` in float64, from products in the rows' dtype, as :func:`gram64`.

    ``weights`` is a vector of the rows' dtype, one weight a row.
    """
    return _sum64(xp, rows, (rows.shape[1],),
                  lambda start, stop: weights[start:stop] @ rows[start:stop, :])


def _sum64(xp, rows, shape, product):
    """The float64 sum of ``product(start, stop)`` over the rows in pieces of ``_GRAM_ROWS``."""
    n = rows.shape[0]
    total = xp.zeros(shape, dtype=xp.float64, device=device(rows))
    for start in range(0, n, _GRAM_ROWS):
        part = product(start, min(start + _GRAM_ROWS, n))
        total = total + xp.astype(part, xp.float64, copy=False)
    return total


def shrink(xp, sketch, blocks, sketch_rows):
    """Sketch of the rows of ``[sketch; *blocks]`` in ``sketch_rows`` rows.

    Parameters
    ----------
    xp : namespace
        Array-API namespace of all arrays.
    sketch : array of shape (s, D), float64
        Current sketch (may hold zero rows). It is kept in float64 whatever the
        data's dtype: it is rounded once per shrink, and in float32 that
        round-off, of order ``eps * ||S||_2^2`` each time, would add up over a
        long stream to a sizeable part of the certified error.
    blocks : list of arrays of shape (b_i, D)
        New rows in the data's dtype, possibly in several pieces; never
        written to.
    sketch_rows : int
        Rows of the result, ``min(sketch_size, D)``.

    Returns
    -------
    new_sketch : array of shape (sketch_rows, D), float64
        Rows ``sqrt(lambda_i - delta) v_i^T`` in decreasing order, zero rows last.
    delta : float
        The shrinkage, ``lambda_{sketch_rows + 1}`` (0 when there are fewer
        eigenvalues).
    """
    n_features = sketch.shape[1]
    m = sketch.shape[0] + sum(block.shape[0] for block in blocks)
    if m > n_features:
        # No stacking needed: C^T C is the sum of the pieces' Gram matrices.
        gram = gram64(xp, sketch)
        for block in blocks:
            gram = gram + gram64(xp, block)
        return shrink_gram(xp, gram, sketch_rows)
    rows = xp.concat([sketch, *(xp.astype(block, xp.float64) for block in blocks)], axis=0)
    top, vectors, delta = _top_eigenpairs(xp, rows @ rows.T, sketch_rows)
    k = top.shape[0]
    # Row i of U^T C has norm sqrt(lambda_i): rescale it to sqrt(lambda_i - delta).
    positive = top > 0
    shrunk = xp.clip(top - delta, min=0.0)
    scale = xp.where(positive, xp.sqrt(shrunk / xp.where(positive, top, 1.0)), 0.0)
    new = (vectors * scale).T @ rows
    if k < sketch_rows:
        pad = xp.zeros((sketch_rows - k, n_features), dtype=xp.float64, device=device(sketch))
        new = xp.concat([new, pad], axis=0)
    return new, delta
