"""Tests for the public neighbour search, fastknn.kneighbors.

Oracles: scikit-learn's brute-force NearestNeighbors for distances and
neighbours, and tests/naive.py for the exact neighbour order (equal distances
by lower training index, which scikit-learn does not promise).
"""

import doctest

import naive
import numba
import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import NearestNeighbors

import fastknn.neighbors
from fastknn import kneighbors

METRICS, ALIASES, CANONICAL_METRICS = naive.METRICS, naive.ALIASES, naive.CANONICAL_METRICS


def sklearn_kneighbors(X, Y, n_neighbors, metric, p):
    """scikit-learn's brute force on the same values in float64."""
    nn = NearestNeighbors(n_neighbors=n_neighbors, algorithm="brute", metric=metric, p=p)
    nn.fit(np.asarray(Y, dtype=np.float64))
    return nn.kneighbors(np.asarray(X, dtype=np.float64))


def untied_positions(X, Y, n_neighbors, metric, p, rtol=1e-9):
    """Mask of shape (n_x, n_neighbors): the neighbour at this position is at
    a distance no other row of Y shares (beyond rtol), so every correct
    implementation puts the same row there."""
    reduced, _ = naive.sorted_neighbors(X, Y, metric, p)
    padded = np.hstack([np.full((len(reduced), 1), -np.inf), reduced, np.full((len(reduced), 1), np.inf)])
    gaps = np.diff(padded, axis=1) > rtol * np.abs(padded[:, 1:])
    return (gaps[:, :-1] & gaps[:, 1:])[:, :n_neighbors]


def assert_equals_naive(X, Y, distances, indices, metric, p):
    """Small integer-valued data: exactly naive's answer where distances are
    exact floats, else a valid answer to 1e-12 (see naive.py)."""
    if naive.has_exact_sums(metric, p):
        expected_distances, expected_indices = naive.kneighbors(X, Y, indices.shape[1], metric, p)
        np.testing.assert_array_equal(indices, expected_indices)
        np.testing.assert_array_equal(distances, expected_distances)
    else:
        naive.assert_valid_kneighbors(X, Y, distances, indices, metric, p)


def check_against_oracles(X, Y, n_neighbors, metric, p, sk_metric, sk_p):
    """fastknn equals naive exactly and scikit-learn up to rounding and ties."""
    distances, indices = kneighbors(X, Y, n_neighbors, metric=metric, p=p)
    assert distances.dtype == np.float64 and indices.dtype == np.int64
    assert distances.shape == indices.shape == (len(X), n_neighbors)

    expected_distances, expected_indices = naive.kneighbors(X, Y, n_neighbors, metric, p)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-14, atol=0)

    sk_distances, sk_indices = sklearn_kneighbors(X, Y, n_neighbors, sk_metric, sk_p)
    np.testing.assert_allclose(distances, sk_distances, rtol=1e-7, atol=1e-6)
    untied = untied_positions(X, Y, n_neighbors, metric, p)
    np.testing.assert_array_equal(indices[untied], sk_indices[untied])
    return distances, indices, untied.mean()


@pytest.mark.parametrize("n_neighbors", [1, 3, 25, "n_train"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric, p, sk_metric, sk_p", METRICS)
def test_matches_sklearn_and_naive(random_split, metric, p, sk_metric, sk_p, dtype, n_neighbors):
    X_train, _, X_test, _ = random_split
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    if n_neighbors == "n_train":
        n_neighbors = len(X_train)
    _, _, compared = check_against_oracles(X_test, X_train, n_neighbors, metric, p, sk_metric, sk_p)
    assert compared > 0.8


@pytest.mark.parametrize("n_neighbors", [1, 25])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric, p, sk_metric, sk_p", ALIASES)
def test_aliases_match_sklearn_and_naive(random_split, metric, p, sk_metric, sk_p, dtype, n_neighbors):
    """Aliases and minkowski with p = 1, 2, inf give the named metric's result."""
    X_train, _, X_test, _ = random_split
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    got = check_against_oracles(X_test, X_train, n_neighbors, metric, p, sk_metric, sk_p)[:2]
    canonical, _ = naive.canonical_metric(metric, p)
    expected = kneighbors(X_test, X_train, n_neighbors, metric=canonical)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 2), ("minkowski", 3)])
def test_memory_layout_does_not_change_results(random_split, metric, p, dtype):
    """Fortran order and strided views give the same neighbours as C copies."""
    X_train, _, X_test, _ = random_split
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    reference = kneighbors(X_test, X_train, 5, metric=metric, p=p)
    for queries, train in [
        (np.asfortranarray(X_test), np.asfortranarray(X_train)),
        (X_test, np.asfortranarray(X_train)),
        (np.asfortranarray(X_test), X_train),
    ]:
        got = kneighbors(queries, train, 5, metric=metric, p=p)
        np.testing.assert_array_equal(got[0], reference[0])
        np.testing.assert_array_equal(got[1], reference[1])
    # Strided views: every other column, every other row, reversed.
    check_against_oracles(X_test[:, ::2], X_train[:, ::2], 5, metric, p, metric, p)
    check_against_oracles(X_test[::2], X_train[::2], 5, metric, p, metric, p)
    check_against_oracles(X_test[::-3, 1::2], X_train[::2, ::-1][:, :3], 4, metric, p, metric, p)


@pytest.mark.parametrize("metric, p", CANONICAL_METRICS)
def test_integer_data_ties_follow_training_index(integer_split, metric, p):
    """Integer-valued data, many ties: indices exactly naive's wherever the
    distances are exact floats (all but Minkowski p=1.5, checked to 1e-12)."""
    X_train, _, X_test, _ = integer_split
    for n_neighbors in (1, 4, 17, len(X_train)):
        distances, indices = kneighbors(X_test, X_train, n_neighbors, metric=metric, p=p)
        assert_equals_naive(X_test, X_train, distances, indices, metric, p)
    # The data really is full of ties at the boundary.
    assert naive.boundary_ties(X_test, X_train, 4, metric, p).mean() > 0.3


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs NUMBA_NUM_THREADS >= 2")
@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 2), ("chebyshev", 2)])
def test_ties_do_not_depend_on_threads(mnist_uint8, metric, p):
    """Raw uint8 digits (integer values, run as float32) tie often; the
    result is the naive one with one thread or two."""
    X_train, _, X_test, _ = mnist_uint8
    before = numba.get_num_threads()
    one = kneighbors(X_test, X_train, 10, metric=metric, p=p, n_jobs=1)
    assert numba.get_num_threads() == before
    two = kneighbors(X_test, X_train, 10, metric=metric, p=p, n_jobs=2)
    assert numba.get_num_threads() == before
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_array_equal(one[0], two[0])
    expected_distances, expected_indices = naive.kneighbors(X_test, X_train, 10, metric, p)
    np.testing.assert_array_equal(one[1], expected_indices)
    np.testing.assert_array_equal(one[0], expected_distances)


@pytest.mark.parametrize("metric, p", CANONICAL_METRICS[:3])
def test_real_digits_match_sklearn(mnist_split, metric, p):
    X_train, _, X_test, _ = mnist_split
    check_against_oracles(X_test[:100], X_train, 25, metric, p, metric, p)


@pytest.mark.parametrize("metric, p", CANONICAL_METRICS[3:])
def test_real_digits_match_sklearn_minkowski(mnist_split, metric, p):
    X_train, _, X_test, _ = mnist_split
    check_against_oracles(X_test[:30], X_train[:300], 3, metric, p, metric, p)


@pytest.mark.parametrize("metric, p", CANONICAL_METRICS)
def test_duplicates_are_at_distance_exactly_zero(metric, p):
    """float32 rows with large norms: a query equal to a training row is at
    distance 0, not at a tiny cancellation residue."""
    rng = np.random.default_rng(5)
    train = (1e3 + rng.normal(scale=50.0, size=(40, 30))).astype(np.float32)
    train = np.vstack([train, train[:5]])  # rows 40..44 duplicate rows 0..4
    distances, indices = kneighbors(train, train, 2, metric=metric, p=p)
    assert np.all(distances[:, 0] == 0.0)
    np.testing.assert_array_equal(indices[:, 0], np.r_[np.arange(40), np.arange(5)])
    np.testing.assert_array_equal(distances[:5, 1], 0.0)
    np.testing.assert_array_equal(indices[:5, 1], np.arange(40, 45))
    np.testing.assert_array_equal(indices[40:, 1], np.arange(40, 45))
    assert np.all(distances[5:40, 1] > 0)


# scikit-learn's finiteness check sums the data, which overflows here.
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@pytest.mark.filterwarnings("error:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize("metric, p", CANONICAL_METRICS[:4])
def test_overflow_in_the_fast_pass(metric, p):
    """float32 data whose fast-pass distances (or dot products) would
    overflow: still the exact neighbours, and no overflow warning."""
    rng = np.random.default_rng(11)
    scale = {"euclidean": 3e19, "manhattan": 1.5e38, "chebyshev": 2e38, "minkowski": 1e13}[metric]
    train = (rng.uniform(-1, 1, size=(50, 3)) * scale).astype(np.float32)
    queries = (rng.uniform(-1, 1, size=(12, 3)) * scale).astype(np.float32)
    distances, indices = kneighbors(queries, train, 4, metric=metric, p=p)
    expected_distances, expected_indices = naive.kneighbors(queries, train, 4, metric, p)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(distances, expected_distances, rtol=1e-14)


def test_return_distance_false(random_split):
    X_train, _, X_test, _ = random_split
    indices = kneighbors(X_test, X_train, 3, return_distance=False)
    np.testing.assert_array_equal(indices, kneighbors(X_test, X_train, 3)[1])


def test_dtype_follows_the_searched_rows():
    """Y sets the dtype (uint8 Y runs as float32); X is cast to it where that is exact."""
    Y = np.array([[0, 0], [10, 0], [0, 20]], dtype=np.uint8)
    for x in (0.5, 0.1):  # float32 holds 0.5; 0.1 it would round, so both sides run in float64
        distances, indices = kneighbors(np.array([[x, 0.0]]), Y, 3)
        np.testing.assert_array_equal(indices, [[0, 1, 2]])
        np.testing.assert_allclose(distances, [[x, 10 - x, np.hypot(x, 20)]], rtol=1e-15)
    # Lists work too.
    np.testing.assert_array_equal(kneighbors([[9, 1]], [[0, 0], [10, 0]], 1, return_distance=False), [[1]])


def test_doctests():
    result = doctest.testmod(fastknn.neighbors, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_property_equals_naive(data):
    """Random small shapes, duplicated rows, k from 1 to n_train, any metric:
    naive's neighbours and distances (exactly, where sums are exact)."""
    n_distinct = data.draw(st.integers(1, 8), label="n_distinct")
    n_features = data.draw(st.integers(1, 4), label="n_features")
    n_queries = data.draw(st.integers(1, 6), label="n_queries")
    metric, p = data.draw(st.sampled_from(CANONICAL_METRICS + [("minkowski", 4), ("l1", 2)]), label="metric")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")

    def rows(n_rows, label):
        row = st.lists(st.integers(-3, 3), min_size=n_features, max_size=n_features)
        return np.array(data.draw(st.lists(row, min_size=n_rows, max_size=n_rows), label=label), dtype=dtype)

    distinct = rows(n_distinct, "distinct rows")
    # Training rows: the distinct rows in a random order, some repeated.
    picks = data.draw(st.lists(st.integers(0, n_distinct - 1), min_size=1, max_size=14), label="rows")
    train = distinct[picks]
    queries = rows(n_queries, "queries")
    n_neighbors = data.draw(st.integers(1, len(train)), label="n_neighbors")
    distances, indices = kneighbors(queries, train, n_neighbors, metric=metric, p=p)
    assert_equals_naive(queries, train, distances, indices, metric, p)


# -------------------------------------------------------------------------
# Bad input
# -------------------------------------------------------------------------

Y_OK = np.arange(12.0).reshape(4, 3)
X_OK = np.ones((2, 3))


@pytest.mark.parametrize(
    "X, Y, kwargs, error, match",
    [
        (X_OK, np.where(Y_OK == 4, np.nan, Y_OK), {}, ValueError, "Input Y contains NaN"),
        (X_OK, np.where(Y_OK == 4, np.inf, Y_OK), {}, ValueError, "Input Y contains infinity"),
        (np.where(X_OK == 1, np.nan, X_OK), Y_OK, {}, ValueError, "Input X contains NaN"),
        (np.where(X_OK == 1, -np.inf, X_OK), Y_OK, {}, ValueError, "Input X contains infinity"),
        (X_OK, Y_OK[0], {}, ValueError, "Expected 2D array, got 1D array"),
        (X_OK[0], Y_OK, {}, ValueError, "Expected 2D array, got 1D array"),
        (X_OK[None], Y_OK, {}, ValueError, "Found array with dim 3"),
        (np.ones((2, 2)), Y_OK, {}, ValueError, "X has 2 features but Y has 3"),
        (X_OK, np.empty((0, 3)), {"n_neighbors": 1}, ValueError, "0 sample"),
        (np.empty((0, 3)), Y_OK, {"n_neighbors": 1}, ValueError, "0 sample"),
        (X_OK, np.empty((4, 0)), {"n_neighbors": 1}, ValueError, "0 feature"),
        (X_OK, Y_OK, {"n_neighbors": 5}, ValueError, r"between 1 and the number of rows of Y \(4\), got 5"),
        (X_OK, Y_OK, {"n_neighbors": 0}, ValueError, "between 1 and the number of rows of Y"),
        (X_OK, Y_OK, {"n_neighbors": 2.0}, TypeError, "n_neighbors must be an integer"),
        (X_OK, Y_OK, {"n_neighbors": True}, TypeError, "n_neighbors must be an integer"),
        (X_OK, Y_OK, {"metric": "minkowski", "p": 0.5}, ValueError, "p must be a real number >= 1"),
        (X_OK, Y_OK, {"metric": "hamming"}, ValueError, "metric must be one of"),
        (X_OK, Y_OK + 1j, {}, ValueError, "Complex data not supported"),
        (X_OK + 1j, Y_OK, {}, ValueError, "Complex data not supported"),
        (X_OK, Y_OK.astype(str), {}, ValueError, "dtype='numeric' is not compatible with arrays of bytes/strings"),
        (X_OK.astype(str), Y_OK, {}, ValueError, "dtype='numeric' is not compatible"),
        (X_OK, scipy.sparse.csr_matrix(Y_OK * np.nan), {}, ValueError, "Input Y contains NaN"),
        (scipy.sparse.csr_matrix(X_OK * np.nan), Y_OK, {}, ValueError, "Input X contains NaN"),
        (scipy.sparse.csr_matrix(np.ones((2, 2))), scipy.sparse.csr_matrix(Y_OK), {}, ValueError, "X has 2 features but Y has 3"),
        (X_OK, scipy.sparse.csr_matrix(Y_OK), {"metric": "cosine", "n_neighbors": 5}, ValueError, "between 1 and"),
        (X_OK, Y_OK, {"n_jobs": 0}, ValueError, "n_jobs == 0 has no meaning"),
        (X_OK, Y_OK, {"n_jobs": "2"}, TypeError, "n_jobs must be an integer or None, got '2'"),
        (X_OK, Y_OK, {"n_jobs": 1.5}, TypeError, "n_jobs must be an integer or None"),
    ],
)
def test_bad_input(X, Y, kwargs, error, match):
    kwargs = {"n_neighbors": 2, **kwargs}
    with pytest.raises(error, match=match):
        kneighbors(X, Y, **kwargs)
