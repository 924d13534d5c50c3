"""Sources of batches: re-iterable data that selection reads in passes, never whole."""

import numpy as np

from .._array_api import check_array
from ._policy import as_labels


def empty_source_error():
    """The error for a source of batches that yielded no rows."""
    return ValueError("The source of batches yielded no rows; X must hold at least one.")


def check_rows(expected, found):
    """Refuse a pass over a source that yielded no rows, or other rows than an earlier one.

    ``expected`` is the rows of the earlier pass (0 or None when unknown) and
    ``found`` those of this one (counted up to the first row past them).
    """
    if found == 0:
        raise empty_source_error()
    if expected and found != expected:
        found = "more" if found > expected else found
        raise ValueError(
            f"The source yielded {expected} rows in one pass and {found} in the next; it "
            f"must yield the same batches on every pass."
        )


def labels_of_every_batch(labels, n_rows):
    """The labels of all rows, or None when no batch had any; an error when some lacked them."""
    if not labels:
        return None
    labels = np.concatenate(labels)
    if labels.shape[0] != n_rows:
        raise ValueError(
            f"Some batches yielded labels and others did not ({labels.shape[0]} labels for "
            f"{n_rows} rows): yield (X_batch, y_batch) pairs for every batch, or none."
        )
    return labels


def is_batch_source(X):
    """Whether X is a source of batches rather than an array.

    A source is a callable returning an iterator of batches, or an iterable
    that is not array-like (no ``shape``; lists and tuples are arrays).
    """
    if callable(X):
        return True
    return hasattr(X, "__iter__") and not hasattr(X, "shape") and not isinstance(X, (list, tuple))


def iter_batches(source):
    """One pass over a source: ``(X_batch, y_batch)`` pairs, y_batch None when absent.

    A batch is ``X_batch`` alone or a pair ``(X_batch, y_batch)``, as a tuple
    or a two-element list; ``y_batch`` comes as a 1-D NumPy array, a
    label-indicator matrix decoded (:func:`~sketchsel.selection._policy.as_labels`).

    Raises
    ------
    TypeError
        When the source is a one-shot iterator (a generator), which a second
        pass would find empty.
    """
    iterator = source() if callable(source) else iter(source)
    if iterator is source:
        raise TypeError(
            "X is a one-shot iterator (a generator), but selection reads the data more than "
            "once: pass a function that returns a new iterator, or a re-iterable object such "
            "as a torch DataLoader."
        )
    for batch in iterator:
        # A pair, as a tuple or as the list a torch DataLoader yields.
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            yield batch[0], as_labels(batch[1])
        else:
            yield batch, None


def sketch_source(source, make_sketch, backend):
    """One pass over a source into a streaming sketch.

    Parameters
    ----------
    source : callable or iterable
        Re-iterable source of batches (see :func:`iter_batches`).
    make_sketch : callable
        ``make_sketch(n_features)`` returns the empty sketch, built once the
        first batch tells the number of features, or None when the rows
        need no sketch: the pass then stops at the first batch.
    backend : str or None
        Back-end for validating the batches.

    Returns
    -------
    sketch : object or None
        The sketch after ``partial_fit`` on every batch; None when
        ``make_sketch`` gave none.
    n_rows : int
        Rows seen; 0 without a sketch.
    """
    sketch, n_rows = None, 0
    for rows, _ in iter_batches(source):
        rows, _ = check_array(rows, backend=backend)
        if sketch is None:
            sketch = make_sketch(rows.shape[1])
            if sketch is None:
                return None, 0
        sketch.partial_fit(rows)
        n_rows += rows.shape[0]
    if sketch is None:
        raise empty_source_error()
    return sketch, n_rows
