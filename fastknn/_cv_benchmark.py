"""Timing of :class:`~fastknn.model_selection.KNNClassifierCV` against GridSearchCV.

Called by the project's bench command; prints nothing and returns numbers.
"""

import statistics
from time import perf_counter

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier

from ._search import default_n_threads, effective_n_threads
from .datasets import load_mnist_split
from ._classification import KNNClassifier
from .model_selection import KNNClassifierCV

#: The grid of issue 8.
N_NEIGHBORS = (1, 3, 5, 9, 15, 25)
METRICS = ("euclidean", "manhattan")
WEIGHTS = ("uniform", "distance")

#: Speed-ups issue 8 asks for, over each GridSearchCV.
SPEEDUP_TARGETS = {"grid_search_fastknn": 3.0, "grid_search_sklearn": 10.0}


def _timed(fit):
    """Seconds taken by ``fit()``, and what it returned."""
    start = perf_counter()
    fitted = fit()
    return perf_counter() - start, fitted


def benchmark_cv(repeats=3, *, sklearn_repeats=1, n_samples=None, n_splits=5, n_jobs=None):
    """Time one cross-validated grid search three ways on the packaged digits.

    On the 10,000 training images of ``load_mnist_split("10000")`` (or their
    first ``n_samples``), ``n_splits``-fold stratified CV over
    ``n_neighbors`` in (1, 3, 5, 9, 15, 25) x {euclidean, manhattan} x
    {uniform, distance} (24 candidates) is timed for:

    - ``KNNClassifierCV`` (one search per split and metric);
    - ``GridSearchCV(fastknn.KNNClassifier())`` (one search per split and
      candidate);
    - ``GridSearchCV(sklearn KNeighborsClassifier(algorithm="brute"))``.

    All three get the same list of splits, run in this process one after
    the other, with every thread (``n_jobs``) and refitting the best
    candidate. The numba kernels are compiled on a small slice before any
    timing.

    Parameters
    ----------
    repeats : int, default=3
        Runs of each fastknn search; their median is reported.
    sklearn_repeats : int, default=1
        Runs of the scikit-learn reference, which is slow (about 8 minutes
        on two cores for the full data); 0 skips it.
    n_samples : int, default=None
        Use only the first ``n_samples`` training images (None: all 10,000).
    n_splits : int, default=5
        Number of folds.
    n_jobs : int, default=None
        Threads for all three, as for :class:`~fastknn.KNNClassifier`.

    Returns
    -------
    results : dict
        ``knn_classifier_cv_s``, ``grid_search_fastknn_s``,
        ``grid_search_sklearn_s``: median seconds (the last None when
        skipped); ``speedup_vs_grid_search_fastknn`` and
        ``speedup_vs_grid_search_sklearn``: ratios of those medians;
        ``speedup_targets``: the ratios issue 8 asks for;
        ``times``: every timing, by the same names; ``same_scores``: whether
        the split scores equal GridSearchCV(KNNClassifier)'s exactly;
        ``max_score_difference_sklearn``: the largest difference to
        scikit-learn's mean scores; ``best_params``, ``best_score`` and
        ``best_params_sklearn``; and the problem's ``n_samples``,
        ``n_features``, ``n_splits``, ``n_candidates``, ``n_threads``.

    Examples
    --------
    >>> from fastknn._cv_benchmark import benchmark_cv
    >>> results = benchmark_cv(repeats=1, sklearn_repeats=1, n_samples=300, n_splits=3)
    >>> results["same_scores"], results["n_candidates"]
    (True, 24)
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}.")
    X, y = load_mnist_split("10000")[:2]
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    splits = list(StratifiedKFold(n_splits).split(X, y))
    grid = {"n_neighbors": list(N_NEIGHBORS), "metric": list(METRICS), "weights": list(WEIGHTS)}

    def knn_classifier_cv():
        return KNNClassifierCV(N_NEIGHBORS, metrics=METRICS, weights=WEIGHTS, cv=splits, n_jobs=n_jobs).fit(
            X, y
        )

    def grid_search_fastknn():
        return GridSearchCV(KNNClassifier(n_jobs=n_jobs), grid, cv=splits).fit(X, y)

    def grid_search_sklearn():
        reference = KNeighborsClassifier(algorithm="brute", n_jobs=n_jobs)
        return GridSearchCV(reference, grid, cv=splits).fit(X, y)

    # Compile every kernel both searches use (float32, both metrics) untimed.
    warm_rows = np.concatenate([np.flatnonzero(y == label)[:4] for label in np.unique(y)])
    KNNClassifierCV((1, 3), metrics=METRICS, weights=WEIGHTS, cv=2).fit(X[warm_rows], y[warm_rows])

    times = {"knn_classifier_cv_s": [], "grid_search_fastknn_s": [], "grid_search_sklearn_s": []}
    for _ in range(repeats):
        seconds, search = _timed(knn_classifier_cv)
        times["knn_classifier_cv_s"].append(seconds)
        seconds, fastknn_grid = _timed(grid_search_fastknn)
        times["grid_search_fastknn_s"].append(seconds)
    sklearn_grid = None
    for _ in range(sklearn_repeats):
        seconds, sklearn_grid = _timed(grid_search_sklearn)
        times["grid_search_sklearn_s"].append(seconds)

    medians = {name: statistics.median(values) if values else None for name, values in times.items()}
    split_keys = [f"split{i}_test_score" for i in range(len(splits))]
    results = dict(medians)
    results["times"] = times
    results["speedup_vs_grid_search_fastknn"] = (
        medians["grid_search_fastknn_s"] / medians["knn_classifier_cv_s"]
    )
    results["speedup_vs_grid_search_sklearn"] = (
        None if sklearn_grid is None else medians["grid_search_sklearn_s"] / medians["knn_classifier_cv_s"]
    )
    results["speedup_targets"] = dict(SPEEDUP_TARGETS)
    results["same_scores"] = (
        all(np.array_equal(search.cv_results_[key], fastknn_grid.cv_results_[key]) for key in split_keys)
        and search.best_params_ == fastknn_grid.best_params_
    )
    if sklearn_grid is None:
        results["max_score_difference_sklearn"] = None
    else:
        difference = search.cv_results_["mean_test_score"] - sklearn_grid.cv_results_["mean_test_score"]
        results["max_score_difference_sklearn"] = float(np.max(np.abs(difference)))
    results["best_params"] = search.best_params_
    results["best_score"] = search.best_score_
    results["best_params_sklearn"] = None if sklearn_grid is None else sklearn_grid.best_params_
    results.update(
        n_samples=X.shape[0],
        n_features=X.shape[1],
        n_splits=len(splits),
        n_candidates=len(search.cv_results_["params"]),
        n_threads=default_n_threads() if n_jobs is None else effective_n_threads(n_jobs),
    )
    return results
