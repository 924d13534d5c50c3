"""The ``sketchsel`` command line.

Exit status: 0 on success, 1 on a failure (a missing or malformed file, bad
data, a selector's error), 2 on a usage error (an unknown command, option or
method, a malformed value), as argparse reports them.
"""

import argparse
import os
import sys
import time

import numpy as np

from . import __version__
from ._cli_select import SELECTORS, CommandError
from ._cli_select import add_parser as add_select_parser

# Row blocks the demo streams the data in, to show that the sketch never
# needs the whole matrix at once.
_DEMO_CHUNK = 100


def _demo(args):
    from ._demo import METHODS, format_table, run_demo, save_plot

    methods = tuple(args.methods or METHODS)
    print(
        f"Selecting {', '.join(f'{b:.0%}' for b in args.budgets)} of scikit-learn's digits "
        f"with {', '.join(methods)} and at random ({args.seeds} seeds for random and seeded "
        f"methods), then training a logistic regression on each subset.",
        flush=True,
    )
    results = run_demo(args.budgets, args.seeds, methods, progress=not args.no_progress)
    print(format_table(results, args.budgets, methods))
    if args.plot != "none":
        try:
            save_plot(results, args.budgets, methods, args.plot)
        except ImportError:
            print("matplotlib is not installed, so no plot was saved: pip install "
                  "'sketchsel[plot]'.")
        else:
            print(f"plot of accuracy against budget saved to {os.path.abspath(args.plot)}")
    return 0


def _certify(args):
    from sklearn.datasets import load_digits

    from .sketch import FrequentDirections

    A = load_digits().data  # 1797 images of 8 x 8 pixels, shipped with scikit-learn
    squared = np.linalg.svd(A, compute_uv=False) ** 2
    total = squared.sum()
    tail = np.concatenate([np.cumsum(squared[::-1])[::-1], [0.0]])
    print(
        f"Frequent Directions on the digits images: {A.shape[0]} rows x {A.shape[1]} pixels, "
        f"streamed in blocks of {_DEMO_CHUNK} rows.\n"
        "Errors are ||A^T A - B^T B||_2 / ||A||_F^2; 'certified' is sketchsel's bound "
        "Delta, 'a priori' the best\nFrequent Directions guarantee "
        "min_k ||A - A_k||_F^2 / (l + 1 - k), 'optimal' that of the best rank-l matrix.\n"
    )
    header = (
        f"{'l':>4} {'exact':>10} {'certified':>10} {'a priori':>10} {'optimal':>10} "
        f"{'holds':>6}"
    )
    print(header)
    print("-" * len(header))
    all_hold = True
    for sketch_size in args.sketch_sizes:
        start = time.perf_counter()
        fd = FrequentDirections(sketch_size, block_size=args.block_size, backend="numpy")
        for lo in range(0, A.shape[0], _DEMO_CHUNK):
            fd.partial_fit(A[lo : lo + _DEMO_CHUNK])
        B = fd.sketch_
        elapsed = time.perf_counter() - start
        exact = np.linalg.norm(A.T @ A - B.T @ B, 2) / total
        certified = fd.covariance_error_bound() / total
        rows = B.shape[0]
        a_priori = min(tail[k] / (rows + 1 - k) for k in range(rows + 1)) / total
        optimal = (squared[rows] if rows < squared.size else 0.0) / total
        holds = exact <= certified * (1 + 1e-9) + 1e-12 and certified <= a_priori * (1 + 1e-9)
        all_hold &= holds
        print(
            f"{sketch_size:>4} {exact:>10.2e} {certified:>10.2e} {a_priori:>10.2e} "
            f"{optimal:>10.2e} {'yes' if holds else 'NO':>6}   ({elapsed * 1e3:.0f} ms)"
        )
    return 0 if all_hold else 1


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"budgets are fractions in (0, 1), got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sketchsel",
        description="Choose which training examples to train on, with matrix sketches.",
    )
    parser.add_argument("--version", action="version", version=f"sketchsel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="select from real gradients, train, compare with random (the default command)",
        description="On scikit-learn's digits: per-example last-layer gradients of a "
        "logistic regression, every selector and random subsets at each budget, a "
        "logistic regression trained on each subset; prints test accuracy against random "
        "and full data with the selection time, and saves a plot of accuracy against budget.",
    )
    demo.add_argument("--budgets", type=_fraction, nargs="+", default=[0.1, 0.25],
                      metavar="F", help="fractions of the training set (default: 0.1 0.25)")
    demo.add_argument("--seeds", type=_positive, default=5,
                      help="seeds for random subsets and seeded methods (default: 5)")
    demo.add_argument("--methods", nargs="+", choices=sorted(SELECTORS),
                      help="selectors to run (default: all)")
    demo.add_argument("--plot", default="sketchsel_demo.png",
                      help="where to save the plot, or 'none' (default: sketchsel_demo.png)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.set_defaults(run=_demo)
    certify = commands.add_parser(
        "certify",
        help="sketch a real dataset and check Frequent Directions' certified error",
        description="Sketch scikit-learn's digits images with Frequent Directions and print "
        "the exact covariance error next to the certified one.",
    )
    certify.add_argument(
        "--sketch-sizes", type=_positive, nargs="+", default=[4, 8, 16, 32], metavar="L",
        help="sketch sizes to try (default: 4 8 16 32)",
    )
    certify.add_argument(
        "--block-size", type=_positive, default=32,
        help="rows absorbed between two shrinks (default: 32)",
    )
    certify.set_defaults(run=_certify)
    add_select_parser(commands)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (0 success, 1 failure, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        args = parser.parse_args(["demo"])
    try:
        return args.run(args)
    except (CommandError, ValueError, TypeError, OSError) as error:
        print(f"sketchsel {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
