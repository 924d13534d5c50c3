"""Seeded random projections: Johnson-Lindenstrauss, unbiasedness, regeneration, entries, inputs."""

import array_api_strict
import numpy as np
import pytest
import scipy.stats
import torch
from array_api_strict._array_object import Array as StrictArray
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

from sketchsel.linalg import projection_block, random_projection
from sketchsel.linalg._projection import _CHUNK_ROWS, seed_from

KINDS = ["gaussian", "rademacher", "countsketch"]
# random_state takes ints below 2**32; the median tests use seed, seed + 1, ...
seeds = st.integers(0, 2**31 - 1)
kinds = st.sampled_from(KINDS)

# m for the Johnson-Lindenstrauss tests; the estimate of <x, y> for unit x, y has
# a variance of at most 2/m for every kind, and the tolerance is 6 of its sigmas.
M_JL = 2000
JL_TOL = 6 * np.sqrt(2 / M_JL)
# Gaussian and Rademacher estimates are sums of M_JL independent light-tailed terms, so
# 6 sigma is missed with probability ~1e-8. A CountSketch of sparse vectors is not:
# e_1 and e_2 collide with probability 1/m, an error of 1. Its guarantee comes, as in
# Charikar et al., from the median of independent sketches: each misses with
# probability at most 1/36 (Chebyshev), and the median of 15 misses only when 8 do,
# with probability at most C(15, 8) / 36**8 < 3e-9.
N_MEDIAN = 15


def unit_vectors(count, dim):
    def normalise(A):
        norms = np.linalg.norm(A, axis=1, keepdims=True)
        return A / norms

    elements = st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)
    return (
        arrays(np.float64, (count, dim), elements=elements)
        .filter(lambda A: bool(np.all(np.linalg.norm(A, axis=1) > 1e-3)))
        .map(normalise)
    )


@st.composite
def unit_sets(draw, max_count):
    count = draw(st.integers(1, max_count))
    dim = draw(st.integers(1, 300))
    return draw(unit_vectors(count, dim))


def gram_estimates(U, kind, seed):
    """Projected Gram matrices of the rows of U: one, or N_MEDIAN for CountSketch."""
    n_sketches = N_MEDIAN if kind == "countsketch" else 1
    projected = [
        random_projection(U, M_JL, kind=kind, random_state=seed + i) for i in range(n_sketches)
    ]
    return np.median([P @ P.T for P in projected], axis=0)


@settings(max_examples=120)
@given(unit_sets(max_count=2), seeds, kinds)
def test_inner_products_within_johnson_lindenstrauss(U, seed, kind):
    x, y = U[0], U[-1]
    estimate = gram_estimates(np.stack([x, y]), kind, seed)
    assert abs(estimate[0, 1] - x @ y) <= JL_TOL


@settings(max_examples=80)
@given(unit_sets(max_count=6), seeds, kinds)
def test_squared_norms_within_johnson_lindenstrauss(U, seed, kind):
    estimate = gram_estimates(U, kind, seed)
    assert np.all(np.abs(np.diag(estimate) - 1.0) <= JL_TOL)


@pytest.mark.parametrize("kind", KINDS)
def test_gamma_gamma_transpose_is_identity_on_average(kind):
    # D spans two chunks, so rows drawn by different generators are checked too.
    n_seeds, m = 3000, 3
    rows = np.r_[0:4, _CHUNK_ROWS - 2 : _CHUNK_ROWS + 2]
    total = np.zeros((rows.size, rows.size))
    for seed in range(n_seeds):
        G = projection_block(0, _CHUNK_ROWS + 2, m, kind=kind, seed=seed)[rows]
        total += G @ G.T
    # Every entry of G G^T has a variance of at most 2/m: the mean's sigma is ~0.015.
    assert_allclose(total / n_seeds, np.eye(rows.size), atol=0.1)


# ------------------------------------------------------------------ regeneration


@given(
    st.integers(0, 3 * _CHUNK_ROWS),
    st.integers(0, 3 * _CHUNK_ROWS),
    st.integers(0, 3 * _CHUNK_ROWS),
    st.integers(1, 40),
    seeds,
    kinds,
)
def test_blocks_of_any_split_stack_into_the_whole(a, b, c, m, seed, kind):
    a, b, c = sorted((a, b, c))
    whole = projection_block(a, c, m, kind=kind, seed=seed)
    parts = [
        projection_block(a, b, m, kind=kind, seed=seed),
        projection_block(b, c, m, kind=kind, seed=seed),
    ]
    assert whole.shape == (c - a, m)
    assert_array_equal(np.concatenate(parts), whole)
    assert_array_equal(projection_block(0, c, m, kind=kind, seed=seed)[a:], whole)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_projection_is_x_times_the_block_for_every_block_size(kind, dtype, rng):
    n_features, m = 2 * _CHUNK_ROWS + 500, 16
    X = rng.standard_normal((7, n_features)).astype(dtype)
    expected = X.astype(np.float64) @ projection_block(0, n_features, m, kind=kind, seed=3)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    # Entries of X @ Gamma may cancel to near zero; scale atol by the size of the terms.
    atol = rtol * np.sqrt(n_features) * np.abs(X).max()
    for block_size in [None, 1, 7, _CHUNK_ROWS - 1, _CHUNK_ROWS, _CHUNK_ROWS + 1, 10**6]:
        P = random_projection(X, m, kind=kind, random_state=3, block_size=block_size)
        assert P.dtype == dtype and P.shape == (7, m)
        assert_allclose(P, expected, rtol=rtol, atol=atol, err_msg=f"block_size={block_size}")


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_projection_different_seed_different(kind, rng):
    X = rng.standard_normal((5, 300))
    first = random_projection(X, 32, kind=kind, random_state=11)
    assert_array_equal(random_projection(X, 32, kind=kind, random_state=11), first)
    assert_array_equal(
        random_projection(X, 32, kind=kind, random_state=np.random.RandomState(4)),
        random_projection(X, 32, kind=kind, random_state=np.random.RandomState(4)),
    )
    assert not np.allclose(random_projection(X, 32, kind=kind, random_state=12), first)
    # Seeds beyond 32 bits are seeds of their own, not their low bits.
    block = projection_block(0, 50, 8, kind=kind, seed=11)
    assert not np.array_equal(projection_block(0, 50, 8, kind=kind, seed=11 + 2**32), block)
    assert not np.array_equal(projection_block(0, 50, 8, kind=kind, seed=11 * 2**32), block)


@pytest.mark.parametrize("kind", KINDS)
def test_batches_projected_separately_stack_into_the_whole(kind, rng):
    # What streaming selectors do: one seed per fit, then one call per batch.
    X = rng.standard_normal((50, 1500))
    seed = seed_from(np.random.RandomState(0))
    batches = [
        random_projection(X[a:b], 24, kind=kind, random_state=seed)
        for a, b in [(0, 1), (1, 20), (20, 50)]
    ]
    whole = random_projection(X, 24, kind=kind, random_state=seed)
    assert_allclose(np.concatenate(batches), whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_rows_do_not_depend_on_the_number_of_features(kind, rng):
    # Features appended as zeros change nothing: row d of Gamma is fixed for every D > d.
    X = rng.standard_normal((4, 900))
    padded = np.hstack([X, np.zeros((4, 2000))])
    assert_allclose(
        random_projection(padded, 10, kind=kind, random_state=5),
        random_projection(X, 10, kind=kind, random_state=5),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_chunks_and_neighbouring_seeds_are_uncorrelated(kind):
    # Guards against chunks drawn from one stream, or from seed + chunk index.
    m = 40
    G = projection_block(0, 2 * _CHUNK_ROWS, m, kind=kind, seed=7)
    next_seed = projection_block(0, _CHUNK_ROWS, m, kind=kind, seed=8)
    first, second = G[:_CHUNK_ROWS].ravel(), G[_CHUNK_ROWS:].ravel()
    # Sample correlations of ~41,000 independent pairs have a sigma of ~0.005.
    for a, b in [(first, second), (second, next_seed.ravel()), (first, next_seed.ravel())]:
        assert abs(np.corrcoef(a, b)[0, 1]) < 0.03


def test_countsketch_chunks_and_neighbouring_seeds_hash_independently():
    m = 50
    hashes = [
        np.argmax(np.abs(projection_block(a, a + _CHUNK_ROWS, m, kind="countsketch", seed=s)), 1)
        for a, s in [(0, 7), (_CHUNK_ROWS, 7), (0, 8)]
    ]
    # Independent uniform hashes agree on a row with probability 1/m: ~20 of 1024.
    for i, j in [(0, 1), (1, 2), (0, 2)]:
        assert np.sum(hashes[i] == hashes[j]) < 60


# ----------------------------------------------------------------------- entries


def test_gaussian_entries_are_normal_with_variance_one_over_m():
    m = 50
    G = projection_block(0, 20_000, m, seed=0)
    n = G.size
    assert abs(G.mean()) < 5 * np.sqrt(1 / m / n)
    assert abs(G.var() * m - 1) < 5 * np.sqrt(2 / n)
    assert scipy.stats.kstest(G.ravel()[:100_000] * np.sqrt(m), "norm").pvalue > 1e-4


@pytest.mark.parametrize("m", [1, 3, 64])
def test_rademacher_entries_are_plus_minus_one_over_sqrt_m(m):
    G = projection_block(0, 5000, m, kind="rademacher", seed=1)
    assert_allclose(np.abs(G), 1 / np.sqrt(m), rtol=1e-15)
    positive = np.mean(G > 0)
    assert abs(positive - 0.5) < 5 * np.sqrt(0.25 / G.size)


@pytest.mark.parametrize("m", [1, 2, 50])
def test_countsketch_has_one_signed_one_per_row_in_uniform_columns(m):
    n_rows = 20_000
    C = projection_block(5, 5 + n_rows, m, kind="countsketch", seed=2)
    nonzero = C != 0
    assert_array_equal(nonzero.sum(axis=1), np.ones(n_rows))
    assert_array_equal(np.abs(C[nonzero]), np.ones(n_rows))
    assert abs(np.mean(C[nonzero] > 0) - 0.5) < 5 * np.sqrt(0.25 / n_rows)
    if m > 1:
        counts = nonzero.sum(axis=0)
        assert scipy.stats.chisquare(counts).pvalue > 1e-4


# ---------------------------------------------------------- dtypes and namespaces


@pytest.mark.parametrize("kind", KINDS)
def test_float32_stays_float32_and_matches_float64(kind, rng):
    X = rng.standard_normal((6, 700))
    P32 = random_projection(X.astype(np.float32), 30, kind=kind, random_state=0)
    P64 = random_projection(X, 30, kind=kind, random_state=0)
    assert P32.dtype == np.float32 and P64.dtype == np.float64
    assert_allclose(P32, P64, rtol=1e-4, atol=1e-4)


def test_integers_and_lists_are_projected_as_float64(rng):
    X = rng.integers(-5, 5, size=(3, 40))
    expected = X @ projection_block(0, 40, 8, seed=0)
    for data in [X, X.tolist()]:
        P = random_projection(data, 8, random_state=0)
        assert isinstance(P, np.ndarray) and P.dtype == np.float64
        assert_allclose(P, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "convert, array_type",
    [(torch.from_numpy, torch.Tensor), (array_api_strict.asarray, StrictArray)],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_other_namespaces_match_numpy(convert, array_type, kind, dtype, rng):
    X = rng.standard_normal((5, _CHUNK_ROWS + 300)).astype(dtype)
    expected = random_projection(X, 20, kind=kind, random_state=9, block_size=500)
    P = random_projection(convert(X), 20, kind=kind, random_state=9, block_size=500)
    assert isinstance(P, array_type)
    assert tuple(P.shape) == (5, 20)
    result = np.asarray(P.numpy() if isinstance(P, torch.Tensor) else P)
    assert result.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert_allclose(result, expected, rtol=tol, atol=tol * 100)


def test_projection_block_takes_the_namespace_and_dtype_of_like():
    expected = projection_block(3, 40, 6, kind="rademacher", seed=1)
    block = projection_block(3, 40, 6, kind="rademacher", seed=1, like=torch.zeros(2))
    assert isinstance(block, torch.Tensor) and block.dtype == torch.float32
    assert_allclose(block.numpy(), expected, rtol=1e-7)
    block = projection_block(
        3, 40, 6, kind="rademacher", seed=1, like=array_api_strict.asarray([1.0])
    )
    assert isinstance(block, StrictArray)
    assert_array_equal(np.asarray(block), expected)
    # A like without a floating dtype only gives its namespace.
    block = projection_block(3, 40, 6, kind="rademacher", seed=1, like=torch.zeros(2, dtype=int))
    assert block.dtype == torch.float64
    assert projection_block(0, 4, 2, seed=0, like=np.zeros(1, np.float32)).dtype == np.float32


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"n_components": 0}, "n_components"),
        ({"kind": "foo"}, "kind"),
        ({"block_size": 0}, "block_size"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": 0.5}, "random_state"),
    ],
)
def test_bad_parameters_raise_naming_the_parameter(kwargs, parameter):
    arguments = {"n_components": 4, **kwargs}
    with pytest.raises(InvalidParameterError, match=parameter):
        random_projection(np.ones((2, 3)), **arguments)


@pytest.mark.parametrize(
    "args, kwargs, parameter",
    [
        ((0, 5, 0), {"seed": 0}, "n_components"),
        ((0, 5, 2), {"seed": -1}, "seed"),
        ((0, 5, 2), {"seed": 0, "kind": "foo"}, "kind"),
        ((-1, 5, 2), {"seed": 0}, "start"),
    ],
)
def test_projection_block_bad_parameters(args, kwargs, parameter):
    with pytest.raises(InvalidParameterError, match=parameter):
        projection_block(*args, **kwargs)


def test_projection_block_checks_its_range_seed_and_like():
    with pytest.raises(ValueError, match="stop=2 is below start=5"):
        projection_block(5, 2, 3, seed=0)
    with pytest.raises(TypeError, match="seed must be a non-negative int"):
        projection_block(0, 2, 3, seed=True)
    with pytest.raises(TypeError, match="like must be an array"):
        projection_block(0, 2, 3, seed=0, like=[1.0])


def test_seed_from():
    assert seed_from(5) == 5 and type(seed_from(np.int64(5))) is int
    assert seed_from(np.random.RandomState(3)) == seed_from(np.random.RandomState(3))
    state = np.random.RandomState(3)
    assert seed_from(state) != seed_from(state)  # each call draws
    assert 0 <= seed_from(None) < 2**31
    with pytest.raises(ValueError, match="random_state=-3 is negative"):
        seed_from(-3)


def test_nan_and_one_dimensional_input_are_rejected():
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains NaN or infinity in 1 row\(s\): \[2\]"):
        random_projection(X, 2)
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        random_projection(np.ones(3), 2)


@pytest.mark.parametrize("kind", KINDS)
def test_input_is_not_modified(kind, rng):
    X = rng.standard_normal((6, 2500))
    X.flags.writeable = False  # any write raises
    before = X.copy()
    random_projection(X, 8, kind=kind, random_state=0, block_size=1000)
    assert_array_equal(X, before)
    T = torch.from_numpy(X.astype(np.float32))
    T_before = T.clone()
    random_projection(T, 8, kind=kind, random_state=0, block_size=1000)
    assert torch.equal(T, T_before)


@settings(deadline=None, max_examples=25)
@given(st.sampled_from(["gaussian", "rademacher", "countsketch"]), st.integers(1, 2500),
       st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_batches_projected_with_reused_rows_are_the_projection_of_all(kind, d, n_batches, seed):
    # A source is projected batch by batch with Gamma's rows drawn once for all batches.
    from sketchsel.linalg._projection import _random_projection, reusable_rows

    X = np.random.default_rng(seed).standard_normal((6 * n_batches, d))
    rows = reusable_rows(kind, seed, 8, d)
    batches = [_random_projection(np, part, 8, kind, seed, rows=rows)
               for part in np.array_split(X, n_batches)]
    assert_allclose(np.vstack(batches), _random_projection(np, X, 8, kind, seed),
                    rtol=1e-12, atol=1e-12)
    assert len(rows._chunks) == -(-d // _CHUNK_ROWS)  # every chunk drawn once, then kept
    # Beyond the bytes kept, only the last chunk is.
    assert reusable_rows(kind, seed, 4096, 10**6).keep == 1
