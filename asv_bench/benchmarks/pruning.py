"""Brute force against the pruned exact search (``algorithm``).

``KNNClassifier(algorithm="pruned")`` computes lower-bound features of the
training rows at fit (PCA projections for Euclidean, block-pooled rows
otherwise) and skips, for each query, the rows they prove too far; the
results equal brute force. ``"auto"`` runs a probe at fit and prunes only
where it pays. On the original layout (10,000 training, 2,000 query
digits, k=3), this times fit (index and probe) and predict for each choice.
Skipped on versions of fastknn without the ``algorithm`` parameter.
"""

from .common import METRIC_PARAMS, Benchmark, K, digits, has_algorithm_parameter, warm_up


class Algorithm(Benchmark):
    """fit and predict for algorithm in brute, pruned and auto, per metric."""

    params = (["brute", "pruned", "auto"], ["euclidean", "manhattan", "minkowski"])
    param_names = ["algorithm", "metric"]

    def setup(self, algorithm, metric):
        if not has_algorithm_parameter():
            raise NotImplementedError("this version of fastknn has no algorithm parameter")
        from fastknn import KNNClassifier

        self.X, self.y, self.queries, _ = digits(10_000, 2000)
        warm_up("fastknn", metric)
        self.classifier = KNNClassifier(n_neighbors=K, algorithm=algorithm, **METRIC_PARAMS[metric])
        self.classifier.fit(self.X, self.y)

    def time_fit(self, algorithm, metric):
        self.classifier.fit(self.X, self.y)

    def time_predict(self, algorithm, metric):
        self.classifier.predict(self.queries)
