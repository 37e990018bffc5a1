"""Euclidean k nearest neighbours of every training row among the training rows.

The graph of the training set with itself (``kneighbors(X=None)``,
``KNNTransformer.fit_transform``, the graph t-SNE takes) multiplies the rows
by themselves. :func:`self_graph_search` computes the blocks of that
symmetric product on and above the diagonal (NumPy's BLAS, straight into
the matrix), lists each row's candidates from its whole row of cross terms
with the bounds of the brute-force search, started from a seed taken on a
sample of the row, and computes the exact distance of a pair of rows that
list each other once (``_kernels.self_graph``): the answer is
``_search.search(train, train, ...)``'s, to the bit. The matrix is held, so
it runs only while it fits ``WORKING_MEMORY_BYTES`` (:func:`self_graph_fits`);
larger sets take the blocked search.
"""

import numba
import numpy as np

from . import _config
from ._kernels.distances import EUCLIDEAN
from ._kernels.self_graph import (
    GRAM_BLOCK,
    LANES,
    _distance_owners,
    _exact_distances,
    _gather_candidates,
    _nearest_of_lists,
)
from ._search import (
    blas_limit,
    euclidean_bounds,
    euclidean_error_bound,
    fast_pass_may_overflow,
    run_query_blocks,
    search,
    thread_limit,
)

# Below this many blocks a row, the triangle spares too few products to pay
# for holding the whole matrix (3 of 4 at two blocks).
MIN_GRAM_BLOCKS = 3
# Room in each row's list of rows that can be among its k nearest, beyond k:
# about k + 5 on the digits at k = 91. A row with more (many equal
# distances) is searched by the blocked search instead.
EXTRA_LISTED = 16


def self_graph_fits(train, euclidean_train):
    """Whether :func:`self_graph_search` runs on ``train``: its Gram matrix fits the working memory.

    Also false where the brute-force search would skip its fast pass
    (``_search.fast_pass_may_overflow``): the bounds assume finite cross terms.
    """
    n_train, n_features = train.shape
    product_dtype = euclidean_train.cross_train.dtype
    gram_bytes = n_train * n_train * product_dtype.itemsize
    if n_train < MIN_GRAM_BLOCKS * GRAM_BLOCK or gram_bytes > _config.WORKING_MEMORY_BYTES:
        return False
    scale = float(euclidean_train.sqnorms.max())
    return not fast_pass_may_overflow("euclidean", None, product_dtype, n_features, scale, scale)


def list_capacity(n_neighbors):
    """Entries of each row's list of candidates (see ``_kernels.self_graph._gather_candidates``)."""
    return 2 * n_neighbors + EXTRA_LISTED


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
    relative_error, absolute_error = euclidean_error_bound(train.dtype, n_features, euclidean_train)
    sqnorms = euclidean_train.sqnorms
    # The bounds of ``_search.search``'s Euclidean pass, the queries being the training rows.
    train_lower, train_upper, query_terms = euclidean_bounds(sqnorms, sqnorms, relative_error, absolute_error)
    block_pairs = upper_block_pairs(n_train)
    # Only the blocks on and above the diagonal are written.
    gram = np.empty((n_train, n_train), dtype=euclidean_train.cross_train.dtype)
    capacity = list_capacity(n_neighbors)
    within_rows = np.empty((n_train, capacity), dtype=np.int64)
    within_count = np.empty(n_train, dtype=np.int64)
    within_rdist = np.empty((n_train, capacity), dtype=np.float64)
    rdist = np.empty((n_train, n_neighbors), dtype=np.float64)
    indices = np.empty((n_train, n_neighbors), dtype=np.int64)
    with thread_limit(n_jobs):
        n_threads = numba.get_num_threads()
        # Each thread runs its own block products: BLAS must not start
        # threads of its own inside them.
        with blas_limit(1):
            run_query_blocks(_block_products, len(block_pairs), 1, n_threads, block_pairs, euclidean_train.cross_train, gram)
        # Blocks of rows a multiple of LANES, a few per thread.
        rows_per_task = LANES * -(-n_train // (LANES * 8 * n_threads))
        run_query_blocks(
            _gather_candidates, n_train, rows_per_task, n_threads,
            gram, GRAM_BLOCK, train_lower, train_upper, query_terms, n_neighbors, within_rows, within_count,
        )
        del gram
        offsets, holders, positions = _distance_owners(within_rows, within_count)
        run_query_blocks(
            _exact_distances, n_train, rows_per_task, n_threads,
            train, EUCLIDEAN, 2.0, within_rows, within_count, offsets, holders, positions, within_rdist,
        )
        run_query_blocks(
            _nearest_of_lists, n_train, rows_per_task, n_threads,
            within_rows, within_count, within_rdist, rdist, indices,
        )
    unlisted = np.flatnonzero(within_count < 0)
    if unlisted.shape[0]:
        rdist[unlisted], indices[unlisted] = search(
            train[unlisted], train, n_neighbors, "euclidean", None, euclidean_train=euclidean_train, n_jobs=n_jobs
        )
    return rdist, indices


def upper_block_pairs(n_rows):
    """Row starts ``(a, b)``, ``a <= b``, of the blocks of ``GRAM_BLOCK`` rows on and above the diagonal.

    Longest products first, so that the threads taking them in turn finish
    together: full blocks off the diagonal, then those on it (a symmetric
    update, half the products), then the blocks of the last, shorter rows.
    """
    starts = range(0, n_rows, GRAM_BLOCK)
    pairs = [(a, b) for a in starts for b in starts if a <= b]

    def products(pair):
        a, b = pair
        return min(GRAM_BLOCK, n_rows - a) * min(GRAM_BLOCK, n_rows - b) / (2 if a == b else 1)

    return sorted(pairs, key=products, reverse=True)


def _block_products(first, last, block_pairs, rows, gram):
    """Blocks ``(a, b)`` of ``gram = rows @ rows.T`` for the pairs ``first`` to ``last - 1`` of ``block_pairs``.

    NumPy's BLAS writes each product into its place in ``gram`` (a
    diagonal block, ``a == b``, is a symmetric rank-k update).
    """
    n_rows = rows.shape[0]
    for a, b in block_pairs[first:last]:
        a_stop, b_stop = min(a + GRAM_BLOCK, n_rows), min(b + GRAM_BLOCK, n_rows)
        np.matmul(rows[a:a_stop], rows[b:b_stop].T, out=gram[a:a_stop, b:b_stop])
