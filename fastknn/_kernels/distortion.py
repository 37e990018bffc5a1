"""Numba kernels behind :mod:`fastknn.distortion`: the image distortion model.

The IDM distance of a query ``Q`` to a reference ``R`` (Keysers et al., IEEE
PAMI 2007) sums, over the query's pixels ``p``, the smallest squared distance
between the local context of ``p`` in ``Q`` and the context of a pixel
``p + d`` of ``R``, ``d`` in the window ``[-warp, warp]^2`` (``p + d`` inside
the image). A context is the ``context_size x context_size`` neighbourhood of
the horizontal and vertical Sobel gradients, zero outside the image.

Layout
    Each image is kept as its two gradient images in a padded float32 array
    of shape ``(n_images, 2, n_rows, stride)`` (:func:`_layout`): pixel
    ``(i, j)`` at row ``top + i``, column ``j``, with ``top = radius + 1``
    zero rows above the image, ``radius + 1`` below, and a zero gutter of
    ``radius`` columns right of each row, ``stride = width + radius``. The
    kernels read the array flat, where column ``-c`` of a row is column
    ``stride - c`` of the row above: one gutter serves as the right border
    of one row and the left border of the next, which is all a context
    reads at a pixel whose match is inside the image (the matches outside
    are kept out by a penalty, see :func:`_band_minima`); the last zero
    row takes the one float that a pair of displacements reads past the
    others. The flat loops run over ``stride`` floats a row instead of
    ``width + 2 (radius + warp)`` with a border on each side: 29 instead
    of 34 on the digits.
    Contexts are never stored (18 floats a pixel at 3x3).

Shift formulation
    With ``D_d(q) = |g_Q(q) - g_R(q + d)|^2`` summed over both gradients, the
    context distance of pixel ``p`` at displacement ``d`` is the box sum of
    ``D_d`` over ``p``'s context. So for each of the ``(2 warp + 1)^2``
    displacements the kernel computes ``D_d`` row by row (contiguous,
    vectorised loops), box-filters it (separably) and keeps the running
    minimum per pixel; with 3x3 contexts, two displacements of a row at a
    time. Rows are processed in bands of :data:`BAND_ROWS`, so
    that a candidate's partial sum is known after each band and the
    candidate can be abandoned early.

Early abandoning
    The distance only grows as bands are added, so a candidate is dropped as
    soon as its partial sum exceeds the current ``n_neighbors``-th best of
    its query. Candidates come in Euclidean order (the best are scored
    first, so the bound tightens quickly) and bands by decreasing gradient
    energy of the query (:func:`_band_energy`).
"""

import numpy as np

from .._config import jit

#: Query rows per band: the unit of early abandoning. A band recomputes
#: ``2 * radius`` rows of ``D_d`` shared with its neighbours and runs longer
#: vector loops when taller, but abandons later; 7 was the fastest of 2, 4,
#: 7 and 14 on the packaged digits, and of 4, 5, 6, 7, 10 and 14 on a Zen 3
#: with AVX2, where 14 re-ranked 1.2 times slower (see docs/performance.rst).
BAND_ROWS = 7


@jit()
def _layout(height, width, radius):
    """``(top, stride, n_rows)`` of the padded gradients (see the module's Layout)."""
    top = radius + 1
    stride = width + radius
    return top, stride, top + height + radius + 1


@jit()
def _sobel_gradients(images, top, out):
    """Horizontal and vertical Sobel gradients, zero-padded.

    Parameters
    ----------
    images : float32 array of shape (n_images, height, width)
        Pixel values, C-contiguous; pixels outside the image count as 0.
    top : int
        Zero rows of ``out`` above the image.
    out : float32 array of shape (n_images, 2, n_rows, stride)
        Zero on entry, laid out as :func:`_layout` says (its padding stays
        zero). Filled at the image's pixels, ``(top + i, j)``:
        channel 0 the derivative along columns
        (``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``), channel 1 along rows (its
        transpose).

    Serial: the driver runs blocks of images in threads (a ``prange`` added
    about half a second to its compilation).
    """
    n_images, height, width = images.shape
    for n in range(n_images):
        for i in range(height):
            for j in range(width):
                gx = np.float32(0.0)
                gy = np.float32(0.0)
                for di in range(-1, 2):
                    r = i + di
                    if r < 0 or r >= height:
                        continue
                    row_weight = np.float32(2.0) if di == 0 else np.float32(1.0)
                    for dj in range(-1, 2):
                        c = j + dj
                        if c < 0 or c >= width:
                            continue
                        col_weight = np.float32(2.0) if dj == 0 else np.float32(1.0)
                        v = images[n, r, c]
                        gx += row_weight * dj * v
                        gy += col_weight * di * v
                out[n, 0, top + i, j] = gx
                out[n, 1, top + i, j] = gy


@jit(inline=True)
def _span(query, reference, top, stride, r0, r1, c0, c1, radius, shift):
    """Where ``D_d`` is needed for the output pixels ``r0:r1, c0:c1``.

    Returns the query's two flat gradients from image pixel
    ``(r0 - radius, c0 - radius)`` to ``(r1 - 1 + radius, c1 - 1 + radius)``
    (the contexts of those pixels), and the reference's over the same span
    moved by ``shift`` flat positions (``dr * stride + dc``).
    """
    start = (top + r0 - radius) * stride + c0 - radius
    stop = (top + r1 - 1 + radius) * stride + c1 + radius
    return (
        query[0, start:stop],
        query[1, start:stop],
        reference[0, start + shift : stop + shift],
        reference[1, start + shift : stop + shift],
    )


@jit(fastmath=True)
def _band_minima(query, reference, row0, row1, height, width, radius, warp, penalties, buffers, minima):
    """Smallest context distance of each pixel of one band, over the window.

    Parameters
    ----------
    query, reference : float32 arrays of shape (2, n_rows * stride)
        Padded gradients of the query and of the reference, flattened
        (:func:`_layout`).
    row0, row1 : int
        The band: query rows ``row0:row1``.
    penalties : float32 array of shape (2 warp + 1, BAND_ROWS * stride)
        Row ``dc + warp`` holds, at flat position ``t`` of a band (column
        ``j = t % stride``), 0 when the image column ``j`` there
        and ``j + dc`` are both inside the image, else infinity (built by
        ``fastknn.distortion._column_penalties``). Added to a cost before
        the minimum, it keeps out matches across the left and right borders
        without a branch in the vectorised loop.
    buffers : float32 array of shape (4, (BAND_ROWS + 2 radius + 1) * stride)
        Scratch for ``D_d`` and its horizontal and vertical box sums (and
        those of a second displacement).
    minima : float32 array of shape (BAND_ROWS * stride,)
        Output, flat with the padded row stride: pixel ``(i, j)`` at
        ``(i - row0) * stride + j``, for ``row0 <= i < row1`` and
        ``0 <= j < width``. Other entries are scratch.

    The loops run over the band as one flat range of the padded images,
    a few hundred contiguous floats: rows of 28 pixels alone are too short
    for LLVM's vectorised loops, which then run their scalar remainder
    only. Entries in the gutter, and those of matches outside the image
    (which read a neighbouring row), are computed and then ignored or
    masked by the penalty.

    The running minima take ``np.fmin`` (the same value: no cost is NaN):
    LLVM compiles ``m[k] = min(m[k], cost)`` to a masked store, which AVX2
    has only as ``vmaskmovps``, microcoded on AMD CPUs, and ``fmin`` to a
    blend and a plain store. Re-ranking 50 candidates of 2,000 digits took
    0.50 to 0.61 s instead of 0.89 s so in an AVX2 build
    (``NUMBA_CPU_NAME=haswell``, a Zen 4), 0.54 to 0.57 s instead of 0.64 s
    for AVX-512.
    """
    top, stride, _ = _layout(height, width, radius)
    for i in range(row1 - row0):
        minima[i * stride : i * stride + width] = np.inf
    d_buf = buffers[0]
    h_buf = buffers[1]
    v_buf = buffers[2]
    for dr in range(-warp, warp + 1):
        # Output rows whose displaced pixel stays inside the image.
        r0 = max(row0, -dr)
        r1 = min(row1, height - dr)
        if r0 >= r1:
            continue
        first_single = -warp
        if radius == 1:
            # 3x3 contexts: displacements dc and dc + 1 in one pass, which
            # loads the query's gradients and the running minima once for
            # both. Their columns are the union of the two (one more for
            # one of them, masked by its penalty; its reads reach one float
            # further, into the layout's extra zero row).
            for dc in range(-warp, warp, 2):
                c0 = max(0, -dc - 1)
                c1 = min(width, width - dc)
                shift = dr * stride + dc
                q0, q1, g0, g1 = _span(query, reference, top, stride, r0, r1, c0, c1, 1, shift)
                _, _, next_g0, next_g1 = _span(query, reference, top, stride, r0, r1, c0, c1, 1, shift + 1)
                n_d = q0.shape[0]
                next_d = buffers[3]
                for k in range(n_d):
                    a = q0[k] - g0[k]
                    b = q1[k] - g1[k]
                    next_a = q0[k] - next_g0[k]
                    next_b = q1[k] - next_g1[k]
                    d_buf[k] = a * a + b * b
                    next_d[k] = next_a * next_a + next_b * next_b
                n_h = n_d - 2
                n_v = n_h - 2 * stride
                next_h = buffers[2]
                for k in range(n_h):
                    h_buf[k] = d_buf[k] + d_buf[k + 1] + d_buf[k + 2]
                    next_h[k] = next_d[k] + next_d[k + 1] + next_d[k + 2]
                m = minima[(r0 - row0) * stride + c0 :]
                penalty = penalties[dc + warp, c0:]
                next_penalty = penalties[dc + 1 + warp, c0:]
                h_mid = h_buf[stride:]
                h_low = h_buf[2 * stride :]
                next_mid = next_h[stride:]
                next_low = next_h[2 * stride :]
                for k in range(n_v):
                    cost = h_buf[k] + h_mid[k] + h_low[k] + penalty[k]
                    next_cost = next_h[k] + next_mid[k] + next_low[k] + next_penalty[k]
                    m[k] = np.fmin(m[k], np.fmin(cost, next_cost))
            first_single = warp
        for dc in range(first_single, warp + 1):
            c0 = max(0, -dc)
            c1 = min(width, width - dc)
            shift = dr * stride + dc
            q0, q1, g0, g1 = _span(query, reference, top, stride, r0, r1, c0, c1, radius, shift)
            n_d = q0.shape[0]
            for k in range(n_d):
                a = q0[k] - g0[k]
                b = q1[k] - g1[k]
                d_buf[k] = a * a + b * b
            # Horizontal box sums, then vertical ones: the cost of pixel
            # (r0, c0) plus k flat positions is at k. The common 3x3 context
            # runs as two fused loops instead of five passes.
            n_h = n_d - 2 * radius
            n_v = n_h - 2 * radius * stride
            m = minima[(r0 - row0) * stride + c0 :]
            penalty = penalties[dc + warp, c0:]
            if radius == 1:
                for k in range(n_h):
                    h_buf[k] = d_buf[k] + d_buf[k + 1] + d_buf[k + 2]
                h_mid = h_buf[stride:]
                h_low = h_buf[2 * stride :]
                for k in range(n_v):
                    m[k] = np.fmin(m[k], h_buf[k] + h_mid[k] + h_low[k] + penalty[k])
                continue
            for k in range(n_h):
                h_buf[k] = d_buf[k]
            for o in range(1, 2 * radius + 1):
                for k in range(n_h):
                    h_buf[k] += d_buf[k + o]
            for k in range(n_v):
                v_buf[k] = h_buf[k]
            for o in range(1, 2 * radius + 1):
                offset = o * stride
                for k in range(n_v):
                    v_buf[k] += h_buf[k + offset]
            for k in range(n_v):
                m[k] = np.fmin(m[k], v_buf[k] + penalty[k])


@jit()
def _band_energy(gradients, height, radius, energy):
    """The gradient energy of each band of each image, which orders the bands.

    Parameters
    ----------
    gradients : float32 array of shape (n_images, 2, n_rows, stride)
        Padded as :func:`_layout` says.
    energy : float64 array of shape (n_images, n_bands)
        Filled with each band's sum of squared gradients over the rows its
        contexts read. The driver sums the bands by decreasing energy (equal
        energies by band index): a poor candidate's partial distance then
        passes the bound after fewer bands, as the bands where the query has
        strokes come first.

    Serial, without the sort: a ``prange`` holding ``np.argsort`` took five
    seconds to compile, and NumPy sorts the few bands of every image at once.
    """
    n_images = gradients.shape[0]
    n_bands = energy.shape[1]
    top, _, _ = _layout(height, gradients.shape[3] - radius, radius)
    for n in range(n_images):
        for band in range(n_bands):
            row0 = band * BAND_ROWS
            row1 = min(row0 + BAND_ROWS, height)
            total = 0.0
            for r in range(top + row0 - radius, top + row1 + radius):
                for c in range(gradients.shape[3]):
                    g0 = np.float64(gradients[n, 0, r, c])
                    g1 = np.float64(gradients[n, 1, r, c])
                    total += g0 * g0 + g1 * g1
            energy[n, band] = total


@jit()
def _rerank(
    query_gradients,
    query_band_order,
    train_gradients,
    candidates,
    height,
    width,
    radius,
    warp,
    penalties,
    abandon,
    out_distances,
    out_indices,
):
    """The ``n_neighbors`` candidates of each query nearest in IDM distance.

    Parameters
    ----------
    query_gradients : float32 array of shape (n_queries, 2, n_rows, stride)
        Padded as :func:`_layout` says.
    query_band_order : int64 array of shape (n_queries, n_bands)
        The order in which bands are summed (by decreasing
        :func:`_band_energy`).
    train_gradients : float32 array of shape (n_train, 2, n_rows, stride)
    candidates : int64 array of shape (n_queries, n_candidates)
        Training indices to score for each query, in the order scored (best
        first: early candidates tighten the bound sooner).
    penalties : float32 array
        As for :func:`_band_minima`.
    abandon : bool
        Stop scoring a candidate once its partial sum exceeds the current
        ``n_neighbors``-th best distance (it can no longer enter). The sums
        are the same either way, so this never changes the result.
    out_distances : float64 array of shape (n_queries, n_neighbors)
        IDM distances, ascending.
    out_indices : int64 array of shape (n_queries, n_neighbors)
        Training indices; equal distances are ordered by index.

    Serial: the driver runs blocks of queries in threads (a ``prange`` added
    about two seconds to its compilation).
    """
    n_queries, n_candidates = candidates.shape
    n_neighbors = out_distances.shape[1]
    n_bands = query_band_order.shape[1]
    _, stride, n_rows = _layout(height, width, radius)
    n_flat = n_rows * stride
    # D_d of a band spans BAND_ROWS + 2 radius rows and radius floats more.
    buffers = np.empty((4, (BAND_ROWS + 2 * radius + 1) * stride), dtype=np.float32)
    minima = np.empty(BAND_ROWS * stride, dtype=np.float32)
    for q in range(n_queries):
        best = out_distances[q]
        best_index = out_indices[q]
        for position in range(n_neighbors):  # explicit loops compile much faster than slice assignment
            best[position] = np.inf
            best_index[position] = np.iinfo(np.int64).max
        query = query_gradients[q].reshape((2, n_flat))
        for c in range(n_candidates):
            t = candidates[q, c]
            reference = train_gradients[t].reshape((2, n_flat))
            bound = best[n_neighbors - 1] if abandon else np.inf
            total = 0.0
            for b in range(n_bands):
                row0 = query_band_order[q, b] * BAND_ROWS
                row1 = min(row0 + BAND_ROWS, height)
                _band_minima(
                    query, reference, row0, row1, height, width, radius, warp, penalties, buffers, minima
                )
                for i in range(row1 - row0):
                    band_row = 0.0
                    for j in range(width):
                        band_row += minima[i * stride + j]
                    total += band_row
                if total > bound:
                    break
            if total > bound:
                continue
            # Insert (total, t) into the sorted list if it beats the last.
            last = n_neighbors - 1
            if total > best[last] or (total == best[last] and t >= best_index[last]):
                continue
            position = last
            while position > 0 and (
                total < best[position - 1] or (total == best[position - 1] and t < best_index[position - 1])
            ):
                best[position] = best[position - 1]
                best_index[position] = best_index[position - 1]
                position -= 1
            best[position] = total
            best_index[position] = t
