"""Selection time at scale: each selector's default beside one sketch pass, to a million rows.

Run from the repository root:

    python benchmarks/bench_scale.py            # every table below; about 15 minutes on 2 cores
    python benchmarks/bench_scale.py --quick    # the defaults at 50,000 x 1,024 only

Data: N x D float32 rows (rank 32 plus noise, rows of unequal norms), 10 classes given as
labels, so every default balances by class. The baseline is one Frequent Directions pass
over the same rows (``FrequentDirections(128)``, timed in the same run), and each cell is
the fastest of three timed fits after one warm-up fit (which also compiles the Numba
kernels): one fit varies by a fifth on 2 cores. Selectors:

- the defaults, ``AgreementSelector()``, ``FastMaxVol()`` and ``MomentMatchingSelector()``:
  each represents the rows (a sketch, a projection) and thins each class's
  representation, O(N k) after the pass that represents them;
- ``AgreementSelector(strategy="stratified")``, the other choice the docs recommend for
  millions of rows (``docs/selection.md``): it reads only the scores, O(N log N).

The exact options that grow faster than the rows are not timed here: the greedy cover
(``strategy="diverse"``, O(n_select N k)), maxvol's fill-up above the rank and the moment
program; ``bench_agreement.py``, ``bench_rect_maxvol.py`` and ``bench_skmm.py`` time them.

Tables:

- the defaults against the sketch pass at 300,000 x 512 and 1,000,000 x 256, budgets 1%,
  10% and 25%, in memory and from a source of batches of 8,192 rows (a function returning
  an iterator over views of the array, so that reading a batch costs nothing and the
  figure is the selector's own);
- growth at 100,000, 300,000 and 1,000,000 x 256, budget 10%: seconds, the exponent of a
  least-squares line through log time against log rows, and the peak memory a fit
  allocates beyond its input (``tracemalloc``, one more fit; NumPy's allocations, not
  BLAS's or Numba's small work arrays), in memory and from the source; and a plot of time
  against rows (``bench_scale.png``, beside this file's results);
- ``--quick``: the defaults against the sketch pass at 50,000 x 1,024.

With CuPy and a GPU, the growth table adds each selector on the CuPy back-end with the
data already on the GPU. Without one the figures of the last GPU run stay in
``benchmarks/results/bench_scale_gpu.md``, labelled with their device and date.
"""

import os
import sys
import time
import tracemalloc

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

SKETCH = "FrequentDirections(128)"
# name: make(budget)
SELECTORS = {
    "AgreementSelector()": lambda budget: AgreementSelector(n_select=budget, random_state=0),
    "FastMaxVol()": lambda budget: FastMaxVol(n_select=budget, random_state=0),
    "MomentMatchingSelector()": lambda budget: MomentMatchingSelector(n_select=budget,
                                                                      random_state=0),
    "AgreementSelector(strategy='stratified')": lambda budget: AgreementSelector(
        n_select=budget, strategy="stratified", random_state=0),
}
DEFAULTS = tuple(SELECTORS)[:3]
BUDGETS = (0.01, 0.1, 0.25)
GROWTH_ROWS = (100_000, 300_000, 1_000_000)
GROWTH_FEATURES = 256
GROWTH_BUDGET = 0.1
BATCH_ROWS = 8192
# Timed fits of each cell, the fastest reported: one fit varies by a fifth on 2 cores.
REPEATS = 3


def data(n_rows, n_features=512, rank=32, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, rank), dtype=np.float32) @ rng.standard_normal(
        (rank, n_features), dtype=np.float32)
    X += 0.1 * rng.standard_normal((n_rows, n_features), dtype=np.float32)
    X *= rng.uniform(0.2, 5.0, (n_rows, 1)).astype(np.float32)
    return X, rng.integers(0, 10, n_rows)


def source(X, y):
    """A re-iterable source of the rows: batches that are views of X, read for free."""
    batches = [(X[start:start + BATCH_ROWS], y[start:start + BATCH_ROWS])
               for start in range(0, X.shape[0], BATCH_ROWS)]
    return lambda: iter(batches)


def make_sketch(_budget=None):
    return FrequentDirections(128)


def timed(make, X, y, backend="numpy", synchronize=lambda: None):
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


def peak_mib(make, X, y):
    """MiB a fit allocates at its peak beyond what existed before it (tracemalloc)."""
    tracemalloc.start()
    try:
        make().fit(X, y)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def against_the_sketch(n_rows, n_features, with_source=True):
    """Each default's fit time as a multiple of one sketch pass, by budget; and from a source."""
    X, y = data(n_rows, n_features)
    sketch = timed(make_sketch, X, None)
    names = DEFAULTS + (() if n_features > 512 else tuple(SELECTORS)[3:])
    lines = [f"### Against one sketch pass: {n_rows:,} x {n_features:,} float32, 10 classes",
             "", f"One `{SKETCH}` pass: {sketch:.2f} s. In memory: seconds per fit (the "
             "fit's multiple of the sketch pass)."
             + (" From a source: seconds per fit (its multiple of the sketch pass; of the "
                "fit in memory)." if with_source else ""), "",
             "| selector | " + " | ".join(f"{b:.0%} in memory" for b in BUDGETS)
             + (" | " + " | ".join(f"{b:.0%} from a source" for b in BUDGETS)
                if with_source else "") + " |",
             "|---|" + "---:|" * len(BUDGETS) * (1 + with_source)]
    for name in names:
        memory, streamed = [], []
        for budget in BUDGETS:
            seconds = timed(lambda: SELECTORS[name](budget), X, y)
            memory.append(f"{seconds:.2f} ({seconds / sketch:.1f}x)")
            if with_source:
                read = timed(lambda: SELECTORS[name](budget), source(X, y), None)
                streamed.append(f"{read:.2f} ({read / sketch:.1f}x; {read / seconds:.2f})")
        lines.append(f"| {name} | " + " | ".join(memory + streamed) + " |")
        print(lines[-1], flush=True)
    return lines


def growth(output):
    """Time and peak memory at GROWTH_ROWS, the growth exponent, and the plot."""
    on_gpu = gpu_available()
    names = (SKETCH,) + tuple(SELECTORS)
    seconds = {name: [] for name in names}
    gpu_seconds = {name: [] for name in names}
    peaks = {name: () for name in names}
    for n_rows in GROWTH_ROWS:
        X, y = data(n_rows, GROWTH_FEATURES)
        for name in names:
            make = make_sketch if name == SKETCH else SELECTORS[name]
            labels = None if name == SKETCH else y
            seconds[name].append(timed(lambda: make(GROWTH_BUDGET), X, labels))
            if on_gpu:
                import cupy

                gpu_seconds[name].append(timed(lambda: make(GROWTH_BUDGET), cupy.asarray(X),
                                               labels, "cupy",
                                               cupy.cuda.Device().synchronize))
            if n_rows == GROWTH_ROWS[-1]:
                streamed = (None if name == SKETCH
                            else peak_mib(lambda: make(GROWTH_BUDGET), source(X, y), None))
                peaks[name] = (peak_mib(lambda: make(GROWTH_BUDGET), X, labels), streamed)
            print(name, n_rows, f"{seconds[name][-1]:.2f}", flush=True)
    largest, input_mib = GROWTH_ROWS[-1], GROWTH_ROWS[-1] * GROWTH_FEATURES * 4 / 2**20
    lines = [f"### Growth: N x {GROWTH_FEATURES} float32, 10 classes, budget "
             f"{GROWTH_BUDGET:.0%}", "",
             f"Seconds per fit on NumPy; the exponent b of time ~ N^b (least squares on the "
             f"logs); the peak a fit allocates beyond its input at {largest:,} rows (the input: "
             f"{input_mib:,.0f} MiB), in memory and from the source. Plot: "
             f"[`{os.path.basename(plot_path(output))}`]({os.path.basename(plot_path(output))})"
             ".", "",
             "| fit | " + " | ".join(f"{n:,} rows" for n in GROWTH_ROWS)
             + " | exponent | peak in memory | peak from a source |",
             "|---|" + "---:|" * (len(GROWTH_ROWS) + 3)]
    for name in names:
        exponent = np.polyfit(np.log(GROWTH_ROWS), np.log(seconds[name]), 1)[0]
        in_memory, streamed = peaks[name]
        lines.append(f"| `{name}` | " + " | ".join(f"{s:.2f} s" for s in seconds[name])
                     + f" | {exponent:.2f} | {in_memory:,.0f} MiB | "
                     + ("" if streamed is None else f"{streamed:,.0f} MiB") + " |")
    if on_gpu:
        import cupy

        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
        lines += ["", f"On the CuPy back-end, {device}, the data already on the GPU:", "",
                  "| fit | " + " | ".join(f"{n:,} rows" for n in GROWTH_ROWS)
                  + " | NumPy / CuPy at the largest |", "|---|" + "---:|" * (len(GROWTH_ROWS) + 1)]
        for name in names:
            lines.append(f"| `{name}` | " + " | ".join(f"{s:.3f} s" for s in gpu_seconds[name])
                         + f" | {seconds[name][-1] / gpu_seconds[name][-1]:.1f} |")
    else:
        lines += ["", "No GPU in this run: the last GPU figures, with the device and date they "
                  "were measured on, are in [`bench_scale_gpu.md`](bench_scale_gpu.md)."]
    plot(seconds, plot_path(output))
    return lines


def plot_path(output):
    return os.path.splitext(output)[0] + ".png"


def plot(seconds, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for name, values in seconds.items():
        axes.loglog(GROWTH_ROWS, values, marker="o", label=name,
                    linestyle="--" if name == SKETCH else "-")
    axes.set_xlabel("rows (N x 256 float32, 10 classes)")
    axes.set_ylabel(f"seconds per fit (budget {GROWTH_BUDGET:.0%})")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def bench(size, output):
    if size[0] == "growth":
        return growth(output)
    return against_the_sketch(*size[1:], with_source=size[0] == "budgets")


if __name__ == "__main__":
    sys.exit(run(
        "bench_scale", __doc__, "Selection time at scale",
        "Seconds per fit, the fastest of three timed fits after a warm-up fit, on the NumPy "
        "back-end unless a table says otherwise.",
        [("budgets", 300_000, 512), ("budgets", 1_000_000, 256), ("growth",),
         ("in_memory", 50_000, 1_024)],
        [("in_memory", 50_000, 1_024)], bench, pass_output=True,
    ))
