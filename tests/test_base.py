"""Tests for the shared neighbours base (fastknn/_base.py): the method dispatch, the
scikit-learn names, and the errors every estimator shares."""

import warnings

import numpy as np
import pytest
from sklearn import neighbors as sk_neighbors
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

import fastknn
from fastknn import _base

ALL_CLASSES = [
    fastknn.KNNClassifier,
    fastknn.KNNRegressor,
    fastknn.KNNTransformer,
    fastknn.NearestNeighbors,
    fastknn.RadiusNeighborsClassifier,
    fastknn.RadiusNeighborsRegressor,
    fastknn.RadiusNeighborsTransformer,
]


def test_scikit_learn_names_are_the_same_estimators():
    for name in ("KNeighborsClassifier", "KNeighborsRegressor", "KNeighborsTransformer"):
        theirs, ours = getattr(fastknn, name), getattr(fastknn, name.replace("KNeighbors", "KNN"))
        # A subclass for its name alone: nothing of its own but its docstring (and what
        # scikit-learn gives every subclass: set_*_request methods, set_output's keys).
        assert issubclass(theirs, ours) and theirs.__name__ == name
        own = [attribute for attribute in vars(theirs) if not attribute.startswith("_")]
        assert [attribute for attribute in own if not attribute.endswith("_request")] == []
    for name in ("NearestNeighbors", "RadiusNeighborsClassifier", "RadiusNeighborsRegressor",
                 "RadiusNeighborsTransformer", "KNeighborsClassifier", "KNeighborsRegressor", "KNeighborsTransformer"):
        assert hasattr(sk_neighbors, name) and name in fastknn.__all__
    from fastknn.estimators import KNNClassifier

    assert KNNClassifier is fastknn.KNNClassifier


def test_the_package_namespace_lists_the_public_names_only():
    # Tab completion shows what __all__ lists and the submodules imported so
    # far, not the standard-library modules the package itself uses.
    import types

    public = [
        name for name in dir(fastknn)
        if not name.startswith("_") and not isinstance(getattr(fastknn, name), types.ModuleType)
    ]
    assert "importlib" not in dir(fastknn)
    assert public == sorted(name for name in fastknn.__all__ if not name.startswith("_"))


def test_pipelines_name_the_steps_as_scikit_learn_does(random_split):
    # make_pipeline names a step after its class: a grid written for
    # scikit-learn's pipeline must find its parameters.
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, y_train = random_split[:2]
    for name in ("KNeighborsClassifier", "KNeighborsRegressor"):
        grid = {f"{name.lower()}__n_neighbors": [1, 3]}
        pipeline = make_pipeline(StandardScaler(), getattr(fastknn, name)())
        reference = make_pipeline(StandardScaler(), getattr(sk_neighbors, name)(algorithm="brute"))
        search = GridSearchCV(pipeline, grid, cv=3).fit(X_train, y_train)
        expected = GridSearchCV(reference, grid, cv=3).fit(X_train, y_train)
        np.testing.assert_allclose(search.cv_results_["mean_test_score"], expected.cv_results_["mean_test_score"])
        assert repr(search.best_estimator_.steps[-1][1]).startswith(name)
    transformer = fastknn.KNeighborsTransformer(n_neighbors=2).fit(X_train)
    np.testing.assert_array_equal(
        transformer.get_feature_names_out(),
        sk_neighbors.KNeighborsTransformer(n_neighbors=2).fit(X_train).get_feature_names_out(),
    )


@pytest.mark.parametrize("algorithm", ["brute", "pruned"])
def test_both_methods_give_the_same_answers(random_split, algorithm):
    """The dispatch in kneighbors_search and radius_search: same neighbours whichever method fit chose."""
    X_train, _, X_test, _ = random_split
    for metric in ("euclidean", "manhattan"):
        fitted = _base.fit_search(_base.as_search_dtype(X_train), metric, None, algorithm, 5)
        assert fitted.method == algorithm
        dist, ind = _base.kneighbors_search(fitted, X_test, 5)
        flat_dist, flat_ind, offsets = _base.radius_search(fitted, X_test, 2.0, sort_results=True)
        reference = _base.fit_search(_base.as_search_dtype(X_train), metric, None, "brute", 5)
        ref_dist, ref_ind = _base.kneighbors_search(reference, X_test, 5)
        np.testing.assert_array_equal(ind, ref_ind)
        np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)
        ref_flat = _base.radius_search(reference, X_test, 2.0, sort_results=True)
        np.testing.assert_array_equal(flat_ind, ref_flat[1])
        np.testing.assert_array_equal(offsets, ref_flat[2])


def test_radius_queries_on_the_training_set_exclude_only_the_sample_itself():
    X = np.array([[0.0], [0.0], [1.0], [5.0]])
    nn = fastknn.NearestNeighbors(radius=1.0).fit(X)
    distances, indices = nn.radius_neighbors(sort_results=True)
    assert [list(i) for i in indices] == [[1, 2], [0, 2], [0, 1], []]
    assert [list(d) for d in distances] == [[0.0, 1.0], [0.0, 1.0], [1.0, 1.0], []]
    graph = nn.radius_neighbors_graph(mode="distance")
    assert graph.shape == (4, 4) and graph.nnz == 6


def test_sort_results_needs_distances(random_split):
    X_train, _, X_test, _ = random_split
    nn = fastknn.NearestNeighbors().fit(X_train)
    with pytest.raises(ValueError, match="return_distance must be True if sort_results is True"):
        nn.radius_neighbors(X_test, return_distance=False, sort_results=True)
    with pytest.raises(ValueError, match="Unsupported mode"):
        nn.radius_neighbors_graph(X_test, mode="weights")
    with pytest.raises(ValueError, match="Unsupported mode"):
        nn.kneighbors_graph(X_test, mode="weights")


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_bad_inputs_give_scikit_learns_errors(cls, random_split):
    X_train, y_train, X_test, _ = random_split
    with pytest.raises(InvalidParameterError, match="'metric' parameter"):
        cls(metric="cosine_similarity").fit(X_train, y_train)
    with pytest.raises(InvalidParameterError, match="'p' parameter"):
        cls(p=0.5).fit(X_train, y_train)
    with pytest.raises(InvalidParameterError, match="'algorithm' parameter"):
        cls(algorithm="ball").fit(X_train, y_train)
    with pytest.raises(NotFittedError):
        unfitted = cls()
        (getattr(unfitted, "predict", None) or getattr(unfitted, "transform", None) or unfitted.kneighbors)(X_test)
    bad = X_train.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        cls().fit(bad, y_train)
    with pytest.raises(ValueError, match="n_jobs == 0"):
        cls(n_jobs=0).fit(X_train, y_train)
    fitted = cls(radius=10.0) if "radius" in cls().get_params() else cls()
    fitted.fit(X_train, y_train)
    query = getattr(fitted, "predict", None) or getattr(fitted, "transform", None) or fitted.kneighbors
    with pytest.raises(ValueError, match="features"):
        query(X_test[:, :3])


@pytest.mark.parametrize("cls", [fastknn.KNNRegressor, fastknn.NearestNeighbors, fastknn.KNNTransformer])
def test_bad_n_neighbors(cls, random_split):
    X_train, y_train, X_test, _ = random_split
    with pytest.raises(InvalidParameterError, match="'n_neighbors' parameter"):
        cls(n_neighbors=0).fit(X_train, y_train)
    fitted = cls().fit(X_train, y_train)
    with pytest.raises(ValueError, match="Expected n_neighbors <= n_samples_fit"):
        fitted.kneighbors(X_test, n_neighbors=len(X_train) + 1)
    with pytest.raises(ValueError, match="Expected n_neighbors < n_samples_fit"):  # as scikit-learn's
        fitted.kneighbors(n_neighbors=len(X_train))
    with pytest.raises(TypeError, match="does not take"):
        fitted.kneighbors(X_test, n_neighbors=2.5)


@pytest.mark.parametrize(
    "cls", [fastknn.RadiusNeighborsClassifier, fastknn.RadiusNeighborsRegressor, fastknn.RadiusNeighborsTransformer]
)
def test_bad_radius(cls, random_split):
    X_train, y_train, _, _ = random_split
    with pytest.raises(InvalidParameterError, match="'radius' parameter"):
        cls(radius=-1.0).fit(X_train, y_train)
    fitted = fastknn.NearestNeighbors(radius=1.0).fit(X_train)
    for radius in (-1.0, np.nan, "1.0"):
        # scikit-learn's error (it finds nothing for NaN: fastknn refuses it too)
        with pytest.raises(ValueError, match=f"radius == {radius!r}, must be >= 0"):
            fitted.radius_neighbors(X_train[:2], radius=radius)
        with pytest.raises(ValueError, match="must be >= 0"):
            fitted.radius_neighbors_graph(radius=radius)


@pytest.mark.parametrize(
    ("sparse", "algorithm"), [(False, "brute"), (False, "kd_tree"), (False, "pruned"), (True, "brute")],
    ids=["brute", "kd_tree", "pruned", "sparse"],
)
@pytest.mark.parametrize(("metric", "scale", "fitting_scale"), [("euclidean", 1e160, 1e150), ("minkowski", 1e110, 1e95)])
def test_overflowing_distances_raise_instead_of_losing_the_order(sparse, algorithm, metric, scale, fitting_scale):
    """Reduced distances above the largest float64 (infinite) cannot be ordered: a clear error, not neighbours by index."""
    import scipy.sparse

    rows = np.random.default_rng(15).normal(size=(3000, 3))
    convert = scipy.sparse.csr_matrix if sparse else np.asarray
    model = fastknn.NearestNeighbors(n_neighbors=3, metric=metric, p=3, algorithm=algorithm)
    model.fit(convert(rows * scale))
    with pytest.raises(ValueError, match=f"The {metric} distances between these rows overflow float64"):
        model.kneighbors(convert(rows[:5] * scale))
    with pytest.raises(ValueError, match="overflow float64"):
        fastknn.KNNClassifier(n_neighbors=3, metric=metric, p=3, algorithm=algorithm).fit(
            convert(rows * scale), np.arange(3000) % 2
        ).predict(convert(rows[:5] * scale))
    # Below the limit: the neighbours of the rows as given.
    fitted = fastknn.NearestNeighbors(n_neighbors=3, metric=metric, p=3, algorithm=algorithm).fit(convert(rows))
    expected_distances, expected = fitted.kneighbors(convert(rows[:5]))
    model.fit(convert(rows * fitting_scale))
    distances, indices = model.kneighbors(convert(rows[:5] * fitting_scale))
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(distances / fitting_scale, expected_distances, rtol=1e-12)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_every_scikit_learn_parameter_is_accepted(cls):
    """Code written for scikit-learn's class passes its keyword arguments unchanged."""
    import inspect

    theirs = getattr(sk_neighbors, {"KNNClassifier": "KNeighborsClassifier", "KNNRegressor": "KNeighborsRegressor",
                                    "KNNTransformer": "KNeighborsTransformer"}.get(cls.__name__, cls.__name__))
    assert set(inspect.signature(theirs).parameters) <= set(inspect.signature(cls).parameters)
    params = cls().get_params()
    assert params["leaf_size"] == theirs().get_params()["leaf_size"] == 30 and params["metric_params"] is None


def test_metric_params_give_the_minkowski_power_as_scikit_learn():
    rows = np.random.default_rng(16).normal(size=(200, 4))
    expected = fastknn.NearestNeighbors(n_neighbors=4, p=3).fit(rows).kneighbors(rows[:10])
    with pytest.warns(SyntaxWarning, match="Parameter p is found in metric_params"):
        model = fastknn.NearestNeighbors(n_neighbors=4, metric_params={"p": 3}).fit(rows)
    for got, want in zip(model.kneighbors(rows[:10]), expected):
        np.testing.assert_array_equal(got, want)
    assert model.effective_metric_ == "minkowski" and model.effective_metric_params_ == {"p": 3.0}
    with pytest.warns(SyntaxWarning):
        theirs = sk_neighbors.NearestNeighbors(metric_params={"p": 1}).fit(rows)
    with pytest.warns(SyntaxWarning):
        ours = fastknn.NearestNeighbors(metric_params={"p": 1}).fit(rows)
    assert ours.effective_metric_ == theirs.effective_metric_ == "manhattan"
    with pytest.raises(ValueError, match=r"metric_params \['w'\] are not supported"):
        fastknn.NearestNeighbors(metric_params={"w": np.ones(4)}).fit(rows)
    with pytest.raises(InvalidParameterError, match="metric_params"):
        fastknn.NearestNeighbors(metric_params=[("p", 3)]).fit(rows)


@pytest.mark.parametrize("n_features", [2, 5], ids=["grid", "kd_tree"])
def test_leaf_size_reaches_the_tree_and_changes_no_result(n_features):
    from sklearn.model_selection import GridSearchCV

    rows = np.random.default_rng(17).random((3000, n_features))
    labels = (rows[:, 0] > 0.5).astype(int)
    brute = fastknn.NearestNeighbors(n_neighbors=5, algorithm="brute").fit(rows).kneighbors(rows[:50])
    for leaf_size in (1, 7, 300):
        model = fastknn.NearestNeighbors(n_neighbors=5, algorithm="kd_tree", leaf_size=leaf_size).fit(rows)
        assert model.fit_method_ == "tree"
        tree = model._search_state.tree
        assert (tree.leaf_size if n_features == 2 else tree.leafsize) == leaf_size
        for got, want in zip(model.kneighbors(rows[:50]), brute):
            np.testing.assert_array_equal(got, want)
    with pytest.raises(InvalidParameterError, match="leaf_size"):
        fastknn.NearestNeighbors(leaf_size=0).fit(rows)
    search = GridSearchCV(fastknn.KNNClassifier(algorithm="kd_tree"), {"leaf_size": [5, 40]}, cv=2).fit(rows, labels)
    assert search.best_params_["leaf_size"] in (5, 40)


@pytest.mark.parametrize("algorithm", ["brute", "pruned", "kd_tree"])
def test_float64_queries_of_float32_rows_are_searched_in_float64(algorithm, rounded_query_ties):
    # As scikit-learn, which computes in float64: rounding the queries to the
    # rows' float32 would hand each one the wrong neighbour.
    rows, queries, nearest = rounded_query_ties
    for metric in ("euclidean", "manhattan", "chebyshev", "minkowski"):
        model = fastknn.NearestNeighbors(n_neighbors=2, algorithm=algorithm, metric=metric, p=3).fit(rows)
        assert model._fit_X.dtype == np.float32 and model.fit_method_ == algorithm.replace("kd_", "")
        dist, ind = model.kneighbors(queries)
        np.testing.assert_array_equal(ind[:, 0], nearest)
        np.testing.assert_allclose(dist[:, 0], 0.5 - 1e-9, rtol=1e-12)
        reference = sk_neighbors.NearestNeighbors(n_neighbors=2, algorithm="brute", metric=metric, p=3).fit(rows)
        np.testing.assert_array_equal(ind, reference.kneighbors(queries)[1])
        within = model.radius_neighbors(queries, radius=0.5 - 5e-10, return_distance=False)
        assert [list(found) for found in within] == [[j] for j in nearest]
        # Queries that float32 holds exactly stay on the float32 search.
        np.testing.assert_array_equal(model.kneighbors(rows.astype(np.float64))[1][:, 0], np.arange(len(rows)))
    labels = np.arange(len(rows)) % 2
    assert (fastknn.KNNClassifier(1, algorithm=algorithm).fit(rows, labels).predict(queries) == 1).all()
    small_integers = rows.astype(np.int16)  # stored as float32 too
    np.testing.assert_array_equal(fastknn.kneighbors(queries, small_integers, 1, algorithm=algorithm)[1][:, 0], nearest)
    # Beyond float32's range: searched in float64, with no overflow warning from the cast.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist, ind = fastknn.kneighbors([[1e39, 0, 0, 0]], rows, 1, metric="manhattan", algorithm=algorithm)
    assert dist[0, 0] == 1e39 and ind[0, 0] == 0  # every distance rounds to 1e39: a tie, won by row 0


def test_float64_queries_of_float32_rows_in_a_validation_search(rounded_query_ties):
    from fastknn.model_selection import KNNClassifierCV

    rows, queries, nearest = rounded_query_ties
    labels = np.arange(len(rows)) % 2
    search = KNNClassifierCV(n_neighbors=(1,)).fit(rows, labels, X_val=queries, y_val=labels[nearest])
    assert search.best_score_ == 1.0


@pytest.mark.parametrize("algorithm", ["brute", "pruned", "kd_tree", "sparse"])
def test_nan_is_refused_under_scikit_learns_assume_finite(random_split, algorithm):
    # assume_finite=True turns scikit-learn's check off; the kernels returned
    # rows never written (brute force, tree) or crashed on them (pruned).
    import scipy.sparse
    import sklearn

    X_train, y_train, X_test, _ = random_split
    bad_queries, bad_train = X_test.copy(), X_train.copy()
    bad_queries[1, 2] = bad_train[5, 2] = np.nan
    as_input = scipy.sparse.csr_matrix if algorithm == "sparse" else np.asarray
    params = {} if algorithm == "sparse" else {"algorithm": algorithm}
    with sklearn.config_context(assume_finite=True):
        model = fastknn.KNNClassifier(**params).fit(as_input(X_train), y_train)
        calls = [
            lambda: model.kneighbors(as_input(bad_queries)),
            lambda: model.predict(as_input(bad_queries)),
            lambda: fastknn.KNNClassifier(**params).fit(as_input(bad_train), y_train),
            lambda: fastknn.NearestNeighbors(radius=1.0, **params).fit(as_input(X_train)).radius_neighbors(bad_queries),
            lambda: fastknn.kneighbors(bad_queries, as_input(X_train), 3, **params),
        ]
        for call in calls:
            with pytest.raises(ValueError, match="contains NaN or infinity.*assume_finite"):
                call()
        assert model.kneighbors()[1].shape == (len(X_train), 5)  # the checked training set itself
