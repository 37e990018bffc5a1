"""The ``fastknn`` command line: ``fastknn experiment``, ``fastknn bench`` and ``fastknn warmup``.

Expected failures (a file that is missing or malformed, an option value that
makes no sense) print one line, ``fastknn <command>: error: ...``, to stderr
and exit with status 2. Anything else is a bug: its traceback is printed with
a request to report it.
"""

import argparse
import importlib
import os
import sys

# sub-command -> (module, one-line help); each module has add_arguments(parser) and main(args).
COMMANDS = {
    "experiment": ("fastknn.experiment", "the whole MNIST study: K, metrics, augmentation, report"),
    "bench": ("fastknn.bench", "time fastknn against scikit-learn, FAISS and sgemm"),
    "warmup": ("fastknn.warmup", "compile the numba kernels ahead of first use"),
}

EXAMPLE = """example:
  fastknn experiment --small --out study    # the MNIST study on 1,000 training digits
  fastknn experiment --help                 # its options
"""

# Where a bug is to be reported.
ISSUE_TRACKER = "fastknn's issue tracker"


class CommandLineError(Exception):
    """An expected failure of a command: the message names the file or option and what is wrong.

    :func:`main` prints it as one line and returns the exit status 2.
    """


class _UsageError(CommandLineError):
    """A command line that argparse cannot parse."""


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors raised as :class:`CommandLineError` (one line, status 2)."""

    def error(self, message):
        raise _UsageError(message)


def check_writable_file(path, option):
    """Raise :class:`CommandLineError` unless ``path`` can be written as a file; leave no file behind.

    For output written at the end of a long run: opening the path for
    appending meets what writing will (permissions, a folder of that name,
    a read-only file system, a pseudo-file) without changing a file that is
    there, and a file that was not there is removed again. It never blocks
    on a named pipe without a reader (that is an error too).

    Parameters
    ----------
    path : str or path-like
        The file the command will write.
    option : str
        The option that named it, such as ``"--json"``, for the message.
    """
    if not os.fspath(path):
        raise CommandLineError(f"{option} needs a file name")
    existed = os.path.lexists(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o666))
    except OSError as error:
        raise CommandLineError(f"{option} {path}: cannot write it: {error.strerror or error}") from None
    if not existed:
        os.remove(path)


def build_parser():
    """The argument parser with one sub-parser per command."""
    parser = _Parser(
        prog="fastknn",
        description="Exact k-nearest-neighbour classification.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"fastknn {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(sub)
        sub.set_defaults(handler=module.main)
    return parser


def _issue_tracker():
    """The project's issue tracker, from the package metadata where it names one."""
    from importlib import metadata

    try:
        urls = metadata.metadata("fastknn").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        name, _, url = entry.partition(",")
        if name.strip().lower() in ("issues", "bug tracker", "tracker"):
            return url.strip()
    return ISSUE_TRACKER


def main(argv=None):
    """Run the command line; returns the exit status (0, 2 for a usage or input error, 1 for a bug)."""
    prog = "fastknn"
    try:
        parser = build_parser()
        argv = sys.argv[1:] if argv is None else list(argv)
        if argv and argv[0] in COMMANDS:
            prog = f"fastknn {argv[0]}"
        args = parser.parse_args(argv)
        return args.handler(args)
    except CommandLineError as error:
        hint = f" (see {prog} --help)" if isinstance(error, _UsageError) else ""
        print(f"{prog}: error: {error}{hint}", file=sys.stderr)
        return 2
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        import traceback

        traceback.print_exc()
        print(
            f"{prog}: this is a bug in fastknn. Please report it, with the command line and the "
            f"traceback above, at {_issue_tracker()}.",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
