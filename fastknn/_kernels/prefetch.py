"""Software prefetch of training rows the pruned search is about to read.

The pruned search reads a few hundred training rows per query, scattered
over the training set: each read of a row not in cache stalls on memory.
Asking for the next rows a few steps ahead overlaps those stalls with the
work on the current row. Measured with float32 rows read in random order
from 10,000 (one thread, four rows ahead): distances over 196 features,
the size of the digits' pooled stage-2 rows, went from 95 to 38 ns a row,
over 784 features (a digit) from 400 to 310 ns; over 128 features, whose
5 MB table stays in cache, it changed nothing.

Whole digits (49 cache lines) are better prefetched into L2 than into L1:
with rows out of L3 (a training set six times the digits), a distance took
about 410 ns a row with its first 16 lines prefetched into L1 four rows
ahead, 430 ns with all 49, and 280 to 290 ns with all 49 into L2, two or
four rows ahead (one thread, the 50 nearest rows of each query).
Presumably L1 can track fewer outstanding misses than L2 can.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import jit

# Cache line size of x86-64 and most ARM cores, in bytes.
CACHE_LINE = 64


# LLVM's locality hints: 3 is x86's prefetcht0 (into every cache level,
# L1 included), 2 is prefetcht1 (into L2 and beyond).
NEAR_LOCALITY = 3
L2_LOCALITY = 2


def _prefetch_intrinsic(locality):
    """An intrinsic ``(array, row, byte_offset)`` hinting that ``byte_offset``
    bytes into row ``row`` of a 2-D array will be read soon.

    It emits LLVM's ``llvm.prefetch`` (read, data cache) with the given
    locality: a hint with no effect on results, and no fault even past the
    end of the array.
    """

    @intrinsic
    def prefetch(typingctx, array, row, byte_offset):
        if not (isinstance(array, types.Array) and array.ndim == 2):
            return None
        if not (isinstance(row, types.Integer) and isinstance(byte_offset, types.Integer)):
            return None
        signature = types.void(array, row, byte_offset)

        def codegen(context, builder, signature, args):
            array_value, row_value, offset_value = args
            array_struct = context.make_array(signature.args[0])(context, builder, array_value)
            row_stride = cgutils.unpack_tuple(builder, array_struct.strides, 2)[0]
            row_index = context.cast(builder, row_value, signature.args[1], types.intp)
            offset = context.cast(builder, offset_value, signature.args[2], types.intp)
            base = builder.ptrtoint(array_struct.data, cgutils.intp_t)
            address = builder.add(base, builder.add(builder.mul(row_index, row_stride), offset))
            byte_pointer = ir.IntType(8).as_pointer()
            int32 = ir.IntType(32)
            function_type = ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32])
            prefetch = cgutils.get_or_insert_function(builder.module, function_type, "llvm.prefetch.p0")
            builder.call(
                prefetch,
                [
                    builder.inttoptr(address, byte_pointer),
                    ir.Constant(int32, 0),
                    ir.Constant(int32, locality),
                    ir.Constant(int32, 1),
                ],
            )
            return context.get_dummy_value()

        return signature, codegen

    return prefetch


_prefetch = _prefetch_intrinsic(NEAR_LOCALITY)
_prefetch_to_l2 = _prefetch_intrinsic(L2_LOCALITY)


@jit()
def _prefetch_row(array, row, max_lines, to_l2=False):
    """Prefetch the first cache lines of ``array[row]``, at most ``max_lines`` of them.

    Into every cache level, or with ``to_l2`` only as near as L2.
    """
    n_bytes = array.shape[1] * array.itemsize
    n_lines = min(max_lines, (n_bytes + CACHE_LINE - 1) // CACHE_LINE)
    for line in range(n_lines):
        if to_l2:
            _prefetch_to_l2(array, row, line * CACHE_LINE)
        else:
            _prefetch(array, row, line * CACHE_LINE)
