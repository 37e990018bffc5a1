"""The models the study compares, each a small declarative entry.

A :class:`Candidate` builds its model around the k-NN estimator it is given:
during validation a :class:`~fastknn.KNNClassifierCV` (every K, metric and
vote weighting from one neighbour search per metric), and the same model then
predicts the test images with the best of them, a
:class:`~fastknn.KNNClassifier`. Adding a model to the study is one more
entry in :data:`CANDIDATES`.
"""

import dataclasses

from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from ..augment import AugmentedKNN, Deskew, GaussianBlur, RotationAugmenter, ShiftAugmenter

# The augmentation study (fastknn.augment, issue 4) chose these on the
# validation set of the 10000 layout.
BLUR_SIGMA = 0.5
ROTATION_DEGREES = 10.0

# key -> (label, metric, p) in the order the grid is searched; ties of
# validation accuracy go to the first, i.e. the cheapest metric.
METRICS = {
    "euclidean": ("Euclidean", "euclidean", 2),
    "manhattan": ("Manhattan", "manhattan", 1),
    "minkowski_p3": ("Minkowski p=3", "minkowski", 3),
}
BASELINE_METRIC = "euclidean"

# step key -> (label, sentence for the report)
STEPS = {
    "deskew": (
        "deskew",
        "Deskewing shears each image so that its principal axis (from the second-order moments) is "
        "vertical and moves its centre of mass to the centre.",
    ),
    "rotate": (
        f"rotations ±{ROTATION_DEGREES:g}°",
        f"Rotation expansion adds two copies of every training image, rotated by {ROTATION_DEGREES:g} "
        "degrees each way.",
    ),
    "shift": (
        "shifts",
        "Shift expansion adds four copies of every training image (and of its rotated copies, if any), "
        "moved by one pixel up, down, left and right.",
    ),
    "blur": (
        f"blur σ={BLUR_SIGMA:g}",
        f"Blurring convolves each image with a Gaussian of standard deviation {BLUR_SIGMA:g} pixel.",
    ),
    "normalize": (
        "unit norm",
        "Normalising scales each image to unit Euclidean norm, so that Euclidean distances rank "
        "neighbours by the angle between images (cosine similarity).",
    ),
}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One model of the study.

    Attributes
    ----------
    key : str
        Name in ``results.json``.
    steps : tuple of str
        Keys of :data:`STEPS`, in the order the model applies them (for the
        report's labels and sentences).
    build : callable
        ``build(knn)`` returns the model around the k-NN estimator ``knn``:
        ``knn`` itself, or a Pipeline / :class:`~fastknn.augment.AugmentedKNN`
        ending in it. Transformers apply to training, validation and test
        images alike; augmenters expand the training images only.
    metrics : tuple of str or None, default=None
        Keys of :data:`METRICS` tried with this model; None for all of them.
        Searches on large expanded sets with the slower metrics are left out
        to keep the whole experiment within a couple of minutes.
    """

    key: str
    steps: tuple
    build: object
    metrics: tuple | None = None

    @property
    def label(self):
        """Name in the report, e.g. ``"deskew + shifts"``."""
        return " + ".join(STEPS[step][0] for step in self.steps) or "raw pixels"


# In search order: a tie of validation accuracy goes to the earlier, simpler model.
CANDIDATES = (
    Candidate("none", (), lambda knn: knn),
    Candidate("deskew", ("deskew",), lambda knn: make_pipeline(Deskew(), knn)),
    Candidate(
        "deskew+shift",
        ("deskew", "shift"),
        lambda knn: make_pipeline(Deskew(), AugmentedKNN(knn, augmenter=ShiftAugmenter())),
    ),
    Candidate(
        "deskew+blur+norm",
        ("deskew", "blur", "normalize"),
        lambda knn: make_pipeline(Deskew(), GaussianBlur(sigma=BLUR_SIGMA), Normalizer(), knn),
    ),
    Candidate(
        "deskew+blur+rotate+shift+norm",
        ("deskew", "blur", "rotate", "shift", "normalize"),
        # Normalizer inside AugmentedKNN, so that the expanded copies are
        # normalised too; in place (copy=False), as its input is the fresh
        # expanded set and the fresh blurred queries, not the caller's arrays.
        lambda knn: make_pipeline(
            Deskew(),
            GaussianBlur(sigma=BLUR_SIGMA),
            AugmentedKNN(
                make_pipeline(Normalizer(copy=False), knn),
                augmenter=[RotationAugmenter(degrees=ROTATION_DEGREES), ShiftAugmenter()],
            ),
        ),
        metrics=("euclidean",),
    ),
)
CANDIDATES_BY_KEY = {candidate.key: candidate for candidate in CANDIDATES}


def step_descriptions(candidate_keys):
    """One sentence per step used by the candidates, in order of first use."""
    steps = []
    for key in candidate_keys:
        steps += [step for step in CANDIDATES_BY_KEY[key].steps if step not in steps]
    return [STEPS[step][1] for step in steps]
