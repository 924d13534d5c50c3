"""FastMaxVol: the rows spanning the dominant subspace of X (GRAFT's sampler)."""

from numbers import Integral, Real

import numpy as np
from sklearn import config_context
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from .._array_api import (
    array_namespace,
    capped_rows,
    check_array,
    device,
    median_norm,
    to_numpy,
    unit_rows,
)
from ..linalg._maxvol import _add_rows, _maxvol
from ..sketch import FrequentDirections
from ..sketch._shrink import _top_eigenpairs, gram64
from ._base import BaseSelector, Reduced, resolve_n_select, row_lengths
from ._docs import shared_docs
from ._policy import build_plan
from ._sources import check_rows, empty_source_error, iter_batches, labels_of_every_batch

# The leading directions thinning represents a group on by default (see FastMaxVol._rank).
THINNING_RANK = 128


def _log_volume(xp, rows):
    """log sqrt(det(R^T R)) of the chosen feature rows R, in float64 (R R^T if R is wide)."""
    rows = xp.astype(rows, xp.float64)
    gram = rows @ rows.T if rows.shape[0] < rows.shape[1] else rows.T @ rows
    eigenvalues = xp.linalg.eigvalsh(gram)
    return float(xp.sum(xp.log(eigenvalues))) / 2 if float(xp.min(eigenvalues)) > 0 else -np.inf


@shared_docs
class FastMaxVol(BaseSelector):
    """Select the rows of maximal volume in a low-rank representation of X.

    GRAFT's selection step (Jha et al. 2025): the rows of X (features,
    embeddings or per-example gradients) are projected on their ``rank``
    leading right singular directions; :func:`~sketchsel.linalg.maxvol`
    picks ``rank`` rows of (locally) maximal volume and, above ``rank``,
    :func:`~sketchsel.linalg.rect_maxvol` adds the rows represented worst.

    On held-out data maxvol lost to random subsets, and with wrong labels by
    far: the default therefore thins each class's representation instead
    (``strategy="thinning"``: a subset whose mean follows the class's, the
    choice :class:`AgreementSelector` makes by default), and maxvol (GRAFT's rule,
    :class:`~sketchsel.torch.GraftSampler`'s) is an option (``docs/guide.md``).

    Long rows dominate the volume: on raw per-example gradients, the hardest
    and mislabelled examples. Thinning caps every row at the median length
    and cuts none. Under maxvol, below a fifth of a group's rows the
    defaults cut its longest tenth (``hard_cutoff``) and cap the rows at the
    median length (``row_norms``); from a fifth on, where a subset gains from
    hard examples (Sorscher et al. 2022), they use the rows as given.

    Parameters
    ----------
    [[n_select]]
    strategy : {"thinning", "maxvol"}, default="thinning"
        How a group's rows are chosen from their ``rank``-dimensional
        representation: "thinning", from each of ``quota`` random groups of
        rows, the one that keeps the subset's mean on the data's (group
        thinning, :func:`~sketchsel.selection._thinning.group_thinning`),
        O(N rank^2) after one Frequent Directions sketch (O(N D rank), O(N D^2)
        for D up to 2,048): linear in N; "maxvol", the rows of (locally) maximal
        volume, filled up above the rank by rect_maxvol (GRAFT), whose N x n_select
        coefficients cost O(N n_select) time and memory. ``tol``, ``max_iters`` and
        ``rank="auto"`` are maxvol's.
    row_norms : {"auto", "median", "unit"} or None, default="auto"
        How the lengths of the rows of X count (``gradients`` are used as
        given). "median" scales every row longer than the median norm of the
        non-zero rows of X down to that median; "unit" scales every row to
        unit norm, so that only directions count; None uses the rows as
        given. "auto" is None under thinning, which caps its own
        coordinates at their median length; under maxvol, "median" for a
        group whose quota is below a fifth of its rows and None otherwise
        (:func:`~sketchsel.selection._policy.row_norms_mode`).
    [[hard_cutoff]]
        Here the lengths are the rows' of X; the rows cut count as zero rows,
        which add no volume, so their ``coefficients_`` are 0.
    rank : int, "auto" or None, default=None
        Dimension of the representation (at most the number of features
        and, under maxvol, the quota); None uses the quota under maxvol and
        a fixed number of leading directions under thinning, whatever the
        quota (``THINNING_RANK`` of this module). Under maxvol, quotas above
        it are filled by rect_maxvol. "auto" is GRAFT's dynamic rank, from
        the ``gradients`` given to :meth:`fit` by ``rank_rule``: as many rows
        as the rank.
    tol : float, default=1.05
        Dominance threshold of the maxvol swaps, at least 1.
    max_iters : int, default=100
        Largest number of maxvol swaps.
    rank_rule : {"smallest_below_eps", "min_residual"}, default="smallest_below_eps"
        With ``rank="auto"``: "smallest_below_eps" takes the smallest rank
        whose rows reproduce the mean gradient within ``eps`` (relative
        least-squares residual; the best one if none does), since the
        residual vanishes once the rows span the gradients; "min_residual",
        the paper's rule, the best of ``n_rank_candidates`` random ranks.
    eps : float, default=0.1
        Residual accepted by "smallest_below_eps".
    n_rank_candidates : int, default=3
        Ranks drawn by "min_residual".
    [[class_balance]]
    random_state : int, RandomState instance or None, default=None
        Seeds the order in which "thinning" visits the rows and the
        candidate ranks of "min_residual"; maxvol itself is deterministic.
    [[backend]]

    Attributes
    ----------
    [[fitted_common]]
    row_norms_ : {"median", "unit"} or None, or list
        The ``row_norms`` used, "auto" resolved; with class balancing, one
        per class (None for a class with a zero quota).
    norm_cap_ : float or None
        With ``row_norms`` "median" or "auto": the median norm, the cap of a
        group whose ``row_norms_`` is "median"; None otherwise or for zero X.
    rank_ : int
        Rank of the representation used.
    volume_ : float
        Log-volume ``log sqrt(det(F_S^T F_S))`` of the chosen rows F_S.
    coefficients_ : array of shape (n_samples, n_chosen)
        With ``strategy="maxvol"``: coefficients of every row of the
        representation on the chosen rows, in the order the rows were chosen
        (see :func:`~sketchsel.linalg.maxvol`).
    pivots_ : ndarray of shape (n_chosen,), int64
        The chosen rows in the order they were chosen, the columns of
        ``coefficients_``.
    residuals_ : dict
        With ``rank="auto"``: the relative residual of every rank tried.
    residual_ : float
        With ``gradients``: ``||G_S^T w - g|| / ||g||``, g the mean gradient.
    sample_weight_ : ndarray of shape (n_chosen,)
        With ``gradients``: the least-squares weights w, in the order of
        ``sample_indices_``, with ``G_S^T w`` closest to the mean gradient.
    With class balancing, ``rank_``, ``volume_``, ``coefficients_``,
    ``pivots_``, ``residuals_``, ``residual_`` and ``sample_weight_`` are
    lists with one entry per class (``pivots_`` indexing the class's rows).

    Notes
    -----
    The directions come from :class:`~sketchsel.FrequentDirections` sketches
    of ``2 * rank`` rows, which read X as a stream: under maxvol one per
    class; under thinning one of all the rows, in whose ``2 * rank``
    directions each class then takes its own ``rank`` leading ones.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel import FastMaxVol
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((1000, 5)) @ rng.standard_normal((5, 40))
    >>> selector = FastMaxVol(n_select=5, strategy="maxvol", row_norms=None,
    ...                       hard_cutoff=0.0).fit(X)
    >>> selector.select().shape
    (5,)
    >>> # every row of X is a combination of the 5 chosen rows
    >>> chosen = X[selector.pivots_]
    >>> bool(np.allclose(selector.coefficients_ @ chosen, X))
    True

    With class labels, each class gives its share of the rows:

    >>> y = np.repeat([0, 1], [800, 200])
    >>> balanced = FastMaxVol(n_select=50).fit(X, y)
    >>> balanced.class_quotas_.tolist(), np.bincount(y[balanced.select()]).tolist()
    ([40, 10], [40, 10])

    GRAFT's dynamic rank, from per-example logit gradients:

    >>> G = rng.standard_normal((1000, 4))
    >>> G -= G.mean(axis=1, keepdims=True)
    >>> graft = FastMaxVol(n_select=20, strategy="maxvol", rank="auto").fit(X, gradients=G)
    >>> graft.rank_, round(graft.residual_, 6)
    (3, 0.0)
    """

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "strategy": [StrOptions({"thinning", "maxvol"})],
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
        self, n_select=0.1, *, strategy="thinning", row_norms="auto", hard_cutoff="auto",
        rank=None, tol=1.05, max_iters=100, rank_rule="smallest_below_eps", eps=0.1,
        n_rank_candidates=3, class_balance="auto", random_state=None, backend=None,
    ):
        self.n_select = n_select
        self.strategy = strategy
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
        if self.rank == "auto" and self.strategy != "maxvol":
            raise ValueError(
                'rank="auto" is GRAFT\'s rank for maxvol: pass strategy="maxvol", or give '
                "rank an integer or None."
            )
        if self.rank == "auto" and gradients is None:
            raise ValueError(
                'rank="auto" chooses the rank from per-example gradients: pass '
                "fit(X, y, gradients=G), or give rank an integer."
            )
        return self._fit(X, y, gradients=gradients)

    def _auto_cuts(self, by_class):
        # Unlike agreement and moment matching, "auto" cuts without labels too
        # (GRAFT's embeddings have none), and that is how it was measured.
        return True

    def _reduce_array(self, X, xp, y):
        lengths = row_lengths(X)
        cap = self._norm_cap([lengths])
        if self.strategy == "thinning":
            # Read as a source of one batch, so that an array and a source share one sketch;
            # X is validated already.
            with config_context(assume_finite=True):
                return self._represent([(X, y)], lengths, y, cap, X.shape[1])
        return Reduced(rows=X, lengths=lengths, labels=y, fitted={"norm_cap_": cap})

    def _norm_cap(self, lengths):
        """The cap of ``row_norms="median"`` from the row lengths (in parts); None if unused."""
        return median_norm(lengths) if self.row_norms in ("auto", "median") else None

    def _choose_group(self, rows, group, data, rng, gradients=None):
        xp = array_namespace(rows)
        if not data.represented:
            rows = _scale(xp, rows, group.row_norms, data.fitted["norm_cap_"], group.cut)
        positions, fitted = self._select(rows, xp, group, rng, data.represented, gradients)
        return positions, None, {**fitted, "row_norms_": group.row_norms}

    def _rank(self, quota):
        """A group's rank before its features (and, under maxvol, its rows) bound it.

        ``rank``, or by default the quota, as many directions as maxvol picks
        rows; under maxvol never above the quota. Thinning follows a mean,
        which needs the same directions whatever the quota: by default
        THINNING_RANK, and a larger quota costs no wider a sketch.
        """
        if self.strategy == "thinning":
            return self.rank or THINNING_RANK
        return min(self.rank or quota, quota)

    def _select(self, X, xp, group, rng, represented, gradients):
        """The chosen positions among the rows of X and the group's fitted attributes."""
        n_select = group.quota
        n_samples, n_features = X.shape
        largest = min(n_select, n_features, n_samples)
        mean_gradient = None if gradients is None else _mean_gradient(xp, gradients)
        C = residuals = None
        if self.strategy == "thinning":
            rank = min(self._rank(n_select), n_features)
            features = _leading_coordinates(xp, X, rank)
            pivots = self._thin(features, group, rng)
        elif self.rank == "auto":
            # Leading directions in order, so that rank r uses the first r of them.
            features = _representation(X, largest, represented, force=True)
            rank, pivots, C, residuals = self._dynamic_rank(xp, features, mean_gradient,
                                                            largest, rng)
        else:
            rank = min(self._rank(n_select), largest)
            features = _representation(X, rank, represented)
            pivots, C, _ = _maxvol(xp, features, self.tol, self.max_iters)
            if len(pivots) < n_select:
                # Budget above the rank (or a rank-deficient X): add the rows the
                # chosen ones represent worst until the budget is met.
                pivots, C = _add_rows(xp, C, pivots, 0.0, n_select, n_select)
        take = xp.asarray(pivots, device=device(X))
        fitted = {
            "rank_": rank,
            "volume_": _log_volume(xp, xp.take(features[:, :rank], take, axis=0)),
            "pivots_": np.asarray(pivots, dtype=np.int64),
        }
        if C is not None:
            fitted["coefficients_"] = C
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

        A first pass reads the row lengths and labels, from which the plan
        (classes, quotas, the rows ``hard_cutoff`` leaves out, the scaling)
        and the median are built (unless the budget is a count,
        ``row_norms`` None or "unit", ``hard_cutoff`` 0 and ``class_balance``
        None, where nothing needs them). Then one pass sketches the scaled
        rows with Frequent Directions (see :meth:`_represent`; none when the
        rows are no wider than the directions kept) and one projects them on
        the leading directions, so memory is
        O(sketches + N * rank), never N x D; the choice is then the one
        ``fit`` makes on the whole array. Under maxvol with class balancing
        the class sketches are all held during the sketching pass, each up to
        a D x D float64 Gram matrix (Frequent Directions' route for D up to
        2,048).
        """
        if self.rank == "auto":
            raise ValueError(
                'rank="auto" needs per-example gradients, which a source of batches does not '
                "carry: pass X and gradients as arrays, or give rank an integer."
            )
        if (isinstance(self.n_select, Integral) and self.row_norms in (None, "unit")
                and self.hard_cutoff == 0 and self.class_balance is None):
            features, labels, n_features = self._project(
                source, None, [int(self.n_select)], [self.row_norms], None, None)
            # The plan is the base's: one group, nothing cut, so no length is read.
            return Reduced(rows=features, lengths=np.zeros(features.shape[0]), labels=labels,
                           n_features=n_features, fitted={"norm_cap_": None},
                           represented=True)
        lengths, labels, n_features = [], [], None
        for rows, batch_labels in iter_batches(source):
            rows = check_array(rows, backend=self.backend)[0]
            n_features = rows.shape[1] if n_features is None else n_features
            lengths.append(row_lengths(rows))
            if batch_labels is not None:
                labels.append(batch_labels)
        if not lengths:
            raise empty_source_error()
        cap = self._norm_cap(lengths)
        lengths = np.concatenate(lengths)
        return self._represent(source, lengths, labels_of_every_batch(labels, lengths.shape[0]),
                               cap, n_features)

    def _represent(self, source, lengths, y, cap, n_features):
        """The plan of the rows' ``lengths`` and labels ``y``, and the source's rows represented.

        Under maxvol each class is represented on the leading directions of
        its own sketch (its rank is its quota). Under thinning every row is
        represented on all ``2 * rank`` directions of one sketch of all the
        rows, and each class then on its own ``rank`` leading directions in
        their span (:func:`_leading_coordinates`): a sketch of each class's
        rows would cost a D x D eigendecomposition a class (the Gram route of
        :class:`~sketchsel.FrequentDirections`), and one sketch's ``rank``
        directions for every class lost to random subsets more often
        (``docs/guide.md``). ``cap`` is the median norm of
        ``row_norms="median"``, ``n_features`` the width of the first batch.
        """
        plan = build_plan(self, y, lengths, resolve_n_select(self.n_select, lengths.shape[0]))
        cut = np.zeros(lengths.shape[0], dtype=bool)
        for group in plan.groups:
            cut[group.rows] = group.cut
        modes = [group.row_norms for group in plan.groups]
        if self.strategy == "thinning":
            # Under thinning every class has the same row_norms (row_norms_mode).
            features, labels, n_features = self._project(
                source, None, [sum(group.quota for group in plan.groups)],
                modes[:1], cap, cut, n_features, span=True)
        else:
            codes = None
            if plan.classes is not None:
                codes = np.empty(lengths.shape[0], dtype=np.int64)
                for index, group in enumerate(plan.groups):
                    codes[group.rows] = index
            features, labels, n_features = self._project(
                source, codes, [group.quota for group in plan.groups], modes, cap, cut,
                n_features)
        if y is not None and not np.array_equal(labels, y):
            raise ValueError(
                "The source yielded other labels in one pass than in the next; it must yield "
                "the same batches in the same order on every pass (a torch DataLoader with "
                "shuffle=True does not)."
            )
        return Reduced(rows=features, lengths=lengths, labels=y, n_features=n_features,
                       fitted={"norm_cap_": cap}, plan=plan, represented=True)

    def _project(self, source, codes, budgets, modes, cap, cut, n_features=None, span=False):
        """Each group's scaled rows on the leading directions of its own sketch, and the labels.

        A group is a class (``codes`` gives each row's) or, without codes,
        all the rows; ``budgets`` holds the rows to choose from each and
        ``modes`` its ``row_norms``; ``cut`` marks the rows the hard cutoff
        leaves out (None: none). As in the in-memory path, a group's rank is
        :meth:`_rank`'s and a group no wider than its rank
        is used as it is. The groups' widths differ: zero columns pad the
        narrower, and ``_representation`` takes each group's first ``rank``
        columns back. With ``span``, every direction of a sketch, ``2 * rank``,
        is kept (see :meth:`_represent`). Two passes: one sketches, one
        projects; one when ``n_features``, the rows' width if known, is no
        wider than what every group keeps, which needs no sketch.
        """
        n_rows = None if cut is None else cut.shape[0]

        def scaled():
            for start, _, batch_labels, groups in _grouped(source, codes, n_rows,
                                                              self.backend):
                parts = []
                for code, take, part in groups:
                    part_cut = None if cut is None else cut[start + take]
                    parts.append((code, take, _scale(array_namespace(part), part, modes[code],
                                                     cap, part_cut)))
                yield batch_labels, parts

        ranks = [self._rank(int(budget)) for budget in budgets]
        kept = [2 * rank if span else rank for rank in ranks]
        chosen_from = [code for code, budget in enumerate(budgets) if budget]
        if n_features is not None and all(kept[code] >= n_features for code in chosen_from):
            sketches = dict.fromkeys(chosen_from)
        else:
            sketches = {}
            for _, groups in scaled():
                for code, _, part in groups:
                    if budgets[code] == 0:
                        continue
                    if code not in sketches:
                        sketches[code] = _directions_sketch(ranks[code], part.shape[1],
                                                            kept[code])
                    with config_context(assume_finite=True):  # _grouped validated the part
                        sketches[code].partial_fit(part)
            n_features = next(iter(sketches.values())).n_features_in_
        widths = {code: min(kept[code], n_features) for code in sketches}
        width = max(widths.values())
        features, labels = [], []
        for batch_labels, groups in scaled():
            parts, order = [], []
            for code, take, part in groups:
                xp = array_namespace(part)
                if code not in sketches:
                    part = part[:, :0]  # a class without quota: never chosen from
                elif widths[code] < n_features:
                    with config_context(assume_finite=True):
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
                labels.append(batch_labels)
        n_rows = sum(part.shape[0] for part in features)
        features = features[0] if len(features) == 1 else xp.concat(features, axis=0)
        return features, labels_of_every_batch(labels, n_rows), n_features

    def _dynamic_rank(self, xp, features, mean_gradient, largest, rng):
        """GRAFT's rank choice: the rows of rank r should reproduce the mean gradient."""
        if self.rank_rule == "min_residual":
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


def _directions_sketch(rank, n_features, n_components=None):
    """The sketch of ``2 * rank`` rows whose leading directions represent rows of ``n_features``.

    It keeps ``rank`` directions, or ``n_components``. One for the rows in
    memory and for each group of a source's, so that both represent the rows
    alike. The rows are already in their back-end's namespace; the sketch
    follows it.
    """
    return FrequentDirections(min(n_features, 2 * rank),
                              n_components=min(n_components or rank, n_features),
                              backend="array_api")


def _scale(xp, X, row_norms, cap, cut):
    """The rows as ``row_norms`` asks (the ``cap`` of "median"), the ``cut`` ones zero."""
    if row_norms == "unit":
        X = unit_rows(xp, X)
    elif row_norms == "median" and cap is not None:
        X = capped_rows(xp, X, cap)
    if cut is not None and cut.any():
        # A zero row adds no volume: maxvol takes it only when nothing else is left.
        keep = xp.asarray(np.where(cut, 0.0, 1.0), device=device(X))
        X = X * xp.astype(keep, X.dtype)[:, None]
    return X


def _leading_coordinates(xp, Z, rank):
    """The rows of Z on its ``rank`` leading right singular directions, exactly.

    Z is narrow (a class's coordinates in the span of a sketch of all the
    rows, at most ``2 * rank`` columns), so its Gram matrix is small; Z
    itself when it is no wider than ``rank``.
    """
    if Z.shape[1] <= rank:
        return Z
    _, directions, _ = _top_eigenpairs(xp, gram64(xp, Z), rank)
    return Z @ xp.astype(directions, Z.dtype)


def _representation(X, rank, represented, force=False):
    """X projected on its ``rank`` leading right singular directions (X itself if narrow).

    ``represented``: the rows of a source, represented already by
    :meth:`FastMaxVol._project` and padded with zero columns by class.
    """
    if represented:
        return X[:, :rank]
    n_features = X.shape[1]
    if n_features <= rank and not force:
        return X
    return _directions_sketch(rank, n_features).fit(X).transform(X)


def _grouped(source, codes, n_rows, backend):
    """One pass over a source: each batch's start, rows, labels and its rows by group.

    A group is a class (``codes`` gives each row's), or all the rows when
    ``codes`` is None; ``n_rows``, when known, is the rows of an earlier
    pass. Each batch comes as ``(start, rows, labels, groups)``, with a
    ``(group, row indices in the batch, rows)`` triple per group present; a
    batch of one group is passed as it is, not copied.
    """
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
        if codes is None or np.all(codes[start:stop] == codes[start]):
            group = 0 if codes is None else int(codes[start])
            groups = [(group, np.arange(stop - start), rows)]
        else:
            batch_codes = codes[start:stop]
            groups = []
            for code in np.unique(batch_codes):
                take = np.flatnonzero(batch_codes == code)
                rows_of_code = xp.take(rows, xp.asarray(take, device=device(rows)), axis=0)
                groups.append((int(code), take, rows_of_code))
        yield start, rows, batch_labels, groups
        start = stop
    check_rows(n_rows, start)
