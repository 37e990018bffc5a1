"""Dense cosine k nearest neighbours of embedding-like rows (issue 17).

100,000 x 384 float32 rows around 100 Gaussian centres
(``fastknn.bench.embedding_like``), 2,000 queries, k=10. ``library`` is
fastknn's ``NearestNeighbors(metric="cosine")``, scikit-learn's brute force
with the same metric, or FAISS ``IndexFlatIP`` on rows normalised by
``faiss.normalize_L2`` (skipped where faiss-cpu is missing). ``time_fit_search``
counts fastknn's fit and FAISS's normalisation and ``add``; ``time_search``
the search of a fitted model alone. ``CosineAgreement`` tracks the fraction
of queries whose neighbours equal scikit-learn's.
"""

import numpy as np

from .common import Benchmark, rng

N_TRAIN, N_FEATURES, N_QUERIES, K = 100_000, 384, 2_000, 10


def _embeddings():
    from fastknn.bench import embedding_like

    generator = rng()
    return embedding_like(N_TRAIN, N_FEATURES, generator), embedding_like(N_QUERIES, N_FEATURES, generator)


class Cosine(Benchmark):
    params = [["fastknn", "sklearn", "faiss"]]
    param_names = ["library"]
    timeout = 300

    def setup(self, library):
        self.X, self.queries = _embeddings()
        if library == "faiss":
            try:
                import faiss
            except ImportError:
                raise NotImplementedError("faiss-cpu is not installed") from None

            def fit():
                rows = self.X.copy()
                faiss.normalize_L2(rows)
                index = faiss.IndexFlatIP(N_FEATURES)
                index.add(rows)
                return index

            def search(index):
                unit_queries = self.queries.copy()
                faiss.normalize_L2(unit_queries)
                return index.search(unit_queries, K)

            self.fit, self.search = fit, search
        else:
            if library == "fastknn":
                from fastknn import NearestNeighbors

                NearestNeighbors(n_neighbors=K, metric="cosine").fit(self.X[:100]).kneighbors(self.queries[:5])
            else:
                from sklearn.neighbors import NearestNeighbors
            self.fit = lambda: NearestNeighbors(n_neighbors=K, metric="cosine", algorithm="brute").fit(self.X)
            self.search = lambda model: model.kneighbors(self.queries)
        self.fitted = self.fit()

    def time_fit_search(self, library):
        self.search(self.fit())

    def time_search(self, library):
        self.search(self.fitted)


class CosineAgreement(Benchmark):
    """Fraction of queries whose fastknn neighbours equal scikit-learn's brute force."""

    timeout = 300

    def setup(self):
        self.X, self.queries = _embeddings()

    def track_same_neighbours(self):
        from sklearn.neighbors import NearestNeighbors as SklearnNearestNeighbors

        from fastknn import NearestNeighbors

        ours = NearestNeighbors(n_neighbors=K, metric="cosine").fit(self.X).kneighbors(self.queries)[1]
        theirs = SklearnNearestNeighbors(n_neighbors=K, metric="cosine", algorithm="brute").fit(self.X)
        theirs = theirs.kneighbors(self.queries)[1]
        return float(np.mean(np.all(np.sort(ours, axis=1) == np.sort(theirs, axis=1), axis=1)))
