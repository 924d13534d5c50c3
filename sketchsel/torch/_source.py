"""A re-iterable source of per-example gradients that any selector's ``fit`` reads."""

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from ..linalg._projection import seed_from
from ._gradients import (
    _check_loss,
    _check_projection,
    linear_head_gradients,
    per_example_gradients,
    preserved_state,
    resolve_parameters,
)


def forward_with_head(model, head, inputs):
    """The model's outputs, and the input and output of ``head``, from one forward without grad.

    The head's input and output are None when it was called more than once,
    since neither is then the one input or output of the layer.
    """
    seen = {"calls": 0}

    def hook(module, args, output):
        seen["input"], seen["output"] = args[0], output
        seen["calls"] += 1

    handle = head.register_forward_hook(hook)
    try:
        with torch.no_grad():
            outputs = model(inputs)
    finally:
        handle.remove()
    if seen["calls"] == 0:
        raise ValueError(
            f"head={head!r} was not called in the model's forward; pass the module whose "
            f"output is the model's output."
        )
    if seen["calls"] > 1:
        return outputs, None, None
    return outputs, seen["input"], seen["output"]


def unpack_batch(batch):
    """(inputs, targets, dataset indices or None) of a batch of 2 or 3 items."""
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[0], batch[1], (batch[2] if len(batch) == 3 else None)
    raise ValueError(
        f"Each batch of the loader must be a tuple (inputs, targets) or (inputs, targets, "
        f"dataset_indices), got {type(batch).__name__}; for a dataset of dicts, give the "
        f"DataLoader a collate_fn that returns such a tuple (sketchsel.torch.IndexedDataset "
        f"adds the indices)."
    )


def _batch_indices(indices, n_rows):
    """The dataset indices of a batch's third item, checked: integers, one per row."""
    indices = torch.as_tensor(indices).cpu()
    if indices.dtype.is_floating_point or indices.dtype == torch.bool or (
        indices.reshape(-1).shape[0] != n_rows
    ):
        raise ValueError(
            f"The third item of a batch must hold the {n_rows} integer dataset indices of "
            f"its rows, got {indices.dtype} of shape {tuple(indices.shape)}."
        )
    return np.asarray(indices, dtype=np.int64).reshape(-1)


def _sampler_order(loader):
    """Index lists of a DataLoader's batches, or None when it has no map-style sampler.

    The batch sampler is read twice: a sampler that draws (a shuffling one,
    a weighted one, a random subset) gives another order the second time,
    and then the loader's own pass would too, so the indices read here would
    not be those of the rows it yields.
    """
    batch_sampler = getattr(loader, "batch_sampler", None)
    dataset = getattr(loader, "dataset", None)
    if batch_sampler is None or isinstance(dataset, torch.utils.data.IterableDataset):
        return None
    order = [list(indices) for indices in batch_sampler]
    if order != [list(indices) for indices in batch_sampler]:
        raise ValueError(
            "The loader's sampler gives another order on every pass (shuffle=True, or a "
            "random sampler), but selection reads the data more than once and maps its "
            "rows to dataset indices: build the DataLoader with shuffle=False and a "
            "sampler that gives the same order each time."
        )
    return order


def _closed_form_applies(loss, outputs, targets):
    """Whether linear_head_gradients handles these outputs and targets (else torch.func does)."""
    if outputs.ndim != 2:
        return False
    return loss == "mse" or (targets.ndim == 1 and not targets.dtype.is_floating_point)


class GradientSource:
    """Per-example gradients of a model over a data loader, batch by batch, on every pass.

    Iterating the source yields ``(G_batch, y_batch)``, the (projected)
    per-example gradients of a batch and its targets, so a selector's
    :meth:`fit` reads it like any other source of batches: it makes the
    passes it needs and never holds all the gradients at full dimension.
    Rows are numbered in the order of the loader; :attr:`indices_` maps
    them to dataset indices.

    When ``params`` is a :class:`torch.nn.Linear` module whose output is the
    model's output and ``loss`` is "cross_entropy" or "mse", gradients come
    from the closed form of :func:`linear_head_gradients` (one forward, no
    backward); otherwise from :func:`per_example_gradients`.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its state, mode, gradients and torch's random number
        generators are as they were after every pass.
    loader : iterable
        Re-iterable batches ``(inputs, targets)`` or ``(inputs, targets,
        dataset_indices)``, in the same order on every pass (a DataLoader with
        ``shuffle=False``, for one). Inputs are moved to the model's device.
    loss : {"cross_entropy", "mse"} or callable, default="cross_entropy"
        Each example's loss, as in :func:`per_example_gradients`.
    params : str, torch.nn.Module or list of them, default=None
        Parameters to differentiate; None takes every parameter that
        requires grad. The last linear layer is the usual choice.
    n_components : int, default=None
        Project the gradients to this many dimensions; None keeps them whole.
    projection : {"gaussian", "rademacher", "countsketch"}, default="gaussian"
        Kind of the projection.
    random_state : int, RandomState instance or None, default=None
        Seed of the projection, drawn once here, so that every pass uses the
        same matrix.
    micro_batch_size, memory_budget : int, optional
        As in :func:`per_example_gradients`.

    Attributes
    ----------
    indices_ : ndarray of shape (n_samples,), int64
        Dataset index of each row, after a pass: from the batches' third
        item, else from the DataLoader's sampler, else the row number.
    seed_ : int or None
        Seed of the projection.

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> from sketchsel import AgreementSelector
    >>> from sketchsel.torch import GradientSource
    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> x, y = torch.randn(300, 10), torch.randint(0, 3, (300,))
    >>> model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=64)
    >>> source = GradientSource(model, loader, params=model[2], n_components=32, random_state=0)
    >>> selector = AgreementSelector(n_select=30, sketch_size=8).fit(source)
    >>> rows = selector.select()
    >>> source.indices_[rows].shape
    (30,)
    """

    def __init__(
        self, model, loader, loss="cross_entropy", *, params=None, n_components=None,
        projection="gaussian", random_state=None, micro_batch_size=None,
        memory_budget=2**28,
    ):
        _check_loss(loss)
        _check_projection(n_components, projection)
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if not isinstance(loader, Iterable) or isinstance(loader, Iterator):
            raise TypeError(
                "loader must be re-iterable (a DataLoader, or a list of batches), not a "
                "one-shot iterator."
            )
        self.model = model
        self.loader = loader
        self.loss = loss
        self.params = params
        self.names = resolve_parameters(model, params)
        self.n_components = n_components
        self.projection = projection
        self.seed_ = None if n_components is None else seed_from(random_state)
        self.micro_batch_size = micro_batch_size
        self.memory_budget = memory_budget
        self.head = self._linear_head()

    def _linear_head(self):
        """The nn.Linear whose parameters are exactly those chosen, if the closed form may apply."""
        if callable(self.loss):
            return None
        modules = dict(self.model.named_modules())
        owners = {name.rpartition(".")[0] for name in self.names}
        if len(owners) != 1:
            return None
        owner = owners.pop()
        head = modules.get(owner)
        weight = f"{owner}.weight" if owner else "weight"
        # A subclass with its own forward may not compute features @ W.T + b.
        linear = isinstance(head, torch.nn.Linear) and type(head).forward is torch.nn.Linear.forward
        return head if linear and weight in self.names else None

    def __iter__(self):
        order = _sampler_order(self.loader)
        device = next(self.model.parameters()).device
        seen, n_rows = [], 0
        for number, batch in enumerate(self.loader):
            inputs, targets, indices = unpack_batch(batch)
            if indices is not None:
                indices = _batch_indices(indices, len(inputs))
            elif order is not None:
                indices = np.asarray(order[number], dtype=np.int64)
            else:
                indices = np.arange(n_rows, n_rows + len(inputs))
            seen.append(indices)
            n_rows += len(inputs)
            yield self.gradients(inputs.to(device), targets.to(device)), targets
        indices = np.concatenate(seen) if seen else np.empty(0, dtype=np.int64)
        previous = getattr(self, "indices_", None)
        if previous is not None and not np.array_equal(previous, indices):
            raise ValueError(
                "The loader gave its rows in another order on this pass than on the last; "
                "selection needs the same order on every pass (shuffle=False)."
            )
        self.indices_ = indices

    def gradients(self, inputs, targets):
        """(Projected) per-example gradients of one batch, as the source yields them.

        Parameters
        ----------
        inputs, targets : torch.Tensor
            A batch, on the model's device.

        Returns
        -------
        gradients : torch.Tensor of shape (n_samples, D) or (n_samples, n_components)
        """
        if self.head is not None:
            with preserved_state(self.model):
                outputs, features, head_outputs = forward_with_head(
                    self.model, self.head, inputs
                )
            if head_outputs is outputs and _closed_form_applies(self.loss, outputs, targets):
                return linear_head_gradients(
                    features, outputs, targets, loss=self.loss,
                    bias=len(self.names) == 2, n_components=self.n_components,
                    projection=self.projection, random_state=self.seed_,
                )
        return per_example_gradients(
            self.model, inputs, targets, self.loss, params=self.names,
            n_components=self.n_components, projection=self.projection,
            random_state=self.seed_, micro_batch_size=self.micro_batch_size,
            memory_budget=self.memory_budget,
        )
