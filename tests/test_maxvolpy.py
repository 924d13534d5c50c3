"""sketchsel.linalg.maxvolpy, and complex input, against maxvolpy's own algorithm, brute force and its doctests."""

import itertools

import array_api_strict
import numpy as np
import pytest
import torch
from _maxvolpy_reference import py_maxvol, py_rect_maxvol
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

import sketchsel
from sketchsel._array_api import to_numpy
from sketchsel.linalg import fast_maxvol
from sketchsel.linalg import maxvol as main_maxvol
from sketchsel.linalg import rect_maxvol as main_rect_maxvol
from sketchsel.linalg.maxvolpy import maxvol, rect_maxvol


def doctest_matrix():
    """The complex 1000 x 30 matrix of maxvolpy's docstrings."""
    np.random.seed(100)
    return np.random.rand(1000, 30, 2).view(dtype=np.complex128)[:, :, 0]


@st.composite
def matrices(draw, max_n=120, min_r=1, max_r=8):
    """Gaussian, real or complex, N > r: full rank, with no ties between rows."""
    r = draw(st.integers(min_r, max_r))
    n = draw(st.integers(r + 1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    A = rng.standard_normal((n, r))
    if draw(st.booleans()):
        A = A + 1j * rng.standard_normal((n, r))
    return A


def test_the_doctest_values_are_maxvolpys():
    a = doctest_matrix()
    piv, C = maxvol(a, 1.05)
    ref_piv, ref_C = py_maxvol(a, 1.05)
    assert_array_equal(piv, ref_piv)
    assert_allclose(C, ref_C, atol=1e-12)
    assert f"{abs(ref_C).max():.5f}" == "1.04641"
    assert abs(C).max() <= 1.05
    piv, C = rect_maxvol(a, 1.5)
    ref_piv, ref_C = py_rect_maxvol(a, 1.5)
    assert_array_equal(piv, ref_piv)
    assert_allclose(C, ref_C, atol=1e-12)
    assert f"{np.linalg.norm(ref_C, axis=1).max():.5f}" == "1.49193"
    assert_allclose(C @ a[piv], a, atol=1e-12)


@given(matrices(), st.sampled_from([0.5, 1.0, 1.05, 1.5]), st.integers(0, 100),
       st.integers(-1, 130))
def test_maxvol_is_maxvolpys_algorithm(A, tol, max_iters, top_k_index):
    if top_k_index == 0:
        top_k_index = -1
    piv, C = maxvol(A, tol, max_iters, top_k_index)
    ref_piv, ref_C = py_maxvol(A, tol, max_iters, top_k_index)
    assert piv.dtype == np.int64 and C.dtype == A.dtype
    assert_array_equal(piv, ref_piv)
    assert_allclose(C, ref_C, atol=1e-8)


# py_rect_maxvol loses its updates of C when A has one column: np.hstack of an
# (N, 1) array gives C order, and BLAS ger then updates a copy of C.
@given(matrices(min_r=2), st.sampled_from([0.8, 1.0, 1.3]), st.none() | st.integers(0, 130),
       st.none() | st.integers(0, 20), st.none() | st.integers(0, 130), st.integers(0, 10),
       st.booleans(), st.integers(-1, 130))
def test_rect_maxvol_is_maxvolpys_algorithm(A, tol, maxK, min_add_K, minK, start_iters,
                                            identity, top_k_index):
    n, r = A.shape
    if top_k_index == 0:
        top_k_index = -1
    piv, C = rect_maxvol(A, tol, maxK, min_add_K, minK, start_iters, identity, top_k_index)
    candidates = n if top_k_index == -1 else min(max(top_k_index, r), n)
    if len(piv) == candidates < n:
        # Asked for more rows than the candidates, maxvolpy takes a chosen row again.
        return
    ref_piv, ref_C = py_rect_maxvol(A, tol, maxK, min_add_K, minK, start_iters, identity,
                                    top_k_index)
    assert piv.dtype == np.int64 and C.dtype == A.dtype
    assert_array_equal(piv, ref_piv)
    assert_allclose(C, ref_C, atol=1e-8)


def swap_ratio(A, pivots, i, j):
    """|det A[pivots with row i in place j]| / |det A[pivots]|, by determinants."""
    swapped = list(pivots)
    swapped[j] = i
    return abs(np.linalg.det(A[swapped])) / abs(np.linalg.det(A[list(pivots)]))


@given(st.integers(1, 3), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_complex_maxvol_is_dominant_by_brute_force(r, extra, seed):
    rng = np.random.default_rng(seed)
    n = r + extra
    A = rng.standard_normal((n, r)) + 1j * rng.standard_normal((n, r))
    tol = 1.05
    piv, C = maxvol(A, tol, 1000)
    # No single swap grows the volume by more than tol, and that factor is |C_ij|.
    for i, j in itertools.product(range(n), range(r)):
        assert swap_ratio(A, piv, i, j) <= tol * (1 + 1e-9)
        assert swap_ratio(A, piv, i, j) == pytest.approx(abs(C[i, j]), rel=1e-8)
    best = max(abs(np.linalg.det(A[list(rows)])) for rows in itertools.combinations(range(n), r))
    assert abs(np.linalg.det(A[piv])) >= best / (tol * np.sqrt(r)) ** r * (1 - 1e-9)


@given(matrices(), st.sampled_from([1.0, 1.5]))
def test_rect_coefficients_are_the_identity_or_the_projection_on_the_chosen_rows(A, tol):
    piv, C = rect_maxvol(A, tol)
    piv_off, C_off = rect_maxvol(A, tol, identity_submatrix=False)
    assert_array_equal(piv, piv_off)
    assert_allclose(C[piv], np.eye(len(piv)), atol=1e-12)
    others = np.setdiff1d(np.arange(len(A)), piv)
    assert_allclose(C[others], C_off[others], atol=1e-12)
    assert_allclose(C_off, A @ np.linalg.pinv(A[piv]), atol=1e-8)
    assert_allclose(C @ A[piv], A, atol=1e-8)
    if others.size:
        assert np.linalg.norm(C[others], axis=1).max() <= tol * (1 + 1e-9)


def test_row_limits_follow_maxvolpy():
    A = np.random.default_rng(31).standard_normal((200, 10))
    # The call: maxK=40, min_add_K=25 asks for 35 rows at least, 40 at most.
    assert 35 <= len(rect_maxvol(A, 1.0, 40, 25)[0]) <= 40
    assert len(rect_maxvol(A, 1.0, 40, 25)[0]) == len(py_rect_maxvol(A, 1.0, 40, 25)[0])
    assert len(rect_maxvol(A, 100.0, 3)[0]) == 10  # maxK below r is raised to r
    assert len(rect_maxvol(A, 100.0, None, None, 500)[0]) == 200  # minK above N is N
    assert len(rect_maxvol(A, 100.0, 20, None, 30)[0]) == 20  # minK above maxK is maxK
    assert len(rect_maxvol(A, 100.0, None, 7)[0]) == 17


def test_top_k_index_restricts_the_pivots_and_covers_every_row():
    A = np.random.default_rng(5).standard_normal((300, 6)) + 0j
    for function in (maxvol, rect_maxvol):
        piv, C = function(A, top_k_index=50) if function is maxvol else function(
            A, 1.0, top_k_index=50)
        assert piv.max() < 50
        assert_allclose(C @ A[piv], A, atol=1e-10)
    # Fewer candidates than columns: the first r rows (in LU order, as maxvolpy's).
    piv, C = maxvol(A, top_k_index=3)
    assert sorted(piv.tolist()) == list(range(6))
    assert_allclose(C[piv], np.eye(6), atol=1e-12)
    assert_allclose(C @ A[piv], A, atol=1e-10)


def test_tol_below_one_is_one_and_the_main_api_agrees():
    A = doctest_matrix()[:300, :12]
    assert_array_equal(maxvol(A, 0.5)[0], maxvol(A, 1.0)[0])
    assert_array_equal(maxvol(A)[0], main_maxvol(A)[0])
    assert_array_equal(rect_maxvol(A)[0], main_rect_maxvol(A)[0])
    with pytest.raises(InvalidParameterError, match="'tol' parameter of maxvol"):
        maxvol(A, -1.0)
    with pytest.raises(InvalidParameterError, match="'maxK' parameter of rect_maxvol"):
        rect_maxvol(A, 1.0, -3)


@pytest.mark.parametrize("convert", [torch.from_numpy, array_api_strict.asarray])
def test_complex_input_gives_the_same_rows_in_every_namespace(convert):
    A = doctest_matrix()[:400, :8]
    with sketchsel.config_context(backend="array_api"):
        results = [function(convert(A), 1.2, top_k_index=top_k)
                   for function in (maxvol, rect_maxvol) for top_k in (-1, 150)]
        main = main_maxvol(convert(A))
        greedy = fast_maxvol(convert(A))
    expected = [function(A, 1.2, top_k_index=top_k)
                for function in (maxvol, rect_maxvol) for top_k in (-1, 150)]
    for (piv, C), (ref_piv, ref_C) in zip(results, expected):
        assert type(C) is type(convert(A))
        assert_array_equal(to_numpy(piv), ref_piv)
        assert_allclose(to_numpy(C), ref_C, atol=1e-10)
    assert_array_equal(to_numpy(main[0]), main_maxvol(A)[0])
    assert_array_equal(to_numpy(greedy), fast_maxvol(A))


def test_input_is_not_modified():
    A = doctest_matrix()[:200, :5]
    before = A.copy()
    rect_maxvol(A, 1.0, 20, 5, 10, 10, True, 100)
    maxvol(A, 1.05, 100, 50)
    assert_array_equal(A, before)
