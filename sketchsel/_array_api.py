"""Arrays from any framework, moved to the compute namespace and validated.

Every estimator goes through :func:`check_array`: it picks the namespace the
back-end asks for (see :func:`sketchsel.set_config`), converts without copying
where it can, and checks what every numerical routine here assumes: 2-D,
non-empty, real numbers (complex where a routine allows it), finite. The
caller's array is never written to.
"""

import cmath
import functools
import math

import array_api_compat
import numpy as np
import scipy.sparse
import sklearn
from array_api_compat import (
    array_namespace,
    is_array_api_obj,
    is_cupy_array,
    is_jax_array,
    is_torch_array,
)

from ._config import _check_backend, get_config

# Elements checked at once when looking for non-finite rows.
_CHECK_ELEMENTS = 2**22

__all__ = [
    "array_namespace",
    "check_array",
    "device",
    "gpu_available",
    "resolve_backend",
    "to_numpy",
]


@functools.cache
def gpu_available():
    """Whether CuPy is installed and sees at least one GPU.

    CuPy is imported here, on first use, never when sketchsel is imported.
    """
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or a CUDA runtime error on a machine without a driver
        return False


def _on_gpu(x):
    if is_cupy_array(x):
        return True
    if is_torch_array(x):
        return x.device.type == "cuda"
    if is_jax_array(x):
        return any(d.platform == "gpu" for d in x.devices())
    return False


def resolve_backend(backend, X):
    """Return the concrete back-end, ``"numpy"``, ``"cupy"`` or ``"array_api"``, for X.

    ``backend=None`` takes the global setting of :func:`sketchsel.set_config`.
    ``"auto"`` computes where the data is: arrays on a GPU stay there, other
    input stays on the CPU, so that results come back in the caller's namespace
    (scikit-learn's convention) and no transfer is paid without asking.
    """
    if backend is None:
        backend = get_config()["backend"]
    _check_backend(backend)
    if backend != "auto":
        return backend
    if is_cupy_array(X):
        return "cupy"
    if _on_gpu(X):
        return "cupy" if gpu_available() else "array_api"
    return "numpy"


def to_numpy(x):
    """Return x as a NumPy array, without a copy where the memory allows it."""
    if isinstance(x, np.ndarray):
        return x
    if is_cupy_array(x):
        return x.get()
    if is_torch_array(x):
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.element_size() < 4:
            # NumPy has no bfloat16; half precision is widened like everywhere else here.
            x = x.float()
        return x.numpy()
    if is_array_api_obj(x) and hasattr(x, "__dlpack__") and not is_jax_array(x):
        return np.from_dlpack(x)
    return np.asarray(x)


def _convert(X, backend):
    if backend == "numpy":
        return to_numpy(X)
    if backend == "cupy":
        try:
            import cupy
        except ImportError as exc:
            raise ImportError(
                "backend='cupy' needs CuPy and a CUDA GPU: pip install 'sketchsel[cupy]', "
                "or use backend='auto' or 'numpy'."
            ) from exc

        if is_cupy_array(X):
            return X
        if _on_gpu(X):
            return cupy.from_dlpack(X)
        return cupy.asarray(to_numpy(X))
    return X if is_array_api_obj(X) else to_numpy(X)


def _as_float(X, xp, name, allow_complex):
    """Keep float32/float64 (and complex64/complex128 where allowed); widen integers,
    booleans and half floats."""
    if isinstance(X, np.ndarray) and X.dtype.kind in "OUSV":
        try:
            return X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must hold real numbers; converting it to float64 failed: {exc}"
            ) from exc
    dtype = X.dtype
    if xp.isdtype(dtype, "complex floating"):
        if allow_complex and dtype in (xp.complex64, xp.complex128):
            return X
        raise ValueError(
            f"Complex data not supported: {name} has dtype {dtype}. "
            f"Pass the real part, or real and imaginary parts as separate features."
        )
    if dtype in (xp.float32, xp.float64):
        return X
    if xp.isdtype(dtype, "real floating"):
        return xp.astype(X, xp.float32)
    if xp.isdtype(dtype, ("integral", "bool")):
        return xp.astype(X, xp.float64)
    raise TypeError(f"{name} must hold real numbers; got dtype {dtype}.")


def _nonfinite_rows(X, xp):
    """Indices of the rows of X holding NaN or infinity, in O(1) extra memory when none do."""
    # NaN and infinity propagate through a sum, so a finite total proves every
    # entry finite without an n x D boolean temporary; a total that overflowed
    # from finite entries only falls through to the exact check.
    total = xp.sum(X)
    if xp.isdtype(X.dtype, "complex floating"):
        finite = cmath.isfinite(complex(total))
    else:
        finite = math.isfinite(float(total))
    if finite:
        return np.empty(0, dtype=np.intp)
    n = X.shape[0]
    step = max(1, _CHECK_ELEMENTS // X.shape[1])
    finite = [
        to_numpy(xp.all(xp.isfinite(X[start : min(start + step, n), :]), axis=1))
        for start in range(0, n, step)
    ]
    return np.flatnonzero(~np.concatenate(finite))


def check_array(X, *, name="X", backend=None, allow_complex=False):
    """Validate X and return it, with its namespace, in the compute namespace.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NumPy, CuPy, PyTorch, JAX or any array-API array, or nested lists.
    name : str, default="X"
        Name of the argument, used in error messages.
    backend : {"auto", "numpy", "cupy", "array_api"} or None, default=None
        Back-end; None takes the global setting.
    allow_complex : bool, default=False
        Accept complex64 and complex128 as they are, for the routines that
        are defined on complex matrices (the maxvol family).

    Returns
    -------
    X : array of shape (n_samples, n_features)
        float32 when X was float32 (or a narrower float), float64 otherwise;
        complex input keeps its dtype where ``allow_complex`` is True.
        The caller's array itself, or a view of its memory, when no
        conversion was needed: callers must not write to it.
    xp : namespace
        The array-API namespace of the returned array.

    Raises
    ------
    TypeError
        For sparse matrices and non-numeric data.
    ValueError
        For complex data (unless ``allow_complex``), arrays that are not 2-D, empty arrays and
        non-finite values (the message names the offending rows; not
        checked under ``sklearn.config_context(assume_finite=True)``).

    Examples
    --------
    >>> from sketchsel._array_api import check_array
    >>> X, xp = check_array([[1, 2], [3, 4]], backend="numpy")
    >>> X.dtype, X.shape
    (dtype('float64'), (2, 2))
    """
    if scipy.sparse.issparse(X):
        raise TypeError(
            f"{name} is a sparse matrix, and sketchsel needs dense input. Convert it with "
            f"{name}.toarray(), or pass it in dense row blocks to partial_fit."
        )
    try:
        X = _convert(X, resolve_backend(backend, X))
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"{name} could not be read as a 2-D array: {exc}") from exc
    xp = array_namespace(X)
    X = _as_float(X, xp, name, allow_complex)
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead: {name} has shape "
            f"{tuple(X.shape)}. Reshape your data either using array.reshape(-1, 1) if your "
            f"data has a single feature or array.reshape(1, -1) if it contains a single sample."
        )
    for axis, what in enumerate(("sample", "feature")):
        if X.shape[axis] < 1:
            raise ValueError(
                f"{name} is empty: found 0 {what}(s) (shape={tuple(X.shape)}) while a minimum "
                f"of 1 is required."
            )
    # As in scikit-learn's check_array, assume_finite skips the check (of arrays validated
    # already).
    bad = np.empty(0, dtype=np.intp) if sklearn.get_config()["assume_finite"] else (
        _nonfinite_rows(X, xp))
    if bad.size:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if bad.size > 10 else "")
        raise ValueError(
            f"{name} contains NaN or infinity in {bad.size} row(s): [{shown}]. Drop or impute "
            f"those rows first (for example with sklearn.impute.SimpleImputer)."
        )
    return X, xp


def device(x):
    """The device of an array, for creating arrays beside it."""
    return array_api_compat.device(x)


def row_norms(xp, Z):
    """The Euclidean norm of each row of Z, in its dtype.

    By ``vecdot``, one pass over the rows: on NumPy a fifth of the time of
    ``vector_norm``, which squares the rows into a temporary first.
    """
    return xp.sqrt(xp.vecdot(Z, Z))


def unit_rows(xp, Z, norms=None):
    """Rows scaled to unit Euclidean norm; zero rows stay zero.

    ``norms``: the rows' Euclidean norms, where the caller has them already.
    """
    if norms is None:
        norms = row_norms(xp, Z)
    return Z / xp.where(norms > 0, norms, 1.0)[:, None]


def median_norm(norms):
    """Median of the non-zero row norms given in parts, or None when every row is zero."""
    norms = np.concatenate([np.asarray(to_numpy(part), dtype=np.float64) for part in norms])
    norms = norms[norms > 0]
    return float(np.median(norms)) if norms.size else None


def capped_rows(xp, Z, cap, norms=None):
    """Rows whose Euclidean norm exceeds ``cap > 0`` scaled down to it; the others as given.

    ``norms``: the rows' Euclidean norms, where the caller has them already.
    """
    if norms is None:
        norms = row_norms(xp, Z)
    return Z * cap_factors(xp, norms, cap)[:, None]


def cap_factors(xp, norms, cap):
    """The factor that scales each row of the given norms down to ``cap > 0``, or 1."""
    return cap / xp.maximum(norms, cap)
