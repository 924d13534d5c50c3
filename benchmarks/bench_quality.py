"""Selection quality on real data: every selector against random subsets and full data.

Run from the repository root (needs the torch extra for the MLP rows):

    python benchmarks/bench_quality.py           # writes benchmarks/results/bench_quality.md
    python benchmarks/bench_quality.py --quick   # 2 seeds, budgets 10% and 25%

Datasets: the real ones scikit-learn installs (no network): digits (1,797 images of 8 x 8
pixels, 10 classes), breast cancer (569 tumours, 30 measurements, 2 classes) and wine
(178 wines, 13 measurements, 3 classes). Each is standardised and split 75/25, stratified,
once. Gradients: the exact per-example last-layer gradients of a logistic regression
trained on the whole training set (a warm linear model). Each selector keeps 5%, 10%,
25% or 50% of the training set; a fresh model is trained on the subset and tested:

- "linear": a logistic regression on the fixed features;
- "MLP": a torch MLP (one hidden layer of 64 units, ReLU), Adam (lr 0.01), 200
  full-batch steps.

Baselines: random subsets, class-balanced random subsets (equal quotas per class, as
`class_balance="equal"` takes them) and the full training set. Seeds 0-4 for random
subsets and seeded selectors; deterministic selectors run once. A cell is marked `*`
when its mean reaches random's mean plus one standard deviation (the target of the
issue on defaults). The plot (results/bench_quality.png) shows the linear model's means.
"""

import os
import sys
import time

import numpy as np
from _report import RESULTS_DIR, run
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector
from sketchsel._demo import last_layer_gradients
from sketchsel.selection._base import class_quotas

DATASETS = {"digits": load_digits, "breast cancer": load_breast_cancer, "wine": load_wine}

# name: (make(seed, budget), seeded)
METHODS = {
    "random": (None, True),
    "class-balanced random": (None, True),
    "AgreementSelector()": (lambda s, b: AgreementSelector(n_select=b), False),
    "AgreementSelector(class_balance='equal')": (
        lambda s, b: AgreementSelector(n_select=b, class_balance="equal"), False),
    "MomentMatchingSelector()": (
        lambda s, b: MomentMatchingSelector(n_select=b, random_state=s), True),
    "MomentMatchingSelector(class_balance='proportional')": (
        lambda s, b: MomentMatchingSelector(n_select=b, class_balance="proportional",
                                            random_state=s), True),
    "FastMaxVol()": (lambda s, b: FastMaxVol(n_select=b), False),
    "FastMaxVol(class_balance='equal')": (
        lambda s, b: FastMaxVol(n_select=b, class_balance="equal"), False),
}


def load(name):
    X, y = DATASETS[name](return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    warm = LogisticRegression(max_iter=5_000).fit(X_train, y_train)
    G = last_layer_gradients(warm, X_train, y_train)
    return X_train, X_test, y_train, y_test, G


def choose(method, seed, budget, G, y):
    n_select = max(1, int(budget * len(y)))
    rng = np.random.default_rng(seed)
    if method == "random":
        return rng.choice(len(y), n_select, replace=False)
    if method == "class-balanced random":
        labels, counts = np.unique(y, return_counts=True)
        quotas = class_quotas(counts, n_select, "equal")
        return np.concatenate([
            rng.choice(np.flatnonzero(y == label), quota, replace=False)
            for label, quota in zip(labels, quotas) if quota
        ])
    return METHODS[method][0](seed, n_select).fit(G, y).select()


def linear_accuracy(X, y, X_test, y_test):
    if np.unique(y).size < 2:
        return float(np.mean(y_test == y[0]))
    return LogisticRegression(max_iter=5_000).fit(X, y).score(X_test, y_test)


def mlp_accuracy(X, y, X_test, y_test, n_classes, seed):
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, n_classes)
    ).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    inputs, targets = torch.from_numpy(X), torch.from_numpy(y).long()
    for _ in range(200):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    with torch.no_grad():
        predicted = model(torch.from_numpy(X_test)).argmax(dim=1).numpy()
    return float(np.mean(predicted == y_test))


def dataset_table(name, budgets, n_seeds):
    X_train, X_test, y_train, y_test, G = load(name)
    classes = np.unique(y_train)
    codes, codes_test = np.searchsorted(classes, y_train), np.searchsorted(classes, y_test)
    scores = {}
    times = {}
    for method, (_, seeded) in METHODS.items():
        for budget in budgets:
            linear, mlp, elapsed = [], [], []
            for seed in range(n_seeds if seeded else 1):
                start = time.perf_counter()
                rows = choose(method, seed, budget, G, y_train)
                elapsed.append(time.perf_counter() - start)
                linear.append(linear_accuracy(X_train[rows], y_train[rows], X_test, y_test))
                mlp.append(mlp_accuracy(X_train[rows], codes[rows], X_test, codes_test,
                                        classes.size, seed))
            scores[(method, budget, "linear")] = linear
            scores[(method, budget, "MLP")] = mlp
            times[(method, budget)] = float(np.mean(elapsed))
        print(f"  {name}: {method} done", flush=True)
    PLOTTED[name] = (budgets, scores)
    full = {"linear": linear_accuracy(X_train, y_train, X_test, y_test),
            "MLP": np.mean([mlp_accuracy(X_train, codes, X_test, codes_test, classes.size, s)
                            for s in range(n_seeds)])}
    lines = [f"### {name}: {len(y_train)} training rows, {X_train.shape[1]} features, "
             f"{classes.size} classes, gradients of {G.shape[1]} numbers", ""]
    for model in ("linear", "MLP"):
        lines += [f"{model}: full data {full[model]:.3f}.", "",
                  "| method | " + " | ".join(f"{b:.0%}" for b in budgets) + " | selection |",
                  "|---|" + "---|" * (len(budgets) + 1)]
        for method in METHODS:
            cells = []
            for budget in budgets:
                values = scores[(method, budget, model)]
                base = scores[("random", budget, model)]
                mark = "*" if np.mean(values) >= np.mean(base) + np.std(base) else ""
                spread = f" ± {np.std(values):.3f}" if len(values) > 1 else ""
                cells.append(f"{np.mean(values):.3f}{spread}{mark}")
            seconds = np.mean([times[(method, b)] for b in budgets])
            lines.append(f"| {method} | " + " | ".join(cells) + f" | {seconds * 1e3:.0f} ms |")
        lines.append("")
    return lines


# Filled by dataset_table, read by plot: {dataset: (budgets, scores)}.
PLOTTED = {}


def plot(path):
    """Accuracy of the linear model against budget, one panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(PLOTTED), figsize=(5 * len(PLOTTED), 4))
    for axis, (name, (budgets, scores)) in zip(np.atleast_1d(axes), PLOTTED.items()):
        for method in METHODS:
            means = [np.mean(scores[(method, b, "linear")]) for b in budgets]
            axis.plot([100 * b for b in budgets], means, marker="o", label=method)
        axis.set_title(name)
        axis.set_xlabel("budget (% of the training set)")
        axis.set_ylabel("test accuracy (linear model)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def bench(size):
    n_seeds, budgets = size
    lines = []
    for name in DATASETS:
        print(name, flush=True)
        lines += dataset_table(name, budgets, n_seeds)
    try:
        plot(os.path.join(RESULTS_DIR, "bench_quality.png"))
    except ImportError:
        print("matplotlib is not installed: no plot", file=sys.stderr)
    else:
        lines += ["![Accuracy against budget](bench_quality.png)", ""]
    return lines


if __name__ == "__main__":
    sys.exit(run(
        "bench_quality", __doc__, "Selection quality on real data",
        "Test accuracy, mean ± standard deviation over seeds (deterministic selectors: one "
        "run); `*`: at least random's mean + 1 std; selection: mean time per call.",
        [(5, (0.05, 0.1, 0.25, 0.5))], [(2, (0.1, 0.25))], bench,
    ))
