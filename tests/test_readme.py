"""The README's Python examples run as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README lost its example"
    namespace = {}  # the blocks read as one session
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    fd = namespace["fd"]
    assert fd.n_samples_seen_ == 100_000
    assert namespace["left"].n_samples_seen_ == 1_000
    assert namespace["Z"].shape == (1_000, 32)
    assert namespace["chosen"].shape == (100,)
    assert namespace["skmm"].select().shape == (100,)
    assert namespace["subset"].shape == (512,)
    assert namespace["step"].indices.shape == (32,)
