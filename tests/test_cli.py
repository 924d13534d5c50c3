"""The command line, end to end."""

import subprocess
import sys

import numpy as np
import pytest

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector
from sketchsel.cli import main


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "sketchsel", *args], capture_output=True, text=True, timeout=300
    )


def test_certify_runs_and_the_certificate_holds():
    out = run("certify")
    assert out.returncode == 0, out.stderr
    lines = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in lines] == [4, 8, 16, 32]
    for row in lines:
        exact, certified, a_priori, optimal = map(float, row[1:5])
        assert row[5] == "yes"
        assert optimal <= exact <= certified * (1 + 1e-6) <= a_priori * (1 + 1e-6)


def test_certify_options_and_usage_errors(capsys):
    assert main(["certify", "--sketch-sizes", "3", "--block-size", "7"]) == 0
    assert "   3 " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["certify", "--sketch-sizes", "0"])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def _table(stdout):
    """{(method, budget): (mean accuracy, vs random)} from the demo's table."""
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0] in ("random", "agreement", "moment", "maxvol"):
            rows[(parts[0], parts[1])] = (float(parts[2]), float(parts[-4]))
    return rows


def test_demo_on_a_reduced_setting_prints_the_table_and_saves_the_plot(tmp_path):
    plot = tmp_path / "demo.png"
    out = run("demo", "--budgets", "0.25", "--seeds", "2", "--plot", str(plot))
    assert out.returncode == 0, out.stderr
    rows = _table(out.stdout)
    assert set(rows) == {(m, "25%") for m in ("random", "agreement", "moment", "maxvol")}
    random_accuracy = rows[("random", "25%")][0]
    for (method, _), (accuracy, versus_random) in rows.items():
        assert 0.5 < accuracy <= 1
        assert versus_random == pytest.approx(accuracy - random_accuracy, abs=2e-3)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "selecting and training" in out.stderr  # the progress bar


def test_demo_is_the_default_command(monkeypatch):
    calls = []
    monkeypatch.setattr("sketchsel._demo.run_demo", lambda *a, **k: calls.append(a) or {})
    monkeypatch.setattr("sketchsel._demo.format_table", lambda *a: "table")
    monkeypatch.setattr("sketchsel._demo.save_plot", lambda *a: None)
    assert main([]) == 0
    assert calls == [([0.1, 0.25], 5, ("agreement", "moment", "maxvol"))]


def test_help_and_version():
    assert "demo" in run("--help").stdout
    for command in ("demo", "certify", "select"):
        out = run(command, "--help")
        assert out.returncode == 0 and "usage: sketchsel " + command in out.stdout
    assert run("--version").stdout.startswith("sketchsel ")
    assert run("nonsense").returncode == 2


# sketchsel select


@pytest.fixture
def gradients(tmp_path):
    rng = np.random.default_rng(0)
    G = rng.standard_normal((300, 40)).astype(np.float32)
    y = rng.integers(0, 3, 300)
    np.save(tmp_path / "G.npy", G)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "G.npz", grads=G, other=y)
    return G, y, tmp_path


@pytest.mark.parametrize("method", ["agreement", "moment", "maxvol"])
def test_select_writes_what_the_selector_chooses(gradients, method):
    G, y, folder = gradients
    out = run("select", str(folder / "G.npy"), "--method", method, "--n-select", "0.2",
              "--block-rows", "64", "-o", str(folder / "rows.npy"))
    assert out.returncode == 0, out.stderr
    found = np.load(folder / "rows.npy")
    selector = {"agreement": AgreementSelector, "moment": MomentMatchingSelector,
                "maxvol": FastMaxVol}[method](n_select=0.2, random_state=0)
    np.testing.assert_array_equal(found, selector.fit(G).select())
    assert "kept 60 of 300 rows" in out.stdout


def test_maxvol_with_labels_balances_by_class_from_the_blocks(gradients):
    G, y, folder = gradients
    out = run("select", str(folder / "G.npy"), "--method", "maxvol", "--n-select", "0.1",
              "--labels", str(folder / "y.npy"), "--block-rows", "64",
              "-o", str(folder / "rows.npy"))
    assert out.returncode == 0, out.stderr
    expected = FastMaxVol(n_select=0.1, random_state=0).fit(G, y)  # the CLI's seed
    assert expected.class_balance_ == "proportional"
    np.testing.assert_array_equal(np.load(folder / "rows.npy"), expected.select())


def test_select_with_labels_and_an_npz_key(gradients):
    G, y, folder = gradients
    out = run("select", str(folder / "G.npz"), "--key", "grads", "--method", "moment",
              "--n-select", "30", "--labels", str(folder / "y.npy"), "--class-balance",
              "equal", "--sketch-size", "16", "-o", str(folder / "rows.npy"))
    assert out.returncode == 0, out.stderr
    selector = MomentMatchingSelector(n_select=30, sketch_size=16, class_balance="equal",
                                      random_state=0).fit(G, y)
    np.testing.assert_array_equal(np.load(folder / "rows.npy"), selector.select())
    assert np.bincount(y[selector.select()]).tolist() == [10, 10, 10]


def test_select_writes_the_agreement_scores(gradients):
    G, y, folder = gradients
    out = run("select", str(folder / "G.npz"), "--key", "grads", "--n-select", "30",
              "--labels", str(folder / "y.npy"), "--class-balance", "equal", "--sketch-size",
              "16", "--scores", str(folder / "s.npy"), "-o", str(folder / "rows.npy"))
    assert out.returncode == 0, out.stderr
    selector = AgreementSelector(n_select=30, sketch_size=16, class_balance="equal",
                                 random_state=0).fit(G, y)
    np.testing.assert_array_equal(np.load(folder / "rows.npy"), selector.select())
    np.testing.assert_allclose(np.load(folder / "s.npy"), selector.scores_)
    assert np.bincount(y[selector.select()]).tolist() == [10, 10, 10]


@pytest.mark.parametrize("option, expected", [([], "proportional"), (["--class-balance", "none"], None)])
def test_select_with_labels_follows_the_selector_default_unless_told(gradients, option, expected):
    G, y, folder = gradients
    out = run("select", str(folder / "G.npy"), "--labels", str(folder / "y.npy"), *option,
              "--n-select", "30", "-o", str(folder / "rows.npy"))
    assert out.returncode == 0, out.stderr
    selector = AgreementSelector(n_select=30, random_state=0, class_balance=expected).fit(G, y)
    np.testing.assert_array_equal(np.load(folder / "rows.npy"), selector.select())
    assert selector.class_balance_ == expected


def test_select_fraction_one_keeps_every_row_and_output_names_are_reported(gradients):
    G, y, folder = gradients
    out = run("select", str(folder / "G.npy"), "--method", "moment", "--n-select", "1.0",
              "-o", str(folder / "all"))
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(folder / "all.npy"), np.arange(300))
    assert f"written to {folder / 'all.npy'}" in out.stdout


def test_select_writes_maxvol_weights_that_reproduce_the_mean_row(gradients):
    G, y, folder = gradients
    out = run("select", str(folder / "G.npy"), "--method", "maxvol", "--n-select", "50",
              "--weights", str(folder / "w.npy"), "-o", str(folder / "rows.npy"))
    assert out.returncode == 0, out.stderr
    rows, weights = np.load(folder / "rows.npy"), np.load(folder / "w.npy")
    assert weights.shape == (50,)
    # 50 rows span the 40 columns: the weighted rows give the mean row exactly.
    np.testing.assert_allclose(G[rows].astype(np.float64).T @ weights, G.mean(axis=0),
                               atol=1e-5)
    # Labels given, balancing declined: the weights are those of the rows without classes.
    out = run("select", str(folder / "G.npy"), "--method", "maxvol", "--n-select", "50",
              "--labels", str(folder / "y.npy"), "--class-balance", "none",
              "--weights", str(folder / "w2.npy"), "-o", str(folder / "rows2.npy"))
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(folder / "rows2.npy"), rows)
    np.testing.assert_array_equal(np.load(folder / "w2.npy"), weights)


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (["missing.npy"], 1, "does not exist"),
        (["bad.txt"], 1, "must be a .npy or .npz"),
        (["flat.npy"], 1, "2-D array"),
        (["nan.npy"], 1, "3 rows: 5, 17, 250"),
        (["G.npz"], 1, "name one with --key"),
        (["G.npz", "--key", "nope"], 1, "no array 'nope'"),
        (["G.npy", "--labels", "short.npy"], 1, "300 entries"),
        (["G.npy", "--class-balance", "equal"], 1, "needs the class labels"),
        (["G.npy", "--n-select", "301"], 1, "n_select=301"),
        (["G.npy", "--method", "maxvol", "--scores", "s.npy"], 1, "does not score"),
        (["G.npy", "--method", "moment", "--scores", "s.npy"], 1, "does not score"),
        (["G.npy", "--weights", "w.npy"], 1, "needs --method maxvol"),
        (["G.npy", "--method", "maxvol", "--labels", "y.npy", "--weights", "w.npy"], 1,
         "--class-balance none"),
        (["G.npy", "--method", "magic"], 2, "invalid choice"),
        (["G.npy", "--n-select", "lots"], 2, "not a count or a fraction"),
        (["G.npy", "--n-select", "inf"], 2, "a fraction must be in (0, 1]"),
        (["G.npy", "--n-select", "0"], 2, "a count must be at least 1"),
        (["G.npy", "--scores", "missing/s.npy"], 1, "--scores: the folder"),
        ([], 2, "required"),
    ],
)
def test_select_errors(gradients, arguments, status, message):
    G, y, folder = gradients
    np.save(folder / "flat.npy", G[:, 0])
    bad = G.copy()
    bad[[5, 17, 250], [0, 3, 39]] = [np.nan, np.inf, -np.inf]
    np.save(folder / "nan.npy", bad)
    np.save(folder / "short.npy", y[:10])
    (folder / "bad.txt").write_text("1 2 3")
    paths = [str(folder / a) if a.endswith((".npy", ".npz", ".txt")) else a for a in arguments]
    out = run("select", *paths, *([] if not arguments else ["-o", str(folder / "o.npy")]))
    assert out.returncode == status, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (folder / "o.npy").exists()
