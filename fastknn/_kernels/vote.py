"""The vote weightings, shared by the estimators and ``_search.class_votes``.

The vote itself is NumPy (``_search.class_votes``, a ``np.bincount`` per
block of queries): as a numba kernel it was one more compilation for a first
predict to wait for, and no faster.
"""

UNIFORM = 0
INVERSE_DISTANCE = 1
GIVEN = 2
