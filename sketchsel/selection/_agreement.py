"""AgreementSelector: keep the examples whose gradients agree with the consensus (SAGE)."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import column_or_1d

from .._array_api import array_namespace, check_array, device, to_numpy
from ..sketch import FrequentDirections
from ._base import BaseSelector, iter_batches


class AgreementSelector(BaseSelector):
    """Select the examples whose sketched gradients agree most with their consensus.

    SAGE (Jha & Ahmadi-Asl 2025) in two steps. A Frequent Directions sketch
    of the per-example gradients G (``sketch_size`` rows) gives the dominant
    gradient directions V; each gradient is projected, ``z_i = V g_i``, and
    normalised, ``u_i = z_i / ||z_i||``. The consensus ``c`` is the
    normalised mean of the ``u_i`` (per class with ``class_balance``) and the
    score of example i is its cosine with the consensus, ``<u_i, c>``. The
    highest scores are kept, or, with ``diversity > 0``, rows are added
    greedily by score minus ``diversity`` times their largest cosine with a
    row already chosen.

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
    diversity : float, default=0.0
        Weight of the redundancy penalty of the greedy variant; 0 keeps the
        top scores.
    class_balance : {"equal", "proportional"}, default=None
        Score each example against its own class's consensus and select
        within classes by quota; None uses one consensus and ignores ``y``.
    random_state : int, RandomState instance or None, default=None
        Seeds the Gaussian projection; the FD projection is deterministic.
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
    classes_, class_quotas_ : ndarray
        With ``class_balance``: the classes and the rows taken from each.
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
    >>> selector = AgreementSelector(n_select=0.5).fit(G)
    >>> bool(np.all(selector.scores_[:10] < 0))
    True
    >>> bool(np.isin(np.arange(10), selector.select()).any())
    False
    """

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "sketch_size": [Interval(Integral, 1, None, closed="left")],
        "projection": [StrOptions({"fd", "gaussian"})],
        "diversity": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self, n_select=0.1, *, sketch_size=256, projection="fd", diversity=0.0,
        class_balance=None, random_state=None, backend=None,
    ):
        self.n_select = n_select
        self.sketch_size = sketch_size
        self.projection = projection
        self.diversity = diversity
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
            Class labels; needed only with ``class_balance``.

        Returns
        -------
        self : AgreementSelector
            The fitted selector.
        """
        # Set by _reduce_source for _choose; a failed earlier fit must not leave it.
        self.__dict__.pop("_source_directions", None)
        return self._fit(X, y)

    def _gaussian(self, xp, like):
        """The seeded Gaussian projection, ``sketch_size x n_features``, beside ``like``."""
        n_features = like.shape[1]
        k = min(self.sketch_size, n_features)
        matrix = check_random_state(self.random_state).standard_normal((k, n_features))
        return xp.asarray(matrix / np.sqrt(k), dtype=like.dtype, device=device(like))

    def _choose(self, X, xp, n_select, codes, quotas, row_data):
        # Rows from a source of batches arrive projected and normalised already
        # (_reduce_source), so that only one n_samples x sketch_size array exists.
        directions = self.__dict__.pop("_source_directions", None)
        if directions is None:
            if self.projection == "gaussian":
                directions = self._gaussian(xp, X)
            else:
                k = min(self.sketch_size, X.shape[1])
                directions = FrequentDirections(k, backend="array_api").fit(X).components_
            units = _unit_rows(xp, X @ directions.T)
        else:
            units = X
        scores = np.empty(X.shape[0])
        if codes is None:
            scores[:] = _agreement(xp, units)
            chosen = self._pick(xp, units, scores, np.arange(X.shape[0]), n_select)
        else:
            chosen = []
            for code, quota in enumerate(quotas):
                rows = np.flatnonzero(codes == code)
                part = xp.take(units, xp.asarray(rows, device=device(X)), axis=0)
                scores[rows] = _agreement(xp, part)
                if quota:
                    chosen.append(self._pick(xp, part, scores[rows], rows, int(quota)))
            chosen = np.concatenate(chosen)
        return chosen, {"scores_": scores, "components_": directions}

    def _pick(self, xp, units, scores, rows, n_select):
        """Top scores (ties to the lower index), or the diversity-penalised greedy."""
        if self.diversity == 0:
            return rows[np.argsort(-scores, kind="stable")[:n_select]]
        penalty = np.full(scores.shape, -np.inf)
        picked = []
        gain = scores.copy()
        for _ in range(n_select):
            best = int(np.argmax(gain))
            picked.append(best)
            similarity = to_numpy(units @ units[best, :])
            penalty = np.maximum(penalty, similarity)
            gain = scores - self.diversity * penalty
            gain[picked] = -np.inf
        return rows[np.asarray(picked, dtype=np.int64)]

    def _reduce_source(self, source):
        """The projections of a source's rows, in two passes (one for "gaussian").

        Pass 1 sketches (and counts the rows), pass 2 keeps the
        ``n_samples x sketch_size`` normalised projections, from which the
        in-memory path gives the same scores as for the whole array.
        """
        directions, n_rows = None, 0
        if self.projection == "fd":
            sketch = None
            for rows, _ in iter_batches(source):
                rows, _ = check_array(rows, backend=self.backend)
                if sketch is None:
                    k = min(self.sketch_size, rows.shape[1])
                    sketch = FrequentDirections(k, backend=self.backend)
                sketch.partial_fit(rows)
                n_rows += rows.shape[0]
            # Only the directions are kept: the sketch's state is freed before pass 2.
            directions = None if sketch is None else sketch.components_
            del sketch
        units, pieces, labels, start = None, [], [], 0
        for rows, batch_labels in iter_batches(source):
            rows, xp = check_array(rows, backend=self.backend)
            if directions is None:
                directions = self._gaussian(xp, rows)
            part = _unit_rows(xp, rows @ xp.astype(directions, rows.dtype).T)
            stop = start + part.shape[0]
            if n_rows:
                # The row count is known from pass 1: fill one array, so that the
                # projections never exist twice.
                if stop > n_rows:
                    start = stop
                    break
                if units is None:
                    shape = (n_rows, part.shape[1])
                    units = xp.zeros(shape, dtype=part.dtype, device=device(part))
                units[start:stop, :] = part
            else:
                pieces.append(part)
            start = stop
            if batch_labels is not None:
                labels.append(column_or_1d(to_numpy(batch_labels)))
        if n_rows and start != n_rows:
            found = "more" if start > n_rows else str(start)
            raise ValueError(
                f"The source yielded {n_rows} rows in one pass and {found} in the next; it "
                f"must yield the same batches on every pass."
            )
        if units is None and not pieces:
            raise ValueError("The source of batches yielded no rows; X must hold at least one.")
        if units is None:
            units = array_namespace(pieces[0]).concat(pieces, axis=0)
        self._source_directions = directions
        y = np.concatenate(labels) if labels else None
        return units, y, directions.shape[1]


def _unit_rows(xp, Z):
    """Rows scaled to unit norm; zero rows stay zero."""
    norms = xp.linalg.vector_norm(Z, axis=1)
    return Z / xp.where(norms > 0, norms, 1.0)[:, None]


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
