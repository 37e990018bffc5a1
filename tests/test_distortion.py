"""Tests for fastknn.distortion: the IDM distance, its kernel and the classifier."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import naive
from fastknn import DistortionKNNClassifier, kneighbors
from fastknn.augment import Deskew, deskew
from fastknn._kernels.distortion import BAND_ROWS, _layout
from fastknn.distortion import (
    _bands,
    _column_penalties,
    _gradients,
    _largest_safe_pixel,
    _rerank_chunks,
    idm_displacements,
    idm_distances,
    select_distortion_knn,
)


def _sparse_images(rng, n_images, shape):
    """Random images with about 60 % of zero pixels (background, as digits)."""
    size = shape[0] * shape[1]
    return rng.random((n_images, size)) * (rng.random((n_images, size)) < 0.4)


@pytest.fixture(scope="session")
def digits_small(mnist_split):
    """Deskewed digits: 300 training images and 60 queries of the "1000" layout."""
    X_train, y_train, X_test, y_test = mnist_split
    return deskew(X_train[:300]), y_train[:300], deskew(X_test[:60]), y_test[:60]


@pytest.fixture(scope="session")
def fitted(digits_small):
    """``DistortionKNNClassifier(3, n_candidates=20, warp=2)`` fit on ``digits_small``."""
    X_train, y_train, _, _ = digits_small
    return DistortionKNNClassifier(3, n_candidates=20, warp=2).fit(X_train, y_train)


# --------------------------------------------------------------------------
# the distance against its definition
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape, warp, context_size",
    [((6, 7), 1, 3), ((5, 5), 2, 3), ((7, 4), 0, 3), ((6, 6), 2, 5), ((9, 8), 1, 1), ((3, 9), 2, 3)],
)
def test_idm_distances_match_the_naive_definition(shape, warp, context_size):
    # Images of a few pixels: most windows and contexts cross the border.
    rng = np.random.default_rng(sum(shape) + 10 * warp + context_size)
    X, Y = _sparse_images(rng, 3, shape), _sparse_images(rng, 4, shape)
    Y[0] = 0.0  # an empty reference
    got = idm_distances(X, Y, warp=warp, context_size=context_size, image_shape=shape)
    expected = [
        [naive.idm_distance(x.reshape(shape), y.reshape(shape), warp, context_size) for y in Y] for x in X
    ]
    assert got.shape == (3, 4) and got.dtype == np.float64
    assert_allclose(got, expected, rtol=1e-5)


def test_warp_zero_is_the_squared_euclidean_distance_of_the_contexts():
    shape = (7, 6)
    rng = np.random.default_rng(3)
    X, Y = _sparse_images(rng, 2, shape), _sparse_images(rng, 3, shape)

    def contexts(image):
        gradients = naive.sobel(image.reshape(shape))
        return np.concatenate([naive.context(gradients, i, j, 3) for i in range(shape[0]) for j in range(shape[1])])

    expected = [[np.sum((contexts(x) - contexts(y)) ** 2) for y in Y] for x in X]
    assert_allclose(idm_distances(X, Y, warp=0, image_shape=shape), expected, rtol=1e-5)


def test_idm_is_not_symmetric_and_is_zero_on_itself():
    rng = np.random.default_rng(5)
    shape = (6, 6)
    X = _sparse_images(rng, 4, shape)
    D = idm_distances(X, X, warp=1, image_shape=shape)
    assert_array_equal(np.diag(D), 0.0)
    assert not np.allclose(D, D.T)
    # Both directions are right: the asymmetry is the model's, not a bug.
    assert_allclose(D[0, 1], naive.idm_distance(X[0].reshape(shape), X[1].reshape(shape), 1), rtol=1e-5)
    assert_allclose(D[1, 0], naive.idm_distance(X[1].reshape(shape), X[0].reshape(shape), 1), rtol=1e-5)


def test_warp_absorbs_a_shift_within_the_window():
    a = np.zeros((10, 10))
    a[4:6, 4:6] = 1.0
    shifted = np.roll(a, (1, -1), axis=(0, 1)).reshape(1, -1)
    assert idm_distances(a.reshape(1, -1), shifted, warp=0, image_shape=(10, 10))[0, 0] > 0
    assert idm_distances(a.reshape(1, -1), shifted, warp=1, image_shape=(10, 10))[0, 0] == 0


# --------------------------------------------------------------------------
# the displacement field
# --------------------------------------------------------------------------
def test_displacements_sum_to_the_distance_and_follow_a_shift():
    rng = np.random.default_rng(11)
    shape = (8, 7)
    q, r = _sparse_images(rng, 2, shape)
    shift, costs = idm_displacements(q, r, warp=2, image_shape=shape)
    assert shift.shape == (8, 7, 2) and costs.shape == shape
    assert np.all(np.abs(shift) <= 2)
    rows, cols = np.indices(shape)
    assert np.all((rows + shift[..., 0] >= 0) & (rows + shift[..., 0] < 8))
    assert np.all((cols + shift[..., 1] >= 0) & (cols + shift[..., 1] < 7))
    assert_allclose(costs.sum(), idm_distances(q[None], r[None], warp=2, image_shape=shape)[0, 0], rtol=1e-5)

    blob = np.zeros((10, 10))
    blob[4:6, 4:6] = 1.0
    moved = np.roll(blob, 1, axis=1)
    field, costs = idm_displacements(blob, moved, warp=1, image_shape=(10, 10))
    assert costs.sum() == 0
    assert field[4, 4].tolist() == [0, 1]
    # Pixels matched equally well everywhere (the empty corner) stay in place.
    assert field[0, 9].tolist() == [0, 0]


# --------------------------------------------------------------------------
# the re-ranking kernel
# --------------------------------------------------------------------------
def test_early_abandoning_never_changes_the_top_k(digits_small, fitted):
    _, _, X_test, _ = digits_small
    candidates = fitted._euclidean.kneighbors(X_test, return_distance=False)
    for k in (1, 3, 7):
        fast = _rerank_chunks(X_test, candidates, fitted._train_gradients, k, fitted._model, abandon=True)
        full = _rerank_chunks(X_test, candidates, fitted._train_gradients, k, fitted._model, abandon=False)
        assert_array_equal(fast[1], full[1])
        assert_array_equal(fast[0], full[0])


def test_bands_come_by_decreasing_gradient_energy_ties_by_band():
    # Three bands of an image 3 * BAND_ROWS rows high: strokes in the last
    # band, then the first; a blank image ties every band.
    shape, radius = (3 * BAND_ROWS, 9), 1
    top = _layout(*shape, radius)[0]
    images = np.zeros((2, shape[0], shape[1]))
    images[0, 2 * BAND_ROWS + 4 : 2 * BAND_ROWS + 9, 2:7] = 1.0
    images[0, 3:5, 3] = 1.0
    gradients = _gradients(images.reshape(2, -1), shape, radius)
    order = _bands(gradients, shape, radius)
    rows = [slice(top + b * BAND_ROWS - radius, top + (b + 1) * BAND_ROWS + radius) for b in range(3)]
    energy = np.array([[(gradients[n, :, band].astype(np.float64) ** 2).sum() for band in rows] for n in range(2)])
    assert_array_equal(order, np.argsort(-energy, axis=1, kind="stable"))
    assert order[0].tolist() == [2, 0, 1] and order[1].tolist() == [0, 1, 2]


def test_column_penalties_keep_matches_inside_the_image():
    width, stride, warp = 5, 6, 2
    penalties = _column_penalties(width, stride, warp)
    assert penalties.dtype == np.float32 and penalties.shape == (2 * warp + 1, BAND_ROWS * stride)
    for dc in range(-warp, warp + 1):
        for t in range(BAND_ROWS * stride):
            j = t % stride
            inside = 0 <= j < width and 0 <= j + dc < width
            assert penalties[dc + warp, t] == (0.0 if inside else np.inf)


def test_kneighbors_is_the_idm_top_k_of_the_euclidean_candidates(digits_small, fitted):
    X_train, _, X_test, _ = digits_small
    distances, indices = fitted.kneighbors(X_test)
    candidates = kneighbors(X_test, X_train, n_neighbors=20, return_distance=False)
    all_idm = idm_distances(X_test, X_train, warp=2)
    for row, cand in enumerate(candidates):
        order = np.lexsort((cand, all_idm[row, cand]))[:3]
        assert_array_equal(indices[row], cand[order])
        assert_allclose(distances[row], all_idm[row, cand[order]], rtol=1e-6)


def test_equal_idm_distances_are_ordered_by_training_index():
    rng = np.random.default_rng(2)
    shape = (6, 6)
    base = _sparse_images(rng, 3, shape)
    # Training rows 1, 3 and 4 are the same image; 0 and 2 differ.
    train = np.vstack([base[1], base[0], base[2], base[0], base[0]]).astype(np.float32)
    from fastknn.distortion import _check_model, _gradients

    model = _check_model(1, 3, shape)
    gradients = _gradients(train, shape, 1)
    query = base[0][None].astype(np.float32)
    for order in ([4, 3, 1, 0, 2], [0, 1, 2, 3, 4], [2, 4, 0, 3, 1]):
        distances, indices = _rerank_chunks(query, np.array([order]), gradients, 3, model)
        assert indices.tolist() == [[1, 3, 4]]
        assert distances.tolist() == [[0.0, 0.0, 0.0]]
    clf = DistortionKNNClassifier(2, n_candidates=5, warp=1, image_shape=shape).fit(train, [0, 1, 2, 1, 3])
    assert clf.kneighbors(query)[1].tolist() == [[1, 3]]


# --------------------------------------------------------------------------
# the classifier
# --------------------------------------------------------------------------
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_predictions_are_the_vote_of_the_idm_neighbours(digits_small, fitted, weights):
    X_train, y_train, X_test, y_test = digits_small
    clf = DistortionKNNClassifier(3, n_candidates=20, warp=2, weights=weights).fit(X_train, y_train)
    distances, indices = fitted.kneighbors(X_test)
    labels = np.searchsorted(clf.classes_, y_train[indices])
    expected_proba = naive.predict_proba(labels, distances, len(clf.classes_), weights)
    assert_allclose(clf.predict_proba(X_test), expected_proba)
    assert_array_equal(clf.predict(X_test), clf.classes_[naive.predict(labels, distances, len(clf.classes_), weights)])
    assert clf.score(X_test, y_test) >= 0.85


def test_select_distortion_knn_scores_as_grid_search_on_a_predefined_split(digits_small):
    X_train, y_train, X_test, y_test = digits_small
    grid = {"warp": [1, 2], "n_neighbors": [1, 3, 5], "weights": ["uniform", "distance"]}
    best, results = select_distortion_knn(
        X_train, y_train, X_test, y_test, warps=grid["warp"], n_neighbors=grid["n_neighbors"],
        weights=grid["weights"], n_candidates=10,
    )
    split = PredefinedSplit(np.r_[np.full(len(X_train), -1), np.zeros(len(X_test))])
    search = GridSearchCV(DistortionKNNClassifier(n_candidates=10), grid, cv=split, refit=False)
    search.fit(np.vstack([X_train, X_test]), np.r_[y_train, y_test])
    expected = {
        (p["warp"], p["n_neighbors"], p["weights"]): score
        for p, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])
    }
    got = {(r["warp"], r["n_neighbors"], r["weights"]): r["validation_accuracy"] for r in results}
    assert got.keys() == expected.keys()
    for key, score in expected.items():
        assert got[key] == pytest.approx(score)
    top = max(got.values())
    first_best = next(r for r in results if r["validation_accuracy"] == top)
    assert (best.warp, best.n_neighbors, best.weights) == (
        first_best["warp"], first_best["n_neighbors"], first_best["weights"]
    )
    assert best.score(X_test, y_test) == pytest.approx(top)
    with pytest.raises(ValueError, match="at least one value"):
        select_distortion_knn(X_train, y_train, X_test, y_test, warps=())


def test_more_candidates_than_training_images_rerank_them_all(digits_small):
    X_train, y_train, X_test, _ = digits_small
    clf = DistortionKNNClassifier(2, n_candidates=500, warp=1).fit(X_train[:30], y_train[:30])
    distances, indices = clf.kneighbors(X_test[:5])
    all_idm = idm_distances(X_test[:5], X_train[:30], warp=1)
    for row in range(5):
        order = np.lexsort((np.arange(30), all_idm[row]))[:2]
        assert_array_equal(indices[row], order)


def test_pipeline_with_deskew_and_grid_search(mnist_split):
    X_train, y_train, X_test, y_test = mnist_split
    X, y = X_train[:200], y_train[:200]
    pipe = make_pipeline(Deskew(), DistortionKNNClassifier(n_candidates=10, warp=1))
    search = GridSearchCV(pipe, {"distortionknnclassifier__n_neighbors": [1, 3]}, cv=2).fit(X, y)
    assert search.best_params_["distortionknnclassifier__n_neighbors"] in (1, 3)
    assert search.score(X_test[:40], y_test[:40]) > 0.7


def test_queries_in_several_chunks_and_pickling(digits_small, fitted, monkeypatch):
    import pickle

    from fastknn import distortion

    _, _, X_test, _ = digits_small
    expected = fitted.kneighbors(X_test)
    monkeypatch.setattr(distortion, "_QUERY_CHUNK", 7)
    for got, want in zip(fitted.kneighbors(X_test), expected):
        assert_array_equal(got, want)
    restored = pickle.loads(pickle.dumps(fitted))
    assert_array_equal(restored.kneighbors(X_test)[1], expected[1])


def test_a_model_with_gradients_in_another_layout_is_refused(digits_small, fitted):
    # As a model pickled by a fastknn that padded each row on both sides.
    import copy

    _, _, X_test, _ = digits_small
    old = copy.copy(fitted)
    old._train_gradients = np.pad(fitted._train_gradients, ((0, 0), (0, 0), (1, 2), (2, 3)))
    with pytest.raises(ValueError, match="another version of fastknn.*fit it again"):
        old.predict(X_test)


def test_non_square_images_and_n_jobs(digits_small):
    rng = np.random.default_rng(8)
    X, y = _sparse_images(rng, 40, (4, 9)), np.arange(40) % 3
    clf = DistortionKNNClassifier(3, n_candidates=10, warp=1, image_shape=(4, 9), n_jobs=1).fit(X, y)
    distances, indices = clf.kneighbors(X[:5])
    assert_array_equal(indices[:, 0], np.arange(5))  # each image is its own nearest
    assert_array_equal(distances[:, 0], 0.0)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, message",
    [
        ({"warp": 28}, "warp=28 is too large for images of shape \\(28, 28\\)"),
        ({"warp": 5, "image_shape": (5, 40)}, "warp must be below 5"),
        ({"warp": -1}, "The 'warp' parameter of DistortionKNNClassifier must be an int"),
        ({"context_size": 4}, "context_size must be an odd positive integer"),
        ({"image_shape": (28,)}, "image_shape must be a pair of positive integers"),
        ({"image_shape": (0, 784)}, "image_shape must be a pair of positive integers"),
        ({"image_shape": (20, 20)}, "X has 784 features per image but image_shape \\(20, 20\\) needs 400"),
        ({"n_neighbors": 6, "n_candidates": 5}, "n_neighbors=6 is larger than n_candidates=5"),
        ({"n_jobs": 0}, "n_jobs == 0 has no meaning"),
    ],
)
def test_bad_parameters_give_clear_errors(digits_small, params, message):
    X_train, y_train, _, _ = digits_small
    with pytest.raises(ValueError, match=message):
        DistortionKNNClassifier(**params).fit(X_train[:20], y_train[:20])


def test_bad_inputs_give_clear_errors(digits_small, fitted):
    X_train, y_train, X_test, _ = digits_small
    with pytest.raises(ValueError, match="X has 783 features, but DistortionKNNClassifier is expecting 784"):
        fitted.predict(X_test[:, :783])
    with pytest.raises(ValueError, match="Expected n_neighbors <= n_samples_fit"):
        fitted.kneighbors(X_test, n_neighbors=301)
    with pytest.raises(ValueError, match="larger than the 20 candidates re-ranked"):
        fitted.kneighbors(X_test, n_neighbors=21)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        idm_distances(np.full((1, 784), np.nan), X_train[:2])
    with pytest.raises(ValueError, match="Y has 783 features per image"):
        idm_distances(X_test[:1], X_train[:2, :783])
    with pytest.raises(ValueError, match="query must hold one image of shape \\(28, 28\\)"):
        idm_displacements(X_test[:2], X_train[0])



def test_distances_that_overflow_float32_are_an_error_not_infinities():
    # Pixels of 1e19 square to 1e38-scale gradient differences: past float32.
    rng = np.random.default_rng(0)
    images, queries = rng.random((12, 64)), rng.random((3, 64))
    labels = np.arange(12) % 3
    model = DistortionKNNClassifier(n_neighbors=2, n_candidates=6, warp=1, image_shape=(8, 8))
    large = model.fit(images * 1e17, labels).kneighbors(queries * 1e17)[0]
    assert np.isfinite(large).all()  # 1e36-scale distances are still exact float32 sums
    np.testing.assert_allclose(large, model.fit(images, labels).kneighbors(queries)[0] * 1e34, rtol=1e-5)
    with pytest.raises(ValueError, match="IDM distances between these images overflow float32"):
        model.fit(images * 1e19, labels).predict(queries * 1e19)
    with pytest.raises(ValueError, match="Divide X and Y by the same constant"):
        idm_distances(queries * 1e19, images * 1e19, warp=1, image_shape=(8, 8))
    with pytest.raises(ValueError, match="Divide the query and the reference"):
        idm_displacements(queries[0] * 3e38, images[0] * 3e38, warp=1, image_shape=(8, 8))


@pytest.mark.parametrize("context_size", [1, 3, 5])
def test_pixels_within_the_safe_bound_never_overflow(context_size):
    # Columns of -M and +M two apart give gradients of +-8 M; the reference is
    # the negated image, so every compared pair of gradients differs by 16 M.
    bound = _largest_safe_pixel(context_size)
    stripes = np.where(np.arange(8) % 4 < 2, -bound, bound).astype(np.float32)
    image = np.tile(stripes, (8, 1))
    images = np.stack([image, image.T, np.random.default_rng(0).choice([-bound, bound], (8, 8))]).reshape(3, 64)
    distances = idm_distances(images, -images, warp=0, context_size=context_size, image_shape=(8, 8))
    assert np.isfinite(distances).all() and distances.min() > 0

# Estimator checks feed 1 to 10 features to every estimator: never the 784
# pixels of a 28x28 image, and no single image_shape fits all their data, so
# each check that fits meets the documented "X has n features per image but
# image_shape needs ..." ValueError (as fastknn.augment's square-image checks).
IMAGE_SHAPE = "the check's data (1 to 10 features) is not an image of the declared image_shape"


def _expected_failed_checks(estimator):
    names = [
        "check_classifier_data_not_an_array", "check_classifiers_classes", "check_classifiers_one_label",
        "check_classifiers_train", "check_supervised_y_2d", "check_dict_unchanged",
        "check_dont_overwrite_parameters", "check_dtype_object", "check_estimators_dtypes",
        "check_estimators_fit_returns_self", "check_estimators_nan_inf", "check_estimators_overwrite_params",
        "check_estimators_pickle", "check_f_contiguous_array_estimator", "check_fit2d_1sample",
        "check_fit2d_1feature", "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
        "check_fit_score_takes_y", "check_methods_sample_order_invariance", "check_methods_subset_invariance",
        "check_n_features_in", "check_pipeline_consistency", "check_readonly_memmap_input",
        "check_n_features_in_after_fitting", "check_positive_only_tag_during_fit",
    ]
    return dict.fromkeys(names, IMAGE_SHAPE)


@parametrize_with_checks(
    [DistortionKNNClassifier()],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
