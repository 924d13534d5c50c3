"""Parameter and attribute text that the selectors share, written once.

A line ``[[name]]`` in a selector's docstring is replaced by ``SHARED[name]``,
indented as the marker is, when the class is defined (:func:`shared_docs`).
"""

import re

SHARED = {
    "n_select": """\
n_select : int or float, default=0.1
    Rows to choose: a count, or a fraction of the rows of X
    (``floor(n_select * n_samples)``, at least 1).""",
    "class_balance": """\
class_balance : {"auto", "equal", "proportional"} or None, default="auto"
    Choose within each class of ``y``, by quota: "proportional" keeps the
    class shares (rounded by largest remainder); "equal" gives every class
    the same quota, and what a class too small for it leaves is shared
    equally among the others (water-filling); "auto" is "proportional" when
    ``y`` holds class labels and None otherwise; None chooses among all
    rows. The same quotas in every selector
    (:func:`~sketchsel.selection._policy.class_quotas`).""",
    "hard_cutoff": """\
hard_cutoff : float or "auto", default="auto"
    Fraction of each group's rows (a class's, with class balancing) that
    cannot be chosen: the longest rows of the selector's representation.
    With per-example gradients these are the hardest examples (the largest
    GraNd scores, Paul et al. 2021), often mislabelled or atypical, which a
    small subset cannot afford (Sorscher et al. 2022). Never leaves fewer
    rows than the quota; rows no longer than the longest kept are kept.
    "auto" cuts none under ``strategy="thinning"``, which caps every row at
    the median length instead (``docs/guide.md``); otherwise a tenth of a
    group's rows when its quota is below a fifth of them, only by class
    (FastMaxVol: always; :func:`~sketchsel.selection._policy.hard_cutoff_fraction`).""",
    "backend": """\
backend : {"auto", "numpy", "cupy", "array_api"}, default=None
    Where to compute; None uses the global setting of
    :func:`sketchsel.set_config`.""",
    "fitted_common": """\
sample_indices_ : ndarray of shape (n_chosen,), int64
    Sorted indices of the chosen rows.
class_balance_ : {"equal", "proportional"} or None
    The class balancing applied ("auto" resolved).
classes_, class_quotas_ : ndarray
    With class balancing: the classes and the rows taken from each.
n_hard_cut_ : int or list
    Rows ``hard_cutoff`` left out; with class balancing, one count per
    class of ``classes_`` (None for a class with a zero quota).
n_samples_fit_ : int
    Rows of the X given to fit.
n_features_in_ : int
    Features of X.""",
}

_MARKER = re.compile(r"^(?P<indent>[ ]*)\[\[(?P<name>\w+)\]\]$", re.MULTILINE)


def shared_docs(cls):
    """Class decorator: fill the ``[[name]]`` lines of ``cls.__doc__`` from :data:`SHARED`."""

    def fill(match):
        indent = match.group("indent")
        return "\n".join(indent + line if line else line
                         for line in SHARED[match.group("name")].splitlines())

    cls.__doc__ = _MARKER.sub(fill, cls.__doc__)
    return cls
