"""Tests for fastknn.KNNTransformer and RadiusNeighborsTransformer: scikit-learn's graphs, and
the "precomputed neighbours" pipelines of t-SNE, Isomap and spectral clustering."""

import numpy as np
import pytest
from sklearn.cluster import SpectralClustering
from sklearn.manifold import TSNE, Isomap
from sklearn.neighbors import KNeighborsTransformer, RadiusNeighborsTransformer as SkRadiusNeighborsTransformer
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn import KNNTransformer, RadiusNeighborsTransformer


@parametrize_with_checks([
    KNNTransformer(),
    KNNTransformer(mode="connectivity", metric="manhattan"),
    RadiusNeighborsTransformer(radius=3.0),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def assert_same_graph(graph, expected, atol=1e-7):
    """Same rows, same entries; scikit-learn's Euclidean self-distances may be residues, not 0."""
    np.testing.assert_array_equal(graph.indptr, expected.indptr)
    np.testing.assert_array_equal(np.sort(graph.indices), np.sort(expected.indices))
    difference = abs(graph - expected)
    assert difference.max() <= atol if difference.nnz else True


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_knn_graph_matches_sklearn(random_split, mode, metric):
    X_train, _, X_test, _ = random_split
    X = X_train[:150]  # no duplicates: no ties at the k-th place
    ours = KNNTransformer(n_neighbors=8, mode=mode, metric=metric)
    theirs = KNeighborsTransformer(n_neighbors=8, mode=mode, metric=metric, algorithm="brute")
    assert_same_graph(ours.fit_transform(X), theirs.fit_transform(X))
    assert_same_graph(ours.transform(X_test[:40]), theirs.transform(X_test[:40]))
    graph = ours.fit_transform(X)
    assert graph.shape == (150, 150) and graph.nnz == 150 * (8 + (mode == "distance"))
    np.testing.assert_array_equal(ours.get_feature_names_out()[:2], ["knntransformer0", "knntransformer1"])


def test_knn_graph_on_digits_matches_sklearn(mnist_split):
    X = mnist_split[0][:500]
    graph = KNNTransformer(n_neighbors=30).fit_transform(X)
    expected = KNeighborsTransformer(n_neighbors=30, algorithm="brute").fit_transform(X)
    np.testing.assert_array_equal(graph.indptr, expected.indptr)
    same_rows = np.array([
        np.array_equal(np.sort(graph.indices[a:b]), np.sort(expected.indices[a:b]))
        for a, b in zip(graph.indptr[:-1], graph.indptr[1:])
    ])
    assert same_rows.mean() > 0.99  # float32 digits: a rare near-tie at the 31st place may differ
    np.testing.assert_allclose(np.sort(graph.data), np.sort(expected.data), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("mode", ["distance", "connectivity"])
def test_radius_graph_matches_sklearn(random_split, mode):
    X_train, _, X_test, _ = random_split
    ours = RadiusNeighborsTransformer(radius=2.0, mode=mode).fit(X_train)
    theirs = SkRadiusNeighborsTransformer(radius=2.0, mode=mode, algorithm="brute").fit(X_train)
    graph, expected = ours.transform(X_test), theirs.transform(X_test)
    assert_same_graph(graph, expected)
    if mode == "distance":
        for a, b in zip(graph.indptr[:-1], graph.indptr[1:]):
            assert np.all(np.diff(graph.data[a:b]) >= 0)  # sorted by distance


@pytest.mark.parametrize("interface", ["spmatrix", "sparray"])
def test_graphs_are_the_sparse_type_scikit_learn_returns(random_split, interface):
    # scikit-learn 1.9's sparse_interface setting picks csr_matrix or
    # csr_array; either way the index arrays are int64.
    import sklearn
    from sklearn.neighbors import NearestNeighbors as SkNearestNeighbors

    from fastknn import NearestNeighbors

    if "sparse_interface" not in sklearn.get_config():
        pytest.skip("this scikit-learn has no sparse_interface setting")
    X, queries = random_split[0][:60], random_split[2][:7]
    with sklearn.config_context(sparse_interface=interface):
        ours = NearestNeighbors(n_neighbors=3, radius=2.0).fit(X)
        theirs = SkNearestNeighbors(n_neighbors=3, radius=2.0).fit(X)
        pairs = [
            (ours.kneighbors_graph(queries), theirs.kneighbors_graph(queries)),
            (ours.kneighbors_graph(), theirs.kneighbors_graph()),
            (ours.radius_neighbors_graph(queries, mode="distance"),
             theirs.radius_neighbors_graph(queries, mode="distance")),
            (KNNTransformer().fit_transform(X), KNeighborsTransformer().fit_transform(X)),
            (RadiusNeighborsTransformer(radius=2.0).fit(X).transform(queries),
             SkRadiusNeighborsTransformer(radius=2.0).fit(X).transform(queries)),
        ]
    for graph, expected in pairs:
        assert type(graph) is type(expected)
        assert graph.indices.dtype == expected.indices.dtype == np.int64
        assert graph.indptr.dtype == expected.indptr.dtype == np.int64
        assert_same_graph(graph, expected)


@pytest.fixture(scope="module")
def small_digits(mnist_split):
    return mnist_split[0][:150].astype(np.float64)


def test_tsne_pipeline(small_digits):
    """scikit-learn's documented pipeline, KNNTransformer in place of KNeighborsTransformer."""
    def embed(transformer):
        tsne = TSNE(metric="precomputed", init="random", perplexity=5, max_iter=250, random_state=0)
        return make_pipeline(transformer, tsne).fit_transform(small_digits)

    ours = embed(KNNTransformer(n_neighbors=16, mode="distance"))
    theirs = embed(KNeighborsTransformer(n_neighbors=16, mode="distance", algorithm="brute"))
    assert ours.shape == (150, 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_isomap_pipeline(small_digits):
    def embed(transformer):
        return make_pipeline(transformer, Isomap(n_neighbors=10, metric="precomputed")).fit_transform(small_digits)

    ours = embed(KNNTransformer(n_neighbors=10, mode="distance"))
    theirs = embed(KNeighborsTransformer(n_neighbors=10, mode="distance", algorithm="brute"))
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), rtol=1e-5, atol=1e-5)  # components up to sign


def test_spectral_clustering_pipeline(small_digits):
    def cluster(transformer):
        clustering = SpectralClustering(n_clusters=4, affinity="precomputed_nearest_neighbors", random_state=0)
        return make_pipeline(transformer, clustering).fit(small_digits)[-1].labels_

    ours = cluster(KNNTransformer(n_neighbors=10, mode="connectivity"))
    theirs = cluster(KNeighborsTransformer(n_neighbors=10, mode="connectivity", algorithm="brute"))
    np.testing.assert_array_equal(ours, theirs)


def test_fit_transform_skips_the_auto_probe_where_the_self_graph_runs(monkeypatch):
    """``fit_transform`` searches the training set itself: ``"auto"`` must not probe for a pruned index it never reads."""
    import fastknn._base

    def no_probe(*args, **kwargs):
        raise AssertionError("fit_transform probed whether pruning pays")

    X = np.random.default_rng(5).normal(size=(3200, 12)).astype(np.float32)
    expected = KNNTransformer(n_neighbors=7, algorithm="brute").fit(X).transform(X.copy())
    monkeypatch.setattr(fastknn._base, "choose_algorithm", no_probe)
    transformer = KNNTransformer(n_neighbors=7)
    graph = transformer.fit_transform(X)
    assert transformer.fit_method_ == "brute"
    np.testing.assert_array_equal(graph.indices, expected.indices)
    np.testing.assert_array_equal(graph.data, expected.data)
    with pytest.raises(AssertionError, match="probed"):  # a plain fit still chooses
        KNNTransformer(n_neighbors=7).fit(X)
