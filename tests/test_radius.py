"""Tests for the radius search driver (fastknn/_radius.py, _pruning.pruned_radius_search)
and its kernels, against tests/naive.py."""

import naive
import numpy as np
import pytest

from fastknn import _search
from fastknn._pruning import build_index, pruned_radius_search
from fastknn._radius import radius_search, reduced_radius
from fastknn._search import resolve_metric

METRICS = [("euclidean", 2), ("manhattan", 2), ("chebyshev", 2), ("minkowski", 3)]


def flat_to_lists(rdist, rows, offsets, metric, p):
    distances, indices = [], []
    for i in range(offsets.shape[0] - 1):
        segment = slice(offsets[i], offsets[i + 1])
        indices.append(rows[segment])
        distances.append(naive.to_distance(rdist[segment], metric, p))
    return distances, indices


def run(method, queries, train, radius, metric, p, sort_distances=False):
    name, power = resolve_metric(metric, p)
    reduced = reduced_radius(radius, name, power)
    if method == "brute":
        found = radius_search(queries, train, reduced, name, power, sort_distances=sort_distances)
    else:
        index = build_index(train, name, power)
        found = pruned_radius_search(queries, train, index, reduced, sort_distances=sort_distances)
    return flat_to_lists(*found, metric, p)


@pytest.fixture(scope="session")
def grid_split():
    """Integer points in [-3, 3]^5, float64: many rows exactly at integer radii, exact distances."""
    rng = np.random.default_rng(3)
    train = rng.integers(-3, 4, size=(400, 5)).astype(np.float64)
    queries = rng.integers(-3, 4, size=(40, 5)).astype(np.float64)
    return train, queries


@pytest.mark.parametrize("method", ["brute", "pruned"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric, p", METRICS)
def test_rows_exactly_at_the_radius_count(grid_split, method, dtype, metric, p):
    """Integer data: every distance is exact, and many sit exactly on the radius."""
    train, queries = (a.astype(dtype) for a in grid_split)
    radius = 3.0 if metric != "chebyshev" else 1.0
    distances, indices = run(method, queries, train, radius, metric, p)
    expected_distances, expected_indices = naive.radius_neighbors(queries, train, radius, metric, p)
    on_boundary = 0
    for got_d, got_i, want_d, want_i in zip(distances, indices, expected_distances, expected_indices):
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-12)
        on_boundary += np.sum(np.isclose(want_d, radius, rtol=1e-12, atol=0))
    assert on_boundary > 0


@pytest.mark.parametrize("method", ["brute", "pruned"])
def test_sorted_by_distance_ties_by_index(grid_split, method):
    train, queries = grid_split
    distances, indices = run(method, queries, train, 2.5, "manhattan", 2, sort_distances=True)
    _, expected_indices = naive.radius_neighbors(queries, train, 2.5, "manhattan")
    for got_d, got_i, want_i in zip(distances, indices, expected_indices):
        np.testing.assert_array_equal(np.sort(got_i), want_i)
        order = np.lexsort((got_i, got_d))
        np.testing.assert_array_equal(order, np.arange(len(got_i)))


@pytest.mark.parametrize("method", ["brute", "pruned"])
def test_digits_match_naive(mnist_split, method):
    """Continuous float32 data in 784 dimensions, Euclidean (PCA bounds) and Manhattan (pooled)."""
    X_train, _, X_test, _ = mnist_split
    queries = X_test[:40]
    for metric, radius in (("euclidean", 6.0), ("manhattan", 45.0)):
        distances, indices = run(method, queries, X_train, radius, metric, 2)
        expected_distances, expected_indices = naive.radius_neighbors(queries, X_train, radius, metric)
        assert sum(len(i) for i in expected_indices) > 40
        for got_d, got_i, want_d, want_i in zip(distances, indices, expected_distances, expected_indices):
            np.testing.assert_array_equal(got_i, want_i)
            np.testing.assert_allclose(got_d, want_d, rtol=1e-6)


def test_buffers_grow_past_their_first_size(grid_split, monkeypatch):
    """A radius that holds every training row: far more rows than the buffers start with."""
    train, queries = grid_split
    for metric in ("euclidean", "manhattan"):
        distances, indices = run("brute", queries, train, 100.0, metric, 2)
        assert all(len(i) == len(train) for i in indices)
        np.testing.assert_array_equal(indices[0], np.arange(len(train)))


def test_small_working_memory_gives_the_same_rows(grid_split, monkeypatch):
    """Chunks of a few queries for the fast pass of non-Euclidean metrics."""
    train, queries = grid_split
    expected = run("brute", queries, train, 3.0, "manhattan", 2)
    monkeypatch.setattr(_search, "WORKING_MEMORY_BYTES", 3 * len(train) * train.itemsize)  # 3 queries a chunk
    got = run("brute", queries, train, 3.0, "manhattan", 2)
    for a, b in zip(got[1], expected[1]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["brute", "pruned"])
def test_overflowing_data_is_computed_exactly(method):
    """Values whose fast pass would overflow float32: every distance is then exact in float64."""
    train = np.array([[3e38, 0.0], [-3e38, 0.0], [0.0, 1.0], [0.0, 2.0]], dtype=np.float32)
    queries = np.array([[0.0, 0.0]], dtype=np.float32)
    distances, indices = run(method, queries, train, 1.5, "manhattan", 2)
    np.testing.assert_array_equal(indices[0], [2])


def test_no_row_within_the_radius(grid_split):
    train, queries = grid_split
    distances, indices = run("brute", queries + 100.0, train, 1.0, "euclidean", 2)
    assert all(len(i) == 0 for i in indices) and all(d.dtype == np.float64 for d in distances)


@pytest.mark.parametrize(
    "offset, constant_value", [(0.0, 1.0), (0.0, 5.0), (1e16, 1e16 + 6.0), (100.0, 1e5 + 0.3)]
)
def test_constant_columns_left_out_of_the_product(offset, constant_value):
    """Constant training columns are left out of the product (``_search.MIN_CONSTANT_FRACTION``) but their values
    were still in the norms: the Euclidean bound then missed 2 q.t over them, which the k search's ranking
    ignores but the radius's fixed threshold does not, and rows within the radius went missing (an intercept
    column of ones, 200 pairs found of 214). Now those columns are taken less their value, exactly 0."""
    rng = np.random.default_rng(8)
    train = offset + 2.0 * rng.integers(0, 3, size=(400, 20)).astype(np.float64)
    train[:, :2] = constant_value
    queries = train[:30].copy()
    queries[:15, :2] += 4.0  # as far again from every row along the constant columns
    reduced = naive.rdist(queries, train, "euclidean")
    radius = float(np.sqrt(np.median(np.sort(reduced, axis=1)[:, 3])))
    rdist, rows, offsets = radius_search(queries, train, reduced_radius(radius, "euclidean", None), "euclidean", None)
    for query in range(len(queries)):
        np.testing.assert_array_equal(
            np.sort(rows[offsets[query] : offsets[query + 1]]),
            np.flatnonzero(reduced[query] <= radius * radius),
        )
