"""The main job: select from real per-example gradients, train on the subsets, compare.

Data: scikit-learn's digits (1,797 images of 8 x 8 pixels, shipped with the
package), split 75/25 stratified. Model: a logistic regression trained on the
whole training set, whose exact per-example last-layer gradients
``(p_i - y_i) (x) [x_i, 1]`` (650 numbers per example) are what the selectors
read. Every selector, and random subsets, keep a budget of the training set; a
fresh logistic regression is trained on each subset and tested on the 25%.
"""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from .selection import AgreementSelector, FastMaxVol, MomentMatchingSelector

# Each method, with its defaults, for a seed: every default thins, a seeded choice.
METHODS = {
    "agreement": lambda seed: AgreementSelector(random_state=seed),
    "moment": lambda seed: MomentMatchingSelector(random_state=seed),
    "maxvol": lambda seed: FastMaxVol(random_state=seed),
}


def last_layer_gradients(model, X, y):
    """Exact per-example cross-entropy gradients for the weights and bias of a softmax layer."""
    residual = model.predict_proba(X)
    residual[np.arange(len(y)), np.searchsorted(model.classes_, y)] -= 1.0
    inputs = np.hstack([X, np.ones((len(X), 1))])
    return (residual[:, :, None] * inputs[:, None, :]).reshape(len(X), -1)


def accuracy(X, y, X_test, y_test):
    """Test accuracy of a logistic regression trained on (X, y)."""
    return LogisticRegression(max_iter=2_000).fit(X, y).score(X_test, y_test)


def digits_gradients():
    """Digits split 75/25, and the gradients of a logistic regression trained on the 75%.

    Returns the split, the per-example last-layer gradients of the training images and the
    test accuracy of a logistic regression trained on the whole training set.
    """
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    warm = LogisticRegression(max_iter=2_000).fit(X_train, y_train)
    G = last_layer_gradients(warm, X_train, y_train)
    return X_train, X_test, y_train, y_test, G, accuracy(X_train, y_train, X_test, y_test)


def _progress(total, enabled):
    """A tqdm bar when tqdm is installed and wanted, else an object that does nothing."""
    if enabled:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            return tqdm(total=total, desc="selecting and training", unit="run")

    class Silent:
        def update(self, n=1):
            pass

        def close(self):
            pass

    return Silent()


def run_demo(budgets=(0.1, 0.25), n_seeds=5, methods=tuple(METHODS), progress=True):
    """Select at each budget with each method and with random subsets; train and test each.

    Returns
    -------
    results : dict
        ``results[(method, budget)]`` is a dict with the test accuracies
        (one per seed) and the mean selection time; ``results["full"]`` is the
        accuracy on the whole training set.
    """
    X_train, X_test, y_train, y_test, G, full = digits_gradients()
    results = {"full": full, "n_train": len(y_train), "n_features": G.shape[1]}
    runs = [(name, budget) for budget in budgets for name in ("random", *methods)]
    bar = _progress(n_seeds * len(runs), progress)
    try:
        for name, budget in runs:
            scores, times = [], []
            for seed in range(n_seeds):
                start = time.perf_counter()
                rows = _choose(name, budget, seed, G, y_train)
                times.append(time.perf_counter() - start)
                scores.append(accuracy(X_train[rows], y_train[rows], X_test, y_test))
                bar.update()
            results[(name, budget)] = {"accuracy": scores, "seconds": float(np.mean(times))}
    finally:
        bar.close()
    return results


def _choose(name, budget, seed, G, y):
    if name == "random":
        rng = np.random.default_rng(seed)
        return rng.choice(len(y), max(1, int(budget * len(y))), replace=False)
    selector = METHODS[name](seed).set_params(n_select=budget)
    return selector.fit(G, y).select()


def format_table(results, budgets, methods):
    """The demo's table, one row per method and budget."""
    full = results["full"]
    lines = [
        f"Digits: {results['n_train']} training images, last-layer gradients of "
        f"{results['n_features']} numbers; logistic regression on all of them: test accuracy "
        f"{full:.3f}.",
        "",
        f"{'method':<10} {'budget':>6} {'accuracy':>15} {'vs random':>10} {'vs full':>8} "
        f"{'selection':>10}",
    ]
    lines.append("-" * len(lines[-1]))
    for budget in budgets:
        random_mean = np.mean(results[("random", budget)]["accuracy"])
        for name in ("random", *methods):
            entry = results[(name, budget)]
            scores = entry["accuracy"]
            spread = f" ± {np.std(scores):.3f}" if len(scores) > 1 else " " * 8
            lines.append(
                f"{name:<10} {budget:>6.0%} {np.mean(scores):>7.3f}{spread} "
                f"{np.mean(scores) - random_mean:>+10.3f} {np.mean(scores) - full:>+8.3f} "
                f"{entry['seconds'] * 1e3:>8.0f} ms"
            )
    return "\n".join(lines)


def save_plot(results, budgets, methods, path):
    """Accuracy against budget, one line per method, the full-data accuracy as a level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name in ("random", *methods):
        means = [np.mean(results[(name, b)]["accuracy"]) for b in budgets]
        spreads = [np.std(results[(name, b)]["accuracy"]) for b in budgets]
        axes.errorbar([100 * b for b in budgets], means, yerr=spreads, marker="o",
                      capsize=3, label=name)
    axes.axhline(results["full"], color="black", linestyle="--", label="full data")
    axes.set_xlabel("budget (% of the training set)")
    axes.set_ylabel("test accuracy")
    axes.set_title("Digits: training on a selected subset")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
