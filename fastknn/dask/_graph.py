"""Neighbour graphs as transformers on Dask arrays: the k nearest, or those within a radius."""

from sklearn.base import ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import DaskNeighborsBase
from ._neighbors import as_row_blocks
from ._unsupervised import RADIUS_PARAMETER_CONSTRAINTS, RadiusNeighborsMixin


class KNNTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, DaskNeighborsBase):
    """Sparse graph of each sample's k nearest neighbours, on a training set held in shards on a Dask cluster.

    :class:`fastknn.KNNTransformer`'s parameters and graphs, with the
    training rows in shards on the workers and each graph a lazy Dask array
    of ``scipy.sparse.csr_matrix`` blocks, one per query block (see
    :meth:`fastknn.dask.NearestNeighbors.kneighbors_graph`). In
    ``"distance"`` mode, each row holds ``n_neighbors + 1`` entries, a
    training sample itself included (at distance 0).

    Parameters
    ----------
    mode : {"distance", "connectivity"}, default="distance"
        Distances, or ones, as the matrix entries.
    n_neighbors : int, default=5
        Neighbours of each sample (plus one in ``"distance"`` mode).
    metric : str, default="minkowski"
        As for :class:`fastknn.KNNTransformer`.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        Chosen per shard, as for :class:`fastknn.dask.KNNClassifier`.
    n_jobs : int or None, default=1
        Threads per task (see :func:`fastknn.dask.kneighbors`).
    persist : bool, default=True
        Build the shards at ``fit`` and keep them in the workers' memory
        (see :class:`fastknn.dask.KNNClassifier`).
    split_every : int, optional
        Candidate lists merged per task of the tree reduction.

    Attributes
    ----------
    effective_metric_ : str
        The metric used, as :class:`fastknn.KNNTransformer` reports it.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_fit_ : int
        Number of training samples: the graph's number of columns.
    shard_rows_ : ndarray of shape (n_shards,)
        Training rows per shard.

    See Also
    --------
    fastknn.KNNTransformer : The same transformer in one process.
    fastknn.dask.NearestNeighbors : The queries and graphs it stands on.

    Notes
    -----
    Graphs equal :class:`fastknn.KNNTransformer`'s to the bit, once
    computed.

    Examples
    --------
    >>> import dask.array as da
    >>> from fastknn.dask import KNNTransformer
    >>> X = da.from_array([[0.0], [1.0], [3.0]], chunks=(2, 1))
    >>> KNNTransformer(n_neighbors=1).fit_transform(X).compute().toarray()
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 2., 0.]])
    """

    _parameter_constraints = {
        **DaskNeighborsBase._parameter_constraints,
        "mode": [StrOptions({"distance", "connectivity"})],
    }

    def __init__(self, *, mode="distance", n_neighbors=5, metric="minkowski", p=2, algorithm="auto", n_jobs=1,
                 persist=True, split_every=None):
        super().__init__(
            n_neighbors, metric=metric, p=p, algorithm=algorithm, n_jobs=n_jobs, persist=persist,
            split_every=split_every,
        )
        self.mode = mode

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Shard the training set on the workers.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows: each block is a shard (a scipy
            sparse block runs the sparse search; see :func:`fastknn.dask.kneighbors`).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : KNNTransformer
            The fitted transformer.
        """
        self._fit_shards(as_row_blocks(X, "X"))
        self._n_features_out = self.n_samples_fit_
        return self

    def transform(self, X):
        """The graph of each query's nearest training samples, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        graph : dask.array.Array of shape (n_queries, `n_samples_fit_`)
            Blocks of ``scipy.sparse.csr_matrix`` by query block;
            ``n_neighbors`` entries a row (one more in ``"distance"`` mode).
        """
        check_is_fitted(self)
        add_one = self.mode == "distance"
        return self.kneighbors_graph(X, mode=self.mode, n_neighbors=self.n_neighbors + add_one)

    def fit_transform(self, X, y=None):
        """Fit on ``X``, then return the graph of ``X`` itself, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows.
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        graph : dask.array.Array of shape (n_samples, n_samples)
            As :meth:`transform` returns it.
        """
        X = as_row_blocks(X, "X")
        return self.fit(X).transform(X)


class RadiusNeighborsTransformer(RadiusNeighborsMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                                 DaskNeighborsBase):
    """Sparse graph of the neighbours within a radius of each sample, on training shards on a Dask cluster.

    :class:`fastknn.RadiusNeighborsTransformer`'s parameters and graphs,
    with the training rows in shards on the workers and the graph a lazy
    Dask array whose blocks are ``scipy.sparse.csr_matrix``, one per query
    block (see :meth:`fastknn.dask.NearestNeighbors.radius_neighbors_graph`).

    Parameters
    ----------
    mode : {"distance", "connectivity"}, default="distance"
        Distances, or ones, as the matrix entries.
    radius : float, default=1.0
        Largest distance of a neighbour; a sample at exactly this distance
        is one.
    metric : str, default="minkowski"
        As for :class:`fastknn.RadiusNeighborsTransformer`.
    p : float, default=2
        Power of the Minkowski metric, >= 1.
    algorithm : {"auto", "brute", "pruned", "kd_tree", "ball_tree"}, default="auto"
        Chosen per shard, as for :class:`fastknn.dask.KNNClassifier`.
    n_jobs : int or None, default=1
        Threads per task (see :func:`fastknn.dask.kneighbors`).
    persist : bool, default=True
        Build the shards at ``fit`` and keep them in the workers' memory
        (see :class:`fastknn.dask.KNNClassifier`).
    split_every : int, optional
        Lists merged per task of the tree reduction.

    Attributes
    ----------
    effective_metric_ : str
        The metric used.
    effective_metric_params_ : dict
        ``{"p": p}`` for ``"minkowski"``, else empty.
    n_features_in_ : int
        Number of features seen during fit.
    n_samples_fit_ : int
        Number of training samples: the graph's number of columns.
    shard_rows_ : ndarray of shape (n_shards,)
        Training rows per shard.

    See Also
    --------
    fastknn.RadiusNeighborsTransformer : The same transformer in one process.
    fastknn.dask.KNNTransformer : The graph of the k nearest neighbours.

    Notes
    -----
    Graphs equal :class:`fastknn.RadiusNeighborsTransformer`'s to the bit,
    once computed: each row's entries sorted by distance (equal distances
    by training index).

    Examples
    --------
    >>> import dask.array as da
    >>> from fastknn.dask import RadiusNeighborsTransformer
    >>> X = da.from_array([[0.0], [1.0], [3.0]], chunks=(2, 1))
    >>> RadiusNeighborsTransformer(radius=1.0).fit_transform(X).compute().toarray()
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 0., 0.]])
    """

    _parameter_constraints = {
        **RADIUS_PARAMETER_CONSTRAINTS,
        "mode": [StrOptions({"distance", "connectivity"})],
    }

    def __init__(self, *, mode="distance", radius=1.0, metric="minkowski", p=2, algorithm="auto", n_jobs=1,
                 persist=True, split_every=None):
        self.mode = mode
        self.radius = radius
        self.metric = metric
        self.p = p
        self.algorithm = algorithm
        self.n_jobs = n_jobs
        self.persist = persist
        self.split_every = split_every

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Shard the training set on the workers.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_samples, n_features)
            Training data, chunked by rows: each block is a shard (a scipy
            sparse block runs the sparse search; see :func:`fastknn.dask.kneighbors`).
        y : Ignored
            Not used, present for API consistency.

        Returns
        -------
        self : RadiusNeighborsTransformer
            The fitted transformer.
        """
        self._fit_shards(as_row_blocks(X, "X"))
        self._n_features_out = self.n_samples_fit_
        return self

    fit_transform = KNNTransformer.fit_transform

    def transform(self, X):
        """The graph of the training samples within the radius of each query, lazily.

        Parameters
        ----------
        X : {dask.array.Array, array-like, sparse matrix} of shape (n_queries, n_features)
            Queries, chunked by rows.

        Returns
        -------
        graph : dask.array.Array of shape (n_queries, `n_samples_fit_`)
            Blocks of ``scipy.sparse.csr_matrix`` by query block; entries
            sorted by distance within each row.
        """
        check_is_fitted(self)
        return self.radius_neighbors_graph(X, mode=self.mode, sort_results=True)
