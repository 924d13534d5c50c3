"""Frequent Directions on Dask arrays, on the threaded scheduler and on a process cluster."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from sketchsel import FrequentDirections  # noqa: E402


def _low_rank_plus_noise(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)) @ rng.standard_normal((6, d)) * 3 + rng.standard_normal(
        (n, d)
    )


def _check_certificate(fd, A):
    """Exact error <= certified bound <= the a priori guarantee of one stream."""
    B = fd.sketch_.astype(np.float64)
    exact = np.linalg.norm(A.T @ A - B.T @ B, 2)
    bound = fd.covariance_error_bound()
    squared = np.linalg.svd(A, compute_uv=False) ** 2
    tail = np.concatenate([np.cumsum(squared[::-1])[::-1], [0.0]])
    rows = fd.sketch_size
    a_priori = min(tail[k] / (rows + 1 - k) for k in range(min(rows, squared.size) + 1))
    assert exact <= bound * (1 + 1e-9) + 1e-9
    assert bound <= a_priori * (1 + 1e-9)
    assert fd.n_samples_seen_ == A.shape[0]
    np.testing.assert_allclose(fd.squared_norm_, (A**2).sum(), rtol=1e-10)


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes, started for these tests and closed after them."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local, distributed.Client(local) as client:
        yield client


@pytest.mark.parametrize("chunks", [(100, 40), (333, 17), (1000, 40)])
@pytest.mark.parametrize("sketch_size", [4, 12])
def test_threaded_sketch_keeps_the_single_stream_certificate(chunks, sketch_size):
    A = _low_rank_plus_noise(1000, 40, seed=sketch_size)
    X = da.from_array(A, chunks=chunks)
    with dask.config.set(scheduler="threads"):
        fd = FrequentDirections(sketch_size).fit(X)
    _check_certificate(fd, A)
    assert fd.sketch_.dtype == np.float64 and fd.n_features_in_ == 40


def test_one_block_gives_the_in_memory_sketch():
    A = _low_rank_plus_noise(500, 30, seed=1).astype(np.float32)
    with dask.config.set(scheduler="threads"):
        fd = FrequentDirections(8).fit(da.from_array(A, chunks=(500, 30)))
    expected = FrequentDirections(8).fit(A)
    np.testing.assert_array_equal(fd.sketch_, expected.sketch_)
    assert fd.sketch_.dtype == np.float32


def test_partial_fit_on_dask_arrays_merges_them_into_one_stream():
    A = _low_rank_plus_noise(1200, 25, seed=2)
    with dask.config.set(scheduler="threads"):
        fd = FrequentDirections(6)
        fd.partial_fit(da.from_array(A[:700], chunks=(100, 25)))
        fd.partial_fit(A[700:900])
        fd.partial_fit(da.from_array(A[900:], chunks=(150, 25)))
    _check_certificate(fd, A)


def test_process_cluster_sketch_keeps_the_certificate(cluster):
    A = _low_rank_plus_noise(3000, 50, seed=3)
    X = da.from_array(A, chunks=(250, 50))
    fd = FrequentDirections(10).fit(X)  # the client is the default scheduler here
    _check_certificate(fd, A)
    Z = fd.transform(A[:5])
    assert Z.shape == (5, 10)


def test_bad_dask_input_is_reported():
    A = _low_rank_plus_noise(400, 10, seed=4)
    A[321, 4] = np.nan
    with dask.config.set(scheduler="threads"), pytest.raises(ValueError, match=r"rows 300 to 399.*\[21\]"):
        FrequentDirections(4).fit(da.from_array(A, chunks=(100, 10)))
    with pytest.raises(ValueError, match="2-D"):
        FrequentDirections(4).fit(da.zeros(10, chunks=5))


# Selectors


from sklearn.base import clone  # noqa: E402

from sketchsel import AgreementSelector, FastMaxVol, MomentMatchingSelector  # noqa: E402


def _gradients(seed):
    rng = np.random.default_rng(seed)
    G = _low_rank_plus_noise(1500, 60, seed)
    return G, rng.integers(0, 3, G.shape[0])


@pytest.mark.parametrize("class_balance", [None, "equal", "proportional"])
@pytest.mark.parametrize(
    "make",
    [
        lambda cb: MomentMatchingSelector(n_select=90, sketch_size=24, random_state=0,
                                          class_balance=cb),
        lambda cb: MomentMatchingSelector(n_select=90, sketch_size=24, strategy="moments",
                                          random_state=0, class_balance=cb),
        lambda cb: AgreementSelector(n_select=90, projection="gaussian", sketch_size=24,
                                     strategy="stratified", random_state=0, class_balance=cb),
        lambda cb: AgreementSelector(n_select=90, projection="gaussian", sketch_size=24,
                                     strategy="thinning", random_state=0, class_balance=cb),
    ],
    ids=["moment_matching", "moment_matching_program", "agreement_gaussian",
         "agreement_thinning"],
)
def test_seeded_selectors_choose_on_dask_what_they_choose_in_memory(make, class_balance):
    G, y = _gradients(5)
    X = da.from_array(G, chunks=(200, 60))
    with dask.config.set(scheduler="threads"):
        on_dask = make(class_balance).fit(X, da.from_array(y, chunks=200))
    in_memory = make(class_balance).fit(G, y)
    np.testing.assert_array_equal(on_dask.select(), in_memory.select())
    assert on_dask.n_hard_cut_ == in_memory.n_hard_cut_
    assert on_dask.n_features_in_ == 60


@pytest.mark.parametrize("class_balance", [None, "equal"])
def test_agreement_on_dask_scores_every_row_against_its_consensus(class_balance):
    """Brute force from the tree-merged directions: cosine of each unit projection with the
    normalised mean of its group's unit projections; the top scores are chosen."""
    G, y = _gradients(6)
    with dask.config.set(scheduler="threads"):
        selector = AgreementSelector(n_select=60, sketch_size=10, class_balance=class_balance,
                                     strategy="top")
        selector.fit(da.from_array(G, chunks=(250, 60)), y)
    V = selector.components_
    U = G @ V.T
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    groups = np.zeros(len(y), dtype=int) if class_balance is None else y
    expected = np.empty(len(y))
    for group in np.unique(groups):
        rows = groups == group
        consensus = U[rows].sum(axis=0)
        expected[rows] = U[rows] @ (consensus / np.linalg.norm(consensus))
    np.testing.assert_allclose(selector.scores_, expected, atol=1e-10)
    if class_balance is None:
        top = np.sort(np.argsort(-expected, kind="stable")[:60])
        np.testing.assert_array_equal(selector.select(), top)
    else:
        assert np.bincount(y[selector.select()]).tolist() == [20, 20, 20]


def test_one_block_agreement_equals_the_in_memory_selection():
    G, y = _gradients(7)
    with dask.config.set(scheduler="threads"):
        on_dask = AgreementSelector(n_select=50, sketch_size=12, strategy="top").fit(
            da.from_array(G, chunks=G.shape))
    in_memory = AgreementSelector(n_select=50, sketch_size=12, strategy="top").fit(G)
    np.testing.assert_array_equal(on_dask.select(), in_memory.select())


def test_selectors_on_a_process_cluster(cluster):
    G, y = _gradients(8)
    X = da.from_array(G, chunks=(300, 60))
    for strategy in ("thinning", "moments"):
        moment = MomentMatchingSelector(n_select=80, sketch_size=24, strategy=strategy,
                                        random_state=1)
        np.testing.assert_array_equal(moment.fit(X, y).select(), moment.fit(G, y).select())
    agreement = AgreementSelector(n_select=80, sketch_size=10, class_balance="equal",
                                  strategy="proportional", random_state=0)
    chosen = agreement.fit(X, y).select()
    assert chosen.size == 80 and np.bincount(y[chosen]).tolist() == [27, 27, 26]


def _computed_shapes(monkeypatch):
    """Record the shape of every array a computation brings to the client."""
    shapes, compute = [], dask.base.compute

    def recording(*args, **kwargs):
        results = compute(*args, **kwargs)
        shapes.extend(np.shape(result) for result in results)
        return results

    monkeypatch.setattr(dask.base, "compute", recording)
    monkeypatch.setattr(da, "compute", recording)
    return shapes


@pytest.mark.parametrize("strategy", [None, "diverse"])  # the default (thinning), the cover
@pytest.mark.parametrize("class_balance", [None, "auto"])
def test_agreement_that_reads_the_projections_on_a_process_cluster_never_gathers_the_rows(
        cluster, monkeypatch, class_balance, strategy):
    rng = np.random.default_rng(13)
    y = rng.integers(0, 3, 1200)
    G = rng.standard_normal((3, 300))[y] * 2 + rng.standard_normal((1200, 300))
    shapes = _computed_shapes(monkeypatch)
    params = dict(sketch_size=32, class_balance=class_balance, random_state=0)
    if strategy is not None:
        params["strategy"] = strategy
    # The choice reads the projections: the same choice as in memory from the projections on
    # the same directions (an exact sketch of them is a rotation, which changes no cosine, no
    # length and no distance).
    selector = AgreementSelector(n_select=60, **params).fit(
        da.from_array(G, chunks=(250, 300)), y)
    Z = G @ selector.components_.T
    expected = AgreementSelector(n_select=60, **params).fit(Z, y)
    np.testing.assert_array_equal(selector.select(), expected.select())
    # From a fifth of the rows (the cover's maxvol fallback, which sees the basis): one block
    # gives the in-memory directions, hence the in-memory choice.
    selector = AgreementSelector(n_select=400, **params).fit(da.from_array(G, chunks=G.shape), y)
    expected = AgreementSelector(n_select=400, **params).fit(G, y)
    np.testing.assert_array_equal(selector.select(), expected.select())
    assert selector.fallback_used_ == expected.fallback_used_
    fell_back = strategy == "diverse"
    assert expected.fallback_used_ in ((True, [True, True, True]) if fell_back
                                       else (False, [False, False, False]))
    # Only the projections (1200 x 32) and smaller results came to the client.
    assert shapes and not any(len(shape) == 2 and shape[1] == 300 for shape in shapes)


def test_dask_errors_are_clear():
    G, y = _gradients(9)
    X = da.from_array(G, chunks=(500, 60))
    with pytest.raises(TypeError, match="FastMaxVol does not take Dask arrays"):
        FastMaxVol(n_select=5).fit(X)
    with pytest.raises(ValueError, match="needs the class labels"):
        AgreementSelector(n_select=5, class_balance="equal", strategy="top").fit(X)
    with dask.config.set(scheduler="threads"), pytest.raises(ValueError, match="1000 labels"):
        AgreementSelector(n_select=5, class_balance="equal", strategy="top").fit(X, y[:1000])


def test_empty_blocks_and_unknown_block_sizes():
    """Boolean indexing leaves blocks of unknown size, some of them empty."""
    A = _low_rank_plus_noise(600, 20, seed=10)
    A[100:200, 0] = -1e6  # a whole block filtered out below
    X = da.from_array(A, chunks=(100, 20))
    kept = X[X[:, 0] > -1e5]
    rows = A[A[:, 0] > -1e5]
    with dask.config.set(scheduler="threads"):
        fd = FrequentDirections(6).fit(kept)
        _check_certificate(fd, rows)
        on_dask = AgreementSelector(n_select=30, projection="gaussian", sketch_size=8,
                                    strategy="top", random_state=0).fit(kept)
        moments = [MomentMatchingSelector(n_select=30, sketch_size=8, strategy=strategy,
                                          random_state=0).fit(kept)
                   for strategy in ("thinning", "moments")]
        with pytest.raises(ValueError, match="no rows"):
            FrequentDirections(4).fit(X[X[:, 0] > 1e9])
    for moment in moments:
        np.testing.assert_array_equal(moment.select(), clone(moment).fit(rows).select())
    in_memory = AgreementSelector(n_select=30, projection="gaussian", sketch_size=8,
                                  strategy="top", random_state=0).fit(rows)
    np.testing.assert_array_equal(on_dask.select(), in_memory.select())


def test_integer_dask_arrays_are_widened_as_in_memory():
    A = np.random.default_rng(11).integers(-5, 6, (400, 60))
    X = da.from_array(A, chunks=(100, 60))
    with dask.config.set(scheduler="threads"):
        on_dask = AgreementSelector(n_select=40, projection="gaussian", sketch_size=16,
                                    strategy="top", random_state=0).fit(X)
        moments = [MomentMatchingSelector(n_select=40, sketch_size=16, strategy=strategy,
                                          random_state=0).fit(X)
                   for strategy in ("thinning", "moments")]
    assert on_dask.components_.dtype == np.float64 and np.any(on_dask.components_ != 0)
    expected = AgreementSelector(n_select=40, projection="gaussian", sketch_size=16,
                                 strategy="top", random_state=0).fit(A)
    np.testing.assert_array_equal(on_dask.select(), expected.select())
    for moment in moments:
        np.testing.assert_array_equal(moment.select(), clone(moment).fit(A).select())


def test_a_dask_fit_forgets_the_state_of_an_earlier_fit():
    pandas = pytest.importorskip("pandas")
    A = _low_rank_plus_noise(300, 30, seed=12)
    fd = FrequentDirections(5).fit(pandas.DataFrame(A, columns=[f"c{i}" for i in range(30)]))
    assert hasattr(fd, "feature_names_in_")
    with dask.config.set(scheduler="threads"):
        fd.fit(da.from_array(A[:, :20], chunks=(100, 20)))
    assert not hasattr(fd, "feature_names_in_") and fd.n_features_in_ == 20
    with pytest.raises(ValueError, match="2-D"):
        AgreementSelector(n_select=3).fit(da.zeros(10, chunks=5))


def test_rows_come_to_the_client_a_few_blocks_at_a_time(monkeypatch):
    # X.compute() would join every block in one task, on one worker of a cluster; the
    # representation thinning reads (N x k) may not fit there, so the blocks travel apart.
    from sketchsel.sketch._dask import _GATHER_BLOCKS, gather_rows

    G = np.random.default_rng(14).standard_normal((1000, 7)).astype(np.float32)
    X = da.from_array(G, chunks=(37, 7))
    X = X[X[:, 0] > -100]  # every row, in blocks of unknown size
    rows_per_compute, compute = [], dask.compute

    def recording(*args, **kwargs):
        results = compute(*args, **kwargs)
        rows_per_compute.append(sum(np.shape(r)[0] for r in results if np.ndim(r) == 2))
        return results

    monkeypatch.setattr(dask, "compute", recording)
    rows = gather_rows(X)
    np.testing.assert_array_equal(rows, G)
    assert rows.dtype == np.float32
    assert 0 < max(rows_per_compute) <= 37 * _GATHER_BLOCKS < 1000
