"""The template every selector follows: read the rows, plan the choice, choose per group."""

from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
from array_api_compat import is_dask_array
from sklearn import config_context
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, _fit_context
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from .._array_api import (
    array_namespace,
    check_array,
    device,
    resolve_backend,
    row_norms,
    to_numpy,
)
from .._config import BACKENDS
from ..linalg._projection import seed_from
from ._policy import as_labels, build_plan, check_label_count
from ._sources import is_batch_source
from ._thinning import group_thinning, median_cap


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


def row_lengths(rows):
    """The rows' Euclidean lengths, in float64 on the host: what the hard cutoff reads."""
    return np.asarray(to_numpy(row_norms(array_namespace(rows), rows)), dtype=np.float64)


def batch_seed(random_state, method):
    """The int seed of a projection applied batch by batch (``method``), or a clear error.

    Every batch must be projected by the same matrix, which only an int
    ``random_state`` fixes.
    """
    if not isinstance(random_state, Integral):
        raise ValueError(
            f"{method} needs an int random_state, so that every batch is projected by "
            f"the same matrix; got random_state={random_state!r}."
        )
    return seed_from(random_state)


@dataclass
class Reduced:
    """What a selector's pass(es) over the data give the plan and the choice.

    Attributes
    ----------
    rows : array of shape (n_samples, k) or None
        The rows the selector chooses from (its representation of X), in the
        compute namespace; None when the passes kept only ``scores``.
    lengths : ndarray of shape (n_samples,)
        The row lengths the hard cutoff reads (float64).
    labels : ndarray of shape (n_samples,) or None
        The labels, decoded by :func:`~sketchsel.selection._policy.as_labels`.
    n_features : int or None
        Features of the data, when ``rows`` has other columns.
    fitted : dict
        Fitted attributes of the whole fit (``components_``, say).
    scores : ndarray of shape (n_samples,) or None
        Scores the passes computed already (a source read without storing its rows).
    plan : SelectionPlan or None
        The plan, when the passes needed it already (to scale the rows of a
        source as they stream); otherwise the base builds it.
    represented : bool
        Whether ``rows`` is already each group's representation.
    """

    rows: object
    lengths: np.ndarray
    labels: object = None
    n_features: object = None
    fitted: dict = field(default_factory=dict)
    scores: object = None
    plan: object = None
    represented: bool = False


class BaseSelector(OneToOneFeatureMixin, BaseEstimator):
    """Base class of the selectors: fit on rows, then read the chosen ones.

    A fit follows one template. The selector's pass(es) over the data
    (``_reduce_array``, ``_reduce_source``, ``_reduce_dask``) give a
    :class:`Reduced`: its representation of the rows and their lengths.
    :func:`~sketchsel.selection._policy.build_plan` then resolves, once, the
    groups (the classes, or all rows), their quotas and every decision of the
    defaults per group, including the rows the hard cutoff leaves out. The
    selector's ``_choose_group(rows, group, data, rng, **row_parts)`` chooses
    within one group and returns the chosen positions among the group's rows,
    the group's scores (or None) and its own fitted attributes; this class
    puts the scores back in row order (0 for a group with no quota), gathers
    the per-group attributes into lists with one entry per class of
    ``classes_`` (None for a class with a zero quota; the value alone
    without classes), and provides the readers :meth:`select`,
    :meth:`get_support` and :meth:`fit_resample`.
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
        y : array-like of shape (n_samples,) or (n_samples, n_classes), default=None
            Class labels, or a label-indicator matrix; needed only with
            ``class_balance``. With a source, the labels come from the batches.

        Returns
        -------
        self : object
            The fitted selector.
        """
        return self._fit(X, y)

    # Whether the plan decides ``fallback`` by the budget (AgreementSelector's cover);
    # otherwise the selector decides it from its data, if it has one.
    _budget_decides_fallback = False

    def _auto_cuts(self, by_class):
        """Whether ``hard_cutoff="auto"`` may cut: when the rows are chosen by class.

        The hard cutoff was measured on labelled data, where the longest
        gradients are the hardest examples; FastMaxVol, measured without
        labels too, overrides this.
        """
        return by_class

    def _compares_rows(self):
        """Whether the choice compares rows with each other (a cover), not only scores."""
        return False

    def _fit(self, X, y, **row_data):
        """Validate, then select; ``row_data`` holds arrays with a row per sample.

        Those arrays (None when not given) are validated like X and split by
        group with it; ``_choose_group`` receives them as keyword arguments.
        A fit starts from nothing and, if it fails, leaves nothing: no
        attribute of an earlier fit, nor a part of its own that would let
        ``select`` run on a choice never made.
        """
        self._forget_fit()
        try:
            return self._fit_rows(X, y, **row_data)
        except BaseException:
            self._forget_fit()
            raise

    def _forget_fit(self):
        """Delete what a fit sets: every fitted attribute."""
        for name in list(vars(self)):
            if name.endswith("_") and not name.startswith("__"):
                delattr(self, name)

    def _fit_rows(self, X, y, **row_data):
        """The body of ``_fit``: the passes, the plan, the choice."""
        if is_dask_array(X):
            data = self._read_dask(X, y, row_data)
        elif is_batch_source(X):
            if y is not None or any(value is not None for value in row_data.values()):
                raise ValueError(
                    "With a source of batches, the labels come from the batches: yield "
                    "(X_batch, y_batch) pairs and call fit(source) without y or per-row data."
                )
            data = self._reduce_source(X)
        else:
            data = self._read_array(X, y, row_data)
        xp = None
        if data.rows is not None:
            # Into the back-end's namespace; the rows were computed from validated data.
            with config_context(assume_finite=True):
                data.rows, xp = check_array(data.rows, backend=resolve_backend(self.backend,
                                                                              data.rows))
        if data.n_features is not None:
            self.n_features_in_ = data.n_features
        n_samples = data.lengths.shape[0]
        if data.labels is not None:
            check_label_count(data.labels, n_samples)
        plan = data.plan
        if plan is None:
            plan = build_plan(self, data.labels, data.lengths,
                              resolve_n_select(self.n_select, n_samples))
        chosen, fitted = self._choose(xp, data, plan, row_data)
        for name, value in fitted.items():
            setattr(self, name, value)
        self.class_balance_ = plan.class_balance
        if plan.classes is not None:
            self.classes_, self.class_quotas_ = plan.classes, plan.quotas
        self.n_samples_fit_ = n_samples
        self.sample_indices_ = np.sort(chosen)
        labels = data.labels
        if labels is not None and type_of_target(labels) in ("binary", "multiclass"):
            # As imbalanced-learn's samplers report it: rows kept per class.
            kept = labels[self.sample_indices_]
            self.sampling_strategy_ = {
                label: int(np.sum(kept == label)) for label in np.unique(labels)
            }
        return self

    def _read_dask(self, X, y, row_data):
        """The Dask array X reduced by the selector, with y brought to the client."""
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got a Dask array of shape {X.shape}.")
        if any(value is not None for value in row_data.values()):
            raise ValueError(
                "With a Dask array, per-row data is not supported yet: pass NumPy arrays."
            )
        if is_dask_array(y):
            y = y.compute()  # one label per row travels, as the scores do
        return self._reduce_dask(X, as_labels(y))

    def _read_array(self, X, y, row_data):
        """The in-memory X validated and reduced by the selector; ``row_data`` validated."""
        backend = resolve_backend(self.backend, X)
        Xc, xp = check_array(X, backend=backend)
        validate_data(self, X=X, reset=True, skip_check_array=True)
        for name, value in row_data.items():
            if value is not None:
                value, _ = check_array(value, name=name, backend=backend)
                if value.shape[0] != Xc.shape[0]:
                    raise ValueError(
                        f"{name} has {value.shape[0]} rows but X has {Xc.shape[0]}; give one "
                        f"row per sample of X."
                    )
                row_data[name] = value
        y = as_labels(y)
        if y is not None:  # before the reduction, which may build the plan from the labels
            check_label_count(y, Xc.shape[0])
        return self._reduce_array(Xc, xp, y)

    def _reduce_array(self, X, xp, y):
        """The :class:`Reduced` rows of a validated in-memory X of namespace xp."""
        raise NotImplementedError

    def _reduce_source(self, source):
        """The :class:`Reduced` rows of a source of batches, in the passes the selector needs.

        Selectors that can work from a source override this, keeping O(N)
        rows of a small representation, never N x D.
        """
        raise TypeError(
            f"{type(self).__name__} needs X as an array; it does not read sources of batches."
        )

    def _reduce_dask(self, X, y):
        """The :class:`Reduced` rows of a Dask array: a small representation, computed blockwise.

        Selectors that run on Dask override this, computing where the blocks
        live so that only sketches and O(N) numbers travel.
        """
        raise TypeError(
            f"{type(self).__name__} does not take Dask arrays yet; pass a NumPy array or a "
            f"source of batches (AgreementSelector and MomentMatchingSelector take Dask arrays)."
        )

    def _choose(self, xp, data, plan, row_data):
        """Row indices to keep and the fitted attributes: ``_choose_group`` on every group.

        One random generator serves all groups, in the order of the classes.
        """
        rng = check_random_state(self.random_state)
        chosen, scores, per_group = [], None, {}
        n_groups = len(plan.groups)
        for index, group in enumerate(plan.groups):
            if not group.quota:
                continue
            rows, parts = data.rows, dict(row_data)
            if plan.classes is not None:  # a copy of the group's rows only
                take = None if xp is None else xp.asarray(group.rows, device=device(rows))
                rows = None if rows is None else xp.take(rows, take, axis=0)
                parts = {name: None if value is None
                         else array_namespace(value).take(value, take, axis=0)
                         for name, value in row_data.items()}
            positions, group_scores, values = self._choose_group(rows, group, data, rng, **parts)
            chosen.append(group.rows[np.asarray(positions, dtype=np.int64)])
            if group_scores is not None:
                if scores is None:
                    scores = np.zeros(data.lengths.shape[0])
                scores[group.rows] = group_scores
            for name, value in values.items():
                per_group.setdefault(name, [None] * n_groups)[index] = value
        fitted = dict(data.fitted)
        for name, values in per_group.items():
            fitted[name] = plan.per_group(values)
        fitted["n_hard_cut_"] = plan.per_group(group.n_cut for group in plan.groups)
        if any(group.falls_back is not None for group in plan.groups):
            fitted["fallback_used_"] = plan.per_group(
                group.falls_back if group.quota else None for group in plan.groups)
        if scores is not None:
            fitted["scores_"] = scores
        return np.concatenate(chosen), fitted

    def _choose_group(self, rows, group, data, rng, **row_parts):
        """Positions of the chosen rows among the group's, the group's scores, its attributes.

        ``rows`` are the group's rows of ``data.rows`` (None when the passes
        kept only scores), ``group`` its :class:`~sketchsel.selection._policy.Group`.
        """
        raise NotImplementedError

    def _thin(self, rows, group, rng, norms=None):
        """Positions of the group's quota among its ``rows``: ``strategy="thinning"``.

        Group thinning (:func:`~sketchsel.selection._thinning.group_thinning`)
        of the rows the hard cutoff keeps, on the selector's representation
        of them, every row capped at the median length of those rows
        (:func:`~sketchsel.selection._thinning.median_cap`); every
        selector that takes ``strategy="thinning"`` chooses so. ``norms``:
        the rows' norms, where the selector has them already.
        """
        xp = array_namespace(rows)
        kept = rows
        if group.kept.shape[0] < rows.shape[0]:  # a copy only when the cutoff left rows out
            kept = xp.take(rows, xp.asarray(group.kept, device=device(rows)), axis=0)
            norms = None if norms is None else norms[group.kept]
        factors = median_cap(xp, kept, norms)
        return group.kept[group_thinning(xp, kept, group.quota, rng, factors)]

    def _maxvol_fallback(self, rows, quota):
        """Positions of ``quota`` of ``rows`` chosen by FastMaxVol: ``fallback="maxvol"``.

        FastMaxVol with its defaults on the selector's representation of the
        rows; the calling selector's own hard cutoff has already decided
        which rows are left out, so FastMaxVol cuts none.
        """
        from ._fast_maxvol import FastMaxVol

        selector = FastMaxVol(quota, strategy="maxvol", hard_cutoff=0.0, class_balance=None,
                              backend=self.backend)
        return selector.fit(rows).sample_indices_

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
        y : array-like of shape (n_samples,) or (n_samples, n_classes), default=None
            Class labels, or a label-indicator matrix; needed only with
            ``class_balance``.

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
