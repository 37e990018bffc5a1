"""Memory of predicting large query sets against 10,000 training digits.

``peakmem_`` is the peak resident memory of the whole benchmark process, the
queries made in ``setup`` included (50,000 digits are 150 MiB in float32,
100,000 are 300 MiB). A search that held the full distance matrix would add
n_queries x 10,000 x 4 bytes (1.9 GiB for 50,000 queries); fastknn's chunked
search holds at most ``fastknn._config.WORKING_MEMORY_BYTES`` of distances
at once. ``track_traced_peak`` isolates what ``predict`` itself allocates
through numpy (``tracemalloc``), for fastknn only: scikit-learn's chunks are
allocated in compiled code that tracemalloc does not see.
"""

import tracemalloc

from .common import LIBRARIES, K, digits, make_classifier, many_queries, require_library, warm_up

N_TRAIN = 10_000


class PredictLargeQuerySet:
    """predict of 50,000 and 100,000 queries, k=3, Euclidean.

    scikit-learn's reference runs at 50,000 queries only, to keep the suite's
    run time down (about half a minute per call on two cores).
    """

    params = (LIBRARIES, [50_000, 100_000])
    param_names = ["library", "n_queries"]
    timeout = 600
    rounds = 1
    number = 1
    repeat = 1

    def setup(self, library, n_queries):
        require_library(library)
        if library == "sklearn" and n_queries > 50_000:
            raise NotImplementedError("scikit-learn's reference runs at 50,000 queries only")
        X, y, _, _ = digits(N_TRAIN, 1)
        self.queries = many_queries(n_queries)
        self.classifier = make_classifier(library, n_neighbors=K).fit(X, y)
        warm_up(library)

    def peakmem_predict(self, library, n_queries):
        self.classifier.predict(self.queries)


class TracedPredictMemory:
    """Bytes that fastknn's predict allocates through numpy, at its peak."""

    params = [50_000, 100_000]
    param_names = ["n_queries"]
    unit = "MiB"
    timeout = 600
    rounds = 1

    def setup(self, n_queries):
        X, y, _, _ = digits(N_TRAIN, 1)
        self.queries = many_queries(n_queries)
        self.classifier = make_classifier("fastknn", n_neighbors=K).fit(X, y)
        warm_up("fastknn")

    def track_traced_peak(self, n_queries):
        tracemalloc.start()
        try:
            self.classifier.predict(self.queries)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return round(peak / 2**20, 1)
