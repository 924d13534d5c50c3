"""GRAFT in training: every few epochs, FastMaxVol picks from each batch the rows to train on."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import clone
from torch.utils.data import DataLoader, Sampler

from ..selection import FastMaxVol
from ._gradients import output_residuals, preserved_state
from ._source import forward_with_head, unpack_batch

_FEATURES = ("penultimate", "inputs")


class GraftSampler(Sampler):
    """Train on the rows GRAFT selects, re-selected every few epochs.

    At a selection epoch the dataset is cut into random batches of
    ``selection_batch_size`` rows. For each batch, the features F (the
    inputs of ``head``, the flattened inputs, or those of a function) and
    the per-example gradients G of the cross-entropy with respect to the
    logits go to a clone of ``selector``, by default
    ``FastMaxVol(n_select=fraction, strategy="maxvol")``: the rows spanning F's dominant
    subspace, maxvol then rect_maxvol up to the budget. G gives each
    batch's ``residual``: how well the chosen rows' gradients, weighted by
    least squares, reproduce the batch's mean gradient. GRAFT's dynamic
    rank, ``selector=FastMaxVol(n_select=fraction, strategy="maxvol", rank="auto")``,
    takes
    instead as many rows as the smallest rank whose residual is below
    ``eps``; with logit gradients that is about ``n_classes - 1`` rows per
    batch, far below the budget, which trains on too little (see
    ``benchmarks/results/bench_training.md``), hence the fixed budget by
    default. The union of the chosen rows, as dataset indices, is the
    subset; iterating the sampler yields it in a new random order each
    epoch, so a DataLoader built on it loads, and back-propagates, only
    the chosen rows.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained, read at each selection; its modes,
        gradients and torch's random number generators are left as they
        were.
    dataset : torch.utils.data.Dataset
        Map-style dataset of ``(inputs, targets)`` items (a third item, if
        any, is ignored); targets are class indices.
    head : torch.nn.Module
        The last layer, whose output is the model's output (the logits) and
        whose input is the penultimate embedding.
    fraction : float, default=0.25
        Budget per batch, a fraction of ``selection_batch_size``; a dynamic
        rank may take fewer rows.
    selection_batch_size : int, default=200
        Rows of each batch selected from.
    select_every : int, default=1
        Epochs between selections.
    warm_start : bool, default=False
        Train on all rows during the first ``select_every`` epochs, then
        select (GRAFT-Warm); otherwise the first selection is at epoch 0.
    features : {"penultimate", "inputs"} or callable, default="penultimate"
        What FastMaxVol sees: the input of ``head``, the flattened inputs,
        or ``features(inputs)`` returning an (n, d) tensor.
    selector : FastMaxVol, default=None
        The per-batch selector, cloned for each batch; None uses
        ``FastMaxVol(n_select=fraction, strategy="maxvol")``.
    random_state : int or None, default=None
        Seeds the batches and the order of each epoch.

    Attributes
    ----------
    subset_ : ndarray of int64 or None
        Sorted dataset indices of the current subset (None before the first
        selection, and while training on all rows).
    selections_ : int
        Selections made.
    residuals_ : ndarray of shape (n_batches,) or None
        Of the last selection, per batch: ``||G_S^T w - g|| / ||g||``, g the
        batch's mean logit gradient and w the least-squares weights of the
        chosen rows S.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from sketchsel.torch import GraftSampler
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> x, y = torch.randn(400, 8), torch.randint(0, 3, (400,))
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> data = TensorDataset(x, y)
    >>> sampler = GraftSampler(model, data, head=model[2], fraction=0.25, random_state=0)
    >>> loader = DataLoader(data, batch_size=32, sampler=sampler)
    >>> for epoch in range(2):
    ...     sampler.set_epoch(epoch)
    ...     for inputs, targets in loader:
    ...         pass  # forward, backward and step on the chosen rows only
    >>> len(sampler), bool(set(sampler.subset_) <= set(range(400)))
    (100, True)
    """

    def __init__(
        self, model, dataset, head, *, fraction=0.25, selection_batch_size=200,
        select_every=1, warm_start=False, features="penultimate", selector=None,
        random_state=None,
    ):
        if not isinstance(model, torch.nn.Module) or not isinstance(head, torch.nn.Module):
            raise TypeError("model and head must be torch.nn.Module instances.")
        if not isinstance(fraction, Real) or not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}.")
        for name, value in (("selection_batch_size", selection_batch_size),
                            ("select_every", select_every)):
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if not (callable(features) or features in _FEATURES):
            raise ValueError(
                f"features must be 'penultimate', 'inputs' or a callable, got {features!r}."
            )
        if selector is not None and not isinstance(selector, FastMaxVol):
            raise TypeError(
                f"selector must be a sketchsel.FastMaxVol, got {type(selector).__name__}."
            )
        if random_state is not None and not isinstance(random_state, Integral):
            raise TypeError(f"random_state must be an int or None, got {random_state!r}.")
        self.model = model
        self.dataset = dataset
        self.head = head
        self.fraction = fraction
        self.selection_batch_size = selection_batch_size
        self.select_every = select_every
        self.warm_start = warm_start
        self.features = features
        self.selector = selector
        self.seed = np.random.SeedSequence(random_state).entropy
        self.epoch = 0
        self.subset_ = None
        self.selections_ = 0
        self.residuals_ = None
        self._round = None

    def set_epoch(self, epoch):
        """Set the epoch, which decides the order of its rows and when to select again.

        Call it at the start of every epoch, as with
        :class:`torch.utils.data.distributed.DistributedSampler`: without it
        the sampler stays at epoch 0, never selects again and repeats one order.
        """
        self.epoch = int(epoch)

    def _current_round(self):
        """Selection round of the current epoch; -1 while warm-starting on all rows."""
        round_ = self.epoch // self.select_every
        return round_ - 1 if self.warm_start else round_

    def _refresh(self):
        round_ = self._current_round()
        if round_ >= 0 and round_ != self._round:
            self.subset_ = self.select(round_)
            self.selections_ += 1
        elif round_ < 0:
            self.subset_ = None
        self._round = round_

    def __len__(self):
        self._refresh()
        return len(self.dataset) if self.subset_ is None else len(self.subset_)

    def __iter__(self):
        self._refresh()
        rows = np.arange(len(self.dataset)) if self.subset_ is None else self.subset_
        order = np.random.default_rng([self.seed, 1, self.epoch]).permutation(rows)
        return iter(order.tolist())

    def select(self, round_=0):
        """Run one selection with the model as it is now.

        Parameters
        ----------
        round_ : int, default=0
            Seeds the random batches, so that rounds differ.

        Returns
        -------
        subset : ndarray of int64
            Sorted dataset indices of the chosen rows.
        """
        n_rows = len(self.dataset)
        order = np.random.default_rng([self.seed, 0, round_]).permutation(n_rows)
        size = self.selection_batch_size
        batches = [order[i:i + size].tolist() for i in range(0, n_rows, size)]
        loader = DataLoader(self.dataset, batch_sampler=batches)
        device = next(self.model.parameters()).device
        base = self.selector or FastMaxVol(n_select=self.fraction, strategy="maxvol")
        chosen, residuals = [], []
        with preserved_state(self.model):
            for indices, batch in zip(batches, loader):
                inputs, targets, _ = unpack_batch(batch)
                inputs, targets = inputs.to(device), targets.to(device)
                logits, embedding, _ = forward_with_head(self.model, self.head, inputs)
                if embedding is None:
                    raise ValueError(
                        "head is called more than once in the model's forward, so its input "
                        "is not one embedding per row; pass the last layer, called once."
                    )
                features = self._features(inputs, embedding)
                gradients = output_residuals(logits, targets, "cross_entropy")
                selector = clone(base).fit(features, gradients=gradients)
                chosen.append(np.asarray(indices)[selector.sample_indices_])
                residuals.append(selector.residual_)
        self.residuals_ = np.asarray(residuals)
        return np.sort(np.concatenate(chosen))

    def _features(self, inputs, embedding):
        if self.features == "penultimate":
            return embedding.reshape(len(embedding), -1)
        if self.features == "inputs":
            return inputs.reshape(len(inputs), -1)
        with torch.no_grad():
            return self.features(inputs)
