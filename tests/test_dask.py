"""fastknn.dask on a real LocalCluster: two single-thread worker processes.

Every result is compared with the one-process search or estimator, to the
bit. The cluster is started once for the module and always closed.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.exceptions import UndefinedMetricWarning

import fastknn
from fastknn.datasets import load_mnist

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from fastknn.dask import (  # noqa: E402
    KNNClassifier,
    KNNRegressor,
    KNNTransformer,
    NearestNeighbors,
    RadiusNeighborsClassifier,
    RadiusNeighborsRegressor,
    RadiusNeighborsTransformer,
    from_npy,
    kneighbors,
)
from fastknn.dask._bench import peak_rss  # noqa: E402

# Per worker: above the ~300 to 400 MB a worker holds once numba, scikit-learn
# and fastknn are loaded, below the file-backed training set.
MEMORY_LIMIT = 768 * 2**20


def _compile_kernels():
    """Compile the searches the tests run, in this process, into numba's disk cache.

    The worker processes then load them from the cache; two workers
    compiling the same kernels at once would take minutes on 2 cores.
    """
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        Y = rng.normal(size=(50, 4)).astype(dtype)
        for metric in ("euclidean", "manhattan", "chebyshev", "minkowski"):
            for algorithm in ("brute", "pruned"):
                fastknn.kneighbors(Y[:3], Y, 3, metric=metric, p=3, algorithm=algorithm)
    fastknn.KNNClassifier(n_neighbors=3, weights="distance").fit(Y, np.arange(50) % 3).predict(Y[:3])
    sparse = scipy.sparse.random(50, 20, density=0.2, format="csr", random_state=0)
    nn = fastknn.NearestNeighbors(n_neighbors=3, radius=1.0).fit(sparse)
    nn.kneighbors(sparse[:3])
    nn.radius_neighbors(sparse[:3], sort_results=True)


@pytest.fixture(scope="module")
def client():
    """A client of a LocalCluster of 2 worker processes with 1 thread each."""
    _compile_kernels()
    # Functions defined here (slow blocks, weights) travel by value: the
    # workers cannot import this test module.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=MEMORY_LIMIT,
        dashboard_address=None, scheduler_port=0,
    )
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def assert_same_search(X, Y, n_neighbors, split_every=None, **params):
    """fastknn.dask.kneighbors on the Dask arrays equals fastknn.kneighbors on the whole ones."""
    distances, indices = kneighbors(X, Y, n_neighbors, split_every=split_every, **params)
    assert isinstance(distances, da.Array) and isinstance(indices, da.Array)
    distances, indices = dask.compute(distances, indices)
    expected_distances, expected_indices = fastknn.kneighbors(np.asarray(X), np.asarray(Y), n_neighbors, **params)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)


def test_the_dask_namespace_lists_its_public_names_only():
    import fastknn.dask

    public = [name for name in dir(fastknn.dask) if not name.startswith("_")]
    assert "dask" not in public  # the import that checks Dask is installed
    assert set(fastknn.dask.__all__) <= set(public)


def test_fastknn_imports_without_dask():
    """``import fastknn`` works when Dask is missing; ``fastknn.dask`` says how to install it."""
    code = textwrap.dedent(
        """
        import sys
        sys.modules["dask"] = None  # an import of dask now fails, as when it is not installed
        import fastknn
        assert fastknn.KNNClassifier and fastknn.kneighbors
        try:
            import fastknn.dask
        except ModuleNotFoundError as error:
            assert 'pip install "fastknn[dask]"' in str(error), error
        else:
            raise AssertionError("fastknn.dask imported without dask")
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "metric, algorithm",
    [("euclidean", "brute"), ("manhattan", "pruned"), ("minkowski", "auto"), ("chebyshev", "kd_tree"), ("cosine", "auto")],
)
def test_random_data(client, metric, algorithm):
    rng = np.random.default_rng(0)
    Y, X = rng.normal(size=(400, 12)), rng.normal(size=(90, 12))
    assert_same_search(
        da.from_array(X, chunks=(25, 12)), da.from_array(Y, chunks=(130, 12)), 9,
        metric=metric, p=3, algorithm=algorithm,
    )


def test_digits(client):
    digits, _ = load_mnist(return_X_y=True)
    Y = da.from_array(digits[10_000:12_000], chunks=((700, 800, 500), (784,)))
    X = da.from_array(digits[:120], chunks=(50, 784))
    assert_same_search(X, Y, 5, metric="euclidean", algorithm="pruned")
    assert_same_search(X, Y, 5, metric="manhattan", algorithm="auto")


def test_ties_across_shard_boundaries(client):
    """Integer rows in [-1, 1]: most distances tie, the lower global index must win."""
    rng = np.random.default_rng(3)
    Y = rng.integers(-1, 2, size=(150, 3)).astype(np.float32)
    X = rng.integers(-1, 2, size=(40, 3)).astype(np.float32)
    for chunks in (13, (1, 49, 2, 70, 28)):
        assert_same_search(X, da.from_array(Y, chunks=(chunks, 3)), 30, metric="manhattan")
        assert_same_search(X, da.from_array(Y, chunks=(chunks, 3)), 30, metric="euclidean", split_every=2)


def test_order_is_on_reduced_distances(client):
    """Two rows whose squared distances differ but whose distances are the same float.

    The one-process search orders them by squared distance (row 1 first);
    a merge on (distance, index) would put row 0 first.
    """
    a = float.fromhex("0x1.000000affaddbp+0")
    b = np.nextafter(a, 2.0)
    Y = np.array([[1.0, b], [1.0, a]])
    distances, indices = dask.compute(*kneighbors([[0.0, 0.0]], da.from_array(Y, chunks=(1, 2)), 2))
    assert distances[0, 0] == distances[0, 1]
    np.testing.assert_array_equal(indices, [[1, 0]])
    assert_same_search(np.zeros((1, 2)), da.from_array(Y, chunks=(1, 2)), 2)


def test_uneven_single_row_chunks_and_k_beyond_a_shard(client):
    rng = np.random.default_rng(4)
    Y, X = rng.normal(size=(23, 4)), rng.normal(size=(11, 4))
    assert_same_search(da.from_array(X[:4], chunks=(1, 4)), da.from_array(Y[:12], chunks=(1, 4)), 5)
    assert_same_search(da.from_array(X, chunks=((4, 1, 6), (4,))), da.from_array(Y, chunks=((5, 1, 17), (4,))), 23)
    assert_same_search(X, da.from_array(Y, chunks=(3, 4)), 20, metric="chebyshev")
    # An empty shard, as a row selection can leave, only pads.
    assert_same_search(X, da.from_array(Y, chunks=((10, 0, 13), (4,))), 12)


def test_float64_queries_of_float32_shards(client, rounded_query_ties):
    # Each shard searches in float64 where rounding the queries to float32
    # would move them onto a tie, as the one-process search does.
    rows, queries, nearest = rounded_query_ties
    for algorithm in ("brute", "kd_tree"):
        found = kneighbors(queries, da.from_array(rows, chunks=(25, 4)), 2, algorithm=algorithm, return_distance=False)
        np.testing.assert_array_equal(found.compute()[:, 0], nearest)


def test_numpy_inputs_and_indices_alone(client):
    rng = np.random.default_rng(5)
    Y, X = rng.normal(size=(50, 3)), rng.normal(size=(7, 3))
    indices = kneighbors(X, Y, 4, return_distance=False)
    np.testing.assert_array_equal(indices.compute(), fastknn.kneighbors(X, Y, 4, return_distance=False))


@pytest.fixture(scope="module")
def labelled_split():
    """Integer features (ties in distance and in votes) and two outputs."""
    rng = np.random.default_rng(6)
    X = rng.integers(-2, 3, size=(240, 3)).astype(np.float64)
    y = np.stack([rng.integers(0, 4, size=240), rng.choice(["a", "b", "c"], size=240)], axis=1)
    queries = rng.integers(-2, 3, size=(60, 3)).astype(np.float64)
    return X, y, queries


def _inverse_square(distances):
    return 1.0 / (1.0 + distances**2)


@pytest.mark.parametrize("weights", ["uniform", "distance", _inverse_square])
@pytest.mark.parametrize("two_outputs", [False, True])
def test_classifier_matches_in_memory(client, labelled_split, weights, two_outputs):
    X, y, queries = labelled_split
    y = y if two_outputs else y[:, 0].astype(int)
    params = dict(n_neighbors=7, weights=weights, metric="manhattan", algorithm="auto")
    expected = fastknn.KNNClassifier(**params).fit(X, y)
    clf = KNNClassifier(**params).fit(da.from_array(X, chunks=(45, 3)), da.from_array(y, chunks=(45,) + y.shape[1:]))
    Q = da.from_array(queries, chunks=(16, 3))
    predictions = clf.predict(Q)
    assert isinstance(predictions, da.Array)
    np.testing.assert_array_equal(predictions.compute(), expected.predict(queries))
    proba, expected_proba = clf.predict_proba(Q), expected.predict_proba(queries)
    for got, want in zip(proba if two_outputs else [proba], expected_proba if two_outputs else [expected_proba]):
        np.testing.assert_array_equal(got.compute(), want)
    distances, indices = dask.compute(*clf.kneighbors(Q, n_neighbors=12))
    expected_distances, expected_indices = expected.kneighbors(queries, n_neighbors=12)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)
    # scikit-learn's accuracy does not take mixed-type outputs: subset accuracy by hand.
    accuracy = np.mean(np.all(expected.predict(queries).reshape(60, -1) == y[:60].reshape(60, -1), axis=1))
    assert float(clf.score(Q, y[:60]).compute()) == accuracy


@pytest.mark.parametrize("weights", ["uniform", "distance", _inverse_square])
@pytest.mark.parametrize("two_outputs", [False, True])
def test_regressor_matches_in_memory(client, labelled_split, weights, two_outputs):
    X, _, queries = labelled_split
    rng = np.random.default_rng(7)
    y = rng.normal(size=(X.shape[0], 2)) if two_outputs else rng.normal(size=X.shape[0])
    params = dict(n_neighbors=7, weights=weights, metric="manhattan", algorithm="auto")
    expected = fastknn.KNNRegressor(**params).fit(X, y)
    reg = KNNRegressor(**params).fit(da.from_array(X, chunks=(45, 3)), da.from_array(y, chunks=(45,) + y.shape[1:]))
    Q = da.from_array(queries, chunks=(16, 3))
    predictions = reg.predict(Q)
    assert isinstance(predictions, da.Array)
    np.testing.assert_array_equal(predictions.compute(), expected.predict(queries))
    score = reg.score(Q, y[:60])
    assert isinstance(score, da.Array)
    np.testing.assert_allclose(float(score.compute()), expected.score(queries, y[:60]), rtol=1e-12)
    weights_60 = rng.random(60)
    np.testing.assert_allclose(
        float(reg.score(Q, y[:60], sample_weight=weights_60).compute()),
        expected.score(queries, y[:60], sample_weight=weights_60),
        rtol=1e-12,
    )


def _radius_queries(queries):
    """The labelled split's queries and two far from every training row (empty neighbourhoods), in uneven blocks."""
    queries = np.vstack([queries[:30], np.full((1, 3), 9.0), queries[30:], np.full((1, 3), -9.0)])
    return queries, da.from_array(queries, chunks=((1, 30, 20, 11), 3))


@pytest.mark.parametrize("weights", ["uniform", "distance", _inverse_square])
@pytest.mark.parametrize("two_outputs", [False, True])
def test_radius_classifier_matches_in_memory(client, labelled_split, weights, two_outputs):
    X, y, queries = labelled_split
    y = y if two_outputs else y[:, 0].astype(int)
    queries, Q = _radius_queries(queries)
    outlier_label = "most_frequent" if two_outputs else 2
    params = dict(radius=1.5, weights=weights, metric="euclidean", outlier_label=outlier_label, algorithm="auto")
    expected = fastknn.RadiusNeighborsClassifier(**params).fit(X, y)
    y_chunks = ((100, 1, 60, 79),) + y.shape[1:]
    clf = RadiusNeighborsClassifier(**params).fit(da.from_array(X, chunks=((100, 1, 60, 79), 3)),
                                                  da.from_array(y, chunks=y_chunks))
    assert clf.outlier_label_ == expected.outlier_label_
    predictions = clf.predict(Q)
    assert isinstance(predictions, da.Array)
    np.testing.assert_array_equal(predictions.compute(), expected.predict(queries))
    proba, expected_proba = clf.predict_proba(Q), expected.predict_proba(queries)
    for got, want in zip(proba if two_outputs else [proba], expected_proba if two_outputs else [expected_proba]):
        np.testing.assert_array_equal(got.compute(), want)
    truth = y[: queries.shape[0]]
    accuracy = np.mean(np.all(expected.predict(queries).reshape(62, -1) == truth.reshape(62, -1), axis=1))
    assert float(clf.score(Q, truth).compute()) == accuracy


def test_radius_classifier_without_outlier_label_names_the_empty_queries(client, labelled_split):
    X, y, queries = labelled_split
    _, Q = _radius_queries(queries)
    clf = RadiusNeighborsClassifier(radius=1.5).fit(da.from_array(X, chunks=(70, 3)), y[:, 0].astype(int))
    with pytest.raises(ValueError, match=r"No neighbors found for test samples array\(\[30\]\)"):
        clf.predict(Q[:40]).compute()
    with pytest.raises(ValueError, match="RadiusNeighborsClassifier has no n_neighbors parameter"):
        clf.kneighbors(Q)


@pytest.mark.parametrize("weights", ["uniform", "distance", _inverse_square])
@pytest.mark.parametrize("two_outputs", [False, True])
def test_radius_regressor_matches_in_memory(client, labelled_split, weights, two_outputs):
    X, _, queries = labelled_split
    rng = np.random.default_rng(8)
    y = rng.normal(size=(X.shape[0], 2)) if two_outputs else rng.normal(size=X.shape[0])
    params = dict(radius=1.0, weights=weights, metric="manhattan", algorithm="pruned")
    expected = fastknn.RadiusNeighborsRegressor(**params).fit(X, y)
    reg = RadiusNeighborsRegressor(**params).fit(
        da.from_array(X, chunks=((100, 1, 60, 79), 3)), da.from_array(y, chunks=(45,) + y.shape[1:])
    )
    all_queries, Q = _radius_queries(queries)
    predictions = reg.predict(Q)
    assert isinstance(predictions, da.Array)
    with pytest.warns(UserWarning, match="no neighbors within specified radius"):
        expected_predictions = expected.predict(all_queries)
    got = predictions.compute()
    assert np.isnan(got[[30, 61]]).all()
    np.testing.assert_array_equal(got, expected_predictions)
    Q = da.from_array(queries, chunks=(16, 3))
    np.testing.assert_allclose(
        float(reg.score(Q, y[:60]).compute()), expected.score(queries, y[:60]), rtol=1e-12
    )


def assert_same_graph(got, expected):
    """A computed Dask graph equals the in-memory one: same rows, entries and their order."""
    assert got.shape == expected.shape
    got = got.tocsr()
    np.testing.assert_array_equal(got.indptr, expected.indptr)
    np.testing.assert_array_equal(got.indices, expected.indices)
    np.testing.assert_array_equal(got.data, expected.data)


def assert_same_lists(got, expected):
    assert len(got) == len(expected)
    for got_row, expected_row in zip(got, expected):
        np.testing.assert_array_equal(got_row, expected_row)


@pytest.mark.parametrize("metric, algorithm", [("euclidean", "brute"), ("manhattan", "pruned")])
def test_nearest_neighbors_matches_in_memory(client, labelled_split, metric, algorithm):
    """Integer rows (many ties and duplicates) in uneven shards; every query of the training set too."""
    X, _, queries = labelled_split
    params = dict(n_neighbors=6, radius=1.5, metric=metric, algorithm=algorithm)
    expected = fastknn.NearestNeighbors(**params).fit(X)
    nn = NearestNeighbors(**params).fit(da.from_array(X, chunks=((70, 1, 100, 69), (3,))))
    Q = da.from_array(queries, chunks=(16, 3))
    for dask_queries, in_memory_queries in ((Q, queries), (None, None)):
        result = nn.kneighbors(dask_queries)
        assert all(isinstance(part, da.Array) for part in result)
        for got, want in zip(dask.compute(*result), expected.kneighbors(in_memory_queries)):
            np.testing.assert_array_equal(got, want)
        for mode in ("connectivity", "distance"):
            graph = nn.kneighbors_graph(dask_queries, n_neighbors=9, mode=mode)
            assert isinstance(graph, da.Array)
            assert_same_graph(graph.compute(), expected.kneighbors_graph(in_memory_queries, n_neighbors=9, mode=mode))
        for sort_results in (False, True):
            result = nn.radius_neighbors(dask_queries, sort_results=sort_results)
            assert all(isinstance(part, da.Array) for part in result)
            for got, want in zip(dask.compute(*result), expected.radius_neighbors(in_memory_queries, sort_results=sort_results)):
                assert_same_lists(got, want)
            graph = nn.radius_neighbors_graph(dask_queries, radius=2.0, mode="distance", sort_results=sort_results)
            assert_same_graph(
                graph.compute(),
                expected.radius_neighbors_graph(in_memory_queries, radius=2.0, mode="distance", sort_results=sort_results),
            )
    assert_same_lists(
        nn.radius_neighbors(Q, radius=0.0, return_distance=False).compute(),
        expected.radius_neighbors(queries, radius=0.0, return_distance=False),
    )


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_transformer_matches_in_memory(client, labelled_split, mode):
    X, _, queries = labelled_split
    expected = fastknn.KNNTransformer(n_neighbors=7, mode=mode, metric="manhattan")
    transformer = KNNTransformer(n_neighbors=7, mode=mode, metric="manhattan")
    graph = transformer.fit_transform(da.from_array(X, chunks=(45, 3)))
    assert isinstance(graph, da.Array)
    assert_same_graph(graph.compute(), expected.fit_transform(X))
    assert_same_graph(transformer.transform(da.from_array(queries, chunks=(16, 3))).compute(), expected.transform(queries))
    # The estimators' graphs of the training set, itself excluded.
    regressor = KNNRegressor(n_neighbors=3).fit(da.from_array(X, chunks=(45, 3)), np.arange(240.0))
    assert_same_graph(
        regressor.kneighbors_graph(mode=mode).compute(),
        fastknn.KNNRegressor(n_neighbors=3).fit(X, np.arange(240.0)).kneighbors_graph(mode=mode),
    )


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_radius_transformer_matches_in_memory(client, labelled_split, mode):
    X, y, queries = labelled_split
    params = dict(radius=1.5, mode=mode, metric="euclidean")
    expected = fastknn.RadiusNeighborsTransformer(**params)
    transformer = RadiusNeighborsTransformer(**params)
    graph = transformer.fit_transform(da.from_array(X, chunks=((100, 1, 60, 79), 3)))
    assert isinstance(graph, da.Array)
    assert_same_graph(graph.compute(), expected.fit_transform(X))
    all_queries, Q = _radius_queries(queries)
    assert_same_graph(transformer.transform(Q).compute(), expected.transform(all_queries))
    # The radius estimators answer radius queries too, as the in-memory ones.
    clf = RadiusNeighborsClassifier(radius=1.5).fit(da.from_array(X, chunks=(70, 3)), y[:, 0].astype(int))
    in_memory = fastknn.RadiusNeighborsClassifier(radius=1.5).fit(X, y[:, 0].astype(int))
    assert_same_graph(clf.radius_neighbors_graph(Q, mode=mode).compute(),
                      in_memory.radius_neighbors_graph(all_queries, mode=mode))


def test_estimators_kneighbors_of_the_training_set(client, labelled_split):
    """kneighbors(X=None): each training row's neighbours, itself excluded, also among exact duplicates."""
    X, y, _ = labelled_split
    duplicated = np.concatenate([X[:30], np.repeat(X[:1], 8, axis=0), X[30:]])
    targets = np.arange(duplicated.shape[0]) % 3
    for expected, estimator, fit_targets in (
        (fastknn.KNNClassifier(n_neighbors=4), KNNClassifier(n_neighbors=4), targets),
        (fastknn.KNNRegressor(n_neighbors=4), KNNRegressor(n_neighbors=4), targets * 0.5),
    ):
        expected.fit(duplicated, fit_targets)
        estimator.fit(da.from_array(duplicated, chunks=(37, 3)), da.from_array(fit_targets, chunks=37))
        for got, want in zip(dask.compute(*estimator.kneighbors(n_neighbors=5)), expected.kneighbors(n_neighbors=5)):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(
            estimator.kneighbors(return_distance=False).compute(), expected.kneighbors(return_distance=False)
        )
    with pytest.raises(ValueError, match=r"n_neighbors must be below the number of training rows \(248\) for X=None"):
        estimator.kneighbors(n_neighbors=248)
    with pytest.raises(ValueError, match="Unsupported mode"):
        NearestNeighbors().fit(X).kneighbors_graph(mode="distances")


def test_regressor_refuses_non_numeric_targets(client, labelled_split):
    X, y, _ = labelled_split
    with pytest.raises(ValueError, match="y must hold real numbers"):
        KNNRegressor().fit(da.from_array(X, chunks=(45, 3)), y[:, 1])


def test_classifier_keeps_shards_on_the_workers(client, mnist_split):
    X_train, y_train, X_test, _ = mnist_split
    clf = KNNClassifier(n_neighbors=3).fit(da.from_array(X_train, chunks=(300, 784)), y_train)
    np.testing.assert_array_equal(clf.shard_rows_, [300, 300, 300, 100])
    # The shards are held by the cluster: their keys are in the workers' memory.
    keys = {key for keys in client.has_what().values() for key in keys}
    assert {key for key in clf._shards.__dask_keys__()} <= keys
    with distributed.get_task_stream(client) as stream:
        predictions = clf.predict(da.from_array(X_test, chunks=(50, 784))).compute()
    np.testing.assert_array_equal(predictions, fastknn.KNNClassifier(n_neighbors=3).fit(X_train, y_train).predict(X_test))
    # Predicting searched the persisted shards: none was built again.
    names = [task["key"][0] if isinstance(task["key"], tuple) else task["key"] for task in stream.data]
    assert any("search_shard" in name for name in names)
    assert not any("build_shard" in name for name in names)


def test_unpersisted_classifier(client, labelled_split):
    X, y, queries = labelled_split
    clf = KNNClassifier(n_neighbors=4, persist=False).fit(da.from_array(X, chunks=(100, 3)), y[:, 0])
    expected = fastknn.KNNClassifier(n_neighbors=4).fit(X, y[:, 0])
    np.testing.assert_array_equal(clf.predict(queries).compute(), expected.predict(queries))


def _slow_copy(block, marker_dir):
    """A training block, slowly, leaving a file behind so that the test sees the search advance."""
    time.sleep(0.25)
    with open(os.path.join(marker_dir, f"{time.monotonic_ns()}-{os.getpid()}"), "w"):
        pass
    return block.copy()


def test_worker_killed_mid_search(client, tmp_path):
    """A worker process dies while the search runs: the nanny restarts it, the scheduler
    reruns its tasks, and the answer is the same."""
    rng = np.random.default_rng(7)
    Y, X = rng.normal(size=(2400, 8)), rng.normal(size=(60, 8))
    slow_Y = da.from_array(Y, chunks=(100, 8)).map_blocks(_slow_copy, str(tmp_path), dtype=Y.dtype)
    distances, indices = kneighbors(da.from_array(X, chunks=(20, 8)), slow_Y, 6)
    future = client.compute([distances, indices])
    deadline = time.monotonic() + 120
    while len(os.listdir(tmp_path)) < 4:
        assert time.monotonic() < deadline, "the search did not start"
        time.sleep(0.02)
    assert not all(f.done() for f in future)
    pids = client.run(os.getpid)
    os.kill(next(iter(pids.values())), signal.SIGKILL)
    got_distances, got_indices = client.gather(future)
    expected_distances, expected_indices = fastknn.kneighbors(X, Y, 6)
    np.testing.assert_array_equal(got_indices, expected_indices)
    np.testing.assert_array_equal(got_distances, expected_distances)
    client.wait_for_workers(2, timeout=120)


def _spilled_bytes(dask_worker):
    return dask_worker.data.spilled_total.disk if hasattr(dask_worker.data, "spilled_total") else 0


def test_file_backed_training_set_larger_than_worker_memory(client, tmp_path):
    """A .npy file of 1.1 times a worker's memory limit, read shard by shard."""
    n_features = 64
    n_rows = int(1.1 * MEMORY_LIMIT) // (4 * n_features)
    path = tmp_path / "train.npy"
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_rows, n_features))
    rng = np.random.default_rng(8)
    for start in range(0, n_rows, 500_000):
        stop = min(start + 500_000, n_rows)
        rows[start:stop] = rng.random((stop - start, n_features), dtype=np.float32)
    rows.flush()
    assert os.path.getsize(path) > MEMORY_LIMIT
    queries = rng.random((20, n_features), dtype=np.float32)
    Y = from_npy(path, rows_per_shard=100_000)
    distances, indices = dask.compute(*kneighbors(queries, Y, 5))
    # The subset check: the in-memory search over the mapped file, for the first 8 queries.
    expected_distances, expected_indices = fastknn.kneighbors(queries[:8], rows, 5)
    np.testing.assert_array_equal(indices[:8], expected_indices)
    np.testing.assert_array_equal(distances[:8], expected_distances)
    del rows
    if sys.platform.startswith("linux"):
        peaks = client.run(peak_rss)
        assert max(peaks.values()) < MEMORY_LIMIT < os.path.getsize(path)
    assert sum(client.run(_spilled_bytes).values()) < os.path.getsize(path) / 4


def test_bad_inputs_raise_on_the_client(client):
    rng = np.random.default_rng(9)
    Y = da.from_array(rng.normal(size=(40, 5)), chunks=(10, 5))
    with pytest.raises(ValueError, match="X has 4 features but Y has 5"):
        kneighbors(rng.normal(size=(3, 4)), Y)
    with pytest.raises(ValueError, match=r"split along its features .* Y.rechunk\(\{1: -1\}\)"):
        kneighbors(rng.normal(size=(3, 5)), Y.rechunk((10, 2)))
    with pytest.raises(ValueError, match="n_neighbors must be between 1 and the number of training rows \\(40\\)"):
        kneighbors(rng.normal(size=(3, 5)), Y, 41)
    with pytest.raises(TypeError, match="n_neighbors must be an integer"):
        kneighbors(rng.normal(size=(3, 5)), Y, 2.0)
    with pytest.raises(ValueError, match="metric must be one of"):
        kneighbors(rng.normal(size=(3, 5)), Y, metric="hamming")
    with pytest.raises(ValueError, match="algorithm must be"):
        kneighbors(rng.normal(size=(3, 5)), Y, algorithm="cover_tree")
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        kneighbors(rng.normal(size=(3, 5)), Y[Y[:, 0] > 0])
    with pytest.raises(ValueError, match="must hold numbers"):
        kneighbors(np.array([["a"]]), np.array([["b"]]))

    with_nan = rng.normal(size=(40, 5))
    with_nan[23, 1] = np.nan
    distances, _ = kneighbors(rng.normal(size=(3, 5)), da.from_array(with_nan, chunks=(10, 5)))
    with pytest.raises(ValueError, match="training shard of rows 20 to 29: Input Y contains NaN"):
        distances.compute()
    distances, _ = kneighbors(np.full((3, 5), np.inf), Y)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        distances.compute()

    clf = KNNClassifier()
    with pytest.raises(ValueError, match="training shard of rows 20 to 29: Input Y contains NaN"):
        clf.fit(da.from_array(with_nan, chunks=(10, 5)), np.arange(40) % 2)
    clf.fit(Y, np.arange(40) % 2)
    with pytest.raises(ValueError, match="X has 4 features, but KNNClassifier is expecting 5 features"):
        clf.predict(rng.normal(size=(3, 4)))
    with pytest.raises(ValueError, match="X has 40 rows but y has 39"):
        KNNClassifier().fit(Y, np.arange(39))
    with pytest.raises(ValueError, match="Unknown label type"):
        KNNClassifier().fit(Y, rng.normal(size=40))
    with pytest.raises(ValueError, match="n_neighbors must be between"):
        clf.kneighbors(rng.normal(size=(3, 5)), n_neighbors=41)


def test_empty_blocks_of_queries_and_of_training_rows(client, labelled_split):
    """Row selections leave empty blocks: they search nothing, also as the training rows of X=None."""
    X, y, queries = labelled_split
    labels = y[:, 0].astype(int)
    expected = fastknn.KNNClassifier(n_neighbors=3).fit(X, labels)
    estimator = KNNClassifier(n_neighbors=3).fit(da.from_array(X, chunks=((100, 0, 140, 0), 3)), labels)
    blocks = da.from_array(queries, chunks=((20, 0, 40), 3))
    for got, want in zip(dask.compute(*estimator.kneighbors(blocks)), expected.kneighbors(queries)):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(estimator.predict(blocks).compute(), expected.predict(queries))
    for got, want in zip(dask.compute(*estimator.kneighbors()), expected.kneighbors()):
        np.testing.assert_array_equal(got, want)
    radius = NearestNeighbors(radius=1.5).fit(da.from_array(X, chunks=((100, 0, 140), 3)))
    got = radius.radius_neighbors_graph(mode="distance").compute()
    assert_same_graph(got, fastknn.NearestNeighbors(radius=1.5).fit(X).radius_neighbors_graph(mode="distance"))


def test_bad_inputs_as_scikit_learn_refuses_them(client):
    rng = np.random.default_rng(10)
    X = rng.normal(size=(12, 2))
    with pytest.raises(ValueError, match="X must be 2-D"):
        NearestNeighbors().fit(np.arange(5.0))
    with pytest.raises(ValueError, match="X has no rows"):
        NearestNeighbors(n_neighbors=1).fit(np.empty((0, 2)))
    with pytest.raises(ValueError, match="X has no rows"):
        NearestNeighbors(n_neighbors=1).fit(X).kneighbors(X[:0])
    with pytest.raises(ValueError, match="target y is None"):
        KNNClassifier(2).fit(X, None)
    with pytest.raises(ValueError, match="radius == -1.0, must be >= 0"):
        NearestNeighbors(radius=1.0).fit(X).radius_neighbors(X[:2], radius=-1.0)
    with pytest.raises(ValueError, match="y has no outputs"):
        KNNRegressor(2).fit(X, np.empty((12, 0)))
    y = da.from_array(np.arange(12.0), chunks=6)
    with pytest.raises(ValueError, match="y has unknown chunk sizes"):
        KNNRegressor(2).fit(X, y[y > -1])
    with_nan = np.arange(12.0)
    with_nan[7] = np.nan
    with pytest.raises(ValueError, match="training shard of rows 6 to 11: Input y contains NaN"):
        KNNRegressor(2).fit(da.from_array(X, chunks=(6, 2)), with_nan)
    np.testing.assert_array_equal(  # numbers held as objects are numbers, as for scikit-learn
        NearestNeighbors(n_neighbors=2).fit(X.astype(object)).kneighbors(X[:3])[1].compute(),
        fastknn.NearestNeighbors(n_neighbors=2).fit(X).kneighbors(X[:3])[1],
    )

    reg, clf = KNNRegressor(2).fit(X, np.arange(12.0)), KNNClassifier(2).fit(X, np.arange(12) % 2)
    with pytest.raises(ValueError, match="y has 2 outputs, but KNNRegressor was fitted on 1"):
        reg.score(X[:5], np.ones((5, 2)))
    with pytest.raises(ValueError, match="y has 2 outputs, but KNNClassifier was fitted on 1"):
        clf.score(X[:5], np.ones((5, 2), dtype=int))
    with pytest.raises(ValueError, match="sample_weight has 4 values but X has 5 rows"):
        reg.score(X[:5], np.ones(5), sample_weight=np.ones(4))
    with pytest.raises(ValueError, match="sample_weight must be 1-D"):
        clf.score(X[:5], np.ones(5, dtype=int), sample_weight=np.ones((5, 1)))
    with pytest.raises(ValueError, match="Mix of label input types"):
        clf.score(X[:5], np.array(list("abcde")))
    with pytest.warns(UndefinedMetricWarning, match="less than two samples"):
        assert np.isnan(reg.score(X[:1], [1.0]).compute())
    weights = rng.random(5)
    np.testing.assert_allclose(
        reg.score(X[:5], np.arange(5.0), sample_weight=weights).compute(),
        fastknn.KNNRegressor(2).fit(X, np.arange(12.0)).score(X[:5], np.arange(5.0), sample_weight=weights),
    )

def test_benchmark_script_runs_small(client, tmp_path):
    """The figures' script on small shapes: its checks hold (no timing is asserted)."""
    from fastknn.dask import _bench

    train, queries = _bench.fashion_sized_data(n_train=400, n_queries=60)
    fashion, _ = _bench.fashion_benchmark(client, train, queries, n_shards=4, n_blocks=2, rounds=1)
    assert fashion["identical"] and fashion["tasks"] > 8
    files = _bench.file_backed_benchmark(
        client, MEMORY_LIMIT, factor=0.002, n_features=16, rows_per_shard=20_000, n_queries=5, directory=tmp_path
    )
    assert files["identical_on_checked_queries"] and files["file_bytes"] > 0.002 * 2 * MEMORY_LIMIT
    assert _bench.one_task_benchmark(n_rows=500, n_features=8, n_queries=20, repeats=1)["seconds"] > 0


# -------------------------------------------------------------------------
# Sparse training and query data: the shards run the sparse search
# -------------------------------------------------------------------------

SPARSE_METRICS = ("euclidean", "manhattan", "chebyshev", "minkowski", "cosine")


def sparse_blocks(matrix, chunks):
    """A Dask array whose blocks are scipy sparse matrices of ``matrix``'s rows."""
    return da.from_array(matrix, chunks=(chunks, matrix.shape[1]), asarray=False)


@pytest.fixture(scope="module")
def sparse_split():
    """Sparse rows of few distinct values (empty rows, duplicates, ties), labels and queries."""
    X = scipy.sparse.random(200, 30, density=0.1, random_state=11, format="csr")
    queries = scipy.sparse.random(40, 30, density=0.1, random_state=12, format="csr")
    X.data, queries.data = np.round(X.data * 3), np.round(queries.data * 3)  # stored zeros too
    return X, np.random.default_rng(11).integers(0, 3, 200), queries


@pytest.mark.parametrize("metric", SPARSE_METRICS)
def test_sparse_search_matches_in_memory(client, sparse_split, metric):
    X, _, queries = sparse_split
    expected_distances, expected_indices = fastknn.kneighbors(queries, X, 9, metric=metric, p=3)
    Y = sparse_blocks(X, (60, 1, 90, 49))
    for training, query_form in (
        (X, queries),  # scipy matrices: one shard, one query block
        (Y, queries.toarray()),
        (Y.map_blocks(scipy.sparse.csc_matrix), scipy.sparse.csr_array(queries)),
        (sparse_blocks(scipy.sparse.csr_array(X), 70), sparse_blocks(queries, 15)),
    ):
        distances, indices = dask.compute(*kneighbors(query_form, training, 9, metric=metric, p=3, split_every=2))
        np.testing.assert_array_equal(indices, expected_indices)
        np.testing.assert_array_equal(distances, expected_distances)


def _sparse_radius(metric):
    return {"manhattan": 4.0, "cosine": 0.6}[metric]


@pytest.mark.parametrize("metric", ["manhattan", "cosine"])
def test_sparse_estimators_match_in_memory(client, sparse_split, metric):
    X, y, queries = sparse_split
    Xd, Q = sparse_blocks(X, 70), sparse_blocks(queries, 15)
    params = dict(n_neighbors=5, weights="distance", metric=metric)
    expected = fastknn.KNNClassifier(**params).fit(X, y)
    clf = KNNClassifier(**params).fit(Xd, y)
    np.testing.assert_array_equal(clf.predict(Q).compute(), expected.predict(queries))
    np.testing.assert_array_equal(clf.predict_proba(queries.toarray()).compute(), expected.predict_proba(queries))
    assert float(clf.score(Q, y[:40]).compute()) == expected.score(queries, y[:40])
    for got, want in zip(dask.compute(*clf.kneighbors()), expected.kneighbors()):
        np.testing.assert_array_equal(got, want)
    targets = y * 0.5
    regressor = KNNRegressor(**params, persist=False).fit(Xd, targets)
    np.testing.assert_array_equal(
        regressor.predict(Q).compute(), fastknn.KNNRegressor(**params).fit(X, targets).predict(queries)
    )
    assert_same_graph(
        KNNTransformer(n_neighbors=4, metric=metric).fit_transform(Xd).compute(),
        fastknn.KNNTransformer(n_neighbors=4, metric=metric).fit_transform(X),
    )

    radius = _sparse_radius(metric)
    nn = NearestNeighbors(radius=radius, metric=metric).fit(Xd)
    in_memory = fastknn.NearestNeighbors(radius=radius, metric=metric).fit(X)
    for got, want in zip(dask.compute(*nn.radius_neighbors(Q, sort_results=True)),
                         in_memory.radius_neighbors(queries, sort_results=True)):
        assert_same_lists(got, want)
    radius_params = dict(radius=radius, metric=metric, weights="distance")
    radius_clf = RadiusNeighborsClassifier(**radius_params, outlier_label="most_frequent").fit(Xd, y)
    np.testing.assert_array_equal(
        radius_clf.predict(Q).compute(),
        fastknn.RadiusNeighborsClassifier(**radius_params, outlier_label="most_frequent").fit(X, y).predict(queries),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # queries with no neighbour within the radius
        np.testing.assert_array_equal(
            RadiusNeighborsRegressor(**radius_params).fit(Xd, targets).predict(Q).compute(),
            fastknn.RadiusNeighborsRegressor(**radius_params).fit(X, targets).predict(queries),
        )
    assert_same_graph(
        RadiusNeighborsTransformer(radius=radius, metric=metric).fit_transform(Xd).compute(),
        fastknn.RadiusNeighborsTransformer(radius=radius, metric=metric).fit_transform(X),
    )


def test_sparse_queries_against_dense_shards(client, sparse_split):
    X, y, queries = sparse_split
    expected = fastknn.KNNClassifier(n_neighbors=4, metric="manhattan").fit(X.toarray(), y)
    clf = KNNClassifier(n_neighbors=4, metric="manhattan").fit(da.from_array(X.toarray(), chunks=(70, 30)), y)
    for got, want in zip(dask.compute(*clf.kneighbors(sparse_blocks(queries, 15))), expected.kneighbors(queries)):
        np.testing.assert_array_equal(got, want)


class _Wrapped:
    """A block type that is neither a NumPy array nor a scipy sparse matrix."""

    def __init__(self, block):
        self.shape, self.dtype, self.ndim = block.shape, block.dtype, block.ndim


def test_sparse_bad_inputs(client, sparse_split):
    X, y, queries = sparse_split
    with_nan = X.copy()
    with_nan.data[with_nan.indptr[75]] = np.nan  # a value of row 75 or the next non-empty one
    row = int(np.searchsorted(with_nan.indptr, with_nan.indptr[75], side="right")) - 1
    assert 70 <= row < 140
    with pytest.raises(ValueError, match="training shard of rows 70 to 139: Input Y contains NaN"):
        NearestNeighbors(n_neighbors=3).fit(sparse_blocks(with_nan, 70))
    with pytest.warns(UserWarning, match="cannot use pruned with sparse input: using the sparse brute-force search"):
        nn = NearestNeighbors(n_neighbors=3, algorithm="pruned").fit(sparse_blocks(X, 70))
    np.testing.assert_array_equal(
        nn.kneighbors(queries, return_distance=False).compute(),
        fastknn.NearestNeighbors(n_neighbors=3).fit(X).kneighbors(queries, return_distance=False),
    )
    # Dask keeps the meta of the block types it knows (CuPy, pydata/sparse),
    # none of them installed here; it would make an ndarray of this one.
    wrapped = da.from_array(X.toarray(), chunks=(70, 30)).map_blocks(_Wrapped)
    wrapped._meta = _Wrapped(np.empty((0, 0)))
    with pytest.raises(TypeError, match="Y's blocks must be NumPy arrays or scipy sparse matrices, got _Wrapped"):
        kneighbors(queries, wrapped)


def test_sparse_shard_reports_its_bytes(sparse_split):
    from fastknn.dask._shards import Shard

    X, _, _ = sparse_split
    shard = Shard(X, 0, "euclidean", None, "auto", 5)
    assert shard.fitted.method == "sparse"
    matrix_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    # The rows, and the inverted index and row arrays of the sparse search (about three times the matrix).
    assert 2 * matrix_bytes < dask.sizeof.sizeof(shard) < 6 * matrix_bytes
