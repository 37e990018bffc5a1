"""Exact integer products of 16-bit codes (fastknn/_kernels/pair_products.py)."""

import numpy as np
import pytest

from fastknn._kernels.pair_products import (
    BLOCK_QUERIES,
    CODE_PAIRS,
    PANEL_ROWS,
    _code_dot,
    _pair_products,
)
from fastknn._pruning import _pca_code_panels


def random_codes(rng, n_rows):
    """int16 codes of Euclidean norm below 2**15, some at the extremes of int16."""
    codes = rng.normal(size=(n_rows, 2 * CODE_PAIRS))
    codes *= rng.uniform(0, 32000, size=(n_rows, 1)) / np.linalg.norm(codes, axis=1, keepdims=True)
    codes = np.rint(codes).astype(np.int16)
    codes[0] = 0
    codes[1, :] = 0
    codes[1, 5] = 32767  # a single code at int16's limit
    codes[2, :] = 0
    codes[2, 5] = -32767
    codes[3, :] = 4729  # norm 32763, spread over every code
    return codes


def test_products_are_exact_and_stay_in_their_columns():
    rng = np.random.default_rng(0)
    queries = random_codes(rng, 3 * BLOCK_QUERIES)
    train = random_codes(rng, 6 * PANEL_ROWS)
    panels = _pca_code_panels(train)
    assert panels.shape == (6, CODE_PAIRS, PANEL_ROWS)
    expected = queries.astype(np.int64) @ train.astype(np.int64).T
    # Extreme sums: 32767 * -32767 and 48 * 4729**2 are both near 2**30.
    assert np.abs(expected).max() > 2**29
    first_panel, n_panels = 1, 3
    out = np.full((len(queries), (n_panels + 1) * PANEL_ROWS), -7, dtype=np.int32)
    _pair_products(queries.view(np.int32), panels, first_panel, n_panels, out)
    columns = slice(first_panel * PANEL_ROWS, (first_panel + n_panels) * PANEL_ROWS)
    np.testing.assert_array_equal(out[:, : n_panels * PANEL_ROWS], expected[:, columns])
    assert np.all(out[:, n_panels * PANEL_ROWS :] == -7)


@pytest.mark.parametrize(
    "n_queries, first_panel, n_panels, n_columns",
    [
        (BLOCK_QUERIES + 1, 0, 1, PANEL_ROWS),  # queries not padded
        (BLOCK_QUERIES, 3, 2, 2 * PANEL_ROWS),  # past the last panel
        (BLOCK_QUERIES, -1, 1, PANEL_ROWS),  # before the first panel
        (BLOCK_QUERIES, 0, 2, PANEL_ROWS),  # output too narrow
    ],
)
def test_shapes_outside_the_layout_are_refused(n_queries, first_panel, n_panels, n_columns):
    queries = np.zeros((n_queries, CODE_PAIRS), dtype=np.int32)
    panels = np.zeros((4, CODE_PAIRS, PANEL_ROWS), dtype=np.int32)
    out = np.zeros((n_queries, n_columns), dtype=np.int32)
    with pytest.raises(ValueError, match="layout"):
        _pair_products(queries, panels, first_panel, n_panels, out)


def test_code_dot_is_exact_at_the_extremes():
    rng = np.random.default_rng(1)
    codes = random_codes(rng, 40)
    expected = codes.astype(np.int64) @ codes.astype(np.int64).T
    got = np.array([[_code_dot(a, b) for b in codes] for a in codes])
    np.testing.assert_array_equal(got, expected)
    assert np.abs(expected).max() > 2**29
