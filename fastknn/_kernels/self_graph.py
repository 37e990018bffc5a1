"""The neighbour graph of a set of rows with itself: one triangle of products, each pair's distance once.

The cross terms ``X @ X.T`` of a set of rows with itself form a symmetric
matrix, of which the driver (``fastknn._self_graph``) computes only the
blocks on and above the diagonal: 15 block products where the full matrix
takes 25, on 5,000 rows in blocks of ``GRAM_BLOCK``. Row ``i``'s cross
terms are then its own row from its block's diagonal on, and before it
the column ``i`` of the blocks above: nothing is mirrored.

With all of a row's cross terms at hand, ``_gather_candidates`` takes a
bound on a sample of them (the seed), lists the rows whose lower bound is
within it, and keeps of those the rows that can still be among the k
nearest once the k-th smallest upper bound is known: the bounds of the
brute-force search (``topk._scan_values``), from a seed instead of a bound
that falls as the rows go by. ``_distance_owners`` finds, for each row,
the rows whose lists hold it, so that ``_exact_distances`` computes the
exact distance of two rows that list each other once (60% of the entries
of the graph at k=91 on 5,000 digits); ``_nearest_of_lists`` orders each
list. The exact distances are ``distances._exact_rdist``'s, as the
brute-force search's re-ranking computes them, so the answer is that
search's, to the bit.
"""

import sys

import numpy as np

from .._config import jit
from .distances import _exact_rdist
from .bitscan import _trailing_zeros
from .prefetch import _prefetch_row, _prefetch_to_l2
from .topk import NO_BOUND, _keep_smallest

# Rows per block of the Gram matrix: a product of two blocks of 1,024 digits
# keeps BLAS near its peak, as ``topk.GEMM_TRAIN_BLOCK``.
GRAM_BLOCK = 1024
# Cross terms of a row sampled for its seed: evenly spaced rows.
SEED_SAMPLE = 512
# The seed's rank in the sample is this factor times the rank the k-th
# neighbour has in it, plus the extra: a margin that makes the seed hold k
# rows of the whole row for most rows (checked: for a row whose seed holds
# fewer, 5% of the digits at k=91, the rank is doubled), while keeping the
# candidates near 1.5 k (138 a row at k=91 on 5,000 digits).
SEED_RANK_FACTOR = 1.25
SEED_RANK_EXTRA = 3
# Consecutive rows gathered together: their cross terms with a row of an
# earlier block are one cache line of that row (16 float32).
LANES = 16
# Rows above a group whose columns are prefetched ahead of their copy.
COLUMN_PREFETCH_AHEAD = 32
# Largest seed rank kept by insertion (``_smallest_of_sample``).
SEED_BEST = 64
# Which byte of a 64-bit word holds the first of eight flags (see ``_list_candidates``).
LITTLE_ENDIAN = sys.byteorder == "little"
# Rows prefetched into L2 ahead of their exact distance, and at most how many
# cache lines of each (as ``topk._rerank_queries``).
PREFETCH_AHEAD = 4
PREFETCH_LINES = 64


@jit()
def _smallest_of_sample(values, size, m, best, scratch):
    """The ``m``-th smallest of the first ``size`` of ``values`` (which may be reordered).

    For small ``m`` (the seeds' rank, 14 at k=91 on 5,000 rows), an
    insertion into the ``m`` smallest so far, kept sorted in ``best``:
    after the first few values, most are larger than all of them and cost
    one well-predicted comparison, where a quickselect mispredicts about
    one branch a value. Larger ``m`` takes ``topk._keep_smallest``.
    """
    if m > best.shape[0]:
        return _keep_smallest(values, scratch, size, m)
    for position in range(m):
        best[position] = NO_BOUND
    for s in range(size):
        value = values[s]
        if value < best[m - 1]:
            position = m - 1
            while position > 0 and best[position - 1] > value:
                best[position] = best[position - 1]
                position -= 1
            best[position] = value
    return best[m - 1]


@jit()
def _list_candidates(values, first_row, train_lower, train_upper, threshold, flags, rows, lower, upper, n_found):
    """Append the rows of ``values`` (cross terms of rows ``first_row`` on) whose lower bound is within ``threshold``.

    Their rows and bounds go to ``rows``, ``lower`` and ``upper`` from
    position ``n_found``; returns the new count. The comparisons are first
    stored as bytes in ``flags`` (uint8, room for ``len(values) + 8``), a
    loop that vectorises, then read eight at a time as a 64-bit word, of
    which only the nonzero bytes are visited: a few percent of a row are
    candidates. (A branch per value mispredicted each of them, and a loop
    packing the comparisons into a bit mask did not vectorise with the
    float32 to float64 conversion in it: 0.85 ns a value, against 0.11 for
    a count of the same comparisons.)
    """
    n_values = values.shape[0]
    offsets = train_lower[first_row : first_row + n_values]
    for c in range(n_values):
        flags[c] = offsets[c] - 2.0 * np.float64(values[c]) <= threshold
    n_words = (n_values + 7) // 8
    for c in range(n_values, 8 * n_words):
        flags[c] = 0
    words = flags[: 8 * n_words].view(np.uint64)
    for w in range(n_words):
        word = words[w]
        while word:
            byte = _trailing_zeros(word) // 8
            word &= word - np.uint64(1)  # a byte is 0 or 1: this clears it
            c = 8 * w + (byte if LITTLE_ENDIAN else 7 - byte)
            value = np.float64(values[c])
            j = first_row + c
            rows[n_found] = j
            lower[n_found] = train_lower[j] - 2.0 * value
            upper[n_found] = train_upper[j] - 2.0 * value
            n_found += 1
    return n_found


@jit()
def _gather_candidates(first, last, gram, block, train_lower, train_upper, query_terms, n_neighbors,
                       within_rows, within_count):
    """The rows that can be among the k nearest of rows ``first`` to ``last - 1``, from their cross terms.

    Parameters
    ----------
    first, last : int
        ``first`` a multiple of ``LANES``. One call runs on one thread and
        releases the GIL; calls on disjoint rows write disjoint outputs.
    gram : ndarray of shape (n_rows, n_rows)
        Float32 or float64 cross terms: ``gram[i, j]`` for ``j`` from the
        first row of ``i``'s block of ``block`` rows on (the blocks on and
        above the diagonal); the rest is never read.
    block : int
        Rows per block of ``gram``, a multiple of ``LANES``.
    train_lower, train_upper : ndarray of shape (n_rows,), float64
        The Euclidean bounds' offsets, scale -2 (see ``_search.euclidean_bounds``).
    query_terms : ndarray of shape (n_rows,), float64
        The rows' query terms.
    n_neighbors : int
    within_rows : ndarray of shape (n_rows, capacity), int64
        Output: row ``i``'s list, the rows whose lower bound is within its
        threshold (the k-th smallest upper bound plus its query term), in
        ascending order; every one of its k nearest is among them.
    within_count : ndarray of shape (n_rows,), int64
        Output: the length of each list, or -1 where it exceeds
        ``capacity`` (the list is then not written).

    Notes
    -----
    A group of ``LANES`` rows first copies its columns of the blocks
    above its own (one or two cache lines of each row above, prefetched
    ahead: rows 20 kB apart defeat the hardware's prefetch), so that each
    row's cross terms are two contiguous runs. The seed is a low quantile of
    the upper bounds of an evenly spaced sample of the row. Every row whose
    lower bound is within the seed (plus the query term) is a candidate:
    this holds every row whose upper bound is within the seed. When at
    least k of them are, the k-th smallest upper bound of the candidates is
    the row's; otherwise (a sample unlike its row) the rows are listed
    again from the seed of twice the rank, until a seed holds k rows or
    there is no seed (every row a candidate).
    """
    n_rows = gram.shape[0]
    capacity = within_rows.shape[1]
    itemsize = gram.itemsize
    n_sample = min(SEED_SAMPLE, n_rows)
    stride = n_rows // n_sample
    rank = min(n_sample, int(SEED_RANK_FACTOR * n_neighbors * n_sample / n_rows) + SEED_RANK_EXTRA)
    columns = np.empty((LANES, n_rows), dtype=gram.dtype)
    sample = np.empty(n_sample, dtype=np.float64)
    best = np.empty(SEED_BEST, dtype=np.float64)
    rows = np.empty(n_rows, dtype=np.int64)
    lower = np.empty(n_rows, dtype=np.float64)
    upper = np.empty(n_rows, dtype=np.float64)
    scratch = np.empty(n_rows, dtype=np.int64)
    flags = np.empty(n_rows + 8, dtype=np.uint8)
    none = np.int64(0)  # not the literal 0: numba would compile ``_list_candidates`` for it too
    for group in range(first, last, LANES):
        width = min(LANES, last - group)
        # The group's cross terms with the rows of earlier blocks are in those rows.
        start = group - group % block
        for j in range(start):
            ahead = j + COLUMN_PREFETCH_AHEAD
            _prefetch_to_l2(gram, ahead, group * itemsize)
            _prefetch_to_l2(gram, ahead, (group + width) * itemsize - 1)
            above = gram[j]
            for lane in range(width):
                columns[lane, j] = above[group + lane]
        for lane in range(width):
            i = group + lane
            before = columns[lane, :start]
            own = gram[i, start:]
            for s in range(n_sample):
                j = s * stride
                value = before[j] if j < start else own[j - start]
                sample[s] = train_upper[j] - 2.0 * np.float64(value)
            seed_rank = rank
            seed = _smallest_of_sample(sample, n_sample, seed_rank, best, scratch)
            while True:
                threshold = seed + query_terms[i]
                n_found = _list_candidates(before, none, train_lower, train_upper, threshold, flags, rows, lower, upper, none)
                n_found = _list_candidates(own, start, train_lower, train_upper, threshold, flags, rows, lower, upper, n_found)
                held = 0
                for c in range(n_found):
                    held += upper[c] <= seed
                if held >= n_neighbors or seed == NO_BOUND:
                    break
                # A sample unlike its row: a seed of twice the rank, up to none at all.
                if seed_rank == n_sample:
                    seed = NO_BOUND
                else:
                    seed_rank = min(n_sample, 2 * seed_rank)
                    seed = _keep_smallest(sample, scratch, n_sample, seed_rank)
            bound = _keep_smallest(upper, scratch, n_found, n_neighbors)
            threshold = bound + query_terms[i]
            kept = 0
            for c in range(n_found):
                if lower[c] <= threshold:
                    if kept < capacity:
                        within_rows[i, kept] = rows[c]
                    kept += 1
            within_count[i] = kept if kept <= capacity else -1


@jit()
def _distance_owners(within_rows, within_count):
    """For each row, the rows whose lists hold it, and where.

    Parameters
    ----------
    within_rows, within_count : ndarray
        ``_gather_candidates``'s lists (a count of -1: no list).

    Returns
    -------
    offsets : ndarray of shape (n_rows + 1,), int64
        Row ``j``'s entries are ``offsets[j]`` to ``offsets[j + 1] - 1``.
    holders : ndarray of shape (n_entries,), int64
        The rows ``i != j`` whose list holds ``j``, in ascending order.
    positions : ndarray of shape (n_entries,), int64
        Where in ``i``'s list ``j`` is.
    """
    n_rows = within_count.shape[0]
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    for i in range(n_rows):
        for position in range(within_count[i]):  # no pass for -1
            j = within_rows[i, position]
            if j != i:
                offsets[j + 1] += 1
    for j in range(n_rows):
        offsets[j + 1] += offsets[j]
    holders = np.empty(offsets[n_rows], dtype=np.int64)
    positions = np.empty(offsets[n_rows], dtype=np.int64)
    cursor = offsets[:n_rows].copy()
    for i in range(n_rows):
        for position in range(within_count[i]):
            j = within_rows[i, position]
            if j != i:
                holders[cursor[j]] = i
                positions[cursor[j]] = position
                cursor[j] += 1
    return offsets, holders, positions


@jit()
def _exact_distances(first, last, train, metric, power, within_rows, within_count, offsets, holders, positions,
                     within_rdist):
    """Exact reduced distances of rows ``first`` to ``last - 1`` to the rows of their lists.

    Parameters
    ----------
    first, last : int
        One call runs on one thread and releases the GIL. Calls on
        disjoint rows may run at once: each entry is written by one row.
    train : ndarray of shape (n_rows, n_features)
    metric : int
    power : float
        As for ``distances._exact_rdist`` (``EUCLIDEAN``, 2).
    within_rows, within_count
        ``_gather_candidates``'s lists.
    offsets, holders, positions
        ``_distance_owners(within_rows, within_count)``.
    within_rdist : ndarray of shape (n_rows, capacity), float64
        Output: the exact distance of each entry of the lists. Of a pair
        whose rows list each other, the lower row computes the distance
        and writes both entries: the distance is symmetric, to the bit (a
        difference and its opposite round alike, and the sum runs in the
        same order).
    """
    query = np.empty(train.shape[1], dtype=np.float64)
    todo = np.empty(within_rows.shape[1], dtype=np.int64)
    mirrored = np.empty(within_rows.shape[1], dtype=np.int64)
    for i in range(first, last):
        n_listed = within_count[i]
        if n_listed < 0:
            continue
        listed = within_rows[i]
        # Merge the list with the rows that list ``i`` (both ascending).
        entry = offsets[i]
        n_todo = 0
        for position in range(n_listed):
            j = listed[position]
            while entry < offsets[i + 1] and holders[entry] < j:
                entry += 1
            mutual = entry < offsets[i + 1] and holders[entry] == j
            if j == i:
                within_rdist[i, position] = 0.0
            elif not (mutual and j < i):  # row j computes it
                todo[n_todo] = position
                mirrored[n_todo] = positions[entry] if mutual else -1
                n_todo += 1
        if n_todo == 0:
            continue
        for f in range(query.shape[0]):
            query[f] = np.float64(train[i, f])
        for t in range(min(PREFETCH_AHEAD, n_todo)):
            _prefetch_row(train, listed[todo[t]], PREFETCH_LINES, True)
        for t in range(n_todo):
            if t + PREFETCH_AHEAD < n_todo:
                _prefetch_row(train, listed[todo[t + PREFETCH_AHEAD]], PREFETCH_LINES, True)
            j = listed[todo[t]]
            exact = _exact_rdist(query, train[j], metric, power)
            within_rdist[i, todo[t]] = exact
            if mirrored[t] >= 0:
                within_rdist[j, mirrored[t]] = exact


# Lists up to this long are ordered by counting each entry's rank, longer
# ones by a Shell sort (see ``_nearest_of_lists``).
RANK_SORT_MAX = 256
# Gaps of the Shell sort (Ciura's, then about 2.25 times the previous).
SORT_GAPS = np.array([1, 4, 10, 23, 57, 132, 301, 701, 1750, 3937, 8858, 19930, 44842, 100894], dtype=np.int64)


@jit()
def _nearest_of_lists(first, last, within_rows, within_count, within_rdist, out_rdist, out_index):
    """The k nearest of each list of rows ``first`` to ``last - 1``, ascending, ties by lower row.

    ``out_rdist`` and ``out_index`` have shape ``(n_rows, n_neighbors)``;
    every list holds at least ``n_neighbors`` rows, and rows without a
    list (count -1) are left unwritten. An entry's place is the number of
    entries before it in (distance, row) order: counted over the whole
    list, two loops that vectorise, for a list of up to ``RANK_SORT_MAX``
    (1.2 us for a list of 92, where a Shell sort took 3.8 and
    ``np.argsort`` 3.6, mispredicting its comparisons); longer lists are
    sorted in place by a Shell sort.
    """
    n_neighbors = out_rdist.shape[1]
    for i in range(first, last):
        n_listed = within_count[i]
        if n_listed < 0:
            continue
        values = within_rdist[i, :n_listed]
        rows = within_rows[i, :n_listed]
        if n_listed <= RANK_SORT_MAX:
            for position in range(n_listed):
                value = values[position]
                before = 0
                equal = 0
                for other in range(n_listed):
                    before += values[other] < value
                    equal += values[other] == value
                if equal > 1:  # ties: the lower rows first
                    row = rows[position]
                    for other in range(n_listed):
                        before += (values[other] == value) & (rows[other] < row)
                if before < n_neighbors:
                    out_rdist[i, before] = value
                    out_index[i, before] = rows[position]
            continue
        g = 0
        while g + 1 < SORT_GAPS.shape[0] and SORT_GAPS[g + 1] < n_listed:
            g += 1
        while g >= 0:
            gap = SORT_GAPS[g]
            for position in range(gap, n_listed):
                value = values[position]
                row = rows[position]
                j = position
                while j >= gap and (values[j - gap] > value or (values[j - gap] == value and rows[j - gap] > row)):
                    values[j] = values[j - gap]
                    rows[j] = rows[j - gap]
                    j -= gap
                values[j] = value
                rows[j] = row
            g -= 1
        for m in range(n_neighbors):
            out_rdist[i, m] = values[m]
            out_index[i, m] = rows[m]
