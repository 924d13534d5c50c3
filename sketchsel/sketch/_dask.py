"""Frequent Directions on a Dask array: a sketch per block, merged up a tree.

Sketches are mergeable with the guarantee of one stream, so
:func:`dask.array.reduction` does the work: each block of rows is sketched
where it lives, and sketches, never rows, travel to be merged, ``split_every``
at a time. Dask is imported only when a Dask array is given.
"""

import numpy as np

from .._array_api import check_array


def _boxed(sketch):
    # Dask reductions move arrays: an object array of shape (1, 1) carries one sketch.
    box = np.empty((1, 1), dtype=object)
    box[0, 0] = sketch
    return box


def _sketches(parts):
    """The sketches in a nested list of boxes, as the reduction hands them over.

    Empty blocks (boolean indexing leaves some) give None, which is skipped.
    """
    if isinstance(parts, np.ndarray):
        return [sketch for sketch in parts.ravel() if sketch is not None]
    return [sketch for part in parts for sketch in _sketches(part)]


def validated_dtype(X):
    """The dtype :func:`sketchsel._array_api.check_array` gives X's blocks (float32 or float64)."""
    return check_array(np.zeros((1, 1), dtype=X.dtype))[0].dtype


def map_row_blocks(X, function, width):
    """``function(rows)`` on each block of X's rows where it lives, validated as in memory.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Columns are put in one chunk first, so that each block holds whole rows.
    function : callable
        Takes a block's rows, validated by :func:`sketchsel._array_api.check_array`
        as a NumPy array, and returns an array of shape (n_rows, width).
    width : int
        Columns of the result.

    Returns
    -------
    mapped : dask.array.Array of shape (n_samples, width)
        Lazy, in the dtype the blocks are validated to; empty blocks (boolean
        indexing leaves some) give empty rows without calling ``function``.
    """
    X = X.rechunk({1: -1})
    dtype = validated_dtype(X)

    def apply(block):
        if block.shape[0] == 0:
            return np.empty((0, width), dtype=dtype)
        return function(check_array(block, backend="numpy")[0])

    return X.map_blocks(apply, chunks=(X.chunks[0], (width,)), dtype=dtype)


# Blocks brought to the client by one compute: enough to keep the workers busy.
_GATHER_BLOCKS = 8


def gather_rows(X):
    """A lazy Dask array of rows as one NumPy array on the client, a few blocks at a time.

    ``X.compute()`` joins the blocks in one task, which a distributed
    scheduler runs on a worker: that worker must hold every block at once
    (an N x k representation, more than a worker of a cluster sized for the
    data may have). Here the blocks travel to the client ``_GATHER_BLOCKS``
    at a time and fill one array there.
    """
    import dask

    X = X.rechunk({1: -1})
    if np.isnan(X.shape[0]):  # unknown block sizes, after boolean indexing for one
        X = X.compute_chunk_sizes()
    blocks = X.to_delayed().ravel()
    bounds = np.concatenate([[0], np.cumsum(X.chunks[0])])
    rows = np.empty(X.shape, dtype=X.dtype)
    for first in range(0, len(blocks), _GATHER_BLOCKS):
        parts = dask.compute(*blocks[first:first + _GATHER_BLOCKS])
        for index, part in enumerate(parts, start=first):
            rows[bounds[index]:bounds[index + 1]] = part
    return rows


def sketch_dask(make_sketch, X, split_every=None):
    """One sketch of the rows of a 2-D Dask array.

    Parameters
    ----------
    make_sketch : callable
        Returns a new, empty FrequentDirections with the wanted parameters.
    X : dask.array.Array of shape (n_samples, n_features)
        Rows to sketch; columns are put in one chunk first, so that each
        block holds whole rows.
    split_every : int, default=None
        Sketches merged at a time; None leaves it to Dask.

    Returns
    -------
    sketch : FrequentDirections
        The merged sketch, computed with the scheduler in effect.
    """
    import dask.array as da

    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got a Dask array of shape {X.shape}.")
    X = X.rechunk({1: -1})

    def sketch_block(block, block_info=None):
        if block.shape[0] == 0:
            return _boxed(None)
        try:
            return _boxed(make_sketch().fit(block))
        except ValueError as error:
            start, stop = block_info[0]["array-location"][0]
            where = (
                f"block {block_info[0]['chunk-location'][0]}" if np.isnan(start)
                else f"rows {start} to {stop - 1}"
            )
            raise ValueError(
                f"In {where} of the Dask array (rows counted from the start of that block "
                f"below): {error}"
            ) from error

    def merge(parts, axis, keepdims):
        sketches = _sketches(parts)
        if not sketches:
            return _boxed(None)
        first, *rest = sketches
        for sketch in rest:
            first.merge(sketch)
        return _boxed(first)

    boxes = X.map_blocks(
        sketch_block, dtype=object, chunks=((1,) * X.numblocks[0], (1,)),
        meta=np.empty((0, 0), dtype=object),
    )
    tree = da.reduction(
        boxes, lambda box, axis, keepdims: box, merge, combine=merge, axis=0, keepdims=True,
        dtype=object, concatenate=False, split_every=split_every,
        meta=np.empty((0, 0), dtype=object),
    )
    sketch = tree.compute()[0, 0]
    if sketch is None:
        raise ValueError("The Dask array X has no rows; it must hold at least one.")
    return sketch
