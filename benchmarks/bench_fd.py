"""Frequent Directions against the streaming and in-memory low-rank peers.

Run from the repository root:

    python benchmarks/bench_fd.py            # every size, writes benchmarks/results/bench_fd.md
    python benchmarks/bench_fd.py --quick    # the small size only

For each matrix (float32, decaying spectrum plus noise) and sketch size l = 64,
every method runs once in the same process, after a warm-up call on a slice,
and reports its wall time, the peak of memory allocated through NumPy during
the run (tracemalloc; BLAS workspaces are not seen), and the relative
covariance error ||A^T A - B^T B||_2 / ||A||_F^2.
Times are also given as multiples of one GEMM ``A @ Omega`` (n x D times D x l),
timed in the same run, and of sketchsel's own time.

IncrementalPCA centres the data, so its error is measured on the centred
matrix, the one it approximates.

The sweeps fit one matrix at several sketch sizes: the default plan against a
row buffer of l rows a block (the faster route at small l, which the default
once took below 2,048 features), with the error, the certificate and the time;
above 2,048 features the row buffer is the default.
"""

import sys
import time
import tracemalloc

import numpy as np
from _report import run
from sklearn.decomposition import IncrementalPCA
from sklearn.utils.extmath import randomized_svd

from sketchsel import FrequentDirections

SKETCH_SIZE = 64
SWEEP_SIZES = (4, 8, 16, 32, 48, 64)
SIZES = [("peers", 50_000, 512), ("peers", 200_000, 1_024),
         ("sweep", 30_000, 2_000), ("sweep", 20_000, 3_000)]


def make_matrix(n, d, seed=0):
    """Rank-40 signal with singular values decaying as 0.9**k, plus 0.1 Gaussian noise."""
    rng = np.random.default_rng(seed)
    r = 40
    A = (rng.standard_normal((n, r), dtype=np.float32) * 0.9 ** np.arange(r, dtype=np.float32)) @ (
        rng.standard_normal((r, d), dtype=np.float32)
    )
    A += 0.1 * rng.standard_normal((n, d), dtype=np.float32)
    return A


def textbook_fd(A, ell):
    """Liberty's fast FD: a 2l-row buffer, SVD and shrink by the l-th value when full.

    As in the reference code, except that rows appended since the last shrink
    are kept (one final shrink), so its error is comparable.
    """
    n, d = A.shape
    buffer = np.zeros((2 * ell, d), dtype=A.dtype)
    filled = 0

    def rotate(rows):
        _, s, vt = np.linalg.svd(rows, full_matrices=False)
        s2 = s**2
        delta = s2[ell - 1] if s2.size >= ell else 0.0
        out = np.zeros_like(buffer)
        k = min(ell, s2.size)
        out[:k] = np.sqrt(np.maximum(s2[:k] - delta, 0.0))[:, None] * vt[:k]
        return out

    for row in A:
        if filled == 2 * ell:
            buffer = rotate(buffer)
            filled = ell
        buffer[filled] = row
        filled += 1
    return rotate(buffer[:filled])[:ell]


def run_sketchsel(A, ell):
    fd = FrequentDirections(ell, backend="numpy").fit(A)
    return fd.sketch_, fd


def run_sketchsel_row_buffer(A, ell):
    fd = FrequentDirections(ell, block_size=4 * ell, backend="numpy").fit(A)
    return fd.sketch_, fd


def run_ipca(A, ell):
    ipca = IncrementalPCA(n_components=ell).fit(A)
    return ipca.singular_values_[:, None] * ipca.components_, ipca


def run_rsvd(A, ell):
    _, s, vt = randomized_svd(A, ell, random_state=0)
    return s[:, None] * vt, None


def measure(fn, *args):
    tracemalloc.start()
    start = time.perf_counter()
    out = fn(*args)
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, elapsed, peak


def spectral_error(gram, B, total):
    B = np.asarray(B, dtype=np.float64)
    eigs = np.linalg.eigvalsh(gram - B.T @ B)
    return max(abs(eigs[0]), abs(eigs[-1])) / total


def exact_gram(X):
    """``X^T X`` in float64 and its trace, ``||X||_F^2``: the reference for the errors."""
    X64 = np.asarray(X, dtype=np.float64)
    gram = X64.T @ X64
    return gram, float(np.trace(gram))


def route(model):
    if model.block_size_ is None:
        return "Gram route"
    return f"block {model.block_size_}, {model.n_shrinks_} shrinks"


def sweep(n, d):
    """Error, certificate and time of the default plan and an l-row buffer, against l."""
    A = make_matrix(n, d)
    gram, total = exact_gram(A)
    plans = [("default", lambda ell: "auto"), ("row buffer, block_size=l", lambda ell: ell)]
    FrequentDirections(4, backend="numpy").fit(A[: 4 * d])  # warm-up
    lines = [
        f"### Sweep: {n:,} x {d:,} float32, l from {SWEEP_SIZES[0]} to {SWEEP_SIZES[-1]}",
        "",
        "| l | plan | time (s) | rel. covariance error | certificate | route |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for ell in SWEEP_SIZES:
        for name, block in plans:
            start = time.perf_counter()
            fd = FrequentDirections(ell, block_size=block(ell), backend="numpy").fit(A)
            B = fd.sketch_
            elapsed = time.perf_counter() - start
            error = spectral_error(gram, B, total)
            bound = fd.covariance_error_bound() / total
            print(f"  l={ell} {name}: {elapsed:.3f} s, error {error:.2e}", flush=True)
            lines.append(f"| {ell} | {name} | {elapsed:.3f} | {error:.2e} | {bound:.2e} "
                         f"| {route(fd)} |")
    return lines


def bench(n, d, ell):
    A = make_matrix(n, d)
    omega = np.random.default_rng(1).standard_normal((d, ell), dtype=np.float32)
    gemm = min(measure(np.matmul, A, omega)[1] for _ in range(3))
    gram, total = exact_gram(A)
    A64 = A.astype(np.float64)
    gram_c, total_c = exact_gram(A64 - A64.mean(axis=0))
    del A64
    rows = []
    results = {}
    for name, fn in [
        ("sketchsel FrequentDirections", run_sketchsel),
        ("sketchsel FrequentDirections, row buffer (block_size=4l)", run_sketchsel_row_buffer),
        ("textbook FD (2l buffer)", textbook_fd),
        ("sklearn IncrementalPCA", run_ipca),
        ("sklearn randomized_svd (in memory)", run_rsvd),
    ]:
        fn(A[: 4 * d], ell)  # warm-up: imports, thread pools and first-call costs
        out, elapsed, peak = measure(fn, A, ell)
        B, model = out if isinstance(out, tuple) else (out, None)
        if name.startswith("sklearn IncrementalPCA"):
            error = spectral_error(gram_c, B, total_c)
        else:
            error = spectral_error(gram, B, total)
        extra = ""
        if isinstance(model, FrequentDirections):
            extra = f"certificate {model.covariance_error_bound() / total:.2e}, {route(model)}"
        results[name] = elapsed
        rows.append((name, elapsed, peak, error, extra))
        print(f"  {name}: {elapsed:.3f} s, error {error:.2e} {extra}", flush=True)
    ours = results["sketchsel FrequentDirections"]
    lines = [
        f"### A: {n:,} x {d:,} float32, l = {ell}",
        "",
        f"One GEMM A @ Omega ({n:,} x {d:,} times {d:,} x {ell}): {gemm * 1e3:.1f} ms. "
        f"Input matrix: {A.nbytes / 2**20:.0f} MiB.",
        "",
        "| method | time (s) | x GEMM | x sketchsel | peak NumPy memory (MiB) "
        "| rel. covariance error | notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, elapsed, peak, error, extra in rows:
        lines.append(
            f"| {name} | {elapsed:.3f} | {elapsed / gemm:.1f} | {elapsed / ours:.2f} | "
            f"{peak / 2**20:.1f} | {error:.2e} | {extra} |"
        )
    return lines


def main(argv=None):
    return run(
        "bench_fd",
        __doc__,
        "Frequent Directions benchmark",
        "Peak memory counts arrays allocated through NumPy during the call (tracemalloc), "
        "not the input. IncrementalPCA's error is that of the centred matrix, which it "
        "approximates.",
        SIZES,
        SIZES[:1],
        lambda size: bench(*size[1:], SKETCH_SIZE) if size[0] == "peers" else sweep(*size[1:]),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
