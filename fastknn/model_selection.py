"""Cross-validated choice of ``n_neighbors``, metric and vote weighting.

:class:`KNNClassifierCV` gives the scores of a
:class:`~sklearn.model_selection.GridSearchCV` over
:class:`~fastknn.KNNClassifier`, for a fraction of the cost: on each split it
searches the neighbours once per metric, for the largest ``n_neighbors`` of the
grid, and scores every smaller ``n_neighbors`` and every weighting from the
first columns of that one neighbour list. :func:`fit_with_validation` fits
a whole model (a :class:`~sklearn.pipeline.Pipeline` of transformers, an
:class:`~fastknn.augment.AugmentedKNN`) around such a search, scoring it on a
fixed validation set that goes through the model's transformers as queries do.
"""

import numbers
from time import perf_counter

import numpy as np
from numpy.ma import MaskedArray
from scipy.sparse import issparse
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import ParameterGrid, check_cv
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

from ._base import fit_search, kneighbors_rdist
from ._kernels.vote import GIVEN, INVERSE_DISTANCE, UNIFORM
from ._search import (
    METRIC_ALIASES, as_search_dtype, class_votes, queries_in_search_dtype, rdist_to_dist, resolve_metric,
)
from ._sparse import as_sparse_search
from ._classification import KNNClassifier
from ._regression import KNNRegressor, neighbor_mean


class _NeighborsGridCV:
    """What :class:`KNNClassifierCV` and :class:`KNNRegressorCV` share: the grid,
    the splits, one neighbour search per (split, metric), the scoring of
    every candidate from its first columns, and the refit.

    Subclasses give ``_final_estimator`` (the class refitted), and
    ``_check_targets``, ``_split_targets`` and ``_replay`` (the targets of a
    training split as an array indexed by neighbour, and a stand-in
    estimator replaying one candidate's predictions for the scorer).
    """

    _parameter_constraints = {
        "n_neighbors": ["array-like"],
        "metrics": ["array-like"],
        "weights": ["array-like"],
        "p": [Interval(numbers.Real, 1, None, closed="both")],  # p=inf: Chebyshev, as the estimators
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "n_jobs": [numbers.Integral, None],
        "algorithm": [StrOptions({"auto", "brute", "pruned"})],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _search_grid(self, X, y, groups, X_val, y_val):
        """Score every candidate, then refit the best on ``X`` (see the subclasses' ``fit``)."""
        grid = self._check_grid()
        if self.n_jobs == 0:
            raise ValueError("n_jobs == 0 has no meaning; use None, -1 or a positive number.")
        X_fit = X
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], dtype="numeric", order="C", y_numeric=not is_classifier(self)
        )
        self._check_targets(y)
        X = as_sparse_search(X) if issparse(X) else as_search_dtype(X)
        splits = self._splits(X, y, groups, X_val, y_val)
        self.n_splits_ = len(splits)
        self.scorer_ = check_scoring(self._final_estimator(), self.scoring)
        # accuracy_score's own arithmetic (the mean of the matches), without its input
        # checks, which cost more than the votes (150 candidates: 0.5 s).
        plain_accuracy = is_classifier(self) and (self.scoring is None or self.scoring == "accuracy")
        plain_accuracy = plain_accuracy and np.asarray(y).dtype.kind in "biu"

        candidates = list(ParameterGrid(grid))
        n_candidates = len(candidates)
        max_neighbors = max(grid["n_neighbors"])
        # Candidates sharing a metric (aliases included) share its search.
        by_metric = {}
        for index, params in enumerate(candidates):
            key = resolve_metric(params["metric"], self.p)
            by_metric.setdefault(key, []).append(index)

        shape = (n_candidates, self.n_splits_)
        test_scores, fit_times, score_times = np.empty(shape), np.empty(shape), np.empty(shape)
        for split, cut in enumerate(splits):
            start = perf_counter()
            X_train, y_train, X_test, y_test = cut()
            if X_train.shape[0] < max_neighbors:
                raise ValueError(
                    f"n_neighbors={max_neighbors} is larger than training split {split}, "
                    f"which holds {X_train.shape[0]} samples; use fewer neighbours or "
                    "larger training splits."
                )
            targets = self._split_targets(y_train)
            fit_times[:, split] = (perf_counter() - start) / n_candidates

            for (metric, power), members in by_metric.items():
                start = perf_counter()
                # The split's search, prepared and run as the estimators' fit and predict do.
                fitted = fit_search(X_train, metric, power, self.algorithm, max_neighbors, n_jobs=self.n_jobs)
                rdist, neigh_ind = kneighbors_rdist(fitted, X_test, max_neighbors, n_jobs=self.n_jobs)
                neigh_dist = rdist_to_dist(rdist, metric, power)
                neigh_targets = targets[neigh_ind]
                shared_time = (perf_counter() - start) / len(members)
                for index in members:
                    start = perf_counter()
                    n_neighbors = candidates[index]["n_neighbors"]
                    replay = self._replay(
                        neigh_targets[:, :n_neighbors], neigh_dist[:, :n_neighbors], candidates[index]["weights"]
                    )
                    if plain_accuracy and y_test.dtype.kind in "biu":
                        score = float(np.count_nonzero(replay.predict(X_test) == y_test) / y_test.size)
                    else:
                        score = _as_number(self.scorer_(replay, X_test, y_test), self.scorer_)
                    test_scores[index, split] = score
                    score_times[index, split] = shared_time + perf_counter() - start

        self.cv_results_ = _format_results(candidates, fit_times, score_times, test_scores)
        self.best_index_ = int(self.cv_results_["rank_test_score"].argmin())
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])

        start = perf_counter()
        best = self._final_estimator(p=self.p, n_jobs=self.n_jobs, algorithm=self.algorithm)
        best = best.set_params(**self.best_params_)
        # The caller's X keeps its feature names for the refitted estimator.
        self.best_estimator_ = best.fit(X_fit, y)
        self.refit_time_ = perf_counter() - start
        return self


    def _check_grid(self):
        """The parameter grid, after checking each list of values."""
        n_neighbors = list(self.n_neighbors)
        metrics = list(self.metrics)
        weights = list(self.weights)
        for name, values in (("n_neighbors", n_neighbors), ("metrics", metrics), ("weights", weights)):
            if not values:
                raise ValueError(f"{name} must hold at least one value, got {getattr(self, name)!r}.")
        for k in n_neighbors:
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Integral) or k < 1:
                raise ValueError(f"n_neighbors must hold integers >= 1, got {k!r}.")
        for metric in metrics:
            if not isinstance(metric, str) or metric not in METRIC_ALIASES:
                raise ValueError(f"metrics must hold names among {sorted(METRIC_ALIASES)}, got {metric!r}.")
            resolve_metric(metric, self.p)
        for weighting in weights:
            named = isinstance(weighting, str) and weighting in ("uniform", "distance")
            if not (weighting is None or named or callable(weighting)):
                raise ValueError(
                    f'weights must hold "uniform", "distance", None or callables, got {weighting!r}.'
                )
        return {"n_neighbors": n_neighbors, "metric": metrics, "weights": weights}

    def _splits(self, X, y, groups, X_val, y_val):
        """One function per split, returning ``(X_train, y_train, X_test, y_test)``.

        Cutting is deferred so that only one split's copies live at a time.
        """
        if X_val is None and y_val is None:
            cv = check_cv(self.cv, y, classifier=is_classifier(self))
            return [_cut(X, y, train, test) for train, test in cv.split(X, y, groups)]
        if X_val is None or y_val is None:
            raise ValueError("X_val and y_val must be given together.")
        if self.cv is not None or groups is not None:
            raise ValueError("X_val and y_val define the only validation split; leave cv and groups at None.")
        X_val, y_val = validate_data(
            self, X_val, y_val, accept_sparse=["csr", "csc"], dtype="numeric", order="C", reset=False,
            y_numeric=not is_classifier(self),
        )
        self._check_targets(y_val)
        if issparse(X):
            X_val = as_sparse_search(X_val) if issparse(X_val) else X_val
        else:
            X_val = queries_in_search_dtype(X_val.toarray() if issparse(X_val) else X_val, X.dtype)
        return [lambda: (X, y, X_val, y_val)]

    def predict(self, X):
        """Predict with ``best_estimator_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        y : ndarray of shape (n_queries,)
            Predictions of ``best_estimator_``.
        """
        check_is_fitted(self)
        return self.best_estimator_.predict(X)

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Nearest training samples, from ``best_estimator_``.

        See :meth:`fastknn.KNNClassifier.kneighbors` for the parameters and
        return values; ``n_neighbors`` defaults to ``best_params_``'s.
        """
        check_is_fitted(self)
        return self.best_estimator_.kneighbors(X, n_neighbors, return_distance)

    def score(self, X, y):
        """Score ``best_estimator_`` on ``X``, ``y`` with ``scoring``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Test data.
        y : array-like of shape (n_queries,)
            True labels.

        Returns
        -------
        score : float
            ``scorer_(best_estimator_, X, y)``: the accuracy for the default
            ``scoring``.
        """
        check_is_fitted(self)
        return self.scorer_(self.best_estimator_, X, y)




class KNNClassifierCV(_NeighborsGridCV, ClassifierMixin, BaseEstimator):
    """k-nearest-neighbours classifier with a cross-validated grid of settings.

    Scores every combination of ``n_neighbors``, ``metrics`` and ``weights``
    by cross-validation, or on a given validation set, then refits the best
    one on the training data as a :class:`~fastknn.KNNClassifier`. The scores,
    ``best_params_`` and ``cv_results_`` are those of
    ``GridSearchCV(KNNClassifier(p=p), param_grid, cv=cv, scoring=scoring)``
    with ``param_grid = {"n_neighbors": n_neighbors, "metric": metrics,
    "weights": weights}``, but each split searches the neighbours once per
    metric instead of once per candidate.

    Parameters
    ----------
    n_neighbors : array-like of int, default=(1, 3, 5, 9, 15, 25)
        Numbers of neighbours to try, each >= 1 and at most the size of the
        smallest training split.
    metrics : array-like of str, default=("euclidean", "manhattan")
        Metrics to try, by the names :class:`~fastknn.KNNClassifier` accepts:
        ``"euclidean"`` (``"l2"``), ``"manhattan"`` (``"cityblock"``,
        ``"l1"``), ``"chebyshev"`` (``"infinity"``), ``"minkowski"`` or ``"cosine"``.
    weights : array-like of {"uniform", "distance", None} or callable, \
default=("uniform", "distance")
        Vote weightings to try, as :class:`~fastknn.KNNClassifier`'s
        ``weights``. A callable receives the ``(n_queries, n_neighbors)``
        distances of one candidate.
    p : float, default=2
        Power of the ``"minkowski"`` metric, >= 1; ignored by the others.
    cv : int, cross-validation generator or iterable, default=None
        How to split the training data: None for 5-fold, an int for that
        many folds (stratified, as for any classifier), a scikit-learn
        splitter, or an iterable of ``(train, test)`` index arrays. For a
        fixed validation set, pass ``X_val`` and ``y_val`` to :meth:`fit`
        instead, or concatenate it to the training data and use
        :class:`~sklearn.model_selection.PredefinedSplit`.
    scoring : str, callable or None, default="accuracy"
        The score to maximise: the name of a scikit-learn scorer
        (:func:`sklearn.metrics.get_scorer_names`), a callable
        ``scorer(estimator, X, y)``, or None for the accuracy. The
        ``estimator`` a callable receives on a split is a stand-in that
        replays the candidate's predictions: it offers ``classes_``,
        ``predict``, ``predict_proba`` and ``score``, on that split's ``X``
        only.
    n_jobs : int, default=None
        Threads for the neighbour search, as for
        :class:`~fastknn.KNNClassifier`; also passed to ``best_estimator_``.
    algorithm : {"auto", "brute", "pruned"}, default="auto"
        How each split's neighbours are searched, as for
        :class:`~fastknn.KNNClassifier` (chosen per split and metric, for
        the largest ``n_neighbors``); the neighbours, hence the scores, are
        the same. Also passed to ``best_estimator_``. Sparse ``X`` always
        runs the sparse search (``"pruned"`` warns, as for the classifier).

    Attributes
    ----------
    best_estimator_ : KNNClassifier
        The best candidate, fitted on all of ``X`` (without ``X_val``).
    best_params_ : dict
        Its parameters: ``{"metric": ..., "n_neighbors": ..., "weights": ...}``.
    best_score_ : float
        Its mean validation score.
    best_index_ : int
        Its row in ``cv_results_``: the first of the best ranked.
    cv_results_ : dict of ndarrays
        The table of :class:`~sklearn.model_selection.GridSearchCV`, one
        entry per candidate in the same order: ``params``,
        ``param_metric``, ``param_n_neighbors`` and ``param_weights``
        (masked arrays), ``split{i}_test_score``, ``mean_test_score``,
        ``std_test_score``, ``rank_test_score``, and ``mean_fit_time``,
        ``std_fit_time``, ``mean_score_time``, ``std_score_time`` in
        seconds. Loads into ``pandas.DataFrame(cv_results_)``.
    scorer_ : callable
        The scorer used for the selection and by :meth:`score`.
    n_splits_ : int
        Number of splits (1 with ``X_val``).
    refit_time_ : float
        Seconds spent refitting ``best_estimator_``.
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names seen during fit, when X has string column names.

    See Also
    --------
    fastknn.KNNClassifier : The classifier whose settings are chosen.
    sklearn.model_selection.GridSearchCV : The general search it reproduces.

    Notes
    -----
    Neighbours are exact, and those at equal distances are ordered by
    training index, so the first ``k`` of a query's ``max(n_neighbors)``
    neighbours are its ``k`` nearest, as :class:`~fastknn.KNNClassifier`
    finds them; the scores equal GridSearchCV's to the last digit. Candidates
    with the same mean score share a rank, and ``best_index_`` is the first
    of them in ``cv_results_`` order: metrics in the given order, then
    ``n_neighbors``, then ``weights``, as
    :class:`~sklearn.model_selection.ParameterGrid` orders them.

    Failures are not turned into ``nan`` scores as GridSearchCV's
    ``error_score`` does: a ``n_neighbors`` larger than a training split, or
    a scorer that fails, raises.

    The fit and score times are amortised: each split's preparation and each
    (split, metric) neighbour search is shared evenly among the candidates
    that use it, so the times add up to the time spent.

    Examples
    --------
    >>> from fastknn.datasets import load_mnist_split
    >>> from fastknn.model_selection import KNNClassifierCV
    >>> X, y, X_val, y_val, X_test, y_test = load_mnist_split("1000")
    >>> search = KNNClassifierCV(n_neighbors=(1, 3, 5), cv=3).fit(X, y)
    >>> search.best_params_
    {'metric': 'euclidean', 'n_neighbors': 1, 'weights': 'uniform'}
    >>> round(search.best_score_, 3), round(search.score(X_test, y_test), 3)
    (0.871, 0.87)

    The original project's layout, one fixed validation set; the best
    candidate is then refitted on ``X`` alone:

    >>> search = KNNClassifierCV(n_neighbors=(1, 3, 5)).fit(X, y, X_val=X_val, y_val=y_val)
    >>> search.best_params_["n_neighbors"], search.n_splits_, search.best_estimator_.n_samples_fit_
    (3, 1, 1000)
    """

    _parameter_constraints = _NeighborsGridCV._parameter_constraints

    def __init__(
        self,
        n_neighbors=(1, 3, 5, 9, 15, 25),
        *,
        metrics=("euclidean", "manhattan"),
        weights=("uniform", "distance"),
        p=2,
        cv=None,
        scoring="accuracy",
        n_jobs=None,
        algorithm="auto",
    ):
        self.n_neighbors = n_neighbors
        self.metrics = metrics
        self.weights = weights
        self.p = p
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.algorithm = algorithm

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, *, groups=None, X_val=None, y_val=None):
        """Score every candidate, then refit the best on ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, numeric and finite; a scipy sparse matrix
            (CSR or CSC) or sparse array runs the sparse search.
        y : array-like of shape (n_samples,)
            Class labels.
        groups : array-like of shape (n_samples,), default=None
            Group labels, for splitters that need them (``GroupKFold``...).
        X_val : {array-like, sparse matrix} of shape (n_val_samples, n_features), default=None
            A fixed validation set: each candidate is fitted on all of ``X``
            and scored on ``X_val`` (a single split). Needs ``y_val``, and
            ``cv`` and ``groups`` left at None.
        y_val : array-like of shape (n_val_samples,), default=None
            Class labels of ``X_val``.

        Returns
        -------
        self : KNNClassifierCV
            The fitted search.

        Raises
        ------
        ValueError
            For an empty or invalid grid, a ``n_neighbors`` larger than a
            training split, ``X_val`` without ``y_val`` (or the reverse), or
            ``X_val`` together with ``cv`` or ``groups``.
        """
        self._search_grid(X, y, groups, X_val, y_val)
        self.classes_ = self.best_estimator_.classes_
        return self

    _final_estimator = KNNClassifier

    def _check_targets(self, y):
        check_classification_targets(y)

    def _split_targets(self, y_train):
        self._split_classes, encoded = np.unique(y_train, return_inverse=True)
        return encoded

    def _replay(self, neigh_labels, neigh_dist, weights):
        votes = _neighbor_votes(neigh_labels, neigh_dist, weights, self._split_classes.size)
        return _ReplayedPredictions()._set(self._split_classes, votes)

    def predict_proba(self, X):
        """Class probabilities from ``best_estimator_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        proba : ndarray of shape (n_queries, n_classes)
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)


class KNNRegressorCV(_NeighborsGridCV, RegressorMixin, BaseEstimator):
    """k-nearest-neighbours regressor with a cross-validated grid of settings.

    :class:`KNNClassifierCV`'s method for :class:`~fastknn.KNNRegressor`:
    the scores, ``best_params_`` and ``cv_results_`` are those of
    ``GridSearchCV(KNNRegressor(p=p), param_grid, cv=cv, scoring=scoring)``
    with ``param_grid = {"n_neighbors": n_neighbors, "metric": metrics,
    "weights": weights}``, but each split searches the neighbours once per
    metric, for the largest ``n_neighbors``, and scores every smaller one
    and every weighting from the first columns of that list.

    Parameters
    ----------
    n_neighbors : array-like of int, default=(1, 3, 5, 9, 15, 25)
        Numbers of neighbours to try, each >= 1 and at most the size of the
        smallest training split.
    metrics : array-like of str, default=("euclidean", "manhattan")
        Metrics to try, by the names :class:`~fastknn.KNNRegressor` accepts.
    weights : array-like of {"uniform", "distance", None} or callable, \
default=("uniform", "distance")
        Weightings to try, as :class:`~fastknn.KNNRegressor`'s ``weights``.
    p : float, default=2
        Power of the ``"minkowski"`` metric, >= 1; ignored by the others.
    cv : int, cross-validation generator or iterable, default=None
        How to split the training data: None for 5-fold, an int for that
        many folds (plain :class:`~sklearn.model_selection.KFold`, as for
        any regressor), a splitter, or an iterable of ``(train, test)``
        index arrays. For a fixed validation set, pass ``X_val`` and
        ``y_val`` to :meth:`fit`.
    scoring : str, callable or None, default=None
        The score to maximise: a scikit-learn scorer name, a callable
        ``scorer(estimator, X, y)``, or None for the coefficient of
        determination (R^2), :class:`~fastknn.KNNRegressor`'s ``score``.
        The ``estimator`` a callable receives on a split is a stand-in
        replaying the candidate's predictions on that split's ``X``.
    n_jobs : int, default=None
        Threads for the neighbour search; also passed to ``best_estimator_``.
    algorithm : {"auto", "brute", "pruned"}, default="auto"
        How each split's neighbours are searched, as for
        :class:`~fastknn.KNNRegressor`; the scores are the same. Also passed
        to ``best_estimator_``. Sparse ``X`` always runs the sparse search.

    Attributes
    ----------
    best_estimator_ : KNNRegressor
        The best candidate, fitted on all of ``X`` (without ``X_val``).
    best_params_ : dict
        Its parameters: ``{"metric": ..., "n_neighbors": ..., "weights": ...}``.
    best_score_ : float
        Its mean validation score.
    best_index_ : int
        Its row in ``cv_results_``: the first of the best ranked.
    cv_results_ : dict of ndarrays
        :class:`~sklearn.model_selection.GridSearchCV`'s table, as for
        :class:`KNNClassifierCV`.
    scorer_ : callable
        The scorer used for the selection and by :meth:`score`.
    n_splits_ : int
        Number of splits (1 with ``X_val``).
    refit_time_ : float
        Seconds spent refitting ``best_estimator_``.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names seen during fit, when X has string column names.

    See Also
    --------
    fastknn.KNNRegressor : The regressor whose settings are chosen.
    KNNClassifierCV : The same search for classification.

    Notes
    -----
    Neighbours are exact and ties ordered by training index, so the first
    ``k`` of a query's ``max(n_neighbors)`` neighbours are its ``k``
    nearest, and the predictions equal :class:`~fastknn.KNNRegressor`'s.
    Candidates tied on the mean score share a rank; ``best_index_`` is the
    first of them in ``cv_results_`` order.

    Examples
    --------
    >>> import numpy as np
    >>> from fastknn.model_selection import KNNRegressorCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-3, 3, size=(300, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=300)
    >>> search = KNNRegressorCV(n_neighbors=(1, 5, 15), metrics=("euclidean",), cv=3).fit(X, y)
    >>> search.best_params_
    {'metric': 'euclidean', 'n_neighbors': 15, 'weights': 'distance'}
    >>> round(search.best_score_, 2)
    0.98
    """

    _parameter_constraints = _NeighborsGridCV._parameter_constraints

    def __init__(
        self,
        n_neighbors=(1, 3, 5, 9, 15, 25),
        *,
        metrics=("euclidean", "manhattan"),
        weights=("uniform", "distance"),
        p=2,
        cv=None,
        scoring=None,
        n_jobs=None,
        algorithm="auto",
    ):
        self.n_neighbors = n_neighbors
        self.metrics = metrics
        self.weights = weights
        self.p = p
        self.cv = cv
        self.scoring = scoring
        self.n_jobs = n_jobs
        self.algorithm = algorithm

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, *, groups=None, X_val=None, y_val=None):
        """Score every candidate, then refit the best on ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, numeric and finite; a scipy sparse matrix
            (CSR or CSC) or sparse array runs the sparse search.
        y : array-like of shape (n_samples,)
            Target values.
        groups : array-like of shape (n_samples,), default=None
            Group labels, for splitters that need them.
        X_val : {array-like, sparse matrix} of shape (n_val_samples, n_features), default=None
            A fixed validation set (a single split); needs ``y_val``.
        y_val : array-like of shape (n_val_samples,), default=None
            Targets of ``X_val``.

        Returns
        -------
        self : KNNRegressorCV
            The fitted search.
        """
        self._search_grid(X, y, groups, X_val, y_val)
        return self

    _final_estimator = KNNRegressor

    def _check_targets(self, y):
        # validate_data's y_numeric converts only object arrays: strings get here as they are.
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"y must hold numbers for a regressor, got an array of dtype {y.dtype}; no mean of them "
                "can be taken."
            )

    def _split_targets(self, y_train):
        # In y's own dtype, as KNNRegressor averages them (float32 targets give float32 means).
        return np.asarray(y_train).reshape(-1, 1)

    def _replay(self, neighbor_targets, neigh_dist, weights):
        predictions = neighbor_mean(neighbor_targets, neigh_dist, weights)
        return _ReplayedRegression()._set(predictions.ravel())


def fit_with_validation(model, X, y, X_val, y_val):
    """Fit a model around a :class:`KNNClassifierCV`, scored on a fixed validation set.

    ``X_val`` goes through ``model`` as query data would: through each
    transformer of a :class:`~sklearn.pipeline.Pipeline` (fitted on the
    training data only), past the augmenters of an
    :class:`~fastknn.augment.AugmentedKNN` (which expand the training data
    only), to the search, which scores every candidate on it and refits the
    best on the (transformed, expanded) training data. ``model`` is then
    fitted and predicts with that best candidate.

    Parameters
    ----------
    model : KNNClassifierCV, Pipeline or AugmentedKNN
        The search itself, or a ``Pipeline`` whose last step, or an
        ``AugmentedKNN`` whose ``estimator``, is one of these three (nested
        as deep as needed). Fitted in place (``AugmentedKNN`` fits a clone of
        its estimator, as its ``fit`` does).
    X : array-like of shape (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,)
        Class labels.
    X_val : array-like of shape (n_val_samples, n_features)
        Validation data, in the same form as ``X``.
    y_val : array-like of shape (n_val_samples,)
        Class labels of ``X_val``.

    Returns
    -------
    search : KNNClassifierCV
        The fitted search inside ``model``: ``best_params_``,
        ``cv_results_`` (one split, the validation set) and
        ``best_estimator_``, the :class:`~fastknn.KNNClassifier` that
        ``model`` predicts with.

    Raises
    ------
    TypeError
        If ``model`` is not one of the kinds above, or does not end in a
        :class:`KNNClassifierCV`.

    See Also
    --------
    KNNClassifierCV.fit : The search alone, with ``X_val`` and ``y_val``.
    sklearn.pipeline.Pipeline : Its ``transform_input`` does the same with
        metadata routing enabled.

    Notes
    -----
    Transformers are fitted with ``fit_transform`` on the training data, then
    transform ``X_val`` with what they learnt, exactly as ``Pipeline.fit``
    and ``Pipeline.predict`` use them; so the scores are those the fitted
    ``model`` would get on ``X_val``, for each candidate.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from fastknn.augment import AugmentedKNN, Deskew, ShiftAugmenter
    >>> from fastknn.datasets import load_mnist_split
    >>> from fastknn.model_selection import KNNClassifierCV, fit_with_validation
    >>> X, y, X_val, y_val, X_test, y_test = load_mnist_split("1000")
    >>> model = make_pipeline(Deskew(), AugmentedKNN(KNNClassifierCV(n_neighbors=(1, 3, 5)), ShiftAugmenter()))
    >>> search = fit_with_validation(model, X, y, X_val, y_val)
    >>> search.best_params_, search.best_estimator_.n_samples_fit_
    ({'metric': 'euclidean', 'n_neighbors': 1, 'weights': 'uniform'}, 5000)
    >>> round(search.best_score_, 3), round(model.score(X_test, y_test), 3)
    (0.94, 0.955)
    """
    from .augment import AugmentedKNN

    _check_ends_in_search(model)  # before any transformer is fitted
    if isinstance(model, KNNClassifierCV):
        return model.fit(X, y, X_val=X_val, y_val=y_val)
    if isinstance(model, AugmentedKNN):
        model.fit(X, y, X_val=X_val, y_val=y_val)
        return _inner_search(model.estimator_)
    for _, transformer in model.steps[:-1]:  # a Pipeline
        if transformer is not None and not (isinstance(transformer, str) and transformer == "passthrough"):
            X = transformer.fit_transform(X, y)
            X_val = transformer.transform(X_val)
    return fit_with_validation(model.steps[-1][1], X, y, X_val, y_val)


def _check_ends_in_search(model):
    """Raise a ``TypeError`` unless :func:`fit_with_validation` can fit ``model``.

    ``model`` must be a :class:`KNNClassifierCV`, or a ``Pipeline`` or
    :class:`~fastknn.augment.AugmentedKNN` (unfitted: its ``estimator``)
    ending in one, nested as deep as needed.
    """
    from .augment import AugmentedKNN

    inner = model
    while not isinstance(inner, KNNClassifierCV):
        if isinstance(inner, AugmentedKNN):
            inner = KNNClassifier() if inner.estimator is None else inner.estimator  # its default
        elif isinstance(inner, Pipeline):
            inner = inner.steps[-1][1]
        else:
            ending = "" if inner is model else f" ending in {type(inner).__name__}"
            raise TypeError(
                "fit_with_validation needs a KNNClassifierCV, or a Pipeline or AugmentedKNN ending in one; "
                f"got {type(model).__name__}{ending}."
            )


def _inner_search(model):
    """The fitted :class:`KNNClassifierCV` at the end of ``model`` (see :func:`fit_with_validation`)."""
    from .augment import AugmentedKNN

    while not isinstance(model, KNNClassifierCV):
        model = model.estimator_ if isinstance(model, AugmentedKNN) else model.steps[-1][1]
    return model


def _cut(X, y, train, test):
    """Function returning the ``train`` and ``test`` rows (indices or masks) of X and y."""
    train, test = np.asarray(train), np.asarray(test)
    return lambda: (X[train], y[train], X[test], y[test])


class _ReplayedPredictions(ClassifierMixin, BaseEstimator):
    """Stand-in classifier returning one candidate's votes on one validation split.

    Scorers call ``predict``/``predict_proba`` on it exactly as on a fitted
    :class:`~fastknn.KNNClassifier`; the results are computed the same way
    from the same votes, so the scores are the same.
    """

    def _set(self, classes, votes):
        """Store ``classes`` (n_classes,) and ``votes`` (n_queries, n_classes), float64."""
        self.classes_ = classes
        self._votes = votes
        return self

    def _check_queries(self, X):
        _check_replayed_queries(X, self._votes.shape[0])

    def predict(self, X):
        self._check_queries(X)
        return self.classes_[np.argmax(self._votes, axis=1)]

    def predict_proba(self, X):
        self._check_queries(X)
        normalizer = self._votes.sum(axis=1, keepdims=True)
        normalizer[normalizer == 0.0] = 1.0
        return self._votes / normalizer


class _ReplayedRegression(RegressorMixin, BaseEstimator):
    """Stand-in regressor returning one candidate's predictions on one validation split.

    Scorers call ``predict`` (and ``score``) on it exactly as on a fitted
    :class:`~fastknn.KNNRegressor`, with the same predictions.
    """

    def _set(self, predictions):
        """Store ``predictions`` of shape (n_queries,), float64."""
        self._predictions = predictions
        return self

    def predict(self, X):
        _check_replayed_queries(X, self._predictions.shape[0])
        return self._predictions


def _check_replayed_queries(X, n_queries):
    """Raise unless ``X`` has the validation split's number of rows."""
    if _num_samples(X) != n_queries:
        raise ValueError(
            "The scorer called the estimator on data other than the validation split; "
            "the search only has predictions for that split."
        )


def _neighbor_votes(neigh_labels, neigh_dist, weights, n_classes):
    """Votes of each query's neighbours, as :class:`~fastknn.KNNClassifier` counts them.

    Parameters
    ----------
    neigh_labels : ndarray of shape (n_queries, n_neighbors), int64
        Encoded labels of the neighbours, nearest first (may be a column slice).
    neigh_dist : ndarray of shape (n_queries, n_neighbors), float64
        Their distances (may be a column slice).
    weights : {"uniform", "distance", None} or callable
    n_classes : int

    Returns
    -------
    votes : ndarray of shape (n_queries, n_classes), float64
    """
    neigh_labels = np.ascontiguousarray(neigh_labels)
    if weights is None or (isinstance(weights, str) and weights == "uniform"):
        weighting, values = UNIFORM, np.empty((0, 0))
    elif isinstance(weights, str) and weights == "distance":
        weighting, values = INVERSE_DISTANCE, np.ascontiguousarray(neigh_dist)
    else:
        # A copy: the callable may write into its argument.
        values = weights(np.array(neigh_dist, order="C"))
        weighting, values = GIVEN, np.ascontiguousarray(values, dtype=np.float64)
        if values.shape != neigh_dist.shape:
            raise ValueError(f"weights callable returned shape {values.shape}, expected {neigh_dist.shape}.")
        if np.any(np.all(values == 0, axis=1)):
            raise ValueError(
                "All neighbors of some sample is getting zero weights. "
                "Please modify 'weights' to avoid this case if you are using a user-defined function."
            )
    return class_votes(neigh_labels, values, weighting, n_classes)


def _as_number(score, scorer):
    """The scorer's result as a Python number, or a ValueError as GridSearchCV raises."""
    if hasattr(score, "item"):
        try:
            score = score.item()
        except ValueError:
            pass
    if not isinstance(score, numbers.Number):
        raise ValueError(
            f"scoring must return a number, got {score!r} ({type(score)}) instead. (scorer={scorer})"
        )
    return score


def _format_results(candidates, fit_times, score_times, test_scores):
    """``cv_results_`` with GridSearchCV's keys, order, dtypes and arithmetic.

    Parameters
    ----------
    candidates : list of dict
        The candidates in ParameterGrid order.
    fit_times, score_times, test_scores : ndarray of shape (n_candidates, n_splits)
    """
    n_candidates, n_splits = test_scores.shape
    results = {}

    def store(name, array, splits=False, rank=False):
        if splits:
            for split in range(n_splits):
                results[f"split{split}_{name}"] = array[:, split]
        means = np.average(array, axis=1)
        results[f"mean_{name}"] = means
        results[f"std_{name}"] = np.sqrt(np.average((array - means[:, np.newaxis]) ** 2, axis=1))
        if rank:
            if np.isnan(means).all():
                ranks = np.ones_like(means, dtype=np.int32)
            else:
                means = np.where(np.isnan(means), np.nanmin(means) - 1, means)
                ranks = rankdata(-means, method="min").astype(np.int32, copy=False)
            results[f"rank_{name}"] = ranks

    store("fit_time", fit_times)
    store("score_time", score_times)
    for name in candidates[0]:
        values = [params[name] for params in candidates]
        try:
            inferred = np.array(values)
        except ValueError:
            dtype = np.dtype(object)
        else:
            dtype = inferred.dtype if inferred.dtype.kind != "U" and inferred.ndim == 1 else object
        column = MaskedArray(np.empty(n_candidates, dtype=dtype), mask=True)
        for index, value in enumerate(values):
            column[index] = value
        results[f"param_{name}"] = column
    results["params"] = candidates
    store("test_score", test_scores, splits=True, rank=True)
    return results
