"""Tests for fastknn._self_graph: the graph of a training set with itself equals the brute-force search's, to the bit."""

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsTransformer, NearestNeighbors as SkNearestNeighbors

from fastknn import KNNTransformer, NearestNeighbors
from fastknn import _config
from fastknn._kernels.self_graph import GRAM_BLOCK, SEED_SAMPLE, _seed_bound
from fastknn._kernels.topk import NO_BOUND
from fastknn._search import prepare_euclidean, rounding_error_bound, search
from fastknn._self_graph import MIN_GRAM_BLOCKS, self_graph_fits, self_graph_search

# The fewest rows the self-graph search runs on.
N_ROWS = MIN_GRAM_BLOCKS * GRAM_BLOCK + 37


def assert_same_as_search(train, n_neighbors):
    euclidean_train = prepare_euclidean(train)
    assert self_graph_fits(train, euclidean_train)
    rdist, indices = self_graph_search(train, euclidean_train, n_neighbors)
    expected_rdist, expected_indices = search(train, train, n_neighbors, "euclidean", None)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(rdist, expected_rdist)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_neighbors", [1, 20, 91])
def test_random_rows(dtype, n_neighbors):
    rng = np.random.default_rng(0)
    assert_same_as_search(rng.normal(size=(N_ROWS, 10)).astype(dtype), n_neighbors)


def test_ties_and_duplicates():
    """Integer rows in [-1, 1]: most distances tie, exact duplicates abound; the lower index wins."""
    rng = np.random.default_rng(1)
    assert_same_as_search(rng.integers(-1, 2, size=(N_ROWS, 4)).astype(np.float32), 40)


def test_unrepresentative_sample():
    """Every sixth row is near the origin, the others far: the seed of a near row, taken on
    an evenly spaced sample made only of near rows, holds fewer than k rows and is dropped;
    the scan then starts unbounded, and the answer stays the same."""
    rng = np.random.default_rng(2)
    train = rng.normal(size=(N_ROWS, 5)) + 100.0
    train[::6] = rng.normal(size=(len(train[::6]), 5))
    sqnorms = prepare_euclidean(train).sqnorms
    relative_error, absolute_error = rounding_error_bound(train.dtype, 5, "euclidean", 0.0)
    train_upper = sqnorms * (1.0 + relative_error) + absolute_error
    sample, scratch = np.empty(SEED_SAMPLE), np.empty(SEED_SAMPLE, dtype=np.int64)
    assert _seed_bound(train @ train[0], train_upper, 60, sample, scratch) == NO_BOUND
    assert _seed_bound(train @ train[1], train_upper, 60, sample, scratch) < NO_BOUND
    assert_same_as_search(train, 60)


def test_does_not_run_beyond_the_working_memory(monkeypatch):
    train = np.random.default_rng(3).normal(size=(N_ROWS, 3))
    euclidean_train = prepare_euclidean(train)
    assert self_graph_fits(train, euclidean_train)
    monkeypatch.setattr(_config, "WORKING_MEMORY_BYTES", N_ROWS * N_ROWS * 8 - 1)
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
