"""The command line, end to end."""

import subprocess
import sys

import pytest

from sketchsel.cli import main


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "sketchsel", *args], capture_output=True, text=True, timeout=300
    )


def test_demo_runs_with_no_arguments_and_the_certificate_holds():
    out = run()
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in lines] == [4, 8, 16, 32]
    for row in lines:
        exact, certified, a_priori, optimal = map(float, row[1:5])
        assert row[5] == "yes"
        assert optimal <= exact <= certified * (1 + 1e-6) <= a_priori * (1 + 1e-6)


def test_demo_options_and_usage_errors(capsys):
    assert main(["demo", "--sketch-sizes", "3", "--block-size", "7"]) == 0
    assert "   3 " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--sketch-sizes", "0"])
    assert exc.value.code == 2
    assert "sketch sizes must be >= 1" in capsys.readouterr().err


def test_help_and_version():
    assert "demo" in run("--help").stdout
    assert run("demo", "--help").returncode == 0
    assert run("--version").stdout.startswith("sketchsel ")
    assert run("nonsense").returncode == 2
