"""AgreementSelector: keep the examples whose gradients agree with the consensus (SAGE)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._array_api import array_namespace, check_array, device, to_numpy, unit_rows
from ..sampling import weighted_sample_without_replacement
from ..sketch import FrequentDirections
from ..sketch._dask import map_row_blocks, validated_dtype
from ._base import (
    BaseSelector,
    check_rows,
    cut_by_group,
    is_small_budget,
    iter_batches,
    labels_of_every_batch,
    resolve_class_balance,
    row_groups,
    sketch_source,
)
from ._fast_maxvol import FastMaxVol
from ._strata import stratified_sample


class AgreementSelector(BaseSelector):
    """Select the examples whose sketched gradients agree most with their consensus.

    SAGE (Jha & Ahmadi-Asl 2025) in two steps. A Frequent Directions sketch
    of the per-example gradients G (``sketch_size`` rows) gives the dominant
    gradient directions V; each gradient is projected, ``z_i = V g_i``, and
    normalised, ``u_i = z_i / ||z_i||``. The consensus ``c`` is the
    normalised mean of the ``u_i`` (per class with ``class_balance``) and the
    score of example i is its cosine with the consensus, ``<u_i, c>``.
    The rows are then chosen from the scores by ``strategy``.

    The paper keeps the highest scores (``strategy="top"``): the most
    typical examples, which on held-out real data lose to random subsets of
    the same size (``benchmarks/results/bench_quality.md``: 0.34 against 0.91
    test accuracy at 10% of digits). The default adds rows greedily by score
    minus ``diversity`` times their largest cosine with a row already chosen,
    within each class: with the default weight the penalty dominates and the
    rows cover the directions of the gradients, the least agreeing (hardest)
    deciding among rows equally far from those already chosen. A cover sees
    directions only; from a fifth of the rows on, where a subset gains from
    the hard examples, the long gradients (Sorscher et al. 2022), the
    default lets :class:`FastMaxVol` choose on the projections instead
    (``fallback``).

    Parameters
    ----------
    n_select : int or float, default=0.1
        Rows to choose: a count, or a fraction of the rows of X.
    sketch_size : int, default=256
        Directions kept by the sketch (capped by the number of features).
    projection : {"fd", "gaussian"}, default="fd"
        "fd" projects on the orthonormal leading directions of a Frequent
        Directions sketch; "gaussian" on a seeded Gaussian matrix with
        ``N(0, 1/sketch_size)`` entries, the paper's ablation, which needs no
        sketching pass.
    strategy : {"diverse", "top", "stratified", "proportional"}, default="diverse"
        How rows are chosen from the scores (within each class with
        ``class_balance``):

        - "diverse": greedily, by score minus ``diversity`` times the largest
          cosine with a row already chosen; O(n_select * n_samples *
          sketch_size) time, so for millions of rows prefer "stratified".
        - "top": the highest scores (SAGE as published).
        - "stratified": coverage-centric selection (Zheng et al. 2023): drop
          the ``prune`` fraction of rows least preferred, cut the range of
          the scores into ``n_strata`` intervals of equal width and draw the
          same number of rows from each at random (a stratum too small keeps
          all its rows and the others share the rest). O(n_samples).
        - "proportional": draw rows without replacement with probability
          proportional to ``(1 + score) / 2``, or ``(1 - score) / 2`` for
          hard rows (see ``prefer``).
    prefer : {"auto", "easy", "hard"}, default="auto"
        Which end of the scores is preferred: "easy" the examples agreeing
        with the consensus, "hard" those disagreeing with it. "auto" is
        "hard" for "diverse", where the cover keeps the hard examples from
        crowding into one outlying tail (on the benchmark hard won at 10% and
        25% on all three datasets); for the other strategies it follows
        Sorscher et al. (2022), easy examples when the budget is below half
        the rows and hard ones otherwise.
    diversity : float, default=32.0
        Weight of the redundancy penalty of ``strategy="diverse"``; 0 keeps
        the top scores. Scores and penalty are cosines, in [-1, 1].
    n_strata : int, default=10
        Intervals of the score range for ``strategy="stratified"``.
    prune : float, default=0.0
        Fraction of each class's rows dropped from the end ``prefer`` does
        not favour before ``strategy="stratified"`` samples (the hardest
        examples, often mislabelled ones, when preferring easy ones); never
        below the budget. Of the rows ``hard_cutoff`` keeps.
    hard_cutoff : float or "auto", default="auto"
        Fraction of the rows (of each class, with ``class_balance``) that
        cannot be chosen: those with the longest projections ``z_i``, whose
        lengths are the gradients' where the sketch spans them. With
        per-example gradients these are the hardest examples (the largest
        GraNd scores, Paul et al. 2021), often mislabelled or atypical, which
        a small subset cannot afford (Sorscher et al. 2022; Zheng et al.
        2023); the unit projections, and so the scores, no longer see them.
        They still count in the consensus and are scored. Never leaves fewer
        rows than the budget; rows no longer than the longest kept are kept.
        "auto" leaves out 0.1 of a class's rows when they are selected by
        class (``class_balance``, with class labels) and its quota is below
        20% of them (with "equal", its share before the redistribution of
        what small classes leave), and none otherwise. Over the 5
        splits of ``benchmarks/bench_quality.py`` (linear model) it takes 5%
        of digits, breast cancer and wine from 0.840, 0.943 and 0.849 test
        accuracy to 0.912, 0.962 and 0.907 (random subsets: 0.854, 0.936
        and 0.751) and 10% of breast cancer from 0.958 to 0.965; with the
        MLP it costs 10% of wine (0.911 against 0.973, 13 rows), which over
        splits 0-14 it did not (0.941 against 0.956, random 0.915).
    fallback : {"maxvol"} or None, default="maxvol"
        What chooses the rows with ``strategy="diverse"`` (and a positive
        ``diversity``) when the budget is at least a fifth of the rows (of a
        class's, with ``class_balance``; of those ``hard_cutoff`` keeps).
        "maxvol": :class:`FastMaxVol` with its defaults, which at such
        budgets take the projections ``z_i`` as they are and cut none: the
        rows of largest volume, which the longest projections (the hardest
        examples) dominate; ``prefer``, ``diversity`` and ``random_state``
        then play no part in the choice. None: the greedy cover at every
        budget. Over splits 0-24 of the protocol of
        ``benchmarks/bench_quality.py`` (3 datasets, 2 models), at 25% the
        fallback met the target in 6 of 6 cases against 3 for the cover
        (digits: 0.967 test accuracy against 0.956 with the linear model,
        0.973 against 0.962 with the MLP; random subsets: 0.942 and 0.943).
    store_projections : bool, default=True
        With a source of batches: keep the ``n_samples x sketch_size``
        projections between passes (two passes), or not (three passes: one
        to sketch, one to sum the consensus, one to score; O(n_samples)
        memory besides the sketch). The greedy variant needs them kept.
    class_balance : {"auto", "equal", "proportional"} or None, default="auto"
        Score each example against its own class's consensus and select
        within classes by quota: "proportional" keeps the class shares;
        "equal" gives every class ``n_select / n_classes`` rows, and the rows
        a class too small for its quota leaves go to the preferred scores
        among the other classes' remaining rows. None uses one consensus and
        ignores ``y``; "auto" is "proportional" when ``y`` holds class
        labels and None otherwise.
    random_state : int, RandomState instance or None, default=None
        Seeds the Gaussian projection and the draws of "stratified" and
        "proportional"; the FD projection and "diverse" and "top" are
        deterministic.
    backend : {"auto", "numpy", "cupy", "array_api"}, default=None
        Where to compute; None uses the global setting of
        :func:`sketchsel.set_config`.

    Attributes
    ----------
    sample_indices_ : ndarray of shape (n_chosen,), int64
        Sorted indices of the chosen rows.
    scores_ : ndarray of shape (n_samples,)
        Cosine of each example's sketched gradient with its consensus, in
        [-1, 1]. A zero gradient, or one orthogonal to every sketched
        direction, agrees with nothing and scores 0.
    components_ : array of shape (n_directions, n_features)
        The projection V.
    class_balance_ : {"equal", "proportional"} or None
        The class balancing applied ("auto" resolved).
    n_hard_cut_ : int or list
        Rows ``hard_cutoff`` left out; with class balancing, one count per
        class of ``classes_`` (None for a class with a zero quota).
    fallback_used_ : bool or list
        Whether ``fallback`` chose the rows; with class balancing, one per
        class (None for a class with a zero quota).
    classes_, class_quotas_ : ndarray
        With class balancing: the classes and the rows taken from each
        (after the redistribution by score of "equal").
    n_samples_fit_ : int
        Rows of the X given to fit.
    n_features_in_ : int
        Features of X.

    Notes
    -----
    The reference code projects on the sketch itself, ``B g`` with rows of
    B scaled by the singular values; that weights the cosine towards the
    top directions, so it is not the cosine of the gradients even when the
    sketch is exact. Projecting on the orthonormal directions makes the
    scores the exact cosine-to-consensus of the gradients whenever the sketch
    spans them (``sketch_size >= rank(G)``), and an approximation of it
    otherwise.

    ``fit`` also takes a re-iterable source of ``(G_batch, y_batch)`` pairs:
    one pass sketches, a second keeps the ``n_samples x sketch_size``
    projections, so memory is O(sketch_size (D + N)), never N x D, and the
    selection equals the in-memory one.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel import AgreementSelector
    >>> rng = np.random.default_rng(0)
    >>> G = rng.standard_normal((500, 64)) + 2.0  # gradients sharing a direction
    >>> G[:10] *= -1                              # ten that disagree
    >>> selector = AgreementSelector(n_select=0.4, strategy="top").fit(G)
    >>> bool(np.all(selector.scores_[:10] < 0))
    True
    >>> bool(np.isin(np.arange(10), selector.select()).any())
    False

    The passes by hand, for gradients computed batch by batch in a training
    loop: sketch every batch, then project every batch, then select from the
    small stacked projections (a rotation of the sketch space changes no
    cosine and no length, so the selection is the same):

    >>> batches = np.array_split(G, 5)
    >>> by_hand = AgreementSelector(n_select=0.4, strategy="top")
    >>> for batch in batches:                                   # pass 1
    ...     _ = by_hand.partial_fit(batch)
    >>> Z = np.vstack([by_hand.project(batch) for batch in batches])  # pass 2
    >>> Z.shape
    (500, 64)
    >>> chosen = AgreementSelector(n_select=0.4, strategy="top").fit_select(Z)
    >>> bool(np.array_equal(chosen, selector.select()))
    True

    With class labels and a budget below a fifth of each class, the longest
    tenth of each class's projections, its hardest examples, is left out:

    >>> y = np.arange(500) % 2
    >>> labelled = AgreementSelector(n_select=40).fit(G, y)
    >>> labelled.n_hard_cut_
    [25, 25]
    >>> lengths = np.linalg.norm(labelled.project(G), axis=1)
    >>> longest = [np.flatnonzero(y == c)[np.argsort(lengths[y == c])[-25:]] for c in (0, 1)]
    >>> bool(np.isin(np.concatenate(longest), labelled.select()).any())
    False
    """

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "sketch_size": [Interval(Integral, 1, None, closed="left")],
        "projection": [StrOptions({"fd", "gaussian"})],
        "strategy": [StrOptions({"diverse", "top", "stratified", "proportional"})],
        "prefer": [StrOptions({"easy", "hard", "auto"})],
        "diversity": [Interval(Real, 0, None, closed="left")],
        "n_strata": [Interval(Integral, 1, None, closed="left")],
        "prune": [Interval(Real, 0, 1, closed="left")],
        "hard_cutoff": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
        "fallback": [StrOptions({"maxvol"}), None],
        "store_projections": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self, n_select=0.1, *, sketch_size=256, projection="fd", strategy="diverse",
        prefer="auto", diversity=32.0, n_strata=10, prune=0.0, hard_cutoff="auto",
        fallback="maxvol", store_projections=True, class_balance="auto", random_state=None,
        backend=None,
    ):
        self.n_select = n_select
        self.sketch_size = sketch_size
        self.projection = projection
        self.strategy = strategy
        self.prefer = prefer
        self.diversity = diversity
        self.n_strata = n_strata
        self.prune = prune
        self.hard_cutoff = hard_cutoff
        self.fallback = fallback
        self.store_projections = store_projections
        self.class_balance = class_balance
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Score the rows of X by agreement and choose the highest.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or source of batches
            Per-example gradients, or a re-iterable source of
            ``(G_batch, y_batch)`` pairs.
        y : array-like of shape (n_samples,), default=None
            Class labels; used by ``class_balance`` ("auto": when given).

        Returns
        -------
        self : AgreementSelector
            The fitted selector.
        """
        return self._fit(X, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Add a batch of gradients to the sketch: the first pass, by hand.

        For gradients computed on the fly, where no re-iterable source
        exists: sketch every batch with ``partial_fit``, then project every
        batch with :meth:`project` and select from the stacked projections,
        which hold the same cosines as the gradients (see the class example).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of per-example gradients.
        y : None
            Ignored.

        Returns
        -------
        self : AgreementSelector
            This selector, with the updated sketch in ``sketch_``.
        """
        if not hasattr(self, "sketch_"):
            k = self.sketch_size
            self.sketch_ = FrequentDirections(k, backend=self.backend)
        self.sketch_.partial_fit(X)
        self.n_features_in_ = self.sketch_.n_features_in_
        return self

    def project(self, X):
        """Projections of gradients on the selector's directions.

        The directions are those of the sketch built by :meth:`partial_fit`
        since the last :meth:`fit`, or else those of the last fit (for the
        Gaussian projection, the seeded matrix).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Per-example gradients.

        Returns
        -------
        Z : array of shape (n_samples, n_directions)
            ``z_i = V g_i``: their cosines are the scores' and their lengths
            decide ``hard_cutoff``.
        """
        X, xp = check_array(X, backend=self.backend)
        if self.projection == "gaussian":
            directions = self._gaussian(xp, X)
        elif hasattr(self, "sketch_"):
            directions = self.sketch_.components_
        else:
            check_is_fitted(self, "components_")
            directions = self.components_
        if X.shape[1] != directions.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the directions have {directions.shape[1]}."
            )
        return X @ xp.astype(directions, X.dtype).T

    def _gaussian(self, xp, like):
        """The seeded Gaussian projection, ``sketch_size x n_features``, beside ``like``."""
        n_features = like.shape[1]
        k = min(self.sketch_size, n_features)
        matrix = check_random_state(self.random_state).standard_normal((k, n_features))
        return xp.asarray(matrix / np.sqrt(k), dtype=like.dtype, device=device(like))

    def _choose(self, X, xp, n_select, codes, quotas, row_data):
        # From a source of batches (_reduce_source), X holds the projections
        # already, or, without stored projections, the scores and the
        # projections' lengths as two columns.
        source = self.__dict__.pop("_from_source", None)
        if source is None:
            if self.projection == "gaussian":
                directions = self._gaussian(xp, X)
            else:
                k = min(self.sketch_size, X.shape[1])
                directions = FrequentDirections(k, backend="array_api").fit(X).components_
            projections = X @ directions.T
        else:
            directions = source["directions"]
            projections = None if source["scored"] else X
        if projections is None:
            units = None
            scores = np.asarray(to_numpy(X[:, 0]), dtype=np.float64)
            lengths = np.asarray(to_numpy(X[:, 1]), dtype=np.float64)
        else:
            norms = xp.linalg.vector_norm(projections, axis=1)
            units = unit_rows(xp, projections, norms)
            scores = np.empty(X.shape[0])
            lengths = np.asarray(to_numpy(norms), dtype=np.float64)
        groups = row_groups(codes, X.shape[0], None if quotas is None else quotas.size)
        budgets = [n_select] if codes is None else quotas
        if self.class_balance_ == "equal":
            # k / C each, capped by the class sizes; what small classes leave
            # goes to the preferred scores of the others, below.
            share, extra = divmod(n_select, quotas.size)
            counts = np.array([rows.size for rows in groups])
            budgets = np.minimum(counts, share + (np.arange(quotas.size) < extra))
        # Higher is preferred: the scores, or their negatives for hard examples.
        sign = 1.0 if self._prefers_easy(n_select, X.shape[0]) else -1.0
        rng = check_random_state(self.random_state)
        cut, n_cut = cut_by_group(lengths, groups, budgets, self.hard_cutoff, codes is not None)
        chosen, fallback_used = [], []
        for rows, quota in zip(groups, budgets):
            part = units
            if units is not None:
                if codes is not None:  # a copy of the class's rows only
                    part = xp.take(units, xp.asarray(rows, device=device(X)), axis=0)
                scores[rows] = _agreement(xp, part)
            if quota:
                kept = np.flatnonzero(~cut[rows])
                fallback_used.append(self._falls_back(int(quota), kept.size))
                if fallback_used[-1]:
                    take = xp.asarray(rows[kept], device=device(X))
                    maxvol = FastMaxVol(int(quota), backend=self.backend)
                    picked = maxvol.fit(xp.take(projections, take, axis=0)).sample_indices_
                else:
                    if part is not None and kept.size < rows.size:
                        part = xp.take(part, xp.asarray(kept, device=device(X)), axis=0)
                    picked = self._pick(xp, part, sign * scores[rows[kept]], int(quota), rng)
                chosen.append(rows[kept[picked]])
            else:
                fallback_used.append(None)
        chosen = np.concatenate(chosen)
        fitted = {
            "scores_": scores,
            "components_": directions,
            "n_hard_cut_": n_cut[0] if codes is None else n_cut,
            "fallback_used_": fallback_used[0] if codes is None else fallback_used,
        }
        if chosen.size < n_select:
            # The rows a small class leaves, by preference, the rows cut off last.
            rest = np.setdiff1d(np.arange(X.shape[0]), chosen)
            order = np.lexsort((-sign * scores[rest], cut[rest]))
            chosen = np.concatenate([chosen, rest[order[: n_select - chosen.size]]])
            fitted["class_quotas_"] = np.bincount(codes[chosen], minlength=quotas.size)
        return chosen, fitted

    def _falls_back(self, n_select, n_rows):
        """Whether ``fallback`` chooses n_select of a group's n_rows rows."""
        return (self._compares_rows() and self.fallback == "maxvol"
                and not is_small_budget(n_select, n_rows))

    def _compares_rows(self):
        """Whether the choice compares rows' projections, not only their scores."""
        return self.strategy == "diverse" and self.diversity > 0

    def _prefers_easy(self, n_select, n_samples):
        if self.prefer == "auto":
            return not self._compares_rows() and 2 * n_select < n_samples
        return self.prefer == "easy"

    def _pick(self, xp, units, preference, n_select, rng):
        """Positions of n_select rows of one group, by the strategy; higher preference first."""
        if self.strategy == "stratified":
            kept = max(n_select, preference.size - int(self.prune * preference.size))
            keep = np.argsort(-preference, kind="stable")[:kept]
            return keep[stratified_sample(rng, preference[keep], n_select, self.n_strata)]
        if self.strategy == "proportional":
            # Clipped: a float32 cosine can exceed 1 by a rounding error.
            weights = np.clip((1 + preference) / 2, 0.0, 1.0)
            return weighted_sample_without_replacement(rng, weights, n_select)
        if self.strategy == "top" or self.diversity == 0:
            return np.argsort(-preference, kind="stable")[:n_select]
        # A zero projection has no direction: it adds nothing to the cover, so it
        # counts as redundant as a copy of a chosen row and comes last.
        zero = np.asarray(to_numpy(xp.linalg.vector_norm(units, axis=1))) == 0
        penalty = np.where(zero, 1.0, -np.inf)
        picked = []
        gain = preference - self.diversity * np.maximum(penalty, 0.0)
        for _ in range(n_select):
            best = int(np.argmax(gain))
            picked.append(best)
            similarity = to_numpy(units @ units[best, :])
            penalty = np.maximum(penalty, similarity)
            gain = preference - self.diversity * penalty
            gain[picked] = -np.inf
        return np.asarray(picked, dtype=np.int64)

    def _reduce_source(self, source):
        """What the in-memory path needs from a source's rows, in two or three passes.

        Pass 1 sketches the rows and counts them (skipped for "gaussian").
        With ``store_projections``, pass 2 keeps the ``n_samples x sketch_size``
        projections, from which the in-memory path gives the same scores as
        for the whole array. Without, pass 2 sums the unit projections per
        consensus group and pass 3 scores every row, and only the scores and
        the projections' lengths are kept.
        """
        if self._compares_rows() and not self.store_projections:
            raise ValueError(
                'strategy="diverse" compares the chosen rows\' projections, so it needs '
                'store_projections=True; or use strategy="stratified", "top" or "proportional".'
            )
        directions, n_rows = None, 0
        if self.projection == "fd":
            sketch, n_rows = sketch_source(
                source,
                lambda n_features: FrequentDirections(self.sketch_size, backend=self.backend),
                self.backend,
            )
            # Only the directions are kept: the sketch's state is freed before pass 2.
            directions = sketch.components_
            del sketch
        if self.store_projections:
            rows, y, directions = self._stored_projections(source, directions, n_rows)
        else:
            rows, y, directions = self._streamed_scores(source, directions)
        self._from_source = {"directions": directions, "scored": not self.store_projections}
        return rows, y, directions.shape[1]

    def _reduce_dask(self, X, y):
        """Scores of a Dask array's rows, blockwise: the sketch and 2 numbers a row travel.

        The directions come from a Frequent Directions sketch merged up a
        tree (or the seeded Gaussian matrix); the blocks' unit projections
        are summed per consensus group where they live, and each block is
        then scored against its rows' consensus. The in-memory path chooses
        from the scores and the projections' lengths, as without
        ``store_projections``.
        """
        if self._compares_rows():
            raise ValueError(
                'strategy="diverse" compares the chosen rows\' projections, which the '
                'blockwise scoring of a Dask array does not keep: use strategy="stratified" '
                '(O(n_samples), close to it on the benchmark), "top" or "proportional", or a '
                "NumPy array."
            )
        import dask.array as da

        X = X.rechunk({1: -1})
        if np.isnan(X.shape[0]):  # unknown block sizes, after boolean indexing for one
            X = X.compute_chunk_sizes()
        n_features = X.shape[1]
        dtype = validated_dtype(X)
        if self.projection == "fd":
            sketch = FrequentDirections(self.sketch_size, backend="numpy").fit(X)
            directions = np.asarray(to_numpy(sketch.components_))
        else:
            directions = self._gaussian(np, np.empty((0, n_features), dtype=dtype))

        projections = map_row_blocks(
            X, lambda rows: rows @ directions.T.astype(rows.dtype), directions.shape[0]
        )
        lengths = da.linalg.norm(projections, axis=1)
        units = unit_rows(da, projections, lengths)
        if resolve_class_balance(self.class_balance, y) is None:
            groups = da.ones((X.shape[0], 1), chunks=(X.chunks[0], 1))
        else:
            y = self._class_labels(y, X.shape[0])
            codes = np.unique(y, return_inverse=True)[1]
            groups = da.from_array(
                np.eye(codes.max() + 1)[codes], chunks=(X.chunks[0], -1)
            )
        totals = (groups.T @ units.astype(np.float64)).compute()
        consensus = unit_rows(np, totals).astype(units.dtype)
        scores = ((units @ consensus.T) * groups).sum(axis=1)
        scored = np.stack([np.asarray(part, dtype=np.float64)
                           for part in da.compute(scores, lengths)], axis=1)
        self._from_source = {"directions": directions, "scored": True}
        return scored, y, n_features

    def _batch_projections(self, source, directions):
        """Pass over a source: (projections, labels or None) per batch, and the directions."""
        for rows, labels in iter_batches(source):
            rows, xp = check_array(rows, backend=self.backend)
            if directions is None:
                directions = self._gaussian(xp, rows)
            projections = rows @ xp.astype(directions, rows.dtype).T
            labels = None if labels is None else column_or_1d(to_numpy(labels))
            yield projections, labels, directions

    def _batch_units(self, source, directions):
        """Pass over a source: (unit projections, the projections' lengths, labels), directions."""
        for projections, labels, directions in self._batch_projections(source, directions):
            xp = array_namespace(projections)
            lengths = xp.linalg.vector_norm(projections, axis=1)
            yield unit_rows(xp, projections, lengths), lengths, labels, directions

    def _stored_projections(self, source, directions, n_rows):
        stored, pieces, labels, start = None, [], [], 0
        for part, batch_labels, directions in self._batch_projections(source, directions):
            stop = start + part.shape[0]
            if n_rows:
                # The row count is known from pass 1: fill one array, so that the
                # projections never exist twice.
                if stop > n_rows:
                    start = stop
                    break
                if stored is None:
                    shape = (n_rows, part.shape[1])
                    stored = array_namespace(part).zeros(
                        shape, dtype=part.dtype, device=device(part)
                    )
                stored[start:stop, :] = part
            else:
                pieces.append(part)
            start = stop
            if batch_labels is not None:
                labels.append(batch_labels)
        check_rows(n_rows, start)
        if stored is None:
            stored = array_namespace(pieces[0]).concat(pieces, axis=0)
        return stored, labels_of_every_batch(labels, start), directions

    def _streamed_scores(self, source, directions):
        # Sums per label, always: whether they are one consensus or one per class
        # is known only once every label has been seen ("auto").
        totals, n_rows, seen_labels = {}, 0, []
        use_labels = self.class_balance is not None
        for units, _, labels, directions in self._batch_units(source, directions):
            xp = array_namespace(units)
            n_rows += units.shape[0]
            if self.class_balance not in ("auto", None) and labels is None:
                raise ValueError(
                    f"class_balance={self.class_balance!r} needs labels: yield "
                    f"(X_batch, y_batch) pairs."
                )
            if labels is not None:
                seen_labels.append(labels)
            for key, rows in _groups(labels if use_labels else None, units.shape[0]):
                part = xp.take(units, xp.asarray(rows, device=device(units)), axis=0)
                total = xp.sum(part, axis=0, dtype=xp.float64)
                totals[key] = total if key not in totals else totals[key] + total
        check_rows(n_rows, n_rows)
        all_labels = labels_of_every_batch(seen_labels, n_rows)
        per_class = resolve_class_balance(self.class_balance, all_labels) is not None
        if not per_class:
            totals = {None: sum(totals.values())}
        consensus = {}
        for key, total in totals.items():
            norm = float(xp.linalg.vector_norm(total))
            consensus[key] = None if norm == 0 else total / norm
        # Column 0 the scores, column 1 the projections' lengths (for hard_cutoff).
        scored, seen = np.zeros((n_rows, 2)), 0
        for units, lengths, labels, _ in self._batch_units(source, directions):
            for key, rows in _groups(labels if per_class else None, units.shape[0]):
                if consensus.get(key) is not None:
                    part = xp.take(units, xp.asarray(rows, device=device(units)), axis=0)
                    direction = xp.astype(consensus[key], units.dtype)
                    scored[seen + rows, 0] = to_numpy(part @ direction)
            scored[seen : seen + units.shape[0], 1] = to_numpy(lengths)
            seen += units.shape[0]
        check_rows(n_rows, seen)
        return scored, all_labels, directions


def _groups(labels, n_rows):
    """(key, row indices) of the consensus groups of a batch: one, or one per label."""
    if labels is None:
        return [(None, np.arange(n_rows))]
    return [(key, np.flatnonzero(labels == key)) for key in np.unique(labels)]


def _agreement(xp, units):
    """Cosine of each unit row with the normalised mean of the rows (0 if the mean is 0).

    The mean is summed in float64 without a float64 copy of the rows.
    """
    total = xp.sum(units, axis=0, dtype=xp.float64)
    norm = float(xp.linalg.vector_norm(total))
    if norm == 0:
        return np.zeros(units.shape[0])
    consensus = xp.astype(total / norm, units.dtype)
    return np.asarray(to_numpy(units @ consensus), dtype=np.float64)
