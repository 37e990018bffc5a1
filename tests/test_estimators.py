"""Tests for fastknn.KNNClassifier against scikit-learn's brute-force
KNeighborsClassifier, tests/naive.py and the scikit-learn estimator checks."""

import doctest
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import naive
import numba
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import pairwise_distances
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastknn._classification
from fastknn import KNNClassifier, _search

METRICS, ALIASES, CANONICAL_METRICS = naive.METRICS, naive.ALIASES, naive.CANONICAL_METRICS
EXACT_METRICS = [("euclidean", 2), ("manhattan", 2), ("chebyshev", 2), ("minkowski", 3), ("minkowski", 4)]

LABEL_NAMES = np.array(["cat", "dog", "emu", "yak"])

# A boundary gap below this (relative) counts as a tie when comparing with
# scikit-learn, whose float64 distances carry their own rounding error.
TIE_RTOL = 1e-9


# -------------------------------------------------------------------------
# scikit-learn's estimator checks
# -------------------------------------------------------------------------

ESTIMATORS = [
    KNNClassifier(),
    KNNClassifier(weights="distance", metric="manhattan"),
    KNNClassifier(metric="minkowski", p=3),
    KNNClassifier(metric="chebyshev"),
]

# Checks that skip by design, and why.
SKIPPED_CHECKS = {
    "check_array_api_input": (
        "needs SCIPY_ARRAY_API=1 set before scipy is first imported, which would change "
        "scipy for the whole session; test_array_api_dispatch_with_numpy runs it in a subprocess"
    ),
    "check_classifiers_multilabel_output_format_decision_function": (
        "KNNClassifier has no decision_function (nor has KNeighborsClassifier)"
    ),
}


def check_name(check):
    return getattr(check, "func", check).__name__


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    if check_name(check) in SKIPPED_CHECKS and not os.environ.get("SCIPY_ARRAY_API"):
        pytest.skip(SKIPPED_CHECKS[check_name(check)])
    check(estimator)


def test_array_api_dispatch_with_numpy():
    """scikit-learn's array-API check on numpy input, in a fresh interpreter."""
    code = textwrap.dedent(
        """
        from sklearn.utils.estimator_checks import check_array_api_input
        from fastknn import KNNClassifier
        for estimator in (KNNClassifier(), KNNClassifier(weights="distance", metric="manhattan")):
            check_array_api_input(
                "KNNClassifier", estimator, array_namespace="numpy", expect_only_array_outputs=False
            )
        """
    )
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_doctests():
    result = doctest.testmod(fastknn._classification, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


# -------------------------------------------------------------------------
# Agreement with scikit-learn and the naive reference
# -------------------------------------------------------------------------


def compare_with_oracles(clf, X_train, y_train, X_test, n_neighbors, metric, p, sk_metric, sk_p, weights):
    """Fit ``clf``; check predict / predict_proba against naive (all queries)
    and scikit-learn (queries without a boundary tie).

    scikit-learn gets the same values in float64, so that its distances, and
    hence its distance weights, are accurate enough for a 1e-12 comparison.

    Returns the fraction of queries compared with scikit-learn.
    """
    clf.fit(X_train, y_train)
    predictions = clf.predict(X_test)
    proba = clf.predict_proba(X_test)

    classes, expected_predictions, expected_proba = naive.classify(
        X_train, y_train, X_test, n_neighbors, metric, p, weights
    )
    np.testing.assert_array_equal(clf.classes_, classes)
    np.testing.assert_array_equal(predictions, expected_predictions)
    np.testing.assert_allclose(proba, expected_proba, rtol=0, atol=1e-12)

    sk = KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights, algorithm="brute", metric=sk_metric, p=sk_p)
    sk.fit(np.asarray(X_train, dtype=np.float64), y_train)
    X_test64 = np.asarray(X_test, dtype=np.float64)
    compared = ~naive.boundary_ties(X_test, X_train, n_neighbors, metric, p, rtol=TIE_RTOL)
    if weights == "distance":
        # scikit-learn's Euclidean distances come from a matrix product and
        # may leave a small residue instead of 0, which breaks its own
        # zero-distance rule; naive checked those queries above.
        distances, _ = naive.kneighbors(X_test, X_train, n_neighbors, metric, p)
        compared &= ~(distances == 0).any(axis=1)
    np.testing.assert_array_equal(predictions[compared], sk.predict(X_test64[compared]))
    np.testing.assert_allclose(proba[compared], sk.predict_proba(X_test64[compared]), rtol=0, atol=1e-12)
    return compared.mean()


@pytest.mark.parametrize("n_neighbors", [1, 3, 25, "n_train"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric, p, sk_metric, sk_p", METRICS)
def test_matches_sklearn(random_split, metric, p, sk_metric, sk_p, dtype, weights, n_neighbors):
    """Random data with an all-zero row and duplicates; string labels."""
    X_train, y_train, X_test, _ = random_split
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    y_train = LABEL_NAMES[y_train]
    if n_neighbors == "n_train":
        n_neighbors = len(X_train)
    clf = KNNClassifier(n_neighbors=n_neighbors, weights=weights, metric=metric, p=p)
    fraction = compare_with_oracles(clf, X_train, y_train, X_test, n_neighbors, metric, p, sk_metric, sk_p, weights)
    assert fraction > 0.7
    assert clf._fit_X.dtype == dtype


@pytest.mark.parametrize("n_neighbors", [1, 25])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric, p, sk_metric, sk_p", ALIASES)
def test_aliases_match_sklearn(random_split, metric, p, sk_metric, sk_p, weights, n_neighbors):
    """Aliases and minkowski with p = 1, 2, inf, on float32 data."""
    X_train, y_train, X_test, _ = random_split
    X_train, X_test = X_train.astype(np.float32), X_test.astype(np.float32)
    clf = KNNClassifier(n_neighbors=n_neighbors, weights=weights, metric=metric, p=p)
    compare_with_oracles(clf, X_train, y_train, X_test, n_neighbors, metric, p, sk_metric, sk_p, weights)
    theirs = KNeighborsClassifier(n_neighbors=n_neighbors, metric=metric, p=p).fit(X_train, y_train)
    assert clf.effective_metric_ == theirs.effective_metric_ and clf.effective_metric_params_ == {}


def sklearn_precomputed(X_train, y_train, X_test, metric, p):
    """A function fitting scikit-learn's classifier on its own precomputed
    distances (computed once, reused for every k and weighting)."""
    kwargs = {"p": p} if metric == "minkowski" else {}
    X_train64, X_test64 = X_train.astype(np.float64), X_test.astype(np.float64)
    train_distances = pairwise_distances(X_train64, metric=metric, **kwargs)
    test_distances = pairwise_distances(X_test64, X_train64, metric=metric, **kwargs)

    def fit(n_neighbors, weights):
        sk = KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights, metric="precomputed")
        return sk.fit(train_distances, y_train), test_distances

    return fit


@pytest.mark.parametrize("metric, p", CANONICAL_METRICS)
def test_real_digits_match_sklearn(mnist_split, metric, p):
    """Packaged MNIST digits, float32 in [0, 1]."""
    X_train, y_train, X_test, _ = mnist_split
    if metric == "minkowski":  # pow is slow in every implementation: fewer digits
        X_train, y_train, X_test = X_train[:300], y_train[:300], X_test[:40]
    else:
        X_test = X_test[:60]
    reduced, _ = naive.sorted_neighbors(X_test, X_train, metric, p)
    sk_fit = sklearn_precomputed(X_train, y_train, X_test, metric, p)
    n_compared = 0
    for n_neighbors in (1, 3, 25):
        ties = reduced[:, n_neighbors] <= reduced[:, n_neighbors - 1] * (1 + TIE_RTOL)
        for weights in ("uniform", "distance"):
            clf = KNNClassifier(n_neighbors=n_neighbors, weights=weights, metric=metric, p=p).fit(X_train, y_train)
            assert clf._fit_X.dtype == np.float32
            sk, test_distances = sk_fit(n_neighbors, weights)
            np.testing.assert_array_equal(clf.predict(X_test)[~ties], sk.predict(test_distances)[~ties])
            np.testing.assert_allclose(
                clf.predict_proba(X_test)[~ties], sk.predict_proba(test_distances)[~ties], rtol=0, atol=1e-12
            )
            n_compared += (~ties).sum()
    # Chebyshev distances on [0, 1] pixels are nearly all 1: ties everywhere.
    if metric != "chebyshev":
        assert n_compared > 0.9 * 6 * len(X_test)


@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 2), ("chebyshev", 2)])
def test_raw_uint8_digits(mnist_uint8, metric, p):
    """uint8 pixels are stored as float32 (exactly); integer distances tie
    often and the neighbours, ties by index, are exactly naive's."""
    X_train, y_train, X_test, _ = mnist_uint8
    clf = KNNClassifier(n_neighbors=5, metric=metric, p=p).fit(X_train, y_train)
    assert clf._fit_X.dtype == np.float32
    np.testing.assert_array_equal(clf._fit_X, X_train)
    distances, indices = clf.kneighbors(X_test)
    expected_distances, expected_indices = naive.kneighbors(X_test, X_train, 5, metric, p)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_array_equal(distances, expected_distances)
    _, expected_predictions, expected_proba = naive.classify(X_train, y_train, X_test, 5, metric, p)
    np.testing.assert_array_equal(clf.predict(X_test), expected_predictions)
    np.testing.assert_array_equal(clf.predict_proba(X_test), expected_proba)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_property_predictions_equal_naive(data):
    """Integer data with duplicates and ties: predictions and probabilities
    are naive's (ties by training index, then by class order). Metrics whose
    distances are exact floats on such data, so that ties are exact."""
    n_train = data.draw(st.integers(1, 15), label="n_train")
    n_features = data.draw(st.integers(1, 3), label="n_features")
    metric, p = data.draw(st.sampled_from(EXACT_METRICS), label="metric")
    weights = data.draw(st.sampled_from(["uniform", "distance"]), label="weights")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    X_train = rng.integers(-2, 3, size=(n_train, n_features)).astype(np.float64)
    y_train = rng.integers(0, 3, size=n_train)
    X_test = rng.integers(-2, 3, size=(5, n_features)).astype(np.float64)
    n_neighbors = data.draw(st.integers(1, n_train), label="n_neighbors")
    clf = KNNClassifier(n_neighbors=n_neighbors, weights=weights, metric=metric, p=p).fit(X_train, y_train)
    classes, predictions, proba = naive.classify(X_train, y_train, X_test, n_neighbors, metric, p, weights)
    np.testing.assert_array_equal(clf.predict(X_test), predictions)
    np.testing.assert_allclose(clf.predict_proba(X_test), proba, rtol=0, atol=1e-12)


def test_vote_ties_go_to_the_first_class():
    X = [[0.0], [2.0], [10.0], [12.0]]
    y = ["b", "a", "b", "a"]
    for weights in ("uniform", "distance"):
        clf = KNNClassifier(n_neighbors=2, weights=weights).fit(X, y)
        sk = KNeighborsClassifier(n_neighbors=2, weights=weights, algorithm="brute").fit(X, y)
        queries = [[1.0], [11.0]]
        np.testing.assert_array_equal(clf.predict(queries), ["a", "a"])
        np.testing.assert_array_equal(clf.predict(queries), sk.predict(queries))
        np.testing.assert_array_equal(clf.predict_proba(queries), [[0.5, 0.5], [0.5, 0.5]])


def test_zero_distance_neighbours_outvote_the_rest():
    X = [[0.0], [0.0], [1.0], [1.0], [1.0]]
    y = [1, 1, 0, 0, 0]
    clf = KNNClassifier(n_neighbors=5, weights="distance").fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba([[0.0]]), [[0.0, 1.0]])
    np.testing.assert_array_equal(clf.predict([[0.0], [0.9]]), [1, 0])


def test_weights_callable_matches_sklearn(random_split):
    X_train, y_train, X_test, _ = random_split
    X_test = X_test[:40]  # no exact duplicates of training rows

    def weights(distances):
        return np.exp(-distances)

    clf = KNNClassifier(n_neighbors=7, weights=weights).fit(X_train, y_train)
    sk = KNeighborsClassifier(n_neighbors=7, weights=weights, algorithm="brute").fit(X_train, y_train)
    np.testing.assert_allclose(clf.predict_proba(X_test), sk.predict_proba(X_test), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X_test), sk.predict(X_test))


def test_weights_callable_errors(random_split):
    X_train, y_train, X_test, _ = random_split
    clf = KNNClassifier(n_neighbors=3, weights=lambda d: np.zeros_like(d)).fit(X_train, y_train)
    with pytest.raises(ValueError, match="getting zero weights"):
        clf.predict(X_test)
    clf = KNNClassifier(n_neighbors=3, weights=lambda d: d[:, :1]).fit(X_train, y_train)
    with pytest.raises(ValueError, match="weights callable returned shape"):
        clf.predict(X_test)


def test_multi_output_matches_sklearn(random_split):
    X_train, y_train, X_test, _ = random_split
    X_test = X_test[:40]
    Y = np.column_stack([LABEL_NAMES[y_train], (y_train * 7) % 5])
    clf = KNNClassifier(n_neighbors=4, weights="distance").fit(X_train, Y)
    sk = KNeighborsClassifier(n_neighbors=4, weights="distance", algorithm="brute").fit(X_train, Y)
    np.testing.assert_array_equal(clf.predict(X_test), sk.predict(X_test))
    for got, expected in zip(clf.predict_proba(X_test), sk.predict_proba(X_test)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert clf.outputs_2d_ and len(clf.classes_) == 2


# -------------------------------------------------------------------------
# Fitted state, dtypes, threads
# -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, expected",
    [(np.float32, np.float32), (np.float64, np.float64), (np.uint8, np.float32), (np.int64, np.float64)],
)
def test_training_dtype(dtype, expected):
    X = np.arange(12).reshape(6, 2).astype(dtype)
    clf = KNNClassifier(n_neighbors=1).fit(X, [0, 0, 0, 1, 1, 1])
    assert clf._fit_X.dtype == expected
    assert clf._fit_X.flags.c_contiguous
    np.testing.assert_array_equal(clf.predict(X), [0, 0, 0, 1, 1, 1])


def test_fitted_attributes(random_split):
    X_train, y_train, _, _ = random_split
    clf = KNNClassifier(metric="minkowski", p=3).fit(X_train, LABEL_NAMES[y_train])
    assert clf.n_features_in_ == X_train.shape[1]
    assert clf.n_samples_fit_ == len(X_train)
    assert clf.effective_metric_ == "minkowski" and clf.effective_metric_params_ == {"p": 3.0}
    np.testing.assert_array_equal(clf.classes_, LABEL_NAMES[:3])
    assert not clf.outputs_2d_
    for p, name in [(1, "manhattan"), (2, "euclidean"), (np.inf, "chebyshev")]:
        clf = KNNClassifier(metric="minkowski", p=p).fit(X_train, y_train)
        assert clf.effective_metric_ == name and clf.effective_metric_params_ == {}


def test_minkowski_p_inf_is_accepted(random_split):
    """scikit-learn accepts p=inf and the docstring promises the Chebyshev
    kernel for it; the parameter constraint must not refuse it."""
    X_train, y_train, X_test, _ = random_split
    clf = KNNClassifier(metric="minkowski", p=np.inf).fit(X_train, y_train)
    reference = KNNClassifier(metric="chebyshev").fit(X_train, y_train)
    np.testing.assert_array_equal(clf.kneighbors(X_test)[1], reference.kneighbors(X_test)[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_memory_layout_does_not_change_results(random_split, dtype):
    """Fortran-ordered and strided training data and queries."""
    X_train, y_train, X_test, _ = random_split
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    for train_rows, columns in [(slice(None), slice(None)), (slice(None, None, 2), slice(None, None, 2))]:
        train = np.ascontiguousarray(X_train[train_rows, columns])
        queries = np.ascontiguousarray(X_test[:, columns])
        labels = y_train[train_rows]
        reference = KNNClassifier(n_neighbors=5, weights="distance").fit(train, labels)
        expected = reference.kneighbors(queries), reference.predict_proba(queries)
        for layout in (np.asfortranarray, lambda a: a):
            clf = KNNClassifier(n_neighbors=5, weights="distance").fit(layout(X_train)[train_rows, columns], labels)
            assert clf._fit_X.dtype == dtype and clf._fit_X.flags.c_contiguous
            got = clf.kneighbors(layout(X_test)[:, columns]), clf.predict_proba(layout(X_test)[:, columns])
            np.testing.assert_array_equal(got[0][0], expected[0][0])
            np.testing.assert_array_equal(got[0][1], expected[0][1])
            np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_duplicates_are_at_distance_exactly_zero(metric):
    """float32 data with large norms (values ~1e3): a query equal to a
    training row is at distance exactly 0, and its distance weight wins."""
    rng = np.random.default_rng(2)
    X = (1e3 + rng.normal(scale=20.0, size=(60, 50))).astype(np.float32)
    y = rng.integers(0, 3, size=60)
    clf = KNNClassifier(n_neighbors=4, weights="distance", metric=metric).fit(X, y)
    distances, indices = clf.kneighbors(X)
    np.testing.assert_array_equal(distances[:, 0], 0.0)
    np.testing.assert_array_equal(indices[:, 0], np.arange(60))
    assert np.all(distances[:, 1:] > 1.0)
    np.testing.assert_array_equal(clf.predict(X), y)
    np.testing.assert_array_equal(clf.predict_proba(X), np.eye(3)[y])


def test_tiny_working_memory_gives_the_same_predictions(monkeypatch, mnist_split):
    """Queries are processed in chunks sized by the working memory; the
    chunking does not change any result."""
    X_train, y_train, X_test, _ = mnist_split
    X_test = X_test[:50]
    clf = KNNClassifier(n_neighbors=5, weights="distance").fit(X_train, y_train)
    expected = clf.kneighbors(X_test), clf.predict_proba(X_test)
    monkeypatch.setattr(_search, "WORKING_MEMORY_BYTES", 7 * len(X_train) * 4)  # 7 queries a chunk
    got = clf.kneighbors(X_test), clf.predict_proba(X_test)
    np.testing.assert_array_equal(got[0][0], expected[0][0])
    np.testing.assert_array_equal(got[0][1], expected[0][1])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")
def test_n_jobs_gives_the_same_result_and_restores_threads(mnist_uint8):
    X_train, y_train, X_test, _ = mnist_uint8
    before = numba.get_num_threads()
    results = []
    for n_jobs in (1, 2, -1, None):
        clf = KNNClassifier(n_neighbors=9, metric="manhattan", n_jobs=n_jobs).fit(X_train, y_train)
        results.append((clf.kneighbors(X_test), clf.predict(X_test)))
        assert numba.get_num_threads() == before
    for (distances, indices), predictions in results[1:]:
        np.testing.assert_array_equal(indices, results[0][0][1])
        np.testing.assert_array_equal(distances, results[0][0][0])
        np.testing.assert_array_equal(predictions, results[0][1])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")
def test_n_jobs_restores_a_non_default_thread_count(random_split):
    X_train, y_train, X_test, _ = random_split
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        KNNClassifier(n_jobs=1).fit(X_train, y_train).predict(X_test)
        assert numba.get_num_threads() == 2
        numba.set_num_threads(1)
        KNNClassifier(n_jobs=2).fit(X_train, y_train).predict_proba(X_test)
        assert numba.get_num_threads() == 1
    finally:
        numba.set_num_threads(before)


# -------------------------------------------------------------------------
# kneighbors, kneighbors_graph, score
# -------------------------------------------------------------------------


@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 2), ("minkowski", 3)])
@pytest.mark.parametrize("n_neighbors", [1, 5])
def test_kneighbors_without_X_excludes_self(random_split, metric, p, n_neighbors):
    """Training data with duplicates: each sample is left out of its own
    neighbours, as scikit-learn does."""
    X_train, y_train, _, _ = random_split
    clf = KNNClassifier(n_neighbors=n_neighbors, metric=metric, p=p).fit(X_train, y_train)
    distances, indices = clf.kneighbors()
    expected_distances, expected_indices = naive.kneighbors_excluding_self(X_train, n_neighbors, metric, p)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-14)
    assert not (indices == np.arange(len(X_train))[:, None]).any()

    nn = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", metric=metric, p=p).fit(X_train)
    sk_distances, sk_indices = nn.kneighbors()
    np.testing.assert_allclose(distances, sk_distances, rtol=1e-7, atol=1e-6)
    np.testing.assert_array_equal(clf.kneighbors(return_distance=False), indices)


def test_kneighbors_arguments(random_split):
    X_train, y_train, X_test, _ = random_split
    clf = KNNClassifier(n_neighbors=3).fit(X_train, y_train)
    assert clf.kneighbors(X_test, n_neighbors=7)[1].shape == (len(X_test), 7)
    assert clf.kneighbors(X_test, n_neighbors=len(X_train))[1].shape == (len(X_test), len(X_train))
    assert clf.kneighbors(n_neighbors=len(X_train) - 1)[1].shape == (len(X_train), len(X_train) - 1)
    with pytest.raises(ValueError, match="n_samples_fit"):
        clf.kneighbors(n_neighbors=len(X_train))
    with pytest.raises(ValueError, match="Expected n_neighbors > 0"):
        clf.kneighbors(X_test, n_neighbors=0)
    with pytest.raises(TypeError, match="n_neighbors does not take"):
        clf.kneighbors(X_test, n_neighbors=2.0)


@pytest.mark.parametrize("mode", ["connectivity", "distance"])
@pytest.mark.parametrize("use_X", [False, True])
def test_kneighbors_graph_matches_sklearn(random_split, mode, use_X):
    X_train, y_train, X_test, _ = random_split
    # Rows without degenerate copies, so no tie can make the graphs differ.
    X_train, y_train, X_test = X_train[:150], y_train[:150], X_test[:40]
    X = X_test if use_X else None
    clf = KNNClassifier(n_neighbors=4).fit(X_train, y_train)
    sk = KNeighborsClassifier(n_neighbors=4, algorithm="brute").fit(X_train, y_train)
    graph = clf.kneighbors_graph(X, mode=mode)
    expected = sk.kneighbors_graph(X, mode=mode)
    assert scipy.sparse.issparse(graph) and graph.format == "csr"
    assert graph.shape == expected.shape == ((len(X_test) if use_X else 150), 150)
    np.testing.assert_array_equal(graph.indptr, expected.indptr)
    np.testing.assert_allclose(graph.toarray(), expected.toarray(), rtol=1e-12)
    graph6 = clf.kneighbors_graph(X, n_neighbors=6, mode=mode)
    assert graph6.nnz == graph.shape[0] * 6


def test_kneighbors_graph_bad_mode(random_split):
    X_train, y_train, _, _ = random_split
    clf = KNNClassifier().fit(X_train, y_train)
    with pytest.raises(ValueError, match="Unsupported mode"):
        clf.kneighbors_graph(mode="weights")


def test_score_matches_sklearn(mnist_split):
    X_train, y_train, X_test, y_test = mnist_split
    clf = KNNClassifier(n_neighbors=3).fit(X_train, y_train)
    sk = KNeighborsClassifier(n_neighbors=3, algorithm="brute").fit(X_train.astype(np.float64), y_train)
    score = clf.score(X_test, y_test)
    assert score == sk.score(X_test.astype(np.float64), y_test)
    assert score > 0.8  # 1,000 digits are enough for a decent 3-NN


# -------------------------------------------------------------------------
# Pipeline, grid search, clone, pickle, pandas
# -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_digits(mnist_split):
    """300 digits for model selection, 100 for testing."""
    X_train, y_train, X_test, y_test = mnist_split
    return X_train[:300], y_train[:300], X_test[:100], y_test[:100]


def test_pipeline_matches_sklearn(small_digits):
    X_train, y_train, X_test, _ = small_digits
    pipe = make_pipeline(StandardScaler(), KNNClassifier(n_neighbors=5, weights="distance"))
    sk_knn = KNeighborsClassifier(n_neighbors=5, weights="distance", algorithm="brute")
    sk_pipe = make_pipeline(StandardScaler(), sk_knn)
    X_train64, X_test64 = X_train.astype(np.float64), X_test.astype(np.float64)
    predictions = pipe.fit(X_train64, y_train).predict(X_test64)
    np.testing.assert_array_equal(predictions, sk_pipe.fit(X_train64, y_train).predict(X_test64))
    np.testing.assert_allclose(pipe.predict_proba(X_test64), sk_pipe.predict_proba(X_test64), rtol=0, atol=1e-12)


def test_grid_search_matches_sklearn(small_digits):
    X_train, y_train, _, _ = small_digits
    X_train = X_train.astype(np.float64)
    grid = {"n_neighbors": [1, 5], "weights": ["uniform", "distance"], "metric": ["minkowski"], "p": [1, 2, 3]}
    search = GridSearchCV(KNNClassifier(), grid, cv=3, n_jobs=2).fit(X_train, y_train)
    sk_search = GridSearchCV(KNeighborsClassifier(algorithm="brute"), grid, cv=3).fit(X_train, y_train)
    assert search.best_params_ == sk_search.best_params_
    np.testing.assert_array_equal(search.cv_results_["params"], sk_search.cv_results_["params"])
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], sk_search.cv_results_["mean_test_score"], rtol=0, atol=1e-12
    )
    assert isinstance(search.best_estimator_, KNNClassifier)


def test_clone_and_params():
    given = {"n_neighbors": 3, "weights": "distance", "metric": "l1", "p": 4, "n_jobs": 1}
    clf = KNNClassifier(**given)
    params = clf.get_params()
    assert {name: params[name] for name in given} == given
    copy = clone(clf)
    assert copy is not clf and copy.get_params() == params
    assert not hasattr(copy, "classes_")
    assert clf.set_params(n_neighbors=1).n_neighbors == 1


@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("minkowski", 1.5)])
def test_pickle_round_trip(random_split, metric, p):
    X_train, y_train, X_test, _ = random_split
    clf = KNNClassifier(n_neighbors=5, weights="distance", metric=metric, p=p).fit(X_train.astype(np.float32), y_train)
    restored = pickle.loads(pickle.dumps(clf))
    assert restored._fit_X.dtype == np.float32
    np.testing.assert_array_equal(restored.predict(X_test), clf.predict(X_test))
    np.testing.assert_array_equal(restored.predict_proba(X_test), clf.predict_proba(X_test))
    np.testing.assert_array_equal(restored.kneighbors(X_test)[1], clf.kneighbors(X_test)[1])


def test_pandas_input(random_split):
    pd = pytest.importorskip("pandas")
    X_train, y_train, X_test, _ = random_split
    columns = [f"f{i}" for i in range(X_train.shape[1])]
    clf = KNNClassifier().fit(pd.DataFrame(X_train, columns=columns), pd.Series(LABEL_NAMES[y_train]))
    np.testing.assert_array_equal(clf.feature_names_in_, columns)
    predictions = clf.predict(pd.DataFrame(X_test, columns=columns))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(predictions, clf.predict(pd.DataFrame(X_test, columns=columns)))
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(X_test), predictions)


# -------------------------------------------------------------------------
# Bad input
# -------------------------------------------------------------------------

X_OK = np.arange(24.0).reshape(8, 3)
Y_OK = np.array([0, 1] * 4)


def with_value(X, value):
    X = X.copy()
    X[1, 1] = value
    return X


@pytest.mark.parametrize(
    "params, X, y, error, match",
    [
        ({}, with_value(X_OK, np.nan), Y_OK, ValueError, "Input X contains NaN"),
        ({}, with_value(X_OK, np.inf), Y_OK, ValueError, "Input X contains infinity"),
        ({}, X_OK[:, 0], Y_OK, ValueError, "Expected a 2-dimensional container|Expected 2D array"),
        ({}, X_OK[None], Y_OK, ValueError, "Found array with dim 3"),
        ({}, np.empty((0, 3)), np.empty(0), ValueError, "0 sample"),
        ({}, np.empty((8, 0)), Y_OK, ValueError, "0 feature"),
        ({}, X_OK + 1j, Y_OK, ValueError, "Complex data not supported"),
        ({}, X_OK.astype(str), Y_OK, ValueError, "dtype='numeric' is not compatible"),
        ({}, scipy.sparse.csr_matrix(with_value(X_OK, np.nan)), Y_OK, ValueError, "Input X contains NaN"),
        ({}, scipy.sparse.coo_matrix(with_value(X_OK, np.inf)), Y_OK, ValueError, "Input X contains infinity"),
        ({}, X_OK, Y_OK[:5], ValueError, "inconsistent numbers of samples"),
        ({}, X_OK, np.linspace(0, 1, 8), ValueError, "Unknown label type"),
        ({"p": 0.5}, X_OK, Y_OK, InvalidParameterError, "'p' parameter of KNNClassifier"),
        ({"metric": "hamming"}, X_OK, Y_OK, InvalidParameterError, "'metric' parameter of KNNClassifier"),
        ({"weights": "gaussian"}, X_OK, Y_OK, InvalidParameterError, "'weights' parameter of KNNClassifier"),
        ({"n_neighbors": 0}, X_OK, Y_OK, InvalidParameterError, "'n_neighbors' parameter of KNNClassifier"),
        ({"n_neighbors": 2.5}, X_OK, Y_OK, InvalidParameterError, "'n_neighbors' parameter of KNNClassifier"),
        ({"n_jobs": 0}, X_OK, Y_OK, ValueError, "n_jobs == 0 has no meaning"),
        ({"n_jobs": 1.5}, X_OK, Y_OK, InvalidParameterError, "'n_jobs' parameter of KNNClassifier"),
    ],
)
def test_fit_errors(params, X, y, error, match):
    with pytest.raises(error, match=match):
        KNNClassifier(**params).fit(X, y)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (with_value(X_OK, np.nan), ValueError, "Input X contains NaN"),
        (with_value(X_OK, -np.inf), ValueError, "Input X contains infinity"),
        (X_OK[0], ValueError, "Expected 2D array, got 1D array"),
        (X_OK[None], ValueError, "Found array with dim 3"),
        (X_OK[:, :2], ValueError, "X has 2 features, but KNNClassifier is expecting 3 features"),
        (np.empty((0, 3)), ValueError, "0 sample"),
        (X_OK + 1j, ValueError, "Complex data not supported"),
        (X_OK.astype(str), ValueError, "dtype='numeric' is not compatible"),
        (scipy.sparse.csr_matrix(with_value(X_OK, np.nan)), ValueError, "Input X contains NaN"),
        (scipy.sparse.csr_matrix(X_OK[:, :2]), ValueError, "X has 2 features, but KNNClassifier is expecting 3 features"),
    ],
)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "kneighbors"])
def test_predict_errors(method, X, error, match):
    clf = KNNClassifier(n_neighbors=3).fit(X_OK, Y_OK)
    with pytest.raises(error, match=match):
        getattr(clf, method)(X)


def test_n_neighbors_larger_than_training_set():
    clf = KNNClassifier(n_neighbors=9).fit(X_OK, Y_OK)  # fit does not know the queries yet
    for method in ("predict", "predict_proba", "kneighbors"):
        with pytest.raises(ValueError, match=r"n_neighbors <= n_samples_fit.*n_neighbors = 9, n_samples_fit = 8"):
            getattr(clf, method)(X_OK)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "kneighbors", "kneighbors_graph", "score"])
def test_not_fitted(method):
    args = (X_OK, Y_OK) if method == "score" else (X_OK,)
    with pytest.raises(NotFittedError):
        getattr(KNNClassifier(), method)(*args)


def _predict_in_child(classifier, queries):
    return classifier.predict(queries)


@pytest.mark.skipif(sys.platform != "linux", reason="the fork start method is Linux's default")
@pytest.mark.parametrize("algorithm, metric", [("brute", "manhattan"), ("kd_tree", "euclidean"), ("brute", "euclidean")])
def test_a_forked_child_searches_after_its_parent(algorithm, metric):
    """multiprocessing forks on Linux, and GNU OpenMP kills a forked child that enters a parallel region once
    its parent has used one: no kernel may run on numba's OpenMP threads."""
    import multiprocessing

    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(400, 3)), rng.integers(0, 3, 400)
    classifier = KNNClassifier(algorithm=algorithm, metric=metric).fit(X, y)
    expected = classifier.predict(X[:60])  # the parent searches first
    with multiprocessing.get_context("fork").Pool(1) as pool:
        predicted = pool.apply_async(_predict_in_child, (classifier, X[:60])).get(timeout=60)
    np.testing.assert_array_equal(predicted, expected)
