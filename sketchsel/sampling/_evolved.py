"""EvolvedSampler: the state of Evolved Sampling (ES) and ES with pruning (ESWP), framework-free."""

import copy
import math
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints

from ._weighted import weighted_sample_without_replacement

# Relative slack on r * n and anneal_ratio * n_epochs before rounding them, so
# that a product that is an integer on paper but not in floating point (0.29 *
# 100 = 28.999999999999996) rounds as written.
_SLACK = 1e-12

_STATE_KEYS = ("n_samples", "scores", "weights", "epoch", "order", "rng_state")


def _check_int(value, name, low=0):
    """An int >= low (not a bool), as a Python int."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}.")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value}.")
    return int(value)


def _check_indices(indices, n_samples, name):
    """Distinct dataset indices as a 1-D int64 array (a copy)."""
    indices = np.asarray(indices)
    if indices.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {indices.shape}.")
    if indices.size == 0:
        return np.empty(0, dtype=np.int64)
    if indices.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must hold integer dataset indices, got dtype {indices.dtype}; pass the "
            f"positions of the samples in the dataset (not a boolean mask)."
        )
    indices = indices.astype(np.int64)
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= n_samples:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} holds {bad}, outside the dataset: indices must be in [0, {n_samples})."
        )
    if np.unique(indices).size != indices.size:
        raise ValueError(
            f"{name} has duplicates; each sample may appear at most once in a (meta-)batch."
        )
    return indices


class EvolvedSampler:
    """Evolved Sampling (ES) and ES with pruning (ESWP), as a state machine.

    ES (arXiv 2509.23461) chooses, at every step, which samples of a
    meta-batch to back-propagate, by their losses smoothed over time. Each
    sample i keeps a score ``s_i``, starting at ``1/n``. At a step, a
    meta-batch M of ``meta_batch_size`` samples is forwarded (no
    back-propagation) to get the current losses ``l_i``, and for i in M

    .. math::

        w_i = \\beta_1 s_i + (1 - \\beta_1) l_i, \\qquad
        s_i \\leftarrow \\beta_2 s_i + (1 - \\beta_2) l_i,

    with the old ``s_i`` in ``w_i`` (a decoupled EMA: ``beta2`` sets how much
    history the score keeps, ``beta1`` how much the current loss counts).
    Then ``batch_size`` samples of M are drawn without replacement with
    probabilities ``p_i = w_i / sum_{j in M} w_j``, and the mean loss over
    them alone is back-propagated. ``beta1 = beta2`` is a single EMA, and
    ``beta1 = 0`` samples by the current loss.

    ESWP also prunes at the level of the epoch: each pruning epoch leaves
    out exactly ``floor(prune_ratio * n)`` samples chosen by their score s
    (their historical losses, with no fresh forward pass), InfoBatch-style.

    The schedule over epochs ``e = 0, 1, ...``:

    - ``e < burn_in``: burn-in, plain uniform training: :meth:`sample`
      draws uniformly and no sample is pruned (scores are still updated).
    - ``burn_in <= e < n_epochs - ceil(anneal_ratio * n_epochs)``: ES, and
      ESWP pruning when ``prune_ratio > 0``.
    - the last ``ceil(anneal_ratio * n_epochs)`` epochs (and any epoch past
      ``n_epochs``): annealing, ES on the whole dataset, no pruning.

    This class holds only NumPy state; a training loop calls
    :meth:`meta_batches` (or :meth:`epoch_indices`) once per epoch, then for
    every meta-batch :meth:`update` with its losses and :meth:`sample` for
    the rows to train on. :mod:`sketchsel.torch` has a PyTorch face.

    Parameters
    ----------
    n_samples : int
        Size n of the dataset; samples are named by their index in
        ``[0, n)``.
    batch_size : int
        Rows back-propagated per step, b, at most ``n_samples``.
    meta_batch_size : int, default=None
        Rows forwarded per step, B >= b. None means ``2 * batch_size``:
        half of the forwarded rows are back-propagated.
    beta1 : float, default=0.2
        Weight of the old score in the sampling weight w, in [0, 1].
    beta2 : float, default=0.8
        Weight of the old score in the new score s, in [0, 1]. (0.2, 0.8) is
        the default the paper's reviewers quote.
    burn_in : int, default=0
        Epochs of plain uniform training at the start.
    prune_ratio : float, default=0.0
        ESWP: the fraction r in [0, 1) of the dataset left out of each
        pruning epoch, ``floor(r * n)`` samples exactly. 0 is plain ES.
    prune : {"lowest", "random_below_mean"}, default="lowest"
        Which samples a pruning epoch leaves out. "lowest": those of lowest
        score s (ties broken at random). "random_below_mean" (InfoBatch's
        rule): drawn uniformly among the samples whose score is below the
        mean score; when fewer than ``floor(r * n)`` are, all of them and the
        lowest-scored of the rest.
    anneal_ratio : float, default=0.125
        Fraction of the epochs, at the end, with no pruning: the last
        ``ceil(anneal_ratio * n_epochs)``. In [0, 1]; InfoBatch's default.
    n_epochs : int, default=None
        Length of the training, in epochs; needed when ``prune_ratio > 0``
        to place the annealing epochs.
    random_state : int, default=None
        Seed of the sampler's own ``numpy.random.Generator(PCG64)``, used
        for shuffling, pruning ties and draws; None seeds it from the
        operating system. No global random state is read or changed.

    Attributes
    ----------
    scores : ndarray of shape (n_samples,)
        A copy of the scores s.
    weights : ndarray of shape (n_samples,)
        A copy of the sampling weights w, from the last update of each
        sample (its score until then).
    epoch : int
        The epoch of the last :meth:`epoch_indices` call (0 before any).
    n_pruned : int
        Samples left out of a pruning epoch, ``floor(prune_ratio * n_samples)``.

    See Also
    --------
    sketchsel.torch.evolved_step : One ES training step of a PyTorch model.

    Notes
    -----
    Only the samples of the current meta-batch have their score refreshed;
    the others keep their last one. Pruning uses these historical scores, as
    the paper does, so it costs no forward pass. The back-propagated loss is
    the plain mean over the drawn rows, not importance-weighted: ES is a
    sampling scheme, not an unbiased estimator of the full loss.

    Unlike InfoBatch's implementation, the pruned count is exact (InfoBatch
    drops a fraction of the below-mean samples only), every random draw comes
    from the seeded generator of this object, and the kept samples are not
    rescaled, since ES re-weighs within the batches anyway.

    The state, including the generator's, round-trips through
    :meth:`state_dict` / :meth:`load_state_dict` and through pickle: a run
    resumed from it makes the same draws as one never interrupted.

    References
    ----------
    .. [1] "Evolved Sampling" / "ESWP", arXiv:2509.23461 (2025).
    .. [2] Z. Qin et al., "InfoBatch: Lossless Training Speed Up by Unbiased
       Dynamic Data Pruning", ICLR 2024.
    .. [3] P. S. Efraimidis and P. G. Spirakis, "Weighted random sampling
       with a reservoir", Information Processing Letters 97(5), 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.sampling import EvolvedSampler
    >>> sampler = EvolvedSampler(
    ...     1000, batch_size=16, meta_batch_size=64, prune_ratio=0.3, n_epochs=8,
    ...     random_state=0,
    ... )
    >>> sampler.epoch_size(0), sampler.epoch_size(7)  # epoch 7 anneals: no pruning
    (700, 1000)
    >>> losses_of = lambda rows: (rows % 10) / 10.0  # stands for a forward pass
    >>> for meta in sampler.meta_batches(0):
    ...     w = sampler.update(meta, losses_of(meta))
    ...     chosen = sampler.sample(meta)  # back-propagate these rows only
    >>> meta.shape, chosen.shape, bool(np.isin(chosen, meta).all())
    ((60,), (16,), True)
    >>> kept = sampler.epoch_indices(1)  # prunes the 300 lowest scores
    >>> kept.size, bool(sampler.scores[kept].min() >= np.sort(sampler.scores)[299])
    (700, True)
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "meta_batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "beta1": [Interval(Real, 0, 1, closed="both")],
        "beta2": [Interval(Real, 0, 1, closed="both")],
        "burn_in": [Interval(Integral, 0, None, closed="left")],
        "prune_ratio": [Interval(Real, 0, 1, closed="left")],
        "prune": [StrOptions({"lowest", "random_below_mean"})],
        "anneal_ratio": [Interval(Real, 0, 1, closed="both")],
        "n_epochs": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": [Interval(Integral, 0, None, closed="left"), None],
    }

    def __init__(
        self, n_samples, *, batch_size, meta_batch_size=None, beta1=0.2, beta2=0.8, burn_in=0,
        prune_ratio=0.0, prune="lowest", anneal_ratio=0.125, n_epochs=None, random_state=None,
    ):
        params = {
            "n_samples": n_samples, "batch_size": batch_size, "meta_batch_size": meta_batch_size,
            "beta1": beta1, "beta2": beta2, "burn_in": burn_in, "prune_ratio": prune_ratio,
            "prune": prune, "anneal_ratio": anneal_ratio, "n_epochs": n_epochs,
            "random_state": random_state,
        }
        validate_parameter_constraints(
            self._parameter_constraints, params, caller_name=type(self).__name__
        )
        for name in ("n_samples", "batch_size", "meta_batch_size", "burn_in", "n_epochs",
                     "random_state"):
            if isinstance(params[name], bool):
                raise TypeError(f"{name} must be an int, got {params[name]!r}.")
        if batch_size > n_samples:
            raise ValueError(
                f"batch_size={batch_size} is larger than n_samples={n_samples}; a step cannot "
                f"back-propagate more samples than the dataset has."
            )
        if meta_batch_size is None:
            meta_batch_size = 2 * batch_size
        elif meta_batch_size < batch_size:
            raise ValueError(
                f"meta_batch_size={meta_batch_size} is smaller than batch_size={batch_size}; the "
                f"batch is drawn from the meta-batch, so pass meta_batch_size >= batch_size "
                f"(or None for 2 * batch_size)."
            )
        if prune_ratio > 0 and n_epochs is None:
            raise ValueError(
                f"prune_ratio={prune_ratio} needs n_epochs, the length of the training, to "
                f"place the annealing epochs (the last ceil(anneal_ratio * n_epochs)); pass "
                f"n_epochs, or prune_ratio=0 for ES without pruning."
            )
        self.n_samples = int(n_samples)
        self.batch_size = int(batch_size)
        self.meta_batch_size = int(meta_batch_size)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.burn_in = int(burn_in)
        self.prune_ratio = float(prune_ratio)
        self.prune = prune
        self.anneal_ratio = float(anneal_ratio)
        self.n_epochs = None if n_epochs is None else int(n_epochs)
        self.random_state = None if random_state is None else int(random_state)
        self._rng = np.random.Generator(np.random.PCG64(self.random_state))
        self._scores = np.full(self.n_samples, 1.0 / self.n_samples)
        self._weights = self._scores.copy()
        self._epoch = 0
        self._order = None  # the order drawn for self._epoch, once drawn

    def __repr__(self):
        return (
            f"{type(self).__name__}({self.n_samples}, batch_size={self.batch_size}, "
            f"meta_batch_size={self.meta_batch_size}, beta1={self.beta1}, beta2={self.beta2}, "
            f"burn_in={self.burn_in}, prune_ratio={self.prune_ratio}, prune={self.prune!r}, "
            f"anneal_ratio={self.anneal_ratio}, n_epochs={self.n_epochs}, "
            f"random_state={self.random_state})"
        )

    # ------------------------------------------------------------ read-only views

    @property
    def scores(self):
        """A copy of the scores s, shape (n_samples,)."""
        return self._scores.copy()

    @property
    def weights(self):
        """A copy of the sampling weights w, shape (n_samples,)."""
        return self._weights.copy()

    @property
    def epoch(self):
        """The epoch of the last :meth:`epoch_indices` call (0 before any)."""
        return self._epoch

    @property
    def n_pruned(self):
        """Samples a pruning epoch leaves out: ``floor(prune_ratio * n_samples)``."""
        return math.floor(self.prune_ratio * self.n_samples * (1 + _SLACK))

    @property
    def n_anneal(self):
        """Epochs without pruning at the end: ``ceil(anneal_ratio * n_epochs)`` (0 without n_epochs)."""
        if self.n_epochs is None:
            return 0
        return math.ceil(self.anneal_ratio * self.n_epochs * (1 - _SLACK))

    @property
    def in_burn_in(self):
        """Whether the current epoch is a burn-in epoch, where :meth:`sample` is uniform."""
        return self._epoch < self.burn_in

    def prunes(self, epoch):
        """Whether ESWP pruning applies to ``epoch`` (0-based).

        Parameters
        ----------
        epoch : int
            An epoch, at least 0.

        Returns
        -------
        prunes : bool
            True after the burn-in and before the annealing epochs, when
            ``n_pruned > 0``.
        """
        epoch = _check_int(epoch, "epoch")
        if self.n_pruned == 0:
            return False
        return self.burn_in <= epoch < self.n_epochs - self.n_anneal

    def epoch_size(self, epoch):
        """Samples visited in ``epoch``: ``n_samples``, less ``n_pruned`` if it prunes.

        Parameters
        ----------
        epoch : int
            An epoch, at least 0.

        Returns
        -------
        size : int
        """
        return self.n_samples - (self.n_pruned if self.prunes(epoch) else 0)

    # ------------------------------------------------------------ the steps

    def update(self, indices, losses):
        """Refresh the weights and scores of some samples with their current losses.

        For each i of ``indices``, with its loss ``l_i``:
        ``w_i = beta1 * s_i + (1 - beta1) * l_i`` (with the old ``s_i``), then
        ``s_i = beta2 * s_i + (1 - beta2) * l_i``.

        Parameters
        ----------
        indices : array-like of shape (m,)
            Distinct dataset indices, in ``[0, n_samples)``.
        losses : array-like of shape (m,)
            Their per-sample losses, finite and non-negative. Not modified.

        Returns
        -------
        weights : ndarray of shape (m,), float64
            The new ``w_i`` of these samples, in the order of ``indices``.
        """
        indices = _check_indices(indices, self.n_samples, "indices")
        try:
            losses = np.asarray(losses, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"losses must be an array of numbers: {error}") from None
        if losses.shape != indices.shape:
            raise ValueError(
                f"losses has shape {losses.shape} but indices has {indices.shape}; give one "
                f"loss per index (a per-sample loss, reduction='none')."
            )
        if not np.all(np.isfinite(losses)) or np.any(losses < 0):
            raise ValueError(
                "losses must be finite and non-negative: they are sampling weights. Check the "
                "training for divergence, or shift a loss that can be negative."
            )
        old = self._scores[indices]
        weights = self.beta1 * old + (1.0 - self.beta1) * losses
        self._weights[indices] = weights
        self._scores[indices] = self.beta2 * old + (1.0 - self.beta2) * losses
        return weights

    def sample(self, meta_indices, n=None):
        """The samples of a meta-batch to back-propagate.

        Draws without replacement with probabilities proportional to the
        stored weights w of the meta-batch (successive sampling); uniformly
        during burn-in. Samples of zero weight come only when fewer than n
        have a positive one.

        Parameters
        ----------
        meta_indices : array-like of shape (m,)
            Distinct dataset indices of the meta-batch.
        n : int, default=None
            Samples to draw; None means ``batch_size``. A meta-batch with
            fewer than n samples (the last of an epoch) gives all of them.

        Returns
        -------
        indices : ndarray of shape (min(n, m),), int64
            Dataset indices, in the order drawn.
        """
        meta_indices = _check_indices(meta_indices, self.n_samples, "meta_indices")
        n = self.batch_size if n is None else _check_int(n, "n", low=1)
        n = min(n, meta_indices.size)
        if self.in_burn_in:
            weights = np.ones(meta_indices.size)
        else:
            weights = self._weights[meta_indices]
        return meta_indices[weighted_sample_without_replacement(self._rng, weights, n)]

    def epoch_indices(self, epoch):
        """The dataset indices to visit in ``epoch``, shuffled and, when it prunes, pruned.

        Records ``epoch`` as the current one (which decides the burn-in of
        :meth:`sample`). The pruning uses the scores as they are now. Asking
        again for the current epoch returns the same indices without a new
        draw, so an epoch can be re-read (and resumed after
        :meth:`load_state_dict`).

        Parameters
        ----------
        epoch : int
            0-based epoch.

        Returns
        -------
        indices : ndarray of shape (epoch_size(epoch),), int64
            A random permutation of the kept samples.
        """
        epoch = _check_int(epoch, "epoch")
        if epoch == self._epoch and self._order is not None:
            return self._order.copy()
        keep = np.ones(self.n_samples, dtype=bool)
        if self.prunes(epoch):
            keep[self._pruned()] = False
        kept = np.flatnonzero(keep)
        self._order = self._rng.permutation(kept).astype(np.int64)
        self._epoch = epoch
        return self._order.copy()

    def meta_batches(self, epoch):
        """The meta-batches of ``epoch``: :meth:`epoch_indices` in chunks.

        The indices are drawn when this is called, not when the first chunk
        is read.

        Parameters
        ----------
        epoch : int
            0-based epoch.

        Returns
        -------
        batches : iterator of ndarray, int64
            Chunks of ``meta_batch_size`` indices; the last may be smaller.
        """
        order = self.epoch_indices(epoch)
        size = self.meta_batch_size
        return (order[start:start + size] for start in range(0, order.size, size))

    def _pruned(self):
        """The ``n_pruned`` indices a pruning epoch leaves out, by the current scores."""
        k, s = self.n_pruned, self._scores
        if self.prune == "lowest":
            return self._lowest(np.arange(s.size), k)
        below = s < s.mean()
        if np.count_nonzero(below) >= k:
            return self._rng.choice(np.flatnonzero(below), size=k, replace=False)
        # Too few below the mean: all of them, and the lowest of the rest.
        rest = self._lowest(np.flatnonzero(~below), k - np.count_nonzero(below))
        return np.concatenate([np.flatnonzero(below), rest])

    def _lowest(self, candidates, k):
        """The k candidates of lowest score, ties broken at random."""
        order = np.lexsort((self._rng.random(candidates.size), self._scores[candidates]))
        return candidates[order[:k]]

    # ------------------------------------------------------------ state

    def state_dict(self):
        """The state of the sampler, as a dict of NumPy arrays and Python scalars.

        Returns
        -------
        state : dict
            ``n_samples``, ``scores``, ``weights``, ``epoch``, ``order`` (the
            indices drawn for the current epoch, or None) and ``rng_state``
            (the generator's ``bit_generator.state``). Copies: changing the
            sampler does not change them.
        """
        return {
            "n_samples": self.n_samples,
            "scores": self._scores.copy(),
            "weights": self._weights.copy(),
            "epoch": self._epoch,
            "order": None if self._order is None else self._order.copy(),
            "rng_state": copy.deepcopy(self._rng.bit_generator.state),
        }

    def load_state_dict(self, state):
        """Restore a state from :meth:`state_dict`.

        The hyper-parameters stay those of this sampler; only the scores,
        weights, epoch and generator come from the state, so a resumed run
        makes the same draws as an uninterrupted one.

        Parameters
        ----------
        state : dict
            From :meth:`state_dict` of a sampler of the same ``n_samples``.

        Returns
        -------
        self : EvolvedSampler
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from state_dict(), got {type(state).__name__}.")
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"state lacks {missing}; pass a dict made by state_dict().")
        if state["n_samples"] != self.n_samples:
            raise ValueError(
                f"state is of a sampler over n_samples={state['n_samples']}, but this one has "
                f"n_samples={self.n_samples}; load it into a sampler over the same dataset."
            )
        scores = np.array(state["scores"], dtype=np.float64)
        weights = np.array(state["weights"], dtype=np.float64)
        for name, value in (("scores", scores), ("weights", weights)):
            if value.shape != (self.n_samples,):
                raise ValueError(
                    f"state[{name!r}] has shape {value.shape}, expected ({self.n_samples},)."
                )
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = copy.deepcopy(state["rng_state"])
        order = state["order"]
        self._scores, self._weights, self._rng = scores, weights, rng
        self._epoch = _check_int(state["epoch"], "state['epoch']")
        self._order = None if order is None else np.array(order, dtype=np.int64)
        return self
