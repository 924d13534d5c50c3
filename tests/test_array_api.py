"""Inputs from any framework, the back-end setting, and agreement between namespaces."""

import subprocess
import sys
import threading

import array_api_strict
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

import sketchsel
from sketchsel import FrequentDirections, config_context, get_config, set_config
from sketchsel._array_api import (
    capped_rows,
    check_array,
    gpu_available,
    resolve_backend,
    row_norms,
    to_numpy,
)

needs_gpu = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")


def matrix(dtype=np.float64):
    rng = np.random.default_rng(42)
    return (rng.standard_normal((600, 24)) * 0.8 ** np.arange(24)).astype(dtype)


def gram(fd):
    B = to_numpy(fd.sketch_).astype(np.float64)
    return B.T @ B


INPUTS = {
    "numpy": lambda A: A,
    "list": lambda A: A.tolist(),
    "torch": lambda A: torch.from_numpy(A),
    "array_api_strict": lambda A: array_api_strict.asarray(A),
}


@pytest.mark.parametrize("backend", ["numpy", "array_api"])
@pytest.mark.parametrize("kind", sorted(INPUTS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_size", [8, 40])  # row-buffer route, Gram route (D = 24)
def test_every_namespace_gives_the_numpy_sketch(kind, backend, dtype, block_size):
    A = matrix(dtype)
    params = dict(sketch_size=8, n_components=3, block_size=block_size)
    reference = FrequentDirections(**params, backend="numpy").fit(A)
    fd = FrequentDirections(**params, backend=backend).fit(INPUTS[kind](A))
    tol = 1e-10 if dtype == np.float64 else 1e-4
    scale = reference.squared_norm_
    assert_allclose(gram(fd), gram(reference), atol=tol * scale)
    assert fd.covariance_error_bound() == pytest.approx(
        reference.covariance_error_bound(), rel=tol, abs=tol * scale
    )
    assert_allclose(
        to_numpy(fd.singular_values_), reference.singular_values_, rtol=tol, atol=tol
    )
    projected = to_numpy(fd.transform(INPUTS[kind](A[:5])))
    assert_allclose(np.abs(projected), np.abs(reference.transform(A[:5])), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "kind, module",
    [("torch", torch), ("array_api_strict", array_api_strict), ("numpy", np)],
)
def test_array_api_backend_keeps_the_input_namespace(kind, module):
    fd = FrequentDirections(4, backend="array_api").fit(INPUTS[kind](matrix()))
    assert type(fd.sketch_).__module__.split(".")[0] == module.__name__
    assert type(fd.components_) is type(fd.sketch_)


def test_numpy_backend_converts_torch_without_touching_it():
    A = torch.from_numpy(matrix()).requires_grad_(True)
    before = A.detach().clone()
    fd = FrequentDirections(4, backend="numpy").fit(A)
    assert isinstance(fd.sketch_, np.ndarray)
    assert torch.equal(A.detach(), before)


def test_half_precision_torch_becomes_float32():
    X, _ = check_array(torch.ones((3, 2), dtype=torch.bfloat16), backend="numpy")
    assert X.dtype == np.float32
    X, xp = check_array(torch.ones((3, 2), dtype=torch.float16), backend="array_api")
    assert X.dtype == torch.float32


def test_check_array_returns_the_input_when_nothing_to_convert():
    A = matrix()
    X, _ = check_array(A, backend="numpy")
    assert X is A


def test_non_finite_rows_are_named_for_every_namespace():
    A = matrix()
    A[[3, 7]] = np.nan
    for kind in INPUTS:
        with pytest.raises(ValueError, match=r"2 row\(s\): \[3, 7\]"):
            check_array(INPUTS[kind](A), backend="array_api")


def test_auto_backend_computes_host_data_with_numpy_even_where_a_gpu_is_present():
    assert resolve_backend("auto", matrix()) == "numpy"
    assert resolve_backend(None, torch.zeros((2, 2))) == "numpy"
    assert resolve_backend("auto", [[1.0, 2.0]]) == "numpy"


def test_cupy_backend_without_cupy_says_how_to_fix():
    if gpu_available():
        pytest.skip("CuPy is available here")
    with pytest.raises(ImportError, match=r"sketchsel\[cupy\]"):
        FrequentDirections(2, backend="cupy").fit(matrix())


def test_global_backend_setting_and_context():
    assert get_config() == {"backend": "auto"}
    with config_context(backend="array_api"):
        fd = FrequentDirections(3).fit(torch.from_numpy(matrix()))
        assert isinstance(fd.sketch_, torch.Tensor)
        # The estimator's own parameter wins over the global setting.
        fd = FrequentDirections(3, backend="numpy").fit(torch.from_numpy(matrix()))
        assert isinstance(fd.sketch_, np.ndarray)
    assert get_config()["backend"] == "auto"
    set_config(backend="numpy")
    assert get_config()["backend"] == "numpy"


def test_config_is_per_thread():
    seen = {}
    with config_context(backend="array_api"):
        thread = threading.Thread(target=lambda: seen.update(get_config()))
        thread.start()
        thread.join()
    assert seen["backend"] == "auto"


@pytest.mark.parametrize("bad", ["gpu", 1])
def test_unknown_backend_is_rejected(bad):
    with pytest.raises(ValueError, match="backend must be one of"):
        set_config(backend=bad)
    with pytest.raises(ValueError, match="backend must be one of"):
        with config_context(backend=bad):
            pass


def test_importing_sketchsel_imports_neither_torch_nor_cupy_nor_numba():
    """Numba loads with the first kernel that runs, not on import."""
    code = (
        "import sys, sketchsel, sketchsel.linalg; "
        "print(sorted(m for m in ('torch', 'cupy', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert sketchsel.__version__


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "auto"])
def test_cupy_sketch_matches_numpy(backend):
    import cupy

    A = matrix(np.float32)
    reference = FrequentDirections(8, block_size=40, backend="numpy").fit(A)
    fd = FrequentDirections(8, block_size=40, backend=backend).fit(cupy.asarray(A))
    assert isinstance(fd.sketch_, cupy.ndarray)
    assert_allclose(gram(fd), gram(reference), atol=1e-4 * reference.squared_norm_)


@needs_gpu
@pytest.mark.gpu
def test_torch_cuda_input_stays_on_the_gpu():
    import cupy

    A = torch.from_numpy(matrix()).cuda()
    fd = FrequentDirections(8, backend="auto").fit(A)
    assert isinstance(fd.sketch_, cupy.ndarray)
    reference = FrequentDirections(8, backend="numpy").fit(matrix())
    assert_allclose(gram(fd), gram(reference), atol=1e-9 * reference.squared_norm_)


def _selection_problem():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 600)
    G = rng.standard_normal((600, 40)) * 0.9 ** np.arange(40) + np.eye(3)[y] @ rng.standard_normal(
        (3, 40))
    return G * rng.uniform(0.2, 5.0, (600, 1)), y


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize(
    "make",
    [
        lambda: sketchsel.AgreementSelector(n_select=0.1, sketch_size=32, random_state=0),
        lambda: sketchsel.AgreementSelector(n_select=0.1, sketch_size=32, strategy="diverse"),
        lambda: sketchsel.AgreementSelector(n_select=0.1, sketch_size=32, strategy="stratified",
                                            random_state=0),
        lambda: sketchsel.FastMaxVol(n_select=0.1, random_state=0),
        lambda: sketchsel.FastMaxVol(n_select=0.1, strategy="maxvol"),
        lambda: sketchsel.FastMaxVol(n_select=0.3, strategy="maxvol"),
        lambda: sketchsel.MomentMatchingSelector(n_select=0.1, sketch_size=32, random_state=0),
        lambda: sketchsel.MomentMatchingSelector(n_select=0.1, sketch_size=32,
                                                 strategy="moments", random_state=0),
        lambda: sketchsel.MomentMatchingSelector(n_select=0.1, sketch_size=32,
                                                 strategy="moments", fallback=None,
                                                 class_balance=None, random_state=0),
    ],
    ids=["agreement-thinning", "agreement-diverse", "agreement-stratified", "fast_maxvol",
         "maxvol-unit-rows", "maxvol-raw", "moment", "moment-fallback", "moment-program"],
)
def test_selectors_choose_on_cupy_what_they_choose_on_numpy(make):
    import cupy

    G, y = _selection_problem()
    on_cpu = make().fit(G, y)
    on_gpu = make().fit(cupy.asarray(G), y)
    assert on_gpu.select().tolist() == on_cpu.select().tolist()


# Entries whose squares are normal float32 numbers: smaller ones underflow in any float32
# norm (NumPy's vector_norm too).
@given(arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 40)),
              elements=st.floats(-1e3, 1e3, width=32).filter(lambda v: v == 0 or abs(v) > 1e-18)))
def test_row_norms_are_the_rows_euclidean_norms_in_their_dtype(Z):
    norms = row_norms(np, Z)
    assert norms.dtype == Z.dtype
    assert_allclose(norms, np.linalg.norm(Z.astype(np.float64), axis=1), rtol=1e-5, atol=1e-30)


@given(
    arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 5)),
           elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
    st.floats(1e-3, 1e3),
)
def test_capped_rows_shorten_only_the_rows_above_the_cap_and_keep_their_direction(Z, cap):
    given_rows = Z.copy()
    capped = capped_rows(np, Z, cap)
    norms, new_norms = np.linalg.norm(Z, axis=1), np.linalg.norm(capped, axis=1)
    assert_array_equal(Z, given_rows)
    assert np.all(new_norms <= cap * (1 + 1e-12))
    short = norms <= cap
    assert_array_equal(capped[short], Z[short])
    assert_allclose(new_norms[~short], cap, rtol=1e-12)
    assert_allclose(capped[~short] * (norms[~short] / cap)[:, None], Z[~short], rtol=1e-9)
    # Norms the caller already has give the same rows.
    assert_array_equal(capped_rows(np, Z, cap, row_norms(np, Z)), capped)


@needs_gpu
@pytest.mark.gpu
def test_auto_keeps_numpy_input_on_the_cpu_where_a_gpu_is_present():
    G, y = _selection_problem()
    fd = FrequentDirections(8).fit(G)
    assert isinstance(fd.sketch_, np.ndarray) and isinstance(fd.transform(G), np.ndarray)
    selector = sketchsel.MomentMatchingSelector(n_select=60, sketch_size=16, random_state=3)
    assert isinstance(selector.project(G), np.ndarray)
    maxvol = sketchsel.FastMaxVol(n_select=60, strategy="maxvol").fit(G)
    assert isinstance(maxvol.coefficients_, np.ndarray)
    assert isinstance(sketchsel.AgreementSelector(n_select=60).fit(G, y).components_, np.ndarray)
