"""Listing the rows whose bound is within a threshold, through bit masks.

The pruned search lists, per query, the few training rows whose bound is
within a threshold (a few percent of them). A loop that appends every row
and advances the output position by the comparison runs one row a cycle or
so and cannot vectorise. Here each block of ``SCAN_BLOCK`` rows is compared
in a constant-length loop that LLVM turns into a few vector comparisons
packed into a bit mask, and only the set bits are visited, by counting
trailing zeros. Measured on one thread over 10,000 float32 bounds: 6.8 us
against 0.85 us when 3% of the rows are within, 3.8 us when 30% are.
(With blocks of 32 rows, LLVM 22 compared them one at a time: 4.7 us for
the masks alone, against 0.83 us with 64.)
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import jit

# Rows per block: one bit each in a 64-bit mask.
SCAN_BLOCK = 64


@intrinsic
def _trailing_zeros(typingctx, mask):
    """Index of the lowest set bit of a nonzero unsigned 64-bit ``mask`` (``llvm.cttz``)."""
    if not (isinstance(mask, types.Integer) and mask.bitwidth == 64 and not mask.signed):
        return None

    def codegen(context, builder, signature, args):
        int64 = ir.IntType(64)
        function_type = ir.FunctionType(int64, [int64, ir.IntType(1)])
        count = cgutils.get_or_insert_function(builder.module, function_type, "llvm.cttz.i64")
        # Zero is poison: callers only pass nonzero masks.
        return builder.call(count, [args[0], ir.Constant(ir.IntType(1), 1)])

    return types.int64(mask), codegen


@jit(finite=True)
def _block_mask(block, threshold):
    """Bit j set when ``block[j] <= threshold``, for a block of exactly ``SCAN_BLOCK`` bounds."""
    mask = np.uint64(0)
    for j in range(SCAN_BLOCK):
        mask |= np.uint64(block[j] <= threshold) << np.uint64(j)
    return mask


@jit(finite=True)
def _tail_mask(block, threshold):
    """:func:`_block_mask` for a block shorter than ``SCAN_BLOCK``."""
    mask = np.uint64(0)
    for j in range(block.shape[0]):
        mask |= np.uint64(block[j] <= threshold) << np.uint64(j)
    return mask


@jit()
def _rows_within(row, threshold, out):
    """Put the indices of the bounds in ``row`` that are <= ``threshold`` in ``out``, ascending.

    ``out`` needs room for every row; returns how many were listed.
    """
    n_rows = row.shape[0]
    n_listed = 0
    for start in range(0, n_rows, SCAN_BLOCK):
        if start + SCAN_BLOCK <= n_rows:
            mask = _block_mask(row[start : start + SCAN_BLOCK], threshold)
        else:
            mask = _tail_mask(row[start:], threshold)
        while mask:
            out[n_listed] = start + _trailing_zeros(mask)
            n_listed += 1
            mask &= mask - np.uint64(1)
    return n_listed
