"""Tests for fastknn.NearestNeighbors against scikit-learn's brute force and tests/naive.py."""

import naive
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors as SkNearestNeighbors
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn import NearestNeighbors


@parametrize_with_checks([NearestNeighbors(), NearestNeighbors(metric="manhattan", algorithm="pruned")])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 2), ("minkowski", 3)])
def test_kneighbors_and_radius_match_sklearn(random_split, metric, p):
    """Continuous data (with an all-zero row and duplicates): same neighbours, distances to 1e-9."""
    X_train, _, X_test, _ = random_split
    ours = NearestNeighbors(n_neighbors=6, radius=2.5, metric=metric, p=p).fit(X_train)
    theirs = SkNearestNeighbors(n_neighbors=6, radius=2.5, metric=metric, p=p, algorithm="brute").fit(X_train)
    for queries in (X_test, None):
        dist, ind = ours.kneighbors(queries)
        ref_dist, ref_ind = theirs.kneighbors(queries)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-9, atol=1e-7)
        tie_free = ~np.isclose(dist[:, :-1], dist[:, 1:], rtol=1e-9).any(axis=1)
        np.testing.assert_array_equal(ind[tie_free], ref_ind[tie_free])
        for sort_results in (False, True):
            dist, ind = ours.radius_neighbors(queries, sort_results=sort_results)
            ref_dist, ref_ind = theirs.radius_neighbors(queries, sort_results=sort_results)
            for d, i, rd, ri in zip(dist, ind, ref_dist, ref_ind):
                np.testing.assert_array_equal(np.sort(i), np.sort(ri))
                if not sort_results:
                    np.testing.assert_array_equal(i, ri)  # training-index order, as scikit-learn
                np.testing.assert_allclose(np.sort(d), np.sort(rd), rtol=1e-9, atol=1e-7)
                assert np.all(np.diff(d) >= 0) or not sort_results


@pytest.mark.parametrize("algorithm", ["brute", "pruned"])
def test_digits_radius_neighbours_match_naive(mnist_uint8, algorithm):
    """Raw uint8 digits: integer distances, so ties and rows exactly at the radius abound."""
    X_train, _, X_test, _ = mnist_uint8
    reduced = naive.rdist(X_test, X_train, "euclidean")
    radius = float(np.sqrt(reduced[0, np.argsort(reduced[0])[10]]))  # exactly the 11th distance of query 0
    nn = NearestNeighbors(radius=radius, algorithm=algorithm).fit(X_train)
    dist, ind = nn.radius_neighbors(X_test, sort_results=True)
    expected_dist, expected_ind = naive.radius_neighbors(X_test, X_train, radius, "euclidean")
    for d, i, ed, ei in zip(dist, ind, expected_dist, expected_ind):
        order = np.lexsort((ei, ed))
        np.testing.assert_array_equal(i, ei[order])
        np.testing.assert_allclose(d, ed[order], rtol=1e-12)
    assert len(ind[0]) >= 11


def test_radius_neighbors_graph_matches_sklearn(random_split):
    X_train, _, X_test, _ = random_split
    ours = NearestNeighbors(radius=2.0).fit(X_train)
    theirs = SkNearestNeighbors(radius=2.0, algorithm="brute").fit(X_train)
    for mode in ("connectivity", "distance"):
        graph = ours.radius_neighbors_graph(X_test, mode=mode)
        expected = theirs.radius_neighbors_graph(X_test, mode=mode)
        np.testing.assert_array_equal(graph.indptr, expected.indptr)
        np.testing.assert_array_equal(graph.indices, expected.indices)
        np.testing.assert_allclose(graph.data, expected.data, rtol=1e-9, atol=1e-7)
