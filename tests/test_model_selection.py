"""Tests for fastknn.model_selection.KNNClassifierCV.

GridSearchCV over KNNClassifier is the oracle: same splits, same scores to the
last digit, same best candidate, same cv_results_ layout.
"""

import doctest
import pickle

import numpy as np
import scipy.sparse
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import make_scorer, recall_score
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    PredefinedSplit,
    ShuffleSplit,
)
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn import KNNClassifier, KNNRegressor, model_selection
from fastknn.datasets import load_mnist_split
from fastknn.model_selection import KNNClassifierCV, KNNRegressorCV

GRID = {"n_neighbors": (1, 3, 7), "metrics": ("euclidean", "manhattan"), "weights": ("uniform", "distance")}
SMALL_GRID = {"n_neighbors": (1, 5), "metrics": ("manhattan",), "weights": ("uniform", "distance")}


@pytest.fixture(scope="module")
def digits():
    """300 training and 100 validation digits of the packaged data, float32."""
    X, y, X_val, y_val = load_mnist_split("1000")[:4]
    return X[:300], y[:300], X_val[:100], y_val[:100]


def grid_search(
    cv, *, n_neighbors=GRID["n_neighbors"], metrics=GRID["metrics"], weights=GRID["weights"], p=2, **kwargs
):
    """The GridSearchCV that KNNClassifierCV with the same arguments reproduces."""
    param_grid = {"n_neighbors": list(n_neighbors), "metric": list(metrics), "weights": list(weights)}
    return GridSearchCV(KNNClassifier(p=p), param_grid, cv=cv, **kwargs)


def assert_same_search(search, reference):
    """Equal scores, ranks, candidates and keys; times are only checked for shape."""
    results, expected = search.cv_results_, reference.cv_results_
    assert list(results) == list(expected)
    for key, value in expected.items():
        if key == "params":
            assert results[key] == value
        elif key.endswith("_time"):
            assert results[key].shape == value.shape
            assert np.all(np.isfinite(results[key])) and np.all(results[key] >= 0)
        elif key.startswith("param_"):
            assert results[key].dtype == value.dtype
            assert np.array_equal(results[key].mask, value.mask)
            assert list(results[key]) == list(value)
        else:
            assert results[key].dtype == value.dtype, key
            np.testing.assert_array_equal(results[key], value, err_msg=key)
    assert search.best_index_ == reference.best_index_
    assert search.best_params_ == reference.best_params_
    assert search.best_score_ == reference.best_score_
    assert search.n_splits_ == reference.n_splits_


@pytest.mark.parametrize(
    "cv",
    [
        None,
        3,
        KFold(3, shuffle=True, random_state=0),
        ShuffleSplit(n_splits=2, test_size=0.25, random_state=0),
        PredefinedSplit(np.arange(300) % 4 - 1),
        [(np.arange(100, 300), np.arange(100)), (np.arange(200), np.arange(200, 300))],
    ],
    ids=["default", "int", "KFold", "ShuffleSplit", "PredefinedSplit", "list"],
)
def test_same_results_as_grid_search(digits, cv):
    X, y = digits[:2]
    # The full grid once; a smaller one for the other splitters.
    grid = GRID if isinstance(cv, int) else SMALL_GRID
    search = KNNClassifierCV(**grid, cv=cv).fit(X, y)
    assert_same_search(search, grid_search(cv, **grid).fit(X, y))


@pytest.mark.parametrize(
    "scoring",
    ["balanced_accuracy", "f1_macro", "neg_log_loss", None, make_scorer(recall_score, average="micro")],
    ids=["balanced_accuracy", "f1_macro", "neg_log_loss", "None", "callable"],
)
def test_same_results_as_grid_search_for_scorers(digits, scoring):
    X, y = digits[:2]
    search = KNNClassifierCV(**SMALL_GRID, cv=3, scoring=scoring).fit(X, y)
    assert_same_search(search, grid_search(3, **SMALL_GRID, scoring=scoring).fit(X, y))


def test_same_results_for_other_metrics_and_weightings(digits):
    X, y = digits[0][:150], digits[1][:150]
    params = {
        "n_neighbors": np.array([4, 2]),
        "metrics": ("l1", "chebyshev", "minkowski", "cityblock"),
        "weights": (None, "distance", lambda distances: np.exp(-distances)),
        "p": 3,
    }
    search = KNNClassifierCV(**params, cv=3).fit(X, y)
    assert_same_search(search, grid_search(3, **params).fit(X, y))


def test_same_results_as_scikit_learn_without_ties():
    # Continuous data: no two distances tie, so scikit-learn's neighbours are
    # the same and so are the predictions.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=120) > 0).astype(int) + (X[:, 1] > 1)
    param_grid = {
        "n_neighbors": [1, 3, 5, 9, 15, 25],
        "metric": ["euclidean", "manhattan"],
        "weights": ["uniform", "distance"],
    }
    reference = GridSearchCV(KNeighborsClassifier(algorithm="brute"), param_grid, cv=3).fit(X, y)
    search = KNNClassifierCV(cv=3).fit(X, y)
    for key in ("split0_test_score", "split1_test_score", "split2_test_score", "rank_test_score"):
        np.testing.assert_array_equal(search.cv_results_[key], reference.cv_results_[key])
    assert search.best_params_ == reference.best_params_


def test_same_results_with_groups(digits):
    X, y = digits[:2]
    groups = np.arange(y.size) % 7
    search = KNNClassifierCV(**GRID, cv=GroupKFold(3)).fit(X, y, groups=groups)
    assert_same_search(search, grid_search(GroupKFold(3)).fit(X, y, groups=groups))


def test_class_missing_from_a_training_split():
    # Class "c" appears only in the first test fold, so the first fold's
    # classifiers never predict it.
    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(30, 4)).astype(np.float64)
    y = np.array(["a", "b"] * 12 + ["c"] * 6, dtype=object)
    cv = PredefinedSplit(np.r_[np.arange(24) % 2, np.zeros(6, dtype=int)])
    search = KNNClassifierCV((1, 2, 5), cv=cv).fit(X, y)
    assert_same_search(search, grid_search(cv, n_neighbors=(1, 2, 5)).fit(X, y))
    np.testing.assert_array_equal(search.classes_, ["a", "b", "c"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n_samples=st.integers(12, 40),
    n_features=st.integers(1, 4),
    n_classes=st.integers(2, 4),
    n_splits=st.integers(2, 3),
    n_neighbors=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_same_results_on_small_data_with_ties(n_samples, n_features, n_classes, n_splits, n_neighbors, seed):
    # Few distinct integer values: many exact ties, duplicates and zero distances.
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(n_samples, n_features)).astype(np.float32)
    y = rng.integers(0, n_classes, size=n_samples)
    cv = KFold(n_splits, shuffle=True, random_state=seed)
    search = KNNClassifierCV(n_neighbors, cv=cv).fit(X, y)
    assert_same_search(search, grid_search(cv, n_neighbors=n_neighbors).fit(X, y))


def test_validation_set(digits):
    X, y, X_val, y_val = digits
    search = KNNClassifierCV(**GRID).fit(X, y, X_val=X_val, y_val=y_val)

    # The scores of a PredefinedSplit on the concatenated data...
    fold = np.r_[np.full(y.size, -1), np.zeros(y_val.size, dtype=int)]
    reference = grid_search(PredefinedSplit(fold)).fit(np.vstack([X, X_val]), np.r_[y, y_val])
    assert_same_search(search, reference)
    # ... but the best candidate is refitted on the training data alone.
    assert search.n_splits_ == 1
    assert search.best_estimator_.n_samples_fit_ == y.size
    expected = KNNClassifier(**search.best_params_).fit(X, y)
    np.testing.assert_array_equal(search.predict(X_val), expected.predict(X_val))


def test_validation_set_errors(digits):
    X, y, X_val, y_val = digits
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        KNNClassifierCV().fit(X, y, X_val=X_val)
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        KNNClassifierCV().fit(X, y, y_val=y_val)
    with pytest.raises(ValueError, match="leave cv and groups at None"):
        KNNClassifierCV(cv=3).fit(X, y, X_val=X_val, y_val=y_val)
    with pytest.raises(ValueError, match="leave cv and groups at None"):
        KNNClassifierCV().fit(X, y, groups=np.zeros(y.size), X_val=X_val, y_val=y_val)
    with pytest.raises(ValueError, match="features"):
        KNNClassifierCV().fit(X, y, X_val=X_val[:, :10], y_val=y_val)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        KNNClassifierCV().fit(X, y, X_val=X_val, y_val=y_val[:-1])


def test_cv_results_load_into_a_dataframe_as_grid_search(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits[:2]
    frame = pd.DataFrame(KNNClassifierCV(**GRID, cv=2).fit(X, y).cv_results_)
    expected = pd.DataFrame(grid_search(2).fit(X, y).cv_results_)
    assert list(frame.columns) == list(expected.columns)
    assert frame.dtypes.equals(expected.dtypes)
    pd.testing.assert_frame_equal(frame.filter(like="test_score"), expected.filter(like="test_score"))
    pd.testing.assert_frame_equal(frame.filter(like="param_"), expected.filter(like="param_"))


def test_refit_and_delegation(digits):
    X, y, X_val, y_val = digits
    search = KNNClassifierCV(**GRID, cv=3).fit(X, y)
    best = search.best_estimator_
    assert isinstance(best, KNNClassifier)
    assert best.get_params() == KNNClassifier(**search.best_params_).get_params()
    assert best.n_samples_fit_ == y.size
    assert search.best_score_ == search.cv_results_["mean_test_score"][search.best_index_]
    assert search.refit_time_ >= 0
    np.testing.assert_array_equal(search.classes_, np.arange(10))
    assert search.n_features_in_ == X.shape[1]

    expected = KNNClassifier(**search.best_params_).fit(X, y)
    np.testing.assert_array_equal(search.predict(X_val), expected.predict(X_val))
    np.testing.assert_array_equal(search.predict_proba(X_val), expected.predict_proba(X_val))
    for got, want in zip(search.kneighbors(X_val[:5], 4), expected.kneighbors(X_val[:5], 4), strict=True):
        np.testing.assert_array_equal(got, want)
    assert search.score(X_val, y_val) == expected.score(X_val, y_val)


def test_score_uses_the_scoring(digits):
    X, y, X_val, y_val = digits
    search = KNNClassifierCV((1, 3), cv=2, scoring="balanced_accuracy").fit(X, y)
    expected = grid_search(2, n_neighbors=(1, 3), scoring="balanced_accuracy").fit(X, y)
    assert search.score(X_val, y_val) == expected.score(X_val, y_val)


def test_feature_names_are_kept(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits[0][:, :20], digits[1]
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(20)])
    search = KNNClassifierCV((1, 3), cv=2).fit(frame, y)
    np.testing.assert_array_equal(search.feature_names_in_, frame.columns)
    np.testing.assert_array_equal(search.best_estimator_.feature_names_in_, frame.columns)
    np.testing.assert_array_equal(search.predict(frame), search.best_estimator_.predict(frame))
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        search.predict(X)


def test_clone_and_pickle(digits):
    X, y, X_val = digits[:3]
    search = KNNClassifierCV((1, 5), metrics=("manhattan",), cv=2, n_jobs=1)
    assert clone(search).get_params() == search.get_params()
    search.fit(X, y)
    restored = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(restored.predict(X_val), search.predict(X_val))
    assert restored.cv_results_["params"] == search.cv_results_["params"]
    for key in ("mean_test_score", "rank_test_score"):
        np.testing.assert_array_equal(restored.cv_results_[key], search.cv_results_[key])
    assert restored.best_params_ == search.best_params_
    assert not hasattr(clone(search), "best_estimator_")


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"n_neighbors": ()}, ValueError, "n_neighbors must hold at least one value"),
        ({"metrics": []}, ValueError, "metrics must hold at least one value"),
        ({"weights": ()}, ValueError, "weights must hold at least one value"),
        ({"n_neighbors": (1, 0)}, ValueError, "n_neighbors must hold integers >= 1"),
        ({"n_neighbors": (2.5,)}, ValueError, "n_neighbors must hold integers >= 1"),
        ({"n_neighbors": (True,)}, ValueError, "n_neighbors must hold integers >= 1"),
        ({"n_neighbors": 3}, ValueError, "'n_neighbors' parameter .* must be an array-like"),
        ({"metrics": ("euclidean", "hamming")}, ValueError, "metrics must hold names among"),
        ({"metrics": "euclidean"}, ValueError, "'metrics' parameter .* must be an array-like"),
        ({"weights": ("uniform", "gaussian")}, ValueError, "weights must hold"),
        ({"weights": (np.ones(3),)}, ValueError, "weights must hold"),
        ({"scoring": "accuracy_score"}, ValueError, "'scoring' parameter"),
        ({"scoring": ["accuracy", "f1_macro"]}, ValueError, "'scoring' parameter"),
        ({"p": 0.5}, ValueError, "'p' parameter"),
        ({"n_jobs": 0}, ValueError, "n_jobs == 0 has no meaning"),
        (
            {"n_neighbors": (1, 250)},
            ValueError,
            "n_neighbors=250 is larger than training split 0, which holds",
        ),
    ],
)
def test_invalid_parameters(digits, params, error, message):
    X, y = digits[:2]
    with pytest.raises(error, match=message):
        KNNClassifierCV(**{"cv": 3, **params}).fit(X, y)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        KNNClassifierCV().predict([[0.0]])


def test_scorer_may_only_use_the_validation_split(digits):
    X, y = digits[:2]

    def peeking_scorer(estimator, X, y):
        return float(np.mean(estimator.predict(X[:5]) == y[:5]))

    with pytest.raises(ValueError, match="data other than the validation split"):
        KNNClassifierCV((1,), cv=2, scoring=peeking_scorer).fit(X, y)


def test_non_numeric_score_is_refused(digits):
    X, y = digits[:2]
    with pytest.raises(ValueError, match="scoring must return a number"):
        KNNClassifierCV((1,), cv=2, scoring=lambda estimator, X, y: "good").fit(X, y)


def test_weights_callable_errors(digits):
    X, y = digits[:2]
    with pytest.raises(ValueError, match="returned shape"):
        KNNClassifierCV((3,), weights=(lambda d: d[:, :1],), cv=2).fit(X, y)
    with pytest.raises(ValueError, match="zero weights"):
        KNNClassifierCV((3,), weights=(np.zeros_like,), cv=2).fit(X, y)


def test_weights_callable_cannot_corrupt_other_candidates(digits):
    X, y = digits[:2]

    def in_place(distances):
        distances[:] = 1.0
        return distances

    params = {"n_neighbors": (3,), "weights": (in_place, "distance")}
    search = KNNClassifierCV(**params, cv=2).fit(X, y)
    assert_same_search(search, grid_search(2, **params).fit(X, y))


@parametrize_with_checks([KNNClassifierCV(n_neighbors=(1, 3), metrics=("euclidean",), cv=3)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_docstring_examples():
    results = doctest.testmod(model_selection, optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0 and results.failed == 0


def test_benchmark_function_runs_on_a_slice():
    from fastknn._cv_benchmark import benchmark_cv

    results = benchmark_cv(repeats=1, sklearn_repeats=1, n_samples=100, n_splits=2)
    assert results["same_scores"]
    assert results["n_samples"] == 100 and results["n_splits"] == 2 and results["n_candidates"] == 24
    for name in ("knn_classifier_cv_s", "grid_search_fastknn_s", "grid_search_sklearn_s"):
        assert results[name] > 0 and len(results["times"][name]) == 1
    assert results["speedup_vs_grid_search_sklearn"] > 0


# --------------------------------------------------------------------------
# fit_with_validation: a search inside a Pipeline / AugmentedKNN
# --------------------------------------------------------------------------
def test_fit_with_validation_scores_what_the_fitted_model_would(digits):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer

    from fastknn.augment import AugmentedKNN, Deskew, ShiftAugmenter

    X, y, X_val, y_val = digits
    model = make_pipeline(
        Deskew(), AugmentedKNN(make_pipeline(Normalizer(), KNNClassifierCV((1, 2, 5))), ShiftAugmenter())
    )
    search = model_selection.fit_with_validation(model, X, y, X_val, y_val)
    assert search is model[-1].estimator_[-1]
    assert search.n_splits_ == 1 and search.best_estimator_.n_samples_fit_ == 5 * len(X)
    # Every candidate's score is that of the same model fitted with that candidate alone.
    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        alone = make_pipeline(
            Deskew(), AugmentedKNN(make_pipeline(Normalizer(), KNNClassifier(**params)), ShiftAugmenter())
        )
        assert alone.fit(X, y).score(X_val, y_val) == score, params
    assert model.score(X_val, y_val) == search.best_score_


def test_fit_with_validation_on_a_bare_search_and_a_bad_model(digits):
    X, y, X_val, y_val = digits
    search = KNNClassifierCV((1, 3), metrics=("euclidean",))
    assert model_selection.fit_with_validation(search, X, y, X_val, y_val) is search
    direct = KNNClassifierCV((1, 3), metrics=("euclidean",)).fit(X, y, X_val=X_val, y_val=y_val)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], direct.cv_results_["mean_test_score"])
    with pytest.raises(TypeError, match="needs a KNNClassifierCV"):
        model_selection.fit_with_validation(KNNClassifier(), X, y, X_val, y_val)


def test_augmented_knn_needs_both_validation_arrays(digits):
    from fastknn.augment import AugmentedKNN

    X, y, X_val, _ = digits
    with pytest.raises(ValueError, match="X_val and y_val must be given together"):
        AugmentedKNN(KNNClassifierCV((1,))).fit(X, y, X_val=X_val)


def test_pruned_search_gives_the_same_scores(digits):
    X, y, X_val, y_val = digits
    grid = {"n_neighbors": (1, 4, 9), "metrics": ("manhattan", "minkowski"), "p": 3}
    brute = KNNClassifierCV(**grid, algorithm="brute").fit(X, y, X_val=X_val, y_val=y_val)
    pruned = KNNClassifierCV(**grid, algorithm="pruned").fit(X, y, X_val=X_val, y_val=y_val)
    np.testing.assert_array_equal(pruned.cv_results_["mean_test_score"], brute.cv_results_["mean_test_score"])
    assert pruned.best_estimator_.fit_method_ == "pruned" and brute.best_estimator_.fit_method_ == "brute"
# -------------------------------------------------------------------------
# KNNRegressorCV: the same machinery for the regressor
# -------------------------------------------------------------------------


def regression_grid_search(cv, **kwargs):
    param_grid = {"n_neighbors": list(GRID["n_neighbors"]), "metric": list(GRID["metrics"]),
                  "weights": list(GRID["weights"])}
    return GridSearchCV(KNNRegressor(), param_grid, cv=cv, **kwargs)


@pytest.mark.parametrize("scoring", [None, "neg_mean_absolute_error"])
@pytest.mark.parametrize("cv", [3, ShuffleSplit(n_splits=2, test_size=0.25, random_state=0)], ids=["int", "ShuffleSplit"])
def test_regressor_cv_same_results_as_grid_search(digits, cv, scoring):
    X, y = digits[0], digits[1].astype(np.float64)
    search = KNNRegressorCV(**GRID, cv=cv, scoring=scoring).fit(X, y)
    assert_same_search(search, regression_grid_search(cv, scoring=scoring).fit(X, y))
    assert isinstance(search.best_estimator_, KNNRegressor)
    np.testing.assert_array_equal(search.predict(digits[2]), search.best_estimator_.predict(digits[2]))


def test_regressor_cv_validation_set(digits):
    X, y, X_val, y_val = digits
    search = KNNRegressorCV(**SMALL_GRID).fit(X, y.astype(float), X_val=X_val, y_val=y_val.astype(float))
    split = PredefinedSplit(np.r_[np.full(len(X), -1), np.zeros(len(X_val))])
    reference = GridSearchCV(
        KNNRegressor(), {"n_neighbors": [1, 5], "metric": ["manhattan"], "weights": ["uniform", "distance"]}, cv=split
    ).fit(np.vstack([X, X_val]), np.r_[y, y_val].astype(float))
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"])
    assert search.n_splits_ == 1 and search.best_estimator_.n_samples_fit_ == len(X)



def test_regressor_cv_scores_float32_targets_in_float32(digits):
    # KNNRegressor averages float32 targets in float32: the replayed predictions must too.
    X = digits[0]
    y = (np.random.default_rng(0).normal(size=len(X)) * 1000).astype(np.float32)
    scoring = "neg_mean_squared_error"
    search = KNNRegressorCV(**GRID, cv=3, scoring=scoring).fit(X, y)
    assert_same_search(search, regression_grid_search(3, scoring=scoring).fit(X, y))


def test_regressor_cv_refuses_targets_that_are_not_numbers(digits):
    X, y, X_val, y_val = digits
    with pytest.raises(ValueError, match="y must hold numbers for a regressor, got an array of dtype <U"):
        KNNRegressorCV(**SMALL_GRID, cv=3).fit(X, y.astype(str))
    with pytest.raises(ValueError, match="y must hold numbers"):
        KNNRegressorCV(**SMALL_GRID).fit(X, y.astype(float), X_val=X_val, y_val=y_val.astype(str))


@pytest.mark.parametrize("search_class", [KNNClassifierCV, KNNRegressorCV])
def test_minkowski_p_may_be_infinite_as_in_the_estimators(digits, search_class):
    X, y = digits[0], digits[1]
    search = search_class(n_neighbors=(1, 3), metrics=("minkowski", "chebyshev"), p=np.inf, cv=3).fit(X, y)
    assert [params["metric"] for params in search.cv_results_["params"][::4]] == ["minkowski", "chebyshev"]
    scores = search.cv_results_["mean_test_score"].reshape(2, -1)  # by metric, then n_neighbors and weights
    np.testing.assert_array_equal(scores[0], scores[1])  # p = inf is Chebyshev

@parametrize_with_checks([KNNRegressorCV(n_neighbors=(1, 3), metrics=("euclidean",), cv=3)])
def test_regressor_cv_sklearn_compatible_estimator(estimator, check):
    check(estimator)


# -------------------------------------------------------------------------
# Sparse input: the shared sparse search, scored as GridSearchCV scores it
# -------------------------------------------------------------------------

SPARSE_METRICS = ("euclidean", "manhattan", "chebyshev", "minkowski", "cosine")


@pytest.fixture(scope="module")
def sparse_data():
    """240 sparse rows of few distinct values: empty rows, duplicates, exact ties."""
    rng = np.random.default_rng(3)
    X = scipy.sparse.random(240, 40, density=0.08, random_state=3, format="csr", dtype=np.float64)
    X.data = np.round(X.data * 3)  # a few stored zeros too
    return X, rng.integers(0, 3, 240)


@pytest.mark.parametrize("kind", ["csr", "csc", "csr_array"])
def test_sparse_same_results_as_grid_search(sparse_data, kind):
    X, y = sparse_data
    X = {"csr": X, "csc": X.tocsc(), "csr_array": scipy.sparse.csr_array(X)}[kind]
    search = KNNClassifierCV((1, 3, 8), metrics=SPARSE_METRICS, p=3, cv=3).fit(X, y)
    assert_same_search(search, grid_search(3, n_neighbors=(1, 3, 8), metrics=SPARSE_METRICS, p=3).fit(X, y))
    assert search.best_estimator_.fit_method_ == "sparse"
    np.testing.assert_array_equal(search.predict(X[:20]), search.best_estimator_.predict(X[:20]))
    assert search.score(X, y) == search.best_estimator_.score(X, y)


def test_sparse_same_scores_as_scikit_learn_without_ties():
    # Dense enough that no row is empty or repeated: scikit-learn's sparse
    # distances (rounded differently) then rank the neighbours the same way.
    X = scipy.sparse.random(200, 30, density=0.3, random_state=5, format="csr")
    y = np.random.default_rng(5).integers(0, 3, 200)
    metrics = ("euclidean", "manhattan", "cosine")
    search = KNNClassifierCV((1, 4, 9), metrics=metrics, cv=3).fit(X, y)
    param_grid = {"n_neighbors": [1, 4, 9], "metric": list(metrics), "weights": ["uniform", "distance"]}
    reference = GridSearchCV(KNeighborsClassifier(algorithm="brute"), param_grid, cv=3).fit(X, y)
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"])
    assert search.best_params_ == reference.best_params_


def test_sparse_validation_set_and_regressor(sparse_data):
    X, y = sparse_data
    X_train, y_train, X_val, y_val = X[:180], y[:180].astype(float), X[180:], y[180:].astype(float)
    fold = np.r_[np.full(180, -1), np.zeros(60, dtype=int)]
    param_grid = {"n_neighbors": [1, 5], "metric": ["manhattan", "cosine"], "weights": ["uniform", "distance"]}
    reference = GridSearchCV(KNNRegressor(), param_grid, cv=PredefinedSplit(fold)).fit(X, y.astype(float))
    # Sparse and dense validation rows against the sparse training set score alike.
    for validation in (X_val, X_val.toarray()):
        search = KNNRegressorCV((1, 5), metrics=("manhattan", "cosine")).fit(
            X_train, y_train, X_val=validation, y_val=y_val
        )
        np.testing.assert_array_equal(search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"])
    # Sparse validation rows against a dense training set are densified.
    dense = KNNClassifierCV((1, 5), metrics=("manhattan",)).fit(X_train.toarray(), y[:180], X_val=X_val, y_val=y[180:])
    sparse = KNNClassifierCV((1, 5), metrics=("manhattan",)).fit(X_train, y[:180], X_val=X_val, y_val=y[180:])
    np.testing.assert_array_equal(dense.cv_results_["mean_test_score"], sparse.cv_results_["mean_test_score"])


def test_sparse_with_pruned_warns_and_runs_the_sparse_search(sparse_data):
    X, y = sparse_data
    brute = KNNClassifierCV((1, 5), metrics=("manhattan",), cv=3).fit(X, y)
    with pytest.warns(UserWarning, match="cannot use pruned with sparse input: using the sparse brute-force search"):
        pruned = KNNClassifierCV((1, 5), metrics=("manhattan",), cv=3, algorithm="pruned").fit(X, y)
    np.testing.assert_array_equal(pruned.cv_results_["mean_test_score"], brute.cv_results_["mean_test_score"])
    assert pruned.best_estimator_.fit_method_ == "sparse"
