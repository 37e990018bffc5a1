"""Augmentation: ``fastknn.augment`` deskewing and shifted copies.

Deskewing is compared with the usual SciPy recipe (image moments in numpy,
then ``scipy.ndimage.affine_transform`` with bilinear interpolation, one image
at a time), which computes the same transform. Every benchmark here skips
itself where ``fastknn.augment`` does not exist (older commits).
"""

import numpy as np

from .common import Benchmark, K, digits, import_or_skip, make_classifier, mnist_split, warm_up


def scipy_deskew(images):
    """Deskew a ``(n, side, side)`` stack with ``scipy.ndimage`` (reference).

    Shear by the slant ``alpha = mu11 / mu02`` and move the centre of mass to
    the image centre, as :func:`fastknn.augment.deskew` documents.
    """
    from scipy.ndimage import affine_transform

    side = images.shape[1]
    centre = (side - 1) / 2.0
    rows, cols = np.mgrid[:side, :side]
    out = np.empty_like(images)
    for i, image in enumerate(images):
        mass = image.sum(dtype=np.float64)
        if mass <= 0:
            out[i] = image
            continue
        row0 = (rows * image).sum() / mass
        col0 = (cols * image).sum() / mass
        mu11 = ((rows - row0) * (cols - col0) * image).sum()
        mu02 = ((rows - row0) ** 2 * image).sum()
        alpha = mu11 / mu02 if mu02 > 0 else 0.0
        matrix = np.array([[1.0, 0.0], [alpha, 1.0]])
        offset = np.array([row0 - centre, col0 - centre - alpha * centre])
        out[i] = affine_transform(image, matrix, offset=offset, order=1, mode="constant", cval=0.0)
    return out


class Deskew(Benchmark):
    """Deskew a stack of 28x28 digits."""

    params = (["fastknn", "scipy"], [2000, 14_000])
    param_names = ["library", "n_images"]

    def setup(self, library, n_images):
        augment = import_or_skip("fastknn.augment")
        X_train, _, X_query, _ = digits(10_000, 4000)
        self.images = np.concatenate([X_train, X_query])[:n_images].reshape(-1, 28, 28)
        if library == "fastknn":
            self.deskew = augment.deskew
            self.deskew(self.images[:4])  # compile, or load from the numba cache
        else:
            self.deskew = scipy_deskew

    def time_deskew(self, library, n_images):
        self.deskew(self.images)


class ShiftImages(Benchmark):
    """Expand 10,000 training digits with 4 or 8 shifted copies each."""

    params = [4, 8]
    param_names = ["directions"]

    def setup(self, directions):
        self.augment = import_or_skip("fastknn.augment")
        self.X, self.y, _, _ = digits(10_000, 1)

    def time_shift_images(self, directions):
        self.augment.shift_images(self.X, self.y, n_pixels=1, directions=directions)


class AugmentedFitPredict(Benchmark):
    """fit on 2,000 digits + 4 shifted copies each, predict 500, k=3."""

    params = ["fastknn", "sklearn"]
    param_names = ["library"]

    def setup(self, library):
        augment = import_or_skip("fastknn.augment")
        self.X, self.y, self.queries, _ = digits(2000, 500)
        self.classifier = augment.AugmentedKNN(
            make_classifier(library, n_neighbors=K, metric="euclidean"),
            augment.ShiftAugmenter(n_pixels=1, directions=4),
        )
        warm_up(library)

    def time_fit_predict(self, library):
        self.classifier.fit(self.X, self.y).predict(self.queries)


class AugmentedAccuracy:
    """Test accuracy, k=3 Euclidean, 10,000 training and 2,000 test digits.

    ``deskew`` deskews training and test images; ``shift`` adds 4 one-pixel
    shifted copies of each training image (50,000 training rows);
    ``deskew+shift`` does both. The plain classifier's accuracy is
    ``estimator.Accuracy``.
    """

    params = ["deskew", "shift", "deskew+shift"]
    param_names = ["preprocessing"]
    unit = "accuracy"
    timeout = 300

    def setup(self, preprocessing):
        self.augment = import_or_skip("fastknn.augment")
        self.X, self.y, _, _, self.X_test, self.y_test = mnist_split("10000")

    def track_test_accuracy(self, preprocessing):
        augment = self.augment
        X, y, X_test = self.X, self.y, self.X_test
        if "deskew" in preprocessing:
            X, X_test = augment.deskew(X), augment.deskew(X_test)
        if "shift" in preprocessing:
            X, y = augment.shift_images(X, y, n_pixels=1, directions=4)
        classifier = make_classifier("fastknn", n_neighbors=K, metric="euclidean")
        return float(classifier.fit(X, y).score(X_test, self.y_test))
