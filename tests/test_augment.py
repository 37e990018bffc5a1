"""Tests for fastknn.augment: deskew, blur, shift and rotation expansion, estimators."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastknn.augment import (
    AugmentedKNN,
    Deskew,
    GaussianBlur,
    RotationAugmenter,
    ShiftAugmenter,
    deskew,
    gaussian_blur,
    rotate_images,
    shift_images,
)
from fastknn.datasets import load_mnist

from naive_augment import deskew_image, moments, rotate_image, shift_image

SHIFT_ORDER = {
    4: [(-1, 0), (1, 0), (0, -1), (0, 1)],
    8: [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)],
}


@pytest.fixture(scope="module")
def digits():
    """300 real MNIST digits, uint8 (300, 784), and their labels."""
    X, y = load_mnist(return_X_y=True)
    return X[:300], y[:300]


def _edge_images(side):
    """All-zero, single pixel, single row (mu02 = 0) and a corner blob."""
    images = np.zeros((4, side, side))
    images[1, side // 3, side // 2] = 7.0
    images[2, side // 2, 1:-1] = 3.0
    images[3, :2, :2] = 1.0
    return images


# --------------------------------------------------------------------------
# deskew
# --------------------------------------------------------------------------
def test_deskew_matches_scipy_reference(digits):
    X = np.vstack([digits[0][:200].reshape(-1, 28, 28), _edge_images(28)])
    expected = np.stack([deskew_image(img) for img in X])
    got = deskew(X)
    assert got.dtype == np.float32
    assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(1, 12)).map(lambda t: (t[0], t[1], t[1])),
        elements=st.sampled_from([0.0, 0.0, 0.5, 1.0, 3.0]),
    )
)
def test_deskew_any_square_size_matches_reference(images):
    expected = np.stack([deskew_image(img) for img in images])
    assert_allclose(deskew(images), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("flat", [True, False])
def test_deskew_layouts_and_dtypes(digits, dtype, flat):
    X = digits[0][:20].astype(dtype)
    X_in = X if flat else X.reshape(-1, 28, 28)
    before = X_in.copy()
    out = deskew(X_in)
    assert out.dtype == np.float32 and out.shape == X_in.shape
    assert_array_equal(X_in, before)  # input untouched
    # Same values whatever the input dtype or layout; uint8 keeps 0-255.
    reference = deskew(digits[0][:20].astype(np.float32))
    assert_allclose(out.reshape(20, -1), reference, rtol=1e-6, atol=1e-4)
    assert reference.max() > 200


def test_deskew_empty_and_degenerate_images():
    images = _edge_images(9)
    out = deskew(images)
    assert np.isfinite(out).all()
    assert_array_equal(out[0], 0.0)  # no mass: unchanged
    # A single pixel and a single row (mu02 = 0, so no shear) are moved so
    # that their centre of mass sits on the centre pixel (4, 4).
    assert out[1, 4, 4] == 7.0 and out[1].sum() == 7.0
    assert_array_equal(out[2, 4], images[2, 4])
    for img in out[1:]:
        _, r0, c0, _ = moments(img)
        assert abs(r0 - 4.0) < 1e-6 and abs(c0 - 4.0) < 1e-6


def test_deskew_straightens_a_slanted_stroke():
    img = np.zeros((1, 15, 15))
    for r in range(2, 13):  # "/" leaning right, off-centre
        img[0, r, 13 - r] = 1.0
    assert moments(img[0])[3] < -0.9
    _, r0, c0, alpha = moments(deskew(img)[0])
    assert abs(alpha) < 0.02
    assert abs(r0 - 7.0) < 1e-4 and abs(c0 - 7.0) < 1e-4


def test_deskew_leaves_an_upright_centred_digit_alone():
    img = np.zeros((11, 11))
    img[2:9, 5] = 1.0
    img[2, 4:7] = 0.5  # symmetric serifs: centred, no slant
    img[8, 4:7] = 0.5
    assert_array_equal(deskew(img[None])[0], img)


def test_deskew_is_nearly_idempotent_on_digits(digits):
    X = digits[0].astype(np.float32)
    once = deskew(X)
    twice = deskew(once)

    def relative_change(new, old):
        return np.linalg.norm(new - old, axis=1) / np.linalg.norm(old, axis=1)

    assert np.median(relative_change(once, X)) > 0.3  # the first pass does work
    assert relative_change(twice, once).max() < 0.05
    alphas = [moments(img)[3] for img in once.reshape(-1, 28, 28)]
    assert np.abs(alphas).max() < 0.02


def test_deskew_accepts_read_only_input(digits):
    X = digits[0][:5].astype(np.float32)
    X.flags.writeable = False
    assert_array_equal(deskew(X), deskew(X.copy()))


# --------------------------------------------------------------------------
# blur
# --------------------------------------------------------------------------
def test_gaussian_blur_matches_per_image_filter(digits):
    X = digits[0][:10]
    out = gaussian_blur(X, sigma=0.75)
    expected = [
        ndimage.gaussian_filter(img.astype(np.float64), 0.75, mode="constant")
        for img in X.reshape(-1, 28, 28)
    ]
    assert out.dtype == np.float32 and out.shape == X.shape
    assert_allclose(out.reshape(-1, 28, 28), expected, rtol=1e-5, atol=1e-3)
    assert_array_equal(gaussian_blur(X, sigma=0), X)


# --------------------------------------------------------------------------
# shift expansion
# --------------------------------------------------------------------------
@pytest.mark.parametrize("directions", [4, 8])
@pytest.mark.parametrize("n_pixels", [1, 2])
def test_shift_images_matches_reference_in_documented_order(digits, directions, n_pixels):
    X, y = digits[0][:7], digits[1][:7]
    X_big, y_big = shift_images(X, y, n_pixels=n_pixels, directions=directions)
    assert X_big.shape == (7 * (directions + 1), 784) and X_big.dtype == np.uint8
    assert_array_equal(y_big, np.tile(y, directions + 1))
    blocks = X_big.reshape(directions + 1, 7, 28, 28)
    assert_array_equal(blocks[0], X.reshape(7, 28, 28))  # originals first
    for block, (d_row, d_col) in zip(blocks[1:], SHIFT_ORDER[directions]):
        for img, shifted in zip(X.reshape(7, 28, 28), block):
            assert_array_equal(shifted, shift_image(img, d_row * n_pixels, d_col * n_pixels))


def test_shift_images_keeps_the_3d_layout_and_labels_aligned():
    images = np.zeros((3, 5, 5))
    images[np.arange(3), 2, 2] = [1.0, 2.0, 3.0]  # the pixel value is the label
    X_big, y_big = shift_images(images, [1.0, 2.0, 3.0])
    assert X_big.shape == (15, 5, 5) and X_big.dtype == np.float64
    assert_array_equal(X_big.reshape(15, -1).max(axis=1), y_big)


def test_shift_augmenter_equals_shift_images(digits):
    X, y = digits[0][:6], digits[1][:6]
    sampler = ShiftAugmenter(n_pixels=2, directions=8)
    X_res, y_res = sampler.fit_resample(X, y)
    X_ref, y_ref = shift_images(X, y, n_pixels=2, directions=8)
    assert_array_equal(X_res, X_ref)
    assert_array_equal(y_res, y_ref)
    assert sampler.n_features_in_ == 784 and sampler.side_ == 28


# --------------------------------------------------------------------------
# rotation expansion
# --------------------------------------------------------------------------
def test_rotate_images_matches_reference(digits):
    X, y = digits[0][:5], digits[1][:5]
    X_big, y_big = rotate_images(X, y, degrees=10)
    assert X_big.shape == (15, 784) and X_big.dtype == np.float32
    assert_array_equal(y_big, np.tile(y, 3))
    blocks = X_big.reshape(3, 5, 28, 28)
    assert_array_equal(blocks[0], X.reshape(5, 28, 28))
    for block, angle in zip(blocks[1:], (-10, 10)):
        expected = [rotate_image(img, angle) for img in X.reshape(5, 28, 28)]
        assert_allclose(block, expected, rtol=1e-5, atol=1e-3)
    X_res, y_res = RotationAugmenter(degrees=10).fit_resample(X, y)
    assert_array_equal(X_res, X_big)
    assert_array_equal(y_res, y_big)


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------
Y3 = [0, 1, 2]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: deskew(np.ones((3, 780))), "780 features, which is not a perfect square"),
        (lambda: deskew(np.ones((3, 780)), image_shape=(28, 28)), "needs 784"),
        (lambda: deskew(np.ones((3, 784)), image_shape=(28, 30)), "must be square"),
        (lambda: deskew(np.ones((3, 784)), image_shape=(28,)), "pair of positive integers"),
        (lambda: deskew(np.ones((3, 4, 5))), "images must be square"),
        (lambda: deskew(np.ones((3, 4, 4)), image_shape=(5, 5)), "does not match"),
        (lambda: deskew(np.ones(16)), "Expected 2D array"),
        (lambda: deskew(np.ones((1, 2, 2, 2))), "2-D .* or 3-D"),
        (lambda: deskew(np.full((2, 4), np.nan)), "NaN"),
        (lambda: deskew(-np.ones((2, 4))), "Negative values"),
        (lambda: gaussian_blur(np.ones((2, 4)), sigma=-1), "sigma must be"),
        (lambda: gaussian_blur(np.full((2, 4), np.inf)), "infinity"),
        (lambda: shift_images(np.ones((3, 16)), Y3, n_pixels=0), "n_pixels must be a positive"),
        (lambda: shift_images(np.ones((3, 16)), Y3, n_pixels=-1), "n_pixels must be a positive"),
        (lambda: shift_images(np.ones((3, 16)), Y3, n_pixels=1.5), "n_pixels must be a positive"),
        (lambda: shift_images(np.ones((3, 16)), Y3, n_pixels=4), "smaller than the image side"),
        (lambda: shift_images(np.ones((3, 16)), Y3, directions=6), "directions must be 4 or 8"),
        (lambda: shift_images(np.ones((3, 15)), Y3), "not a perfect square"),
        (lambda: shift_images(np.full((3, 16), np.nan), Y3), "NaN"),
        (lambda: shift_images(np.ones((3, 16)), [0, 1]), "inconsistent numbers of samples"),
        (lambda: rotate_images(np.ones((3, 16)), Y3, degrees=0), "degrees must be"),
        (lambda: rotate_images(np.ones((3, 16)), Y3, degrees=np.nan), "degrees must be"),
        (lambda: Deskew().fit(np.ones((3, 10))), "not a perfect square"),
        (lambda: Deskew(image_shape=(3, 5)).fit(np.ones((3, 15))), "must be square"),
        (lambda: Deskew().fit(np.ones((3, 16))).transform(np.ones((3, 9))), "expecting 16 features"),
        (lambda: GaussianBlur(sigma="big").fit(np.ones((3, 16))), "sigma must be"),
        (lambda: ShiftAugmenter(directions=5).fit(np.ones((3, 16)), Y3), "directions must be 4 or 8"),
        (lambda: ShiftAugmenter(n_pixels=9).fit_resample(np.ones((3, 16)), Y3), "smaller than"),
        (lambda: RotationAugmenter(degrees=-5).fit(np.ones((3, 16)), Y3), "degrees must be"),
        # A float equal to 4 passed the membership test, then failed in np.tile.
        (lambda: shift_images(np.ones((3, 16)), Y3, directions=4.0), "directions must be 4 or 8"),
        (lambda: shift_images(np.ones((3, 16)), Y3, directions=[4]), "directions must be 4 or 8"),
        (lambda: ShiftAugmenter(directions=8.0).fit(np.ones((3, 16)), Y3), "directions must be 4 or 8"),
        # Without y, validate_data returned X alone, which was unpacked into X and y.
        (lambda: ShiftAugmenter().fit(np.ones((2, 16)), None), "requires y"),
        (lambda: ShiftAugmenter().fit_resample(np.ones((3, 16)), None), "requires y"),
        (lambda: RotationAugmenter().fit_resample(np.ones((2, 1)), None), "requires y"),
    ],
)
def test_bad_input_raises_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_image_shape_may_be_any_pair_of_integers():
    images = np.random.default_rng(0).random((3, 25))
    expected = deskew(images)
    assert_array_equal(deskew(images, image_shape=np.array([5, 5])), expected)
    assert_array_equal(deskew(images, image_shape=(np.int64(5), 5)), expected)
    with pytest.raises(ValueError, match=r"must be square, got \(5, 6\)"):
        deskew(np.ones((3, 30)), image_shape=np.array([5, 6]))


def test_augmented_knn_rejects_an_object_without_fit_resample():
    clf = AugmentedKNN(KNeighborsClassifier(), augmenter=Deskew())
    with pytest.raises(TypeError, match="fit_resample"):
        clf.fit(np.ones((4, 16)), [0, 1, 0, 1])


# --------------------------------------------------------------------------
# transformers in scikit-learn
# --------------------------------------------------------------------------
@pytest.mark.parametrize("transformer, function", [(Deskew(), deskew), (GaussianBlur(sigma=1.0), gaussian_blur)])
def test_transformer_equals_function_and_names_features(digits, transformer, function):
    X = digits[0][:10]
    kwargs = {"sigma": 1.0} if function is gaussian_blur else {}
    Xt = transformer.fit_transform(X)
    assert_array_equal(Xt, function(X, **kwargs))
    assert transformer.side_ == 28
    names = transformer.get_feature_names_out()
    assert names.shape == (784,) and names[0] == "x0"


def test_transformers_support_pandas_output(digits):
    pd = pytest.importorskip("pandas")
    columns = [f"px{i}" for i in range(784)]
    df = pd.DataFrame(digits[0][:10], columns=columns)
    pipe = make_pipeline(Deskew(), GaussianBlur()).set_output(transform="pandas")
    out = pipe.fit_transform(df)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == columns
    assert_allclose(out.to_numpy(), gaussian_blur(deskew(digits[0][:10])), rtol=1e-6)


# Estimator checks feed 1 to 10 features to every estimator; these estimators
# need square images, so any check whose data has a non-square feature count
# (2, 3, 5, 10) meets the documented "not a perfect square" ValueError.
NON_SQUARE = "the check's data has 2, 3, 5 or 10 features, not a square image"
_NON_SQUARE_CHECKS = [
    "check_dict_unchanged",
    "check_dont_overwrite_parameters",
    "check_dtype_object",
    "check_estimators_dtypes",
    "check_estimators_fit_returns_self",
    "check_estimators_nan_inf",
    "check_estimators_overwrite_params",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_fit2d_1sample",
    "check_fit2d_predict1d",
    "check_fit_check_is_fitted",
    "check_fit_idempotent",
    "check_fit_score_takes_y",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_n_features_in",
    "check_pipeline_consistency",
    "check_readonly_memmap_input",
]
_NON_SQUARE_TRANSFORMER_CHECKS = [
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
]
_NON_SQUARE_CLASSIFIER_CHECKS = [
    "check_classifier_data_not_an_array",
    "check_classifiers_classes",
    "check_classifiers_one_label",
    "check_classifiers_train",
    "check_supervised_y_2d",
]


def _expected_failed_checks(estimator):
    if isinstance(estimator, AugmentedKNN) and estimator.augmenter == "passthrough":
        return {}  # the meta-estimator itself passes everything
    names = list(_NON_SQUARE_CHECKS)
    if isinstance(estimator, (Deskew, GaussianBlur)):
        names += _NON_SQUARE_TRANSFORMER_CHECKS
    if isinstance(estimator, AugmentedKNN):
        names += _NON_SQUARE_CLASSIFIER_CHECKS
    failed = dict.fromkeys(names, NON_SQUARE)
    if isinstance(estimator, (ShiftAugmenter, AugmentedKNN)):
        failed["check_fit2d_1feature"] = "a 1x1 image cannot be shifted by n_pixels >= 1"
    return failed


@parametrize_with_checks(
    [
        Deskew(),
        GaussianBlur(),
        ShiftAugmenter(),
        RotationAugmenter(),
        AugmentedKNN(KNeighborsClassifier(), augmenter="passthrough"),
        AugmentedKNN(KNeighborsClassifier(), augmenter=ShiftAugmenter()),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# AugmentedKNN
# --------------------------------------------------------------------------
class _Recorder(ClassifierMixin, BaseEstimator):
    """Predicts the first class; logs the arrays given to fit and predict.

    The log lives on the class because GridSearchCV works on clones.
    """

    log = []

    def fit(self, X, y):
        type(self).log.append(("fit", np.array(X), np.array(y)))
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        type(self).log.append(("predict", np.array(X)))
        return np.full(len(X), self.classes_[0])


@pytest.fixture
def recorder():
    _Recorder.log = []
    yield _Recorder
    _Recorder.log = []


def test_augmented_knn_expands_at_fit_only(digits, recorder):
    X, y = digits[0][:40], digits[1][:40]
    clf = AugmentedKNN(recorder(), augmenter=[RotationAugmenter(degrees=5), ShiftAugmenter()])
    clf.fit(X, y)
    (_, X_fit, y_fit), = recorder.log
    X_rot, y_rot = rotate_images(X, y, degrees=5)
    X_ref, y_ref = shift_images(X_rot, y_rot)
    assert_array_equal(X_fit, X_ref)
    assert_array_equal(y_fit, y_ref)
    assert clf.n_samples_fit_ == 15 * 40 and len(clf.augmenters_) == 2
    clf.predict(X[:7])
    assert_array_equal(recorder.log[-1][1], X[:7])  # queries are not expanded


def test_augmented_knn_with_grid_search_never_trains_on_validation_images(recorder):
    rng = np.random.default_rng(0)
    X = rng.random((24, 16))  # 4x4 images whose shifted copies are all distinct
    y = np.repeat([0, 1, 2], 8)
    cv = KFold(n_splits=3, shuffle=True, random_state=0)
    search = GridSearchCV(
        AugmentedKNN(recorder(), ShiftAugmenter()),
        {"augmenter__n_pixels": [1, 2]},
        cv=cv,
        refit=False,
    )
    search.fit(X, y)
    fits = [entry for entry in recorder.log if entry[0] == "fit"]
    predicts = [entry[1] for entry in recorder.log if entry[0] == "predict"]
    splits = list(cv.split(X, y))
    assert len(fits) == 2 * len(splits) and len(predicts) == 2 * len(splits)
    # GridSearchCV runs candidates in order, each on every split.
    for i, (_, X_fit, y_fit) in enumerate(fits):
        n_pixels = [1, 2][i // len(splits)]
        train, test = splits[i % len(splits)]
        X_ref, y_ref = shift_images(X[train], y[train], n_pixels=n_pixels)
        assert_array_equal(X_fit, X_ref)
        assert_array_equal(y_fit, y_ref)
        held_out, _ = shift_images(X[test], y[test], n_pixels=n_pixels)
        assert not (X_fit[:, None, :] == held_out[None, :, :]).all(axis=2).any()
        assert_array_equal(predicts[i], X[test])


def test_augmented_knn_api(digits):
    X, y = digits[0][:200].astype(np.float32) / 255, digits[1][:200]
    clf = AugmentedKNN(KNeighborsClassifier(n_neighbors=3), ShiftAugmenter()).fit(X[:150], y[:150])
    assert clf.n_features_in_ == 784 and clf.n_samples_fit_ == 750
    assert_array_equal(clf.classes_, np.unique(y[:150]))
    proba = clf.predict_proba(X[150:])
    assert proba.shape == (50, len(clf.classes_))
    assert_array_equal(clf.predict(X[150:]), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X[150:], y[150:]) > 0.7
    with pytest.raises(ValueError, match="784 features"):
        clf.predict(X[150:, :100])


def test_augmented_knn_is_not_fitted_until_its_estimator_is(recorder):
    X, y = np.random.default_rng(0).random((3, 25)), [0, 1, 1]
    with pytest.raises(NotFittedError):
        AugmentedKNN().classes_
    clf = AugmentedKNN(recorder(), augmenter=[ShiftAugmenter()])
    # A validation set needs a search inside; refused before any expansion,
    # and the fit that failed left n_features_in_ but no estimator_.
    with pytest.raises(TypeError, match="got _Recorder"):
        clf.fit(X, y, X_val=X, y_val=y)
    assert not hasattr(clf, "augmenters_") and recorder.log == []
    for method in (clf.predict, lambda X: clf.classes_):
        with pytest.raises(NotFittedError):
            method(X)
    with pytest.raises(TypeError, match="got Pipeline ending in KNeighborsClassifier"):
        AugmentedKNN(make_pipeline(KNeighborsClassifier())).fit(X, y, X_val=X, y_val=y)


def test_augmented_knn_counts_the_rows_of_any_augmenter_output(recorder):
    class ListAugmenter(BaseEstimator):
        def fit_resample(self, X, y):
            return np.vstack([X, X]).tolist(), list(y) * 2

    X, y = np.random.default_rng(0).random((4, 16)), [0, 1, 0, 1]
    clf = AugmentedKNN(recorder(), ListAugmenter()).fit(X, y)
    assert clf.n_samples_fit_ == 8
    assert_array_equal(recorder.log[0][1], np.vstack([X, X]))


def test_augmented_knn_hides_predict_proba_when_the_estimator_lacks_it(recorder):
    assert not hasattr(AugmentedKNN(recorder()), "predict_proba")
    assert hasattr(AugmentedKNN(), "predict_proba")


def test_augmented_knn_defaults_to_fastknn_and_shifts(digits):
    from fastknn import KNNClassifier

    X, y = digits[0][:50], digits[1][:50]
    clf = AugmentedKNN().fit(X, y)
    assert isinstance(clf.estimator_, KNNClassifier)
    assert isinstance(clf.augmenters_[0], ShiftAugmenter) and clf.n_samples_fit_ == 250


def test_deskew_and_shift_help_knn_on_real_digits():
    X, y = load_mnist(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:2000], y[:2000], X[2000:2500], y[2000:2500]
    knn = KNeighborsClassifier(n_neighbors=1, algorithm="brute")
    raw = knn.fit(X_train, y_train).score(X_test, y_test)
    pipe = make_pipeline(Deskew(), AugmentedKNN(knn, ShiftAugmenter()))
    improved = pipe.fit(X_train, y_train).score(X_test, y_test)
    assert improved > raw + 0.02
