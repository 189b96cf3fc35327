"""Ctrl-C while the command line is still importing torch and the compiled core (a second or
two after `latentsweep ...` starts): one line and exit status 130, as the command line says once
it runs, instead of Python's traceback through torch's modules. Only for the command line: a
program that imports latentsweep keeps Python's KeyboardInterrupt."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading


def started_as_command() -> bool:
    """Whether this process is the `latentsweep` console script or `python -m latentsweep`."""
    argv = list(getattr(sys, "orig_argv", ()))
    if len(argv) >= 2 and os.path.basename(argv[1]) == "latentsweep":
        return True
    return any(flag == "-m" and module == "latentsweep" for flag, module in zip(argv, argv[1:]))


@contextlib.contextmanager
def quiet_while_importing():
    if (not started_as_command() or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def stop(signum, frame):  # nothing has started yet: nothing to clean up or keep
        os.write(2, b"latentsweep: interrupted: stopped by Ctrl-C\n")
        os._exit(130)

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
