"""Listing the bounds within a threshold (fastknn/_kernels/bitscan.py)."""

import numpy as np
import pytest
from numba import njit

from fastknn._kernels.bitscan import SCAN_BLOCK, _rows_within, _trailing_zeros


@pytest.mark.parametrize("n_rows", [0, 1, SCAN_BLOCK - 1, SCAN_BLOCK, 3 * SCAN_BLOCK + 7])
@pytest.mark.parametrize("fraction", [0.0, 0.03, 0.5, 1.0])
def test_rows_within_lists_every_row_within_in_order(n_rows, fraction):
    rng = np.random.default_rng(n_rows)
    row = rng.random(n_rows).astype(np.float32)
    # Bounds equal to the threshold count as within; so do negative ones.
    row[::5] = 0.5
    row[1::7] = -1.0
    threshold = np.float32(np.quantile(row, fraction)) if n_rows else np.float32(0.5)
    out = np.full(n_rows, -1, dtype=np.int64)
    n_listed = _rows_within(row, threshold, out)
    np.testing.assert_array_equal(out[:n_listed], np.flatnonzero(row <= threshold))


def test_trailing_zeros_finds_every_bit():
    @njit
    def lowest_bit(mask):
        return _trailing_zeros(mask)

    for bit in range(64):
        assert lowest_bit(np.uint64(1) << np.uint64(bit)) == bit
        assert lowest_bit((np.uint64(1) << np.uint64(bit)) | (np.uint64(1) << np.uint64(63))) == bit
