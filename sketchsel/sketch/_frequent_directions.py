"""Frequent Directions: a deterministic, mergeable streaming sketch of a matrix."""

from numbers import Integral
from typing import Any, NamedTuple

from array_api_compat import is_dask_array
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._array_api import array_namespace, check_array, device, resolve_backend, to_numpy
from .._config import BACKENDS
from ._dask import sketch_dask
from ._shrink import gram64, plan_blocks, shrink, shrink_gram


class _Readout(NamedTuple):
    """What the sketch shows of its state, pending rows included."""

    sketch64: Any  # the sketch in float64, as merges use it
    sketch: Any  # sketch_, rows s_i v_i^T in the data's dtype
    singular_values: Any
    components: Any  # orthonormal right singular vectors, sign-fixed
    shrinkage: float  # Delta, accumulated in float64
    rounding: float  # bound on the change of B^T B from rounding sketch to the data's dtype


class FrequentDirections(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Frequent Directions sketch of a stream of rows.

    Keeps an ``l x D`` matrix ``B`` (``l = min(sketch_size, n_features)``)
    whose covariance ``B^T B`` approximates ``A^T A`` for the stream of rows
    ``A`` seen so far, in O(l D) memory plus one block of rows, whatever the
    number of rows. The guarantee is deterministic and certified: with
    ``Delta`` the accumulated shrinkage (:meth:`covariance_error_bound`),

    - ``0 <= x^T (A^T A - B^T B) x <= Delta`` for every unit vector x, so
      ``||A^T A - B^T B||_2 <= Delta``;
    - ``Delta <= ||A - A_k||_F^2 / (l + 1 - k)`` for every ``0 <= k <= l``,
      ``A_k`` the best rank-k approximation of A;
    - ``Delta <= (||A||_F^2 - ||B||_F^2) / (l + 1)``;
    - the sketch is exact (``Delta = 0``) when ``rank(A) <= l``.

    Sketches of parts of a stream combine with :meth:`merge` into a sketch of
    the whole with the same guarantees, in any order and any tree.

    Each shrink stacks the current sketch and the new rows, computes the
    eigendecomposition of their Gram matrix in float64, and lowers every
    squared singular value by ``delta = lambda_{l+1}``, the (l+1)-th largest
    eigenvalue. This is the block form of Frequent Directions (Liberty 2013;
    Ghashami et al. 2016); shrinking by the (l+1)-th rather than the l-th
    eigenvalue keeps l directions instead of l - 1, whence the ``l + 1 - k``
    denominator. New rows reach the shrink by one of two routes, chosen from
    n_features:

    - Gram (the default up to 2048 features, while the ``D x D`` float64 Gram
      matrix and its shrink fit in 128 MiB): rows are folded at once into the
      Gram matrix, and the shrink runs every ``block_size`` rows, or only when
      the sketch is read, which gives the best possible rank-l sketch, so the
      error and its bound never grow with sketch_size;
    - row buffer (the default above): rows wait in a buffer until
      ``block_size`` have arrived, and the ``(l + block_size)``-square Gram
      matrix of the stacked rows is decomposed.

    Either way the shrink points depend only on the sequence of rows, never on
    how it was split into :meth:`partial_fit` calls, and the work per row is
    a matrix product.

    Parameters
    ----------
    sketch_size : int, default=64
        Number of rows l of the sketch. Values above n_features give an exact
        sketch with n_features rows.
    n_components : int, default=None
        Number of leading right singular vectors of the sketch kept in
        ``components_`` and used by :meth:`transform`. None keeps all
        ``min(sketch_size, n_features)``.
    block_size : int or "auto", default="auto"
        Rows absorbed between two shrinks. Larger blocks mean fewer
        eigendecompositions and a smaller error; with the row buffer they cost
        ``block_size x n_features`` memory. "auto" takes the Gram route up to
        2048 features and above it the fastest row-buffer block by a cost
        model, within 128 MiB; the plan depends only on sketch_size,
        n_features and the dtype, so a given stream always gives the same
        sketch.
    backend : {"auto", "numpy", "cupy", "array_api"}, default=None
        Where to compute; None uses the global setting of
        :func:`sketchsel.set_config`. The fitted arrays live in that
        namespace and device.

    Attributes
    ----------
    sketch_ : array of shape (l, n_features)
        The sketch B, rows ``sigma_i v_i^T`` with decreasing ``sigma_i``, zero
        rows when fewer than l directions have been seen. Includes every
        row passed so far.
    components_ : array of shape (``n_components_``, n_features)
        Orthonormal leading right singular vectors of the sketch.
    singular_values_ : array of shape (``n_components_``,)
        Singular values of the sketch for ``components_``.
    n_components_ : int
        Number of components kept.
    shrinkage_ : float
        Accumulated shrinkage Delta, in float64, including that of merged
        sketches and of absorbing the rows that wait for a full block; see
        :meth:`covariance_error_bound`.
    squared_norm_ : float
        ``||A||_F^2`` of all rows seen, accumulated in float64.
    n_samples_seen_ : int
        Number of rows seen, merged sketches included.
    n_shrinks_ : int
        Number of shrink steps (eigendecompositions) so far.
    block_size_ : int or None
        The block size in use; None when rows are folded into the Gram matrix
        and shrunk only when the sketch is read.
    n_features_in_ : int
        Number of features seen during the first :meth:`partial_fit`.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features, defined only when X has string column names.

    See Also
    --------
    sklearn.decomposition.IncrementalPCA : Centred incremental PCA, with
        neither an error guarantee nor merging.
    sklearn.utils.extmath.randomized_svd : In-memory randomized SVD.

    Notes
    -----
    The sketch is of the uncentred rows (``A^T A``, not the covariance about
    the mean), as gradient sketches need. Memory is O((l + b) D) with the row
    buffer and O(D^2) with the Gram route, whatever the number of rows.

    The guarantees hold in exact arithmetic. In floating point the state is
    kept in float64 whatever the data's dtype (``l x D`` doubles), the Gram
    products of float32 rows are summed in float64 every 16,384 rows,
    and ``Delta`` and ``||A||_F^2`` are accumulated in float64, so round-off
    does not build up over long streams: the error can exceed the bound only
    by the round-off of one Gram product of the data's dtype, and
    :meth:`covariance_error_bound` covers the final rounding of a float32
    ``sketch_``.

    References
    ----------
    .. [1] E. Liberty, "Simple and deterministic matrix sketching", KDD 2013.
    .. [2] M. Ghashami, E. Liberty, J. M. Phillips and D. P. Woodruff,
       "Frequent Directions: simple and deterministic matrix sketching",
       SIAM J. Comput. 45(5), 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel import FrequentDirections
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((1000, 50)) @ np.diag(0.9 ** np.arange(50))
    >>> fd = FrequentDirections(sketch_size=10, backend="numpy").fit(A)
    >>> fd.sketch_.shape
    (10, 50)
    >>> error = np.linalg.norm(A.T @ A - fd.sketch_.T @ fd.sketch_, 2)
    >>> bound = fd.covariance_error_bound()
    >>> bool(error <= bound * (1 + 1e-9))  # the bound holds up to round-off
    True

    Streaming in chunks gives the same sketch, and sketches of parts merge:

    >>> fd_stream = FrequentDirections(sketch_size=10, backend="numpy")
    >>> for chunk in np.array_split(A, 7):
    ...     _ = fd_stream.partial_fit(chunk)
    >>> bool(np.allclose(fd_stream.sketch_, fd.sketch_))
    True
    >>> left = FrequentDirections(10, backend="numpy").fit(A[:400])
    >>> right = FrequentDirections(10, backend="numpy").fit(A[400:])
    >>> merged = left.merge(right)
    >>> merged.n_samples_seen_
    1000
    >>> error = np.linalg.norm(A.T @ A - merged.sketch_.T @ merged.sketch_, 2)
    >>> bool(error <= merged.covariance_error_bound() * (1 + 1e-9))
    True
    """

    _parameter_constraints = {
        "sketch_size": [Interval(Integral, 1, None, closed="left")],
        "n_components": [Interval(Integral, 1, None, closed="left"), None],
        "block_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "backend": [StrOptions(set(BACKENDS)), None],
    }

    def __init__(self, sketch_size=64, *, n_components=None, block_size="auto", backend=None):
        self.sketch_size = sketch_size
        self.n_components = n_components
        self.block_size = block_size
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Sketch the rows of X, forgetting any earlier stream.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to sketch, from any array library. A Dask array is sketched
            where it lives: one sketch per block of rows, merged up a tree
            (:func:`dask.array.reduction`) with the scheduler in effect, with
            the guarantee of one stream; only sketches travel.
        y : None
            Ignored.

        Returns
        -------
        self : FrequentDirections
            The fitted sketch.
        """
        if is_dask_array(X):
            return self._adopt(self._sketch_dask(X))
        self._partial_fit(X, reset=True)
        self._readout()
        return self

    def _sketch_dask(self, X):
        # Cloned here, so that each task carries the parameters, not a fitted state.
        template = clone(self)
        return sketch_dask(lambda: clone(template), X)

    def _adopt(self, sketch):
        """Take the fitted state of another sketch with the same parameters."""
        # Drop the state of an earlier fit first: the new one need not set all of it
        # (feature_names_in_, for one).
        for name in [n for n in self.__dict__ if n.endswith("_") or n.startswith("_state")]:
            del self.__dict__[name]
        self.__dict__.update(sketch.__dict__)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add the rows of X to the sketch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to add. The first call fixes n_features, the dtype and the
            namespace of the sketch; later batches are converted to them. A
            Dask array is sketched as in :meth:`fit`, then merged in.
        y : None
            Ignored.

        Returns
        -------
        self : FrequentDirections
            The updated sketch.
        """
        if is_dask_array(X):
            blocks = self._sketch_dask(X)
            return self.merge(blocks) if hasattr(self, "n_samples_seen_") else self._adopt(blocks)
        return self._partial_fit(X, reset=not hasattr(self, "n_samples_seen_"))

    def _partial_fit(self, X, *, reset):
        backend = resolve_backend(self.backend, X) if reset else self._state_backend
        X, xp = self._validate(X, backend, reset=reset)
        if reset:
            self._start(X, xp, backend)
        elif X.dtype != self._state_dtype:
            X = xp.astype(X, self._state_dtype)
        self._absorb(X, xp)
        return self

    def _validate(self, X, backend, *, reset):
        Xc, xp = check_array(X, backend=backend)
        validate_data(self, X=X, reset=reset, skip_check_array=True)
        if not reset:
            state_xp = array_namespace(self._state_sketch)
            if xp is not state_xp:
                Xc = state_xp.asarray(to_numpy(Xc), device=device(self._state_sketch))
                xp = state_xp
        return Xc, xp

    def _start(self, X, xp, backend):
        n_features = X.shape[1]
        rows = min(self.sketch_size, n_features)
        if self.n_components is not None and self.n_components > rows:
            raise ValueError(
                f"n_components={self.n_components} must be <= min(sketch_size, n_features) = "
                f"{rows}; lower n_components or raise sketch_size."
            )
        self._state_backend = backend
        self._state_route, self.block_size_ = plan_blocks(
            rows, n_features, xp.finfo(X.dtype).bits // 8, self.block_size
        )
        self._state_dtype = X.dtype
        self._state_sketch = xp.zeros((rows, n_features), dtype=xp.float64, device=device(X))
        self._state_shrinkage = 0.0
        self._clear_pending()
        self.n_samples_seen_ = 0
        self.n_shrinks_ = 0
        self.squared_norm_ = 0.0

    def _clear_pending(self):
        self._state_pending = []  # route "rows": row blocks waiting for a full block
        self._state_gram = None  # route "gram": their D x D Gram matrix, in float64
        self._state_n_pending = 0
        self._state_readout = None

    def _absorb(self, X, xp):
        n, start = X.shape[0], 0
        block = self.block_size_
        while start < n:
            take = n - start if block is None else min(n - start, block - self._state_n_pending)
            rows = X[start : start + take, :]
            start += take
            self.n_samples_seen_ += take
            self.squared_norm_ += float(xp.sum(xp.vecdot(rows, rows), dtype=xp.float64))
            self._state_n_pending += take
            self._state_readout = None
            full = block is not None and self._state_n_pending == block
            if self._state_route == "gram":
                gram = gram64(xp, rows)
                self._state_gram = gram if self._state_gram is None else self._state_gram + gram
            else:
                # Rows that wait are copied: the caller may overwrite its array meanwhile.
                self._state_pending.append(rows if full else xp.asarray(rows, copy=True))
            if full:
                self._state_sketch, delta = self._collapse(xp)
                self._state_shrinkage += delta
                self.n_shrinks_ += 1
                self._clear_pending()

    def _collapse(self, xp):
        """Sketch of the state sketch and the pending rows, and its shrinkage."""
        sketch = self._state_sketch
        if self._state_route == "rows":
            return shrink(xp, sketch, self._state_pending, sketch.shape[0])
        return shrink_gram(xp, gram64(xp, sketch) + self._state_gram, sketch.shape[0])

    def _readout(self):
        """The sketch with the pending rows, in float64 and in the data's dtype.

        Computed once per state; see :class:`_Readout`.
        """
        check_is_fitted(self)
        if self._state_readout is None:
            xp = array_namespace(self._state_sketch)
            sketch, delta = self._state_sketch, 0.0
            if self._state_n_pending:
                sketch, delta = self._collapse(xp)
            _, s, vt = xp.linalg.svd(sketch, full_matrices=False)
            # Fix the sign of each direction (largest entry positive) so that
            # equal sketches give equal components, however they were reached.
            largest = xp.argmax(xp.abs(vt), axis=1)
            signs = xp.take_along_axis(vt, largest[:, None], axis=1)
            vt = vt * (1.0 - 2.0 * xp.astype(signs < 0, vt.dtype))
            exact = s[:, None] * vt
            dtype = self._state_dtype
            out = xp.astype(exact, dtype)
            # Rounding B to a narrower dtype moves B^T B by at most
            # ||E||_2 (2 ||B||_2 + ||E||_2) <= e (2 s_1 + e), with e = ||E||_F.
            e = float(xp.linalg.vector_norm(xp.astype(out, xp.float64) - exact))
            self._state_readout = _Readout(
                sketch64=sketch,
                sketch=out,
                singular_values=xp.astype(s, dtype),
                components=xp.astype(vt, dtype),
                shrinkage=self._state_shrinkage + delta,
                rounding=e * (2 * float(s[0]) + e),
            )
        return self._state_readout

    @property
    def sketch_(self):
        return self._readout().sketch

    @property
    def shrinkage_(self):
        return self._readout().shrinkage

    @property
    def n_components_(self):
        check_is_fitted(self)
        return self.n_components or self._state_sketch.shape[0]

    @property
    def components_(self):
        return self._readout().components[: self.n_components_, :]

    @property
    def singular_values_(self):
        return self._readout().singular_values[: self.n_components_]

    @property
    def _n_features_out(self):
        return self.n_components_

    def covariance_error_bound(self):
        """Certified bound on the covariance error of the sketch.

        Returns
        -------
        bound : float
            A bound on ``||A^T A - B^T B||_2`` for the rows A seen so far
            (merged sketches included) and ``B = sketch_``: the shrinkage
            ``shrinkage_``, which is also ``<= ||A - A_k||_F^2 / (l + 1 - k)``
            for every ``0 <= k <= l``, plus, for a float32 sketch, the exact
            effect of rounding ``sketch_`` from the float64 state to float32
            (of order ``1e-7 * ||B||_2^2``). Divide by ``squared_norm_`` for
            the relative error.

        Examples
        --------
        >>> import numpy as np
        >>> from sketchsel import FrequentDirections
        >>> A = np.random.default_rng(0).standard_normal((500, 20))
        >>> fd = FrequentDirections(sketch_size=5).fit(A)
        >>> bound = fd.covariance_error_bound()
        >>> bool(bound <= (fd.squared_norm_ - np.sum(fd.sketch_ ** 2)) / 6 + 1e-9)
        True
        """
        readout = self._readout()
        return readout.shrinkage + readout.rounding

    def transform(self, X):
        """Project X onto the leading directions of the sketch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to project.

        Returns
        -------
        X_new : array of shape (n_samples, ``n_components_``)
            ``X @ components_.T``, in the sketch's namespace and dtype.
        """
        components = self.components_
        X, xp = self._validate(X, self._state_backend, reset=False)
        return xp.astype(X, components.dtype, copy=False) @ components.T

    def merge(self, other):
        """Absorb the sketch of another stream; ``other`` is left unchanged.

        The result sketches the concatenation of both streams with the same
        guarantees as one stream: the shrinkages add, plus that of the one
        shrink that combines the two sketches.

        Parameters
        ----------
        other : FrequentDirections
            A fitted sketch with the same ``sketch_size`` and n_features.

        Returns
        -------
        self : FrequentDirections
            This sketch, now of both streams. Its dtype is the wider of the two.

        Examples
        --------
        >>> import numpy as np
        >>> from sketchsel import FrequentDirections
        >>> rng = np.random.default_rng(0)
        >>> parts = [rng.standard_normal((300, 20)) for _ in range(4)]
        >>> sketches = [FrequentDirections(8).fit(p) for p in parts]
        >>> total = sketches[0].merge(sketches[1]).merge(sketches[2].merge(sketches[3]))
        >>> total.n_samples_seen_
        1200
        """
        if not isinstance(other, FrequentDirections):
            raise TypeError(
                f"other must be a FrequentDirections, got {type(other).__name__}."
            )
        check_is_fitted(self)
        check_is_fitted(other, msg="other is not fitted yet; call fit or partial_fit on it first.")
        if other.sketch_size != self.sketch_size:
            raise ValueError(
                f"Cannot merge sketches of different sketch_size ({self.sketch_size} and "
                f"{other.sketch_size}); build both with the same sketch_size."
            )
        if other.n_features_in_ != self.n_features_in_:
            raise ValueError(
                f"Cannot merge sketches of different n_features ({self.n_features_in_} and "
                f"{other.n_features_in_}); both streams must have the same columns."
            )
        mine, theirs = self._readout().sketch64, other._readout().sketch64
        xp, their_xp = array_namespace(mine), array_namespace(theirs)
        if their_xp.finfo(other._state_dtype).bits == 64:
            self._state_dtype = xp.float64  # the wider of the two
        if their_xp is not xp:
            theirs = xp.asarray(to_numpy(theirs), device=device(mine))
        sketch, delta = shrink(xp, mine, [theirs], mine.shape[0])
        shrinkage = self.shrinkage_ + other.shrinkage_ + delta
        self._state_sketch = sketch
        self._state_shrinkage = shrinkage
        self._clear_pending()
        self.n_samples_seen_ += other.n_samples_seen_
        self.squared_norm_ += other.squared_norm_
        self.n_shrinks_ += other.n_shrinks_ + 1
        return self
