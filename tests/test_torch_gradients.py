"""Per-example gradients of the torch adapter against one backward pass per example."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from torch import nn
from torch.nn import functional as F

from sketchsel.linalg import random_projection
from sketchsel.torch import linear_head_gradients, per_example_gradients

DTYPES = [torch.float32, torch.float64]


def _tolerance(dtype):
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-9, "atol": 1e-11}


def _loop_gradients(model, inputs, targets, loss, params):
    """The oracle: one autograd backward per example, gradients flattened and stacked."""
    loss_fn = F.cross_entropy if loss == "cross_entropy" else (
        lambda out, t: F.mse_loss(out, t.reshape(out.shape))
    )
    rows = []
    for i in range(inputs.shape[0]):
        value = loss_fn(model(inputs[i:i + 1]), targets[i:i + 1])
        grads = torch.autograd.grad(value, params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def _targets(loss, n, n_outputs, dtype, generator):
    if loss == "cross_entropy":
        return torch.randint(0, n_outputs, (n,), generator=generator)
    return torch.randn(n, n_outputs, generator=generator, dtype=dtype)


def _model(kind, n_features, n_outputs, bias, dtype):
    if kind == "linear":
        model = nn.Linear(n_features, n_outputs, bias=bias)
    elif kind == "mlp":
        model = nn.Sequential(
            nn.Linear(n_features, 7, bias=bias), nn.Tanh(), nn.Linear(7, n_outputs, bias=bias)
        )
    else:
        model = nn.Sequential(
            nn.Conv2d(2, 3, kernel_size=3, padding=1, bias=bias), nn.ReLU(), nn.Flatten(),
            nn.Linear(3 * 4 * 4, n_outputs, bias=bias),
        )
    return model.to(dtype)


def _inputs(kind, n, n_features, dtype, generator):
    shape = (n, 2, 4, 4) if kind == "conv" else (n, n_features)
    return torch.randn(*shape, generator=generator, dtype=dtype)


@settings(deadline=None, max_examples=25)
@given(
    kind=st.sampled_from(["linear", "mlp", "conv"]),
    n=st.integers(1, 6),
    n_features=st.integers(1, 6),
    n_outputs=st.integers(2, 5),
    bias=st.booleans(),
    loss=st.sampled_from(["cross_entropy", "mse"]),
    dtype=st.sampled_from(DTYPES),
    micro_batch_size=st.sampled_from([None, 1, 2]),
    seed=st.integers(0, 2**16),
)
def test_per_example_gradients_equal_a_loop_of_backward_passes(
    kind, n, n_features, n_outputs, bias, loss, dtype, micro_batch_size, seed
):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = _model(kind, n_features, n_outputs, bias, dtype)
    inputs = _inputs(kind, n, n_features, dtype, generator)
    targets = _targets(loss, n, n_outputs, dtype, generator)
    expected = _loop_gradients(model, inputs, targets, loss, list(model.parameters()))
    found = per_example_gradients(
        model, inputs, targets, loss, micro_batch_size=micro_batch_size
    )
    assert found.dtype == dtype
    torch.testing.assert_close(found, expected, **_tolerance(dtype))


@settings(deadline=None, max_examples=25)
@given(
    n=st.integers(1, 8),
    n_features=st.integers(1, 9),
    n_outputs=st.integers(1, 5),
    bias=st.booleans(),
    loss=st.sampled_from(["cross_entropy", "mse"]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_closed_form_equals_a_loop_of_backward_passes(
    n, n_features, n_outputs, bias, loss, dtype, seed
):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = nn.Linear(n_features, n_outputs, bias=bias).to(dtype)
    features = torch.randn(n, n_features, generator=generator, dtype=dtype)
    targets = _targets(loss, n, n_outputs, dtype, generator)
    expected = _loop_gradients(head, features, targets, loss, list(head.parameters()))
    found = linear_head_gradients(features, head(features).detach(), targets, loss=loss, bias=bias)
    torch.testing.assert_close(found, expected, **_tolerance(dtype))


@pytest.mark.parametrize("kind", ["gaussian", "rademacher", "countsketch"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_projections_equal_the_projection_of_the_full_gradients(kind, dtype):
    """Both paths project on the fly by the same matrix as random_projection of all of G."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 40), nn.ReLU(), nn.Linear(40, 60)).to(dtype)
    x, y = torch.randn(9, 30, dtype=dtype), torch.randint(0, 60, (9,))
    full = per_example_gradients(model, x, y)
    expected = random_projection(full.numpy(), 50, kind=kind, random_state=3)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == torch.float32 else {}
    found = per_example_gradients(
        model, x, y, n_components=50, projection=kind, random_state=3, micro_batch_size=4
    )
    np.testing.assert_allclose(found.numpy(), expected, **tol)
    # The head alone: D = 60 * 40 + 60 > one block of the projection's rows.
    hidden = model[1](model[0](x)).detach()
    head_full = linear_head_gradients(hidden, model(x).detach(), y)
    head_expected = random_projection(head_full.numpy(), 50, kind=kind, random_state=3)
    head_found = linear_head_gradients(
        hidden, model(x).detach(), y, n_components=50, projection=kind, random_state=3
    )
    np.testing.assert_allclose(head_found.numpy(), head_expected, **tol)


@settings(deadline=None, max_examples=10)
@given(seed=st.integers(0, 2**16), n_components=st.sampled_from([64, 256]))
def test_projected_gradients_keep_inner_products_within_the_jl_tolerance(seed, n_components):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 10)).double()
    x, y = torch.randn(4, 20, dtype=torch.float64), torch.randint(0, 10, (4,))
    full = per_example_gradients(model, x, y)
    full = full / torch.linalg.vector_norm(full, dim=1, keepdim=True)
    # Projecting unit rows is linear, so normalising before or after is the same.
    projected = per_example_gradients(
        model, x, y, n_components=n_components, random_state=seed
    ) / torch.linalg.vector_norm(per_example_gradients(model, x, y), dim=1, keepdim=True)
    # Var <z_i, z_j> <= 2 / m for unit vectors: six standard deviations.
    bound = 6 * np.sqrt(2 / n_components)
    error = (projected @ projected.T - full @ full.T).abs().max().item()
    assert error < bound


def test_model_state_gradients_and_rng_are_left_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Linear(8, 3))
    model.train()
    model[2].eval()  # a mixed state must come back mixed
    x, y = torch.randn(6, 5), torch.randint(0, 3, (6,))
    model(x).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    running = model[2].running_mean.clone()
    x_before = x.clone()
    rng = torch.get_rng_state()
    per_example_gradients(model, x, y, n_components=4, random_state=0)
    assert [m.training for m in model.modules()] == [True, True, True, False, True]
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))
    assert torch.equal(model[2].running_mean, running)
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(x, x_before)


def test_dropout_is_off_so_each_gradient_is_the_evaluation_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.9), nn.Linear(8, 3)).train()
    x, y = torch.randn(4, 5), torch.randint(0, 3, (4,))
    found = per_example_gradients(model, x, y)
    model.eval()
    torch.testing.assert_close(found, _loop_gradients(model, x, y, "cross_entropy",
                                                      list(model.parameters())))


def test_params_by_name_and_by_module_choose_the_same_entries():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(4, 5), torch.randint(0, 3, (4,))
    by_module = per_example_gradients(model, x, y, params=model[2])
    by_prefix = per_example_gradients(model, x, y, params="2")
    by_names = per_example_gradients(model, x, y, params=["2.bias", "2.weight"])
    expected = _loop_gradients(model, x, y, "cross_entropy", [model[2].weight, model[2].bias])
    for found in (by_module, by_prefix, by_names):
        torch.testing.assert_close(found, expected)
    model[0].bias.requires_grad_(False)
    frozen = per_example_gradients(model, x, y, params=["0.bias"])
    model[0].bias.requires_grad_(True)
    torch.testing.assert_close(frozen, _loop_gradients(model, x, y, "cross_entropy",
                                                       [model[0].bias]))
    assert not model[0].bias.grad_fn and model[0].bias.requires_grad


def test_an_empty_batch_gives_no_rows():
    model = nn.Linear(4, 3)
    x, y = torch.randn(0, 4), torch.randint(0, 3, (0,))
    assert per_example_gradients(model, x, y).shape == (0, 15)
    assert per_example_gradients(model, x, y, n_components=5, random_state=0).shape == (0, 5)
    assert linear_head_gradients(x, model(x).detach(), y).shape == (0, 15)


def test_a_callable_loss_is_used_on_batches_of_one():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(5, 4), torch.randn(5, 1)

    def huber(outputs, targets):
        return F.huber_loss(outputs, targets, delta=0.3)

    expected = []
    for i in range(5):
        expected.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(
            huber(model(x[i:i + 1]), y[i:i + 1]), list(model.parameters()))]))
    torch.testing.assert_close(per_example_gradients(model, x, y, huber), torch.stack(expected))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, x, y: per_example_gradients(m, x, y, "hinge"), ValueError, "loss"),
        (lambda m, x, y: per_example_gradients(m, x.numpy(), y), TypeError, "inputs"),
        (lambda m, x, y: per_example_gradients(m, x, y[:2]), ValueError, "targets"),
        (lambda m, x, y: per_example_gradients(m, x, y, params="9"), ValueError, "params"),
        (lambda m, x, y: per_example_gradients(m, x, y, params=nn.Linear(2, 2)), TypeError,
         "params"),
        (lambda m, x, y: per_example_gradients(m, x, y, n_components=0), ValueError,
         "n_components"),
        (lambda m, x, y: per_example_gradients(m, x, y, n_components=4, projection="sparse"),
         ValueError, "projection"),
        (lambda m, x, y: linear_head_gradients(x, m(x), y.float(), loss="cross_entropy"),
         ValueError, "class indices"),
        (lambda m, x, y: linear_head_gradients(x, m(x), y, loss="mse"), ValueError, "mse"),
        (lambda m, x, y: linear_head_gradients(x[:2], m(x), y), ValueError, "features"),
        (lambda m, x, y: linear_head_gradients(x, m(x), y + 3), ValueError, r"\[0, 3\)"),
        (lambda m, x, y: linear_head_gradients(x, m(x), y, loss=F.l1_loss), TypeError,
         "per_example_gradients"),
    ],
)
def test_bad_input_names_the_parameter(call, error, match):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    with pytest.raises(error, match=match):
        call(model, x, y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gradients_equal_the_cpu_ones():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 9), nn.ReLU(), nn.Linear(9, 4)).double()
    x, y = torch.randn(7, 6, dtype=torch.float64), torch.randint(0, 4, (7,))
    expected = per_example_gradients(model, x, y, n_components=16, random_state=0)
    found = per_example_gradients(model.cuda(), x.cuda(), y.cuda(), n_components=16,
                                  random_state=0)
    assert found.device.type == "cuda"
    torch.testing.assert_close(found.cpu(), expected)
    hidden = model[1](model[0](x.cuda())).detach()
    closed = linear_head_gradients(hidden, model(x.cuda()).detach(), y.cuda(),
                                   n_components=16, random_state=0)
    head = per_example_gradients(model, x.cuda(), y.cuda(), params=model[2],
                                 n_components=16, random_state=0)
    torch.testing.assert_close(closed, head)
