"""Dask: sketch and select on a 2-worker cluster whose workers each hold less than the data.

Run from the repository root (needs the dask extra):

    python benchmarks/bench_dask.py           # writes benchmarks/results/bench_dask.md
    python benchmarks/bench_dask.py --quick   # 100,000 rows instead of 1,000,000

Data: N x 256 float32 per-example "gradients" (a rank-32 signal plus noise), generated
block by block (25,000 rows) by the workers, so that it never exists in one place, and
ten classes as a NumPy array of labels. Estimators: one Frequent Directions pass and the
selectors that take Dask arrays, with their defaults (each balances by class and thins
each class's representation, which travels to the client: N x 256 numbers here, where
the sketch keeps every direction).
Cluster: a LocalCluster of 2 worker processes, 1 thread each, with a memory limit per
worker of 700 MiB, below the size of the data (N = 1,000,000: 977 MiB); a worker that
passes 95% of it is killed. Single process:
the same rows computed into one NumPy array in a fresh process, then the same estimator.
For each estimator, wall time and peak resident memory (VmHWM on Linux): of each worker
(a new cluster for each estimator, so the peaks are its own), and of the single process.
"""

import multiprocessing
import resource
import sys
import time

import numpy as np
from _report import run

N_FEATURES = 256
CHUNK = 25_000
WORKER_MEMORY = "700MiB"

# name: (make, whether it takes the labels)
ESTIMATORS = {
    "FrequentDirections(128).fit(X)": (lambda: __import__("sketchsel").FrequentDirections(128),
                                       False),
    "AgreementSelector().fit(X, y)": (lambda: __import__("sketchsel").AgreementSelector(
        random_state=0), True),
    "MomentMatchingSelector().fit(X, y)": (lambda: __import__(
        "sketchsel").MomentMatchingSelector(random_state=0), True),
}


def labels(n):
    """Ten classes, one label a row: a NumPy array on the client (8 bytes a row)."""
    return np.random.default_rng(2).integers(0, 10, n)


def data(n):
    import dask.array as da

    rng = da.random.default_rng(0)
    signal = np.random.default_rng(1).standard_normal((32, N_FEATURES)).astype(np.float32)
    factors = rng.standard_normal((n, 32), chunks=(CHUNK, 32)).astype(np.float32)
    noise = rng.standard_normal((n, N_FEATURES), chunks=(CHUNK, N_FEATURES))
    return factors @ signal + noise.astype(np.float32)


def peak_mib():
    """Peak resident memory of this process since it started its program, in MiB.

    Linux's VmHWM, which a new program starts afresh; ``ru_maxrss`` keeps the peak of
    the process that forked it (the client, for a worker spawned after it grew).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _single(name, n, queue):
    X = data(n).compute(scheduler="synchronous")
    make, labelled = ESTIMATORS[name]
    estimator = make()
    start = time.perf_counter()
    estimator.fit(X, labels(n) if labelled else None)
    queue.put((time.perf_counter() - start, peak_mib()))


def single_process(name, n):
    """Wall time and peak memory of one fresh process fitting on the NumPy array."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_single, args=(name, n, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def bench(size):
    (n,) = size
    from distributed import Client, LocalCluster

    lines = [
        f"### {n:,} x {N_FEATURES} float32 ({n * N_FEATURES * 4 / 2**20:,.0f} MiB), "
        f"2 workers x 1 thread, {WORKER_MEMORY} per worker",
        "",
        "| estimator | cluster wall time | peak per worker | single-process wall time | "
        "single-process peak |",
        "|---|---|---|---|---|",
    ]
    for name, (make, labelled) in ESTIMATORS.items():
        # A new cluster for each estimator, so that each worker's peak is this estimator's.
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          memory_limit=WORKER_MEMORY, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            X, y = data(n), labels(n) if labelled else None
            start = time.perf_counter()
            make().fit(X, y)
            elapsed = time.perf_counter() - start
            peaks = sorted(client.run(peak_mib).values())
        alone, alone_peak = single_process(name, n)
        lines.append(
            f"| `{name}` | {elapsed:.2f} s | {' / '.join(f'{p:.0f}' for p in peaks)} MiB "
            f"| {alone:.2f} s | {alone_peak:.0f} MiB |"
        )
        print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    sys.exit(run(
        "bench_dask", __doc__, "Dask: a cluster whose workers hold less than the data",
        "The cluster times include generating the data on the workers (it never exists "
        "elsewhere); the single-process times do not include computing the array. Peaks are "
        "resident memory of the whole process (Python, NumPy, Numba and Dask included).",
        [(1_000_000,)], [(100_000,)], bench,
    ))
