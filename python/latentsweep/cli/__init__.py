"""The ``latentsweep`` command line: ``latentsweep COMMAND --help`` for each command.

Errors are one line on stderr and a non-zero exit (no traceback unless ``--debug``), worded
for the command line (``--resume``, not ``resume=True``); see :mod:`.errors`. A value typed for
an option that cannot work with the data or model given is that option's usage error (exit 2).
Under torchrun only traverse runs (any other command is a usage error said by rank 0), warnings
and notes come from rank 0, and a failure every rank raises together (one rank failed and told
the others, or each refused the same input) is said once, by the rank that failed first (every
rank still exits non-zero).
"""

from __future__ import annotations

import argparse
import re
import os
import sys
import threading
import time

from ..sweep import stop_messages_as_notes
from .errors import (CliError, StandardOutputError, UsageError, _escaped_when_unencodable, _other_rank,
                     _world_and_rank, one_line, say_failure, standard_output_named, warnings_said)

# Errors whose message is the whole story (ours, and the library's argument checks).
EXPECTED_ERRORS = (CliError, ValueError, TypeError, FileNotFoundError, OSError)

# How long another rank waits, under torchrun, for rank 0 to say a usage error they share (and
# torchrun to end this rank), before it says its own: ranks reach their errors seconds apart
# under load, and a second line is the lesser harm.
RANK_0_SPEAKS_SECONDS = 5.0

COMMANDS = ("demo", "diagnose", "traverse", "open", "sample", "report", "metrics", "info")
# The one command that splits its work across the ranks of a launcher (torchrun); every other one
# ran in full on each rank, each printing its errors and writing the same files at once.
SPLIT_ACROSS_RANKS = ("traverse",)
# Options whose typed value is checked, by the library's own checks, against what the command
# loaded (the encoded --data, the model's outputs): one that cannot work with them is the
# option's usage error (exit 2), as any other bad value of it is, not the command's failure.
# (--span: its limit is the largest number of the encoder's codes' dtype, "--span must be <= 3.403e+38
# (the largest torch.float32)", and "--span * --prior-std must be <= ...", known once they are encoded.)
CHECKED_AFTER_LOADING = ("--clusters", "--dims", "each of --dims", "--image-shape", "--feature-names", "--mode",
                         "--shard", "--overwrite with --shard", "--span", "--decoder-output", "--factor-names")


class _Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one line that names the command and where its options
    are listed (argparse printed the whole usage block, 6-18 lines, before the error). Exit 2, as
    argparse. The commands' parsers are of this class too (add_subparsers makes its own kind)."""

    def error(self, message: str):
        alone = ""
        if _other_rank():  # under torchrun every rank parses the same line: rank 0 says it, once
            # torchrun ends every rank once one has exited, so leaving at once often cut rank 0
            # off before it spoke (no error printed at all in 1 of 4 runs); a bounded wait. A
            # rank still running after it has an error rank 0 did not have (its own options or
            # environment): it says it itself (it exited without a word, and torchrun then
            # stopped rank 0, which said nothing either).
            time.sleep(RANK_0_SPEAKS_SECONDS)
            alone = f"rank {_world_and_rank()[1]}'s alone; "
        command = self.prog.removeprefix("latentsweep").strip()
        where = f"{command}: " if command else ""
        # (a value with a newline or an escape code is shown escaped: still one line, no colours)
        message = _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)
        self.exit(2, f"latentsweep: error: {where}{message} ({alone}see '{self.prog} --help')\n")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _discard_standard_output(argv: list[str] | None) -> None:
    """What is left in stdout's buffer is dropped: its flush at exit would fail once more and
    print a second error. Only when main() runs the process's own command line (``argv`` None:
    the console script, ``python -m latentsweep``, under torchrun too), which exits next: a
    program that passed main() its words keeps its stdout (file descriptor 1 was /dev/null from
    then on, or main() raised where stdout has none, a StringIO)."""
    if argv is None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _shown(words: list[str]) -> str:
    """Words as the user typed them; an empty one or one with control characters quoted."""
    return " ".join(word if word and word.isprintable() else repr(word) for word in words)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    from . import commands

    parser = _Parser(
        prog="latentsweep",
        description="Understand the latent space of (variational) autoencoders: diagnose the "
        "latent heads, traverse each latent over the prior's range, decode fast, draw it.",
        epilog="Models are named as 'package.module:attr' or 'file.py:attr' (an nn.Module, or a "
        "factory called without arguments), with .encoder/.decoder callables; weights come "
        "from --weights (.safetensors, or a torch state dict loaded with weights_only=True).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"latentsweep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    parser.set_defaults(command_parsers=sub.choices)  # (an unknown option is its command's error)
    commands.add_demo(sub)
    commands.add_diagnose(sub)
    commands.add_traverse(sub)
    commands.add_open(sub)
    commands.add_sample(sub)
    commands.add_report(sub)
    from .metrics_command import add_metrics

    add_metrics(sub)
    commands.add_info(sub)
    for command_parser in sub.choices.values():  # also after the command, where users add it
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show tracebacks on errors")
    return parser


# A value that starts with "-" and looks like a number argparse does not know as one ("-1e3",
# "-inf", "-.5", "-1/2") reaches argparse attached to its option ("--span=-1e3"): else argparse
# takes it for an option and says "--span: expected one argument", although one was given.
_DASH_NUMBER = re.compile(r"-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _attached_values(argv: list[str]) -> list[str]:
    joined, rest = [], list(argv)
    while rest:
        word = rest.pop(0)
        if word.startswith("--") and "=" not in word and word != "--" and rest and _DASH_NUMBER.match(rest[0]):
            word = f"{word}={rest.pop(0)}"
        joined.append(word)
    return joined


def _before_the_command(argv: list[str]) -> tuple[str, list[str]] | None:
    """(the command, the words before it that are not the top level's own options), when there
    are any: ``latentsweep --json info``, ``latentsweep --out o3 info`` (argparse took o3 for the
    command). Nothing but --debug, --version and --help goes before a command."""
    command = next((word for word in argv if word in COMMANDS), None)
    if command is None:
        return None
    own = ("--debug", "--version", "--help")
    early = [word for word in argv[:argv.index(command)]
             if word != "-h" and not (word.startswith("--") and len(word) > 3 and any(o.startswith(word) for o in own))]
    return (command, early) if early else None


# A command swaps process-wide state while it runs (sys.stdout and sys.stderr, warnings.showwarning,
# the folders of its models on sys.path), each put back when it ends: commands that overlapped in
# two threads of a program put back each other's (sys.stdout left wrapped, and every later warning
# of the program said as the command line's). So they take turns (re-entrant: a model's own main()).
_ONE_COMMAND_AT_A_TIME = threading.RLock()


def main(argv: list[str] | None = None) -> int:
    """Runs the command line ``argv`` (default: the process's own, ``sys.argv[1:]``) and returns
    its exit status; argparse's usage errors, ``--help`` and ``--version`` raise SystemExit, as
    argparse does. A program that passes its words finds its standard streams, warnings filters
    and sys.path as they were (the model's module stays imported, as after any import); calls
    from several threads take turns."""
    from .loading import model_folders_on_path

    with _ONE_COMMAND_AT_A_TIME, model_folders_on_path():
        return _run(argv)


def _run(given: list[str] | None) -> int:
    argv = _attached_values(sys.argv[1:] if given is None else list(given))
    debug = "--debug" in argv
    try:
        parser = build_parser()
        early = _before_the_command(argv)
        if early is not None:
            command, words = early
            parser.error(f"unrecognized arguments before the command: {_shown(words)} (a command's options go "
                         f"after it: latentsweep {command} {_shown(words)} ...)")
        # (--help under an ASCII stdout, LANG=C or PYTHONIOENCODING=ascii: a help text's ± failed
        # with UnicodeEncodeError; escaped there, as what the commands print)
        with _escaped_when_unencodable(sys.stdout):
            args, unknown = parser.parse_known_args(argv)
        debug = args.debug  # (also given after the command, or abbreviated)
        if unknown:  # argparse reported them with the top-level usage, not the command's
            args.command_parsers[args.command].error(f"unrecognized arguments: {_shown(unknown)}")
        from .loading import check_path_options

        world = _world_and_rank()[0]
        if world > 1 and args.command not in SPLIT_ACROSS_RANKS:  # (said by rank 0; every rank exits 2)
            args.command_parsers[args.command].error(
                f"runs in one process; run it without torchrun (WORLD_SIZE={world}: only "
                f"{' and '.join(SPLIT_ACROSS_RANKS)} splits its work across ranks)")
        check_path_options(args)  # before any work: Path.exists() raises on such paths, naming no option
        # the library's warnings as one line each, in the command line's words
        with stop_messages_as_notes(), warnings_said():  # the sweep's advice after Ctrl-C, worded below
            with standard_output_named():
                try:
                    status = int(args.run(args) or 0)
                except UsageError as error:
                    args.command_parsers[args.command].error(one_line(error))
                except (ValueError, TypeError) as error:
                    if not one_line(error).startswith(CHECKED_AFTER_LOADING):
                        raise
                    args.command_parsers[args.command].error(one_line(error))
                sys.stdout.flush()  # (a full disk is said here, not as Python's exit message)
            return status
    except KeyboardInterrupt as interrupt:
        if debug:
            raise
        advice = " ".join(getattr(interrupt, "__notes__", ()))
        say_failure(interrupt, advice or "stopped by Ctrl-C", kind="interrupted")  # (once under torchrun)
        return 130
    except BrokenPipeError:  # `latentsweep open s.zarr | head -2`: the reader has all it wanted
        _discard_standard_output(given)
        return 0
    except Exception as error:  # noqa: BLE001  (the CLI's promise: one line, never a traceback)
        if debug:
            raise
        if isinstance(error, StandardOutputError):
            _discard_standard_output(given)
        # the library's own messages (a rank that failed, a store replaced meanwhile) say what
        # happened and what to do: not a bug, no traceback to offer
        if isinstance(error, EXPECTED_ERRORS) or str(error).startswith("latentsweep."):
            say_failure(error)
        else:  # a bug here or in the user's model: say what it was and how to see more
            say_failure(error, f"{type(error).__name__}: {one_line(error)} (run with --debug for the traceback)")
        return 1
