"""Evolved Sampling (ES / ESWP): weighted draws, the score recurrence, pruning, state, torch face."""

import copy
import itertools
import math
import pickle

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from sketchsel.sampling import EvolvedSampler, weighted_sample_without_replacement

# A chi-square test with fixed seeds fails by chance with probability below this.
P_MIN = 1e-4


def chi_square_p(observed, probabilities):
    probabilities = np.asarray(probabilities, dtype=float)
    expected = observed.sum() * probabilities / probabilities.sum()
    return scipy.stats.chisquare(observed, expected).pvalue


def draw_counts(draw, n_outcomes, n_draws):
    """Counts of the outcomes of n_draws calls of draw()."""
    counts = np.zeros(n_outcomes, dtype=np.int64)
    for _ in range(n_draws):
        counts[draw()] += 1
    return counts


# ------------------------------------------------------------------ weighted sampling


@pytest.mark.parametrize("make_rng", [np.random.default_rng, np.random.RandomState])
def test_single_draws_follow_the_weights(make_rng):
    weights = np.array([1.0, 2.0, 3.0, 4.0, 0.5, 9.5])
    rng = make_rng(0)
    counts = draw_counts(
        lambda: weighted_sample_without_replacement(rng, weights, 1)[0], weights.size, 20_000
    )
    assert chi_square_p(counts, weights) > P_MIN
    # The test has power: the same counts are far from uniform.
    assert chi_square_p(counts, np.ones(weights.size)) < P_MIN


def test_ordered_pairs_follow_successive_sampling():
    weights = np.array([1.0, 2.0, 3.0, 4.0])
    total = weights.sum()
    pairs = list(itertools.permutations(range(4), 2))
    exact = [weights[a] / total * weights[b] / (total - weights[a]) for a, b in pairs]
    assert sum(exact) == pytest.approx(1.0)
    code = {pair: k for k, pair in enumerate(pairs)}
    rng = np.random.default_rng(1)
    counts = draw_counts(
        lambda: code[tuple(weighted_sample_without_replacement(rng, weights, 2))],
        len(pairs), 30_000,
    )
    assert chi_square_p(counts, exact) > P_MIN
    # The test has power: drawing pairs with p proportional to w_a * w_b (independent
    # draws, repeats rejected) is another law, and the counts tell them apart.
    unordered = [weights[a] * weights[b] for a, b in pairs]
    assert chi_square_p(counts, unordered) < P_MIN


@settings(max_examples=100)
@given(
    st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0]), min_size=1, max_size=12),
    st.data(),
)
def test_zero_weights_are_drawn_only_when_needed(weights, data):
    weights = np.array(weights)
    n = data.draw(st.integers(0, weights.size))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    drawn = weighted_sample_without_replacement(rng, weights, n)
    assert drawn.dtype == np.int64 and drawn.shape == (n,)
    assert np.unique(drawn).size == n
    n_positive = np.count_nonzero(weights > 0)
    # The positive rows come first, all of them when n allows.
    assert np.all(weights[drawn[: min(n, n_positive)]] > 0)
    assert np.all(weights[drawn[n_positive:]] == 0)
    if n >= n_positive:
        assert set(np.flatnonzero(weights > 0)) <= set(drawn.tolist())


def test_zero_weights_are_uniform_when_needed():
    rng = np.random.default_rng(2)
    # One positive row; the second draw is uniform over the four zero rows.
    weights = np.array([0.0, 1.0, 0.0, 0.0, 0.0])
    counts = draw_counts(
        lambda: weighted_sample_without_replacement(rng, weights, 2)[1], 5, 8_000
    )
    assert counts[1] == 0
    assert chi_square_p(counts[[0, 2, 3, 4]], np.ones(4)) > P_MIN
    # All weights zero: a uniform sample.
    counts = draw_counts(
        lambda: weighted_sample_without_replacement(rng, np.zeros(6), 1)[0], 6, 12_000
    )
    assert chi_square_p(counts, np.ones(6)) > P_MIN


@pytest.mark.parametrize("make_rng", [np.random.default_rng, np.random.RandomState])
def test_weighted_sampling_is_a_function_of_the_seed(make_rng):
    weights = np.random.default_rng(0).uniform(0, 1, 50) * (np.arange(50) % 3 > 0)
    first = weighted_sample_without_replacement(make_rng(7), weights, 40)
    assert_array_equal(first, weighted_sample_without_replacement(make_rng(7), weights, 40))
    assert not np.array_equal(first, weighted_sample_without_replacement(make_rng(8), weights, 40))


def test_weighted_sampling_refuses_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(TypeError, match="rng"):
        weighted_sample_without_replacement(0, [1.0], 1)
    with pytest.raises(ValueError, match="weights"):
        weighted_sample_without_replacement(rng, [1.0, -1.0], 1)
    with pytest.raises(ValueError, match="weights"):
        weighted_sample_without_replacement(rng, [1.0, np.nan], 1)
    with pytest.raises(ValueError, match="n=3"):
        weighted_sample_without_replacement(rng, [1.0, 2.0], 3)


# ------------------------------------------------------------------ the recurrence


unit = st.floats(0, 1, allow_nan=False)
steps = st.lists(
    st.tuples(
        st.lists(st.integers(0, 5), min_size=1, max_size=6, unique=True),
        st.lists(st.floats(0, 100, allow_nan=False, allow_subnormal=False), min_size=6,
                 max_size=6),
    ),
    min_size=1, max_size=6,
)


@settings(max_examples=100)
@given(unit, unit, steps)
def test_update_follows_the_recurrence(beta1, beta2, updates):
    n = 6
    sampler = EvolvedSampler(n, batch_size=2, beta1=beta1, beta2=beta2, random_state=0)
    s = [1.0 / n] * n  # an independent loop, element by element
    w = [1.0 / n] * n
    for indices, all_losses in updates:
        losses = all_losses[: len(indices)]
        for i, loss in zip(indices, losses):
            w[i] = beta1 * s[i] + (1 - beta1) * loss
            s[i] = beta2 * s[i] + (1 - beta2) * loss
        given_indices, given_losses = np.array(indices), np.array(losses)
        returned = sampler.update(given_indices, given_losses)
        assert_array_equal(given_indices, indices)  # inputs untouched
        assert_array_equal(given_losses, losses)
        assert_allclose(returned, [w[i] for i in indices], rtol=1e-12, atol=1e-300)
        assert_allclose(sampler.scores, s, rtol=1e-12, atol=1e-300)
        assert_allclose(sampler.weights, w, rtol=1e-12, atol=1e-300)


def test_update_takes_lists_and_returns_copies():
    sampler = EvolvedSampler(4, batch_size=1, beta1=0.5, beta2=0.5)
    assert_allclose(sampler.update([2, 0], [1.0, 3.0]), [0.5 * 0.25 + 0.5, 0.5 * 0.25 + 1.5])
    scores = sampler.scores
    scores[:] = 7.0
    assert_allclose(sampler.scores, [1.625, 0.25, 0.625, 0.25])
    assert sampler.update([], []).shape == (0,)


def test_sample_frequencies_follow_the_updated_weights():
    sampler = EvolvedSampler(6, batch_size=1, beta1=0.3, beta2=0.9, random_state=0)
    sampler.update(np.arange(6), [0.0, 1.0, 2.0, 0.5, 4.0, 0.1])
    sampler.update([1, 4], [3.0, 0.2])
    w = sampler.weights
    meta = np.array([4, 0, 1, 5, 3, 2])  # not in dataset order
    counts = draw_counts(lambda: sampler.sample(meta)[0], 6, 20_000)
    assert chi_square_p(counts, w) > P_MIN
    assert chi_square_p(counts, sampler.scores) < P_MIN  # the weights, not the scores


def test_sample_draws_within_the_meta_batch():
    sampler = EvolvedSampler(50, batch_size=5, random_state=0)
    sampler.update(np.arange(50), np.arange(50.0))
    meta = np.array([3, 17, 9, 44, 20, 31, 0])
    chosen = sampler.sample(meta)
    assert chosen.dtype == np.int64 and chosen.shape == (5,)
    assert np.unique(chosen).size == 5 and set(chosen) <= set(meta)
    assert_array_equal(np.sort(sampler.sample(meta[:3])), np.sort(meta[:3]))  # short meta-batch
    assert sampler.sample(meta, n=2).shape == (2,)


def test_burn_in_samples_uniformly():
    sampler = EvolvedSampler(4, batch_size=1, burn_in=1, beta1=0.0, random_state=0)
    sampler.update(np.arange(4), [1.0, 2.0, 10.0, 30.0])
    meta = np.arange(4)
    assert sampler.in_burn_in
    counts = draw_counts(lambda: sampler.sample(meta)[0], 4, 8_000)
    assert chi_square_p(counts, np.ones(4)) > P_MIN
    sampler.epoch_indices(1)
    assert not sampler.in_burn_in
    counts = draw_counts(lambda: sampler.sample(meta)[0], 4, 8_000)
    assert chi_square_p(counts, [1.0, 2.0, 10.0, 30.0]) > P_MIN


# ------------------------------------------------------------------ epochs and pruning


def scored_sampler(n, n_pruned, prune, losses, seed):
    """A sampler pruning n_pruned of n at epoch 0, with its scores set to losses."""
    sampler = EvolvedSampler(
        n, batch_size=1, beta2=0.0, prune_ratio=n_pruned / n, prune=prune, n_epochs=10,
        random_state=seed,
    )
    sampler.update(np.arange(n), losses)  # beta2 = 0: the scores are the losses
    assert_array_equal(sampler.scores, losses)
    return sampler


@settings(max_examples=150)
@given(st.integers(1, 300), st.data())
def test_pruning_leaves_out_the_exact_count_of_lowest_scores(n, data):
    n_pruned = data.draw(st.integers(0, n - 1))
    seed = data.draw(st.integers(0, 2**32 - 1))
    losses = np.random.default_rng(seed).integers(0, 5, n).astype(float)  # many ties
    sampler = scored_sampler(n, n_pruned, "lowest", losses, seed)
    assert sampler.n_pruned == n_pruned  # r = n_pruned / n, even where r * n < n_pruned
    order = sampler.epoch_indices(0)
    assert order.dtype == np.int64 and order.size == n - n_pruned == sampler.epoch_size(0)
    assert np.unique(order).size == order.size
    pruned = np.setdiff1d(np.arange(n), order)
    if n_pruned:
        assert losses[pruned].max() <= losses[order].min()


@settings(max_examples=150)
@given(st.integers(1, 300), st.data())
def test_random_below_mean_pruning_leaves_out_the_exact_count(n, data):
    n_pruned = data.draw(st.integers(0, n - 1))
    seed = data.draw(st.integers(0, 2**32 - 1))
    losses = np.random.default_rng(seed).exponential(size=n).round(1)
    sampler = scored_sampler(n, n_pruned, "random_below_mean", losses, seed)
    order = sampler.epoch_indices(0)
    assert order.size == n - n_pruned and np.unique(order).size == order.size
    pruned = np.setdiff1d(np.arange(n), order)
    below = losses < losses.mean()
    if below.sum() >= n_pruned:
        assert np.all(below[pruned])
    else:
        assert np.all(~below[order])  # every below-mean sample is dropped,
        rest = ~below[pruned]  # and the others dropped are the lowest of the rest
        if rest.any():
            assert losses[pruned][rest].max() <= losses[order].min()


def test_random_below_mean_pruning_is_uniform_below_the_mean():
    # Scores 0 (x4) and 1 (x4): the mean is 0.5; 2 of the 4 below it are dropped.
    losses = np.array([0.0, 1.0] * 4)
    counts = np.zeros(8, dtype=np.int64)
    for seed in range(1500):
        sampler = scored_sampler(8, 2, "random_below_mean", losses, seed)
        counts[np.setdiff1d(np.arange(8), sampler.epoch_indices(0))] += 1
    assert_array_equal(counts[1::2], 0)
    assert chi_square_p(counts[0::2], np.ones(4)) > P_MIN


@pytest.mark.parametrize(
    "n, ratio, n_pruned", [(100, 0.29, 29), (100, 0.57, 57), (10, 0.3, 3), (7, 0.5, 3)]
)
def test_pruned_count_is_floor_of_ratio_times_n(n, ratio, n_pruned):
    # 0.29 * 100 = 28.999999999999996 in floating point; the count is still 29.
    sampler = EvolvedSampler(n, batch_size=1, prune_ratio=ratio, n_epochs=2, random_state=0)
    assert sampler.n_pruned == n_pruned
    assert sampler.epoch_indices(0).size == n - n_pruned


@pytest.mark.parametrize(
    "burn_in, n_epochs, anneal_ratio, pruning_epochs",
    [
        (2, 10, 0.25, [2, 3, 4, 5, 6]),  # anneals the last ceil(2.5) = 3
        (0, 8, 0.125, [0, 1, 2, 3, 4, 5, 6]),  # InfoBatch's default: the last one
        (1, 25, 0.28, list(range(1, 18))),  # 0.28 * 25 is 7.000000000000001: still 7
        (0, 5, 0.0, [0, 1, 2, 3, 4]),
        (0, 5, 1.0, []),
        (4, 5, 0.5, []),  # the burn-in runs into the annealing
    ],
)
def test_pruning_schedule_boundaries(burn_in, n_epochs, anneal_ratio, pruning_epochs):
    sampler = EvolvedSampler(
        40, batch_size=4, burn_in=burn_in, prune_ratio=0.25, anneal_ratio=anneal_ratio,
        n_epochs=n_epochs, random_state=0,
    )
    for epoch in range(n_epochs + 3):
        prunes = epoch in pruning_epochs
        assert sampler.prunes(epoch) is prunes
        assert sampler.epoch_size(epoch) == (30 if prunes else 40)
        order = sampler.epoch_indices(epoch)
        assert order.size == sampler.epoch_size(epoch) and np.unique(order).size == order.size
        assert sampler.epoch == epoch and sampler.in_burn_in is (epoch < burn_in)


def test_without_pruning_an_epoch_is_a_shuffle_in_meta_batches():
    sampler = EvolvedSampler(103, batch_size=4, meta_batch_size=10, random_state=0)
    order = sampler.epoch_indices(0)
    assert_array_equal(np.sort(order), np.arange(103))
    assert not np.array_equal(order, np.arange(103))
    assert_array_equal(sampler.epoch_indices(0), order)  # the current epoch, re-read
    batches = list(sampler.meta_batches(0))
    assert [b.size for b in batches] == [10] * 10 + [3]
    assert_array_equal(np.concatenate(batches), order)
    assert not np.array_equal(sampler.epoch_indices(1), order)


def test_pruning_uses_the_scores_and_the_pruned_may_return():
    sampler = EvolvedSampler(
        10, batch_size=2, beta2=0.0, prune_ratio=0.3, n_epochs=4, random_state=0
    )
    sampler.update(np.arange(10), np.arange(10.0)[::-1])  # 7, 8, 9 have the lowest
    assert_array_equal(np.sort(sampler.epoch_indices(0)), np.arange(7))
    sampler.update([7, 8, 9, 0, 1, 2], [50.0, 50.0, 50.0, 0.0, 0.0, 0.0])
    assert_array_equal(np.sort(sampler.epoch_indices(1)), np.arange(3, 10))
    assert_array_equal(np.sort(sampler.epoch_indices(3)), np.arange(10))  # annealing


# ------------------------------------------------------------------ state


def losses_of(indices, step):
    """Deterministic stand-in for the losses of a forward pass."""
    return ((indices * 7 + step * 3) % 11) / 4.0


def run(sampler, epochs, skip=0, stop=None):
    """Draws of a training loop: (epoch, meta-batch, chosen) per step.

    Starts with the meta-batch ``skip`` of the first epoch (to resume) and,
    when ``stop`` is given, returns after that many steps.
    """
    draws = []
    for epoch in epochs:
        for k, meta in enumerate(sampler.meta_batches(epoch)):
            if epoch == epochs[0] and k < skip:
                continue
            sampler.update(meta, losses_of(meta, len(draws)))
            draws.append((epoch, meta.tolist(), sampler.sample(meta).tolist()))
            if stop is not None and len(draws) == stop:
                return draws
    return draws


def make(seed=0, n=60):
    return EvolvedSampler(
        n, batch_size=3, meta_batch_size=8, burn_in=1, prune_ratio=0.4,
        prune="random_below_mean", n_epochs=6, random_state=seed,
    )


def test_same_random_state_same_draws():
    assert run(make(3), range(6)) == run(make(3), range(6))
    assert run(make(3), range(6)) != run(make(4), range(6))


@pytest.mark.parametrize("how", ["state_dict", "pickle"])
def test_resuming_mid_epoch_gives_the_uninterrupted_draws(how):
    whole = run(make(), range(6))
    sampler = make()
    first = run(sampler, range(2), stop=11)  # 8 meta-batches in epoch 0, 5 in epoch 1
    assert first == whole[:11] and first[-1][0] == 1
    if how == "pickle":
        resumed = pickle.loads(pickle.dumps(sampler))
    else:
        state = sampler.state_dict()
        resumed = make(seed=99).load_state_dict(state)
        sampler.update(np.arange(60), np.zeros(60))  # the state is a copy
        sampler.epoch_indices(5)
        assert not np.array_equal(state["scores"], sampler.scores)
    rest = run(resumed, range(1, 6), skip=3)
    assert first + rest == whole


def test_state_dict_is_plain_data():
    sampler = make()
    run(sampler, range(2))
    state = sampler.state_dict()
    assert set(state) == {"n_samples", "scores", "weights", "epoch", "order", "rng_state"}
    assert isinstance(state["epoch"], int) and isinstance(state["rng_state"], dict)
    assert isinstance(state["scores"], np.ndarray) and isinstance(state["order"], np.ndarray)
    fresh = make(seed=5).load_state_dict(copy.deepcopy(state))
    assert_array_equal(fresh.scores, sampler.scores)
    assert_array_equal(fresh.weights, sampler.weights)
    assert fresh.epoch == 1


def test_loading_a_state_of_another_dataset_size_fails():
    state = make(n=60).state_dict()
    with pytest.raises(ValueError, match="n_samples=60"):
        make(n=61).load_state_dict(state)
    del state["rng_state"]
    with pytest.raises(ValueError, match="rng_state"):
        make(n=60).load_state_dict(state)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": 10.5}, TypeError, "n_samples"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 11}, ValueError, "batch_size"),
        ({"batch_size": True}, TypeError, "batch_size"),
        ({"meta_batch_size": 1}, ValueError, "meta_batch_size"),
        ({"beta1": 1.5}, ValueError, "beta1"),
        ({"beta2": -0.1}, ValueError, "beta2"),
        ({"burn_in": -1}, ValueError, "burn_in"),
        ({"prune_ratio": 1.0, "n_epochs": 3}, ValueError, "prune_ratio"),
        ({"prune_ratio": 0.5}, ValueError, "n_epochs"),
        ({"prune": "highest"}, ValueError, "prune"),
        ({"anneal_ratio": 2.0}, ValueError, "anneal_ratio"),
        ({"n_epochs": 0}, ValueError, "n_epochs"),
        ({"random_state": -1}, ValueError, "random_state"),
        ({"random_state": np.random.RandomState(0)}, TypeError, "random_state"),
    ],
)
def test_bad_parameters_are_named(kwargs, error, name):
    params = {"n_samples": 10, "batch_size": 2, **kwargs}
    n_samples = params.pop("n_samples")
    with pytest.raises(error, match=name):
        EvolvedSampler(n_samples, **params)


@pytest.mark.parametrize(
    "indices, losses, error, match",
    [
        ([0, 10], [1.0, 1.0], ValueError, r"indices holds 10.*\[0, 10\)"),
        ([-1], [1.0], ValueError, "indices holds -1"),
        ([1, 1], [1.0, 1.0], ValueError, "indices has duplicates"),
        ([0.0, 1.0], [1.0, 1.0], TypeError, "indices must hold integer"),
        ([True, False], [1.0, 1.0], TypeError, "indices must hold integer"),
        ([[0, 1]], [[1.0, 1.0]], ValueError, "indices must be 1-D"),
        ([0, 1], [1.0], ValueError, "losses has shape"),
        ([0, 1], [1.0, -1.0], ValueError, "losses must be finite and non-negative"),
        ([0, 1], [1.0, np.nan], ValueError, "losses must be finite"),
        ([0, 1], ["a", "b"], TypeError, "losses must be an array of numbers"),
    ],
)
def test_bad_updates_are_named(indices, losses, error, match):
    sampler = EvolvedSampler(10, batch_size=2, random_state=0)
    before = sampler.state_dict()
    with pytest.raises(error, match=match):
        sampler.update(indices, losses)
    assert_array_equal(sampler.scores, before["scores"])  # nothing half-done


def test_bad_sample_and_epoch_arguments_are_named():
    sampler = EvolvedSampler(10, batch_size=2, random_state=0)
    with pytest.raises(ValueError, match="meta_indices has duplicates"):
        sampler.sample([1, 1, 2])
    with pytest.raises(ValueError, match="n must be"):
        sampler.sample([1, 2, 3], n=0)
    with pytest.raises(ValueError, match="epoch must be"):
        sampler.epoch_indices(-1)
    with pytest.raises(TypeError, match="epoch must be an int"):
        sampler.meta_batches(1.0)
    with pytest.raises(TypeError, match="state must be a dict"):
        sampler.load_state_dict([1, 2])


def test_repr_names_the_parameters():
    text = repr(EvolvedSampler(10, batch_size=2, prune="random_below_mean"))
    assert text.startswith("EvolvedSampler(10, batch_size=2, meta_batch_size=4")
    assert "prune='random_below_mean'" in text


# ------------------------------------------------------------------ torch face


@pytest.fixture
def torch_face():
    torch = pytest.importorskip("torch")
    from sketchsel.torch import _evolved

    return torch, _evolved


def test_indexed_dataset_appends_the_index(torch_face):
    torch, face = torch_face
    pairs = face.IndexedDataset(torch.utils.data.TensorDataset(torch.arange(4.0), torch.arange(4)))
    x, y, index = pairs[2]
    assert float(x) == 2.0 and int(y) == 2 and index == 2 and len(pairs) == 4
    plain = face.IndexedDataset([10, 11, 12])
    assert plain[1] == (11, 1)
    with pytest.raises(TypeError, match="dataset"):
        face.IndexedDataset(object())


def test_data_loader_yields_the_meta_batches(torch_face):
    torch, face = torch_face
    X = torch.arange(50.0).reshape(25, 2)
    y = torch.arange(25) * 10
    core = EvolvedSampler(
        25, batch_size=2, meta_batch_size=6, prune_ratio=0.2, n_epochs=4, random_state=0
    )
    batches = face.EvolvedBatchSampler(core)
    loader = torch.utils.data.DataLoader(
        face.IndexedDataset(torch.utils.data.TensorDataset(X, y)), batch_sampler=batches
    )
    for epoch, expected_len in [(0, 4), (3, 5)]:  # 20 kept, then all 25 when annealing
        batches.set_epoch(epoch)
        assert len(batches) == len(loader) == expected_len
        seen = []
        for xb, yb, index in loader:
            assert index.dtype == torch.int64
            assert torch.equal(xb, X[index]) and torch.equal(yb, y[index])
            seen.append(index.numpy())
        expected = list(core.meta_batches(epoch))  # the epoch's order, re-read
        assert [s.tolist() for s in seen] == [e.tolist() for e in expected]
        assert sum(s.size for s in seen) == core.epoch_size(epoch)
    with pytest.raises(TypeError, match="sampler"):
        face.EvolvedBatchSampler(range(3))
    with pytest.raises(ValueError, match="epoch"):
        batches.set_epoch(-1)


class Recorder:
    """Wraps a model; logs (rows, grad enabled) of every forward."""

    def __init__(self, torch, model):
        self.torch, self.model, self.log = torch, model, []

    def __call__(self, inputs):
        self.log.append((inputs.shape[0], self.torch.is_grad_enabled()))
        return self.model(inputs)


def problem(torch, n=40):
    generator = torch.Generator().manual_seed(0)
    X = torch.randn(n, 5, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    model = torch.nn.Linear(5, 3)
    with torch.no_grad():
        model.weight.copy_(torch.randn(3, 5, generator=generator))
        model.bias.copy_(torch.randn(3, generator=generator))
    return X, y, model


@pytest.mark.parametrize("burn_in", [0, 1])
def test_evolved_step_backpropagates_only_the_chosen_rows(torch_face, burn_in):
    torch, face = torch_face
    X, y, model = problem(torch)
    before = copy.deepcopy(model)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    core = EvolvedSampler(40, batch_size=4, meta_batch_size=12, burn_in=burn_in, random_state=0)
    meta = torch.as_tensor(next(core.meta_batches(0)))  # dataset indices, not positions
    recorder = Recorder(torch, model)
    step = face.evolved_step(recorder, loss_fn, optimizer, X[meta], y[meta], meta, core)

    assert step.indices.dtype == np.int64 and step.indices.shape == (4,)
    assert set(step.indices.tolist()) <= set(meta.tolist())
    # The meta-batch is scored without gradients; only the chosen rows are trained on.
    assert recorder.log == ([(4, True)] if burn_in else [(12, False), (4, True)])

    # The update is a plain SGD step on the mean loss of the chosen rows.
    chosen = torch.as_tensor(step.indices)
    loss = loss_fn(before(X[chosen]), y[chosen]).mean()
    assert step.loss == pytest.approx(float(loss.detach()), rel=1e-6)
    grads = torch.autograd.grad(loss, list(before.parameters()))
    for p, p0, g in zip(model.parameters(), before.parameters(), grads):
        torch.testing.assert_close(p.detach(), p0.detach() - 0.5 * g)

    # The scores take the losses at the old parameters: of the meta-batch, or of the chosen rows.
    with torch.no_grad():
        old = loss_fn(before(X), y).double().numpy()
    updated = step.indices if burn_in else meta.numpy()
    expected = np.full(40, 1 / 40)
    expected[updated] = 0.8 / 40 + 0.2 * old[updated]
    assert_allclose(core.scores, expected, rtol=1e-6)


def test_evolved_step_trains(torch_face):
    torch, face = torch_face
    X, y, model = problem(torch, n=64)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3)
    core = EvolvedSampler(64, batch_size=8, meta_batch_size=16, burn_in=1, prune_ratio=0.25,
                          n_epochs=6, random_state=0)
    batches = face.EvolvedBatchSampler(core)
    loader = torch.utils.data.DataLoader(
        face.IndexedDataset(torch.utils.data.TensorDataset(X, y)), batch_sampler=batches
    )
    start = float(loss_fn(model(X), y).mean().detach())
    for epoch in range(6):
        batches.set_epoch(epoch)
        for xb, yb, index in loader:
            face.evolved_step(model, loss_fn, optimizer, xb, yb, index, core)
    assert float(loss_fn(model(X), y).mean().detach()) < 0.7 * start


def test_evolved_step_needs_per_sample_losses(torch_face):
    torch, face = torch_face
    X, y, model = problem(torch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    core = EvolvedSampler(40, batch_size=4, random_state=0)
    index = torch.arange(8)
    with pytest.raises(ValueError, match="reduction='none'"):
        face.evolved_step(model, torch.nn.CrossEntropyLoss(), optimizer, X[:8], y[:8], index,
                          core)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    with pytest.raises(ValueError, match="one dataset index per row"):
        face.evolved_step(model, loss_fn, optimizer, X[:8], y[:8], index[:7], core)
    with pytest.raises(TypeError, match="sampler"):
        face.evolved_step(model, loss_fn, optimizer, X[:8], y[:8], index, object())


@pytest.mark.gpu
def test_evolved_step_on_cuda(torch_face):
    torch, face = torch_face
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    X, y, model = problem(torch)
    X, y, model = X.cuda(), y.cuda(), model.cuda()
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    core = EvolvedSampler(40, batch_size=4, meta_batch_size=12, random_state=0)
    meta = torch.as_tensor(next(core.meta_batches(0)), device="cuda")
    step = face.evolved_step(model, loss_fn, optimizer, X[meta], y[meta], meta, core)
    assert step.indices.shape == (4,) and set(step.indices.tolist()) <= set(meta.tolist())
    assert math.isfinite(step.loss)
