"""FastMaxVol: the rows spanning the dominant subspace of X (GRAFT's sampler)."""

from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .._array_api import device
from ..linalg._maxvol import _add_rows, _maxvol
from ..sketch import FrequentDirections
from ._base import BaseSelector


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

    Parameters
    ----------
    n_select : int or float, default=0.1
        Rows to choose: a count, or a fraction of the rows of X
        (``floor(n_select * n_samples)``, at least 1).
    rank : int, default=None
        Dimension of the representation; None uses the budget (capped by the
        number of features). Budgets above ``rank`` are filled by
        rect_maxvol; budgets below lower the rank to the budget. When X has
        at most ``rank`` columns it is used as it is.
    tol : float, default=1.05
        Dominance threshold of the maxvol swaps, at least 1.
    max_iters : int, default=100
        Largest number of maxvol swaps.
    class_balance : {"equal", "proportional"}, default=None
        Select within each class of ``y``: "proportional" keeps the class
        shares, "equal" gives every class the same quota and shares what a
        small class cannot use among the others. None ignores ``y``.
    backend : {"auto", "numpy", "cupy", "array_api"}, default=None
        Where to compute; None uses the global setting of
        :func:`sketchsel.set_config`.

    Attributes
    ----------
    sample_indices_ : ndarray of shape (n_chosen,), int64
        Sorted indices of the chosen rows.
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
    classes_, class_quotas_ : ndarray
        With ``class_balance``: the classes and the rows taken from each; the
        attributes above are then lists with one entry per class.
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
    >>> selector = FastMaxVol(n_select=5).fit(X)
    >>> selector.select()
    array([...])
    >>> selector.select().shape
    (5,)
    >>> # every row of X is a combination of the 5 chosen rows
    >>> chosen = X[selector.pivots_]
    >>> bool(np.allclose(selector.coefficients_ @ chosen, X))
    True
    """

    _parameter_constraints = {
        **BaseSelector._parameter_constraints,
        "rank": [Interval(Integral, 1, None, closed="left"), None],
        "tol": [Interval(Real, 1, None, closed="left")],
        "max_iters": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self, n_select=0.1, *, rank=None, tol=1.05, max_iters=100, class_balance=None,
        backend=None,
    ):
        self.n_select = n_select
        self.rank = rank
        self.tol = tol
        self.max_iters = max_iters
        self.class_balance = class_balance
        self.backend = backend

    def _select(self, X, xp, n_select):
        n_samples, n_features = X.shape
        rank = min(self.rank or n_select, n_select, n_features, n_samples)
        if n_features <= rank:
            features = X
        else:
            sketch = FrequentDirections(
                min(n_features, 2 * rank), n_components=rank, backend="array_api"
            )
            features = sketch.fit(X).transform(X)
        pivots, C, _ = _maxvol(xp, features, self.tol, self.max_iters)
        if len(pivots) < n_select:
            # Budget above the rank (or a rank-deficient X): add the rows the
            # chosen ones represent worst until the budget is met.
            pivots, C = _add_rows(xp, C, pivots, 0.0, n_select, n_select)
        chosen_rows = xp.take(features, xp.asarray(pivots, device=device(X)), axis=0)
        pivots = np.asarray(pivots, dtype=np.int64)
        return pivots, {
            "rank_": rank,
            "volume_": _log_volume(xp, chosen_rows),
            "coefficients_": C,
            "pivots_": pivots,
        }
