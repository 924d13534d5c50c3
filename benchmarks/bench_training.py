"""Training with selection, on CPU: accuracy and wall-clock against full data and random subsets.

Run from the repository root (needs the torch extra; Opacus for the gradient part):

    python benchmarks/bench_training.py           # writes benchmarks/results/bench_training.md
    python benchmarks/bench_training.py --quick   # 2 seeds, 10 epochs, smaller throughput batch

Training: scikit-learn's digits (the one image set that ships with the installed
packages; 8 x 8 grey images), split 75/25 stratified; a small CNN (two 3 x 3
convolutions, 32 and 64 channels, max-pooling, a 128-unit hidden layer) trained
with SGD (lr 0.05, momentum 0.9), batches of 32, for the same number of epochs by
every method, each batch taken by indexing the tensors (no DataLoader, whose per-item
collation would dominate on so small a model):

- full: every row, every epoch;
- ES: Evolved Sampling, meta-batches of 64, the 32 to back-propagate drawn with
  p ~ beta1 s + (1 - beta1) loss (beta1 = 0.2, beta2 = 0.8), one burn-in epoch;
- ESWP: the same, and 30% of the rows (lowest scores) left out of each epoch but
  the last 12.5%;
- GRAFT: GraftSampler on the penultimate embeddings, re-selected every 5 epochs
  from batches of 200: FastMaxVol taking 25% of each batch (the default), and
  GRAFT's dynamic rank (``rank="auto"``: the smallest rank whose rows reproduce
  the batch's mean logit gradient within 10%, at most 25%);
- SAGE 25%: one epoch on all rows, then AgreementSelector (top scores, class-balanced) on the
  model's last-layer gradients projected to 256 dimensions (GradientSource), and
  the remaining epochs on that 25%;
- random 25%: one epoch on all rows, then a uniformly random 25%.

For each: wall-clock of training (selection included, evaluation excluded), final
test accuracy, and the time at which the test accuracy, evaluated after every
epoch, first reaches the full-data final accuracy (mean over seeds) minus one
point; mean and standard deviation over the seeds.

Per-example gradients: throughput (examples per second) on a batch of the same CNN,
for the last layer and for all parameters: our closed form (last layer only),
torch.func vmap, and Opacus' GradSampleModule (hooks).
"""

import sys
import time

import numpy as np
import torch
from _report import run
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from sketchsel import AgreementSelector, FastMaxVol
from sketchsel.sampling import EvolvedSampler
from sketchsel.torch import (
    GradientSource,
    GraftSampler,
    evolved_step,
    linear_head_gradients,
    per_example_gradients,
)
from sketchsel.torch._source import forward_with_head

BATCH = 32
META_BATCH = 64
FRACTION = 0.25
LR = 0.05


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    as_tensors = (torch.from_numpy(X_train), torch.from_numpy(y_train),
                  torch.from_numpy(X_test), torch.from_numpy(y_test))
    return as_tensors


def test_accuracy(model, X_test, y_test):
    training = model.training
    model.eval()
    with torch.no_grad():
        correct = (model(X_test).argmax(dim=1) == y_test).float().mean().item()
    model.train(training)
    return correct


class Clock:
    """Training time, with evaluation after every epoch excluded."""

    def __init__(self, model, X_test, y_test):
        self.model, self.X_test, self.y_test = model, X_test, y_test
        self.elapsed, self.curve = 0.0, []
        self.start = time.perf_counter()

    def epoch_done(self):
        self.elapsed += time.perf_counter() - self.start
        self.curve.append((self.elapsed, test_accuracy(self.model, self.X_test, self.y_test)))
        self.start = time.perf_counter()


def sgd_epoch(model, optimizer, X, y, order):
    """One epoch over the rows ``order``, in batches of BATCH.

    Every method indexes the tensors directly, as ES does, so that no method pays a
    DataLoader's per-item collation and the others not.
    """
    for start in range(0, len(order), BATCH):
        rows = torch.as_tensor(order[start:start + BATCH])
        optimizer.zero_grad()
        F.cross_entropy(model(X[rows]), y[rows]).backward()
        optimizer.step()


def train_full(data, seed, epochs, warm_epochs=0, choose=None):
    """Plain SGD on all rows, or on the rows ``choose(model)`` returns after warm_epochs."""
    X, y, X_test, y_test = data
    torch.manual_seed(seed)
    model = cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    dataset = TensorDataset(X, y)
    rng = np.random.default_rng(seed)
    rows = np.arange(len(X))
    clock = Clock(model, X_test, y_test)
    for epoch in range(epochs):
        if epoch == warm_epochs and choose is not None:
            rows = np.asarray(choose(model, dataset, seed))
        sgd_epoch(model, optimizer, X, y, rng.permutation(rows))
        clock.epoch_done()
    return clock.curve


def choose_random(model, dataset, seed):
    rng = np.random.default_rng(seed)
    return rng.choice(len(dataset), int(FRACTION * len(dataset)), replace=False).tolist()


def choose_sage(model, dataset, seed):
    loader = DataLoader(dataset, batch_size=256)
    source = GradientSource(model, loader, params=model[-1], n_components=256,
                            random_state=seed)
    selector = AgreementSelector(n_select=FRACTION, strategy="top",
                                 class_balance="equal").fit(source)
    return source.indices_[selector.select()].tolist()


def train_evolved(data, seed, epochs, prune_ratio):
    X, y, X_test, y_test = data
    torch.manual_seed(seed)
    model = cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    sampler = EvolvedSampler(
        len(X), batch_size=BATCH, meta_batch_size=META_BATCH, burn_in=1,
        prune_ratio=prune_ratio, n_epochs=epochs, random_state=seed,
    )

    def loss_fn(outputs, targets):
        return F.cross_entropy(outputs, targets, reduction="none")

    clock = Clock(model, X_test, y_test)
    for epoch in range(epochs):
        for meta in sampler.meta_batches(epoch):
            index = torch.from_numpy(meta)
            evolved_step(model, loss_fn, optimizer, X[index], y[index], meta, sampler)
        clock.epoch_done()
    return clock.curve


def train_graft(data, seed, epochs, selector=None):
    X, y, X_test, y_test = data
    torch.manual_seed(seed)
    model = cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    dataset = TensorDataset(X, y)
    sampler = GraftSampler(model, dataset, head=model[-1], fraction=FRACTION,
                           select_every=5, selector=selector, random_state=seed)
    clock = Clock(model, X_test, y_test)
    kept = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        sgd_epoch(model, optimizer, X, y, np.fromiter(iter(sampler), dtype=np.int64))
        kept.append(len(sampler) / len(dataset))
        clock.epoch_done()
    return clock.curve, float(np.mean(kept))


def summary(curves, target):
    finals = [curve[-1][1] for curve in curves]
    times = [curve[-1][0] for curve in curves]
    reached = [next((t for t, acc in curve if acc >= target), None) for curve in curves]
    hit = [t for t in reached if t is not None]
    to_target = (f"{np.mean(hit):.2f} s ({len(hit)}/{len(curves)} seeds)" if hit
                 else f"never (0/{len(curves)})")
    return (f"{np.mean(finals):.4f} ± {np.std(finals):.4f}", f"{np.mean(times):.2f} s",
            to_target)


def training_table(seeds, epochs):
    data = digits()
    runs = {"full data": [train_full(data, s, epochs) for s in seeds]}
    print("full done", flush=True)
    full_final = np.mean([curve[-1][1] for curve in runs["full data"]])
    target = full_final - 0.01
    runs["ES"] = [train_evolved(data, s, epochs, 0.0) for s in seeds]
    runs["ESWP (prune 30%)"] = [train_evolved(data, s, epochs, 0.3) for s in seeds]
    graft = [train_graft(data, s, epochs) for s in seeds]
    runs["GRAFT 25% (default)"] = [curve for curve, _ in graft]
    dynamic = FastMaxVol(n_select=FRACTION, strategy="maxvol", rank="auto")
    graft = [train_graft(data, s, epochs, dynamic) for s in seeds]
    runs["GRAFT dynamic rank"] = [curve for curve, _ in graft]
    kept = np.mean([k for _, k in graft])
    runs["SAGE 25%"] = [train_full(data, s, epochs, warm_epochs=1, choose=choose_sage)
                        for s in seeds]
    runs["random 25%"] = [train_full(data, s, epochs, warm_epochs=1, choose=choose_random)
                          for s in seeds]
    full_time = np.mean([curve[-1][0] for curve in runs["full data"]])
    lines = [
        f"### Digits, CNN, {epochs} epochs, seeds {list(seeds)}",
        "",
        f"Target: full-data final accuracy {full_final:.4f} minus one point = {target:.4f}. "
        f"GRAFT's dynamic rank kept {kept:.1%} of the rows per epoch on average.",
        "",
        "| method | test accuracy | wall-clock | vs full | time to target |",
        "|---|---|---|---|---|",
    ]
    for name, curves in runs.items():
        final, wall, to_target = summary(curves, target)
        ratio = np.mean([curve[-1][0] for curve in curves]) / full_time
        lines.append(f"| {name} | {final} | {wall} | {ratio:.2f}x | {to_target} |")
    return lines


def throughput(batch, repeats=5):
    torch.manual_seed(0)
    model = cnn()
    X = torch.randn(batch, 1, 8, 8)
    y = torch.randint(0, 10, (batch,))
    head = model[-1]

    def best(fn):
        fn()
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            timings.append(time.perf_counter() - start)
        return batch / min(timings)

    def closed_form():
        outputs, features, _ = forward_with_head(model, head, X)
        return linear_head_gradients(features, outputs, y)

    rows = {
        ("last layer", "sketchsel closed form"): best(closed_form),
        ("last layer", "sketchsel torch.func (vmap)"): best(
            lambda: per_example_gradients(model, X, y, params=head)),
        ("all parameters", "sketchsel torch.func (vmap)"): best(
            lambda: per_example_gradients(model, X, y)),
    }
    try:
        from opacus import GradSampleModule
    except ImportError:
        print("opacus is not installed; its rows are left out", file=sys.stderr)
    else:
        for scope in ("last layer", "all parameters"):
            copy = cnn()
            copy.load_state_dict(model.state_dict())
            for name, parameter in copy.named_parameters():
                parameter.requires_grad_(
                    scope == "all parameters" or name.startswith(f"{len(copy) - 1}.")
                )
            wrapped = GradSampleModule(copy, loss_reduction="sum")

            def opacus(wrapped=wrapped):
                wrapped.zero_grad()
                F.cross_entropy(wrapped(X), y, reduction="sum").backward()
                return [p.grad_sample for p in wrapped.parameters() if p.requires_grad]

            rows[(scope, "Opacus GradSampleModule (hooks)")] = best(opacus)
    lines = [
        f"### Per-example gradients, batch of {batch}, CNN above "
        f"(last layer: {head.weight.numel() + head.bias.numel():,} numbers; all: "
        f"{sum(p.numel() for p in model.parameters()):,})",
        "",
        "| parameters | method | examples / s |",
        "|---|---|---|",
    ]
    lines += [f"| {scope} | {name} | {rate:,.0f} |" for (scope, name), rate in rows.items()]
    return lines


def bench(size):
    part, *rest = size
    if part == "training":
        n_seeds, epochs = rest
        return training_table(range(n_seeds), epochs)
    return throughput(*rest)


if __name__ == "__main__":
    import warnings

    warnings.filterwarnings("ignore", message="Full backward hook")
    torch.set_num_threads(min(4, torch.get_num_threads()))
    sys.exit(run(
        "bench_training", __doc__, "Training with selection: accuracy and wall-clock on CPU",
        "Figures are means ± standard deviations over seeds; ratios are to full data in the "
        f"same run. torch uses {torch.get_num_threads()} threads.",
        [("training", 5, 30), ("throughput", 512)],
        [("training", 2, 10), ("throughput", 128)],
        bench,
    ))
