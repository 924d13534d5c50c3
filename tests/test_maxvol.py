"""maxvol, rect_maxvol and greedy pivots: properties, brute force, kernels against reference."""

import itertools

import array_api_strict
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

import sketchsel
from sketchsel._array_api import array_namespace, to_numpy
from sketchsel.linalg import _maxvol as impl
from sketchsel.linalg import fast_maxvol, maxvol, rect_maxvol


def log_volume(A, pivots):
    """log sqrt(det(A_S^T A_S)) of A scaled to unit max entry (scaling shifts all volumes alike)."""
    sub = A[np.asarray(pivots)] / np.abs(A).max()
    if sub.shape[0] == sub.shape[1]:
        return np.linalg.slogdet(sub)[1]
    return np.linalg.slogdet(sub.conj().T @ sub)[1] / 2


@st.composite
def tall_matrices(draw, max_n=300, max_r=12, complex_=True):
    """Real, or complex where complex_ allows it, at scales from 1e-150 to 1e150."""
    r = draw(st.integers(1, max_r))
    n = draw(st.integers(r + 1, max_n))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-150, 1e-3, 1.0, 1e5, 1e150]))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["gaussian", "heavy", "skewed"]))
    A = rng.standard_normal((n, r))
    if kind == "heavy":
        A = rng.standard_t(1.5, size=(n, r))
    elif kind == "skewed":
        A = A * np.logspace(0, -6, r)
    if complex_ and draw(st.booleans()):
        A = A + 1j * rng.standard_normal((n, r))
    return A * scale


@given(tall_matrices(), st.sampled_from([1.0, 1.01, 1.05, 1.5]))
def test_converged_maxvol_is_dominant_and_reconstructs(A, tol):
    pivots, C, n_iter = maxvol(A, tol=tol, max_iters=10_000, return_n_iter=True)
    n, r = A.shape
    assert pivots.dtype == np.int64 and len(set(pivots.tolist())) == len(pivots) == r
    assert n_iter < 10_000
    assert np.abs(C).max() <= tol * (1 + 1e-9)
    assert C.dtype == A.dtype
    assert_allclose(C[pivots], np.eye(r), atol=1e-9)
    assert_allclose(C @ A[pivots], A, atol=1e-8 * np.abs(A).max())


@given(tall_matrices(max_n=120, max_r=8))
def test_volume_never_decreases_across_swaps(A):
    volumes = [log_volume(A, maxvol(A, tol=1.0, max_iters=k)[0]) for k in range(8)]
    assert all(b >= a - 1e-9 for a, b in zip(volumes, volumes[1:]))


@given(st.integers(1, 3), st.integers(0, 4), st.integers(0, 2**31 - 1))
def test_volume_within_the_dominance_factor_of_brute_force(r, extra, seed):
    n = r + 1 + extra + 3
    A = np.random.default_rng(seed).standard_normal((n, r))
    tol = 1.05
    pivots, _ = maxvol(A, tol=tol, max_iters=1000)
    best = max(log_volume(A, rows) for rows in itertools.combinations(range(n), r))
    # A dominant submatrix (|C| <= tol) has volume >= max volume / (tol sqrt(r))^r.
    assert log_volume(A, pivots) >= best - r * np.log(tol * np.sqrt(r)) - 1e-9


@given(tall_matrices(max_n=200, max_r=10), st.sampled_from([0.5, 1.0, 1.2]),
       st.integers(0, 30))
def test_rect_maxvol_row_norms_and_reconstruction(A, tol, extra):
    n, r = A.shape
    max_rows = min(n, r + extra + 5)
    min_rows = min(max_rows, r + extra)
    pivots, C = rect_maxvol(A, tol=tol, max_rows=max_rows, min_rows=min_rows)
    k = len(pivots)
    assert len(set(pivots.tolist())) == k
    assert min_rows <= k <= max_rows
    # C holds the minimum-norm least-squares coefficients on the chosen rows.
    assert_allclose(C, A @ np.linalg.pinv(A[pivots]), atol=1e-8)
    assert_allclose(C @ A[pivots], A, atol=1e-7 * np.abs(A).max())
    others = np.setdiff1d(np.arange(n), pivots)
    if k < max_rows and others.size:
        assert np.linalg.norm(C[others], axis=1).max() <= tol * (1 + 1e-9)


@given(tall_matrices(max_n=150, max_r=8), st.sampled_from([1.0, 1.05]),
       st.sampled_from([np.float64, np.float32]))
def test_numba_swap_kernel_equals_reference(A, tol, dtype):
    from sketchsel.linalg import _maxvol_numba

    if dtype == np.float32:
        A = A / np.abs(A).max()
        A = A.astype(np.complex64 if np.iscomplexobj(A) else np.float32)
    xp = array_namespace(A)
    pivots = impl._start(xp, A, A.shape[1])[0]
    assert pivots == impl._greedy_pivots_reference(xp, A, A.shape[1])[0]
    C0 = np.ascontiguousarray(impl._coefficients(xp, A, pivots))
    ref_pivots = list(pivots)
    C_ref, n_ref = impl._swap_loop_reference(xp, C0.copy(), ref_pivots, tol, 50)
    C_fast, p_fast = C0.copy(), np.asarray(pivots, dtype=np.int64)
    n_fast = _maxvol_numba.swap_loop(C_fast, p_fast, tol, 50)
    assert n_fast == n_ref
    assert p_fast.tolist() == ref_pivots
    assert_allclose(C_fast, C_ref, atol=1e-9 if dtype == np.float64 else 1e-4)


@given(tall_matrices(max_n=150, max_r=8), st.sampled_from([0.8, 1.0]), st.integers(0, 150),
       st.integers(0, 150))
def test_lazy_rect_additions_equal_the_reference(A, tol, max_rows, min_rows):
    xp = array_namespace(A)
    n, r = A.shape
    max_rows, min_rows = min(max(max_rows, r), n), min(min_rows, n)
    min_rows = min(min_rows, max_rows)
    pivots, C, _ = impl._maxvol(xp, A, 1.05, 10)
    ref_pivots = list(pivots)
    C_ref = impl._add_rows_reference(xp, C.copy(), ref_pivots, tol, max_rows, min_rows)
    fast_pivots, C_fast, _ = impl._rect_maxvol(xp, A, tol, max_rows, min_rows, 10)
    assert fast_pivots == ref_pivots
    assert_allclose(C_fast, C_ref, atol=1e-8)


@pytest.mark.parametrize("convert", [torch.from_numpy, array_api_strict.asarray])
def test_other_namespaces_run_the_reference_path_with_the_same_result(convert):
    A = np.random.default_rng(3).standard_normal((200, 6))
    expected_pivots, expected_C = maxvol(A)
    with sketchsel.config_context(backend="array_api"):
        pivots, C = maxvol(convert(A))
        rect_pivots, rect_C = rect_maxvol(convert(A))
        greedy = fast_maxvol(convert(A))
    assert type(C) is type(convert(A))
    assert_array_equal(to_numpy(pivots), expected_pivots)
    assert_allclose(to_numpy(C), expected_C, atol=1e-10)
    assert_array_equal(to_numpy(rect_pivots), rect_maxvol(A)[0])
    assert_allclose(to_numpy(rect_C), rect_maxvol(A)[1], atol=1e-10)
    assert_array_equal(to_numpy(greedy), fast_maxvol(A))


def test_fast_maxvol_is_partial_pivoting_and_the_maxvol_start():
    A = np.random.default_rng(4).standard_normal((500, 8))
    greedy = fast_maxvol(A)
    assert_array_equal(greedy, maxvol(A, max_iters=0)[0])
    assert_array_equal(fast_maxvol(A, n_pivots=3), greedy[:3])
    # Brute-force partial pivoting: the largest remaining entry of each column.
    R, chosen = A.copy(), []
    for k in range(8):
        p = int(np.argmax(np.where(np.isin(np.arange(500), chosen), -1, np.abs(R[:, k]))))
        chosen.append(p)
        R = R - np.outer(R[:, k] / R[p, k], R[p])
    assert greedy.tolist() == chosen


def test_float32_is_kept():
    A = np.random.default_rng(5).standard_normal((300, 5)).astype(np.float32)
    pivots, C = maxvol(A)
    assert C.dtype == np.float32
    assert np.abs(C).max() <= 1.05 * (1 + 1e-6)
    rect_pivots, rect_C = rect_maxvol(A)
    assert rect_C.dtype == np.float32


# ------------------------------------------------------------ special cases


def test_fewer_rows_than_columns_selects_every_row():
    A = np.random.default_rng(6).standard_normal((3, 5))
    pivots, C = maxvol(A)
    assert_array_equal(pivots, [0, 1, 2])
    assert_array_equal(C, np.eye(3))


@pytest.mark.parametrize("rank", [1, 3])
def test_rank_deficient_input_returns_rank_many_pivots(rank):
    rng = np.random.default_rng(7)
    A = rng.standard_normal((400, rank)) @ rng.standard_normal((rank, 6))
    pivots, C = maxvol(A)
    assert len(pivots) == rank
    assert_allclose(C @ A[pivots], A, atol=1e-9 * np.abs(A).max())
    assert np.abs(C).max() <= 1.05 + 1e-9
    rect_pivots, rect_C = rect_maxvol(A)
    assert_allclose(rect_C @ A[rect_pivots], A, atol=1e-9 * np.abs(A).max())
    assert len(fast_maxvol(np.hstack([A[:, :1], np.zeros((400, 2))]))) == 1


def test_zero_matrix_returns_no_pivots():
    pivots, C = maxvol(np.zeros((50, 4)))
    assert pivots.shape == (0,) and C.shape == (50, 0)


def test_duplicate_rows_are_never_both_chosen():
    base = np.random.default_rng(8).standard_normal((30, 4))
    A = np.vstack([base, base, base])
    pivots, _ = maxvol(A)
    assert len({int(p) % 30 for p in pivots}) == 4


def test_scale_does_not_change_the_pivots():
    A = np.random.default_rng(9).standard_normal((300, 7))
    expected = maxvol(A)[0]
    for scale in (1e-200, 1e200):
        assert_array_equal(maxvol(A * scale)[0], expected)


def test_input_is_not_modified():
    A = np.random.default_rng(10).standard_normal((300, 7))
    copy = A.copy()
    maxvol(A)
    rect_maxvol(A)
    fast_maxvol(A)
    assert_array_equal(A, copy)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda A: maxvol(A, tol=0.99), "tol"),
        (lambda A: maxvol(A, max_iters=-1), "max_iters"),
        (lambda A: rect_maxvol(A, tol=0), "tol"),
        (lambda A: rect_maxvol(A, max_rows=0), "max_rows"),
        (lambda A: fast_maxvol(A, n_pivots=0), "n_pivots"),
    ],
)
def test_invalid_parameters_name_the_parameter(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call(np.ones((10, 3)))


def test_inconsistent_row_limits_are_explained():
    A = np.random.default_rng(11).standard_normal((50, 4))
    with pytest.raises(ValueError, match=r"max_rows=3 is below the number of columns of A \(4\)"):
        rect_maxvol(A, max_rows=3)
    with pytest.raises(ValueError, match="min_rows=9 must be <= max_rows=8"):
        rect_maxvol(A, max_rows=8, min_rows=9)
    with pytest.raises(ValueError, match=r"n_pivots=5 exceeds the number of columns of A \(4\)"):
        fast_maxvol(A, n_pivots=5)


def test_non_finite_input_names_the_rows():
    A = np.ones((10, 2))
    A[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"A contains NaN or infinity in 1 row\(s\): \[4\]"):
        maxvol(A)


def test_a_maxvolpy_positional_call_cannot_mean_something_else():
    # maxvolpy's rect_maxvol(A, tol, maxK, min_add_K, ...): its fourth positional argument
    # adds rows to the square start, where min_rows counts them all; refused, not reread.
    A = np.random.default_rng(31).standard_normal((200, 10))
    with pytest.raises(TypeError):
        rect_maxvol(A, 1.0, 40, 25)
    pivots, _ = rect_maxvol(A, 1.0, 40, min_rows=25)
    assert 25 <= len(pivots) <= 40
    # The leading arguments keep maxvolpy's meaning: A, tol, max_iters / max_rows.
    assert_array_equal(maxvol(A, 1.05, 0)[0], maxvol(A, tol=1.05, max_iters=0)[0])
    assert_array_equal(rect_maxvol(A, 2.0, 12)[0], rect_maxvol(A, tol=2.0, max_rows=12)[0])
