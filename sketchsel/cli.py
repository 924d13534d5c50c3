"""The ``sketchsel`` command line."""

import argparse
import sys
import time

import numpy as np

from . import __version__

# Row blocks the demo streams the data in, to show that the sketch never
# needs the whole matrix at once.
_DEMO_CHUNK = 100


def _demo(args):
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


def _sketch_size(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"sketch sizes must be >= 1, got {value}")
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
        help="sketch a real dataset and check the certified error (the default command)",
        description="Sketch scikit-learn's digits images with Frequent Directions and print "
        "the exact covariance error next to the certified one.",
    )
    demo.add_argument(
        "--sketch-sizes", type=_sketch_size, nargs="+", default=[4, 8, 16, 32], metavar="L",
        help="sketch sizes to try (default: 4 8 16 32)",
    )
    demo.add_argument(
        "--block-size", type=_sketch_size, default=32,
        help="rows absorbed between two shrinks (default: 32)",
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (0 success, 1 failure, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        args = parser.parse_args(["demo"])
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
