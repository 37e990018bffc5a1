"""The command line: one message and status 2 for every expected failure, a traceback only for bugs."""

import gzip
import os
import pickle
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fastknn import cli
from fastknn.datasets import load_mnist_split, save_mnist_pickle


def _parts(n_features=16, n=(6, 3, 3)):
    rng = np.random.default_rng(0)
    parts = []
    for rows in n:
        parts += [rng.random((rows, n_features), dtype=np.float32), rng.integers(0, 3, rows)]
    return parts


def _pickle(path, obj):
    """A gzip-compressed pickle of anything, bypassing save_mnist_pickle's checks."""
    with gzip.open(path, "wb") as stream:
        pickle.dump(obj, stream, protocol=2)
    return path


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo should-never-run",))


def _run(capsys, *argv):
    """``fastknn argv`` in this process: (status, stdout, stderr)."""
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _assert_one_message(status, err, *words):
    assert status == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastknn"), err
    for word in words:
        assert word in lines[0], (word, err)


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """Every kind of bad --data file, by name."""
    folder = tmp_path_factory.mktemp("bad")
    good = save_mnist_pickle(folder / "good.pkl.gz", tuple(_parts()))
    content = good.read_bytes()
    (folder / "empty.pkl.gz").write_bytes(b"")
    (folder / "truncated.pkl.gz").write_bytes(content[: len(content) // 2])
    (folder / "text.pkl.gz").write_text("trainData,trainLabels\n1,2\n")
    (folder / "gzip-text.pkl.gz").write_bytes(gzip.compress(b"not a pickle at all"))
    (folder / "a-folder").mkdir()
    parts = _parts(n_features=15)
    _pickle(folder / "not-square.pkl.gz", tuple(parts))
    parts = _parts()
    parts[1] = parts[1][:-1]
    _pickle(folder / "labels.pkl.gz", tuple(parts))
    parts = _parts()
    parts[2][0, 3] = np.nan
    _pickle(folder / "nan.pkl.gz", tuple(parts))
    _pickle(folder / "unsafe.pkl.gz", _Payload())
    parts = _parts()
    parts[4], parts[5] = parts[4][:0], parts[5][:0]
    save_mnist_pickle(folder / "no-test.pkl.gz", tuple(parts))
    parts = _parts()
    parts[0][0, 0] = -1.0
    save_mnist_pickle(folder / "negative.pkl.gz", tuple(parts))
    save_mnist_pickle(folder / "one-pixel.pkl.gz", tuple(_parts(n_features=1)))
    save_mnist_pickle(folder / "two-by-two.pkl.gz", tuple(_parts(n_features=4)))
    parts = _parts()
    parts[4][1, 2] = 1e20  # float32, but the IDM's float32 sums of its gradients' squares overflow
    save_mnist_pickle(folder / "huge-pixels.pkl.gz", tuple(parts))
    parts = _parts()
    parts[2] = parts[2].astype(np.float64)
    parts[2][0, 0] = 1e300
    _pickle(folder / "beyond-float32.pkl.gz", tuple(parts))
    return folder


@pytest.mark.parametrize(
    "name, words",
    [
        ("missing.pkl.gz", ["missing.pkl.gz", "No such file"]),
        ("a-folder", ["a-folder", "Is a directory"]),
        ("empty.pkl.gz", ["empty.pkl.gz", "truncated"]),
        ("truncated.pkl.gz", ["truncated.pkl.gz", "truncated"]),
        ("text.pkl.gz", ["text.pkl.gz", "not a gzip"]),
        ("gzip-text.pkl.gz", ["gzip-text.pkl.gz", "corrupt pickle"]),
        ("not-square.pkl.gz", ["not-square.pkl.gz", "15 columns", "square"]),
        ("labels.pkl.gz", ["labels.pkl.gz", "6 rows", "5 labels"]),
        ("nan.pkl.gz", ["nan.pkl.gz", "valData", "NaN"]),
        ("unsafe.pkl.gz", ["unsafe.pkl.gz", "refused", "system"]),
        ("no-test.pkl.gz", ["no-test.pkl.gz", "testData holds no image"]),
        ("negative.pkl.gz", ["negative.pkl.gz", "negative pixel", "--no-augment"]),
        ("one-pixel.pkl.gz", ["one-pixel.pkl.gz", "1 x 1 pixels cannot be shifted", "--no-augment"]),
        ("two-by-two.pkl.gz", ["two-by-two.pkl.gz", "2 x 2 pixels are too small", "--no-distortion"]),
        ("huge-pixels.pkl.gz", ["huge-pixels.pkl.gz", "testData has pixel values up to 1e+20", "--no-distortion"]),
        ("beyond-float32.pkl.gz", ["beyond-float32.pkl.gz", "valData", "beyond float32's range"]),
    ],
)
def test_bad_data_file_is_one_message(bad_files, tmp_path, capsys, name, words):
    out = tmp_path / "out"
    status, stdout, err = _run(capsys, "experiment", "--data", str(bad_files / name), "--out", str(out))
    _assert_one_message(status, err, "--data", *words)
    assert stdout == ""
    assert not out.exists()  # nothing created for a run that never started
    if name == "missing.pkl.gz":
        assert "corrupt" not in err


def test_unsafe_pickle_never_runs(bad_files, capfd):
    assert cli.main(["experiment", "--data", str(bad_files / "unsafe.pkl.gz")]) == 2
    assert "should-never-run" not in capfd.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["experiment", "--n-jobs", "0"], ["--n-jobs 0"]),
        (["experiment", "--n-jobs", "two"], ["--n-jobs", "invalid int value", "--help"]),
        (["experiment", "--small", "--bogus"], ["unrecognized arguments: --bogus", "fastknn experiment --help"]),
        (["experiment", "--small", "--data", "x.pkl.gz"], ["--data", "not allowed with argument --small"]),
        (["frobnicate"], ["invalid choice", "frobnicate"]),
        ([], ["required"]),
        (["bench", "--repeats", "0"], ["--repeats 0"]),
        (["bench", "--memory-queries", "-5"], ["--memory-queries -5"]),
        (["bench", "--cv-sklearn"], ["--cv-sklearn needs --cv"]),
        (["bench", "--json", "/nonexistent-folder-xyz/bench.json"], ["--json", "does not exist"]),
    ],
)
def test_bad_options_are_one_message(capsys, argv, words):
    status, stdout, err = _run(capsys, *argv)
    _assert_one_message(status, err, *words)
    assert stdout == ""


def test_bench_json_that_is_a_folder(tmp_path, capsys):
    status, _, err = _run(capsys, "bench", "--json", str(tmp_path))
    _assert_one_message(status, err, "--json", "is a folder")



def test_bench_json_is_tried_before_the_run(tmp_path, capsys):
    # A named pipe without a reader cannot be written: the check says so at
    # once (it would block, or fail after the whole benchmark).
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    status, stdout, err = _run(capsys, "bench", "--json", str(pipe))
    _assert_one_message(status, err, "--json", "pipe", "cannot write it")
    assert stdout == ""
    status, _, err = _run(capsys, "bench", "--json", "")
    _assert_one_message(status, err, "--json needs a file name")


def test_check_writable_file_leaves_files_as_they_were(tmp_path):
    existing = tmp_path / "existing.json"
    existing.write_text("mine")
    cli.check_writable_file(existing, "--json")
    cli.check_writable_file(tmp_path / "new.json", "--json")
    assert [p.name for p in tmp_path.iterdir()] == ["existing.json"] and existing.read_text() == "mine"


def test_out_whose_files_cannot_be_written(tmp_path, capsys):
    (tmp_path / "report.md").write_text("mine")
    (tmp_path / "results.json").mkdir()
    status, stdout, err = _run(capsys, "experiment", "--small", "--out", str(tmp_path), "--overwrite")
    _assert_one_message(status, err, "--out", "results.json", "cannot write it")
    assert stdout == "" and (tmp_path / "report.md").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "results.json"]


def test_version(capsys):
    from fastknn import __version__

    status, stdout, err = _run(capsys, "--version")
    assert status == 0 and stdout.strip() == f"fastknn {__version__}" and err == ""

def test_out_that_is_a_file(tmp_path, capsys):
    existing = tmp_path / "report.txt"
    existing.write_text("mine")
    status, _, err = _run(capsys, "experiment", "--small", "--out", str(existing))
    _assert_one_message(status, err, "--out", "report.txt", "not a folder")
    assert existing.read_text() == "mine"


def test_out_that_cannot_be_created(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, _, err = _run(capsys, "experiment", "--small", "--out", str(blocker / "sub"))
    _assert_one_message(status, err, "--out", "sub")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_out_that_is_not_writable(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        status, _, err = _run(capsys, "experiment", "--small", "--out", str(locked / "run"))
    finally:
        locked.chmod(0o700)
    _assert_one_message(status, err, "--out", "run")


def test_out_that_is_not_empty(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    status, _, err = _run(capsys, "experiment", "--small", "--out", str(tmp_path))
    _assert_one_message(status, err, "--out", "not empty", "--overwrite")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("argv", [["--help"], ["experiment", "--help"], ["bench", "--help"]])
def test_help_shows_an_example(capsys, argv):
    status, stdout, err = _run(capsys, *argv)
    assert status == 0 and err == ""
    assert "example:" in stdout and "fastknn " in stdout.split("example:")[1]


def test_a_bug_shows_its_traceback_and_asks_for_a_report(monkeypatch, capsys):
    def broken(args):
        raise RuntimeError("an unexpected state")

    monkeypatch.setattr("fastknn.experiment.cli._load", broken)
    status, _, err = _run(capsys, "experiment", "--small")
    assert status == 1
    assert "Traceback" in err and "RuntimeError: an unexpected state" in err
    assert "bug in fastknn" in err and "report it" in err


def test_console_entry_point_in_a_fresh_process(tmp_path):
    script = shutil.which("fastknn", path=os.path.dirname(sys.executable))
    command = [script] if script else [sys.executable, "-m", "fastknn"]
    missing = tmp_path / "mnist_10000.pkl.gz"
    completed = subprocess.run(
        [*command, "experiment", "--data", str(missing)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip() == (
        f"fastknn experiment: error: --data {missing}: cannot read it: No such file or directory"
    )


def test_loader_reports_missing_file_as_such(tmp_path):
    from fastknn.datasets import load_mnist_pickle

    with pytest.raises(FileNotFoundError):
        load_mnist_pickle(tmp_path / "absent.pkl.gz")


def test_a_good_file_still_loads(bad_files):
    from fastknn.experiment import load_data

    data = load_data(bad_files / "good.pkl.gz")
    assert data.sizes() == {"n_train": 6, "n_validation": 3, "n_test": 3, "n_features": 16}
    assert load_mnist_split("1000")[0].shape == (1000, 784)
