"""Tests for fastknn.RadiusNeighborsClassifier against scikit-learn's brute force
(KNNClassifier has its own file, tests/test_estimators.py)."""

import warnings

import numpy as np
import pytest
from sklearn.neighbors import RadiusNeighborsClassifier as SkRadiusNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn import RadiusNeighborsClassifier

LABEL_NAMES = np.array(["cat", "dog", "emu", "yak"])


@parametrize_with_checks([
    RadiusNeighborsClassifier(outlier_label="most_frequent"),
    RadiusNeighborsClassifier(radius=2.0, weights="distance", metric="manhattan", outlier_label="most_frequent"),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def inverse_square(distances):
    """``distances`` is an object array of each query's distances, as scikit-learn passes it."""
    weights = np.empty(len(distances), dtype=object)
    weights[:] = [1.0 / (d * d + 1.0) for d in distances]
    return weights


@pytest.mark.parametrize("weights", ["uniform", "distance", inverse_square])
@pytest.mark.parametrize("outlier_label", ["most_frequent", "emu", "ox"])
def test_matches_sklearn(random_split, weights, outlier_label):
    """String labels; queries far away have no neighbour and get the outlier label."""
    X_train, y_train, X_test, _ = random_split
    y_train = LABEL_NAMES[y_train]
    X_test = np.vstack([X_test, X_test[:3] + 50.0])
    ours = RadiusNeighborsClassifier(radius=1.5, weights=weights, outlier_label=outlier_label).fit(X_train, y_train)
    theirs = SkRadiusNeighborsClassifier(radius=1.5, weights=weights, outlier_label=outlier_label, algorithm="brute")
    theirs.fit(X_train, y_train)
    compared = np.arange(len(X_test))
    if weights == "distance":
        # scikit-learn's distance to a duplicate may be a residue, not 0.
        compared = np.flatnonzero(np.all(np.abs(X_test[:, None] - X_train[None]).sum(axis=2) > 0, axis=1))
    if outlier_label == "ox":
        with pytest.warns(UserWarning, match="not in training classes"):
            proba = ours.predict_proba(X_test)
        with pytest.warns(UserWarning):
            expected_proba = theirs.predict_proba(X_test)
    else:
        proba, expected_proba = ours.predict_proba(X_test), theirs.predict_proba(X_test)
    np.testing.assert_allclose(proba[compared], expected_proba[compared], rtol=0, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        np.testing.assert_array_equal(ours.predict(X_test)[compared], theirs.predict(X_test)[compared])
    assert ours.outlier_label_ == theirs.outlier_label_


def test_multi_output_targets(random_split):
    X_train, y_train, X_test, _ = random_split
    y = np.column_stack([y_train, (y_train + 1) % 3, np.arange(len(y_train)) % 2])
    ours = RadiusNeighborsClassifier(radius=2.0, outlier_label=[0, 1, 0]).fit(X_train, y)
    theirs = SkRadiusNeighborsClassifier(radius=2.0, outlier_label=[0, 1, 0], algorithm="brute").fit(X_train, y)
    queries = np.vstack([X_test, X_test[:2] + 40.0])
    np.testing.assert_array_equal(ours.predict(queries), theirs.predict(queries))
    for got, expected in zip(ours.predict_proba(queries), theirs.predict_proba(queries)):
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_empty_neighbourhood_without_outlier_label(random_split):
    X_train, y_train, X_test, _ = random_split
    clf = RadiusNeighborsClassifier(radius=0.1).fit(X_train, y_train)
    with pytest.raises(ValueError, match="No neighbors found for test samples"):
        clf.predict(X_test + 30.0)


def test_bad_outlier_labels(random_split):
    X_train, y_train, _, _ = random_split
    with pytest.raises(TypeError, match="inconsistent with classes"):
        RadiusNeighborsClassifier(outlier_label="cat").fit(X_train, y_train)
    with pytest.raises(ValueError, match="inconsistent with the output length"):
        RadiusNeighborsClassifier(outlier_label=[0, 1]).fit(X_train, y_train)
