"""Numba kernels for the MaxVol iterations on NumPy arrays.

Each kernel makes one pass over the coefficient matrix C per step and fuses
the rank-1 update with the search for the next step's pivot, so a step costs
one read and one write of C. Rows are split into a fixed number of chunks, each
run by a thread and each keeping its own maximum; the maxima are then reduced
in chunk order with strict comparisons, which selects the first maximum in
row-major order, as ``numpy.argmax`` does, whatever the number of threads.

This module imports Numba; it is imported only when a NumPy kernel runs.
"""

import contextlib

import numba
import numpy as np
from numba import njit, prange

# Fixed so that results do not depend on the number of threads.
_CHUNKS = 64
# Below this many entries of C, a step takes microseconds and waking the
# threads for each of its parallel loops costs more than the step: measured
# 15x slower on 200 x 50 with 2 threads next to PyTorch's.
_PARALLEL_MIN_ENTRIES = 2**18
# Rows per block in the layout conversions.
_ROW_BLOCK = 512
# Lets LLVM vectorise the max-reductions; no contraction into FMA, so that
# the updates round exactly as the reference implementation's.
_FASTMATH = {"nnan", "ninf", "nsz", "reassoc"}


@contextlib.contextmanager
def threads_for(C):
    """One thread for the kernels called inside when C is small; results do not change."""
    if C.size >= _PARALLEL_MIN_ENTRIES:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@njit(cache=True)
def _first_max(values, indices):
    best = 0
    for c in range(1, values.shape[0]):
        if values[c] > values[best]:
            best = c
    return values[best], indices[best]


@njit(parallel=True, cache=True)
def _abs_argmax(C):
    n, r = C.shape
    step = (n + _CHUNKS - 1) // _CHUNKS
    values = np.full(_CHUNKS, -1.0)
    indices = np.zeros(_CHUNKS, dtype=np.int64)
    for c in prange(_CHUNKS):
        best, where = -1.0, 0
        for k in range(c * step, min(n, (c + 1) * step)):
            for col in range(r):
                a = abs(C[k, col])
                if a > best:
                    best, where = a, k * r + col
        values[c], indices[c] = best, where
    return _first_max(values, indices)


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def swap_loop(C, pivots, tol, max_iters):
    """Maxvol swaps on C = A A[pivots]^-1, in place; returns the number of swaps.

    Swapping row i into pivot position j multiplies |det A[pivots]| by
    |C[i, j]| and updates ``C -= outer(C[:, j], C[i] - e_j) / C[i, j]``.
    """
    n, r = C.shape
    step = (n + _CHUNKS - 1) // _CHUNKS
    values = np.empty(_CHUNKS)
    indices = np.empty(_CHUNKS, dtype=np.int64)
    # In C's dtype, so that the values compared below are those stored.
    row = np.empty(r, dtype=C.dtype)
    best, where = _abs_argmax(C)
    n_iter = 0
    while best > tol and n_iter < max_iters:
        i, j = where // r, where % r
        pivots[j] = i
        pivot = C[i, j]
        for col in range(r):
            row[col] = C[i, col] / pivot
        row[j] -= 1.0 / pivot
        for c in prange(_CHUNKS):
            local, at = -1.0, 0
            for k in range(c * step, min(n, (c + 1) * step)):
                if k == i:
                    # The new pivot row is e_j exactly: round-off must not
                    # push its 1 above tol = 1 and trigger a swap with itself.
                    for col in range(r):
                        C[k, col] = 0.0
                    C[k, j] = 1.0
                    if 1.0 > local:
                        local, at = 1.0, k * r + j
                    continue
                f = C[k, j]
                largest = 0.0
                for col in range(r):
                    v = C[k, col] - f * row[col]
                    C[k, col] = v
                    largest = max(largest, abs(v))
                if largest > local:
                    local = largest
                    for col in range(r):
                        if abs(C[k, col]) == largest:
                            at = k * r + col
                            break
            values[c], indices[c] = local, at
        best, where = _first_max(values, indices)
        n_iter += 1
    return n_iter


@njit(parallel=True, cache=True)
def copy_into(source, out):
    """out[:] = source, by blocks of rows, whatever the two memory layouts.

    Converting a tall, narrow matrix between row- and column-major order
    element by element costs a cache line per element (this is what makes
    ``numpy.asfortranarray`` slow here); within a block of rows both sides
    stay in cache.
    """
    n, r = source.shape
    blocks = (n + _ROW_BLOCK - 1) // _ROW_BLOCK
    for b in prange(blocks):
        for col in range(r):
            for k in range(b * _ROW_BLOCK, min(n, (b + 1) * _ROW_BLOCK)):
                out[k, col] = source[k, col]
    return out
