"""GradientSource feeds selectors; GraftSampler selects with GRAFT during training."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector
from sketchsel.torch import (
    GradientSource,
    GraftSampler,
    output_residuals,
    per_example_gradients,
)


@pytest.fixture
def problem():
    torch.manual_seed(0)
    x, y = torch.randn(240, 6), torch.randint(0, 3, (240,))
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    return model, x, y


@pytest.mark.parametrize(
    "selector",
    [
        AgreementSelector(n_select=30, sketch_size=8, class_balance="equal", random_state=0),
        AgreementSelector(n_select=30, sketch_size=8, class_balance="equal", strategy="diverse"),
        MomentMatchingSelector(n_select=30, sketch_size=16, random_state=0),
        MomentMatchingSelector(n_select=30, sketch_size=16, strategy="moments", random_state=0),
        FastMaxVol(n_select=12, random_state=0),
        FastMaxVol(n_select=12, strategy="maxvol"),
    ],
    ids=["agreement", "agreement_diverse", "moment_matching", "moment_matching_program",
         "fast_maxvol", "fast_maxvol_maxvol"],
)
@pytest.mark.parametrize("head_only", [True, False])
def test_selectors_choose_the_same_rows_from_the_source_as_from_the_array(
    problem, selector, head_only
):
    model, x, y = problem
    params = model[2] if head_only else None
    loader = DataLoader(TensorDataset(x, y), batch_size=50)
    source = GradientSource(model, loader, params=params, n_components=20, random_state=1)
    G = per_example_gradients(model, x, y, params=params, n_components=20, random_state=1)
    from_source = selector.fit(source).select()
    from_array = selector.fit(G.numpy(), y.numpy()).select()
    np.testing.assert_array_equal(from_source, from_array)


def test_the_closed_form_is_used_for_a_linear_head_and_agrees_with_vmap(problem, monkeypatch):
    model, x, y = problem
    source = GradientSource(model, [(x, y)], params=model[2], n_components=16, random_state=2)
    assert source.head is model[2]
    expected = per_example_gradients(model, x, y, params=model[2], n_components=16,
                                     random_state=2)
    calls = []
    monkeypatch.setattr(
        "sketchsel.torch._source.per_example_gradients",
        lambda *args, **kwargs: calls.append(args) or expected,
    )
    found = source.gradients(x, y)
    assert not calls
    torch.testing.assert_close(found, expected, rtol=1e-4, atol=1e-5)
    # A head whose output is transformed before the loss: the closed form would be wrong.
    scaled = nn.Sequential(model, nn.Hardtanh())
    source = GradientSource(scaled, [(x, y)], params=model[2], n_components=16, random_state=2)
    source.gradients(x, y)
    assert len(calls) == 1


def test_indices_come_from_the_sampler_or_from_the_batches(problem):
    model, x, y = problem
    data = TensorDataset(x, y)
    order = [7, 3, 200, 11, 5, 90, 42]
    source = GradientSource(model, DataLoader(data, batch_size=3, sampler=order))
    rows = list(source)
    np.testing.assert_array_equal(source.indices_, order)
    # Every row's gradient is that of the dataset row the index names.
    G = torch.cat([g for g, _ in rows])
    torch.testing.assert_close(G, per_example_gradients(model, x[order], y[order]))
    subset = GradientSource(model, DataLoader(Subset(data, order), batch_size=3))
    list(subset)
    np.testing.assert_array_equal(subset.indices_, np.arange(7))
    explicit = [(x[[4, 9]], y[[4, 9]], torch.tensor([4, 9])), (x[[1]], y[[1]], [1])]
    source = GradientSource(model, explicit)
    list(source)
    np.testing.assert_array_equal(source.indices_, [4, 9, 1])


def test_a_pass_leaves_the_model_as_it_was(problem):
    model, x, y = problem
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    list(GradientSource(model, [(x, y)], n_components=8, random_state=0))
    list(GradientSource(model, [(x, y)], params=model[2], n_components=8, random_state=0))
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_a_loader_that_changes_its_order_is_refused(problem):
    model, x, y = problem
    data = TensorDataset(x, y)
    with pytest.raises(ValueError, match="shuffle=False"):
        list(GradientSource(model, DataLoader(data, batch_size=10, shuffle=True)))

    class Reversing:
        def __init__(self):
            self.passes = 0

        def __iter__(self):
            self.passes += 1
            rows = range(4) if self.passes % 2 else range(3, -1, -1)
            return iter([(x[[i]], y[[i]], [i]) for i in rows])

    source = GradientSource(model, Reversing())
    list(source)
    with pytest.raises(ValueError, match="another order"):
        list(source)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"loader": iter([])}, TypeError, "re-iterable"),
        ({"loss": "hinge"}, ValueError, "loss"),
        ({"n_components": -1}, ValueError, "n_components"),
        ({"params": "nope"}, ValueError, "params"),
        ({"model": "model"}, TypeError, "model"),
    ],
)
def test_bad_source_arguments_name_the_parameter(problem, kwargs, error, match):
    model, x, y = problem
    arguments = {"model": model, "loader": [(x, y)], **kwargs}
    with pytest.raises(error, match=match):
        GradientSource(**arguments)


def test_a_batch_of_another_shape_is_refused(problem):
    model, x, y = problem
    with pytest.raises(ValueError, match="IndexedDataset"):
        list(GradientSource(model, [x]))


# GraftSampler


class MultiplesOfThree(FastMaxVol):
    """Chooses, in each batch, the rows whose first feature (the dataset index) is a multiple of 3."""

    def fit(self, X, y=None, *, gradients=None):
        first = np.asarray(X[:, 0])
        self.sample_indices_ = np.flatnonzero(np.round(first) % 3 == 0)
        self.residual_ = 0.0
        return self


@pytest.fixture
def indexed():
    """A dataset whose first input feature is the row's index, and a model reading it."""
    torch.manual_seed(0)
    n = 230
    x = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], torch.randn(n, 5)], dim=1)
    y = torch.randint(0, 4, (n,))
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 4))
    return model, TensorDataset(x, y)


def test_graft_maps_batch_rows_to_dataset_indices(indexed):
    model, data = indexed
    sampler = GraftSampler(model, data, head=model[2], features="inputs",
                           selector=MultiplesOfThree(), selection_batch_size=37, random_state=0)
    expected = np.arange(0, len(data), 3)
    np.testing.assert_array_equal(sampler.select(), expected)
    loaded = torch.cat([inputs[:, 0] for inputs, _ in DataLoader(data, batch_size=16,
                                                                  sampler=sampler)])
    # The loader reads the chosen rows only, each once, in a shuffled order.
    assert sorted(loaded.long().tolist()) == expected.tolist()
    assert loaded.long().tolist() != expected.tolist()


def test_graft_rows_reproduce_the_batch_gradient(indexed):
    model, data = indexed
    dynamic = FastMaxVol(n_select=0.2, strategy="maxvol", rank="auto")
    sampler = GraftSampler(model, data, head=model[2], selection_batch_size=len(data),
                           fraction=0.2, selector=dynamic, random_state=0)
    subset = sampler.select()
    x, y = data.tensors
    with torch.no_grad():
        G = output_residuals(model(x), y, "cross_entropy").double().numpy()
    target = G.mean(axis=0)
    weights, *_ = np.linalg.lstsq(G[subset].T, target, rcond=None)
    residual = np.linalg.norm(G[subset].T @ weights - target) / np.linalg.norm(target)
    assert residual <= 0.1
    np.testing.assert_allclose(sampler.residuals_, [residual], atol=1e-6)
    assert 1 <= len(subset) < int(0.2 * len(data))


def test_graft_default_keeps_the_budget_of_every_batch(indexed):
    model, data = indexed
    sampler = GraftSampler(model, data, head=model[2], selection_batch_size=50, random_state=0)
    # Batches of 50, 50, 50, 50 and 30 rows: 12 + 12 + 12 + 12 + 7 rows.
    assert len(sampler.select()) == 4 * 12 + 7
    assert sampler.residuals_.shape == (5,) and np.all(sampler.residuals_ >= 0)


def test_graft_schedule_warm_start_and_reselection(indexed):
    model, data = indexed
    sampler = GraftSampler(model, data, head=model[2], select_every=2, warm_start=True,
                           selection_batch_size=50, random_state=0)
    sizes, selections = [], []
    for epoch in range(6):
        sampler.set_epoch(epoch)
        size = len(sampler)  # before iterating: the loader asks for it first
        rows = list(iter(sampler))
        assert len(rows) == size == len(set(rows))
        sizes.append(len(rows))
        selections.append(sampler.selections_)
    assert sizes[:2] == [len(data)] * 2 and sampler.subset_ is not None
    assert all(size < len(data) for size in sizes[2:])
    assert selections == [0, 0, 1, 1, 2, 2]


def test_graft_order_is_seeded_and_the_model_left_alone(indexed):
    model, data = indexed
    model.train()
    rng = torch.get_rng_state()
    orders = []
    for _ in range(2):
        sampler = GraftSampler(model, data, head=model[2], random_state=4)
        orders.append(list(iter(sampler)))
    assert orders[0] == orders[1]
    sampler.set_epoch(1)
    assert list(iter(sampler)) != orders[0]
    assert model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fraction": 0}, ValueError, "fraction"),
        ({"select_every": 0}, ValueError, "select_every"),
        ({"features": "logits"}, ValueError, "features"),
        ({"selector": AgreementSelector()}, TypeError, "selector"),
        ({"random_state": 1.5}, TypeError, "random_state"),
    ],
)
def test_bad_graft_arguments_name_the_parameter(indexed, kwargs, error, match):
    model, data = indexed
    with pytest.raises(error, match=match):
        GraftSampler(model, data, head=model[2], **kwargs)


@pytest.mark.parametrize(
    "sampler",
    [
        lambda: torch.utils.data.SubsetRandomSampler(range(40)),
        lambda: torch.utils.data.WeightedRandomSampler(torch.ones(240), 40),
    ],
    ids=["subset_random", "weighted_random"],
)
def test_every_random_sampler_is_refused(problem, sampler):
    model, x, y = problem
    loader = DataLoader(TensorDataset(x, y), batch_size=8, sampler=sampler())
    with pytest.raises(ValueError, match="another order on every pass"):
        list(GradientSource(model, loader))


def test_an_iterable_dataset_numbers_its_rows(problem):
    model, x, y = problem

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(x[:20], y[:20]))

    source = GradientSource(model, DataLoader(Stream(), batch_size=8))
    G = torch.cat([g for g, _ in source])
    np.testing.assert_array_equal(source.indices_, np.arange(20))
    torch.testing.assert_close(G, per_example_gradients(model, x[:20], y[:20]))


class TwiceHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(3, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.head(x)))


class Doubled(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


@pytest.mark.parametrize("make", [TwiceHead, lambda: nn.Sequential(Doubled(3, 3))],
                         ids=["called_twice", "linear_subclass"])
def test_heads_the_closed_form_does_not_describe_use_torch_func(make):
    torch.manual_seed(0)
    model = make()
    head = model.head if isinstance(model, TwiceHead) else model[0]
    x, y = torch.randn(6, 3), torch.randint(0, 3, (6,))
    source = GradientSource(model, [(x, y)], params=head)
    expected = per_example_gradients(model, x, y, params=head)
    torch.testing.assert_close(source.gradients(x, y), expected)


def test_probability_targets_use_torch_func(problem):
    model, x, y = problem
    soft = torch.softmax(torch.randn(len(x), 3), dim=1)
    source = GradientSource(model, [(x, soft)], params=model[2])
    torch.testing.assert_close(source.gradients(x, soft),
                               per_example_gradients(model, x, soft, params=model[2]))


@pytest.mark.parametrize("params", [["2.weight"], ["2.bias"], ["2.weight", "2.bias"]])
def test_head_parameters_alone_or_together_through_the_source(problem, params):
    model, x, y = problem
    source = GradientSource(model, [(x, y)], params=params)
    torch.testing.assert_close(source.gradients(x, y),
                               per_example_gradients(model, x, y, params=params))


@pytest.mark.parametrize(
    ("indices", "match"),
    [(torch.tensor([0.5, 1.5]), "integer"), (torch.tensor([1]), "2 integer")],
)
def test_bad_batch_indices_are_refused(problem, indices, match):
    model, x, y = problem
    with pytest.raises(ValueError, match=match):
        list(GradientSource(model, [(x[:2], y[:2], indices)]))
