"""Sparse TF-IDF-like rows (issue 17): fit + kneighbors and fit + predict, fastknn against scikit-learn.

``library`` is fastknn (its sparse search, ``fit_method_ == "sparse"``) or
scikit-learn's brute force (``algorithm="brute"``), on the matrix of
``fastknn bench``'s sparse section (:func:`fastknn.bench.tfidf_like`:
20,000 x 30,000 training rows, about 80 non-zeros a row, unit norm,
float64; 2,000 queries; k=10). scikit-learn's Manhattan takes about 40 s
a run: it is skipped here (``fastknn bench`` times it once).
``SparseAgreement`` tracks the fraction of neighbours equal to
scikit-learn's.
"""

import functools

import numpy as np

from .common import Benchmark

N_TRAIN, N_FEATURES, NNZ_PER_ROW, N_QUERIES = 20_000, 30_000, 80, 2_000
N_NEIGHBORS = 10


@functools.lru_cache(maxsize=None)
def _matrices():
    """Training rows, labels and queries, built once per process."""
    from fastknn.bench import tfidf_like

    matrix = tfidf_like(N_TRAIN + N_QUERIES, N_FEATURES, NNZ_PER_ROW)
    labels = np.random.default_rng(1).integers(0, 10, N_TRAIN)
    return matrix[:N_TRAIN], labels, matrix[N_TRAIN:]


def _estimators(library, metric):
    """A ``(NearestNeighbors, classifier)`` pair of the library, compiled outside timing for fastknn."""
    if library == "fastknn":
        from fastknn import KNNClassifier, NearestNeighbors

        train, _, queries = _matrices()
        searcher = NearestNeighbors(n_neighbors=N_NEIGHBORS, metric=metric)
        searcher.fit(train[:50]).kneighbors(queries[:5])
        return searcher, KNNClassifier(n_neighbors=N_NEIGHBORS, metric=metric)
    from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

    return (
        NearestNeighbors(n_neighbors=N_NEIGHBORS, metric=metric, algorithm="brute"),
        KNeighborsClassifier(n_neighbors=N_NEIGHBORS, metric=metric, algorithm="brute"),
    )


class Sparse(Benchmark):
    params = (["fastknn", "sklearn"], ["euclidean", "cosine", "manhattan"])
    param_names = ["library", "metric"]
    timeout = 300

    def setup(self, library, metric):
        if library == "sklearn" and metric == "manhattan":
            raise NotImplementedError("scikit-learn's sparse Manhattan takes about 40 s a run")
        self.train, self.labels, self.queries = _matrices()
        self.searcher, self.classifier = _estimators(library, metric)

    def time_fit_kneighbors(self, library, metric):
        self.searcher.fit(self.train).kneighbors(self.queries)

    def time_fit_predict(self, library, metric):
        self.classifier.fit(self.train, self.labels).predict(self.queries)


class SparseAgreement(Benchmark):
    """Fraction of fastknn's neighbours equal to scikit-learn's (1.0: the same)."""

    params = [["euclidean", "cosine"]]
    param_names = ["metric"]
    timeout = 300

    def setup(self, metric):
        self.train, _, self.queries = _matrices()

    def track_same_neighbours(self, metric):
        ours, _ = _estimators("fastknn", metric)
        theirs, _ = _estimators("sklearn", metric)
        mine = ours.fit(self.train).kneighbors(self.queries, return_distance=False)
        reference = theirs.fit(self.train).kneighbors(self.queries, return_distance=False)
        return float(np.mean(mine == reference))
