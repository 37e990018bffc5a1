"""Former home of :class:`KNNClassifier`, kept so that ``fastknn.estimators.KNNClassifier`` still imports.

The estimators now live in one module per kind (``_classification``,
``_regression``, ``_unsupervised``, ``_graph``) on the shared base
``_base``; import them from :mod:`fastknn`.
"""

from ._classification import KNNClassifier

__all__ = ["KNNClassifier"]
