"""Exact integer dot products of 16-bit codes, for the PCA bounds.

The stage-1 bounds need the cross term ``Pq'.Pt'`` of every query with every
training row: most of a Euclidean pruned search's arithmetic. Taken on
16-bit integer codes of the projections instead of float32 values, the
products are exact, and x86's ``vpdpwssd`` (AVX-512 VNNI) does 32 of them
per instruction where a float32 FMA does 16. On the digits' 48 components,
one thread: 4.6 us a query for 10,240 rows (about 210 billion operations a
second), against 10.5 us for OpenBLAS's sgemm on float32 in runs of 512
rows (94 GFLOP/s), measured side by side.

The kernel is written in portable LLVM IR: products of sign-extended
16-bit lanes, summed in adjacent pairs. LLVM selects ``vpdpwssd`` for it
where the CPU has AVX-512 VNNI, ``vpmaddwd`` plus an add on other x86
CPUs, and the equivalent elsewhere; the integer results are the same on
every machine.

Layout. A query's codes are ``CODE_PAIRS`` int32, each holding two
consecutive int16 codes (an int16 array of shape (n, 2 * CODE_PAIRS),
viewed as int32). Training codes are stored in panels of ``PANEL_ROWS``
rows, shape (n_panels, CODE_PAIRS, PANEL_ROWS): for each pair of codes, the
panel's rows side by side, one 64-byte vector. No sum overflows int32 if
every code vector's Euclidean norm is below 2**15 (each partial sum is then
within ``|Q| |T| < 2**30``, by Cauchy-Schwarz), which ``_pruning``'s
quantisation ensures.

Stage 2 takes one query and one training row at a time, over more
components: ``_code_dot``, a plain loop that LLVM vectorises.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import jit

# Pairs of 16-bit codes per row (the stage-1 components, zero-padded).
CODE_PAIRS = 24
# Training rows per panel: one 512-bit vector of int32 sums.
PANEL_ROWS = 16
# Register block of the kernel: BLOCK_QUERIES queries times BLOCK_PANELS
# panels, 8 vector accumulators. 6 x 2, 8 x 2 and 4 x 4 ran within 3% of it;
# 2 x 4 was 1.5 times slower (one thread, the digits' shapes).
BLOCK_QUERIES = 4
BLOCK_PANELS = 2


@intrinsic
def _pair_products_block(typingctx, query_codes, first_query, train_panels, first_panel, out, first_column):
    """``out[first_query + i, first_column + 16 a + r]`` = codes of query ``first_query + i``
    dot codes of row r of panel ``first_panel + a``, for i < BLOCK_QUERIES, a < BLOCK_PANELS.

    ``query_codes`` (n, CODE_PAIRS), ``train_panels`` (n_panels, CODE_PAIRS,
    PANEL_ROWS) and ``out`` are C-contiguous int32 arrays; nothing is
    bounds-checked (see ``_pair_products``).
    """
    if not all(
        isinstance(a, types.Array) and a.dtype == types.int32 and a.layout == "C"
        for a in (query_codes, train_panels, out)
    ):
        return None
    signature = types.void(query_codes, first_query, train_panels, first_panel, out, first_column)

    def codegen(context, builder, signature, args):
        query_value, first_query_value, panels_value, first_panel_value, out_value, first_column_value = args
        intp = cgutils.intp_t
        int32 = ir.IntType(32)
        vector = ir.VectorType(int32, PANEL_ROWS)
        halves = ir.VectorType(ir.IntType(16), 2 * PANEL_ROWS)
        widened = ir.VectorType(int32, 2 * PANEL_ROWS)

        def index(position, value):
            return context.cast(builder, value, signature.args[position], types.intp)

        def address(array_value, position, offsets):
            """Byte address of an element, given its index times stride per leading axis."""
            array = context.make_array(signature.args[position])(context, builder, array_value)
            strides = cgutils.unpack_tuple(builder, array.strides, signature.args[position].ndim)
            total = builder.ptrtoint(array.data, intp)
            for axis, offset in enumerate(offsets):
                total = builder.add(total, builder.mul(offset, strides[axis]))
            return total

        def constant(value):
            return ir.Constant(intp, value)

        first_query_index = index(1, first_query_value)
        first_panel_index = index(3, first_panel_value)
        first_column_index = index(5, first_column_value)
        query_rows = [
            address(query_value, 0, [builder.add(first_query_index, constant(i))]) for i in range(BLOCK_QUERIES)
        ]
        panels = [address(panels_value, 2, [builder.add(first_panel_index, constant(a))]) for a in range(BLOCK_PANELS)]
        even = ir.Constant(vector, [2 * lane for lane in range(PANEL_ROWS)])
        odd = ir.Constant(vector, [2 * lane + 1 for lane in range(PANEL_ROWS)])
        broadcast = ir.Constant(vector, [0] * PANEL_ROWS)
        sums = [[ir.Constant(vector, [0] * PANEL_ROWS)] * BLOCK_PANELS for _ in range(BLOCK_QUERIES)]
        for pair in range(CODE_PAIRS):
            rows = []
            for a in range(BLOCK_PANELS):
                pointer = builder.inttoptr(builder.add(panels[a], constant(pair * 4 * PANEL_ROWS)), vector.as_pointer())
                rows.append(builder.sext(builder.bitcast(builder.load(pointer, align=4), halves), widened))
            for i in range(BLOCK_QUERIES):
                pointer = builder.inttoptr(builder.add(query_rows[i], constant(pair * 4)), int32.as_pointer())
                code_pair = builder.load(pointer, align=4)
                single = builder.insert_element(ir.Constant(vector, None), code_pair, ir.Constant(int32, 0))
                splat = builder.shuffle_vector(single, single, broadcast)
                query = builder.sext(builder.bitcast(splat, halves), widened)
                for a in range(BLOCK_PANELS):
                    products = builder.mul(rows[a], query)
                    pairs = builder.add(
                        builder.shuffle_vector(products, products, even),
                        builder.shuffle_vector(products, products, odd),
                    )
                    sums[i][a] = builder.add(sums[i][a], pairs)
        for i in range(BLOCK_QUERIES):
            for a in range(BLOCK_PANELS):
                column = builder.add(first_column_index, constant(a * PANEL_ROWS))
                target = address(out_value, 4, [builder.add(first_query_index, constant(i)), column])
                builder.store(sums[i][a], builder.inttoptr(target, vector.as_pointer()), align=4)
        return context.get_dummy_value()

    return signature, codegen


@jit()
def _pair_products(query_codes, train_panels, first_panel, n_panels, out):
    """``out[i, 16 a + r]``: codes of query i dot those of row r of panel ``first_panel + a``, for a < n_panels.

    Parameters
    ----------
    query_codes : ndarray of shape (n_queries, CODE_PAIRS), int32
        ``n_queries`` a multiple of BLOCK_QUERIES (pad with zero rows).
    train_panels : ndarray of shape (n_all_panels, CODE_PAIRS, PANEL_ROWS), int32
    first_panel, n_panels : int
        ``n_panels`` a multiple of BLOCK_PANELS, the panels within
        ``train_panels``.
    out : ndarray of shape (n_queries, >= n_panels * PANEL_ROWS), int32
    """
    if (
        query_codes.shape[0] % BLOCK_QUERIES
        or n_panels % BLOCK_PANELS
        or query_codes.shape[1] != CODE_PAIRS
        or train_panels.shape[1] != CODE_PAIRS
        or train_panels.shape[2] != PANEL_ROWS
        or first_panel < 0
        or first_panel + n_panels > train_panels.shape[0]
        or out.shape[0] != query_codes.shape[0]
        or out.shape[1] < n_panels * PANEL_ROWS
    ):
        raise ValueError("_pair_products: shapes do not match its layout")
    for first_query in range(0, query_codes.shape[0], BLOCK_QUERIES):
        for panel in range(0, n_panels, BLOCK_PANELS):
            _pair_products_block(query_codes, first_query, train_panels, first_panel + panel, out, panel * PANEL_ROWS)


@jit(fastmath=True)
def _code_dot(a, b):
    """Dot product, exact in int32, of two int16 code vectors whose norms are below 2**15.

    Every partial sum is within ``|a| |b| < 2**30`` (Cauchy-Schwarz), in
    whatever order the compiled loop adds them. LLVM vectorises it with
    ``vpmaddwd``: 6.2 against 10.3 ns a row from cache for a float32
    squared distance over the same 128 components (one thread, measured).
    """
    total = np.int32(0)
    for c in range(a.shape[0]):
        total = np.int32(total + np.int32(a[c]) * np.int32(b[c]))
    return total
