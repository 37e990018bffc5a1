"""The experiment end to end, on the small 1,000 / 200 / 200 layout.

``fastknn.experiment.run`` is what ``fastknn experiment --small`` does: load,
K sweep for every metric and transform, the check against scikit-learn, the
test report, figures and files. ``run_experiment`` is the computation alone
(no figures, no files). Both skip themselves where ``fastknn.experiment``
does not exist (older commits). The ``--small`` layout keeps one run to a few
seconds; the full layout is ``fastknn experiment`` itself.
"""

import io
import tempfile

from .common import import_or_skip


class Experiment:
    """Seconds of one experiment on the small layout.

    ``setup`` runs the experiment once, so compilation, the first imports of
    scikit-learn and matplotlib and the data load are not timed.
    """

    number = 1
    repeat = (1, 3, 20.0)
    warmup_time = 0.0
    timeout = 300

    def setup(self):
        self.experiment = import_or_skip("fastknn.experiment")
        self.data = self.experiment.load_data(small=True)
        self.out = tempfile.TemporaryDirectory(prefix="fastknn-asv-experiment-")
        self.time_run_small()

    def teardown(self):
        self.out.cleanup()

    def time_run_small(self):
        silent = io.StringIO()
        self.experiment.run(small=True, out=self.out.name, overwrite=True, stream=silent, progress_stream=silent)

    def time_run_experiment_small(self):
        self.experiment.run_experiment(self.data)


class ExperimentAccuracy:
    """Test accuracy of the model the experiment chooses (small layout).

    The choice of transform, metric and K is made on validation only, so a
    change here is a change of the experiment's outcome, not of speed.
    """

    unit = "accuracy"
    timeout = 300

    def setup(self):
        self.experiment = import_or_skip("fastknn.experiment")

    def track_test_accuracy_small(self):
        results = self.experiment.run_experiment(self.experiment.load_data(small=True))
        return float(results["test_accuracy"])

    def track_baseline_test_accuracy_small(self):
        results = self.experiment.run_experiment(self.experiment.load_data(small=True), augment=False)
        return float(results["baseline_test_accuracy"])
