"""Tests for fastknn._self_graph: the graph of a training set with itself equals the brute-force search's, to the bit."""

import naive
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsTransformer, NearestNeighbors as SkNearestNeighbors

from fastknn import KNNTransformer, NearestNeighbors
from fastknn import _config, _self_graph
from fastknn._kernels.self_graph import GRAM_BLOCK, RANK_SORT_MAX, SEED_BEST, _nearest_of_lists, _smallest_of_sample
from fastknn._search import prepare_euclidean, search
from fastknn._self_graph import MIN_GRAM_BLOCKS, self_graph_fits, self_graph_search
from fastknn.datasets import load_mnist

# The fewest rows the self-graph search runs on.
N_ROWS = MIN_GRAM_BLOCKS * GRAM_BLOCK + 37


def assert_same_as_search(train, n_neighbors, n_jobs=None):
    euclidean_train = prepare_euclidean(train)
    assert self_graph_fits(train, euclidean_train)
    rdist, indices = self_graph_search(train, euclidean_train, n_neighbors, n_jobs=n_jobs)
    expected_rdist, expected_indices = search(train, train, n_neighbors, "euclidean", None)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(rdist, expected_rdist)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_neighbors", [1, 20, 91])
def test_random_rows(dtype, n_neighbors):
    rng = np.random.default_rng(0)
    assert_same_as_search(rng.normal(size=(N_ROWS, 10)).astype(dtype), n_neighbors)


def test_digits():
    """The packaged digits (660 of their 784 pixels vary), the t-SNE graph's k, one thread and two."""
    digits = load_mnist()["data"][:N_ROWS] / np.float32(255.0)
    assert_same_as_search(digits, 91, n_jobs=1)
    assert_same_as_search(digits, 91, n_jobs=2)


def test_duplicated_rows():
    """Each row three times: a row's copies tie at 0 and every pair of rows lists each other; the lower index wins."""
    rng = np.random.default_rng(5)
    rows = rng.normal(size=(N_ROWS // 3 + 1, 6)).astype(np.float32)
    assert_same_as_search(np.repeat(rows, 3, axis=0), 10)


def test_ties_overflowing_the_lists():
    """Integer rows in [-1, 1]: most distances tie, so the lists of rows that can be among the k
    nearest outgrow their room, and those rows take the blocked search; the lower index wins."""
    rng = np.random.default_rng(1)
    assert_same_as_search(rng.integers(-1, 2, size=(N_ROWS, 4)).astype(np.float32), 40)


def test_rows_far_from_the_origin():
    """Rows multiplied less their centre (``_search.MIN_CENTRE_SHARE``): the Gram matrix of the centred rows,
    the exact distances of the rows themselves, ties included."""
    rng = np.random.default_rng(2)
    train = (100 + rng.integers(-2, 3, size=(N_ROWS, 12))).astype(np.float32)
    assert prepare_euclidean(train).centre is not None
    assert_same_as_search(train, 15)
    expected_rdist, expected_indices = naive.sorted_neighbors(train, train, "euclidean")
    rdist, indices = self_graph_search(train, prepare_euclidean(train), 15)
    np.testing.assert_array_equal(indices, expected_indices[:, :15])
    np.testing.assert_array_equal(rdist, expected_rdist[:, :15])


def test_lists_without_room(monkeypatch):
    """Lists with room for k entries only: the rows whose list holds more take the blocked search,
    the others keep the pairs of distances computed once (some of their partners have no list)."""
    monkeypatch.setattr(_self_graph, "list_capacity", lambda n_neighbors: n_neighbors)
    counts = []
    gather = _self_graph._gather_candidates

    def recording_gather(first, last, *arguments):
        gather(first, last, *arguments)
        counts.append(arguments[-1][first:last].copy())

    monkeypatch.setattr(_self_graph, "_gather_candidates", recording_gather)
    assert_same_as_search(load_mnist()["data"][:N_ROWS] / np.float32(255.0), 91)
    without_list = np.concatenate(counts) < 0
    assert 0 < without_list.sum() < len(without_list) / 2


@pytest.mark.parametrize("n_neighbors", [60, 600])
def test_unrepresentative_sample(n_neighbors):
    """Every sixth row is near the origin, the others far, and the seeds' evenly spaced sample is
    made of the near rows only: a near row's seed holds too few rows and is doubled until it holds
    k (k=60), or, when even the whole sample's largest holds fewer (k=600), every row is a candidate."""
    rng = np.random.default_rng(2)
    train = rng.normal(size=(N_ROWS, 5)) + 100.0
    train[::6] = rng.normal(size=(len(train[::6]), 5))
    assert_same_as_search(train, n_neighbors)


@pytest.mark.parametrize("m", [1, 14, SEED_BEST, SEED_BEST + 1, 300])
def test_smallest_of_sample(m):
    values = np.random.default_rng(m).normal(size=300)
    expected = np.sort(values)[m - 1]
    best, scratch = np.empty(SEED_BEST), np.empty(300, dtype=np.int64)
    assert _smallest_of_sample(values.copy(), 300, m, best, scratch) == expected


@pytest.mark.parametrize("capacity", [150, RANK_SORT_MAX + 50])
def test_nearest_of_lists_orders_ties_by_row(capacity):
    """Lists in ascending row order, distances with ties: sorted by (distance, row), the first k kept
    (short lists by counting ranks, long ones by a Shell sort)."""
    rng = np.random.default_rng(3)
    n_rows, n_neighbors = 40, 30
    counts = rng.integers(n_neighbors, capacity + 1, size=n_rows)
    counts[5] = -1  # no list: left unwritten
    within_rows = np.empty((n_rows, capacity), dtype=np.int64)
    within_rdist = rng.integers(0, 8, size=(n_rows, capacity)).astype(np.float64)
    for i in range(n_rows):
        within_rows[i] = np.sort(rng.choice(1000, size=capacity, replace=False))
    expected_rows, expected_rdist = within_rows.copy(), within_rdist.copy()
    out_rdist = np.full((n_rows, n_neighbors), -1.0)
    out_index = np.full((n_rows, n_neighbors), -1, dtype=np.int64)
    _nearest_of_lists(0, n_rows, within_rows, counts, within_rdist, out_rdist, out_index)
    for i in range(n_rows):
        if counts[i] < 0:
            assert (out_index[i] == -1).all()
            continue
        order = np.lexsort((expected_rows[i, : counts[i]], expected_rdist[i, : counts[i]]))[:n_neighbors]
        np.testing.assert_array_equal(out_index[i], expected_rows[i, order])
        np.testing.assert_array_equal(out_rdist[i], expected_rdist[i, order])


def test_does_not_run_beyond_the_working_memory(monkeypatch):
    train = np.random.default_rng(3).normal(size=(N_ROWS, 3))
    euclidean_train = prepare_euclidean(train)
    assert self_graph_fits(train, euclidean_train)
    # The Gram matrix is in the product's dtype (float32 for these float64 rows, see _search.product_dtype).
    monkeypatch.setattr(_config, "WORKING_MEMORY_BYTES", N_ROWS * N_ROWS * euclidean_train.cross_train.itemsize - 1)
    assert not self_graph_fits(train, euclidean_train)
    assert not self_graph_fits(train[: GRAM_BLOCK * MIN_GRAM_BLOCKS - 1], euclidean_train)


def test_estimators_on_the_self_graph():
    """KNNTransformer.fit_transform and kneighbors(X=None) take the self graph: same answers as scikit-learn's."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(N_ROWS, 8))
    graph = KNNTransformer(n_neighbors=30, mode="distance", algorithm="brute").fit_transform(X)
    expected = KNeighborsTransformer(n_neighbors=30, mode="distance", algorithm="brute").fit_transform(X)
    np.testing.assert_array_equal(graph.indptr, expected.indptr)
    np.testing.assert_array_equal(graph.indices, expected.indices)
    np.testing.assert_allclose(graph.data, expected.data, rtol=1e-12, atol=1e-7)  # scikit-learn's self-distances may be residues
    nn = NearestNeighbors(n_neighbors=12, algorithm="brute").fit(X)
    distances, indices = nn.kneighbors()
    expected_distances, expected_indices = SkNearestNeighbors(n_neighbors=12, algorithm="brute").fit(X).kneighbors()
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-12)
