"""FrequentDirections against exact SVD: guarantees, streaming, merging, state."""

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.linalg import eigh
from sklearn.utils._param_validation import InvalidParameterError

from sketchsel import FrequentDirections
from sketchsel._array_api import array_namespace
from sketchsel.sketch._shrink import plan_blocks, shrink

SPECTRA = ("flat", "decaying", "rank_deficient", "huge_row", "zero_rows")


def make_matrix(n, d, spectrum, seed, dtype=np.float64):
    """A test matrix with a chosen singular spectrum."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d))
    if spectrum == "decaying":
        A = A * (0.7 ** np.arange(d))
    elif spectrum == "rank_deficient":
        r = max(1, min(n, d) // 3)
        A = rng.standard_normal((n, r)) @ rng.standard_normal((r, d))
    elif spectrum == "huge_row":
        A[rng.integers(n)] *= 1e6
    elif spectrum == "zero_rows":
        A[rng.random(n) < 0.5] = 0.0
    return A.astype(dtype)


@st.composite
def problems(draw, max_n=2000, max_d=120):
    # Mostly small problems, where edge cases live, and some of thousands of rows.
    n = draw(st.one_of(st.integers(1, 60), st.integers(1, max_n)))
    d = draw(st.one_of(st.integers(1, 12), st.integers(1, max_d)))
    sketch_size = draw(st.one_of(st.integers(1, 16), st.integers(1, 150)))
    spectrum = draw(st.sampled_from(SPECTRA))
    seed = draw(st.integers(0, 2**31 - 1))
    block_size = draw(st.one_of(st.just("auto"), st.integers(1, 64)))
    return make_matrix(n, d, spectrum, seed), sketch_size, block_size


def tail_energy(A):
    """tail[k] = ||A - A_k||_F^2 for k = 0 .. min(A.shape)."""
    s2 = np.linalg.svd(A, compute_uv=False) ** 2
    return np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]])


def assert_guarantees(A, fd, rtol=1e-9):
    """Every guarantee of the docstring, against the exact matrix A."""
    B = np.asarray(fd.sketch_, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    total = float(np.sum(A * A))
    tol = rtol * max(total, np.finfo(float).tiny)
    delta = fd.covariance_error_bound()
    rows = min(fd.sketch_size, A.shape[1])
    assert B.shape == (rows, A.shape[1])
    assert fd.squared_norm_ == pytest.approx(total, rel=1e-6)

    eigs = np.linalg.eigvalsh(A.T @ A - B.T @ B)
    assert eigs[0] >= -tol, "A^T A - B^T B is not positive semidefinite"
    assert eigs[-1] <= delta + tol, "covariance error exceeds the certificate"

    tail = tail_energy(A)
    for k in range(min(rows, len(tail) - 1) + 1):
        assert delta <= tail[k] / (rows + 1 - k) + tol, f"Delta above the k={k} bound"
    assert delta <= (total - np.sum(B * B)) / (rows + 1) + tol

    # Weyl: squared singular values of B are those of A lowered by at most Delta.
    sa = np.linalg.svd(A, compute_uv=False) ** 2
    sb = np.linalg.svd(B, compute_uv=False) ** 2
    m = min(len(sa), len(sb))
    assert np.all(sb[:m] <= sa[:m] + tol)
    assert np.all(sb[:m] >= sa[:m] - delta - tol)


@given(problems())
def test_guarantees_against_exact_svd(problem):
    A, sketch_size, block_size = problem
    fd = FrequentDirections(sketch_size, block_size=block_size, backend="numpy").fit(A)
    assert fd.n_samples_seen_ == A.shape[0]
    assert_guarantees(A, fd)


@given(problems(), st.lists(st.integers(0, 2000), max_size=8))
def test_any_chunking_gives_the_one_stream_sketch(problem, cuts):
    A, sketch_size, block_size = problem
    whole = FrequentDirections(sketch_size, block_size=block_size, backend="numpy").fit(A)
    streamed = FrequentDirections(sketch_size, block_size=block_size, backend="numpy")
    bounds = sorted({0, A.shape[0], *(c for c in cuts if c < A.shape[0])})
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        streamed.partial_fit(A[lo:hi])
        # Memory stays bounded: fewer than one block of rows ever waits.
        assert streamed.block_size_ is None or streamed._state_n_pending < streamed.block_size_
    assert streamed.n_shrinks_ == whole.n_shrinks_
    assert streamed.n_samples_seen_ == whole.n_samples_seen_
    Bs, Bw = streamed.sketch_, whole.sketch_
    scale = max(whole.squared_norm_, 1e-300)
    assert_allclose(Bs.T @ Bs, Bw.T @ Bw, atol=1e-10 * scale)
    assert streamed.covariance_error_bound() == pytest.approx(
        whole.covariance_error_bound(), rel=1e-8, abs=1e-10 * scale
    )
    assert_guarantees(A, streamed)


@given(problems(max_n=600), st.data())
def test_any_merge_tree_keeps_the_guarantees(problem, data):
    A, sketch_size, block_size = problem
    n = A.shape[0]
    n_parts = data.draw(st.integers(1, min(6, n)))
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), min_size=n_parts - 1,
                                    max_size=n_parts - 1))) if n_parts > 1 else []
    parts = np.split(A, cuts)
    sketches = [
        FrequentDirections(sketch_size, block_size=block_size, backend="numpy").fit(p)
        for p in parts
    ]
    while len(sketches) > 1:  # a random binary merge tree
        i = data.draw(st.integers(0, len(sketches) - 2))
        left, right = sketches[i], sketches.pop(i + 1)
        sketches[i] = left.merge(right)
    merged = sketches[0]
    assert merged.n_samples_seen_ == n
    assert_guarantees(A, merged)


@given(
    st.integers(1, 200), st.integers(1, 30), st.integers(1, 40), st.integers(0, 2**31 - 1),
    st.one_of(st.just("auto"), st.integers(1, 32)),
)
def test_exact_when_rank_at_most_sketch_size(n, d, sketch_size, seed, block_size):
    rng = np.random.default_rng(seed)
    r = min(sketch_size, n, d)
    A = rng.standard_normal((n, r)) @ rng.standard_normal((r, d))
    fd = FrequentDirections(sketch_size, block_size=block_size, backend="numpy").fit(A)
    B = fd.sketch_
    scale = np.sum(A * A)
    assert fd.covariance_error_bound() <= 1e-9 * scale
    assert_allclose(B.T @ B, A.T @ A, atol=1e-9 * scale)


def test_singular_values_match_exact_svd_when_sketch_covers_all_features(rng):
    A = rng.standard_normal((500, 12)) * np.arange(1, 13)
    fd = FrequentDirections(sketch_size=20, backend="numpy").fit(A)
    assert_allclose(fd.singular_values_, np.linalg.svd(A, compute_uv=False), rtol=1e-10)
    # The components span the same subspaces as the exact right singular vectors.
    _, _, vt = np.linalg.svd(A, full_matrices=False)
    assert_allclose(np.abs(fd.components_ @ vt.T), np.eye(12), atol=1e-8)


def test_components_are_orthonormal_and_transform_projects(rng):
    A = make_matrix(400, 30, "decaying", 1)
    fd = FrequentDirections(sketch_size=10, n_components=4, block_size=16,
                            backend="numpy").fit(A)
    C = fd.components_
    assert C.shape == (4, 30)
    assert fd.singular_values_.shape == (4,)
    assert np.all(np.diff(fd.singular_values_) <= 0)
    assert_allclose(C @ C.T, np.eye(4), atol=1e-10)
    X = rng.standard_normal((7, 30))
    assert_allclose(fd.transform(X), X @ C.T)
    assert list(fd.get_feature_names_out()) == [f"frequentdirections{i}" for i in range(4)]


def test_block_size_trades_shrinks_for_error():
    A = make_matrix(2000, 40, "decaying", 2)
    small = FrequentDirections(8, block_size=8, backend="numpy").fit(A)
    large = FrequentDirections(8, block_size=512, backend="numpy").fit(A)
    assert small.n_shrinks_ > large.n_shrinks_
    assert large.covariance_error_bound() <= small.covariance_error_bound()


def test_pickle_mid_stream_then_resume_is_identical():
    A = make_matrix(1000, 25, "decaying", 3)
    straight = FrequentDirections(6, block_size=64, backend="numpy")
    straight.partial_fit(A[:333]).partial_fit(A[333:])
    paused = FrequentDirections(6, block_size=64, backend="numpy").partial_fit(A[:333])
    resumed = pickle.loads(pickle.dumps(paused)).partial_fit(A[333:])
    assert_array_equal(resumed.sketch_, straight.sketch_)
    assert resumed.covariance_error_bound() == straight.covariance_error_bound()
    assert resumed.n_shrinks_ == straight.n_shrinks_


def test_same_input_same_sketch():
    A = make_matrix(700, 20, "flat", 4)
    first = FrequentDirections(5, backend="numpy").fit(A).sketch_
    second = FrequentDirections(5, backend="numpy").fit(A).sketch_
    assert_array_equal(first, second)


def test_refit_forgets_the_earlier_stream(rng):
    A, C = rng.standard_normal((100, 6)), rng.standard_normal((50, 6))
    fd = FrequentDirections(3, backend="numpy").fit(A).fit(C)
    fresh = FrequentDirections(3, backend="numpy").fit(C)
    assert fd.n_samples_seen_ == 50
    assert_array_equal(fd.sketch_, fresh.sketch_)


@pytest.mark.parametrize("n_features", [10, 100])  # the Gram route, the row-buffer route
def test_input_never_modified_and_pending_rows_are_copied(n_features):
    A = make_matrix(300, n_features, "flat", 5)
    original = A.copy()
    expected = FrequentDirections(4, block_size=64, backend="numpy").fit(A).sketch_
    fd = FrequentDirections(4, block_size=64, backend="numpy")
    first = A[:100].copy()
    fd.partial_fit(first)  # 36 rows wait in the buffer
    first[:] = 0.0  # the caller reuses its batch array
    fd.partial_fit(A[100:])
    assert_array_equal(A, original)
    assert_allclose(fd.sketch_, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_sums_are_float64(dtype):
    A = make_matrix(500, 16, "decaying", 6, dtype=dtype)
    fd = FrequentDirections(6, block_size=32, backend="numpy").fit(A)
    assert fd.sketch_.dtype == dtype
    assert fd.components_.dtype == dtype
    assert fd.transform(A).dtype == dtype
    assert isinstance(fd.covariance_error_bound(), float)
    assert isinstance(fd.squared_norm_, float)
    assert_guarantees(A, fd, rtol=1e-9 if dtype == np.float64 else 1e-5)


@pytest.mark.parametrize(
    "values, expected",
    [([[1, 2], [3, 4]], np.float64), ([[True, False], [False, True]], np.float64)],
)
def test_integers_and_booleans_become_float64(values, expected):
    fd = FrequentDirections(2, backend="numpy").fit(values)
    assert fd.sketch_.dtype == expected
    A = np.asarray(values, float)
    assert_allclose(fd.sketch_.T @ fd.sketch_, A.T @ A)


def test_float16_is_widened_to_float32():
    fd = FrequentDirections(2, backend="numpy").fit(np.ones((5, 3), dtype=np.float16))
    assert fd.sketch_.dtype == np.float32


def test_later_batches_take_the_sketch_dtype():
    A = make_matrix(200, 8, "flat", 7)
    fd = FrequentDirections(4, backend="numpy").partial_fit(A[:100].astype(np.float32))
    fd.partial_fit(A[100:])
    assert fd.sketch_.dtype == np.float32
    assert fd.n_samples_seen_ == 200


def test_merge_leaves_other_unchanged_and_widens_dtype():
    A = make_matrix(400, 10, "decaying", 8)
    left = FrequentDirections(4, backend="numpy").fit(A[:200].astype(np.float32))
    right = FrequentDirections(4, backend="numpy").fit(A[200:])
    right_sketch = right.sketch_.copy()
    merged = left.merge(right)
    assert merged is left
    assert merged.sketch_.dtype == np.float64
    assert_array_equal(right.sketch_, right_sketch)
    assert right.n_samples_seen_ == 200
    assert_guarantees(A, merged, rtol=1e-5)


def test_merge_includes_rows_still_waiting_in_the_buffer():
    A = make_matrix(300, 10, "flat", 9)
    left = FrequentDirections(4, block_size=1000, backend="numpy").partial_fit(A[:150])
    right = FrequentDirections(4, block_size=1000, backend="numpy").partial_fit(A[150:])
    merged = left.merge(right).partial_fit(A[:1])
    whole = np.vstack([A, A[:1]])
    assert merged.n_samples_seen_ == 301
    assert_guarantees(whole, merged)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            np.array([[1.0, np.nan], [0.0, 1.0], [np.inf, 2.0]]),
            r"NaN or infinity in 2 row\(s\): \[0, 2\]",
        ),
        (np.empty((0, 3)), r"0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1"),
        (np.empty((3, 0)), r"0 feature\(s\) \(shape=\(3, 0\)\) while a minimum of 1"),
        (np.ones(4), "Expected 2D array, got 1D"),
        (np.ones((2, 2, 2)), "Expected 2D array, got 3D"),
        (np.ones((2, 2), dtype=complex), "Complex data not supported"),
    ],
)
def test_bad_input_is_a_clear_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        FrequentDirections(2, backend="numpy").fit(bad)


def test_assume_finite_skips_the_finiteness_check_as_in_scikit_learn():
    import sklearn

    from sketchsel._array_api import check_array

    bad = np.array([[1.0, np.nan], [0.0, 1.0]])
    with sklearn.config_context(assume_finite=True):
        checked, _ = check_array(bad, backend="numpy")
    assert checked is bad
    with pytest.raises(ValueError, match=r"NaN or infinity in 1 row\(s\): \[0\]"):
        FrequentDirections(2, backend="numpy").fit(bad)


def test_sparse_and_text_input_are_type_errors():
    import scipy.sparse

    with pytest.raises(TypeError, match=r"sparse.*toarray\(\)"):
        FrequentDirections(2).fit(scipy.sparse.eye(4, format="csr"))
    with pytest.raises(TypeError, match="must hold real numbers"):
        FrequentDirections(2, backend="numpy").fit(np.array([["a", "b"], ["c", "d"]]))


def test_ragged_lists_are_rejected():
    with pytest.raises(ValueError, match="could not be read as a 2-D array"):
        FrequentDirections(2, backend="numpy").fit([[1.0, 2.0], [3.0]])


def test_feature_count_change_between_partial_fits():
    fd = FrequentDirections(2, backend="numpy").partial_fit(np.ones((3, 4)))
    with pytest.raises(ValueError, match="X has 5 features, but FrequentDirections is expecting 4"):
        fd.partial_fit(np.ones((3, 5)))
    with pytest.raises(ValueError, match="X has 3 features"):
        fd.transform(np.ones((3, 3)))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"sketch_size": 0}, "sketch_size"),
        ({"sketch_size": 2.5}, "sketch_size"),
        ({"block_size": 0}, "block_size"),
        ({"block_size": "big"}, "block_size"),
        ({"n_components": 0}, "n_components"),
        ({"backend": "tpu"}, "backend"),
    ],
)
def test_invalid_parameters_name_the_parameter(params, match):
    with pytest.raises(InvalidParameterError, match=match):
        FrequentDirections(**params).fit(np.ones((3, 3)))


def test_n_components_larger_than_sketch_is_rejected():
    message = r"n_components=5 must be <= min\(sketch_size, n_features\) = 3"
    with pytest.raises(ValueError, match=message):
        FrequentDirections(3, n_components=5).fit(np.ones((10, 8)))
    with pytest.raises(ValueError, match=r"n_components=5 must be <= .* = 4"):
        FrequentDirections(10, n_components=5).fit(np.ones((10, 4)))


def test_merge_errors_name_the_mismatch():
    A = np.random.default_rng(0).standard_normal((20, 5))
    fd = FrequentDirections(3).fit(A)
    with pytest.raises(ValueError, match="different sketch_size"):
        fd.merge(FrequentDirections(4).fit(A))
    with pytest.raises(ValueError, match="different n_features"):
        fd.merge(FrequentDirections(3).fit(A[:, :4]))
    with pytest.raises(TypeError, match="other must be a FrequentDirections"):
        fd.merge(A)
    with pytest.raises(ValueError, match="other is not fitted"):
        fd.merge(FrequentDirections(3))


def test_unfitted_attributes_raise_not_fitted():
    from sklearn.exceptions import NotFittedError

    fd = FrequentDirections(3)
    for name in ("sketch_", "components_", "singular_values_", "shrinkage_"):
        with pytest.raises(NotFittedError):
            getattr(fd, name)
    with pytest.raises(NotFittedError):
        fd.covariance_error_bound()


@given(
    st.integers(0, 12), st.lists(st.integers(1, 30), min_size=1, max_size=3),
    st.integers(1, 25), st.integers(1, 15), st.integers(0, 2**31 - 1),
)
def test_shrink_step_is_the_exact_truncated_eigendecomposition(
    sketch_rows_in, block_rows, n_features, sketch_rows, seed
):
    """Both Gram routes (m x m and D x D) against eigh of the stacked rows."""
    rng = np.random.default_rng(seed)
    sketch = rng.standard_normal((sketch_rows_in, n_features))
    blocks = [rng.standard_normal((b, n_features)) for b in block_rows]
    rows = min(sketch_rows, n_features)
    new, delta = shrink(array_namespace(sketch), sketch, blocks, rows)
    C = np.vstack([sketch, *blocks])
    lam, V = np.linalg.eigh(C.T @ C)
    lam, V = np.clip(lam[::-1], 0, None), V[:, ::-1]
    expected_delta = lam[rows] if lam.size > rows else 0.0
    expected = (V[:, :rows] * np.clip(lam[:rows] - expected_delta, 0, None)) @ V[:, :rows].T
    scale = np.sum(C * C)
    assert new.shape == (rows, n_features)
    assert delta == pytest.approx(expected_delta, abs=1e-10 * scale)
    assert_allclose(new.T @ new, expected, atol=1e-10 * scale)


@pytest.mark.parametrize("sketch_rows, n_features", [(1, 1), (8, 10), (64, 512), (256, 4096),
                                                     (64, 100_000), (100, 50), (32, 4096)])
@pytest.mark.parametrize("itemsize", [4, 8])
def test_auto_plan_fits_the_memory_budget(sketch_rows, n_features, itemsize):
    route, block = plan_blocks(sketch_rows, n_features, itemsize)
    assert (route, block) == plan_blocks(sketch_rows, n_features, itemsize)
    if route == "rows":
        assert 1 <= block <= n_features - sketch_rows
        assert (sketch_rows + block) * n_features * itemsize <= 128 * 2**20
    else:
        assert block is None
        assert 4 * n_features**2 * 8 <= 128 * 2**20 or sketch_rows >= n_features


@st.composite
def low_rank_plus_noise(draw):
    """Rows of a signal with singular values ``decay**k`` plus Gaussian noise, D up to 1800."""
    n_features = draw(st.sampled_from([64, 700, 1000, 1800]))
    rank = draw(st.integers(1, 80))
    decay = draw(st.one_of(st.floats(0.5, 1.0), st.floats(0.95, 1.0)))  # flat is the hard case
    noise = draw(st.sampled_from([0.0, 1e-3, 0.05, 0.3]))
    n = draw(st.integers(n_features // 2, 2 * n_features))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    A = (rng.standard_normal((n, rank)) * decay ** np.arange(rank)) @ rng.standard_normal(
        (rank, n_features)
    )
    return A + noise * rng.standard_normal((n, n_features))


def covariance_error(gram, B):
    """``||A^T A - B^T B||_2`` from ``gram = A^T A``: its largest eigenvalue (it is PSD for FD)."""
    d = gram.shape[0]
    return float(eigh(gram - B.T @ B, eigvals_only=True, subset_by_index=[d - 1, d - 1])[0])


@settings(max_examples=10, deadline=None)
@given(low_rank_plus_noise(), st.integers(1, 40), st.integers(2, 40))
def test_default_error_and_bound_never_grow_with_sketch_size(A, sketch_size, step):
    """A larger sketch_size is never less accurate, in measured error or certificate."""
    gram = A.T @ A
    tol = 1e-10 * np.trace(gram)
    errors, bounds = [], []
    for size in (sketch_size, sketch_size + 1, sketch_size + step):
        fd = FrequentDirections(size, backend="numpy").fit(A)
        errors.append(covariance_error(gram, fd.sketch_))
        bounds.append(fd.covariance_error_bound())
    assert np.all(np.diff(errors) <= tol), errors
    assert np.all(np.diff(bounds) <= tol), bounds


@pytest.mark.parametrize("sketch_size", [2, 5, 10, 12, 20, 40])
def test_default_sketch_is_the_best_rank_l_below_the_gram_cap(sketch_size):
    """Up to 2048 features the default error is lambda_{l+1}(A^T A), the least of any rank l."""
    A = make_matrix(3000, 1000, "decaying", 4) + 0.05 * make_matrix(3000, 1000, "flat", 5)
    fd = FrequentDirections(sketch_size, backend="numpy").fit(A)
    gram = A.T @ A
    lam = np.linalg.eigvalsh(gram)[::-1]
    assert fd.block_size_ is None
    assert covariance_error(gram, fd.sketch_) == pytest.approx(lam[sketch_size], rel=1e-8)
    assert fd.covariance_error_bound() == pytest.approx(lam[sketch_size], rel=1e-8)


@pytest.mark.parametrize("sketch_rows, block, n_features, route", [
    (4, 10, 100, "rows"), (4, 96, 100, "rows"), (4, 97, 100, "gram"), (10, 3, 5, "gram"),
])
def test_given_block_size_picks_the_route_by_shape(sketch_rows, block, n_features, route):
    assert plan_blocks(sketch_rows, n_features, 8, block) == (route, block)


@pytest.mark.parametrize("block_size", [16, 64, "auto"])
def test_float32_round_off_does_not_build_up_over_many_shrinks(block_size):
    """Hundreds of shrinks of float32 rows: the float32 sketch stays inside its bound."""
    rng = np.random.default_rng(11)
    A = (rng.standard_normal((12_000, 200)) * 0.97 ** np.arange(200)).astype(np.float32)
    fd = FrequentDirections(24, block_size=block_size, backend="numpy").fit(A)
    A64 = A.astype(np.float64)
    B = fd.sketch_.astype(np.float64)
    assert fd.sketch_.dtype == np.float32
    error = np.linalg.norm(A64.T @ A64 - B.T @ B, 2)
    # Allowance: the float32 Gram products of the rows (a few 1e-10 relative
    # here), well under the float32 rounding of sketch_ (about 1e-8 relative),
    # which the bound must cover itself.
    assert error <= fd.covariance_error_bound() + 2e-9 * fd.squared_norm_


@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_float64_sums_in_blocks_are_the_float64_products(n, d, block, seed):
    # The Gram and the weighted sum add products of at most _GRAM_ROWS rows in float64;
    # with blocks of a few rows every split is exercised against the float64 product.
    from unittest import mock

    from sketchsel.sketch import _shrink

    rng = np.random.default_rng(seed)
    rows, weights = rng.standard_normal((n, d)), rng.standard_normal(n)
    with mock.patch.object(_shrink, "_GRAM_ROWS", block):
        gram, total = _shrink.gram64(np, rows), _shrink.weighted_sum64(np, weights, rows)
    assert gram.dtype == total.dtype == np.float64 and total.shape == (d,)
    assert_allclose(gram, rows.T @ rows, rtol=1e-12, atol=1e-12)
    assert_allclose(total, weights @ rows, rtol=1e-12, atol=1e-12)
