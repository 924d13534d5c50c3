"""The selection policy: the groups a fit chooses in, their quotas, and what the defaults decide.

Every selector reads one :class:`SelectionPlan`, built once per fit by
:func:`build_plan` from the labels, the budget and the row lengths that the
hard cutoff reads. Each rule of the defaults is one function below, the only
place its constant appears, so that a parameter value means the same in
every selector:

- :func:`class_quotas`: the rows of each class ("equal", "proportional");
- :func:`hard_cutoff_fraction` and :func:`hard_rows`: ``hard_cutoff``;
- :func:`row_norms_mode`: FastMaxVol's ``row_norms``;
- :func:`prefers_easy`: AgreementSelector's ``prefer``;
- :func:`cover_falls_back` and :func:`program_falls_back`: ``fallback``.

Every rule but the preference is judged per group (a class, or all rows
without classes), on the group's rows and quota; the preference reads the
whole subset (see :func:`prefers_easy`). The constants were chosen on the
protocol of ``benchmarks/bench_quality.py``; ``docs/guide.md`` reports the
figures.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from .._array_api import to_numpy

# A quota below this fraction of its group's rows is a small budget: the defaults
# then keep away from the hardest examples, and from it on they take them, as
# Sorscher et al. (2022) advise.
_SMALL_BUDGET = 0.2
# hard_cutoff="auto": the fraction of a group's rows left out at a small budget.
_AUTO_HARD_CUTOFF = 0.1
# prefer="auto" takes the easy end below this fraction of all the rows (Sorscher et al.).
_EASY_BELOW = 0.5


def is_small_budget(quota, n_rows):
    """Whether ``quota`` rows out of ``n_rows`` is a small budget (below a fifth of them)."""
    return quota < _SMALL_BUDGET * n_rows


def hard_cutoff_fraction(hard_cutoff, quota, n_rows, cuts):
    """The fraction of a group's rows to leave out: ``hard_cutoff``, "auto" resolved.

    "auto" leaves out a tenth of the rows at a small budget, where ``cuts``
    (not under thinning, and see :meth:`BaseSelector._auto_cuts`), and
    nothing otherwise.
    """
    if hard_cutoff != "auto":
        return float(hard_cutoff)
    return _AUTO_HARD_CUTOFF if cuts and is_small_budget(quota, n_rows) else 0.0


def hard_rows(lengths, quota, fraction):
    """Mask of the rows a hard cutoff leaves out: the ``fraction`` longest.

    Never leaves fewer than ``quota`` rows. A row only as long as the longest
    row kept (within a relative 1e-5, float32 rounding) is kept too, so rows
    of one length (unit rows, say) lose nothing to their order.
    """
    n_rows = lengths.shape[0]
    n_cut = min(int(fraction * n_rows), n_rows - quota)
    cut = np.zeros(n_rows, dtype=bool)
    if n_cut > 0:
        order = np.argsort(lengths, kind="stable")
        cut[order[n_rows - n_cut:]] = True
        cut &= lengths > lengths[order[n_rows - n_cut - 1]] * (1 + 1e-5)
    return cut


def row_norms_mode(row_norms, quota, n_rows, thins):
    """FastMaxVol's ``row_norms`` for a group, "auto" resolved.

    "auto" is None when the selector ``thins`` (thinning caps its own
    coordinates, :meth:`BaseSelector._thin`), else "median" at a small
    budget and None otherwise.
    """
    if row_norms != "auto":
        return row_norms
    return "median" if not thins and is_small_budget(quota, n_rows) else None


def prefers_easy(prefer, n_select, n_rows, compares_rows):
    """Whether AgreementSelector prefers the easy examples (``prefer``, "auto" resolved).

    "auto" prefers the hard ones when the choice compares rows (the cover
    keeps them from crowding into one tail) and otherwise the easy ones
    below half of all the rows, the hard ones from it (Sorscher et al. 2022).
    The rule reads how much of the data the model will train on, one
    fraction for the whole subset, so every class shares the decision:
    judged on each class's quota instead, equal quotas near half the rows
    flip it between the classes, which lost at 50% of breast cancer and
    wine in the quality benchmark (``docs/guide.md``).
    """
    if prefer == "auto":
        return not compares_rows and n_select < _EASY_BELOW * n_rows
    return prefer == "easy"


def cover_falls_back(fallback, quota, n_kept):
    """Whether ``fallback`` replaces AgreementSelector's cover: from a fifth of the rows kept.

    A cover sees directions only; where a subset gains from the long, hard
    examples, maxvol on the projections takes them.
    """
    return fallback == "maxvol" and not is_small_budget(quota, n_kept)


def program_falls_back(fallback, quota, rank):
    """Whether ``fallback`` replaces the moment-matching program: below the sketch's rank.

    ``quota`` rows span at most ``quota`` directions, so below the rank no
    rounding of the shares covers every direction, which the variance bound
    needs.
    """
    return fallback == "maxvol" and quota < rank


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

    Examples
    --------
    >>> from sketchsel.selection._policy import class_quotas
    >>> class_quotas([400, 120, 50, 20, 10], 150, "equal").tolist()
    [40, 40, 40, 20, 10]
    >>> class_quotas([400, 120, 50, 20, 10], 150, "proportional").tolist()
    [100, 30, 13, 5, 2]
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


def as_labels(y):
    """y as a 1-D NumPy array: labels as given, a label-indicator matrix decoded.

    A label-indicator matrix (one column per class, a single 1 in each row,
    as ``sklearn.preprocessing.label_binarize`` gives) becomes the column
    index of each row's 1, as imbalanced-learn's samplers read it. A column
    vector is read as 1-D; any other 2-D ``y`` is refused.
    """
    if y is None:
        return None
    y = to_numpy(y)
    if getattr(y, "ndim", 1) == 2 and y.shape[1] != 1:
        if type_of_target(y) == "multilabel-indicator" and np.all(np.sum(y, axis=1) == 1):
            return np.argmax(y, axis=1)
        raise ValueError(
            f"y has shape {y.shape}: give one label per row (a 1-D array), or a "
            f"label-indicator matrix with a single 1 in each row (one column per class)."
        )
    return column_or_1d(y, warn=True)


def resolve_class_balance(class_balance, y):
    """The class balancing a fit applies: "auto" is "proportional" when y holds classes.

    Parameters
    ----------
    class_balance : {"auto", "equal", "proportional"} or None
        The selector's parameter.
    y : array-like or None
        The labels given to fit (decoded by :func:`as_labels`), or one batch's.

    Returns
    -------
    mode : {"equal", "proportional"} or None
        "auto" gives "proportional" for binary or multiclass labels and None
        for no labels or other targets (continuous ones, say); the other
        values are returned as they are.
    """
    if class_balance != "auto":
        return class_balance
    if y is None or type_of_target(as_labels(y)) not in ("binary", "multiclass"):
        return None
    return "proportional"


def class_labels(y, n_rows, class_balance):
    """y checked as class labels for ``class_balance``, one per row; clear errors otherwise."""
    if y is None:
        raise ValueError(
            f"class_balance={class_balance!r} needs the class labels y; pass fit(X, y) "
            f"(from a source of batches, yield (X_batch, y_batch) pairs), or use "
            f"class_balance=None."
        )
    check_label_count(y, n_rows)
    check_classification_targets(y)
    return y


def check_label_count(y, n_rows):
    """Refuse labels that are not one per row of X."""
    if y.shape[0] != n_rows:
        raise ValueError(f"y has {y.shape[0]} labels but X has {n_rows} rows; they must match.")


@dataclass(frozen=True)
class Group:
    """One group of a plan: its rows, its quota and what the defaults decided for it.

    ``cut`` is the mask of the group's rows the hard cutoff leaves out and
    ``kept`` the positions of the others; ``row_norms`` and ``easy`` are
    FastMaxVol's and AgreementSelector's decisions (None where the selector
    has no such parameter; ``easy`` is the same in every group, see
    :func:`prefers_easy`); ``falls_back`` is the fallback decided by the
    budget (AgreementSelector's), None where the selector decides it from
    its data (moment matching's, by the sketch's rank).
    """

    rows: np.ndarray
    quota: int
    cut: np.ndarray
    kept: np.ndarray
    row_norms: object = None
    easy: object = None
    falls_back: object = None

    @property
    def n_cut(self):
        """Rows the hard cutoff left out, None for a group with no quota."""
        return int(self.cut.sum()) if self.quota else None


@dataclass(frozen=True)
class SelectionPlan:
    """The groups a fit chooses in and what was decided for each; built by :func:`build_plan`."""

    class_balance: object
    classes: object
    quotas: object
    groups: tuple

    def per_group(self, values):
        """A fitted attribute from a value per group: the value without classes, else the list."""
        values = list(values)
        return values[0] if self.classes is None else values


def build_plan(selector, y, lengths, n_select):
    """The plan of one fit: groups, quotas, and every decision of the defaults per group.

    Parameters
    ----------
    selector : BaseSelector
        Its parameters (``class_balance``, ``hard_cutoff``, ``row_norms``,
        ``prefer``, ``fallback``, those it has) decide.
    y : ndarray or None
        The labels (decoded by :func:`as_labels`), one per row.
    lengths : ndarray of shape (n_rows,)
        The row lengths the hard cutoff reads.
    n_select : int
        The budget, resolved to a count.

    Returns
    -------
    plan : SelectionPlan
    """
    n_rows = lengths.shape[0]
    class_balance = resolve_class_balance(selector.class_balance, y)
    classes = quotas = None
    if class_balance is None:
        groups, budgets = [np.arange(n_rows)], [n_select]
    else:
        y = class_labels(y, n_rows, selector.class_balance)
        # Not np.unique's return_inverse, which sorts the labels: three times the time.
        classes = np.unique(y)
        codes = np.searchsorted(classes, y)
        counts = np.bincount(codes, minlength=classes.size)
        quotas = budgets = class_quotas(counts, n_select, class_balance)
        groups = [np.flatnonzero(codes == code) for code in range(classes.size)]
    params = selector.get_params(deep=False)
    # Thinning caps the long rows rather than cutting them (see hard_cutoff_fraction).
    thins = params.get("strategy") == "thinning"
    cuts = not thins and selector._auto_cuts(class_balance is not None)
    easy = (prefers_easy(params["prefer"], n_select, n_rows, selector._compares_rows())
            if "prefer" in params else None)
    planned = []
    for rows, quota in zip(groups, budgets):
        quota, size = int(quota), rows.size
        cut = np.zeros(size, dtype=bool)
        if quota:
            fraction = hard_cutoff_fraction(params.get("hard_cutoff", 0.0), quota, size, cuts)
            cut = hard_rows(lengths[rows], quota, fraction)
        kept = np.flatnonzero(~cut)
        planned.append(Group(
            rows=rows, quota=quota, cut=cut, kept=kept,
            row_norms=row_norms_mode(params.get("row_norms"), quota, size, thins),
            easy=easy,
            falls_back=(selector._compares_rows()
                        and cover_falls_back(params["fallback"], quota, kept.size)
                        if selector._budget_decides_fallback else None),
        ))
    return SelectionPlan(class_balance, classes, quotas, tuple(planned))
