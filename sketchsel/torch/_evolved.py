"""Evolved Sampling with PyTorch: indices through a DataLoader, and one training step."""

import math
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..sampling._evolved import EvolvedSampler, _check_int


class IndexedDataset(Dataset):
    """A dataset whose items carry their own index: ``(*item, index)``.

    The dataset indices then travel through a
    :class:`~torch.utils.data.DataLoader` with the data, so a training loop
    knows which samples a batch holds, without patching the loader.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        A map-style dataset (with ``__getitem__`` and ``__len__``).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from sketchsel.torch import IndexedDataset
    >>> data = IndexedDataset(TensorDataset(torch.arange(5.0), torch.arange(5) % 2))
    >>> len(data), data[3]
    (5, (tensor(3.), tensor(1), 3))
    """

    def __init__(self, dataset):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(
                f"dataset must be a map-style dataset with __getitem__ and __len__, got "
                f"{type(dataset).__name__}."
            )
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        item = self.dataset[index]
        if isinstance(item, tuple):
            return (*item, index)
        return item, index


class EvolvedBatchSampler(Sampler):
    """The meta-batches of an :class:`~sketchsel.sampling.EvolvedSampler`, for a DataLoader.

    Yields the meta-batches of the current epoch as lists of dataset
    indices, shuffled and (ESWP) pruned by the sampler. Pass it as
    ``batch_sampler`` and call :meth:`set_epoch` before each epoch, as with
    :class:`~torch.utils.data.distributed.DistributedSampler`.

    Parameters
    ----------
    sampler : EvolvedSampler
        The state of Evolved Sampling; its ``meta_batch_size`` sets the
        size of the batches.
    epoch : int, default=0
        The epoch to yield.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from sketchsel.sampling import EvolvedSampler
    >>> from sketchsel.torch import EvolvedBatchSampler, IndexedDataset
    >>> core = EvolvedSampler(10, batch_size=2, meta_batch_size=4, random_state=0)
    >>> batches = EvolvedBatchSampler(core)
    >>> loader = DataLoader(IndexedDataset(TensorDataset(torch.randn(10, 3))),
    ...                     batch_sampler=batches)
    >>> len(batches), [index.shape[0] for _, index in loader]
    (3, [4, 4, 2])
    """

    def __init__(self, sampler, *, epoch=0):
        if not isinstance(sampler, EvolvedSampler):
            raise TypeError(
                f"sampler must be a sketchsel.sampling.EvolvedSampler, got "
                f"{type(sampler).__name__}."
            )
        self.sampler = sampler
        self.epoch = _check_int(epoch, "epoch")

    def set_epoch(self, epoch):
        """Set the epoch the next iteration yields.

        Parameters
        ----------
        epoch : int
            0-based epoch.
        """
        self.epoch = _check_int(epoch, "epoch")

    def __iter__(self):
        for batch in self.sampler.meta_batches(self.epoch):
            yield batch.tolist()

    def __len__(self):
        return math.ceil(self.sampler.epoch_size(self.epoch) / self.sampler.meta_batch_size)


class EvolvedStep(NamedTuple):
    """What :func:`evolved_step` did.

    Attributes
    ----------
    loss : float
        The mean loss of the chosen rows, the one back-propagated.
    indices : ndarray of shape (n_chosen,), int64
        Dataset indices of the chosen rows, in the order drawn.

    Examples
    --------
    >>> import numpy as np
    >>> from sketchsel.torch import EvolvedStep
    >>> step = EvolvedStep(loss=0.25, indices=np.array([3, 7]))
    >>> step.loss, step.indices.tolist()
    (0.25, [3, 7])
    """

    loss: float
    indices: np.ndarray


def _per_sample(losses, n_rows):
    if not isinstance(losses, torch.Tensor) or losses.shape != (n_rows,):
        shape = tuple(losses.shape) if hasattr(losses, "shape") else type(losses).__name__
        raise ValueError(
            f"loss_fn must return one loss per sample, a tensor of shape ({n_rows},); got "
            f"{shape}. Use an unreduced loss, such as "
            f"torch.nn.CrossEntropyLoss(reduction='none')."
        )
    return losses


def _to_numpy(values):
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _losses_to_numpy(losses):
    # float64 first: NumPy has no bfloat16.
    return losses.detach().to(torch.float64).cpu().numpy()


def evolved_step(model, loss_fn, optimizer, inputs, targets, indices, sampler):
    """One training step of Evolved Sampling on a meta-batch.

    1. Forward the meta-batch under :func:`torch.no_grad` for its
       per-sample losses, and :meth:`EvolvedSampler.update` the scores with
       them.
    2. Draw ``batch_size`` rows with :meth:`EvolvedSampler.sample`.
    3. Zero the gradients, forward and back-propagate the mean loss of the
       chosen rows only, and take an optimizer step.

    During burn-in the first forward is skipped: a uniform subset of
    ``batch_size`` rows is trained on, and its losses (from the training
    forward) update the scores.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(inputs)``. It is used in its current mode
        (``train()`` or ``eval()``): in train mode, the scoring forward also
        updates the running statistics of batch normalisation.
    loss_fn : callable
        ``loss_fn(outputs, targets)`` returns per-sample losses, a tensor of
        shape (m,) (``reduction="none"``), non-negative.
    optimizer : torch.optim.Optimizer
        Optimises the parameters of ``model``.
    inputs : torch.Tensor
        The meta-batch, first dimension m, on any device.
    targets : torch.Tensor
        Its targets, first dimension m.
    indices : torch.Tensor or array-like of shape (m,)
        Dataset indices of the rows, such as the last item of an
        :class:`IndexedDataset` batch.
    sampler : EvolvedSampler
        The state of Evolved Sampling; updated in place.

    Returns
    -------
    step : EvolvedStep
        ``loss`` (float), the back-propagated mean loss, and ``indices``,
        the dataset indices of the chosen rows.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from sketchsel.sampling import EvolvedSampler
    >>> from sketchsel.torch import EvolvedBatchSampler, IndexedDataset, evolved_step
    >>> _ = torch.manual_seed(0)
    >>> X, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    >>> model = torch.nn.Linear(5, 3)
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    >>> core = EvolvedSampler(64, batch_size=8, meta_batch_size=32, random_state=0)
    >>> batches = EvolvedBatchSampler(core)
    >>> loader = DataLoader(IndexedDataset(TensorDataset(X, y)), batch_sampler=batches)
    >>> for epoch in range(2):
    ...     batches.set_epoch(epoch)
    ...     for inputs, targets, index in loader:
    ...         step = evolved_step(model, loss_fn, optimizer, inputs, targets, index, core)
    >>> step.indices.shape, isinstance(step.loss, float)
    ((8,), True)
    """
    if not isinstance(sampler, EvolvedSampler):
        raise TypeError(
            f"sampler must be a sketchsel.sampling.EvolvedSampler, got {type(sampler).__name__}."
        )
    meta = np.asarray(_to_numpy(indices))
    n_rows = inputs.shape[0]
    if meta.shape != (n_rows,) or targets.shape[0] != n_rows:
        raise ValueError(
            f"inputs has {n_rows} rows, targets {targets.shape[0]} and indices shape "
            f"{meta.shape}; give one target and one dataset index per row of inputs."
        )
    burn_in = sampler.in_burn_in
    if not burn_in:
        with torch.no_grad():
            scored = _per_sample(loss_fn(model(inputs), targets), n_rows)
        sampler.update(meta, _losses_to_numpy(scored))
    chosen = sampler.sample(meta)
    # Positions of the chosen dataset indices in the meta-batch (indices are distinct).
    by_index = np.argsort(meta, kind="stable")
    positions = by_index[np.searchsorted(meta[by_index], chosen)]
    rows = torch.as_tensor(positions, dtype=torch.long, device=inputs.device)
    optimizer.zero_grad()
    losses = _per_sample(
        loss_fn(model(inputs.index_select(0, rows)),
                targets.index_select(0, rows.to(targets.device))),
        rows.shape[0],
    )
    if burn_in:
        sampler.update(chosen, _losses_to_numpy(losses))
    loss = losses.mean()
    loss.backward()
    optimizer.step()
    return EvolvedStep(float(loss.detach()), chosen)
