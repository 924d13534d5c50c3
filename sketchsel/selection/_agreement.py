"""AgreementSelector: keep the examples whose gradients agree with the consensus (SAGE)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._array_api import array_namespace, check_array, device, row_norms, to_numpy, unit_rows
from ..linalg import projection_block
from ..linalg._projection import seed_from
from ..sampling import weighted_sample_without_replacement
from ..sketch import FrequentDirections
from ..sketch._dask import gather_rows, map_row_blocks, validated_dtype
from ..sketch._shrink import weighted_sum64
from ._base import BaseSelector, Reduced, batch_seed, row_lengths
from ._docs import shared_docs
from ._policy import class_labels, resolve_class_balance
from ._sources import check_rows, iter_batches, labels_of_every_batch, sketch_source
from ._strata import stratified_sample


@shared_docs
class AgreementSelector(BaseSelector):
    """Select the examples whose sketched gradients agree most with their consensus.

    SAGE (Jha & Ahmadi-Asl 2025) in two steps. A Frequent Directions sketch
    of the per-example gradients G (``sketch_size`` rows) gives the dominant
    gradient directions V; each gradient is projected, ``z_i = V g_i``, and
    normalised, ``u_i = z_i / ||z_i||``. The consensus ``c`` is the
    normalised mean of the ``u_i`` (per class with ``class_balance``) and the
    score of example i is its cosine with the consensus, ``<u_i, c>``. The
    rows are then chosen from the scores by ``strategy``, within each group
    of the plan (see :mod:`sketchsel.selection._policy`).

    The paper keeps the highest scores (``strategy="top"``), the most typical
    examples. On held-out data that rule, like every rule that prefers some
    scores or long gradients, lost to random subsets, and with wrong labels
    by far; the default therefore thins each class's projections instead
    (``strategy="thinning"``: a subset whose mean follows the class's), which
    the scores do not decide. Measurements: ``docs/guide.md``,
    ``benchmarks/results/bench_quality.md``.

    Parameters
    ----------
    [[n_select]]
    sketch_size : int, default=256
        Directions kept by the projection (capped by the number of features;
        with "fd", gradients no wider are used as they are, the identity).
    projection : {"fd", "gaussian"}, default="fd"
        "fd" projects on the orthonormal leading directions of a Frequent
        Directions sketch; "gaussian" on the seeded Gaussian matrix of
        :func:`~sketchsel.linalg.random_projection` (entries
        ``N(0, 1/sketch_size)``), the paper's ablation, which needs no
        sketching pass.
    strategy : {"thinning", "diverse", "top", "stratified", "proportional"}, default="thinning"
        How a group's rows are chosen:

        - "thinning": from each of ``quota`` random groups of rows, the one
          that keeps the subset's mean of projections on the data's (group
          thinning, :func:`~sketchsel.selection._thinning.group_thinning`);
          the scores are computed but do not decide. O(n_samples *
          sketch_size), one pass.
        - "diverse": greedily, by score minus ``diversity`` times the largest
          cosine with a row already chosen; O(n_select * n_samples *
          sketch_size) time, so for millions of rows prefer "stratified".
        - "top": the highest scores (SAGE as published).
        - "stratified": coverage-centric selection (Zheng et al. 2023): drop
          the ``prune`` fraction of rows least preferred, cut the range of
          the scores into ``n_strata`` intervals of equal width and draw the
          same number of rows from each at random. O(n_samples).
        - "proportional": draw rows without replacement with probability
          proportional to ``(1 + score) / 2``, or ``(1 - score) / 2`` for
          hard rows (see ``prefer``).
    prefer : {"auto", "easy", "hard"}, default="auto"
        Which end of the scores is preferred: "easy" the examples agreeing
        with the consensus, "hard" those disagreeing with it. "auto" is
        "hard" for "diverse", where the cover keeps the hard examples from
        crowding into one tail, and otherwise, after Sorscher et al. (2022),
        "easy" when ``n_select`` is below half of all the rows, in every
        class alike (:func:`~sketchsel.selection._policy.prefers_easy`).
    diversity : float, default=32.0
        Weight of the redundancy penalty of ``strategy="diverse"``; 0 keeps
        the top scores. Scores and penalty are cosines, in [-1, 1].
    n_strata : int, default=10
        Intervals of the score range for ``strategy="stratified"``.
    prune : float, default=0.0
        Fraction of a group's rows (of those ``hard_cutoff`` keeps) dropped
        from the end ``prefer`` does not favour before ``"stratified"``
        samples; never below the quota.
    [[hard_cutoff]]
        Here the lengths are the projections' ``||z_i||``; the rows cut
        still count in the consensus and are scored.
    fallback : {"maxvol"} or None, default="maxvol"
        With a choice that compares rows (``"diverse"``, ``diversity > 0``):
        "maxvol" lets :class:`FastMaxVol` choose a group's rows on their
        projections when its quota is at least a fifth of the rows
        ``hard_cutoff`` keeps, where a subset gains from the long, hard
        examples that a cover of directions cannot see
        (:func:`~sketchsel.selection._policy.cover_falls_back`). None: the
        cover at every budget.
    store_projections : bool, default=True
        With a source of batches: keep the ``n_samples x sketch_size``
        projections between passes (two passes), or not (three passes: one
        to sketch, one to sum the consensus, one to score; O(n_samples)
        memory besides the sketch). The cover needs them kept.
    [[class_balance]]
    random_state : int, RandomState instance or None, default=None
        Seeds the Gaussian projection and the draws of "stratified",
        "proportional" and "thinning"; the FD projection, "diverse" and
        "top" are deterministic.
    [[backend]]

    Attributes
    ----------
    [[fitted_common]]
    scores_ : ndarray of shape (n_samples,)
        Cosine of each example's sketched gradient with its consensus, in
        [-1, 1]; 0 for a zero projection and for a class with a zero quota.
    components_ : array of shape (n_directions, n_features)
        The projection V.
    fallback_used_ : bool or list
        Whether ``fallback`` chose the rows; one per class with class balancing.

    Notes
    -----
    The reference code projects on ``B g``, the sketch's rows scaled by the
    singular values, which weights the cosine towards the top directions;
    on the orthonormal directions the scores are the exact cosines of the
    gradients whenever the sketch spans them (``sketch_size >= rank(G)``).

    ``fit`` also takes a re-iterable source of ``(G_batch, y_batch)`` pairs
    and a Dask array, and chooses as in memory: memory O(sketch_size (D + N)),
    never N x D (see ``docs/dask.md``).

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
    """

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "sketch_size": [Interval(Integral, 1, None, closed="left")],
        "projection": [StrOptions({"fd", "gaussian"})],
        "strategy": [StrOptions({"diverse", "top", "stratified", "proportional", "thinning"})],
        "prefer": [StrOptions({"easy", "hard", "auto"})],
        "diversity": [Interval(Real, 0, None, closed="left")],
        "n_strata": [Interval(Integral, 1, None, closed="left")],
        "prune": [Interval(Real, 0, 1, closed="left")],
        "hard_cutoff": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
        "fallback": [StrOptions({"maxvol"}), None],
        "store_projections": ["boolean"],
        "random_state": ["random_state"],
    }
    _budget_decides_fallback = True

    def __init__(
        self, n_select=0.1, *, sketch_size=256, projection="fd", strategy="thinning",
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
        which hold the same cosines as the gradients.

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

        Examples
        --------
        Sketch every batch, then project every batch, then select from the
        small stacked projections (a rotation of the sketch space changes no
        cosine and no length, so the selection is the one on the gradients):

        >>> import numpy as np
        >>> from sketchsel import AgreementSelector
        >>> rng = np.random.default_rng(0)
        >>> G = rng.standard_normal((500, 64)) + 2.0
        >>> batches = np.array_split(G, 5)
        >>> by_hand = AgreementSelector(n_select=0.4, strategy="top")
        >>> for batch in batches:                                   # pass 1
        ...     _ = by_hand.partial_fit(batch)
        >>> Z = np.vstack([by_hand.project(batch) for batch in batches])  # pass 2
        >>> Z.shape
        (500, 64)
        >>> chosen = AgreementSelector(n_select=0.4, strategy="top").fit_select(Z)
        >>> bool(np.array_equal(chosen, AgreementSelector(n_select=0.4, strategy="top")
        ...                     .fit_select(G)))
        True

        With class labels and a quota below a fifth of each class, a strategy
        other than thinning (which caps the long rows instead) leaves out the
        longest tenth of each class's projections, its hardest examples:

        >>> y = np.arange(500) % 2
        >>> labelled = AgreementSelector(n_select=40, strategy="top").fit(G, y)
        >>> labelled.n_hard_cut_
        [25, 25]
        >>> lengths = np.linalg.norm(labelled.project(G), axis=1)
        >>> longest = [np.flatnonzero(y == c)[np.argsort(lengths[y == c])[-25:]] for c in (0, 1)]
        >>> bool(np.isin(np.concatenate(longest), labelled.select()).any())
        False
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
        if self.projection == "fd" and hasattr(self, "sketch_"):
            directions = self.sketch_.components_
        elif hasattr(self, "components_"):
            directions = self.components_
        elif self.projection == "gaussian":
            directions = self._directions(X, batch_seed(self.random_state, "project"))
        else:
            check_is_fitted(self, "components_")
        if X.shape[1] != directions.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the directions have {directions.shape[1]}."
            )
        return X @ xp.astype(directions, X.dtype).T

    def _directions(self, like, seed, rows=None):
        """The projection V (``n_directions x n_features``), beside ``like``.

        "gaussian": rows of :func:`~sketchsel.linalg.projection_block` of the
        seed (the matrix that :func:`~sketchsel.linalg.random_projection`
        applies), transposed; "fd": the leading directions of a Frequent
        Directions sketch of ``rows``.
        """
        n_features = like.shape[1]
        k = min(self.sketch_size, n_features)
        if self.projection == "gaussian":
            return projection_block(0, n_features, k, kind="gaussian", seed=seed, like=like).T
        if self._keeps_every_direction(n_features):
            xp = array_namespace(like)
            return xp.eye(n_features, dtype=like.dtype, device=device(like))
        return FrequentDirections(k, backend="array_api").fit(rows).components_

    def _keeps_every_direction(self, n_features):
        """Whether the "fd" projection keeps all ``n_features`` directions: the identity serves.

        A sketch with as many directions as features spans them all, so its
        directions only rotate the rows, which changes no length, no cosine
        and no choice; neither the sketch nor the product is computed.
        """
        return self.projection == "fd" and n_features <= self.sketch_size

    def _projected(self, rows, directions):
        """The rows on the directions of ``_directions``; the rows themselves for the identity."""
        if self._keeps_every_direction(rows.shape[1]):
            return rows
        return rows @ array_namespace(rows).astype(directions, rows.dtype).T

    def _compares_rows(self):
        return self.strategy == "diverse" and self.diversity > 0

    def _reads_rows(self):
        """Whether the choice reads the rows' projections, not only their scores."""
        return self._compares_rows() or self.strategy == "thinning"

    def _reduce_array(self, X, xp, y):
        directions = self._directions(X, seed_from(self.random_state), X)
        projections = self._projected(X, directions)
        return Reduced(rows=projections, lengths=row_lengths(projections), labels=y,
                       fitted={"components_": directions})

    def _choose_group(self, projections, group, data, rng):
        xp, units, lengths = None, None, data.lengths[group.rows]
        if projections is None:  # scored by the passes over a source or a Dask array
            scores = data.scores[group.rows]
        else:
            xp = array_namespace(projections)
            scores = _agreement(xp, projections, lengths)
        kept = group.kept
        if self.strategy == "thinning":
            return self._thin(projections, group, rng, lengths), scores, {}
        if group.falls_back:
            rows = xp.take(projections, xp.asarray(kept, device=device(projections)), axis=0)
            picked = self._maxvol_fallback(rows, group.quota)
        else:
            if projections is not None and self._compares_rows():
                units = unit_rows(xp, projections)
                if kept.size < group.rows.size:
                    units = xp.take(units, xp.asarray(kept, device=device(units)), axis=0)
            # Higher is preferred: the scores, or their negatives for hard examples.
            sign = 1.0 if group.easy else -1.0
            picked = self._pick(xp, units, sign * scores[kept], group.quota, rng)
        return kept[picked], scores, {}

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
        zero = np.asarray(to_numpy(row_norms(xp, units))) == 0
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
        if self._reads_rows() and not self.store_projections:
            raise ValueError(
                f'strategy="{self.strategy}" reads the rows\' projections, so it needs '
                f'store_projections=True; or use strategy="stratified", "top" or "proportional".'
            )
        directions, n_rows, seed = None, 0, seed_from(self.random_state)
        if self.projection == "fd":
            sketch, n_rows = sketch_source(
                source,
                lambda n_features: None if self._keeps_every_direction(n_features)
                else FrequentDirections(self.sketch_size, backend=self.backend),
                self.backend,
            )
            # Only the directions are kept: the sketch's state is freed before pass 2.
            # No sketch: every direction is kept, and pass 2 makes the identity.
            directions = None if sketch is None else sketch.components_
            del sketch
        fitted = {"components_": directions}
        if self.store_projections:
            rows, y, fitted["components_"] = self._stored_projections(source, directions,
                                                                      n_rows, seed)
            return Reduced(rows=rows, lengths=row_lengths(rows), labels=y,
                           n_features=fitted["components_"].shape[1], fitted=fitted)
        scored, y, fitted["components_"] = self._streamed_scores(source, directions, seed)
        return Reduced(rows=None, lengths=scored[:, 1], scores=scored[:, 0], labels=y,
                       n_features=fitted["components_"].shape[1], fitted=fitted)

    def _reduce_dask(self, X, y):
        """A Dask array's rows, blockwise: at most their projections travel.

        The directions come from a Frequent Directions sketch merged up a
        tree (or the seeded Gaussian matrix; none when the sketch would keep
        every direction, and the rows are their own projections), and each
        block is projected on them where it lives. A choice that reads rows
        (the cover, its maxvol fallback, thinning) takes the
        ``n_samples x n_directions`` projections, brought to the client a few
        blocks at a time (:func:`~sketchsel.sketch._dask.gather_rows`);
        the others read scores only: the blocks' unit projections are summed
        per consensus group where they live, each block is scored against
        its rows' consensus, and the scores and the projections' lengths
        travel, two numbers a row, as without ``store_projections``.
        """
        import dask.array as da

        X = X.rechunk({1: -1})
        if np.isnan(X.shape[0]):  # unknown block sizes, after boolean indexing for one
            X = X.compute_chunk_sizes()
        n_features = X.shape[1]
        dtype = validated_dtype(X)
        if self.projection == "fd" and not self._keeps_every_direction(n_features):
            sketch = FrequentDirections(self.sketch_size, backend="numpy").fit(X)
            directions = np.asarray(to_numpy(sketch.components_))
        else:
            like = np.empty((0, n_features), dtype=dtype)
            directions = self._directions(like, seed_from(self.random_state))
        fitted = {"components_": directions}
        projections = map_row_blocks(X, lambda rows: self._projected(rows, directions),
                                     directions.shape[0])
        if self._reads_rows():
            # The cover and thinning read the rows' projections: they travel
            # (N x n_directions), the rows themselves only when no wider.
            projections = gather_rows(projections)
            return Reduced(rows=projections, lengths=row_lengths(projections), labels=y,
                           n_features=n_features, fitted=fitted)
        lengths = da.linalg.norm(projections, axis=1)
        units = unit_rows(da, projections, lengths)
        if resolve_class_balance(self.class_balance, y) is None:
            groups = da.ones((X.shape[0], 1), chunks=(X.chunks[0], 1))
        else:
            codes = np.unique(class_labels(y, X.shape[0], self.class_balance),
                              return_inverse=True)[1]
            groups = da.from_array(
                np.eye(codes.max() + 1)[codes], chunks=(X.chunks[0], -1)
            )
        totals = (groups.T @ units.astype(np.float64)).compute()
        consensus = unit_rows(np, totals).astype(units.dtype)
        scores = ((units @ consensus.T) * groups).sum(axis=1)
        scores, lengths = (np.asarray(part, dtype=np.float64)
                           for part in da.compute(scores, lengths))
        return Reduced(rows=None, lengths=lengths, scores=scores, labels=y,
                       n_features=n_features, fitted=fitted)

    def _batch_projections(self, source, directions, seed):
        """Pass over a source: (projections, labels or None) per batch, and the directions."""
        for rows, labels in iter_batches(source):
            rows, xp = check_array(rows, backend=self.backend)
            if directions is None:
                directions = self._directions(rows, seed)
            yield self._projected(rows, directions), labels, directions

    def _batch_units(self, source, directions, seed):
        """Pass over a source: (unit projections, the projections' lengths, labels), directions."""
        for projections, labels, directions in self._batch_projections(source, directions,
                                                                       seed):
            xp = array_namespace(projections)
            lengths = row_norms(xp, projections)
            yield unit_rows(xp, projections, lengths), lengths, labels, directions

    def _stored_projections(self, source, directions, n_rows, seed):
        stored, pieces, labels, start = None, [], [], 0
        for part, batch_labels, directions in self._batch_projections(source, directions,
                                                                      seed):
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

    def _streamed_scores(self, source, directions, seed):
        # Sums per label, always: whether they are one consensus or one per class
        # is known only once every label has been seen ("auto").
        totals, n_rows, seen_labels = {}, 0, []
        use_labels = self.class_balance is not None
        for units, _, labels, directions in self._batch_units(source, directions, seed):
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
        for units, lengths, labels, _ in self._batch_units(source, directions, seed):
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


def _agreement(xp, rows, lengths):
    """Cosine of each row with the normalised sum of the unit rows (0 if either is 0).

    ``lengths`` are the rows' norms (float64, on the host). The sum is
    ``(1 / lengths) @ rows`` in float64 (:func:`~sketchsel.sketch._shrink.weighted_sum64`)
    and the cosines ``(rows @ consensus) / lengths``: two passes over the
    rows, and no unit copy of them.
    """
    inverse = np.divide(1.0, lengths, out=np.zeros_like(lengths), where=lengths > 0)
    weights = xp.asarray(inverse, dtype=rows.dtype, device=device(rows))
    total = weighted_sum64(xp, weights, rows)
    norm = float(xp.linalg.vector_norm(total))
    # A sum within its round-off (each unit row is off by about eps) has no direction.
    if norm <= rows.shape[0] * float(xp.finfo(rows.dtype).eps):
        return np.zeros(rows.shape[0])
    consensus = xp.astype(total / norm, rows.dtype)
    return np.asarray(to_numpy(rows @ consensus), dtype=np.float64) * inverse
