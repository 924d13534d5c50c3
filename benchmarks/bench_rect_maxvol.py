"""rect_maxvol, and FastMaxVol above its rank, against maxvolpy's rect_maxvol algorithm and teneva.

Run from the repository root:

    python benchmarks/bench_rect_maxvol.py           # writes results/bench_rect_maxvol.md
    python benchmarks/bench_rect_maxvol.py --quick   # the three smaller sizes only

A budget of K rows above the rank r is filled by rectangular maxvol (Mikhalev &
Oseledets 2018): starting from the r rows of maxvol, add the row whose coefficients on
the chosen rows have the largest norm until K rows are chosen (``tol=0``, so exactly
K). This is how FastMaxVol fills a budget above its rank. maxvolpy's ``py_rect_maxvol``,
re-implemented here as written (it no longer builds on NumPy 2), updates the N x K
coefficient matrix for every row added, O(N K) per row and O(N K^2) in all. sketchsel
keeps each row's squared norm, its leverage against the chosen rows, in a heap: a row
added only lowers the others' leverages, so only the rows at the top are recomputed,
O(r^2) each, and C is formed once at the end. Both run on the same float64 Gaussian
matrix with rows of unequal norms, after a warm-up on a small one; both choose the same
rows (checked, and reported). teneva's ``maxvol_rect`` (``dr_min = dr_max = K - r``)
is the same algorithm, stacking a new column onto C at every row added; its maxvol
start allocates an N x N permutation matrix, so it runs only where that fits.

The sizes are those of ``bench_maxvol.py`` with K = 4r, the usual use (a few rows per
column), and three with K = N / 10, where the O(N K^2) update dominates.
"""

import sys
import time

import numpy as np
from _report import run
from bench_maxvol import check_teneva_fits, maxvolpy_numpy
from scipy.linalg.blas import dger

from sketchsel.linalg import rect_maxvol

SIZES = [(20_000, 32, 128), (100_000, 64, 256), (1_000_000, 64, 256),
         (5_000, 32, 500), (20_000, 64, 2_000), (50_000, 128, 5_000)]
# Largest N * K * K the peer runs (about a minute on 2 cores).
PEER_LIMIT = 2.5e11


def maxvolpy_rect_numpy(A, max_rows):
    """maxvolpy's ``py_rect_maxvol`` with ``maxK = minK = max_rows``."""
    n, r = A.shape
    index = np.zeros(n, dtype=np.int64)
    chosen = np.ones(n)
    start, C, _ = maxvolpy_numpy(A, tol=1.05, max_iters=10)
    index[:r] = start
    chosen[start] = 0
    C = np.asfortranarray(np.hstack([C, np.zeros((n, max_rows - r))]))
    row_norm_sqr = np.einsum("ij,ij->i", C, C) * chosen
    i = int(row_norm_sqr.argmax())
    k = r
    while k < max_rows:
        index[k] = i
        chosen[i] = 0
        c = C[i].copy()
        v = C.dot(c)
        scale = 1.0 / (1.0 + v[i])
        C = dger(-scale, v, c, a=C, overwrite_a=1)
        C[:, k] = scale * v
        C[i, :] = 0.0
        C[i, k] = 1.0
        k += 1
        row_norm_sqr -= scale * v * v
        row_norm_sqr *= chosen
        i = int(row_norm_sqr.argmax())
    return index[:k].copy(), C[:, :k].copy()


def run_teneva(A, max_rows):
    import teneva

    check_teneva_fits(A.shape[0])
    added = max_rows - A.shape[1]
    return teneva.maxvol_rect(A, e=1.0, dr_min=added, dr_max=added, e0=1.05, k0=10)


def run_sketchsel(A, max_rows):
    return rect_maxvol(A, max_rows=max_rows, min_rows=max_rows)


def bench(n, r, k):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, r)) * rng.uniform(0.2, 5.0, (n, 1))
    lines = [f"### A: {n:,} x {r} float64, {k:,} rows", ""]
    results = {}
    for name, fn in [("sketchsel rect_maxvol", run_sketchsel),
                     ("maxvolpy rect_maxvol algorithm (NumPy/SciPy)", maxvolpy_rect_numpy),
                     ("teneva.maxvol_rect", run_teneva)]:
        if fn is not run_sketchsel and n * k * k > PEER_LIMIT:
            results[name] = f"not run: O(N K^2) = {n * k * k:.1e}"
            print(f"  {name}: {results[name]}", flush=True)
            continue
        fn(A[:1000].copy(), 2 * r)  # warm-up: imports, Numba compilation, thread pools
        start = time.perf_counter()
        try:
            pivots, C = fn(A, k)
        except MemoryError as exc:
            results[name] = f"not run: {exc}"
            print(f"  {name}: {results[name]}", flush=True)
            continue
        elapsed = time.perf_counter() - start
        error = np.abs(C @ A[np.asarray(pivots)] - A).max() / np.abs(A).max()
        results[name] = (elapsed, np.asarray(pivots), error)
        print(f"  {name}: {elapsed:.2f} s", flush=True)
    ours, ours_pivots, _ = results["sketchsel rect_maxvol"]
    lines += ["| method | time (s) | x sketchsel | same rows as sketchsel | reconstruction error |",
              "|---|---:|---:|---|---:|"]
    for name, result in results.items():
        if isinstance(result, str):
            lines.append(f"| {name} | | | | {result} |")
            continue
        elapsed, pivots, error = result
        same = ("" if pivots is ours_pivots
                else "yes" if np.array_equal(np.sort(pivots), np.sort(ours_pivots)) else "no")
        lines.append(f"| {name} | {elapsed:.2f} | {elapsed / ours:.1f} | {same} | {error:.1e} |")
    return lines + [""]


if __name__ == "__main__":
    sys.exit(run(
        "bench_rect_maxvol", __doc__, "Rectangular maxvol benchmark",
        "min_rows = max_rows = K: exactly K rows. Times include the maxvol start (10 swaps "
        "at most). Reconstruction error: the largest entry of C A[rows] - A over the largest "
        "of A.",
        SIZES, SIZES[:1] + SIZES[3:5], lambda size: bench(*size),
    ))
