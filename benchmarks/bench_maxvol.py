"""maxvol against maxvolpy's algorithm in NumPy/SciPy and against teneva.

Run from the repository root:

    python benchmarks/bench_maxvol.py           # writes benchmarks/results/bench_maxvol.md
    python benchmarks/bench_maxvol.py --quick   # the two smaller sizes only

Each method runs once per size in the same process (best of three when a run
takes under 2 s; after a warm-up on a small matrix, which also compiles the
Numba kernels), on a float64 Gaussian
matrix, with ``tol=1.05`` and at most 100 swaps. maxvolpy itself no longer
builds on NumPy 2, so its pure-Python fallback ``py_maxvol`` is re-implemented
here as written (LAPACK getrf start, two trtrs solves, and per swap a full
``argmax |C|`` plus a BLAS ``ger`` rank-1 update on the transposed C).
teneva allocates an N x N permutation matrix, and runs only where that fits.

"time per swap" is, for sketchsel, the Numba swap loop timed alone, and for
maxvolpy's algorithm (time with 100 swaps - time with none) / swaps; "one read
of C" is the time of ``C.max()``, the memory bandwidth bound of a pass over C.
"""

import sys
import time

import numpy as np
import scipy.linalg
from _report import run
from scipy.linalg.blas import dger

from sketchsel.linalg import maxvol

SIZES = [(20_000, 32), (100_000, 64), (1_000_000, 64)]


def maxvolpy_numpy(A, tol=1.05, max_iters=100):
    """maxvolpy's ``py_maxvol``, in NumPy/SciPy."""
    n, r = A.shape
    B = np.copy(A, order="F")
    C = np.copy(A.T, order="F")
    H, ipiv, _ = scipy.linalg.lapack.dgetrf(B, overwrite_a=1)
    index = np.arange(n, dtype=np.int64)
    for i in range(r):
        index[i], index[ipiv[i]] = index[ipiv[i]], index[i]
    B = H[:r]
    scipy.linalg.lapack.dtrtrs(B, C, trans=1, lower=0, unitdiag=0, overwrite_b=1)
    scipy.linalg.lapack.dtrtrs(B, C, trans=1, lower=1, unitdiag=1, overwrite_b=1)
    i, j = divmod(int(np.abs(C).argmax()), n)
    iters = 0
    while abs(C[i, j]) > tol and iters < max_iters:
        index[i] = j
        tmp_row = C[i].copy()
        tmp_column = C[:, j].copy()
        tmp_column[i] -= 1.0
        C = dger(-1.0 / C[i, j], tmp_column, tmp_row, a=C, overwrite_a=1)
        iters += 1
        i, j = divmod(int(np.abs(C).argmax()), n)
    return index[:r].copy(), C.T, iters


def run_sketchsel(A, max_iters=100):
    pivots, C, n_iter = maxvol(A, tol=1.05, max_iters=max_iters, return_n_iter=True)
    return pivots, C, n_iter


def check_teneva_fits(n):
    """teneva.maxvol allocates an N x N permutation matrix: refuse where it would not fit."""
    if n * n * 8 > 8 * 2**30:
        raise MemoryError(f"needs an N x N permutation matrix ({n * n * 8 / 2**30:.0f} GiB)")


def run_teneva(A, max_iters=100):
    import teneva

    check_teneva_fits(A.shape[0])
    pivots, C = teneva.maxvol(A, e=1.05, k=max_iters)
    return pivots, C, None


def sketchsel_swap_time(A):
    """Seconds per swap of sketchsel's kernel, timed alone: at large N the start's
    run-to-run noise exceeds the whole swap loop, so a difference of two runs is no use."""
    from array_api_compat import array_namespace

    from sketchsel.linalg import _maxvol as impl
    from sketchsel.linalg import _maxvol_numba

    pivots, _, factors = impl._start(array_namespace(A), A, A.shape[1])
    C = impl._lapack_coefficients(*factors)
    start = time.perf_counter()
    n_iter = _maxvol_numba.swap_loop(C, np.asarray(pivots, dtype=np.int64), 1.05, 100)
    return (time.perf_counter() - start) / max(n_iter, 1)


def log_volume(A, pivots):
    return float(np.linalg.slogdet(A[np.asarray(pivots)])[1])


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench(n, r):
    A = np.random.default_rng(0).standard_normal((n, r))
    lines = [f"### A: {n:,} x {r} float64", ""]
    rows = []
    for name, fn in [
        ("sketchsel maxvol", run_sketchsel),
        ("maxvolpy algorithm (NumPy/SciPy)", maxvolpy_numpy),
        ("teneva.maxvol", run_teneva),
    ]:
        fn(A[:2000, :r].copy())  # warm-up: imports, Numba compilation, thread pools
        try:
            (pivots, C, n_iter), elapsed = timed(fn, A)
            _, start_only = timed(fn, A, max_iters=0)
            if elapsed < 2.0:  # short runs: the best of three, against timer noise
                elapsed = min([elapsed] + [timed(fn, A)[1] for _ in range(2)])
                start_only = min([start_only] + [timed(fn, A, max_iters=0)[1] for _ in range(2)])
        except MemoryError as exc:
            rows.append((name, None, None, None, None, None, f"not run: {exc}"))
            print(f"  {name}: not run ({exc})", flush=True)
            continue
        volume = log_volume(A, pivots)
        if fn is run_sketchsel:
            per_swap = sketchsel_swap_time(A)
        else:
            per_swap = (elapsed - start_only) / n_iter if n_iter else float("nan")
        read = min(timed(np.max, C)[1] for _ in range(3))
        rows.append((name, elapsed, n_iter, per_swap, read, volume, ""))
        print(f"  {name}: {elapsed:.3f} s, {n_iter} swaps, log-volume {volume:.3f}", flush=True)
    ours = rows[0][1]
    lines += [
        "| method | time (s) | x sketchsel | swaps | time per swap (ms) | one read of C (ms) "
        "| swap / read | log-volume | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, elapsed, n_iter, per_swap, read, volume, note in rows:
        if elapsed is None:
            lines.append(f"| {name} | | | | | | | | {note} |")
            continue
        swaps = "" if n_iter is None else str(n_iter)
        swap_ms = "" if n_iter is None else f"{per_swap * 1e3:.2f}"
        ratio = "" if n_iter is None else f"{per_swap / read:.2f}"
        lines.append(
            f"| {name} | {elapsed:.3f} | {elapsed / ours:.1f} | {swaps} | {swap_ms} | "
            f"{read * 1e3:.2f} | {ratio} | {volume:.3f} | {note} |"
        )
    return lines + [""]


def main(argv=None):
    return run(
        "bench_maxvol",
        __doc__,
        "MaxVol benchmark",
        "tol = 1.05, at most 100 swaps. Time per swap excludes the LU start.",
        SIZES,
        SIZES[:2],
        lambda size: bench(*size),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
