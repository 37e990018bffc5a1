"""The ``fastknn`` command line: ``fastknn bench`` and ``fastknn experiment``."""

import argparse
import importlib
import sys

# sub-command -> (module, one-line help); each module has add_arguments(parser) and main(args).
COMMANDS = {
    "experiment": ("fastknn.experiment", "the whole MNIST study: K, metrics, augmentation, report"),
    "bench": ("fastknn.bench", "time fastknn against scikit-learn, FAISS and sgemm"),
    "warmup": ("fastknn.warmup", "compile the numba kernels ahead of first use"),
}


def build_parser():
    """The argument parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(prog="fastknn", description="Exact k-nearest-neighbour classification.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.main)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
