"""The IDM re-ranking of ``fastknn.distortion`` beside the search that feeds it.

``Rerank`` times, as two parameters of one benchmark, the exact Euclidean
search of the 50 nearest of 10,000 deskewed training digits for 2,000
queries, and the IDM re-ranking of those 50 candidates (warp 2, K=1): the
issue's target is a re-ranking at most 5 times the search. Skipped where
``fastknn.distortion`` does not exist (older commits).
"""

import numpy as np

from .common import Benchmark, digits, import_or_skip, mnist_split

N_CANDIDATES = 50


class Rerank(Benchmark):
    """2,000 queries x 50 candidates: Euclidean search, or IDM re-ranking of its result."""

    params = ["euclidean_search", "idm_rerank"]
    param_names = ["step"]

    def setup(self, step):
        distortion = import_or_skip("fastknn.distortion")
        from fastknn.augment import deskew

        X_train, y_train, X_query, _ = digits(10_000, 2000)
        self.queries = deskew(X_query)
        self.classifier = distortion.DistortionKNNClassifier(1, n_candidates=N_CANDIDATES, warp=2)
        self.classifier.fit(deskew(X_train), y_train)
        self.classifier.predict(self.queries[:10])  # compile, or load from the numba cache
        self.candidates = self.classifier._euclidean.kneighbors(self.queries, return_distance=False)
        self.rerank = distortion._rerank_chunks

    def time_step(self, step):
        clf = self.classifier
        if step == "euclidean_search":
            clf._euclidean.kneighbors(self.queries, return_distance=False)
        else:
            self.rerank(self.queries, self.candidates, clf._train_gradients, 1, clf._model)


class DistortionAccuracy:
    """Test accuracy of ``make_pipeline(Deskew(), DistortionKNNClassifier(1, warp=2))``.

    The configuration chosen on the validation set by ``fastknn bench``'s
    selection (10,000 training and 2,000 test digits, 50 candidates).
    """

    unit = "accuracy"
    timeout = 300

    def setup(self):
        self.distortion = import_or_skip("fastknn.distortion")
        self.X, self.y, _, _, self.X_test, self.y_test = (np.array(a) for a in mnist_split("10000"))

    def track_test_accuracy(self):
        from sklearn.pipeline import make_pipeline

        from fastknn.augment import Deskew

        model = make_pipeline(Deskew(), self.distortion.DistortionKNNClassifier(1, n_candidates=N_CANDIDATES, warp=2))
        return float(model.fit(self.X, self.y).score(self.X_test, self.y_test))
