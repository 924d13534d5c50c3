"""The documentation: its tutorials run as written, and Sphinx builds it without a warning."""

import pathlib
import re
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def test_tutorials_run_as_written():
    pytest.importorskip("torch")
    page = DOCS / "tutorials.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert len(blocks) == 6, "a tutorial lost its code"
    namespace = {}  # the blocks read as one session
    for block in blocks:
        exec(compile(block, str(page), "exec"), namespace)


def test_sphinx_builds_with_warnings_as_errors(tmp_path):
    pytest.importorskip("sphinx")
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    api = (tmp_path / "html" / "generated" / "sketchsel.MomentMatchingSelector.html").read_text()
    assert "duality_gap_" in api
