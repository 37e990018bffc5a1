"""Tests for fastknn._search.class_votes (weightings in fastknn._kernels.vote): scikit-learn's voting rules."""

import naive
import numpy as np
import pytest

from fastknn._kernels.vote import GIVEN, INVERSE_DISTANCE, UNIFORM
from fastknn._search import class_votes


def vote(labels, values, weighting, n_classes):
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    values = np.ascontiguousarray(values, dtype=np.float64)
    return class_votes(labels, values, weighting, n_classes)


LABELS = np.array([[0, 1, 1], [2, 2, 0], [1, 0, 2], [0, 0, 0]])
DISTANCES = np.array([[0.5, 1.0, 2.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 4.0]])


def test_uniform_counts_neighbours():
    # The values are not read for uniform weights: an empty array will do.
    out = vote(LABELS, np.empty((0, 0)), UNIFORM, 4)
    expected = [[1, 2, 0, 0], [1, 0, 2, 0], [1, 1, 1, 0], [3, 0, 0, 0]]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, naive.votes(LABELS, DISTANCES, 4, "uniform"))


def test_inverse_distance_and_zero_distance_rule():
    out = vote(LABELS, DISTANCES, INVERSE_DISTANCE, 3)
    # Row 0: no zero distance, weights 1/d. Row 1: zero distances at
    # positions 0 and 2: only those vote, weight 1 each. Row 2: all zero.
    expected = [[2.0, 1.0 + 0.5, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1 + 1 / 3 + 1 / 4, 0, 0]]
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    np.testing.assert_allclose(out, naive.votes(LABELS, DISTANCES, 3, "distance"), rtol=1e-15)


def test_given_weights_are_summed():
    weights = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    out = vote(LABELS, weights, GIVEN, 3)
    np.testing.assert_array_equal(out, [[1, 5, 0], [0, 0, 1], [0, 0, 1], [3, 0, 0]])


@pytest.mark.parametrize("weighting", [UNIFORM, INVERSE_DISTANCE, GIVEN])
def test_blocks_of_queries_vote_as_one(monkeypatch, weighting):
    """Votes are taken in blocks of ``VOTE_BLOCK`` queries: the same sums, bit for bit."""
    from fastknn import _search

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, size=(11, 5))
    values = np.sort(rng.integers(0, 3, size=(11, 5)).astype(np.float64) / 3, axis=1)
    whole = vote(labels, values, weighting, 4)
    monkeypatch.setattr(_search, "VOTE_BLOCK", 3)
    np.testing.assert_array_equal(vote(labels, values, weighting, 4), whole)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_random_votes_match_naive(weights):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(50, 7))
    distances = np.sort(rng.integers(0, 4, size=(50, 7)).astype(np.float64), axis=1)
    out = vote(labels, distances, UNIFORM if weights == "uniform" else INVERSE_DISTANCE, 5)
    np.testing.assert_allclose(out, naive.votes(labels, distances, 5, weights), rtol=1e-14)
