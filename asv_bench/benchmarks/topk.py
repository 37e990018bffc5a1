"""Top-k selection: ``fastknn._search.approx_query_block`` (``topk._scan_values``, ``topk._rerank_queries``) on its own.

The fast distance pass is done in ``setup``: for Euclidean the
single-precision cross terms ``queries @ train.T`` with the bounds built from
the squared norms (the scan the Euclidean search runs on each block of
its products), for Manhattan the reduced distances of ``_rdist_tiles``, as
``fastknn._search.search`` does it. The kernel runs in query blocks on
numba's thread count, as the driver runs it. What is timed is the selection: the blocked
scan of rounding-error bounds, the float64 re-ranking of the candidates and
the sorted output. The reference, ``"numpy"``, is what scikit-learn's brute
force does on the same matrix: ``argpartition`` to k, then a sort of those k
(no exact re-ranking).

The kernel is private, so this module follows its current signature; if a
change of the kernel breaks the set-up here, update ``setup`` with it.
"""

import numpy as np

from .common import Benchmark, digits, warm_up

N_TRAIN, N_QUERIES = 10_000, 2000


class SelectNearest(Benchmark):
    """k nearest of 2,000 queries among 10,000 digits from a precomputed pass."""

    params = (["fastknn", "numpy"], ["euclidean", "manhattan"], [1, 10, 100])
    param_names = ["library", "metric", "n_neighbors"]

    def setup(self, library, metric, n_neighbors):
        import numba

        from fastknn._kernels.distances import EUCLIDEAN, MANHATTAN, _rdist_tiles
        from fastknn._search import approx_query_block, rounding_error_bound, run_query_blocks, squared_norms

        warm_up("fastknn", metric)
        train, _, queries, _ = digits(N_TRAIN, N_QUERIES, "float32")
        n_features = train.shape[1]
        relative, absolute = rounding_error_bound(train.dtype, n_features, metric, 0.0)
        self.from_cross = metric == "euclidean"
        approx = np.empty((N_QUERIES, N_TRAIN), dtype=np.float32)
        if self.from_cross:
            np.dot(queries, train.T, out=approx)
            train_sqnorms = squared_norms(train)
            # Bounds on |t|^2 - 2 q.t, as the Euclidean search scans them.
            bounds = (
                train_sqnorms * (1.0 - relative) - absolute, -2.0,
                train_sqnorms * (1.0 + relative) + absolute, -2.0,
                2.0 * relative * squared_norms(queries),
            )
            metric_id = EUCLIDEAN
            # What argpartition ranks: |t|^2 - 2 q.t (|q|^2 is the same for a row).
            self.ranked = (train_sqnorms[None, :] - 2.0 * approx).astype(np.float32)
        else:
            _rdist_tiles(queries, train, MANHATTAN, np.float32(0.0), 0, approx)
            bounds = (
                np.full(N_TRAIN, -absolute), 1.0 - relative,
                np.full(N_TRAIN, absolute), 1.0 + relative,
                np.zeros(N_QUERIES),
            )
            metric_id = MANHATTAN
            self.ranked = approx
        self.out_rdist = np.empty((N_QUERIES, n_neighbors), dtype=np.float64)
        self.out_index = np.empty((N_QUERIES, n_neighbors), dtype=np.int64)
        n_threads = numba.get_num_threads()
        self.arguments = (
            approx_query_block, N_QUERIES, -(-N_QUERIES // (4 * n_threads)), n_threads,
            approx, queries, train, *bounds, metric_id, 0.0, self.out_rdist, self.out_index,
        )
        self.select = run_query_blocks if library == "fastknn" else self._numpy_select
        self.select(*self.arguments)  # compile, or load from the numba cache

    def _numpy_select(self, *arguments):
        k = self.out_index.shape[1]
        nearest = np.argpartition(self.ranked, k - 1, axis=1)[:, :k]
        values = np.take_along_axis(self.ranked, nearest, axis=1)
        order = np.argsort(values, axis=1, kind="stable")
        self.out_index[:] = np.take_along_axis(nearest, order, axis=1)

    def time_select(self, library, metric, n_neighbors):
        self.select(*self.arguments)
