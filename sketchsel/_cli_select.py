"""``sketchsel select``: choose rows of a gradient file, streamed in blocks."""

import argparse
import os
import time

import numpy as np

from .selection import AgreementSelector, FastMaxVol, MomentMatchingSelector
from .selection._policy import resolve_class_balance

SELECTORS = {
    "agreement": AgreementSelector,
    "moment": MomentMatchingSelector,
    "maxvol": FastMaxVol,
}

# Rows listed by name in the error for non-finite values.
_SHOWN_ROWS = 10


class CommandError(Exception):
    """A failure the command reports in one line and exits with status 1."""


def load_matrix(path, key=None, name="gradients"):
    """The array in a .npy file (memory-mapped) or in a .npz file (one array, read whole)."""
    if not os.path.isfile(path):
        raise CommandError(f"{name} file {path!r} does not exist.")
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r")
        if suffix == ".npz":
            with np.load(path) as archive:
                keys = list(archive.keys())
                if key is None and len(keys) != 1:
                    how = "name one with --key" if name == "gradients" else "give a file of one"
                    raise CommandError(f"{path!r} holds the arrays {keys}; {how}.")
                if key is not None and key not in keys:
                    raise CommandError(f"{path!r} has no array {key!r}; it holds {keys}.")
                return archive[key or keys[0]]
    except (ValueError, OSError) as error:
        raise CommandError(f"cannot read {path!r} as a NumPy file: {error}") from error
    raise CommandError(f"{name} file {path!r} must be a .npy or .npz file.")


def check_gradients(G, block_rows):
    """2-D, real, with finite rows: read block by block, so a memory map stays on disk."""
    if G.ndim != 2 or G.shape[0] == 0 or G.shape[1] == 0:
        raise CommandError(
            f"the gradients must be a non-empty 2-D array, one row per example; got shape "
            f"{G.shape}."
        )
    if not (np.issubdtype(G.dtype, np.floating) or np.issubdtype(G.dtype, np.integer)):
        raise CommandError(f"the gradients must be real numbers; got dtype {G.dtype}.")
    bad = []
    for start in range(0, G.shape[0], block_rows):
        block = np.asarray(G[start:start + block_rows])
        bad.extend((start + np.flatnonzero(~np.isfinite(block).all(axis=1))).tolist())
    if bad:
        shown = ", ".join(map(str, bad[:_SHOWN_ROWS]))
        more = f" and {len(bad) - _SHOWN_ROWS} more" if len(bad) > _SHOWN_ROWS else ""
        raise CommandError(
            f"the gradients have NaN or infinite values in {len(bad)} rows: {shown}{more} "
            f"(rows counted from 0). Drop or fix those rows first."
        )


def _budget(text):
    """A count (an integer such as 500) or a fraction in (0, 1] (a decimal such as 0.25)."""
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a count or a fraction: {text!r}") from None
        if not 0 < value <= 1:
            raise argparse.ArgumentTypeError(
                f"a fraction must be in (0, 1], got {text}; give a count as an integer"
            ) from None
        return value
    if value < 1:
        raise argparse.ArgumentTypeError(f"a count must be at least 1, got {value}")
    return value


def _output(path, option):
    """The file np.save will write for ``path``, after checking its folder exists."""
    if path is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CommandError(f"{option}: the folder {folder!r} does not exist.")
    return path if path.endswith(".npy") else path + ".npy"


def add_parser(commands):
    parser = commands.add_parser(
        "select",
        help="choose rows of a gradient file (.npy, .npz)",
        description="Choose rows of an N x D matrix of per-example gradients (or features) "
        "and write their indices. A .npy file is memory-mapped and streamed in blocks, so "
        "it may be larger than memory; a .npz array is read whole.",
    )
    parser.add_argument("gradients", help="N x D array, .npy (memory-mapped) or .npz")
    parser.add_argument("-o", "--output", required=True,
                        help="where to write the sorted int64 indices (.npy)")
    parser.add_argument("--method", choices=sorted(SELECTORS), default="agreement",
                        help="selector (default: agreement)")
    parser.add_argument("--n-select", type=_budget, default=0.1, metavar="BUDGET",
                        help="rows to keep: a count (an integer) or a fraction in (0, 1] "
                        "(a decimal; 1.0 keeps every row) (default: 0.1)")
    parser.add_argument("--labels", help="class labels, a 1-D .npy/.npz array of N entries")
    parser.add_argument("--class-balance", choices=["auto", "equal", "proportional", "none"],
                        help="select within each class of --labels; 'auto': in proportion "
                        "to the classes when labels are given; 'none' ignores them (default: "
                        "auto)")
    parser.add_argument("--key", help="array name inside a .npz gradients file")
    parser.add_argument("--sketch-size", type=int,
                        help="sketch size of agreement and moment (their default otherwise)")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of the random choices (default: 0)")
    parser.add_argument("--scores", help="agreement only: also write the per-row agreement "
                        "scores (.npy)")
    parser.add_argument(
        "--weights",
        help="maxvol only: also write least-squares weights of the chosen rows (.npy, in the "
        "order of the indices) under which they reproduce the mean row; reads the file whole",
    )
    parser.add_argument("--block-rows", type=int, default=65_536,
                        help="rows read at a time (default: 65536)")
    parser.set_defaults(run=run)
    return parser


def run(args):
    if args.block_rows < 1:
        raise CommandError(f"--block-rows must be at least 1, got {args.block_rows}.")
    if args.class_balance in ("equal", "proportional") and not args.labels:
        raise CommandError("--class-balance needs the class labels: pass --labels y.npy.")
    outputs = {
        name: _output(getattr(args, name), option)
        for name, option in (("output", "-o"), ("scores", "--scores"), ("weights", "--weights"))
    }
    G = load_matrix(args.gradients, args.key)
    check_gradients(G, args.block_rows)
    labels = None
    if args.labels:
        labels = np.asarray(load_matrix(args.labels, name="labels"))
        if labels.ndim != 1 or labels.shape[0] != G.shape[0]:
            raise CommandError(
                f"the labels must be a 1-D array of {G.shape[0]} entries, one per row of the "
                f"gradients; got shape {labels.shape}."
            )
    selector = _selector(args)
    if args.scores and args.method != "agreement":
        raise CommandError(f"{args.method} does not score rows with its default (thinning); "
                           f"drop --scores or use --method agreement.")
    balanced = resolve_class_balance(selector.class_balance, labels) is not None
    if args.weights and (args.method != "maxvol" or balanced):
        raise CommandError("--weights needs --method maxvol, without class balancing: drop "
                           "--labels, or pass --class-balance none.")

    def blocks():
        for start in range(0, G.shape[0], args.block_rows):
            stop = start + args.block_rows
            yield np.asarray(G[start:stop]), None if labels is None else labels[start:stop]

    start = time.perf_counter()
    if args.weights:
        rows = np.asarray(G)
        selector.fit(rows, gradients=rows)
    else:
        selector.fit(blocks)
    elapsed = time.perf_counter() - start
    indices = selector.select()
    np.save(outputs["output"], indices)
    print(
        f"{args.method}: kept {indices.size:,} of {G.shape[0]:,} rows ({G.shape[1]:,} "
        f"features) in {elapsed:.2f} s; indices written to {outputs['output']}"
    )
    if args.scores:
        np.save(outputs["scores"], np.asarray(selector.scores_))
        print(f"scores written to {outputs['scores']}")
    if args.weights:
        np.save(outputs["weights"], selector.sample_weight_)
        print(f"weights written to {outputs['weights']} (relative residual "
              f"{selector.residual_:.2e})")
    return 0


def _selector(args):
    params = {"n_select": args.n_select, "random_state": args.random_state}
    if args.class_balance is not None:
        params["class_balance"] = None if args.class_balance == "none" else args.class_balance
    if args.sketch_size is not None:
        if args.method == "maxvol":
            raise CommandError("--sketch-size applies to agreement and moment, not maxvol.")
        params["sketch_size"] = args.sketch_size
    return SELECTORS[args.method](**params)
