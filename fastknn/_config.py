"""Named defaults shared by the kernels and the search driver.

Everything tunable lives here so that kernels never hard-code flags or sizes.
"""

import numba

from . import _compilation

# Fast-math flags for reductions: ``reassoc`` lets LLVM vectorise sums and
# ``contract`` allows fused multiply-add. ``nnan``/``ninf`` are deliberately
# absent so that inf sentinels and overflow stay well defined, and ``afn`` is
# absent because approximate ``pow`` would invalidate the rounding bounds the
# exact re-ranking relies on.
FASTMATH = frozenset({"nsz", "contract", "reassoc"})

# Adds ``nnan`` and ``ninf`` for the bound and counting loops of the
# selection kernels. Only for loops whose inputs are known finite: validated
# data, in a search whose driver has ruled out overflow of the fast pass
# (see ``_search.fast_pass_may_overflow``).
FASTMATH_FINITE = FASTMATH | {"nnan", "ninf"}

# Upper bound, in bytes, on the per-chunk buffer of distances (or of
# matrix-product cross terms) held at once by the search driver. The number of
# queries per chunk is derived from it, so predicting on any number of queries
# uses bounded memory.
WORKING_MEMORY_BYTES = 128 * 2**20

# Compile-time constants of a kernel (tile and block sizes) live in the
# kernel's own module: numba's on-disk cache is invalidated by a change to the
# kernel's source file, not by a change to this one.


def jit(*, parallel=False, fastmath=False, finite=False, inline=False):
    """Compile a kernel with on-disk caching, or in memory when impossible.

    Numba caches next to the source file, or in a user cache directory when
    the package is installed read-only. When neither location is writable,
    numba refuses ``cache=True`` at decoration time; the kernel is then
    compiled in memory on each run instead of failing at import.

    Parameters
    ----------
    parallel : bool, default=False
        Forwarded to :func:`numba.njit`.
    fastmath : bool, default=False
        Use :data:`FASTMATH` when true.
    finite : bool, default=False
        Use :data:`FASTMATH_FINITE` when true (inputs must be finite).
    inline : bool, default=False
        Inline the function into its callers at numba's level
        (``inline="always"``), so that arguments constant at a call site
        fold into the inlined code: a caller can compile one copy of a body
        per metric.

    Returns
    -------
    decorate : callable
        Decorator turning a Python function into a numba dispatcher.
    """
    # No C-callable wrapper: numba builds one per compiled signature for
    # ``dispatcher.address`` and first-class function calls, which fastknn
    # never makes. Leaving it out takes 0.10 CPU s (9 %) off the six kernels
    # of a first Euclidean predict (1.05 against 1.15 s, three fresh
    # processes each), and changes no compiled kernel.
    options = {"parallel": parallel, "nogil": True, "error_model": "numpy", "no_cfunc_wrapper": True}
    if inline:
        options["inline"] = "always"
    if finite:
        options["fastmath"] = set(FASTMATH_FINITE)
    elif fastmath:
        options["fastmath"] = set(FASTMATH)

    _compilation.listen()

    def decorate(function):
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError:  # no writable cache location
            return numba.njit(cache=False, **options)(function)

    return decorate
