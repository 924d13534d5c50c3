"""Per-example gradients of a torch model, optionally projected to a few dimensions on the fly.

Two ways to the same numbers:

- :func:`linear_head_gradients`, the closed form for a linear last layer under
  cross-entropy or squared error: the gradient of example i with respect to
  the layer's weight W (C x H) and bias b (C) is ``r_i h_i^T`` and ``r_i``,
  with h_i the layer's input and r_i the gradient of the loss with respect to
  the layer's output. No backward pass, and, when projected, no D-dimensional
  gradient is ever formed.
- :func:`per_example_gradients`, any model and loss: ``torch.func.vmap`` of
  ``torch.func.grad`` over chosen parameters, in micro-batches sized to a
  memory budget.

Both flatten the gradient as :meth:`torch.nn.Module.named_parameters` orders
the parameters (for a linear layer: W row by row, then b), and both project
with the seeded matrix of :func:`sketchsel.linalg.projection_block`, block by
block: the same ``random_state`` gives the same projection in both, and the
same as :func:`sketchsel.linalg.random_projection` applied to the full
gradients.
"""

import contextlib
from numbers import Integral

import torch
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from .._array_api import array_namespace
from ..linalg._projection import _BLOCK_BYTES, _CHUNK_ROWS, _KINDS, _project_columns, seed_from

_LOSSES = ("cross_entropy", "mse")

# Bytes the per-example gradients of one micro-batch may take, by default.
_MEMORY_BUDGET = 2**28


def _check_loss(loss):
    if callable(loss) or loss in _LOSSES:
        return loss
    raise ValueError(
        f"loss must be 'cross_entropy', 'mse' or a callable loss(outputs, targets), got "
        f"{loss!r}."
    )


def _check_projection(n_components, projection):
    if n_components is not None and (
        not isinstance(n_components, Integral) or isinstance(n_components, bool)
        or n_components < 1
    ):
        raise ValueError(
            f"n_components must be a positive int (the projected dimension) or None for "
            f"the full gradients, got {n_components!r}."
        )
    if projection not in _KINDS:
        raise ValueError(f"projection must be one of {_KINDS}, got {projection!r}.")


def _check_tensor(value, name, ndim=None):
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__name__}; convert it with "
            f"torch.as_tensor."
        )
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(value.shape)}.")
    return value


def output_residuals(outputs, targets, loss):
    """Gradient of each example's loss with respect to its output row.

    Parameters
    ----------
    outputs : torch.Tensor of shape (n_samples, n_outputs)
        Logits (cross-entropy) or predictions (squared error).
    targets : torch.Tensor
        Class indices of shape (n_samples,) for cross-entropy; values of shape
        (n_samples, n_outputs), or (n_samples,) with one output, for "mse".
    loss : {"cross_entropy", "mse"}
        Each example's loss is ``F.cross_entropy`` or ``F.mse_loss`` (mean
        over the outputs) of that example alone.

    Returns
    -------
    residuals : torch.Tensor of shape (n_samples, n_outputs)
        ``softmax(outputs) - onehot(targets)``, or ``2 (outputs - targets) / n_outputs``.

    Examples
    --------
    >>> import torch
    >>> from sketchsel.torch import output_residuals
    >>> logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]], requires_grad=True)
    >>> r = output_residuals(logits.detach(), torch.tensor([0, 1]), "cross_entropy")
    >>> r
    tensor([[-0.5000,  0.5000],
            [ 0.8808, -0.8808]])
    >>> loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]), reduction="sum")
    >>> torch.allclose(torch.autograd.grad(loss, logits)[0], r)
    True
    """
    n_samples, n_outputs = outputs.shape
    if targets.shape[0] != n_samples:
        raise ValueError(
            f"targets has {targets.shape[0]} rows but outputs has {n_samples}; give one "
            f"target per example."
        )
    if loss == "cross_entropy":
        if targets.ndim != 1 or targets.dtype.is_floating_point:
            raise ValueError(
                "With loss='cross_entropy', targets must be a 1-D tensor of class indices."
            )
        if n_samples and (int(targets.min()) < 0 or int(targets.max()) >= n_outputs):
            raise ValueError(
                f"With loss='cross_entropy', targets must be class indices in [0, "
                f"{n_outputs}), one per output column; got values from {int(targets.min())} "
                f"to {int(targets.max())}."
            )
        residuals = torch.softmax(outputs, dim=1)
        residuals[torch.arange(n_samples, device=outputs.device), targets] -= 1
        return residuals
    targets = targets.reshape(n_samples, -1).to(outputs.dtype)
    if targets.shape[1] != n_outputs:
        raise ValueError(
            f"With loss='mse', targets must have the outputs' shape {tuple(outputs.shape)}, "
            f"got {tuple(targets.shape)}."
        )
    return 2 * (outputs - targets) / n_outputs


def linear_head_gradients(
    features, outputs, targets, *, loss="cross_entropy", bias=True, n_components=None,
    projection="gaussian", random_state=None,
):
    """Per-example gradients of a linear last layer, in closed form.

    For a layer ``outputs = features @ W.T + b`` whose outputs go straight
    into the loss, the gradient of example i's loss is ``vec(r_i h_i^T)``
    followed by ``r_i``, where h_i is the row of ``features`` and r_i that
    of :func:`output_residuals`. With ``n_components``, the gradients are
    projected by the seeded matrix Gamma of
    :func:`sketchsel.linalg.projection_block` one block of columns at a
    time, so memory is O(n_samples (block + n_components)), never
    O(n_samples D).

    Parameters
    ----------
    features : torch.Tensor of shape (n_samples, n_features)
        Inputs h of the layer (the penultimate embeddings of a network).
    outputs : torch.Tensor of shape (n_samples, n_outputs)
        The layer's outputs (logits for cross-entropy).
    targets : torch.Tensor
        Class indices (n_samples,) for "cross_entropy"; values
        (n_samples, n_outputs) for "mse".
    loss : {"cross_entropy", "mse"}, default="cross_entropy"
        Each example's loss alone, as ``F.cross_entropy`` or ``F.mse_loss``
        compute it for a batch of one.
    bias : bool, default=True
        Whether the layer has a bias, whose gradient follows the weight's.
    n_components : int, default=None
        Project to this many dimensions; None returns the full gradients.
    projection : {"gaussian", "rademacher", "countsketch"}, default="gaussian"
        Kind of the projection matrix.
    random_state : int, RandomState instance or None, default=None
        Seed of the projection; pass an int to project several batches by
        one matrix.

    Returns
    -------
    gradients : torch.Tensor of shape (n_samples, D) or (n_samples, n_components)
        ``D = n_outputs * n_features (+ n_outputs)``; on the device of
        ``features``, in the promoted dtype of features and outputs.

    Examples
    --------
    >>> import torch
    >>> from sketchsel.torch import linear_head_gradients
    >>> head = torch.nn.Linear(5, 3)
    >>> h, y = torch.randn(4, 5), torch.tensor([0, 2, 1, 0])
    >>> G = linear_head_gradients(h, head(h).detach(), y)
    >>> G.shape
    torch.Size([4, 18])
    >>> loss = torch.nn.functional.cross_entropy(head(h[:1]), y[:1])
    >>> weight, b = torch.autograd.grad(loss, [head.weight, head.bias])
    >>> torch.allclose(G[0], torch.cat([weight.flatten(), b]), atol=1e-6)
    True
    >>> linear_head_gradients(h, head(h).detach(), y, n_components=8, random_state=0).shape
    torch.Size([4, 8])
    """
    _check_loss(loss)
    if callable(loss):
        raise TypeError(
            "linear_head_gradients has a closed form for loss='cross_entropy' or 'mse' "
            "only; use per_example_gradients for another loss."
        )
    _check_projection(n_components, projection)
    features = _check_tensor(features, "features", 2)
    outputs = _check_tensor(outputs, "outputs", 2)
    targets = _check_tensor(targets, "targets")
    if features.shape[0] != outputs.shape[0]:
        raise ValueError(
            f"features has {features.shape[0]} rows but outputs has {outputs.shape[0]}; "
            f"give the layer's input and output for the same examples."
        )
    dtype = torch.promote_types(features.dtype, outputs.dtype)
    if not dtype.is_floating_point:
        raise TypeError(f"features and outputs must be floating point, got {dtype}.")
    with torch.no_grad():
        h = features.detach().to(dtype)
        r = output_residuals(outputs.detach().to(dtype), targets.to(outputs.device), loss)
        n_samples, width = h.shape
        n_weights = r.shape[1] * width
        if n_components is None:
            weight = (r[:, :, None] * h[:, None, :]).reshape(n_samples, n_weights)
            return torch.cat([weight, r], dim=1) if bias else weight
        seed = seed_from(random_state)

        def weight_columns(start, stop):
            # Column k of vec(r h^T) is r[:, k // width] * h[:, k % width].
            k = torch.arange(start, stop, device=h.device)
            return r[:, k // width] * h[:, k % width]

        # Each block of columns makes a few n_samples x block temporaries: keep
        # them near _BLOCK_BYTES, whatever the number of weights.
        block = max(_CHUNK_ROWS, _BLOCK_BYTES // (3 * max(n_samples, 1) * h.element_size()))
        project = _projector(h, n_samples, n_components, projection, seed, block)
        projected = project(weight_columns, n_weights, 0)
        if bias:
            projected = projected + project(lambda a, b: r[:, a:b], r.shape[1], n_weights)
        return projected


def _projector(like, n_samples, n_components, kind, seed, block_size=None):
    """``project(columns, n_columns, offset)``: columns times Gamma's rows from offset."""
    xp = array_namespace(like)

    def project(columns, n_columns, offset):
        return _project_columns(
            xp, columns, (n_samples, n_columns), n_components, kind, seed,
            dtype=like.dtype, where=like.device, offset=offset, block_size=block_size,
        )

    return project


def resolve_parameters(model, params):
    """Names of the chosen parameters, in the order of ``model.named_parameters()``.

    ``params`` is None (every parameter that requires grad), a name or
    sub-module of ``model``, or a list of them; a module stands for all its
    parameters.
    """
    named = dict(model.named_parameters())
    if params is None:
        chosen = {name for name, p in named.items() if p.requires_grad}
    else:
        items = params if isinstance(params, (list, tuple)) else [params]
        modules = {id(module): prefix for prefix, module in model.named_modules()}
        chosen = set()
        for item in items:
            if isinstance(item, str):
                if item in named:
                    chosen.add(item)
                    continue
                found = {n for n in named if n.startswith(item + ".")}
                if not found:
                    raise ValueError(
                        f"params names {item!r}, which is neither a parameter nor a module "
                        f"of the model; see model.named_parameters() for the names."
                    )
                chosen |= found
            elif isinstance(item, torch.nn.Module) and id(item) in modules:
                prefix = modules[id(item)]
                chosen |= {
                    f"{prefix}.{n}" if prefix else n for n, _ in item.named_parameters()
                }
            else:
                raise TypeError(
                    f"params must hold parameter names or sub-modules of the model, got "
                    f"{item!r}."
                )
    ordered = [name for name in named if name in chosen]
    if not ordered:
        raise ValueError("params selects no parameter; choose at least one.")
    return ordered


@contextlib.contextmanager
def preserved_state(model):
    """Evaluation mode inside; every module's mode and torch's RNG states restored after."""
    modes = [(module, module.training) for module in model.modules()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


def _loss_function(loss):
    if loss == "cross_entropy":
        return F.cross_entropy
    if loss == "mse":
        return lambda outputs, targets: F.mse_loss(outputs, targets.reshape(outputs.shape))
    return loss


def per_example_gradients(
    model, inputs, targets, loss="cross_entropy", *, params=None, n_components=None,
    projection="gaussian", random_state=None, micro_batch_size=None,
    memory_budget=_MEMORY_BUDGET,
):
    """Gradient of every example's loss with respect to chosen parameters.

    Computes ``vmap(grad(loss of one example))`` with :mod:`torch.func` over
    micro-batches, so any model and loss work; with ``n_components`` each
    micro-batch's gradients are projected at once, parameter by parameter,
    and only the projections are kept.

    The model runs in evaluation mode (dropout off, batch norm on its running
    statistics, as each example's gradient must not depend on the others);
    each module's mode and torch's random number generators are restored
    afterwards, and no ``.grad`` is touched.

    Parameters
    ----------
    model : torch.nn.Module
        The model; its parameters and buffers are read, never changed.
    inputs : torch.Tensor of shape (n_samples, ...)
        A batch of inputs, on the model's device.
    targets : torch.Tensor of shape (n_samples, ...)
        Their targets.
    loss : {"cross_entropy", "mse"} or callable, default="cross_entropy"
        ``F.cross_entropy``, ``F.mse_loss``, or ``loss(outputs, targets)``
        returning the mean loss of a batch; it is called on batches of one.
    params : str, torch.nn.Module or list of them, default=None
        Parameters to differentiate, by name or by sub-module; None takes
        every parameter that requires grad.
    n_components : int, default=None
        Project to this many dimensions; None returns the full gradients.
    projection : {"gaussian", "rademacher", "countsketch"}, default="gaussian"
        Kind of the projection matrix (see :func:`sketchsel.linalg.projection_block`).
    random_state : int, RandomState instance or None, default=None
        Seed of the projection; pass an int to project several batches by
        one matrix.
    micro_batch_size : int, default=None
        Examples per vmap call; None sizes it so that a micro-batch's
        gradients fit in ``memory_budget``.
    memory_budget : int, default=2**28
        Bytes for one micro-batch's gradients when ``micro_batch_size`` is
        None. The forward and backward intermediates come on top.

    Returns
    -------
    gradients : torch.Tensor of shape (n_samples, D) or (n_samples, n_components)
        D is the number of chosen parameter entries, flattened in the order
        of ``model.named_parameters()``; dtype and device of the parameters.

    Examples
    --------
    >>> import torch
    >>> from sketchsel.torch import per_example_gradients
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x, y = torch.randn(5, 4), torch.tensor([0, 1, 2, 1, 0])
    >>> G = per_example_gradients(model, x, y)
    >>> G.shape
    torch.Size([5, 67])
    >>> grads = torch.autograd.grad(
    ...     torch.nn.functional.cross_entropy(model(x[:1]), y[:1]), list(model.parameters()))
    >>> torch.allclose(G[0], torch.cat([g.flatten() for g in grads]), atol=1e-6)
    True
    >>> per_example_gradients(model, x, y, params=model[2], n_components=4, random_state=0).shape
    torch.Size([5, 4])
    """
    loss_fn = _loss_function(_check_loss(loss))
    _check_projection(n_components, projection)
    inputs = _check_tensor(inputs, "inputs")
    targets = _check_tensor(targets, "targets")
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"inputs has {inputs.shape[0]} examples but targets has {targets.shape[0]}; "
            f"give one target per input."
        )
    names = resolve_parameters(model, params)
    named = dict(model.named_parameters())
    chosen = {name: named[name].detach() for name in names}
    frozen = {name: p.detach() for name, p in named.items() if name not in chosen}
    buffers = dict(model.named_buffers())
    first = next(iter(chosen.values()))
    if inputs.device != first.device:
        raise ValueError(
            f"inputs are on {inputs.device} but the parameters on {first.device}; move "
            f"them to the model's device first."
        )
    n_entries = sum(p.numel() for p in chosen.values())
    if micro_batch_size is None:
        micro_batch_size = max(1, memory_budget // (n_entries * first.element_size()))
    seed = None if n_components is None else seed_from(random_state)

    def one_loss(weights, x, t):
        outputs = functional_call(model, (weights, frozen, buffers), (x.unsqueeze(0),))
        return loss_fn(outputs, t.unsqueeze(0))

    per_example = vmap(grad(one_loss), in_dims=(None, 0, 0))
    if inputs.shape[0] == 0:
        width = n_entries if n_components is None else n_components
        return torch.empty((0, width), dtype=first.dtype, device=first.device)
    parts = []
    with preserved_state(model):
        for start in range(0, inputs.shape[0], micro_batch_size):
            stop = start + micro_batch_size
            grads = per_example(chosen, inputs[start:stop], targets[start:stop])
            flat = [grads[name].reshape(grads[name].shape[0], -1) for name in names]
            parts.append(
                torch.cat(flat, dim=1) if n_components is None
                else _project_parameters(flat, n_components, projection, seed)
            )
    return torch.cat(parts)


def _project_parameters(flat, n_components, kind, seed):
    """The projection of the concatenated gradients, one parameter at a time."""
    n_samples = flat[0].shape[0]
    project = _projector(flat[0], n_samples, n_components, kind, seed)
    total, offset = None, 0
    for block in flat:
        if block.shape[1]:
            part = project(lambda a, b, block=block: block[:, a:b], block.shape[1], offset)
            total = part if total is None else total + part
        offset += block.shape[1]
    return total
