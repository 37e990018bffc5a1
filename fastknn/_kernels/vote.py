"""Neighbour voting with scikit-learn's semantics."""

from .._config import jit

UNIFORM = 0
INVERSE_DISTANCE = 1
GIVEN = 2


@jit()
def _vote(first, last, neighbor_labels, neighbor_values, weighting, out_votes):
    """Weighted class votes of each query's neighbours.

    Parameters
    ----------
    first, last : int
        The queries voted: ``first`` to ``last - 1`` (one thread; the GIL is
        released, see ``_search.class_votes``).
    neighbor_labels : ndarray of shape (n_queries, n_neighbors), int64
        Encoded class (index into ``classes_``) of each neighbour.
    neighbor_values : ndarray of shape (n_queries, n_neighbors), float64
        Distances for ``INVERSE_DISTANCE``, weights for ``GIVEN``; unread for
        ``UNIFORM``.
    weighting : int
        ``UNIFORM``: every neighbour weighs 1. ``INVERSE_DISTANCE``: a
        neighbour weighs ``1 / distance``, except in a row holding a zero
        distance, where the zero-distance neighbours weigh 1 and the others 0
        (scikit-learn's rule). ``GIVEN``: the weights are ``neighbor_values``.
    out_votes : ndarray of shape (n_queries, n_classes), float64
        Summed weights per class, unnormalised, so that the argmax is taken on
        the same sums as scikit-learn's ``weighted_mode``.
    """
    n_neighbors = neighbor_labels.shape[1]
    for i in range(first, last):
        for c in range(out_votes.shape[1]):  # explicit loops compile much faster than slice assignment
            out_votes[i, c] = 0.0
        has_zero = False
        if weighting == INVERSE_DISTANCE:
            for position in range(n_neighbors):
                if neighbor_values[i, position] == 0.0:
                    has_zero = True
                    break
        for position in range(n_neighbors):
            weight = 1.0
            if weighting == GIVEN:
                weight = neighbor_values[i, position]
            elif weighting == INVERSE_DISTANCE:
                distance = neighbor_values[i, position]
                if has_zero:
                    weight = 1.0 if distance == 0.0 else 0.0
                else:
                    weight = 1.0 / distance
            out_votes[i, neighbor_labels[i, position]] += weight
