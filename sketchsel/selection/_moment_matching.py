"""MomentMatchingSelector: a subset whose sketched second moment covers the data's (SkMM)."""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from .._array_api import array_namespace, check_array, device, to_numpy
from ..linalg._projection import _random_projection, reusable_rows, seed_from
from ..sampling._weighted import weighted_sample_without_replacement
from ..sketch._dask import gather_rows, map_row_blocks
from ._base import BaseSelector, Reduced, batch_seed, row_lengths
from ._docs import shared_docs
from ._moment_qp import best_gamma, moment_terms, solve_moment_matching
from ._policy import program_falls_back
from ._sources import empty_source_error, iter_batches, labels_of_every_batch

# Eigenvalues below this fraction of the largest are round-off of a rank-deficient sketch.
_RELATIVE_CUTOFF = 1e-10


@shared_docs
class MomentMatchingSelector(BaseSelector):
    """Select rows whose second moment over a sketched subspace matches the data's.

    Sketchy Moment Matching (Dong, Phan, Pan & Lei, NeurIPS 2024) in two
    stages. Stage 1 sketches the per-example gradients G (N x D) to
    ``G~ = G Gamma``, Gamma a seeded random ``D x sketch_size`` projection
    applied block by block, so that the subspace of ``G~`` controls the bias
    of training on a subset. Stage 2 takes the eigenpairs ``(lambda_j, v_j)``
    of ``G~^T G~ / N`` and relaxes the choice of ``n`` rows to shares s
    (``0 <= s_i <= 1/n``, ``sum(s) = 1``) that solve the convex program

    .. math::

        \\min_{s, \\gamma} \\sum_j \\Big(\\sum_i s_i (\\tilde g_i^\\top v_j)^2
        - \\gamma_j \\lambda_j\\Big)^2 \\quad \\text{s.t.} \\quad
        \\gamma_j \\ge 1/c,

    asking the chosen rows' second moment to cover ``1/c`` times the data's
    along every sketched eigendirection, which controls the variance; the
    shares are then rounded to ``n`` rows (``strategy="moments"``).

    On held-out data that program, like every rule that favours long
    gradients, lost to random subsets, and with wrong labels by far. The
    default therefore thins each class's sketch instead
    (``strategy="thinning"``: a subset whose mean follows the class's, the
    choice :class:`AgreementSelector` makes by default), and the program is
    the documented option. Measurements: ``docs/guide.md``,
    ``benchmarks/results/bench_quality.md``.

    Parameters
    ----------
    [[n_select]]
    sketch_size : int, default=256
        Dimension m of the sketch; X with at most m columns is used as it is.
    projection : {"gaussian", "rademacher", "countsketch"}, default="gaussian"
        Gamma, from :func:`sketchsel.linalg.random_projection`.
    strategy : {"thinning", "moments"}, default="thinning"
        How a group's rows are chosen from its sketch: "thinning", from each
        of ``quota`` random groups of rows, the one that keeps the subset's
        mean on the data's (group thinning,
        :func:`~sketchsel.selection._thinning.group_thinning`), O(N m), one
        pass; "moments", the program above, rounded by ``rounding`` (SkMM as
        published, with this class's defaults for its constants). The
        parameters from ``moment_coef`` to ``fallback``, ``tol`` and
        ``max_iter`` are the program's.
    moment_coef : float, default=0.3
        The constant c in ``gamma_j >= 1/c``, in (0, 1]: smaller values ask
        for more coverage; near 1 almost any shares are optimal and the
        choice is close to random (``benchmarks/bench_skmm.py``).
    moment_scale : {"relative", "absolute"}, default="relative"
        "absolute" is the paper's program, where a direction counts in
        proportion to its eigenvalue, so weak directions (small clusters)
        hardly count; "relative" divides each direction's residual by its
        eigenvalue, so every sketched direction must be covered alike, which
        is what bounds the variance (zero eigenvalues are left out).
    rounding : {"top", "sample"}, default="top"
        How shares become rows: "top" keeps the n largest shares (ties to
        the lower index); "sample" draws n rows without replacement with
        probabilities proportional to s, as the authors do (the sample's
        expected second moment is then that of s).
    fallback : {"maxvol"} or None, default="maxvol"
        "maxvol": below the rank of a group's sketch, where no quota of rows
        covers every direction and the largest shares go to the hardest
        examples, :class:`FastMaxVol` chooses on the sketch instead
        (:func:`~sketchsel.selection._policy.program_falls_back`); the
        program's attributes then describe uniform shares on those rows.
        None: the program at every budget.
    [[hard_cutoff]]
        Here the lengths are the sketched rows'; the program then matches the
        second moment of the rows kept.
    tol : float, default=1e-4
        Stop when the duality gap (a bound on the distance to the minimum) is
        at most ``tol`` times the objective at ``s = 0``, ``||lambda / c||^2``.
    max_iter : int, default=1000
        Most iterations; a ConvergenceWarning says when ``tol`` was not reached.
    [[class_balance]]
        One program per class, on its rows and with its quota.
    random_state : int, RandomState instance or None, default=None
        Seeds the projection and the sampling of ``rounding="sample"``.
    [[backend]]

    Attributes
    ----------
    [[fitted_common]]
    With ``strategy="thinning"`` only the common attributes are set; with
    "moments", also:

    scores_ : ndarray of shape (n_samples,)
        The relaxed selection ``n * s``, in [0, 1] (0 for the rows cut); with
        class balancing, each class's own, summing to its quota.
    objective_ : float
        The objective at the returned shares and the best gamma.
    objective_history_ : ndarray of shape (``n_iter_ + 1``,)
        The objective at the start and after every iteration (never rising).
    duality_gap_ : float
        Frank-Wolfe duality gap: the objective is within this of its minimum.
    n_iter_ : int
        Iterations run.
    gamma_ : ndarray of shape (m,)
        The share of each direction's moment covered, ``max(1/c, moment_j / lambda_j)``.
    eigenvalues_ : ndarray of shape (m,)
        The ``lambda_j``, in decreasing order.
    fallback_used_ : bool
        Whether ``fallback`` chose the rows: the quota was below the number
        of eigenvalues above round-off (``1e-10`` times the largest).
    With class balancing, the program's attributes other than ``scores_``
    are lists with one entry per class.

    Notes
    -----
    For fixed shares the best gamma is ``max(1/c, (A^T s)_j / lambda_j)``
    with ``A_ij = (g~_i . v_j)^2``, so the program is the smooth convex
    problem ``min ||max(0, lambda / c - A^T s)||^2`` over the capped
    simplex, solved by FISTA with restarts, two O(N m) products per
    iteration (the reference code: O(N m^2) per fixed Adam step).

    The defaults differ from the paper's program (``moment_scale="absolute"``,
    c close to 1), which on the authors' own synthetic setting chose subsets
    with a larger excess risk than uniform sampling (``benchmarks/bench_skmm.py``).

    ``fit`` also takes a re-iterable source of ``(G_batch, y_batch)`` pairs
    and a Dask array, projecting each batch as it comes: memory
    O(N * sketch_size), never N x D; the selection is the in-memory one.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel import MomentMatchingSelector
    >>> rng = np.random.default_rng(0)
    >>> G = rng.standard_normal((2000, 500)) * 0.9 ** np.arange(500)
    >>> selector = MomentMatchingSelector(n_select=100, sketch_size=32, random_state=0)
    >>> selector.fit(G).select().shape
    (100,)

    The program, with its certificate of optimality:

    >>> selector = MomentMatchingSelector(n_select=100, sketch_size=32, strategy="moments",
    ...                                   random_state=0).fit(G)
    >>> bool(selector.duality_gap_ <= 1e-4 * 32 / 0.3**2)  # tol * ||1 / c||^2, 32 directions
    True
    >>> bool(np.all(np.diff(selector.objective_history_) <= 0))
    True
    """

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "sketch_size": [Interval(Integral, 1, None, closed="left")],
        "projection": [StrOptions({"gaussian", "rademacher", "countsketch"})],
        "strategy": [StrOptions({"thinning", "moments"})],
        "moment_coef": [Interval(Real, 0, 1, closed="right")],
        "moment_scale": [StrOptions({"relative", "absolute"})],
        "rounding": [StrOptions({"sample", "top"})],
        "fallback": [StrOptions({"maxvol"}), None],
        "hard_cutoff": [Interval(Real, 0, 1, closed="left"), StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self, n_select=0.1, *, sketch_size=256, projection="gaussian", strategy="thinning",
        moment_coef=0.3,
        moment_scale="relative", rounding="top", fallback="maxvol", hard_cutoff="auto",
        tol=1e-4, max_iter=1000, class_balance="auto", random_state=None, backend=None,
    ):
        self.n_select = n_select
        self.sketch_size = sketch_size
        self.projection = projection
        self.strategy = strategy
        self.moment_coef = moment_coef
        self.moment_scale = moment_scale
        self.rounding = rounding
        self.fallback = fallback
        self.hard_cutoff = hard_cutoff
        self.tol = tol
        self.max_iter = max_iter
        self.class_balance = class_balance
        self.random_state = random_state
        self.backend = backend

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Sketch the rows of X, solve the moment-matching program and round it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or source of batches
            Per-example gradients (or features, for linear probing), or a
            re-iterable source of ``(G_batch, y_batch)`` pairs.
        y : array-like of shape (n_samples,), default=None
            Class labels; needed only with ``class_balance``.

        Returns
        -------
        self : MomentMatchingSelector
            The fitted selector.
        """
        return self._fit(X, y)

    def project(self, X):
        """Stage 1 by hand: the seeded sketch ``X Gamma`` of a batch of gradients.

        For gradients computed on the fly, where no re-iterable source exists:
        project every batch, stack the sketches and fit on them (a sketch has
        ``sketch_size`` columns, so fit uses it as it is); the selection is the
        one ``fit`` makes on the stacked gradients. Every call uses the same
        Gamma, which needs an int ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of per-example gradients.

        Returns
        -------
        X_sketch : array of shape (n_samples, sketch_size)
            In the compute namespace of X; float32 stays float32. X itself
            when it has at most ``sketch_size`` columns.

        Examples
        --------
        >>> import numpy as np
        >>> from sketchsel import MomentMatchingSelector
        >>> G = np.random.default_rng(0).standard_normal((600, 300))
        >>> selector = MomentMatchingSelector(n_select=60, sketch_size=32, random_state=0)
        >>> sketch = np.vstack([selector.project(batch) for batch in np.array_split(G, 4)])
        >>> sketch.shape
        (600, 32)
        >>> by_hand = selector.fit(sketch).select()
        >>> bool(np.array_equal(by_hand, selector.fit(G).select()))
        True

        With class labels and a quota below a fifth of each class, moment
        matching (not thinning, which caps the long rows instead) leaves out
        the longest tenth of each class's sketched rows, its hardest examples:

        >>> y = np.arange(600) % 2
        >>> selector.set_params(strategy="moments").fit(G, y).n_hard_cut_
        [30, 30]
        >>> lengths = np.linalg.norm(selector.project(G), axis=1)
        >>> longest = [np.flatnonzero(y == c)[np.argsort(lengths[y == c])[-30:]] for c in (0, 1)]
        >>> bool(np.isin(np.concatenate(longest), selector.select()).any())
        False
        """
        seed = batch_seed(self.random_state, "project")
        X, _ = check_array(X, backend=self.backend)
        return self._sketch(X, seed)

    def _reduce_array(self, X, xp, y):
        sketch = self._sketch(X, seed_from(self.random_state))
        return Reduced(rows=sketch, lengths=row_lengths(sketch), labels=y)

    def _sketch(self, X, seed, gamma_rows=None):
        """Stage 1: the sketch ``X Gamma`` of the seed, or X itself when it is narrow.

        ``gamma_rows``: Gamma's rows, kept from batch to batch (``reusable_rows``).
        """
        if X.shape[1] <= self.sketch_size:
            return X
        return _random_projection(array_namespace(X), X, self.sketch_size, self.projection, seed,
                                  rows=gamma_rows)

    def _reduce_source(self, source):
        """Stage 1 over a source: each batch projected as it comes, one pass."""
        seed = seed_from(self.random_state)
        pieces, labels, n_features = [], [], None
        for rows, batch_labels in iter_batches(source):
            rows, _ = check_array(rows, backend=self.backend)
            if n_features is None:
                n_features = rows.shape[1]
                gamma_rows = reusable_rows(self.projection, seed, self.sketch_size, n_features)
            elif rows.shape[1] != n_features:
                raise ValueError(
                    f"A batch has {rows.shape[1]} features but the first had {n_features}; "
                    f"every batch must have the same features."
                )
            pieces.append(self._sketch(rows, seed, gamma_rows))
            if batch_labels is not None:
                labels.append(batch_labels)
        if not pieces:
            raise empty_source_error()
        sketch = array_namespace(pieces[0]).concat(pieces, axis=0)
        return Reduced(rows=sketch, lengths=row_lengths(sketch),
                       labels=labels_of_every_batch(labels, sketch.shape[0]),
                       n_features=n_features)

    def _reduce_dask(self, X, y):
        """Stage 1 on a Dask array: each block projected where it lives; N x m rows travel."""
        seed = seed_from(self.random_state)
        n_features = X.shape[1]
        width = min(n_features, self.sketch_size)
        sketch = gather_rows(map_row_blocks(X, lambda rows: self._sketch(rows, seed), width))
        return Reduced(rows=sketch, lengths=row_lengths(sketch), labels=y, n_features=n_features)

    def _program(self, xp, X):
        """Eigenvalues, A and gamma's units (as ``moment_scale`` asks), and the sketch's rank."""
        eigenvalues, A = moment_terms(xp, X)
        # Directions below round-off: the sketch's rank counts only the others.
        kept = eigenvalues > _RELATIVE_CUTOFF * float(xp.max(eigenvalues))
        rank = int(xp.sum(xp.astype(kept, xp.int64)))
        if self.moment_scale == "absolute":
            return eigenvalues, A, eigenvalues, rank
        # Whitened coordinates; the directions not kept get no weight and no target.
        A = A / xp.where(kept, eigenvalues, xp.inf)
        return eigenvalues, A, xp.astype(kept, xp.float64), rank

    def _choose_group(self, sketch, group, data, rng):
        if self.strategy == "thinning":
            return self._thin(sketch, group, rng, data.lengths[group.rows]), None, {}
        xp = array_namespace(sketch)
        if group.cut.any():
            sketch = xp.take(sketch, xp.asarray(group.kept, device=device(sketch)), axis=0)
        rows, fitted = self._match(sketch, xp, group.quota, rng)
        scores = np.zeros(group.rows.size)
        scores[group.kept] = fitted.pop("scores_")
        return group.kept[rows], scores, fitted

    def _match(self, X, xp, n_select, rng):
        """The program on the rows of X (or the fallback), rounded to n_select rows."""
        eigenvalues, A, units, rank = self._program(xp, X)
        floor = 1.0 / self.moment_coef
        target = units * floor
        n_rows = X.shape[0]
        # n rows span at most n directions, so below the sketch's rank no rounding
        # of the shares covers every direction, the condition the variance bound needs.
        fallback = program_falls_back(self.fallback, n_select, rank)
        if fallback:
            rows = self._maxvol_fallback(X, n_select)
            start = np.zeros(n_rows)
            start[rows] = 1.0 / n_select
            start = xp.asarray(start, device=device(A))
        else:
            start = xp.full(n_rows, 1.0 / n_rows, dtype=xp.float64, device=device(A))
        # With the fallback, no iteration: the solver only evaluates the chosen rows' shares.
        solution = solve_moment_matching(
            xp, A, target, n_select, start, tol=self.tol, max_iter=0 if fallback else self.max_iter
        )
        if not (fallback or solution.converged):
            warnings.warn(
                f"MomentMatchingSelector stopped after max_iter={self.max_iter} iterations "
                f"with a duality gap of {solution.duality_gap:.3g}, above tol={self.tol} "
                f"times the objective's scale; raise max_iter or tol.",
                ConvergenceWarning,
            )
        shares = np.asarray(to_numpy(solution.shares), dtype=np.float64)
        fitted = {
            "scores_": n_select * shares,
            "objective_": solution.objective,
            "objective_history_": solution.objective_history,
            "duality_gap_": solution.duality_gap,
            "n_iter_": solution.n_iter,
            "gamma_": best_gamma(xp, solution.moments, units, floor),
            "eigenvalues_": np.asarray(to_numpy(eigenvalues)),
            "fallback_used_": fallback,
        }
        return (rows if fallback else self._round(shares, n_select, rng)), fitted

    def _round(self, shares, n_select, rng):
        if self.rounding == "top":
            return np.argsort(-shares, kind="stable")[:n_select]
        # A draw without replacement with probabilities proportional to the
        # shares; rows with no share come only when too few rows have one.
        return weighted_sample_without_replacement(rng, shares, n_select)
