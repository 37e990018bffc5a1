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
# Register block of the kernel: BLOCK_QUERIES queries times one panel, the
# sums carried through a loop over the pairs. On the digits' shapes (one
# thread, 64 queries against 1,024 rows, best of 21), 111.6 billion
# products a second on AVX-512 VNNI and 83 with AVX2 (an AVX2 build,
# ``NUMBA_CPU_NAME=haswell``); the former block of 4 queries times 2 panels,
# unrolled over the pairs, ran 112.6 and 41 to 62. 2 x 2 panels, looped:
# 102 and 81.
BLOCK_QUERIES = 4


@intrinsic
def _pair_products_block(typingctx, query_codes, first_query, train_panels, panel, out, first_column):
    """``out[first_query + i, first_column + r]`` = codes of query ``first_query + i``
    dot codes of row r of panel ``panel``, for i < BLOCK_QUERIES.

    ``query_codes`` (n, CODE_PAIRS), ``train_panels`` (n_panels, CODE_PAIRS,
    PANEL_ROWS) and ``out`` are C-contiguous int32 arrays; nothing is
    bounds-checked (see ``_pair_products``).
    """
    if not all(
        isinstance(a, types.Array) and a.dtype == types.int32 and a.layout == "C"
        for a in (query_codes, train_panels, out)
    ):
        return None
    signature = types.void(query_codes, first_query, train_panels, panel, out, first_column)

    def codegen(context, builder, signature, args):
        query_value, first_query_value, panels_value, panel_value, out_value, first_column_value = args
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
        query_rows = [
            address(query_value, 0, [builder.add(first_query_index, constant(i))]) for i in range(BLOCK_QUERIES)
        ]
        panel_start = address(panels_value, 2, [index(3, panel_value)])
        even = ir.Constant(vector, [2 * lane for lane in range(PANEL_ROWS)])
        odd = ir.Constant(vector, [2 * lane + 1 for lane in range(PANEL_ROWS)])
        broadcast = ir.Constant(vector, [0] * PANEL_ROWS)
        # A loop over the pairs, the sums carried from one pass to the next:
        # fully unrolled, LLVM reassociated each query's sum into a tree of
        # its own, which kept every loaded row alive from one query to the
        # next, spilled to the stack on AVX2's 16 vector registers.
        entry = builder.basic_block
        loop = builder.append_basic_block("pairs")
        done = builder.append_basic_block("pairs_done")
        builder.branch(loop)
        builder.position_at_end(loop)
        pair = builder.phi(intp)
        pair.add_incoming(constant(0), entry)
        carried = [builder.phi(vector) for _ in range(BLOCK_QUERIES)]
        for sum_in in carried:
            sum_in.add_incoming(ir.Constant(vector, [0] * PANEL_ROWS), entry)
        pointer = builder.inttoptr(builder.add(panel_start, builder.mul(pair, constant(4 * PANEL_ROWS))), vector.as_pointer())
        rows = builder.sext(builder.bitcast(builder.load(pointer, align=4), halves), widened)
        sums = []
        for i in range(BLOCK_QUERIES):
            pointer = builder.inttoptr(builder.add(query_rows[i], builder.mul(pair, constant(4))), int32.as_pointer())
            code_pair = builder.load(pointer, align=4)
            single = builder.insert_element(ir.Constant(vector, None), code_pair, ir.Constant(int32, 0))
            splat = builder.shuffle_vector(single, single, broadcast)
            query = builder.sext(builder.bitcast(splat, halves), widened)
            products = builder.mul(rows, query)
            pairs = builder.add(
                builder.shuffle_vector(products, products, even),
                builder.shuffle_vector(products, products, odd),
            )
            sums.append(builder.add(carried[i], pairs))
        next_pair = builder.add(pair, constant(1))
        pair.add_incoming(next_pair, loop)
        for sum_in, sum_out in zip(carried, sums):
            sum_in.add_incoming(sum_out, loop)
        builder.cbranch(builder.icmp_signed("<", next_pair, constant(CODE_PAIRS)), loop, done)
        builder.position_at_end(done)
        column = index(5, first_column_value)
        for i in range(BLOCK_QUERIES):
            target = address(out_value, 4, [builder.add(first_query_index, constant(i)), column])
            builder.store(sums[i], builder.inttoptr(target, vector.as_pointer()), align=4)
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
        The panels within ``train_panels``.
    out : ndarray of shape (n_queries, >= n_panels * PANEL_ROWS), int32
    """
    if (
        query_codes.shape[0] % BLOCK_QUERIES
        or query_codes.shape[1] != CODE_PAIRS
        or train_panels.shape[1] != CODE_PAIRS
        or train_panels.shape[2] != PANEL_ROWS
        or first_panel < 0
        or n_panels < 0
        or first_panel + n_panels > train_panels.shape[0]
        or out.shape[0] != query_codes.shape[0]
        or out.shape[1] < n_panels * PANEL_ROWS
    ):
        raise ValueError("_pair_products: shapes do not match its layout")
    for first_query in range(0, query_codes.shape[0], BLOCK_QUERIES):
        for panel in range(n_panels):
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
