"""The cosine metric on dense rows (``fastknn/_cosine.py``) in every estimator.

The oracle is ``naive.cosine_distances`` (exact ties: zero rows, duplicates
and rows scaled by powers of two are at exactly 0 or 1), checked against
scikit-learn's brute force, whose own float64 rounding decides its order
between distances closer than about 1e-15.
"""

import warnings

import naive
import numpy as np
import pytest
import scipy.sparse
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import neighbors as sk_neighbors
from sklearn.metrics.pairwise import cosine_distances
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastknn
import fastknn._search
from fastknn import (
    KNNClassifier,
    KNNClassifierCV,
    KNNRegressor,
    KNNRegressorCV,
    KNNTransformer,
    NearestNeighbors,
    RadiusNeighborsClassifier,
    RadiusNeighborsRegressor,
    RadiusNeighborsTransformer,
)
from fastknn._cosine import cosine_error_bound, unit_rows, usual_scale
from fastknn._kernels.distances import COSINE, _exact_rdist


# A gap below this (relative) between the k-th and next distance counts as a
# tie when comparing with scikit-learn's rounded distances.
TIE_RTOL = 1e-9


@pytest.fixture(scope="session")
def cosine_split():
    """``(X_train, y_train, X_test, y_test)``, float64, with every degenerate case of the cosine distance.

    200 random rows of 12 features, then: two zero rows, exact duplicates,
    rows scaled by 2 and by 0.5 (cosine distance exactly 0 to their
    originals), one scaled by 3 (0 up to rounding) and one by -1 (distance
    2). The queries: 40 random rows, a zero query, copies of training rows
    and a training row times 4.
    """
    rng = np.random.default_rng(20261202)
    X = rng.normal(size=(200, 12))
    extra = np.vstack([np.zeros((2, 12)), X[[5, 17]], 2.0 * X[[8, 9]], 0.5 * X[[8]], 3.0 * X[[30]], -X[[31]]])
    X_train = np.vstack([X, extra])
    y_train = rng.integers(0, 3, size=len(X_train))
    X_test = np.vstack([rng.normal(size=(40, 12)), np.zeros((1, 12)), X_train[[8, 17]], 4.0 * X_train[[9]]])
    y_test = rng.integers(0, 3, size=len(X_test))
    return X_train, y_train, X_test, y_test


@pytest.fixture(scope="session")
def embeddings():
    """Embedding-like float32 rows: ``(train, queries)``, 1,500 and 60 rows of 48 features around 20 centres."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 48))
    train = centres[rng.integers(0, 20, 1500)] + 0.5 * rng.normal(size=(1500, 48))
    queries = centres[rng.integers(0, 20, 60)] + 0.5 * rng.normal(size=(60, 48))
    return train.astype(np.float32), queries.astype(np.float32)


def assert_same_neighbors(queries, train, dist, ind, expected_dist, atol=1e-14):
    """The neighbours are at the naive k smallest distances (to ``atol``), each
    index at its stated distance, none repeated, and exactly equal distances
    come by increasing index. Rows apart by a rounding error (a row and
    three times it) may come in either order: float64 sums in another order
    differ by about n_features roundings."""
    assert_allclose(dist, expected_dist, rtol=0, atol=atol)
    all_dist = naive.cosine_distances(queries.astype(np.float64), train.astype(np.float64))
    assert_allclose(np.take_along_axis(all_dist, ind, axis=1), dist, rtol=0, atol=atol)
    for row in ind:
        assert len(set(row.tolist())) == len(row)
    steps = np.diff(dist, axis=1)
    assert np.all(steps >= 0) and np.all(np.diff(ind, axis=1)[steps == 0] > 0)


def untied_queries(X_test, X_train, n_neighbors):
    """Queries whose k nearest rows are unique even for rounded distances."""
    return ~naive.boundary_ties(X_test, X_train, n_neighbors, "cosine", rtol=TIE_RTOL)


# -------------------------------------------------------------------------
# the distance and its bounds
# -------------------------------------------------------------------------


def test_exact_cosine_is_scikit_learns_distance(cosine_split):
    X_train, _, X_test, _ = cosine_split
    ours = np.array([[_exact_rdist(q, t, COSINE, 0.0) for t in X_train] for q in X_test])
    assert_allclose(ours, naive.cosine_distances(X_test, X_train), rtol=0, atol=1e-15)
    reference = cosine_distances(X_test, X_train)
    assert_allclose(ours, reference, rtol=0, atol=1e-12)
    assert_array_equal(ours[40], 1.0)  # the zero query
    assert ours[43, 9] == 0.0 and ours[43, 205] == 0.0  # 4 x9 against x9 and 2 x9
    assert ours[41, 204] == 0.0 and ours[41, 206] == 0.0  # x8 against 2 x8 and x8 / 2
    assert ours[0, 200] == 1.0 and ours[0, 201] == 1.0  # zero training rows


def test_exact_cosine_far_from_one():
    """Rows whose squared norms' product over- or underflows float64 keep their distance."""
    row = np.array([3.0, 4.0, 0.0])
    other = np.array([4.0, 3.0, 0.0])
    expected = 1.0 - 24.0 / 25.0
    for scale in (1e-140, 1e140):  # the squared norms fit, their product does not
        assert _exact_rdist(row * scale, other * scale, COSINE, 0.0) == pytest.approx(expected, rel=1e-14)
        assert _exact_rdist(row * scale, row * scale, COSINE, 0.0) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_terms_of_unit_rows_are_within_the_bound(dtype):
    """The bound holds on rows whose features span many orders of magnitude, and on zero rows; the unit rows
    are float32 whatever the rows' dtype (float64 rows are multiplied in single precision too)."""
    rng = np.random.default_rng(11)
    n_features = 64
    rows = rng.normal(size=(300, n_features)) * 10.0 ** rng.uniform(-6, 6, size=(300, n_features))
    rows[7] = 0.0
    rows = rows.astype(dtype)
    unit, zero = unit_rows(*usual_scale(rows))
    assert unit.dtype == np.float32 and zero.tolist() == [i == 7 for i in range(300)]
    assert_array_equal(unit[7], 0.0)
    cross = (unit[:150] @ unit[150:].T).astype(np.float64)
    exact = 1.0 - naive.cosine_distances(rows[:150].astype(np.float64), rows[150:].astype(np.float64))
    exact[7] = 0.0  # the zero row's similarity
    assert np.abs(cross - exact).max() <= cosine_error_bound(unit.dtype, n_features)


def test_usual_scale_rescales_only_rows_whose_squares_leave_float64():
    rng = np.random.default_rng(12)
    rows = rng.normal(size=(6, 5))
    assert usual_scale(rows)[0] is rows  # nothing to rescale, nothing copied
    rows[1] *= 2.0**600  # squares overflow
    rows[2] *= 1e-200  # squares underflow
    rows[3] = np.array([3.0, 4.0, 0.0, 0.0, 0.0]) * 2.0**-1060  # subnormal values
    rows[4] = 0.0
    scaled, sqnorms = usual_scale(rows)
    assert_array_equal(scaled[[0, 4, 5]], rows[[0, 4, 5]])
    for i in (1, 2, 3):
        largest = np.abs(scaled[i]).max()
        assert 1.0 <= largest < 2.0
        power = np.abs(rows[i]).max() / largest
        assert power == 2.0 ** np.round(np.log2(power))  # a power of two, so the division is exact
        assert_array_equal(scaled[i] * power, rows[i])
    assert_array_equal(scaled[3, :2], [0.75, 1.0])
    assert_allclose(sqnorms, np.einsum("ij,ij->i", scaled, scaled), rtol=1e-15)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_distances_do_not_depend_on_the_rows_scale(sparse):
    """Rows scaled by powers of two whose squares over- or underflow float64 keep their distances, bit for bit.

    scikit-learn takes such rows for zero rows: every distance 1.
    """
    rng = np.random.default_rng(13)
    X, Q = rng.normal(size=(400, 12)), rng.normal(size=(30, 12))
    X[5], Q[2] = 0.0, 0.0  # zero rows stay at distance 1
    X[9] = 3.0 * X[8]
    X_scaled = X * np.ldexp(1.0, rng.choice([-700, -600, 0, 600, 700], size=400))[:, None]
    Q_scaled = Q * np.ldexp(1.0, rng.choice([-700, 0, 700], size=30))[:, None]
    convert = scipy.sparse.csr_matrix if sparse else np.asarray
    expected = NearestNeighbors(n_neighbors=7, metric="cosine").fit(convert(X))
    fitted = NearestNeighbors(n_neighbors=7, metric="cosine").fit(convert(X_scaled))
    for got, want in [
        (fitted.kneighbors(convert(Q_scaled)), expected.kneighbors(convert(Q))),
        (fitted.kneighbors(), expected.kneighbors()),
        (fitted.radius_neighbors(convert(Q_scaled), 0.6, sort_results=True),
         expected.radius_neighbors(convert(Q), 0.6, sort_results=True)),
    ]:
        for got_part, want_part in zip(got, want):
            assert_array_equal(np.concatenate(list(got_part)), np.concatenate(list(want_part)))
    distances, _ = fitted.kneighbors(convert(Q_scaled))
    assert_array_equal(distances[2], 1.0)
    assert np.all(distances[np.arange(30) != 2] < 1.0)


def test_sparse_and_dense_rows_agree_bit_for_bit_on_integer_values():
    """With integer values every sum is exact: both searches end in the same formula, ties included."""
    rng = np.random.default_rng(14)
    X = rng.integers(1, 4, (600, 30)) * (rng.random((600, 30)) < 0.15)
    X[4] = 3 * X[3]  # parallel rows, exactly at 0 from each other
    X[7] = 0
    X = X.astype(np.float64)
    dense = NearestNeighbors(n_neighbors=8, metric="cosine").fit(X)
    sparse = NearestNeighbors(n_neighbors=8, metric="cosine").fit(scipy.sparse.csr_matrix(X))
    for queries in (X[:100], None):
        dense_distances, dense_indices = dense.kneighbors(queries)
        sparse_distances, sparse_indices = sparse.kneighbors(
            None if queries is None else scipy.sparse.csr_matrix(queries)
        )
        assert_array_equal(sparse_distances, dense_distances)
        assert_array_equal(sparse_indices, dense_indices)
    distances, indices = sparse.kneighbors(scipy.sparse.csr_matrix(X))
    nonzero = X.any(axis=1)
    assert_array_equal(distances[nonzero, 0], 0.0)  # each row (or an equal one) exactly at 0
    assert_array_equal(indices[[3, 4], :2], [[3, 4], [3, 4]])
    assert_array_equal(distances[[3, 4], :2], 0.0)


# -------------------------------------------------------------------------
# k nearest
# -------------------------------------------------------------------------


@pytest.mark.parametrize("n_neighbors", [1, 6])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kneighbors_equal_the_naive_search(cosine_split, n_neighbors, dtype):
    X_train, _, X_test, _ = cosine_split
    X_train, X_test = X_train.astype(dtype), X_test.astype(dtype)
    model = NearestNeighbors(n_neighbors=n_neighbors, metric="cosine").fit(X_train)
    assert model.effective_metric_ == "cosine" and model.fit_method_ == "brute"
    dist, ind = model.kneighbors(X_test)
    expected_dist, _ = naive.kneighbors(X_test, X_train, n_neighbors, "cosine")
    assert_same_neighbors(X_test, X_train, dist, ind, expected_dist)
    assert_array_equal(dist[40], 1.0)  # the zero query: every row at 1, the first ones win
    assert_array_equal(ind[40], np.arange(n_neighbors))


def test_kneighbors_equal_scikit_learns_brute_force(cosine_split):
    X_train, _, X_test, _ = cosine_split
    dist, ind = NearestNeighbors(n_neighbors=6, metric="cosine").fit(X_train).kneighbors(X_test)
    reference = sk_neighbors.NearestNeighbors(n_neighbors=6, metric="cosine", algorithm="brute").fit(X_train)
    expected_dist, expected_ind = reference.kneighbors(X_test)
    assert_allclose(dist, expected_dist, rtol=0, atol=1e-12)
    # scikit-learn orders equal distances as its sort leaves them: compare
    # sets, where the k nearest are unique.
    untied = untied_queries(X_test, X_train, 6)
    assert untied.sum() > 30
    for row, expected_row in zip(ind[untied], expected_ind[untied]):
        assert set(row) == set(expected_row)


def test_kneighbors_of_the_training_set(cosine_split):
    X_train = cosine_split[0]
    dist, ind = NearestNeighbors(n_neighbors=4, metric="cosine").fit(X_train).kneighbors()
    expected_dist, expected_ind = naive.kneighbors_excluding_self(X_train, 4, "cosine")
    assert_same_neighbors(X_train, X_train, dist, ind, expected_dist)
    assert np.all(ind != np.arange(len(X_train))[:, None])
    assert_array_equal(ind[200], expected_ind[200])  # a zero row: the first rows but itself


def test_embeddings_in_blocks(embeddings, monkeypatch):
    """float32 embeddings, queries in several blocks (a small working memory), zero queries among them."""
    train, queries = embeddings
    queries = queries.copy()
    queries[[3, 31]] = 0.0
    monkeypatch.setattr(fastknn._search, "WORKING_MEMORY_BYTES", 16 * train.shape[0] * 4)
    dist, ind = fastknn.kneighbors(queries, train, 10, metric="cosine", n_jobs=2)
    expected_dist, expected_ind = naive.kneighbors(queries, train, 10, "cosine")
    assert_same_neighbors(queries, train, dist, ind, expected_dist)
    sk_dist, _ = sk_neighbors.NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute").fit(
        train.astype(np.float64)
    ).kneighbors(queries.astype(np.float64))
    assert_allclose(dist, sk_dist, rtol=0, atol=1e-12)


def test_kneighbors_graph(cosine_split):
    X_train, _, X_test, _ = cosine_split
    queries = X_test[untied_queries(X_test, X_train, 5)]
    model = NearestNeighbors(n_neighbors=5, metric="cosine").fit(X_train)
    reference = sk_neighbors.NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute").fit(X_train)
    for mode in ("connectivity", "distance"):
        assert_allclose(
            model.kneighbors_graph(queries, mode=mode).toarray(),
            reference.kneighbors_graph(queries, mode=mode).toarray(),
            rtol=0, atol=1e-12,
        )


# -------------------------------------------------------------------------
# radius
# -------------------------------------------------------------------------


@pytest.mark.parametrize("radius", [0.0, 0.6, 1.0, 2.0])
def test_radius_neighbors_equal_the_naive_search(cosine_split, radius):
    """Rows exactly at the radius count: duplicates and multiples at 0, zero rows at 1, the opposite row at 2."""
    X_train, _, X_test, _ = cosine_split
    model = NearestNeighbors(radius=radius, metric="cosine").fit(X_train)
    dist, ind = model.radius_neighbors(X_test)
    expected_dist, expected_ind = naive.radius_neighbors(X_test, X_train, radius, "cosine")
    for row, row_dist, expected_row, expected_row_dist in zip(ind, dist, expected_ind, expected_dist):
        assert_array_equal(row, expected_row)
        assert_allclose(row_dist, expected_row_dist, rtol=0, atol=1e-15)
    assert len(ind[40]) == (len(X_train) if radius >= 1.0 else 0)  # the zero query
    sorted_dist, sorted_ind = model.radius_neighbors(X_test, sort_results=True)
    for row, row_dist in zip(sorted_ind, sorted_dist):
        order = np.lexsort((row, row_dist))
        assert_array_equal(order, np.arange(len(row)))


def test_radius_neighbors_graph_equals_scikit_learns(cosine_split):
    X_train, _, X_test, _ = cosine_split
    model = NearestNeighbors(radius=0.7, metric="cosine").fit(X_train)
    reference = sk_neighbors.NearestNeighbors(radius=0.7, metric="cosine", algorithm="brute").fit(X_train)
    for mode in ("connectivity", "distance"):
        assert_allclose(
            model.radius_neighbors_graph(X_test[:40], mode=mode).toarray(),
            reference.radius_neighbors_graph(X_test[:40], mode=mode).toarray(),
            rtol=0, atol=1e-12,
        )


# -------------------------------------------------------------------------
# estimators
# -------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_classifier_and_regressor_equal_the_naive_ones(cosine_split, weights):
    X_train, y_train, X_test, _ = cosine_split
    _, expected, expected_proba = naive.classify(X_train, y_train, X_test, 5, "cosine", weights=weights)
    model = KNNClassifier(n_neighbors=5, metric="cosine", weights=weights).fit(X_train, y_train)
    assert_array_equal(model.predict(X_test), expected)
    assert_allclose(model.predict_proba(X_test), expected_proba, rtol=1e-12, atol=1e-12)
    targets = y_train * 1.5 - 0.25
    regressor = KNNRegressor(n_neighbors=5, metric="cosine", weights=weights).fit(X_train, targets)
    assert_allclose(
        regressor.predict(X_test), naive.regress(X_train, targets, X_test, 5, "cosine", weights=weights), rtol=1e-12
    )


def test_radius_estimators_and_transformers_equal_scikit_learns(cosine_split):
    X_train, y_train, X_test, _ = cosine_split
    pairs = [
        (RadiusNeighborsClassifier(radius=0.6, metric="cosine", outlier_label="most_frequent"),
         sk_neighbors.RadiusNeighborsClassifier(radius=0.6, metric="cosine", outlier_label="most_frequent",
                                                algorithm="brute")),
        (RadiusNeighborsRegressor(radius=0.6, metric="cosine"),
         sk_neighbors.RadiusNeighborsRegressor(radius=0.6, metric="cosine", algorithm="brute")),
    ]
    targets = y_train * 1.0  # scikit-learn casts its NaN (the zero query has no neighbour) to integer targets
    for ours, reference in pairs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # no neighbours within the radius
            assert_allclose(ours.fit(X_train, targets).predict(X_test), reference.fit(X_train, targets).predict(X_test))
    queries = X_test[untied_queries(X_test, X_train, 4)]
    transformers = [
        (KNNTransformer(n_neighbors=3, metric="cosine"),
         sk_neighbors.KNeighborsTransformer(n_neighbors=3, metric="cosine", algorithm="brute")),
        (RadiusNeighborsTransformer(radius=0.6, metric="cosine"),
         sk_neighbors.RadiusNeighborsTransformer(radius=0.6, metric="cosine", algorithm="brute")),
    ]
    for ours, reference in transformers:
        assert_allclose(
            ours.fit(X_train).transform(queries).toarray(),
            reference.fit(X_train).transform(queries).toarray(),
            rtol=0, atol=1e-12,
        )


def test_cv_estimators_and_grid_search_over_the_metric(cosine_split):
    X_train, y_train, _, _ = cosine_split
    grid = {"n_neighbors": [1, 4], "metric": ["euclidean", "cosine"], "weights": ["uniform", "distance"]}
    reference = GridSearchCV(sk_neighbors.KNeighborsClassifier(algorithm="brute"), grid, cv=3).fit(X_train, y_train)
    ours = GridSearchCV(KNNClassifier(), grid, cv=3).fit(X_train, y_train)
    search = KNNClassifierCV(n_neighbors=(1, 4), metrics=("euclidean", "cosine"), cv=3).fit(X_train, y_train)
    for result in (ours.cv_results_, search.cv_results_):
        assert_allclose(result["mean_test_score"], reference.cv_results_["mean_test_score"])
    targets = y_train * 2.0
    regression = KNNRegressorCV(n_neighbors=(1, 4), metrics=("cosine",), cv=3).fit(X_train, targets)
    # KNNRegressor, whose ties go by index (scikit-learn's k=1 takes the other of two duplicates).
    expected = GridSearchCV(
        KNNRegressor(),
        {"n_neighbors": [1, 4], "metric": ["cosine"], "weights": ["uniform", "distance"]}, cv=3,
    ).fit(X_train, targets)
    assert_allclose(regression.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"])


@parametrize_with_checks([
    KNNClassifier(metric="cosine"),
    KNNRegressor(metric="cosine", weights="distance"),
    NearestNeighbors(metric="cosine"),
    RadiusNeighborsRegressor(metric="cosine", radius=0.5),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


# -------------------------------------------------------------------------
# algorithms
# -------------------------------------------------------------------------


def test_auto_never_takes_a_tree_for_cosine():
    X = np.random.default_rng(0).normal(size=(3000, 2))  # Euclidean would take the tree here
    assert NearestNeighbors(metric="cosine").fit(X).fit_method_ == "brute"
    assert NearestNeighbors(metric="euclidean").fit(X).fit_method_ == "tree"


@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree"])
def test_trees_refuse_cosine_as_scikit_learn(algorithm):
    X = np.ones((4, 3))
    message = f"Metric 'cosine' not valid. Use sorted\\(sklearn.neighbors.VALID_METRICS\\['{algorithm}'\\]\\)"
    with pytest.raises(ValueError, match=message):
        sk_neighbors.NearestNeighbors(metric="cosine", algorithm=algorithm).fit(X)
    with pytest.raises(ValueError, match=message):
        NearestNeighbors(metric="cosine", algorithm=algorithm).fit(X)
    with pytest.raises(ValueError, match=message):
        fastknn.kneighbors(X, X, 2, metric="cosine", algorithm=algorithm)


def test_pruned_refuses_cosine():
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="algorithm='pruned' does not support metric='cosine'"):
        KNNClassifier(metric="cosine", algorithm="pruned").fit(X, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="algorithm='pruned' does not support metric='cosine'"):
        KNNClassifierCV(metrics=("cosine",), algorithm="pruned", n_neighbors=(1,), cv=2).fit(X, [0, 1, 0, 1])

