"""The models the study compares, each a small declarative entry.

A :class:`Candidate` builds its model around the k-NN estimator it is given:
during validation a :class:`~fastknn.KNNClassifierCV` (every K, metric and
vote weighting from one neighbour search per metric), and the same model then
predicts the test images with the best of them, a
:class:`~fastknn.KNNClassifier`. Adding a model to the study is one more
entry in :data:`CANDIDATES`.

The re-ranking with an image distortion model (:data:`DISTORTION`) is the
one candidate of another kind: its validation is
:func:`~fastknn.distortion.select_distortion_knn` on the deskewed images,
and it is searched after every entry of :data:`CANDIDATES`, so that a tie of
validation accuracy goes to the simpler, earlier model.
"""

import dataclasses

from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer

from ..augment import AugmentedKNN, Deskew, GaussianBlur, RotationAugmenter, ShiftAugmenter, deskew

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
    "idm": (
        "IDM re-ranking",
        "The image distortion model (IDM) re-ranks the exact Euclidean nearest training images of each "
        "query: every query pixel is matched to the best reference pixel within a small window (warp w: "
        "1 for 3x3, 2 for 5x5), comparing 3x3 neighbourhoods of Sobel gradients, and the distance is the "
        "sum of those best matches.",
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


@dataclasses.dataclass(frozen=True)
class DistortionCandidate:
    """The re-ranking with an image distortion model, on deskewed images.

    Its validation scores every warp, K and vote weighting with
    :func:`~fastknn.distortion.select_distortion_knn` (one re-ranking of the
    ``n_candidates`` exact Euclidean neighbours per warp).

    Attributes
    ----------
    key : str
        Name in ``results.json``.
    steps : tuple of str
        Keys of :data:`STEPS`, in the order the model applies them.
    warps, n_neighbors : tuple of int
        Warp ranges and values of K tried.
    weights : tuple of {"uniform", "distance"}
        Vote weightings tried.
    n_candidates : int
        Euclidean neighbours re-ranked per query.
    """

    key: str = "deskew+idm"
    steps: tuple = ("deskew", "idm")
    warps: tuple = (1, 2)
    n_neighbors: tuple = (1, 3, 5)
    weights: tuple = ("uniform", "distance")
    n_candidates: int = 50

    @property
    def label(self):
        """Name in the report: ``"deskew + IDM re-ranking"``."""
        return " + ".join(STEPS[step][0] for step in self.steps)

    def build(self, *, warp, n_neighbors, weights, side, n_jobs=None):
        """The model with these settings, unfitted: deskewing, then the re-ranking classifier."""
        from ..distortion import DistortionKNNClassifier

        knn = DistortionKNNClassifier(
            n_neighbors, n_candidates=self.n_candidates, warp=warp, weights=weights, image_shape=(side, side),
            n_jobs=n_jobs,
        )
        return make_pipeline(Deskew(), knn)

    def select(self, X_train, y_train, X_val, y_val, side, n_jobs=None):
        """Score the grid on validation; return ``(model fitted on the training set, rows)``.

        ``rows`` are :func:`~fastknn.distortion.select_distortion_knn`'s, in
        the order warp, K, weighting; the model is the first best among them.
        Values of K above the number of training images are left out.
        """
        from ..distortion import select_distortion_knn

        n_neighbors = tuple(k for k in self.n_neighbors if k <= len(X_train)) or (1,)  # as the K grid
        best, rows = select_distortion_knn(
            deskew(X_train), y_train, deskew(X_val), y_val, warps=self.warps, n_neighbors=n_neighbors,
            weights=self.weights, n_candidates=self.n_candidates, image_shape=(side, side), n_jobs=n_jobs,
        )
        return make_pipeline(Deskew(), best).fit(X_train, y_train), rows


DISTORTION = DistortionCandidate()


def step_descriptions(candidate_keys):
    """One sentence per step used by the candidates, in order of first use."""
    steps = []
    for key in candidate_keys:
        candidate = DISTORTION if key == DISTORTION.key else CANDIDATES_BY_KEY[key]
        steps += [step for step in candidate.steps if step not in steps]
    return [STEPS[step][1] for step in steps]
