"""``fastknn experiment``'s options, output folder and files.

Expected failures (a missing or malformed ``--data`` file, an ``--out`` that
cannot be used, a bad option value) raise
:class:`fastknn.cli.CommandLineError`, which the command line prints as one
message with exit status 2, before any long computation starts.
"""

import contextlib
import datetime
import json
import os
import pathlib
import shlex
import sys
from time import perf_counter

from ..cli import CommandLineError, check_writable_file
from ..warmup import compile_ahead
from .data import check_for_augmentation, load_data
from .study import Progress, run_experiment, threads_in_use

EXAMPLE = """example:
  fastknn experiment --small --out study      # 1,000 / 200 / 200 digits, about 20 s
  fastknn experiment --data mnist_10000.pkl.gz --no-augment > summary.txt
"""


def prepare_out_dir(out, overwrite=False, now=None):
    """The output folder, created; refuses a non-empty one unless ``overwrite``.

    Parameters
    ----------
    out : str, path-like or None
        The folder; None means a new ``fastknn-experiment-YYYYmmdd-HHMMSS``
        in the current directory (with a numeric suffix if that exists).
    overwrite : bool, default=False
        Allow writing into a folder that already holds files (the
        experiment's files are replaced, others are left alone).
    now : datetime.datetime, optional
        The time stamped into the default name.

    Raises
    ------
    CommandLineError
        If ``out`` is a file, a non-empty folder (and not ``overwrite``), or
        cannot be created or written.
    """
    if out is None:
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        base = pathlib.Path(f"fastknn-experiment-{stamp}")
        path, suffix = base, 1
        while path.exists():
            suffix += 1
            path = base.with_name(f"{base.name}-{suffix}")
    else:
        path = pathlib.Path(out)
        if path.exists() and not path.is_dir():
            raise CommandLineError(f"--out {path} exists and is not a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise CommandLineError(
                f"--out {path} is not empty; choose another folder or pass --overwrite to replace "
                "the experiment's files in it"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CommandLineError(f"--out {path}: cannot create the folder: {error.strerror or error}") from None
    from .figures import FILE_NAMES

    # Each file the run writes at its end, tried now (a folder of that name, a
    # file system or folder that refuses writes): the run then cannot fail there.
    for name in ("results.json", "report.md", *FILE_NAMES.values()):
        check_writable_file(path / name, "--out")
    return path


def command_line(data_path=None, small=False, augment=True, n_jobs=None, distortion=True):
    """The ``fastknn experiment`` command that reruns these settings."""
    words = ["fastknn", "experiment"]
    if data_path is not None:
        words += ["--data", shlex.quote(os.fspath(data_path))]
    if small:
        words.append("--small")
    if not augment:
        words.append("--no-augment")
    elif not distortion:
        words.append("--no-distortion")
    if n_jobs is not None:
        words += ["--n-jobs", str(n_jobs)]
    return " ".join(words)


@contextlib.contextmanager
def _threads(n_jobs):
    """numba, BLAS and OpenMP (scikit-learn) limited to ``n_jobs`` threads; nothing when None."""
    if n_jobs is None:
        yield
        return
    import numba
    from threadpoolctl import threadpool_limits

    n_threads = threads_in_use(n_jobs)
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        with threadpool_limits(limits=n_threads):
            yield
    finally:
        numba.set_num_threads(previous)


def run(
    data_path=None,
    small=False,
    out=None,
    *,
    data=None,
    load_seconds=0.0,
    augment=True,
    distortion=True,
    n_jobs=None,
    overwrite=False,
    stream=None,
    progress_stream=None,
    command=None,
    **grid,
):
    """Run the whole experiment and write its files; return the results dict.

    Parameters
    ----------
    data_path : str or path-like, default=None
        A file in the original project's format; None for the packaged digits.
    small : bool, default=False
        The packaged 1,000 / 200 / 200 layout.
    out : str or path-like, default=None
        Output folder (see :func:`prepare_out_dir`).
    data : ExperimentData, optional
        The split, already loaded from ``data_path`` / ``small``.
    load_seconds : float, default=0.0
        The time that loading ``data`` took, for the timings.
    augment : bool, default=True
        Try every candidate model, not only raw pixels.
    distortion : bool, default=True
        With ``augment``, also try the re-ranking with an image distortion model.
    n_jobs : int or None
        Threads for fastknn, scikit-learn and BLAS; None keeps the defaults.
    overwrite : bool, default=False
        Allow a non-empty ``out``.
    stream : file, default=sys.stdout
        Where the summary goes.
    progress_stream : file, default=sys.stderr
        Where the progress lines go.
    command : str, optional
        The command line quoted in the report.
    **grid
        ``k_grid``, ``metrics``, ``transforms`` for :func:`run_experiment`.

    Returns
    -------
    results : dict
        What ``results.json`` holds, plus ``out_dir`` and private entries.
    """
    from . import figures, report

    stream = sys.stdout if stream is None else stream
    preloaded = data is not None
    out_dir = prepare_out_dir(out, overwrite=overwrite)
    progress = Progress(progress_stream)
    with _threads(n_jobs):
        timings = {}
        if data is None:
            with progress.step("loading data", timings, "load"):
                data = load_data(data_path, small)
        else:
            timings["load"] = load_seconds
        results = run_experiment(data, augment=augment, distortion=distortion, n_jobs=n_jobs, progress=progress, **grid)
        results["timings"] = {**timings, **results["timings"]}
        results["_description"] = data.description
        with progress.step("drawing figures", results["timings"], "figures"):
            drawn = figures.draw_figures(results, data, out_dir, augment)
    results["figures"] = drawn
    results["out_dir"] = str(out_dir)
    results["timings"]["total"] = progress.elapsed() + (load_seconds if preloaded else 0.0)
    if command is None:
        command = command_line(
            data_path=data_path, small=small, augment=augment, n_jobs=n_jobs, distortion=distortion
        )
    (out_dir / "results.json").write_text(json.dumps(report.json_ready(results), indent=2) + "\n")
    (out_dir / "report.md").write_text(report.format_report(results, drawn, command))
    print(report.format_summary(results, out_dir), file=stream)
    return results


def add_arguments(parser):
    """Register the options of ``fastknn experiment`` on an argparse parser."""
    parser.epilog = EXAMPLE
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--data",
        metavar="PATH",
        help="a gzip-compressed pickle (trainData, trainLabels, valData, valLabels, testData, testLabels), "
        "read safely; default: the packaged digits",
    )
    source.add_argument("--small", action="store_true", help="packaged digits, 1,000 / 200 / 200 layout")
    parser.add_argument(
        "--out", metavar="DIR", help="output folder (default: a new fastknn-experiment-YYYYmmdd-HHMMSS here)"
    )
    parser.add_argument("--overwrite", action="store_true", help="allow --out to be a non-empty folder")
    parser.add_argument(
        "--no-augment",
        action="store_true",
        help="skip the augmentation step (deskew, blur, rotated and shifted copies)",
    )
    parser.add_argument(
        "--no-distortion",
        action="store_true",
        help="skip the re-ranking with an image distortion model (IDM; also skipped by --no-augment)",
    )
    parser.add_argument(
        "--n-jobs", type=int, default=None, metavar="N", help="threads (default: numba's setting; -1: all)"
    )


def _load(args):
    """The split named by the options, checked; CommandLineError for what the file gets wrong."""
    from ..datasets import UnsafePickleError

    try:
        data = load_data(args.data, args.small)
        if not args.no_augment:
            check_for_augmentation(data, distortion=not args.no_distortion)
    except UnsafePickleError as error:
        raise CommandLineError(f"--data {error}; refused unread, since loading it could run code") from None
    except OSError as error:
        raise CommandLineError(f"--data {args.data}: cannot read it: {error.strerror or error}") from None
    except ValueError as error:
        raise CommandLineError(f"--data {error}") from None
    return data


def main(args):
    """Entry point of ``fastknn experiment``; returns the exit status."""
    if args.n_jobs == 0:
        raise CommandLineError("--n-jobs 0 has no meaning; use -1 or a positive number")
    if args.no_augment and args.no_distortion:
        raise CommandLineError("--no-distortion is implied by --no-augment; pass one of them")
    if args.out is not None and pathlib.Path(args.out).exists() and not pathlib.Path(args.out).is_dir():
        raise CommandLineError(f"--out {args.out} exists and is not a folder")
    start = perf_counter()
    data = _load(args)
    load_seconds = perf_counter() - start
    out_dir = prepare_out_dir(args.out, overwrite=args.overwrite)
    # The folder is ours now (new, empty, or allowed by --overwrite).
    augment, distortion = not args.no_augment, not args.no_distortion
    with compile_ahead(compile_ahead_steps(augment, distortion), n_jobs=args.n_jobs):
        run(
            args.data,
            args.small,
            out_dir,
            data=data,
            load_seconds=load_seconds,
            augment=augment,
            distortion=distortion,
            n_jobs=args.n_jobs,
            overwrite=True,
        )
    return 0


def compile_ahead_steps(augment, distortion):
    """The warm-up steps a first run compiles in a second process (see ``warmup.compile_ahead``).

    The study first searches the raw pixels: pruned Euclidean and Manhattan
    searches (about 9 s of compilation on a 2-core machine), then the
    Minkowski probe's pruned search and a brute-force Minkowski search
    (about 7 s). This process compiles the first two itself; the second
    process, which starts when this one first compiles and needs about 1.5 s
    to import, takes everything after them, in the order the study needs it:
    the Minkowski searches, the augmentation, Manhattan by brute force (on
    the augmented sets), the IDM re-ranking, and the scikit-learn check's
    brute-force Euclidean search.
    """
    steps = ["pruned-minkowski", "minkowski"]
    if augment:
        steps += ["augmentation", "manhattan"]
    if distortion:
        steps.append("distortion")
    return steps + ["euclidean"]
