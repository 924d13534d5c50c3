"""What every selector shares: budgets, class quotas, and the ways to read a selection."""

from numbers import Integral, Real

import numpy as np
from array_api_compat import is_dask_array
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .._array_api import check_array, device, resolve_backend, to_numpy
from .._config import BACKENDS


def empty_source_error():
    """The error for a source of batches that yielded no rows."""
    return ValueError("The source of batches yielded no rows; X must hold at least one.")


def check_rows(expected, found):
    """Refuse a pass over a source that yielded no rows, or other rows than an earlier one.

    ``expected`` is the rows of the earlier pass (0 or None when unknown) and
    ``found`` those of this one (counted up to the first row past them).
    """
    if found == 0:
        raise empty_source_error()
    if expected and found != expected:
        found = "more" if found > expected else found
        raise ValueError(
            f"The source yielded {expected} rows in one pass and {found} in the next; it "
            f"must yield the same batches on every pass."
        )


def resolve_n_select(n_select, n_samples):
    """The number of rows a budget asks for: a count, or a fraction of n_samples.

    A fraction gives ``floor(n_select * n_samples)``, at least 1.
    """
    if isinstance(n_select, Integral):
        if n_select > n_samples:
            raise ValueError(
                f"n_select={n_select} is larger than the number of samples ({n_samples}); "
                f"ask for at most {n_samples} rows, or a fraction such as 0.1."
            )
        return int(n_select)
    return max(1, int(n_select * n_samples))


# A budget below this fraction of the rows (of a class, selecting by class) is small: the
# defaults then keep away from the hardest examples, and from it on they take them, as
# Sorscher et al. (2022) advise; measured on benchmarks/bench_quality.py (see the selectors).
_SMALL_BUDGET = 0.2
# hard_cutoff="auto": this fraction of a class's rows is left out at a small budget.
_AUTO_HARD_CUTOFF = 0.1


def is_small_budget(n_select, n_rows):
    """Whether n_select rows out of n_rows is a small budget (below a fifth of them)."""
    return n_select < _SMALL_BUDGET * n_rows


def resolve_hard_cutoff(hard_cutoff, n_select, n_rows, auto_cuts):
    """The fraction of the rows to leave out: ``hard_cutoff``, with "auto" resolved.

    "auto" leaves out a tenth of the rows (of a class) when ``auto_cuts`` and
    the budget is below a fifth of them, and nothing otherwise. Agreement and
    moment matching cut only when selecting by class, FastMaxVol with or
    without labels: each as its gain was measured, on labelled data, where
    the longest gradients are the hardest examples.
    """
    if hard_cutoff != "auto":
        return hard_cutoff
    return _AUTO_HARD_CUTOFF if auto_cuts and is_small_budget(n_select, n_rows) else 0.0


def hard_rows(lengths, n_select, fraction):
    """Mask of the rows a hard cutoff leaves out: the ``fraction`` longest.

    Never leaves fewer than ``n_select`` rows. A row only as long as the
    longest row kept (within a relative 1e-5, float32 rounding) is kept too,
    so rows of one length (unit rows, say) lose nothing to their order.
    """
    n_rows = lengths.shape[0]
    n_cut = min(int(fraction * n_rows), n_rows - n_select)
    cut = np.zeros(n_rows, dtype=bool)
    if n_cut > 0:
        order = np.argsort(lengths, kind="stable")
        cut[order[n_rows - n_cut:]] = True
        cut &= lengths > lengths[order[n_rows - n_cut - 1]] * (1 + 1e-5)
    return cut


def row_groups(codes, n_rows, n_groups):
    """Row indices of each group: all rows without class codes, else each class's."""
    if codes is None:
        return [np.arange(n_rows)]
    return [np.flatnonzero(codes == code) for code in range(n_groups)]


def cut_by_group(lengths, groups, budgets, hard_cutoff, auto_cuts):
    """Mask of the rows a hard cutoff leaves out of each group, and the count per group.

    ``groups`` holds the row indices of each group and ``budgets`` the rows
    to choose from each (see :func:`resolve_hard_cutoff` for ``auto_cuts``);
    a group with no budget keeps every row and counts None.
    """
    cut, counts = np.zeros(lengths.shape[0], dtype=bool), []
    for rows, quota in zip(groups, budgets):
        if not quota:
            counts.append(None)
            continue
        fraction = resolve_hard_cutoff(hard_cutoff, int(quota), rows.size, auto_cuts)
        cut[rows] = hard_rows(lengths[rows], int(quota), fraction)
        counts.append(int(cut[rows].sum()))
    return cut, counts


def class_quotas(counts, n_select, mode):
    """Rows to take from each class, summing to n_select.

    Parameters
    ----------
    counts : array of shape (n_classes,)
        Samples in each class.
    n_select : int
        Total budget, at most ``counts.sum()``.
    mode : {"equal", "proportional"}
        "proportional": the stratified share of each class, rounded by largest
        remainder. "equal": the same quota for every class; what a class too
        small to fill its quota cannot use is shared among the others, again
        equally, until the budget is spent (water-filling).

    Returns
    -------
    quotas : ndarray of shape (n_classes,), int64
        Never above ``counts``; ties in rounding go to the classes listed
        first, so the result is deterministic.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if mode == "proportional":
        # In integers, so that equal remainders tie exactly (floats would not).
        shares = n_select * counts
        quotas, remainders = np.divmod(shares, counts.sum())
        short = n_select - quotas.sum()
        order = np.argsort(-remainders, kind="stable")
        quotas[order[:short]] += 1
        return quotas
    # Water level: the largest L with sum(min(counts, L)) <= n_select; the
    # rows still missing go one each to the first classes above the level.
    low, high = 0, int(counts.max())
    while low < high:
        level = (low + high + 1) // 2
        if np.minimum(counts, level).sum() <= n_select:
            low = level
        else:
            high = level - 1
    quotas = np.minimum(counts, low)
    above = np.flatnonzero(counts > low)
    quotas[above[: n_select - quotas.sum()]] += 1
    return quotas


def resolve_class_balance(class_balance, y):
    """The class balancing a fit applies: "auto" is "proportional" when y holds classes.

    Parameters
    ----------
    class_balance : {"auto", "equal", "proportional"} or None
        The selector's parameter.
    y : array-like or None
        The labels given to fit, or one batch's.

    Returns
    -------
    mode : {"equal", "proportional"} or None
        "auto" gives "proportional" for binary or multiclass labels and None
        for no labels or other targets (continuous ones, say); the other
        values are returned as they are.
    """
    if class_balance != "auto":
        return class_balance
    if y is None or type_of_target(to_numpy(y)) not in ("binary", "multiclass"):
        return None
    return "proportional"


def labels_of_every_batch(labels, n_rows):
    """The labels of all rows, or None when no batch had any; an error when some lacked them."""
    if not labels:
        return None
    labels = np.concatenate(labels)
    if labels.shape[0] != n_rows:
        raise ValueError(
            f"Some batches yielded labels and others did not ({labels.shape[0]} labels for "
            f"{n_rows} rows): yield (X_batch, y_batch) pairs for every batch, or none."
        )
    return labels


def is_batch_source(X):
    """Whether X is a source of batches rather than an array.

    A source is a callable returning an iterator of batches, or an iterable
    that is not array-like (no ``shape``; lists and tuples are arrays).
    """
    if callable(X):
        return True
    return hasattr(X, "__iter__") and not hasattr(X, "shape") and not isinstance(X, (list, tuple))


def iter_batches(source):
    """One pass over a source: ``(X_batch, y_batch)`` pairs, y_batch None when absent.

    A batch is ``X_batch`` alone or a pair ``(X_batch, y_batch)``, as a tuple
    or a two-element list.

    Raises
    ------
    TypeError
        When the source is a one-shot iterator (a generator), which a second
        pass would find empty.
    """
    iterator = source() if callable(source) else iter(source)
    if iterator is source:
        raise TypeError(
            "X is a one-shot iterator (a generator), but selection reads the data more than "
            "once: pass a function that returns a new iterator, or a re-iterable object such "
            "as a torch DataLoader."
        )
    for batch in iterator:
        # A pair, as a tuple or as the list a torch DataLoader yields.
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            yield batch[0], batch[1]
        else:
            yield batch, None


def sketch_source(source, make_sketch, backend):
    """One pass over a source into a streaming sketch.

    Parameters
    ----------
    source : callable or iterable
        Re-iterable source of batches (see :func:`iter_batches`).
    make_sketch : callable
        ``make_sketch(n_features)`` returns the empty sketch, built once the
        first batch tells the number of features.
    backend : str or None
        Back-end for validating the batches.

    Returns
    -------
    sketch : object
        The sketch after ``partial_fit`` on every batch.
    n_rows : int
        Rows seen.
    """
    sketch, n_rows = None, 0
    for rows, _ in iter_batches(source):
        rows, _ = check_array(rows, backend=backend)
        if sketch is None:
            sketch = make_sketch(rows.shape[1])
        sketch.partial_fit(rows)
        n_rows += rows.shape[0]
    if sketch is None:
        raise empty_source_error()
    return sketch, n_rows


class BaseSelector(OneToOneFeatureMixin, BaseEstimator):
    """Base class of the selectors: fit on rows, then read the chosen ones.

    Subclasses implement ``_select(X, xp, n_select, **row_data)``, returning the chosen
    row indices of X and a dict of fitted attributes (names ending in "_");
    this class handles the budget, class balancing, validation and the
    readers :meth:`select`, :meth:`get_support` and :meth:`fit_resample`.

    With class balancing, ``_select`` runs once per class, on that class's
    rows and quota; the choices are mapped back to row indices of X. ``scores_``,
    one score per row, is put back together in the order of X (0 for the rows
    of a class with a zero quota); every other fitted attribute becomes a list
    with one entry per class of ``classes_`` (None for a class with a zero
    quota). A selector that needs all rows at once even then (a sketch shared
    by the classes) overrides ``_choose``.
    """

    _parameter_constraints = {
        "n_select": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="right"),
        ],
        "class_balance": [StrOptions({"auto", "equal", "proportional"}), None],
        "backend": [StrOptions(set(BACKENDS)), None],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Choose rows of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or source of batches
            One row per example (features or per-example gradients), from
            any array library; or, where the selector supports it, a
            re-iterable source of ``(X_batch, y_batch)`` pairs (a callable
            returning an iterator, or an object like a DataLoader).
        y : array-like of shape (n_samples,), default=None
            Class labels; needed only with ``class_balance``. With a source,
            the labels come from the batches.

        Returns
        -------
        self : object
            The fitted selector.
        """
        return self._fit(X, y)

    def _fit(self, X, y, **row_data):
        """Validate, then select; ``row_data`` holds arrays with a row per sample.

        Those arrays (None when not given) are validated like X and, with
        class balancing, split by class with it; ``_select`` receives them as
        keyword arguments. A fit starts from nothing and, if it fails, leaves
        nothing: no attribute of an earlier fit, nor a part of its own that
        would let ``select`` run on a choice never made.
        """
        self._forget_fit()
        try:
            return self._fit_rows(X, y, **row_data)
        except BaseException:
            self._forget_fit()
            raise

    def _forget_fit(self):
        """Delete what a fit sets: the fitted attributes and the state passed between passes."""
        for name in list(vars(self)):
            if (name.endswith("_") and not name.startswith("__")) or name == "_from_source":
                delattr(self, name)

    def _fit_rows(self, X, y, **row_data):
        """The body of ``_fit``."""
        source_features = None
        if is_dask_array(X):
            if X.ndim != 2:
                raise ValueError(f"X must be 2-D, got a Dask array of shape {X.shape}.")
            if any(value is not None for value in row_data.values()):
                raise ValueError(
                    "With a Dask array, per-row data is not supported yet: pass NumPy arrays."
                )
            if is_dask_array(y):
                y = y.compute()  # one label per row travels, as the scores do
            X, y, source_features = self._reduce_dask(X, y)
        elif is_batch_source(X):
            if y is not None or any(value is not None for value in row_data.values()):
                raise ValueError(
                    "With a source of batches, the labels come from the batches: yield "
                    "(X_batch, y_batch) pairs and call fit(source) without y or per-row data."
                )
            X, y, source_features = self._reduce_source(X)
        backend = resolve_backend(self.backend, X)
        Xc, xp = check_array(X, backend=backend)
        validate_data(self, X=X, reset=True, skip_check_array=True)
        if source_features is None:
            Xc = self._represent(Xc, xp)
        else:
            self.n_features_in_ = source_features
        n_samples = Xc.shape[0]
        for name, value in row_data.items():
            if value is not None:
                value, _ = check_array(value, name=name, backend=backend)
                if value.shape[0] != n_samples:
                    raise ValueError(
                        f"{name} has {value.shape[0]} rows but X has {n_samples}; give one "
                        f"row per sample of X."
                    )
                row_data[name] = value
        n_select = resolve_n_select(self.n_select, n_samples)
        codes = quotas = None
        self.class_balance_ = resolve_class_balance(self.class_balance, y)
        if self.class_balance_ is not None:
            codes, quotas = self._class_quotas(y, n_samples, n_select)
        chosen, fitted = self._choose(Xc, xp, n_select, codes, quotas, row_data)
        for name, value in fitted.items():
            setattr(self, name, value)
        self.n_samples_fit_ = n_samples
        self.sample_indices_ = np.sort(chosen)
        labels = None if y is None else to_numpy(y)
        if labels is not None and type_of_target(labels) in ("binary", "multiclass"):
            # As imbalanced-learn's samplers report it: rows kept per class.
            labels = column_or_1d(labels)
            kept = labels[self.sample_indices_]
            self.sampling_strategy_ = {
                label: int(np.sum(kept == label)) for label in np.unique(labels)
            }
        return self

    def _represent(self, X, xp):
        """The rows as the selection sees them; X itself unless a selector transforms it.

        Runs once on the validated array, before any split by class. A source
        of batches is reduced to this representation by :meth:`_reduce_source`.
        """
        return X

    def _reduce_source(self, source):
        """(rows, labels, n_features) in memory from a source of batches.

        Selectors that can work from a source override this with their own
        passes, keeping O(N) rows of a small representation, never N x D.
        """
        raise TypeError(
            f"{type(self).__name__} needs X as an array; it does not read sources of batches."
        )

    def _reduce_dask(self, X, y):
        """(rows, labels, n_features) in memory from a Dask array: a small representation.

        Selectors that run on Dask override this, computing blockwise where
        the blocks live so that only sketches and O(N) numbers travel.
        """
        raise TypeError(
            f"{type(self).__name__} does not take Dask arrays yet; pass a NumPy array or a "
            f"source of batches (AgreementSelector and MomentMatchingSelector take Dask arrays)."
        )

    def _class_labels(self, y, n_samples):
        """y as a 1-D NumPy array of class labels, one per row; clear errors otherwise."""
        if y is None:
            raise ValueError(
                f"class_balance={self.class_balance!r} needs the class labels y; pass "
                f"fit(X, y) (from a source of batches, yield (X_batch, y_batch) pairs), or "
                f"use class_balance=None."
            )
        y = column_or_1d(to_numpy(y), warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(
                f"y has {y.shape[0]} labels but X has {n_samples} rows; they must match."
            )
        check_classification_targets(y)
        return y

    def _class_quotas(self, y, n_samples, n_select):
        """Class codes of the rows and the quota of each class; sets classes_, class_quotas_."""
        y = self._class_labels(y, n_samples)
        self.classes_, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        self.class_quotas_ = class_quotas(counts, n_select, self.class_balance_)
        return codes, self.class_quotas_

    def _choose(self, X, xp, n_select, codes, quotas, row_data):
        """Row indices to keep and the fitted attributes.

        Without classes (``codes`` None) this is ``_select`` on all rows;
        with them, ``_select`` runs on each class's rows and quota, the
        per-class scores are put back in row order and the other per-class
        attributes are gathered into lists.
        """
        if codes is None:
            chosen, fitted = self._select(X, xp, n_select, **row_data)
            return np.asarray(chosen, dtype=np.int64), fitted
        chosen, fitted = [], {}
        groups = row_groups(codes, codes.shape[0], quotas.size)
        for code, (rows, quota) in enumerate(zip(groups, quotas)):
            if quota == 0:
                continue
            take = xp.asarray(rows, device=device(X))
            parts = {
                name: None if value is None else xp.take(value, take, axis=0)
                for name, value in row_data.items()
            }
            indices, values = self._select(xp.take(X, take, axis=0), xp, int(quota), **parts)
            chosen.append(rows[np.asarray(indices, dtype=np.int64)])
            for name, value in values.items():
                if name == "scores_":
                    if name not in fitted:
                        fitted[name] = np.zeros(codes.shape[0])
                    fitted[name][rows] = to_numpy(value)
                else:
                    fitted.setdefault(name, [None] * quotas.size)[code] = value
        return np.concatenate(chosen), fitted

    def select(self):
        """The chosen row indices.

        Returns
        -------
        indices : ndarray of shape (n_chosen,), int64
            Sorted indices into the X given to :meth:`fit`.
        """
        check_is_fitted(self)
        return self.sample_indices_.copy()

    def fit_select(self, X, y=None):
        """Fit, then return the chosen row indices.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to choose from.
        y : array-like of shape (n_samples,), default=None
            Class labels; needed only with ``class_balance``.

        Returns
        -------
        indices : ndarray of shape (n_chosen,), int64
            Sorted indices into X.
        """
        return self.fit(X, y).select()

    def get_support(self, indices=False):
        """Mask or indices of the chosen rows.

        Parameters
        ----------
        indices : bool, default=False
            Return indices instead of a boolean mask.

        Returns
        -------
        support : ndarray
            Boolean mask of shape (n_samples,) or sorted int64 indices.
        """
        check_is_fitted(self)
        if indices:
            return self.select()
        mask = np.zeros(self.n_samples_fit_, dtype=bool)
        mask[self.sample_indices_] = True
        return mask

    def fit_resample(self, X, y):
        """Fit, then return the chosen rows of X and y.

        This makes a selector a sampler for ``imblearn.pipeline.Pipeline``,
        which, unlike scikit-learn's Pipeline, may drop rows in fit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to choose from.
        y : array-like of shape (n_samples,)
            Targets, kept for the chosen rows.

        Returns
        -------
        X_resampled : array-like of shape (n_chosen, n_features)
            The chosen rows, in the container type of X.
        y_resampled : array-like of shape (n_chosen,)
            Their targets.
        """
        self.fit(X, y)
        return _safe_indexing(X, self.sample_indices_), _safe_indexing(y, self.sample_indices_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        try:  # with imbalanced-learn installed, present as one of its samplers
            from imblearn.utils._tags import InputTags, SamplerTags, Tags
        except ImportError:
            return tags
        sampler_tags = Tags(
            estimator_type="sampler",
            target_tags=tags.target_tags,
            transformer_tags=None,
            regressor_tags=None,
            classifier_tags=None,
            sampler_tags=SamplerTags(sample_indices=True),
        )
        sampler_tags.input_tags = InputTags(dataframe=True)
        return sampler_tags
