"""FastMaxVol: the rows spanning the dominant subspace of X (GRAFT's sampler)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import column_or_1d

from .._array_api import (
    array_namespace,
    capped_rows,
    check_array,
    device,
    to_numpy,
    unit_rows,
)
from ..linalg._maxvol import _add_rows, _maxvol
from ..sketch import FrequentDirections
from ._base import (
    BaseSelector,
    check_rows,
    cut_by_group,
    empty_source_error,
    is_small_budget,
    iter_batches,
    labels_of_every_batch,
    resolve_class_balance,
    resolve_n_select,
    row_groups,
)


def _log_volume(xp, rows):
    """log sqrt(det(R^T R)) of the chosen feature rows R, in float64."""
    rows = xp.astype(rows, xp.float64)
    eigenvalues = xp.linalg.eigvalsh(rows.T @ rows)
    return float(xp.sum(xp.log(eigenvalues))) / 2 if float(xp.min(eigenvalues)) > 0 else -np.inf


class FastMaxVol(BaseSelector):
    """Select the rows of maximal volume in a low-rank representation of X.

    The rows of X (features, embeddings or per-example gradients of a batch)
    are projected on the ``rank`` leading right singular directions of X;
    :func:`~sketchsel.linalg.maxvol` then picks ``rank`` rows spanning that
    subspace with a submatrix of (locally) maximal volume, and, for a budget
    above ``rank``, :func:`~sketchsel.linalg.rect_maxvol` adds the rows
    least well represented by those already chosen (a greedy D-optimal
    design). This is the selection step of GRAFT (Jha et al. 2025), with
    maxvol swaps refining the greedy pivots.

    Large rows dominate the volume, so on raw per-example gradients maxvol
    starts from the examples with the largest loss, the hardest and
    mislabelled ones (on the benchmark, 0.66 test accuracy at 5% of digits
    against 0.85 for random subsets). Below a fifth of the rows the defaults
    leave the longest tenth of the rows out (``hard_cutoff="auto"``) and scale
    the rows longer than the median row down to the median length
    (``row_norms="auto"``): the long rows then count by their direction only,
    and the volume is no longer theirs to take. From a fifth on, where a
    subset can afford hard examples and gains from them (Sorscher et al.
    2022), they use the rows as given.

    Parameters
    ----------
    n_select : int or float, default=0.1
        Rows to choose: a count, or a fraction of the rows of X
        (``floor(n_select * n_samples)``, at least 1).
    row_norms : {"auto", "median", "unit"} or None, default="auto"
        How the lengths of the rows of X count before the selection
        (``gradients`` are used as given). "median" scales every row whose
        Euclidean norm exceeds the median norm of the non-zero rows down
        to that median and keeps the others; "unit" scales every row to
        unit norm, so that only directions count; None uses the rows as
        given. "auto" is "median" when the budget is below a fifth of the
        rows of X and None otherwise. Over splits 0-24 of the protocol of
        ``benchmarks/bench_quality.py`` (3 datasets, 2 models, without class
        balancing), raw rows beat "median" at 25% in 6 of 6 cases (digits:
        0.969 test accuracy against 0.959 with the linear model, 0.974
        against 0.966 with the MLP) and lost at 10% of digits (0.921 against 0.930 and 0.922
        against 0.938); at 5% raw rows lose to random subsets. "median" was
        as good as unit rows at 5% and 10% on the benchmark's 5 splits.
    hard_cutoff : float or "auto", default="auto"
        Fraction of the rows (of each class, with ``class_balance``) that
        cannot be chosen: the longest rows of X. With per-example gradients
        these are the hardest examples (the largest GraNd scores, Paul et
        al. 2021), often mislabelled or atypical, which a small subset
        cannot afford (Sorscher et al. 2022; Zheng et al. 2023). The rows
        cut count as zero rows: they add no volume and no direction, so one
        is chosen only when the rows kept cannot fill the budget, and their
        ``coefficients_`` are 0. Never leaves fewer rows than the budget;
        rows no longer than the longest kept are kept. "auto" leaves out
        0.1 of the rows when the budget is below a fifth of them and none
        otherwise, with or without labels (agreement's and moment
        matching's "auto" cut only when selecting by class): over splits
        0-24 of the protocol of ``benchmarks/bench_quality.py``, without
        labels, it took 10% of breast cancer from 0.964 test accuracy to
        0.969 (linear model) and from 0.964 to 0.970 (MLP), above random
        subsets' mean plus one standard deviation (0.967 and 0.965), 10% of
        wine from 0.935 to 0.952 (linear), and 5% of digits, breast cancer
        and wine from 0.905, 0.946 and 0.873 to 0.916, 0.957 and 0.896
        (linear; random subsets: 0.840, 0.932 and 0.764); it cost 0.003 at
        10% of digits with the MLP (0.938 to 0.935).
    rank : int, "auto" or None, default=None
        Dimension of the representation; None uses the budget (capped by the
        number of features). Budgets above ``rank`` are filled by
        rect_maxvol; budgets below lower the rank to the budget. When X has
        at most ``rank`` columns it is used as it is. "auto" is GRAFT's
        dynamic rank: it needs the per-example ``gradients`` in :meth:`fit`,
        tries ranks up to the budget by ``rank_rule``, and selects the rank
        many rows of the chosen rank (at most the budget).
    tol : float, default=1.05
        Dominance threshold of the maxvol swaps, at least 1.
    max_iters : int, default=100
        Largest number of maxvol swaps.
    rank_rule : {"smallest_below_eps", "min_residual"}, default="smallest_below_eps"
        With ``rank="auto"``: "smallest_below_eps" takes the smallest rank
        whose rows reproduce the mean gradient within ``eps`` (relative
        least-squares residual), or the one with the smallest residual when
        none does; "min_residual" is the GRAFT paper's rule, the smallest
        residual among ``n_rank_candidates`` ranks drawn at random. The
        residual vanishes as soon as the rows span the gradients (with
        cross-entropy logit gradients, ``n_classes - 1`` rows), which is why
        the default asks for the smallest rank that is good enough.
    eps : float, default=0.1
        Residual accepted by "smallest_below_eps".
    n_rank_candidates : int, default=3
        Ranks drawn by "min_residual".
    class_balance : {"equal", "proportional", "auto"} or None, default="auto"
        Select within each class of ``y``: "proportional" keeps the class
        shares, "equal" gives every class the same quota and shares what a
        small class cannot use among the others; "auto" is "proportional"
        when ``y`` holds class labels and None otherwise; None ignores ``y``.
        Each class is represented on its own directions (its own sketch),
        so maxvol's long extreme rows cannot crowd a class out. Over splits
        0-24 of the protocol of ``benchmarks/bench_quality.py``,
        "proportional" against None: at 10%, 0.968 against 0.952 on wine and
        0.889 against 0.849 on iris (linear model), and no loss on digits and
        breast cancer; at 25%, within 0.002 on digits, breast cancer and
        wine, and 0.954 against 0.921 on iris; at 5% and 50%, as good or
        better in all 16 cases (wine at 5%: 0.929 against 0.896).
    random_state : int, RandomState instance or None, default=None
        Seeds the candidate ranks of "min_residual"; nothing else is random.
    backend : {"auto", "numpy", "cupy", "array_api"}, default=None
        Where to compute; None uses the global setting of
        :func:`sketchsel.set_config`.

    Attributes
    ----------
    sample_indices_ : ndarray of shape (n_chosen,), int64
        Sorted indices of the chosen rows.
    row_norms_ : {"median", "unit"} or None
        The ``row_norms`` used, "auto" resolved.
    norm_cap_ : float or None
        With ``row_norms_="median"``: the median norm the longer rows were
        scaled down to; None otherwise, or when every row is zero.
    n_hard_cut_ : int or list
        Rows ``hard_cutoff`` left out; with ``class_balance``, one count per
        class (None for a class with a zero quota).
    rank_ : int
        Rank of the representation used.
    volume_ : float
        Log-volume ``log sqrt(det(F_S^T F_S))`` of the chosen rows F_S of the
        representation.
    coefficients_ : array of shape (n_samples, n_chosen)
        Coefficients of every row of the representation on the chosen rows,
        in the order the rows were chosen (see :func:`~sketchsel.linalg.maxvol`).
    pivots_ : ndarray of shape (n_chosen,), int64
        The chosen rows in the order they were chosen, the columns of
        ``coefficients_``.
    residuals_ : dict
        With ``rank="auto"``: the relative residual of every rank tried.
    residual_ : float
        With ``gradients``: ``||G_S^T w - g|| / ||g||`` for the chosen rows S,
        g the mean gradient and w ``sample_weight_``.
    sample_weight_ : ndarray of shape (n_chosen,)
        With ``gradients``: least-squares weights, in the order of
        ``sample_indices_``, with ``G[sample_indices_].T @ sample_weight_``
        closest to the mean gradient; train on the subset with these weights
        to follow the full-batch gradient.
    classes_, class_quotas_ : ndarray
        With ``class_balance``: the classes and the rows taken from each;
        ``rank_``, ``volume_``, ``coefficients_``, ``pivots_``,
        ``residuals_``, ``residual_``, ``sample_weight_`` and ``n_hard_cut_``
        are then lists with one entry per class (``pivots_`` indexing the
        class's rows).
    n_samples_fit_ : int
        Rows of the X given to fit.
    n_features_in_ : int
        Features of X.

    Notes
    -----
    The directions come from a :class:`~sketchsel.FrequentDirections` sketch
    with ``2 * rank`` rows, exact when ``2 * rank >= n_features`` and within
    its certificate otherwise, so that X is read as a stream of rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel import FastMaxVol
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 5)) @ rng.standard_normal((5, 40))
    >>> selector = FastMaxVol(n_select=5, row_norms=None, hard_cutoff=0.0).fit(X)
    >>> selector.select()
    array([...])
    >>> selector.select().shape
    (5,)
    >>> # every row of X is a combination of the 5 chosen rows
    >>> chosen = X[selector.pivots_]
    >>> bool(np.allclose(selector.coefficients_ @ chosen, X))
    True

    With class labels, each class gives its share of the rows:

    >>> y = np.repeat([0, 1], [800, 200])
    >>> balanced = FastMaxVol(n_select=50).fit(X, y)
    >>> balanced.class_balance_, balanced.class_quotas_.tolist()
    ('proportional', [40, 10])
    >>> np.bincount(y[balanced.select()]).tolist()
    [40, 10]

    GRAFT's dynamic rank, from per-example logit gradients:

    >>> G = rng.standard_normal((1000, 4))
    >>> G -= G.mean(axis=1, keepdims=True)
    >>> graft = FastMaxVol(n_select=20, rank="auto").fit(X, gradients=G)
    >>> graft.rank_, round(graft.residual_, 6)
    (3, 0.0)
    """

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "row_norms": [StrOptions({"auto", "median", "unit"}), None],
        "hard_cutoff": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
        "rank": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
        "tol": [Interval(Real, 1, None, closed="left")],
        "max_iters": [Interval(Integral, 0, None, closed="left")],
        "rank_rule": [StrOptions({"smallest_below_eps", "min_residual"})],
        "eps": [Interval(Real, 0, None, closed="left")],
        "n_rank_candidates": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self, n_select=0.1, *, row_norms="auto", hard_cutoff="auto", rank=None, tol=1.05,
        max_iters=100, rank_rule="smallest_below_eps", eps=0.1, n_rank_candidates=3,
        class_balance="auto", random_state=None, backend=None,
    ):
        self.n_select = n_select
        self.row_norms = row_norms
        self.hard_cutoff = hard_cutoff
        self.rank = rank
        self.tol = tol
        self.max_iters = max_iters
        self.rank_rule = rank_rule
        self.eps = eps
        self.n_rank_candidates = n_rank_candidates
        self.class_balance = class_balance
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, gradients=None):
        """Choose rows of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or source of batches
            One row per example (features, embeddings or gradients), or a
            re-iterable source of ``(X_batch, y_batch)`` pairs, read in two or
            three passes and never held as one array; the choice is the same.
        y : array-like of shape (n_samples,), default=None
            Class labels: with ``class_balance`` (by default "auto"), the rows
            are chosen within each class; without labels, among all rows.
        gradients : array-like of shape (n_samples, n_outputs), default=None
            Per-example gradients (for GRAFT, of the loss with respect to the
            logits). Needed with ``rank="auto"``; when given, the chosen rows
            also get ``sample_weight_`` and ``residual_``.

        Returns
        -------
        self : FastMaxVol
            The fitted selector.
        """
        if self.rank == "auto" and gradients is None:
            raise ValueError(
                'rank="auto" chooses the rank from per-example gradients: pass '
                "fit(X, y, gradients=G), or give rank an integer."
            )
        return self._fit(X, y, gradients=gradients)

    def _choose(self, X, xp, n_select, codes, quotas, row_data):
        # From a source of batches, _reduce_source has scaled, cut and represented the rows.
        if self.__dict__.get("_from_source"):
            try:
                return super()._choose(X, xp, n_select, codes, quotas, row_data)
            finally:
                del self._from_source
        norms = xp.linalg.vector_norm(X, axis=1)
        lengths = np.asarray(to_numpy(norms), dtype=np.float64)
        self._set_scaling(n_select, [lengths])
        cut, self.n_hard_cut_ = self._cut_rows(lengths, n_select, codes, quotas)
        X = self._scale(xp, X, norms, cut)
        return super()._choose(X, xp, n_select, codes, quotas, row_data)

    def _set_scaling(self, n_select, lengths):
        """Set ``row_norms_`` ("auto" resolved) and ``norm_cap_`` from the row lengths (parts)."""
        n_samples = sum(part.shape[0] for part in lengths)
        self.row_norms_ = self.row_norms
        if self.row_norms == "auto":
            self.row_norms_ = "median" if is_small_budget(n_select, n_samples) else None
        self.norm_cap_ = _median_norm(lengths) if self.row_norms_ == "median" else None

    def _cut_rows(self, lengths, n_select, codes=None, quotas=None):
        """Mask of the rows ``hard_cutoff`` leaves out, and ``n_hard_cut_``."""
        groups = row_groups(codes, lengths.shape[0], None if quotas is None else quotas.size)
        # Unlike agreement and moment matching, "auto" cuts without labels too
        # (GRAFT's embeddings have none), and that is how it was measured.
        cut, counts = cut_by_group(lengths, groups, [n_select] if codes is None else quotas,
                                   self.hard_cutoff, True)
        return cut, counts[0] if codes is None else counts

    def _scale(self, xp, X, norms=None, cut=None):
        """The rows as ``row_norms_`` asks (``norms``: X's, if known), the ``cut`` ones zero."""
        if self.row_norms_ == "unit":
            X = unit_rows(xp, X, norms)
        elif self.row_norms_ == "median" and self.norm_cap_ is not None:
            X = capped_rows(xp, X, self.norm_cap_, norms)
        if cut is not None and cut.any():
            # A zero row adds no volume: maxvol takes it only when nothing else is left.
            keep = xp.asarray(np.where(cut, 0.0, 1.0), device=device(X))
            X = X * xp.astype(keep, X.dtype)[:, None]
        return X

    def _select(self, X, xp, n_select, gradients=None):
        n_samples, n_features = X.shape
        largest = min(n_select, n_features, n_samples)
        mean_gradient = None if gradients is None else _mean_gradient(xp, gradients)
        if self.rank == "auto":
            # Leading directions in order, so that rank r uses the first r of them.
            features = self._representation(X, largest, force=True)
            rank, pivots, C, residuals = self._dynamic_rank(xp, features, mean_gradient, largest)
        else:
            rank = min(self.rank or n_select, largest)
            features = self._representation(X, rank)
            pivots, C, _ = _maxvol(xp, features, self.tol, self.max_iters)
            if len(pivots) < n_select:
                # Budget above the rank (or a rank-deficient X): add the rows the
                # chosen ones represent worst until the budget is met.
                pivots, C = _add_rows(xp, C, pivots, 0.0, n_select, n_select)
            residuals = None
        take = xp.asarray(pivots, device=device(X))
        fitted = {
            "rank_": rank,
            "volume_": _log_volume(xp, xp.take(features[:, :rank], take, axis=0)),
            "coefficients_": C,
            "pivots_": np.asarray(pivots, dtype=np.int64),
        }
        if residuals is not None:
            fitted["residuals_"] = residuals
        if mean_gradient is not None:
            weights, residual = _reproduce_mean(xp, *mean_gradient, take)
            # In the order of sample_indices_, which is sorted.
            fitted["sample_weight_"] = weights[np.argsort(fitted["pivots_"])]
            fitted["residual_"] = residual
        return fitted["pivots_"], fitted

    def _reduce_source(self, source):
        """The rank-dimensional representation of a source's rows, in two or three passes.

        A first pass reads the row lengths and labels, to count the rows,
        find the classes and their quotas, the median and the rows
        ``hard_cutoff`` leaves out (unless the budget is a count,
        ``row_norms`` None or "unit", ``hard_cutoff`` 0 and ``class_balance``
        None). Then one pass sketches the scaled rows with Frequent
        Directions (one sketch per class, with class balancing) and one
        projects them on the leading directions, so memory is O(sketches + N
        * rank), never N x D; the in-memory path then runs on the projections
        and chooses the same rows as ``fit`` on the whole array. The class
        sketches are all held during the sketching pass, each up to a D x D
        float64 Gram matrix (Frequent Directions' route for D up to 2,048).
        """
        if self.rank == "auto":
            raise ValueError(
                'rank="auto" needs per-example gradients, which a source of batches does not '
                "carry: pass X and gradients as arrays, or give rank an integer."
            )
        backend = self.backend
        n_select, n_rows, cut, y, codes, quotas = self.n_select, None, None, None, None, None
        self.row_norms_, self.norm_cap_, self.n_hard_cut_ = self.row_norms, None, 0
        if (not isinstance(n_select, Integral) or self.row_norms in ("median", "auto")
                or self.hard_cutoff != 0 or self.class_balance is not None):
            # The first pass: what the budget, the classes, the scaling and the cut need.
            lengths, labels = [], []
            for rows, batch_labels in iter_batches(source):
                rows, xp = check_array(rows, backend=backend)
                lengths.append(np.asarray(to_numpy(xp.linalg.vector_norm(rows, axis=1)),
                                          dtype=np.float64))
                if batch_labels is not None:
                    labels.append(column_or_1d(to_numpy(batch_labels)))
            if not lengths:
                raise empty_source_error()
            n_rows = sum(part.shape[0] for part in lengths)
            n_select = resolve_n_select(n_select, n_rows)
            y = labels_of_every_batch(labels, n_rows)
            self.class_balance_ = resolve_class_balance(self.class_balance, y)
            if self.class_balance_ is not None:
                codes, quotas = self._class_quotas(y, n_rows, n_select)
            self._set_scaling(n_select, lengths)
            cut, self.n_hard_cut_ = self._cut_rows(np.concatenate(lengths), n_select, codes,
                                                   quotas)

        def scaled():
            start, width = 0, None
            for rows, batch_labels in iter_batches(source):
                rows, xp = check_array(rows, backend=backend)
                stop = start + rows.shape[0]
                if n_rows is not None and stop > n_rows:
                    check_rows(n_rows, stop)
                # One sketch per class would not notice batches of other widths.
                width = rows.shape[1] if width is None else width
                if rows.shape[1] != width:
                    raise ValueError(
                        f"A batch of the source has {rows.shape[1]} columns and the first had "
                        f"{width}; every batch must have the same columns."
                    )
                part = None if cut is None else cut[start:stop]
                yield self._scale(xp, rows, cut=part), batch_labels
                start = stop
            check_rows(n_rows, start)

        features, labels, n_features = self._project(
            scaled, [n_select] if codes is None else quotas, codes)
        if y is not None and not np.array_equal(labels, y):
            raise ValueError(
                "The source yielded other labels in one pass than in the next; it must yield "
                "the same batches in the same order on every pass (a torch DataLoader with "
                "shuffle=True does not)."
            )
        self._from_source = True
        return features, labels, n_features

    def _project(self, scaled, budgets, codes):
        """Each group's scaled rows on the leading directions of its own sketch, and the labels.

        A group is a class (``codes`` gives each row's) or, without codes,
        all the rows; ``budgets`` holds the rows to choose from each. As in
        the in-memory path, a group's rank is its budget (or ``rank``, if
        lower) and a group no wider than its rank is used as it is. The
        groups' widths differ: zero columns pad the narrower, and
        ``_representation`` takes each group's first ``rank`` columns back.
        """
        ranks = [min(self.rank or int(budget), int(budget)) for budget in budgets]
        sketches = {}
        for _, groups in _grouped(scaled, codes):
            for code, _, part in groups:
                if budgets[code] == 0:
                    continue
                if code not in sketches:
                    sketches[code] = _directions_sketch(ranks[code], part.shape[1])
                sketches[code].partial_fit(part)
        n_features = next(iter(sketches.values())).n_features_in_
        widths = {code: min(ranks[code], n_features) for code in sketches}
        width = max(widths.values())
        features, labels = [], []
        for batch_labels, groups in _grouped(scaled, codes):
            parts, order = [], []
            for code, take, part in groups:
                xp = array_namespace(part)
                if code not in sketches:
                    part = part[:, :0]  # a class without quota: never chosen from
                elif widths[code] < n_features:
                    part = sketches[code].transform(part)
                if part.shape[1] < width:
                    pad = xp.zeros((part.shape[0], width - part.shape[1]), dtype=part.dtype,
                                   device=device(part))
                    part = xp.concat([part, pad], axis=1)
                parts.append(part)
                order.append(take)
            if len(parts) == 1:
                features.append(parts[0])
            else:
                inverse = xp.asarray(np.argsort(np.concatenate(order)), device=device(part))
                features.append(xp.take(xp.concat(parts, axis=0), inverse, axis=0))
            if batch_labels is not None:
                labels.append(column_or_1d(to_numpy(batch_labels)))
        n_rows = sum(part.shape[0] for part in features)
        return xp.concat(features, axis=0), labels_of_every_batch(labels, n_rows), n_features

    def _representation(self, X, rank, force=False):
        """X projected on its ``rank`` leading right singular directions (X itself if narrow)."""
        if self.__dict__.get("_from_source"):
            # _reduce_source represented the rows already, padded with zero columns by class.
            return X[:, :rank]
        n_features = X.shape[1]
        if n_features <= rank and not force:
            return X
        return _directions_sketch(rank, n_features).fit(X).transform(X)

    def _dynamic_rank(self, xp, features, mean_gradient, largest):
        """GRAFT's rank choice: the rows of rank r should reproduce the mean gradient."""
        if self.rank_rule == "min_residual":
            rng = check_random_state(self.random_state)
            size = min(self.n_rank_candidates, largest)
            candidates = sorted(int(r) for r in rng.choice(np.arange(1, largest + 1), size, False))
        else:
            candidates = range(1, largest + 1)
        residuals, best = {}, None
        for rank in candidates:
            pivots, C, _ = _maxvol(xp, features[:, :rank], self.tol, self.max_iters)
            take = xp.asarray(pivots, device=device(features))
            residuals[rank] = _reproduce_mean(xp, *mean_gradient, take)[1]
            if best is None or residuals[rank] < residuals[best[0]]:
                best = (rank, pivots, C)
            # Every earlier rank was above eps, so this one is also the best so far.
            if self.rank_rule == "smallest_below_eps" and residuals[rank] <= self.eps:
                break
        return (*best, residuals)


def _median_norm(norms):
    """Median of the non-zero row norms given in parts, or None when every row is zero."""
    norms = np.concatenate([np.asarray(to_numpy(part), dtype=np.float64) for part in norms])
    norms = norms[norms > 0]
    return float(np.median(norms)) if norms.size else None


def _mean_gradient(xp, gradients):
    """The gradients in float64 and their mean, computed once for all the ranks tried."""
    G = xp.astype(gradients, xp.float64)
    return G, xp.mean(G, axis=0)


def _reproduce_mean(xp, G, target, rows):
    """Least-squares weights w with ``G[rows]^T w ~ target``, and the relative residual."""
    chosen = xp.take(G, rows, axis=0)
    weights = xp.linalg.pinv(chosen.T) @ target
    norm = float(xp.linalg.vector_norm(target))
    residual = float(xp.linalg.vector_norm(chosen.T @ weights - target))
    return np.asarray(to_numpy(weights)), residual / norm if norm > 0 else 0.0


def _directions_sketch(rank, n_features):
    """The sketch whose ``rank`` leading directions represent rows of ``n_features``.

    One for the rows in memory and for each group of a source's, so that both
    represent the rows alike. The rows are already in their back-end's
    namespace; the sketch follows it.
    """
    return FrequentDirections(
        min(n_features, 2 * rank), n_components=min(rank, n_features), backend="array_api"
    )


def _grouped(scaled, codes):
    """One pass over the scaled rows: each batch's labels and its rows by group.

    A group is a class (``codes`` gives each row's), or all the rows when
    ``codes`` is None. Each batch comes as ``(labels, groups)``, with a
    ``(group, row indices in the batch, rows)`` triple per group present; a
    batch of one group is passed as it is, not copied.
    """
    start = 0
    for rows, batch_labels in scaled():
        stop = start + rows.shape[0]
        if codes is None or np.all(codes[start:stop] == codes[start]):
            group = 0 if codes is None else int(codes[start])
            groups = [(group, np.arange(stop - start), rows)]
        else:
            xp, batch_codes = array_namespace(rows), codes[start:stop]
            groups = []
            for code in np.unique(batch_codes):
                take = np.flatnonzero(batch_codes == code)
                rows_of_code = xp.take(rows, xp.asarray(take, device=device(rows)), axis=0)
                groups.append((int(code), take, rows_of_code))
        yield batch_labels, groups
        start = stop
