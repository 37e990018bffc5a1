"""Shared data for the tests, built once per session; tests must not modify it.

Data sets carry degenerate rows (an all-zero row, exact duplicates) so that
ties and zero distances are exercised everywhere, as in pynndescent's
fixtures. The arrays are left writable on purpose: numba compiles a separate
specialisation of every kernel for read-only arrays, and the compile time is
better spent once, in scikit-learn's read-only memmap checks.
"""

import os

import numpy as np
import pytest

# ``fastknn experiment`` compiles in a second process on a cold cache
# (fastknn.warmup.compile_ahead): not in the tests, whose compile times must
# not depend on the order they run in; tests/test_warmup.py turns it on in
# processes of its own.
os.environ["FASTKNN_COMPILE_AHEAD"] = "0"

from fastknn.datasets import load_mnist, load_mnist_split


def _with_degenerate_rows(X, y, rng, n_duplicates):
    """X with an all-zero row and ``n_duplicates`` copies of random rows appended."""
    copies = rng.choice(len(X), size=n_duplicates, replace=False)
    X = np.vstack([X, np.zeros((1, X.shape[1])), X[copies]])
    y = np.concatenate([y, y[:1], y[copies]])
    return X, y


@pytest.fixture(scope="session")
def random_split():
    """Continuous random data: ``(X_train, y_train, X_test, y_test)``, float64.

    150 + 7 training rows of 6 features and three classes (the last 7 are an
    all-zero row and six exact copies of earlier rows); 40 queries plus an
    all-zero query and exact copies of two training rows. Apart from those
    rows, no two distances are equal.
    """
    rng = np.random.default_rng(20261124)
    X_train = rng.normal(size=(150, 6))
    y_train = rng.integers(0, 3, size=150)
    X_train, y_train = _with_degenerate_rows(X_train, y_train, rng, n_duplicates=6)
    X_test = np.vstack([rng.normal(size=(40, 6)), np.zeros((1, 6)), X_train[[3, 151 + 2]]])
    y_test = rng.integers(0, 3, size=len(X_test))
    return X_train, y_train, X_test, y_test


@pytest.fixture(scope="session")
def integer_split():
    """Integer-valued float64 data in [-2, 2]: exact ties everywhere.

    ``(X_train, y_train, X_test, y_test)`` with 60 training rows of 3
    features (duplicates are certain: 125 possible rows) and 30 queries.
    """
    rng = np.random.default_rng(7)
    X_train = rng.integers(-2, 3, size=(60, 3)).astype(np.float64)
    y_train = rng.integers(0, 4, size=60)
    X_test = rng.integers(-2, 3, size=(30, 3)).astype(np.float64)
    y_test = rng.integers(0, 4, size=30)
    return X_train, y_train, X_test, y_test


@pytest.fixture(scope="session")
def mnist_split():
    """The packaged digits' "1000" layout: 1,000 training and 200 test digits.

    ``(X_train, y_train, X_test, y_test)``; data float32 in [0, 1], shape
    ``(n, 784)``. The 200 validation digits are used as the queries.
    """
    X_train, y_train, X_val, y_val, _, _ = load_mnist_split("1000")
    return X_train, y_train, X_val, y_val


@pytest.fixture(scope="session")
def mnist_uint8():
    """Raw uint8 digits: 600 training rows, 60 queries; integer ties abound.

    ``(X_train, y_train, X_test, y_test)``. Training rows come from the
    MNIST training-set sample, queries from the test set.
    """
    X, y = load_mnist(return_X_y=True)
    return X[10_000:10_600], y[10_000:10_600], X[:60], y[:60]


@pytest.fixture(scope="session")
def rounded_query_ties():
    """float32 integer rows, float64 queries that float32 rounding would move onto a tie, their nearest rows.

    Each query lies 0.5 + 1e-9 past a row ``u`` along the first feature,
    towards the row ``u + e1`` listed after it: its nearest row in every
    metric. Rounded to float32 it sits halfway, and ``u`` would win the tie
    by its lower index. Every other row is at least 1 away.
    """
    rng = np.random.default_rng(5)
    bases = np.unique(rng.integers(0, 20, size=(40, 4)) * np.array([4, 1, 1, 1]), axis=0)
    step = np.eye(4)[0]
    rows = np.vstack([np.vstack([u, u + step]) for u in bases]).astype(np.float32)
    queries = bases + (0.5 + 1e-9) * step
    return rows, queries, 2 * np.arange(len(bases)) + 1
