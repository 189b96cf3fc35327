"""The ``latentsweep`` command line: ``latentsweep COMMAND --help`` for each command.

Errors are one line on stderr and a non-zero exit (no traceback unless ``--debug``).
"""

from __future__ import annotations

import argparse
import sys

from .loading import CliError

COMMANDS = ("demo", "diagnose", "traverse", "sample", "report", "info")


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(
        prog="latentsweep",
        description="Understand the latent space of (variational) autoencoders: diagnose the "
        "latent heads, traverse each latent over the prior's range, decode fast, draw it.",
        epilog="Models are named as 'package.module:attr' or 'file.py:attr' (an nn.Module, or a "
        "factory called without arguments), with .encoder/.decoder callables; weights come "
        "from --weights (.safetensors, or a torch state dict loaded with weights_only=True).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_demo(sub)
    commands.add_diagnose(sub)
    commands.add_traverse(sub)
    commands.add_sample(sub)
    commands.add_report(sub)
    commands.add_info(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("latentsweep: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, FileNotFoundError, RuntimeError, OSError) as error:
        if debug:
            raise
        print(f"latentsweep: error: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.removeprefix("latentsweep.")
