"""Exact neighbour search and the estimators on Dask arrays.

An optional part of fastknn (``pip install "fastknn[dask]"``): training rows
stay in shards on the workers of a Dask cluster, each (query block, shard)
pair is searched by fastknn's own search in one task, and the per-shard
candidate lists are merged by a tree reduction. Results equal the
one-process search to the bit. Training and query data may be scipy sparse
(matrices, or Dask arrays whose blocks are): sparse shards run the sparse
search.
"""

try:
    import dask.array as _dask_array  # noqa: F401 (Dask installed; the name keeps dask out of dir())
except ModuleNotFoundError as error:  # pragma: no cover - exercised in a subprocess
    raise ModuleNotFoundError('fastknn.dask needs Dask: pip install "fastknn[dask]"', name=error.name) from error

from ._classification import KNNClassifier, RadiusNeighborsClassifier
from ._files import from_npy
from ._graph import KNNTransformer, RadiusNeighborsTransformer
from ._neighbors import kneighbors
from ._regression import KNNRegressor, RadiusNeighborsRegressor
from ._unsupervised import NearestNeighbors

__all__ = [
    "KNNClassifier",
    "KNNRegressor",
    "KNNTransformer",
    "NearestNeighbors",
    "RadiusNeighborsClassifier",
    "RadiusNeighborsRegressor",
    "RadiusNeighborsTransformer",
    "from_npy",
    "kneighbors",
]
