"""The sparse search (``fastknn._sparse``, ``fastknn._kernels.sparse``) against the naive
references, scikit-learn's brute force and fastknn's own dense search."""

import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestNeighbors as SklearnNearestNeighbors
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import fastknn
from fastknn import KNNClassifier, KNNRegressor, NearestNeighbors, RadiusNeighborsClassifier
from fastknn._sparse import as_sparse_search

import naive

# (metric, p) with exact float64 sums on integer-valued data, and cosine.
SPARSE_METRICS = [
    pytest.param("euclidean", 2, id="euclidean"),
    pytest.param("manhattan", 2, id="manhattan"),
    pytest.param("chebyshev", 2, id="chebyshev"),
    pytest.param("minkowski", 3, id="minkowski-3"),
    pytest.param("cosine", 2, id="cosine"),
]


def _integer_sparse(rng, n_rows, n_features, density):
    """Integer-valued CSR rows in [-3, 3] with empty rows and exact duplicate rows."""
    dense = rng.integers(-3, 4, size=(n_rows, n_features)) * (rng.random((n_rows, n_features)) < density)
    dense[::11] = 0  # empty rows
    dense[5::13] = dense[4::13][: len(dense[5::13])]  # duplicates of the previous row
    return dense.astype(np.float64)


def _with_duplicate_entries(dense):
    """A COO-built CSR matrix equal to ``dense``, its entries split in two duplicates, indices unsorted."""
    rows, columns = np.nonzero(dense)
    values = dense[rows, columns]
    order = np.random.default_rng(3).permutation(2 * len(rows))
    rows = np.concatenate([rows, rows])[order]
    columns = np.concatenate([columns, columns])[order]
    halves = np.concatenate([values * 0.25, values * 0.75])[order]
    # scipy's COO -> CSR would sum the duplicates: build the CSR arrays directly.
    coo = scipy.sparse.coo_matrix((halves, (rows, columns)), shape=dense.shape)
    by_row = np.argsort(coo.row, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(coo.row, minlength=dense.shape[0]))])
    matrix = scipy.sparse.csr_matrix((coo.data[by_row], coo.col[by_row], indptr), shape=dense.shape)
    assert not matrix.has_canonical_format
    return matrix


@pytest.fixture(scope="session")
def sparse_split():
    """``(train, queries)`` dense float64, integer-valued: 90 x 40 and 25 x 40, ~15 % non-zeros."""
    rng = np.random.default_rng(17)
    return _integer_sparse(rng, 90, 40, 0.15), _integer_sparse(rng, 25, 40, 0.15)


def naive_cosine(X, Y):
    """scikit-learn's cosine distance written out: 1 - x.y / (|x| |y|), 1 for a zero row, in [0, 2]."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    norms_x, norms_y = np.linalg.norm(X, axis=1), np.linalg.norm(Y, axis=1)
    scale = np.outer(norms_x, norms_y)
    with np.errstate(invalid="ignore", divide="ignore"):
        similarity = np.where(scale > 0, X @ Y.T / scale, 0.0)
    return np.clip(1.0 - similarity, 0.0, 2.0)


def naive_sorted(X, Y, metric, p):
    """Distances of every row of Y to each row of X, ascending, ties by index."""
    if metric == "cosine":
        distances = naive_cosine(X, Y)
    else:
        distances = naive.to_distance(naive.rdist(X, Y, metric, p), metric, p)
    order = np.argsort(distances, axis=1, kind="stable")
    return np.take_along_axis(distances, order, axis=1), order, distances


def assert_same_neighbors(distances, indices, X, Y, metric, p):
    """Exact neighbours, ties by index; cosine (whose naive sums round otherwise) to 1e-12."""
    expected_distances, expected_indices, all_distances = naive_sorted(X, Y, metric, p)
    k = indices.shape[1]
    np.testing.assert_allclose(distances, expected_distances[:, :k], rtol=0, atol=1e-12)
    if metric == "cosine":
        np.testing.assert_allclose(np.take_along_axis(all_distances, indices, axis=1), distances, rtol=0, atol=1e-12)
        steps = np.diff(distances, axis=1)
        assert np.all(steps >= 0) and np.all(np.diff(indices, axis=1)[steps == 0] > 0)
    else:
        np.testing.assert_array_equal(indices, expected_indices[:, :k])


@pytest.mark.parametrize("metric, p", SPARSE_METRICS)
@pytest.mark.parametrize("n_neighbors", [1, 7, 90])
def test_kneighbors_matches_naive(sparse_split, metric, p, n_neighbors):
    train, queries = sparse_split
    fitted = NearestNeighbors(n_neighbors=n_neighbors, metric=metric, p=p).fit(scipy.sparse.csr_matrix(train))
    assert fitted.fit_method_ == "sparse"
    distances, indices = fitted.kneighbors(scipy.sparse.csr_matrix(queries))
    assert_same_neighbors(distances, indices, queries, train, metric, p)


@pytest.mark.parametrize("metric, p", SPARSE_METRICS)
def test_kneighbors_of_the_training_set_excludes_itself(sparse_split, metric, p):
    train, _ = sparse_split
    fitted = NearestNeighbors(n_neighbors=4, metric=metric, p=p).fit(scipy.sparse.csr_matrix(train))
    distances, indices = fitted.kneighbors()
    expected_distances, expected_indices = (
        SklearnNearestNeighbors(n_neighbors=4, metric=metric, p=p, algorithm="brute").fit(train).kneighbors()
    )
    np.testing.assert_allclose(distances, expected_distances, rtol=0, atol=1e-12)
    assert np.all(indices != np.arange(len(train))[:, None])


@pytest.mark.parametrize(
    "to_sparse",
    [scipy.sparse.csr_matrix, scipy.sparse.csc_matrix, scipy.sparse.csr_array, scipy.sparse.coo_matrix, _with_duplicate_entries],
    ids=["csr", "csc", "csr_array", "coo", "duplicates-unsorted"],
)
@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("cosine", 2)])
def test_formats_give_the_same_answer_and_are_left_unchanged(sparse_split, to_sparse, metric, p):
    train, queries = sparse_split
    train_matrix, query_matrix = to_sparse(train), to_sparse(queries)
    before = train_matrix.copy()
    distances, indices = fastknn.kneighbors(query_matrix, train_matrix, 5, metric=metric, p=p)
    assert_same_neighbors(distances, indices, queries, train, metric, p)
    assert type(train_matrix) is type(before)
    if hasattr(before, "indices"):
        np.testing.assert_array_equal(train_matrix.indices, before.indices)
        np.testing.assert_array_equal(train_matrix.data, before.data)


@pytest.mark.parametrize("metric, p", [("euclidean", 2), ("manhattan", 2), ("minkowski", 3), ("chebyshev", 2)])
def test_sparse_equals_fastknn_dense(sparse_split, metric, p):
    train, queries = sparse_split
    dense = KNNClassifier(n_neighbors=6, metric=metric, p=p, algorithm="brute")
    labels = np.arange(len(train)) % 3
    dense_result = dense.fit(train, labels).kneighbors(queries)
    sparse = KNNClassifier(n_neighbors=6, metric=metric, p=p).fit(scipy.sparse.csr_matrix(train), labels)
    sparse_result = sparse.kneighbors(scipy.sparse.csr_matrix(queries))
    np.testing.assert_array_equal(sparse_result[1], dense_result[1])
    np.testing.assert_allclose(sparse_result[0], dense_result[0], rtol=1e-14)
    np.testing.assert_array_equal(sparse.predict(queries), dense.predict(queries))


# Not Chebyshev: on sparse rows a query's largest value decides many of its
# distances, which tie (the naive and dense comparisons above cover it).
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "cosine", "minkowski"])
def test_predictions_equal_scikit_learn_on_continuous_data(metric):
    rng = np.random.default_rng(5)
    X = scipy.sparse.random(160, 60, density=0.1, format="csr", random_state=rng).toarray()
    X[120::9] = 0.0  # empty queries (empty training rows would tie, which scikit-learn orders otherwise)
    X = scipy.sparse.csr_matrix(X)
    y = rng.integers(0, 3, size=160)
    train, queries, y_train = X[:120], X[120:], y[:120]
    params = {"n_neighbors": 5, "metric": metric, "p": 3, "weights": "distance"}
    ours = KNNClassifier(**params).fit(train, y_train)
    # scikit-learn's sparse brute force has no Minkowski p=3: it gets the dense rows.
    sklearn_sparse = metric in ("euclidean", "manhattan", "cosine")
    train_reference = train if sklearn_sparse else train.toarray()
    theirs = KNeighborsClassifier(algorithm="brute", **params).fit(train_reference, y_train)
    if not sklearn_sparse:
        queries_reference = queries.toarray()
    else:
        queries_reference = queries
    np.testing.assert_array_equal(ours.predict(queries), theirs.predict(queries_reference))
    np.testing.assert_allclose(ours.predict_proba(queries), theirs.predict_proba(queries_reference), atol=1e-12)
    ours_distances, ours_indices = ours.kneighbors(queries)
    theirs_distances, theirs_indices = theirs.kneighbors(queries_reference)
    np.testing.assert_array_equal(ours_indices, theirs_indices)
    np.testing.assert_allclose(ours_distances, theirs_distances, rtol=1e-10, atol=1e-12)
    values = rng.normal(size=120)
    regression = KNNRegressor(**params).fit(train, values).predict(queries)
    reference = KNeighborsRegressor(algorithm="brute", **params).fit(train_reference, values)
    np.testing.assert_allclose(regression, reference.predict(queries_reference))


def test_mixed_dense_and_sparse_sides(sparse_split):
    train, queries = sparse_split
    expected = fastknn.kneighbors(queries, train, 5)
    for query_side, train_side in [(queries, scipy.sparse.csr_matrix(train)), (scipy.sparse.csr_matrix(queries), train)]:
        distances, indices = fastknn.kneighbors(query_side, train_side, 5)
        np.testing.assert_array_equal(indices, expected[1])
        np.testing.assert_allclose(distances, expected[0], rtol=1e-14)
    fitted = NearestNeighbors(n_neighbors=5).fit(train)
    np.testing.assert_array_equal(fitted.kneighbors(scipy.sparse.csc_matrix(queries))[1], expected[1])


def test_dense_float16_queries_of_a_sparse_training_set(sparse_split):
    # scipy.sparse cannot hold float16: the queries are cast before they
    # are made sparse, as scikit-learn upcasts them.
    train, queries = sparse_split
    half = queries.astype(np.float16)
    expected = fastknn.kneighbors(half.astype(np.float64), train, 4)
    fitted = NearestNeighbors(n_neighbors=4).fit(scipy.sparse.csr_matrix(train))
    for _, indices in (fastknn.kneighbors(half, scipy.sparse.csr_matrix(train), 4), fitted.kneighbors(half)):
        np.testing.assert_array_equal(indices, expected[1])


def test_float32_input_stays_float32(sparse_split):
    train, queries = sparse_split
    fitted = NearestNeighbors(n_neighbors=3, metric="cosine").fit(scipy.sparse.csr_matrix(train, dtype=np.float32))
    assert fitted._fit_X.dtype == np.float32
    distances, indices = fitted.kneighbors(scipy.sparse.csr_matrix(queries, dtype=np.float32))
    assert_same_neighbors(distances, indices, queries, train, "cosine", 2)


def test_huge_values_rank_exactly():
    train = scipy.sparse.csr_matrix(np.array([[1e300, 1e300, 0.0], [1e300, 0.0, 1e300], [0.0, 1.0, 2.0], [3.0, 0.0, 0.0]]))
    distances, indices = fastknn.kneighbors(train[:2], train, 4, metric="cosine")
    np.testing.assert_array_equal(indices, [[0, 3, 1, 2], [1, 3, 2, 0]])
    np.testing.assert_allclose(distances[0], [0.0, 1 - 0.5**0.5, 0.5, 1 - 0.1**0.5], atol=1e-12)
    distances, indices = fastknn.kneighbors(train, train, 4, metric="manhattan")
    np.testing.assert_array_equal(indices[:, :2], [[0, 1], [1, 0], [2, 3], [3, 2]])
    np.testing.assert_array_equal(distances[:, 1], [2e300, 2e300, 6.0, 6.0])


def test_cosine_zero_rows_are_at_distance_one():
    train = scipy.sparse.csr_matrix(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]))
    distances, indices = fastknn.kneighbors(np.zeros((1, 2)), train, 4, metric="cosine")
    np.testing.assert_array_equal(indices, [[0, 1, 2, 3]])
    np.testing.assert_array_equal(distances, [[1.0, 1.0, 1.0, 1.0]])
    distances, indices = fastknn.kneighbors([[2.0, 0.0]], train, 4, metric="cosine")
    np.testing.assert_array_equal(indices, [[1, 0, 2, 3]])
    np.testing.assert_array_equal(distances, [[0.0, 1.0, 1.0, 2.0]])


@pytest.mark.parametrize("metric, p", SPARSE_METRICS)
@pytest.mark.parametrize("sort_results", [False, True])
def test_radius_neighbors_matches_naive(sparse_split, metric, p, sort_results):
    train, queries = sparse_split
    radius = 0.9 if metric == "cosine" else 4.0
    fitted = NearestNeighbors(radius=radius, metric=metric, p=p).fit(scipy.sparse.csr_matrix(train))
    distances, indices = fitted.radius_neighbors(scipy.sparse.csr_matrix(queries), sort_results=sort_results)
    _, _, all_distances = naive_sorted(queries, train, metric, p)
    tolerance = 1e-12 if metric == "cosine" else 0.0
    for row, found_distances, found in zip(all_distances, distances, indices):
        expected = np.flatnonzero(row <= radius)
        if sort_results:
            expected = expected[np.argsort(row[expected], kind="stable")]
        if metric == "cosine":  # rounding can move a row at the radius across it
            assert set(np.flatnonzero(row <= radius - tolerance)) <= set(found) <= set(np.flatnonzero(row <= radius + tolerance))
        else:
            np.testing.assert_array_equal(found, expected)
        np.testing.assert_allclose(found_distances, row[found], rtol=0, atol=1e-12)


def test_radius_classifier_on_sparse_rows(sparse_split):
    train, queries = sparse_split
    labels = np.arange(len(train)) % 2
    ours = RadiusNeighborsClassifier(radius=4.0, outlier_label=0).fit(scipy.sparse.csr_matrix(train), labels)
    dense = RadiusNeighborsClassifier(radius=4.0, outlier_label=0).fit(train, labels)
    np.testing.assert_array_equal(ours.predict(scipy.sparse.csr_matrix(queries)), dense.predict(queries))


def _topic_texts(n_texts, rng):
    """Random texts of three topics over a 40-word vocabulary: every two share words, so no distance ties."""
    vocabulary = np.array([f"w{i}" for i in range(40)])
    topics = rng.integers(0, 3, size=n_texts)
    texts = []
    for topic in topics:
        weights = np.ones(40)
        weights[topic * 10 : topic * 10 + 10] = 4.0
        texts.append(" ".join(rng.choice(vocabulary, size=20, p=weights / weights.sum())))
    return texts, topics


def test_tfidf_pipeline_in_grid_search():
    texts, topics = _topic_texts(80, np.random.default_rng(11))
    pipeline = Pipeline([("tfidf", TfidfVectorizer()), ("knn", KNNClassifier())])
    grid = {"knn__n_neighbors": [1, 5], "knn__metric": ["cosine", "euclidean", "manhattan"]}
    search = GridSearchCV(pipeline, grid, cv=3).fit(texts[:60], topics[:60])
    # The reference densifies: scikit-learn's sparse Manhattan distances are
    # wrong on the unsorted indices TfidfVectorizer returns (1.9.1: 3.45 off).
    reference = Pipeline([
        ("tfidf", TfidfVectorizer()),
        ("dense", FunctionTransformer(lambda X: X.toarray(), accept_sparse=True)),
        ("knn", KNeighborsClassifier(algorithm="brute")),
    ])
    reference_search = GridSearchCV(reference, grid, cv=3).fit(texts[:60], topics[:60])
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], reference_search.cv_results_["mean_test_score"])
    assert search.best_estimator_.named_steps["knn"].fit_method_ == "sparse"
    np.testing.assert_array_equal(search.predict(texts[60:]), reference_search.predict(texts[60:]))


def test_trees_and_pruning_warn_and_run_the_sparse_search(sparse_split):
    train, queries = sparse_split
    matrix = scipy.sparse.csr_matrix(train)
    expected = NearestNeighbors(n_neighbors=3).fit(matrix).kneighbors(queries)
    for algorithm in ("kd_tree", "ball_tree", "pruned"):
        with pytest.warns(UserWarning, match=f"cannot use {algorithm} with sparse input"):
            fitted = NearestNeighbors(n_neighbors=3, algorithm=algorithm).fit(matrix)
        assert fitted.fit_method_ == "sparse"
        np.testing.assert_array_equal(fitted.kneighbors(queries)[1], expected[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NearestNeighbors(algorithm="brute").fit(matrix)


def test_bad_sparse_input(sparse_split):
    train, queries = sparse_split
    matrix = scipy.sparse.csr_matrix(train)
    with_nan = matrix.copy()
    with_nan.data[0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        NearestNeighbors().fit(with_nan)
    fitted = NearestNeighbors().fit(matrix)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        fitted.kneighbors(with_nan)
    with pytest.raises(ValueError, match="X has 39 features, but NearestNeighbors is expecting 40 features"):
        fitted.kneighbors(matrix[:, :39])
    with pytest.raises(ValueError, match="X has 39 features but Y has 40"):
        fastknn.kneighbors(matrix[:, :39], matrix)


def test_sparse_cosine_equals_the_dense_cosine(sparse_split):
    train, queries = sparse_split
    dense_dist, dense_ind = NearestNeighbors(n_neighbors=4, metric="cosine").fit(train).kneighbors(queries)
    fitted = NearestNeighbors(n_neighbors=4, metric="cosine").fit(scipy.sparse.csr_matrix(train))
    sparse_dist, sparse_ind = fitted.kneighbors(scipy.sparse.csr_matrix(queries))
    np.testing.assert_array_equal(sparse_ind, dense_ind)
    np.testing.assert_allclose(sparse_dist, dense_dist, rtol=1e-12, atol=1e-12)


def test_as_sparse_search_canonical_copy():
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    matrix = _with_duplicate_entries(dense)
    canonical = as_sparse_search(matrix)
    assert canonical.has_canonical_format and not matrix.has_canonical_format
    np.testing.assert_array_equal(canonical.toarray(), dense)
    assert as_sparse_search(scipy.sparse.csr_matrix(dense.astype(np.int8))).dtype == np.float32
    assert as_sparse_search(scipy.sparse.csr_matrix(dense.astype(np.int64))).dtype == np.float64


def _exact_order(queries, train, metric, n_neighbors):
    """The k nearest rows by ``_exact_rdist`` of every pair, ties by index: the answer the bounds must keep."""
    from fastknn._kernels.sparse import _exact_rdist
    from fastknn._sparse import SPARSE_METRIC_IDS, sparse_rows

    q_rows = sparse_rows(as_sparse_search(queries), metric, None)
    t_rows = sparse_rows(as_sparse_search(train), metric, None)
    rdist = np.empty((len(q_rows.norms), len(t_rows.norms)))
    for i in range(rdist.shape[0]):
        q = slice(q_rows.indptr[i], q_rows.indptr[i + 1])
        for j in range(rdist.shape[1]):
            t = slice(t_rows.indptr[j], t_rows.indptr[j + 1])
            rdist[i, j] = _exact_rdist(
                q_rows.indices[q], q_rows.data[q], t_rows.indices[t], t_rows.data[t], SPARSE_METRIC_IDS[metric], 0.0
            )
    order = np.argsort(rdist, axis=1, kind="stable")[:, :n_neighbors]
    return np.take_along_axis(rdist, order, axis=1), order


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("scale", [2.0**-540, 1.0, 1e155], ids=["subnormal-products", "unit", "overflowing-norms"])
def test_bounded_pass_keeps_the_exact_answer(metric, scale):
    # Rows of very different lengths and norms (the bound uses the longest
    # row's length), near ties within the rounding bound (0.1 + 0.2 and
    # 0.3 as values), scaled so that the cosine's product of norms is
    # subnormal or the Euclidean norms overflow: the answer is still the
    # one of ranking every row by the exact distance.
    rng = np.random.default_rng(5)
    dense = np.where(rng.random((60, 30)) < 0.2, rng.integers(1, 4, (60, 30)) * 0.1, 0.0)
    dense[0] = 0.1
    dense[1, :3] = [0.1 + 0.2, 0.3, 0.3]
    dense[2, :3] = [0.3, 0.1 + 0.2, 0.3]
    dense[3] = 0.0
    dense[4, :3] = [0.3, 0.3, 0.3]
    train, queries = scipy.sparse.csr_matrix(dense[:50] * scale), scipy.sparse.csr_matrix(dense[50:] * scale)
    queries = scipy.sparse.vstack([queries, train[1:5]]).tocsr()
    for n_neighbors in (1, 4, 50):
        expected_rdist, expected = _exact_order(queries, train, metric, n_neighbors)
        fitted = NearestNeighbors(n_neighbors=n_neighbors, metric=metric).fit(train)
        if not np.isfinite(expected_rdist[:, -1]).all():  # overflowing distances cannot be ordered
            with pytest.raises(ValueError, match="overflow float64"):
                fitted.kneighbors(queries)
            continue
        distances, indices = fitted.kneighbors(queries)
        np.testing.assert_array_equal(indices, expected)
        reduced = distances if metric == "cosine" else distances**2
        np.testing.assert_allclose(reduced, expected_rdist, rtol=1e-12, atol=0)
    # Radius queries: a reduced radius halfway between two exact distances.
    sorted_rdist, order = _exact_order(queries, train, metric, train.shape[0])
    all_rdist = np.empty_like(sorted_rdist)
    np.put_along_axis(all_rdist, order, sorted_rdist, axis=1)
    values = np.unique(all_rdist[np.isfinite(all_rdist)])
    if len(values) == 1:  # squared distances that all underflow to zero
        values = np.append(values, 1.0)
    reduced_radius = 0.5 * (values[len(values) // 3] + values[len(values) // 3 + 1])
    radius = reduced_radius if metric == "cosine" else np.sqrt(reduced_radius)
    _, found = NearestNeighbors(radius=radius, metric=metric).fit(train).radius_neighbors(queries, radius=radius)
    for row, rows in enumerate(found):
        np.testing.assert_array_equal(np.sort(rows), np.flatnonzero(all_rdist[row] <= reduced_radius))


def test_compact_inverted_index():
    from fastknn._sparse import UINT16_ROWS, prepare_sparse

    rng = np.random.default_rng(2)
    train = as_sparse_search(scipy.sparse.random(50, 20, density=0.3, random_state=rng))
    for metric, rows, values in [("euclidean", np.uint16, np.float32), ("cosine", np.uint16, np.float32),
                                 ("manhattan", np.uint16, np.float64)]:
        index = prepare_sparse(train, metric, None)
        assert index.col_rows.dtype == rows and index.col_data.dtype == values
        assert index.value_rounding == (2.0**-24 if values == np.float32 else 0.0)
    # Values that float32 cannot hold within a relative 2**-24 keep float64.
    for scale in (1e-40, 1e39):
        assert prepare_sparse(as_sparse_search(train * scale), "euclidean", None).col_data.dtype == np.float64
    # float32 training values are the index's values, exactly.
    index = prepare_sparse(as_sparse_search(train.astype(np.float32)), "cosine", None)
    assert index.col_data.dtype == np.float32 and index.value_rounding == 0.0
    # Beyond 2**16 rows the row numbers take 32 bits: integer rows, exact sums.
    dense = np.zeros((UINT16_ROWS + 40, 6))
    dense[-40:] = rng.integers(-3, 4, (40, 6))
    dense[5] = dense[-1]
    big = as_sparse_search(scipy.sparse.csr_matrix(dense))
    assert prepare_sparse(big, "euclidean", None).col_rows.dtype == np.int32
    distances, indices = fastknn.kneighbors(big[-8:], big, 3, metric="euclidean")
    assert_same_neighbors(distances, indices, dense[-8:], dense, "euclidean", 2)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_float32_index_keeps_the_exact_answer(metric):
    # Rows that differ from each other by about 1e-9, far below float32's
    # resolution: the index holds them alike, and the exact re-ranking must
    # still tell them apart, each row its own nearest.
    rng = np.random.default_rng(11)
    base = np.where(rng.random((4, 40)) < 0.3, rng.random((4, 40)), 0.0)
    dense = np.repeat(base, 30, axis=0) * (1.0 + 1e-9 * rng.standard_normal((120, 40)))
    train = scipy.sparse.csr_matrix(dense)
    fitted = NearestNeighbors(n_neighbors=5, metric=metric).fit(train)
    assert fitted._search_state.sparse_train.col_data.dtype == np.float32
    expected_rdist, expected = _exact_order(train, train, metric, 5)
    distances, indices = fitted.kneighbors(train)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances if metric == "cosine" else distances**2, expected_rdist, rtol=1e-12, atol=0)
