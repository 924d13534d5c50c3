"""Global configuration: which back-end computes, set once or per context."""

import threading
from contextlib import contextmanager

BACKENDS = ("auto", "numpy", "cupy", "array_api")

_global_config = {"backend": "auto"}
_threadlocal = threading.local()


def _get_threadlocal_config():
    # Each thread starts from the global defaults so that a config_context
    # in one thread never leaks into another.
    if not hasattr(_threadlocal, "config"):
        _threadlocal.config = _global_config.copy()
    return _threadlocal.config


def _check_backend(backend, *, allow_none=False):
    if backend is None and allow_none:
        return
    if backend not in BACKENDS:
        raise ValueError(
            f"backend must be one of {', '.join(map(repr, BACKENDS))}"
            f"{' or None' if allow_none else ''}; got {backend!r}."
        )


def get_config():
    """Return the current sketchsel configuration.

    Returns
    -------
    config : dict
        Keys are parameter names that can be passed to :func:`set_config`.

    See Also
    --------
    config_context : Context manager for a temporary configuration.
    set_config : Set the configuration.

    Examples
    --------
    >>> import sketchsel
    >>> sketchsel.get_config()["backend"]
    'auto'
    """
    return _get_threadlocal_config().copy()


def set_config(backend=None):
    """Set the sketchsel configuration for the current thread.

    Parameters
    ----------
    backend : {"auto", "numpy", "cupy", "array_api"}, default=None
        Where estimators compute when their own ``backend`` parameter is None.

        - ``"auto"``: compute where the data is. Arrays on a GPU stay
          there (CuPy, or the array's own namespace when CuPy is missing);
          other input is computed on by NumPy, so NumPy in gives NumPy out
          on every machine. Ask for ``"cupy"`` to move host data to a GPU.
        - ``"numpy"``: convert every input to NumPy (zero-copy for CPU
          arrays) and compute on the CPU.
        - ``"cupy"``: move every input to the current CuPy device
          (zero-copy through DLPack for CUDA tensors).
        - ``"array_api"``: compute in the input's own namespace and device
          (PyTorch, JAX, array-api-strict, ...), the way scikit-learn's
          ``array_api_dispatch`` does.

        None leaves the setting unchanged.

    See Also
    --------
    config_context : Context manager for a temporary configuration.
    get_config : Retrieve the current configuration.

    Examples
    --------
    >>> import sketchsel
    >>> sketchsel.set_config(backend="numpy")
    >>> sketchsel.get_config()["backend"]
    'numpy'
    >>> sketchsel.set_config(backend="auto")
    """
    _check_backend(backend, allow_none=True)
    if backend is not None:
        _get_threadlocal_config()["backend"] = backend


@contextmanager
def config_context(*, backend=None):
    """Temporarily change the sketchsel configuration.

    Parameters
    ----------
    backend : {"auto", "numpy", "cupy", "array_api"}, default=None
        See :func:`set_config`. None keeps the current setting.

    Yields
    ------
    None

    See Also
    --------
    set_config : Set the configuration.
    get_config : Retrieve the current configuration.

    Examples
    --------
    >>> import sketchsel
    >>> with sketchsel.config_context(backend="numpy"):
    ...     sketchsel.get_config()["backend"]
    'numpy'
    >>> sketchsel.get_config()["backend"]
    'auto'
    """
    _check_backend(backend, allow_none=True)
    old = get_config()
    set_config(backend=backend)
    try:
        yield
    finally:
        set_config(**old)
