"""Selection time at scale: each selector's defaults and its O(N) options, CPU and GPU.

Run from the repository root:

    python benchmarks/bench_scale.py            # the defaults; 20,000 and 100,000 rows
    python benchmarks/bench_scale.py --quick    # the defaults only

First the defaults beside one Frequent Directions pass (``sketch_size=128``) over the same
50,000 x 1,024 float32 rows at budgets of 1%, 10% and 25%, on NumPy (each default thins
its classes' representations, O(N d) after the pass that represents them).

Data: N x 512 float32 rows (low rank plus noise, rows of unequal norms), 10 classes,
budget 10%. Each selector (and the sketch pass) is timed as the fastest of three fits
after one warm-up fit on the same data (which also compiles the Numba kernels): on the
NumPy back-end, and, when CuPy sees a GPU, on
the CuPy back-end with the data already on the GPU (the same selections;
``tests/test_array_api.py`` checks that). The default of AgreementSelector,
``strategy="diverse"``, compares every candidate with every row chosen,
O(n_select * N * sketch_size); ``strategy="stratified"`` is its O(N) option. FastMaxVol
fills a budget above its rank (here the 512 features) by rectangular maxvol: on NumPy a
lazy greedy over the rows' leverages, then one product for the N x n_select
coefficients; on CuPy the reference path, which updates every row's coefficients for
each row added, O(N * n_select^2).
"""

import sys
import time

import numpy as np
from _report import run

from sketchsel import (
    AgreementSelector,
    FastMaxVol,
    FrequentDirections,
    MomentMatchingSelector,
    config_context,
)
from sketchsel._array_api import gpu_available

# name: make
SELECTORS = {
    "AgreementSelector(strategy='diverse')": lambda: AgreementSelector(n_select=0.1,
                                                                      strategy="diverse"),
    "AgreementSelector(strategy='stratified')": lambda: AgreementSelector(
        n_select=0.1, strategy="stratified", random_state=0),
    "AgreementSelector(strategy='top')": lambda: AgreementSelector(n_select=0.1, strategy="top"),
    # Pinned to what bench_scale.md measured, before class_balance="auto", the median
    # cap and thinning became these selectors' defaults: the program and maxvol.
    "MomentMatchingSelector(class_balance=None)": lambda: MomentMatchingSelector(
        n_select=0.1, strategy="moments", class_balance=None, random_state=0),
    "FastMaxVol(row_norms='unit', class_balance=None)": lambda: FastMaxVol(
        n_select=0.1, strategy="maxvol", row_norms="unit", class_balance=None),
}


# The defaults beside one Frequent Directions pass over the same rows (sketch_size=128).
DEFAULTS = {
    "AgreementSelector()": lambda budget: AgreementSelector(n_select=budget, random_state=0),
    "FastMaxVol()": lambda budget: FastMaxVol(n_select=budget, random_state=0),
    "MomentMatchingSelector()": lambda budget: MomentMatchingSelector(n_select=budget,
                                                                      random_state=0),
}
DEFAULT_BUDGETS = (0.01, 0.1, 0.25)
# Timed fits of each cell, the fastest reported: one fit varies by a fifth on 2 cores.
REPEATS = 3


def data(n_rows, n_features=512, rank=32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, rank), dtype=np.float32) @ rng.standard_normal(
        (rank, n_features), dtype=np.float32)
    X += 0.1 * rng.standard_normal((n_rows, n_features), dtype=np.float32)
    X *= rng.uniform(0.2, 5.0, (n_rows, 1)).astype(np.float32)
    return X, rng.integers(0, 10, n_rows)


def timed(make, X, y, backend, synchronize):
    """The fastest of REPEATS fits after a warm-up fit (Numba's cache, CuPy's kernels)."""
    with config_context(backend=backend):
        make().fit(X, y)
        synchronize()
        seconds = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            make().fit(X, y)
            synchronize()
            seconds.append(time.perf_counter() - start)
    return min(seconds)


def defaults_against_the_sketch(n_rows, n_features):
    """Each default's fit time as a multiple of one Frequent Directions pass, on NumPy."""
    X, y = data(n_rows, n_features)
    sketch = timed(lambda: FrequentDirections(128), X, None, "numpy", lambda: None)
    lines = [f"### The defaults against one sketch pass: {n_rows:,} x {n_features:,} float32, "
             f"10 classes", "",
             f"One `FrequentDirections(128)` pass: {sketch:.2f} s. Each cell: seconds per fit "
             "(the fit's multiple of the sketch pass).", "",
             "| selector | " + " | ".join(f"{b:.0%}" for b in DEFAULT_BUDGETS) + " |",
             "|---|" + "---:|" * len(DEFAULT_BUDGETS)]
    for name, make in DEFAULTS.items():
        cells = []
        for budget in DEFAULT_BUDGETS:
            seconds = timed(lambda: make(budget), X, y, "numpy", lambda: None)
            cells.append(f"{seconds:.2f} ({seconds / sketch:.1f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def bench(size):
    if size[0] == "defaults":
        return defaults_against_the_sketch(*size[1:])
    (n_rows,) = size
    X, y = data(n_rows)
    on_gpu = gpu_available()
    if on_gpu:
        import cupy

        X_gpu = cupy.asarray(X)
        synchronize = cupy.cuda.Device().synchronize
        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    lines = [f"### {n_rows:,} x {X.shape[1]} float32, 10 classes, budget 10%", ""]
    header = "| selector | NumPy (s) |" + (f" CuPy on {device} (s) | NumPy / CuPy |"
                                             if on_gpu else "")
    lines += [header, "|---|---:|" + ("---:|---:|" if on_gpu else "")]
    for name, make in SELECTORS.items():
        cpu = timed(make, X, y, "numpy", lambda: None)
        row = f"| {name} | {cpu:.2f} |"
        if on_gpu:
            gpu = timed(make, X_gpu, y, "cupy", synchronize)
            row += f" {gpu:.2f} | {cpu / gpu:.1f} |"
        lines.append(row)
        print(row, flush=True)
    if not on_gpu:
        lines += ["", "No GPU: CuPy columns not run."]
    return lines


if __name__ == "__main__":
    sys.exit(run(
        "bench_scale", __doc__, "Selection time at scale",
        "Seconds per fit (the fastest of three timed fits after a warm-up fit).",
        [("defaults", 50_000, 1_024), (20_000,), (100_000,)], [("defaults", 50_000, 1_024)],
        bench,
    ))
