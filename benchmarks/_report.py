"""What every benchmark script shares: the command line, the machine, the results file."""

import argparse
import datetime
import os
import platform

import numpy as np
from threadpoolctl import threadpool_info

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def environment():
    """One line naming the software and the machine the figures come from."""
    import numba

    blas = ", ".join(
        f"{i['internal_api']} {i.get('version')} ({i.get('architecture')}, "
        f"{i['num_threads']} threads)"
        for i in threadpool_info()
        if i["user_api"] == "blas"
    )
    return (
        f"Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__} "
        f"({numba.get_num_threads()} threads), {os.cpu_count()} CPU cores, BLAS: {blas}. "
        f"Run on {datetime.date.today().isoformat()}."
    )


def run(script, doc, title, notes, sizes, quick_sizes, bench, argv=None, pass_output=False):
    """Parse the command line, run ``bench(size)`` for each size and write the markdown file.

    ``bench`` returns the markdown lines of one size; the file goes to
    ``results/<script>.md`` unless ``--output`` says otherwise. With
    ``pass_output``, ``bench(size, output)`` also gets that path, for files
    (a plot) that belong beside it.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smaller sizes only")
    parser.add_argument(
        "--output", default=os.path.join(RESULTS_DIR, f"{script}.md"),
        help="markdown file for the results",
    )
    args = parser.parse_args(argv)
    command = f"python benchmarks/{script}.py{' --quick' if args.quick else ''}"
    if os.path.abspath(args.output) != os.path.join(RESULTS_DIR, f"{script}.md"):
        command += f" --output {os.path.relpath(args.output)}"
    lines = [f"# {title}", "", f"Command: `{command}`. " + environment(), "", notes, ""]
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    for size in quick_sizes if args.quick else sizes:
        print(" x ".join(f"{s:,}" if isinstance(s, int) else str(s) for s in size), flush=True)
        lines += (bench(size, args.output) if pass_output else bench(size)) + [""]
    with open(args.output, "w") as f:
        f.write("\n".join(lines))
    print(f"results written to {args.output}")
    return 0
