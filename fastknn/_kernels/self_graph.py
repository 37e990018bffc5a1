"""The neighbour graph of a set of rows with itself: a symmetric product, a seeded scan.

The cross terms ``X @ X.T`` of a set of rows with itself form a symmetric
matrix: ``_gram_blocks`` computes each block above the diagonal once (BLAS)
and writes it twice, as itself and mirrored below the diagonal: 15 block
products where a full product takes 25, on 5,000 rows in blocks of
``GRAM_BLOCK``.

With each row's cross terms all at hand, ``_seed_bounds`` takes for each
row a bound on a sample of them, from which ``_search.approx_query_block``
starts the scan of ``topk._scan_values``, where the blocked Euclidean search,
which sees the cross terms block by block, starts from no bound: until its
k-th smallest upper bound has fallen, every row is a candidate (at k=91 on
5,000 digits, about 880 candidates a query for 91 neighbours; seeded, about
1.5 k). The bounds, the scan, the exact re-ranking (``topk._rerank_queries``)
and therefore the answer are the brute-force search's.
"""

import numpy as np

from .._config import jit
from .topk import NO_BOUND, _count_within, _keep_smallest

# Rows per block of the Gram matrix: a product of two blocks of 1,024 digits
# keeps BLAS near its peak, as ``topk.GEMM_TRAIN_BLOCK``.
GRAM_BLOCK = 1024
# Columns of a block mirrored per pass: its stores then touch this many
# rows of the output, a few cache lines each.
MIRROR_TILE = 16


@jit()
def _gram_blocks(first, last, block_starts, rows, gram):
    """Fill the blocks of ``gram = rows @ rows.T`` for block pairs ``first`` to ``last - 1``.

    Parameters
    ----------
    first, last : int
        The pairs filled. One call runs on one thread and releases the GIL;
        the driver runs pairs in threads, and the pairs write disjoint parts
        of ``gram``.
    block_starts : ndarray of shape (n_pairs, 2), int64
        Row starts ``(a, b)``, ``a <= b``, of each pair of blocks of
        ``GRAM_BLOCK`` rows.
    rows : ndarray of shape (n_rows, n_columns)
        C-contiguous, float32 or float64.
    gram : ndarray of shape (n_rows, n_rows)
        Output, same dtype as ``rows``: block ``(a, b)`` holds the product,
        block ``(b, a)`` its transpose.
    """
    n_rows = rows.shape[0]
    for pair in range(first, last):
        a = block_starts[pair, 0]
        b = block_starts[pair, 1]
        a_stop = min(a + GRAM_BLOCK, n_rows)
        b_stop = min(b + GRAM_BLOCK, n_rows)
        block = np.dot(rows[a:a_stop], rows[b:b_stop].T)
        for i in range(a_stop - a):
            target = gram[a + i]
            for j in range(b_stop - b):
                target[b + j] = block[i, j]
        if a == b:
            continue
        for tile in range(0, b_stop - b, MIRROR_TILE):
            for i in range(a_stop - a):
                for j in range(tile, min(tile + MIRROR_TILE, b_stop - b)):
                    gram[b + j, a + i] = block[i, j]


# Cross terms of a query sampled for its seed bound: a quickselect over them
# costs a microsecond or two.
SEED_SAMPLE = 512
# The seed's rank in the sample is this factor times the rank the k-th
# neighbour has in it, plus the extra: a margin that makes the seed hold k
# rows of the whole row in all but rare cases (it is checked, see
# ``_seed_bound``), while keeping the candidates within about 1.5 k.
SEED_RANK_FACTOR = 1.25
SEED_RANK_EXTRA = 3


@jit()
def _seed_bound(values, train_upper, n_neighbors, sample, scratch):
    """An upper bound holding at least ``n_neighbors`` rows of ``values``, or ``NO_BOUND``.

    The upper bound of training row j is ``train_upper[j] - 2 values[j]``
    (see ``topk._scan_values``). The seed is a low quantile of those
    of an evenly spaced sample of rows, a little above the rank the k-th
    neighbour has in it; a count over every row confirms that at least k
    rows are within it, which makes it a valid bound for the scan. When the
    count falls short, ``NO_BOUND``: the scan then starts unbounded, as
    the blocked search's does.
    """
    n_rows = values.shape[0]
    n_sample = min(sample.shape[0], n_rows)
    stride = n_rows // n_sample
    for s in range(n_sample):
        j = s * stride
        sample[s] = train_upper[j] - 2.0 * np.float64(values[j])
    rank = min(n_sample, int(SEED_RANK_FACTOR * n_neighbors * n_sample / n_rows) + SEED_RANK_EXTRA)
    seed = _keep_smallest(sample, scratch, n_sample, rank)
    if _count_within(values, train_upper, -2.0, seed) < n_neighbors:
        return NO_BOUND
    return seed


@jit()
def _seed_bounds(first, last, gram, train_upper, n_neighbors, out_seeds):
    """``_seed_bound`` of rows ``first`` to ``last - 1`` of ``gram`` into ``out_seeds``.

    One call runs on one thread and releases the GIL.
    """
    sample = np.empty(SEED_SAMPLE, dtype=np.float64)
    scratch = np.empty(SEED_SAMPLE, dtype=np.int64)
    for i in range(first, last):
        out_seeds[i] = _seed_bound(gram[i], train_upper, n_neighbors, sample, scratch)
