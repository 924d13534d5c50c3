"""AgreementSelector: streaming cost against the sketch alone, and quality against random.

Run from the repository root:

    python benchmarks/bench_agreement.py           # writes benchmarks/results/bench_agreement.md
    python benchmarks/bench_agreement.py --quick   # 20,000 rows instead of 200,000

Speed: N float32 "gradients" of D = 4,096 (a rank-64 signal plus noise), written once
to a memory-mapped file in a temporary folder and streamed in batches of 8,192 rows,
sketch_size = 256. The whole selection (two passes) is timed against the Frequent
Directions pass alone, and the peak of memory allocated through NumPy
(tracemalloc; the memory map's pages are not counted) against N x D.

Quality: scikit-learn's digits, a 75/25 stratified split, a logistic regression
trained on the whole training set, and its exact per-example last-layer gradients
``(p_i - y_i) (x) [x_i, 1]`` (650 numbers per example). Each selector keeps 10% or 25%
of the training set, a fresh logistic regression is trained on the subset, and its
test accuracy is compared with random subsets of the same size (5 seeds, mean and
standard deviation) and with the whole training set.
"""

import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np
from _report import run

from sketchsel import AgreementSelector, FastMaxVol, FrequentDirections
from sketchsel._demo import accuracy, digits_gradients

N_FEATURES = 4_096
SKETCH_SIZE = 256
BATCH = 8_192
BUDGETS = (0.10, 0.25)
SEEDS = range(5)


def write_gradients(path, n, d, seed=0):
    """A rank-64 signal plus noise, written in blocks so it never sits in memory whole."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((64, d), dtype=np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, d))
    for start in range(0, n, BATCH):
        stop = min(n, start + BATCH)
        block = rng.standard_normal((stop - start, 64), dtype=np.float32) @ basis
        block += rng.standard_normal((stop - start, d), dtype=np.float32)
        out[start:stop] = block
    out.flush()
    return np.load(path, mmap_mode="r")


def measured(fn):
    tracemalloc.start()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, elapsed, peak


def bench_speed(n):
    with tempfile.TemporaryDirectory() as folder:
        G = write_gradients(os.path.join(folder, "gradients.npy"), n, N_FEATURES)

        def source():
            return (G[i : i + BATCH] for i in range(0, n, BATCH))

        def sketch_only():
            fd = FrequentDirections(SKETCH_SIZE)
            for batch in source():
                fd.partial_fit(batch)
            return fd.components_

        _, t_fd, peak_fd = measured(sketch_only)
        selector, t_all, peak_all = measured(
            lambda: AgreementSelector(n_select=0.1, sketch_size=SKETCH_SIZE,
                                      strategy="top").fit(source)
        )
        three, t_three, peak_three = measured(
            lambda: AgreementSelector(
                n_select=0.1, sketch_size=SKETCH_SIZE, strategy="top", store_projections=False
            ).fit(source)
        )
        assert selector.select().size == n // 10
        assert np.array_equal(three.select(), selector.select())
    data = n * N_FEATURES * 4
    return [
        f"### Streaming: {n:,} x {N_FEATURES:,} float32 gradients, sketch_size {SKETCH_SIZE}, "
        f"batches of {BATCH:,}",
        "",
        "| step | time (s) | x sketch pass | peak NumPy memory (MiB) | peak / (N x D) |",
        "|---|---:|---:|---:|---:|",
        f"| Frequent Directions pass alone | {t_fd:.2f} | 1.00 | {peak_fd / 2**20:.0f} | "
        f"{peak_fd / data:.1%} |",
        f"| AgreementSelector.fit (top scores, two passes, projections kept, 10%) | "
        f"{t_all:.2f} | "
        f"{t_all / t_fd:.2f} | {peak_all / 2**20:.0f} | {peak_all / data:.1%} |",
        f"| AgreementSelector.fit (top scores, three passes, store_projections=False) | "
        f"{t_three:.2f} | "
        f"{t_three / t_fd:.2f} | {peak_three / 2**20:.0f} | {peak_three / data:.1%} |",
        "",
        f"N x D = {data / 2**20:,.0f} MiB.",
    ]


def bench_quality():
    X_train, X_test, y_train, y_test, G, full = digits_gradients()
    selectors = {
        "AgreementSelector (defaults)": lambda b: AgreementSelector(n_select=b),
        'AgreementSelector, strategy="top", class_balance=None (SAGE)': lambda b: (
            AgreementSelector(n_select=b, strategy="top", class_balance=None)),
        'AgreementSelector, strategy="top", class_balance="equal"': lambda b: AgreementSelector(
            n_select=b, strategy="top", class_balance="equal"
        ),
        "AgreementSelector, diversity=0.5, class_balance=None, fallback=None":
            lambda b: AgreementSelector(n_select=b, strategy="diverse", diversity=0.5,
                                        class_balance=None, fallback=None),
        "FastMaxVol on the gradients": lambda b: FastMaxVol(n_select=b, strategy="maxvol"),
    }
    header = "| method | " + " | ".join(f"{b:.0%} accuracy | time (s)" for b in BUDGETS) + " |"
    lines = [
        f"### Quality: digits, {len(y_train)} training and {len(y_test)} test images, "
        f"gradients of dimension {G.shape[1]}",
        "",
        f"Logistic regression on the whole training set: test accuracy {full:.3f}.",
        "",
        header,
        "|---|" + "---:|---:|" * len(BUDGETS),
    ]
    cells = []
    for b in BUDGETS:
        k = int(b * len(y_train))
        scores = []
        for seed in SEEDS:
            rows = np.random.default_rng(seed).choice(len(y_train), k, replace=False)
            scores.append(accuracy(X_train[rows], y_train[rows], X_test, y_test))
        cells.append(f"{np.mean(scores):.3f} ± {np.std(scores):.3f} | ")
    lines.append("| random subsets (5 seeds) | " + "".join(c + " |" for c in cells))
    for name, make in selectors.items():
        cells = []
        for b in BUDGETS:
            start = time.perf_counter()
            rows = make(b).fit(G, y_train).select()
            elapsed = time.perf_counter() - start
            cells.append(f"{accuracy(X_train[rows], y_train[rows], X_test, y_test):.3f} | "
                         f"{elapsed:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    return run(
        "bench_agreement",
        __doc__,
        "AgreementSelector benchmark",
        "Speed and memory of the streamed selection, then selection quality on real data.",
        [("streaming", 200_000), ("quality",)],
        [("streaming", 20_000), ("quality",)],
        lambda part: bench_speed(part[1]) if part[0] == "streaming" else bench_quality(),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
