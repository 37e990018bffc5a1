"""``fastknn experiment``: the whole MNIST k-NN study in one command.

On the packaged digits (10,000 training, 2,000 validation and 2,000 test
images; --small for 1,000 / 200 / 200) or on your own file in the original
project's format (--data PATH), it scores K = 1, 3, 5, 9, 15, 25 on the
validation set from one neighbour search; retrains the best K on the training
data and measures its test accuracy (the raw-pixel Euclidean baseline);
checks it against scikit-learn's brute-force KNeighborsClassifier (agreement,
exact-distance ties, timings); compares the Manhattan and Minkowski p=3
metrics; then tries deskewing, blurring, unit-norm scaling and training-set
expansion by rotated and shifted copies, and re-ranking the Euclidean
neighbours of the deskewed images with an image distortion model, choosing the model, metric, vote
weighting and K on validation only, and measures the chosen model on test
with its per-class report and confusion matrix. It writes report.md, figures
and results.json to a new folder; the summary goes to stdout, progress to
stderr.
"""

# The package, by concern: candidates.py (the models compared), data.py (the
# split), study.py (validation, baseline, test, all public fastknn calls),
# agreement.py (the check against scikit-learn), report.py (summary,
# report.md, results.json), figures.py (PNG figures), cli.py (options, files).
from .candidates import CANDIDATES, CANDIDATES_BY_KEY, DISTORTION, METRICS, Candidate, DistortionCandidate
from .cli import add_arguments, command_line, main, prepare_out_dir, run
from .data import ExperimentData, load_data
from .study import K_GRID, WEIGHTS, run_experiment

__all__ = [
    "CANDIDATES",
    "CANDIDATES_BY_KEY",
    "Candidate",
    "DISTORTION",
    "DistortionCandidate",
    "ExperimentData",
    "K_GRID",
    "METRICS",
    "WEIGHTS",
    "add_arguments",
    "command_line",
    "load_data",
    "main",
    "prepare_out_dir",
    "run",
    "run_experiment",
]
