"""Runs ``latentsweep`` command lines in forked children and reports what happened to each.

Usage: ``python fuzz_cli_worker.py CASES.json``. CASES.json holds a list of
``{"name", "argv", "cwd"}``. For each case a child process (forked after latentsweep is imported,
so a case costs no interpreter start-up) runs ``latentsweep.cli.main(argv)`` in ``cwd``; the
parent waits at most TIMEOUT_S and prints one JSON line per case:

``{"name", "code", "signal", "timeout", "stdout", "stderr", "shadowed"}`` where ``code`` is the
exit status (ESCAPED when an exception escaped ``main``, which would be a traceback on the real
command line), ``signal`` the signal that killed the child (a crash), and ``shadowed`` the
standard-library modules whose entry in ``sys.modules`` the case replaced.

With ``LATENTSWEEP_FUZZ_CLI_CRASH=1`` the child of a case named "crash" segfaults and the one
named "escape" raises out of main: the test checks that the harness sees both.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback

import torch

import latentsweep.cli

ESCAPED = 97
TIMEOUT_S = 60.0


def run_child(case: dict, out_path: str, err_path: str) -> None:
    """In the forked child: never returns."""
    code = ESCAPED
    try:
        torch.set_num_threads(1)  # many small cases on a shared machine
        os.chdir(case["cwd"])
        stdout = open(out_path, "w")  # noqa: SIM115  (closed by os._exit's flush below)
        stderr = open(err_path, "w")  # noqa: SIM115
        os.dup2(stdout.fileno(), 1)
        os.dup2(stderr.fileno(), 2)
        sys.stdout, sys.stderr = stdout, stderr
        before = {name: getattr(sys.modules.get(name), "__file__", None) for name in sys.stdlib_module_names}
        if os.environ.get("LATENTSWEEP_FUZZ_CLI_CRASH") and case["name"] in ("crash", "escape"):
            if case["name"] == "crash":
                import ctypes

                ctypes.string_at(0)  # a real segfault
            raise RuntimeError("escaped on purpose")
        try:
            code = latentsweep.cli.main(list(case["argv"]))
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        shadowed = [
            name for name in sys.stdlib_module_names
            if name in sys.modules and getattr(sys.modules[name], "__file__", None) != before.get(name)
            and before.get(name) is not None
        ]
        with open(err_path + ".shadowed", "w") as file:
            json.dump(shadowed, file)
    except BaseException:  # noqa: BLE001  (anything escaping main is what we look for)
        traceback.print_exc()
        code = ESCAPED
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)


def run_case(case: dict, scratch: str) -> dict:
    out_path = os.path.join(scratch, "stdout.txt")
    err_path = os.path.join(scratch, "stderr.txt")
    for path in (out_path, err_path, err_path + ".shadowed"):
        if os.path.exists(path):
            os.remove(path)
    pid = os.fork()
    if pid == 0:
        run_child(case, out_path, err_path)
    deadline = time.monotonic() + TIMEOUT_S
    timeout = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            timeout = True
            break
        time.sleep(0.01)

    def read(path):
        try:
            with open(path, errors="replace") as file:
                return file.read()
        except FileNotFoundError:
            return ""

    shadowed = read(err_path + ".shadowed")
    return {
        "name": case["name"],
        "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) and not timeout else None,
        "timeout": timeout,
        "stdout": read(out_path)[-4000:],
        "stderr": read(err_path)[-4000:],
        "shadowed": json.loads(shadowed) if shadowed else [],
    }


def main() -> None:
    with open(sys.argv[1]) as file:
        cases = json.load(file)
    scratch = os.path.dirname(os.path.abspath(sys.argv[1]))
    for case in cases:
        print(json.dumps(run_case(case, scratch)), flush=True)


if __name__ == "__main__":
    main()
