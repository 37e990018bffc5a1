"""Tests for fastknn.KNNRegressor and RadiusNeighborsRegressor against scikit-learn's brute
force and tests/naive.py."""

import naive
import numpy as np
import pytest
from sklearn.neighbors import KNeighborsRegressor, RadiusNeighborsRegressor as SkRadiusNeighborsRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn import KNNRegressor, RadiusNeighborsRegressor


@parametrize_with_checks([
    KNNRegressor(),
    KNNRegressor(weights="distance", metric="manhattan"),
    RadiusNeighborsRegressor(),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def exp_weights(distances):
    return np.exp(-distances)


@pytest.mark.parametrize("weights", ["uniform", "distance", exp_weights])
@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 2), ("minkowski", 3)])
def test_knn_regressor_matches_sklearn(random_split, metric, p, weights):
    """Continuous data with duplicates and an all-zero row; a 2-D target."""
    X_train, _, X_test, _ = random_split
    rng = np.random.default_rng(1)
    y_train = rng.normal(size=(len(X_train), 2))
    ours = KNNRegressor(n_neighbors=5, weights=weights, metric=metric, p=p).fit(X_train, y_train).predict(X_test)
    theirs = KNeighborsRegressor(n_neighbors=5, weights=weights, metric=metric, p=p, algorithm="brute")
    expected = theirs.fit(X_train, y_train).predict(X_test)
    if weights == "distance":
        # scikit-learn's Euclidean distance to a duplicate may be a small residue, not 0.
        distances, _ = naive.kneighbors(X_test, X_train, 5, metric, p)
        compared = ~(distances == 0).any(axis=1)
        ours, expected = ours[compared], expected[compared]
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_knn_regressor_ties_follow_training_index(integer_split, weights):
    """Integer data: ties everywhere, neighbours at distance 0; naive orders ties by index too."""
    X_train, y_train, X_test, _ = integer_split
    for n_neighbors in (1, 4, len(X_train)):
        got = KNNRegressor(n_neighbors=n_neighbors, weights=weights).fit(X_train, y_train).predict(X_test)
        expected = naive.regress(X_train, y_train, X_test, n_neighbors, "euclidean", weights=weights)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_knn_regressor_on_digits_matches_sklearn(mnist_split):
    X_train, y_train, X_test, _ = mnist_split
    y = y_train.astype(np.float64)
    ours = KNNRegressor(n_neighbors=5).fit(X_train, y).predict(X_test)
    expected = KNeighborsRegressor(n_neighbors=5, algorithm="brute").fit(X_train, y).predict(X_test)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)


def rowwise_exp_weights(distances):
    """For radius estimators: ``distances`` is an object array of each query's distances."""
    return np.array([np.exp(-d) for d in distances], dtype=object)


@pytest.mark.parametrize("weights", ["uniform", "distance", rowwise_exp_weights])
def test_radius_regressor_matches_sklearn(random_split, weights):
    X_train, _, X_test, _ = random_split
    rng = np.random.default_rng(2)
    y_train = rng.normal(size=(len(X_train), 3))
    ours = RadiusNeighborsRegressor(radius=2.5, weights=weights).fit(X_train, y_train).predict(X_test)
    theirs = SkRadiusNeighborsRegressor(radius=2.5, weights=weights, algorithm="brute")
    expected = theirs.fit(X_train, y_train).predict(X_test)
    if weights == "distance":
        distances, _ = naive.kneighbors(X_test, X_train, 1, "euclidean")
        compared = distances[:, 0] > 0
        ours, expected = ours[compared], expected[compared]
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


def test_radius_regressor_weights_that_sum_to_zero_raise_as_scikit_learn(random_split):
    # They predicted NaN with the warning meant for queries without neighbours.
    X_train, y_train, X_test, _ = random_split

    def zero_weights(distances):
        return np.array([np.zeros_like(d) for d in distances] + [None], dtype=object)[:-1]

    for cls in (RadiusNeighborsRegressor, SkRadiusNeighborsRegressor):
        reg = cls(radius=2.5, weights=zero_weights).fit(X_train, y_train.astype(float))
        with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
            reg.predict(X_test)


def test_radius_regressor_without_neighbours_predicts_nan(random_split):
    X_train, _, X_test, _ = random_split
    y_train = np.arange(len(X_train), dtype=np.float64)
    reg = RadiusNeighborsRegressor(radius=0.5).fit(X_train, y_train)
    with pytest.warns(UserWarning, match="no neighbors within specified radius"):
        predictions = reg.predict(X_test + 10.0)
    assert np.isnan(predictions).all()
    expected = SkRadiusNeighborsRegressor(radius=0.5, algorithm="brute").fit(X_train, y_train)
    with pytest.warns(UserWarning):
        np.testing.assert_array_equal(np.isnan(expected.predict(X_test)), np.isnan(reg.predict(X_test)))
