"""Euclidean k nearest neighbours of every training row among the training rows.

The graph of the training set with itself (``kneighbors(X=None)``,
``KNNTransformer.fit_transform``, the graph t-SNE takes) multiplies the rows
by themselves. :func:`self_graph_search` computes one triangle of that
symmetric product and selects each row's neighbours from its whole row with
a seeded scan (``_kernels.self_graph`` for the product and the seeds,
``_search.approx_query_block`` for the rest), with the bounds, the scan and
the exact re-ranking of the brute-force search: the answer is
``_search.search(train, train, ...)``'s, to the bit. The whole matrix is
held, so it runs only while it fits ``WORKING_MEMORY_BYTES``
(:func:`self_graph_fits`); larger sets take the blocked search.
"""

import numba
import numpy as np

from . import _config
from ._kernels.distances import EUCLIDEAN
from ._kernels.self_graph import GRAM_BLOCK, _gram_blocks, _seed_bounds
from ._search import (
    approx_query_block,
    blas_limit,
    euclidean_bounds,
    fast_pass_may_overflow,
    rounding_error_bound,
    run_query_blocks,
    thread_limit,
)

# Below this many blocks a row, the triangle spares too few products to pay
# for holding the whole matrix (3 of 4 at two blocks).
MIN_GRAM_BLOCKS = 3


def self_graph_fits(train, euclidean_train):
    """Whether :func:`self_graph_search` runs on ``train``: its Gram matrix fits the working memory.

    Also false where the brute-force search would skip its fast pass
    (``_search.fast_pass_may_overflow``): the bounds assume finite cross terms.
    """
    n_train, n_features = train.shape
    if n_train < MIN_GRAM_BLOCKS * GRAM_BLOCK or n_train * n_train * train.itemsize > _config.WORKING_MEMORY_BYTES:
        return False
    scale = float(euclidean_train.sqnorms.max())
    return not fast_pass_may_overflow("euclidean", None, train.dtype, n_features, scale, scale)


def self_graph_search(train, euclidean_train, n_neighbors, n_jobs=None):
    """Exact Euclidean k nearest rows of ``train`` to each row of ``train``, itself included.

    Parameters
    ----------
    train : ndarray of shape (n_train, n_features)
        Validated, float32 or float64, C-contiguous, with
        :func:`self_graph_fits` true.
    euclidean_train : _search.EuclideanTrain
        ``_search.prepare_euclidean(train)``.
    n_neighbors : int
        1 <= n_neighbors <= n_train.
    n_jobs : int or None

    Returns
    -------
    rdist : ndarray of shape (n_train, n_neighbors), float64
        Exact squared distances, ascending per row.
    indices : ndarray of shape (n_train, n_neighbors), int64
        Training indices; equal distances are ordered by index.
    """
    n_train, n_features = train.shape
    relative_error, absolute_error = rounding_error_bound(train.dtype, n_features, "euclidean", 0.0)
    sqnorms = euclidean_train.sqnorms
    # The bounds of ``_search.search``'s Euclidean pass, the queries being the training rows.
    train_lower, train_upper, query_terms = euclidean_bounds(sqnorms, sqnorms, relative_error, absolute_error)
    starts = np.arange(0, n_train, GRAM_BLOCK)
    first_blocks, second_blocks = np.triu_indices(starts.shape[0])
    block_starts = np.ascontiguousarray(np.stack([starts[first_blocks], starts[second_blocks]], axis=1))
    gram = np.empty((n_train, n_train), dtype=train.dtype)
    rdist = np.empty((n_train, n_neighbors), dtype=np.float64)
    indices = np.empty((n_train, n_neighbors), dtype=np.int64)
    with thread_limit(n_jobs):
        n_threads = numba.get_num_threads()
        # Each thread runs its own block products: BLAS must not start
        # threads of its own inside them.
        with blas_limit(1):
            run_query_blocks(
                _gram_blocks, block_starts.shape[0], 1, n_threads, block_starts, euclidean_train.cross_train, gram
            )
        run_query_blocks(
            _seeded_query_block, n_train, -(-n_train // (4 * n_threads)), n_threads,
            gram, train, query_terms, train_lower, train_upper, np.empty(n_train), rdist, indices,
        )
    return rdist, indices


def _seeded_query_block(first, last, gram, train, query_terms, train_lower, train_upper, seeds, out_rdist, out_index):
    """Rows ``first`` to ``last - 1`` of the graph: their seeds, then the brute-force search's scan from them.

    The scan of ``gram``'s rows uses the Euclidean bounds (offsets
    ``train_lower`` and ``train_upper``, scales -2, see
    ``topk._scan_values``); ``seeds`` receives each row's seed bound
    (``_kernels.self_graph._seed_bound``).
    """
    _seed_bounds(first, last, gram, train_upper, out_rdist.shape[1], seeds)
    approx_query_block(
        first, last, gram, train, train, train_lower, -2.0, train_upper, -2.0, query_terms, EUCLIDEAN, 2.0,
        out_rdist, out_index, seed_bounds=seeds,
    )
