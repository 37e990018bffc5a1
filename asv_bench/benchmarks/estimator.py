"""The estimator: ``fastknn.KNNClassifier`` against its references.

fit, predict, predict_proba and kneighbors across metric, n_neighbors,
training size and n_jobs, each for ``library`` in fastknn, scikit-learn's
brute force and (Euclidean only) a vote over FAISS ``IndexFlatL2``; and the
test accuracy on the packaged digits as ``track_`` benchmarks.
"""

from threadpoolctl import threadpool_limits

from .common import (
    LIBRARIES,
    SHAPES,
    Benchmark,
    K,
    digits,
    make_classifier,
    mnist_split,
    require_library,
    warm_up,
)


class Fit(Benchmark):
    """fit alone: validation, label encoding, the stored training copy."""

    params = (LIBRARIES, [1000, 10_000])
    param_names = ["library", "n_train"]

    def setup(self, library, n_train):
        require_library(library)
        self.X, self.y, _, _ = digits(n_train, 1)
        self.classifier = make_classifier(library)
        warm_up(library)

    def time_fit(self, library, n_train):
        self.classifier.fit(self.X, self.y)


class Predict(Benchmark):
    """predict and predict_proba of a fitted k=3 classifier, per metric.

    Shapes per metric are in ``common.SHAPES``; ``weights`` covers the two
    vote kernels. (FAISS, Euclidean and uniform only, is timed in
    ``KNeighbors``, ``TrainingSize`` and ``Threads``.)
    """

    params = (["fastknn", "sklearn"], ["euclidean", "manhattan", "minkowski"], ["uniform", "distance"])
    param_names = ["library", "metric", "weights"]

    def setup(self, library, metric, weights):
        n_train, n_queries = SHAPES[metric]
        X, y, self.queries, _ = digits(n_train, n_queries)
        self.classifier = make_classifier(library, metric=metric, weights=weights).fit(X, y)
        warm_up(library, metric, weights=weights)

    def time_predict(self, library, metric, weights):
        self.classifier.predict(self.queries)

    def time_predict_proba(self, library, metric, weights):
        self.classifier.predict_proba(self.queries)


class KNeighbors(Benchmark):
    """kneighbors across n_neighbors: 2,000 queries, 10,000 training digits."""

    params = (LIBRARIES, [1, 3, 10, 100])
    param_names = ["library", "n_neighbors"]

    def setup(self, library, n_neighbors):
        require_library(library)
        X, y, self.queries, _ = digits(10_000, 2000)
        self.classifier = make_classifier(library).fit(X, y)
        warm_up(library)

    def time_kneighbors(self, library, n_neighbors):
        self.classifier.kneighbors(self.queries, n_neighbors)


class TrainingSize(Benchmark):
    """fit + predict of 2,000 queries as the training set grows (Euclidean).

    10,000 training digits is the original project's layout and the shape of
    ``fastknn bench``.
    """

    params = (LIBRARIES, [1000, 3000, 10_000])
    param_names = ["library", "n_train"]

    def setup(self, library, n_train):
        require_library(library)
        self.X, self.y, self.queries, _ = digits(n_train, 2000)
        self.classifier = make_classifier(library)
        warm_up(library)

    def time_fit_predict(self, library, n_train):
        self.classifier.fit(self.X, self.y).predict(self.queries)


class Threads(Benchmark):
    """predict with one thread and with all of them (Euclidean).

    fastknn gets ``n_jobs``; the references run under
    ``threadpool_limits`` (scikit-learn's brute force uses OpenMP and BLAS
    threads whatever its ``n_jobs``), FAISS under ``omp_set_num_threads``.
    -1 means every core the process may use.
    """

    params = (LIBRARIES, [1, -1])
    param_names = ["library", "n_jobs"]

    def setup(self, library, n_jobs):
        require_library(library)
        X, y, self.queries, _ = digits(*SHAPES["euclidean"])
        self.limit = None if n_jobs == -1 or library == "fastknn" else n_jobs
        self.classifier = make_classifier(library, n_jobs=n_jobs).fit(X, y)
        warm_up(library)

    def time_predict(self, library, n_jobs):
        with threadpool_limits(limits=self.limit):
            self.classifier.predict(self.queries)


class Accuracy:
    """Test accuracy, k=3, original layout: 10,000 training, 2,000 test digits.

    Any change here is a change of predictions, not of speed. scikit-learn's
    brute force is tracked for Euclidean only (its Manhattan and Minkowski
    p=3 take from 20 s to minutes at this size); fastknn's predictions equal
    its own.
    """

    params = (["fastknn", "sklearn"], ["euclidean", "manhattan", "minkowski"])
    param_names = ["library", "metric"]
    unit = "accuracy"
    timeout = 300

    def setup(self, library, metric):
        if library == "sklearn" and metric != "euclidean":
            raise NotImplementedError("too slow a reference at this size")
        self.X, self.y, _, _, self.X_test, self.y_test = mnist_split("10000")

    def track_test_accuracy(self, library, metric):
        classifier = make_classifier(library, n_neighbors=K, metric=metric)
        return float(classifier.fit(self.X, self.y).score(self.X_test, self.y_test))
