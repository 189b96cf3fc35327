"""How a fuzzed call ended, in classes that say whether latentsweep did its job (shared by the
fuzz worker, which runs in a capped subprocess, and the in-process weird-decoder tests).

- ``ok``: it returned, and an independent oracle agrees with the result;
- ``ok-unchecked``: it returned for inputs the oracle does not model;
- ``clear-error``: a ValueError/TypeError whose message names the latentsweep function (or
  Python's own signature error, which names the function and the argument);
- ``unclear-error``: a ValueError/TypeError that does not (e.g. numpy's "truth value of an
  array is ambiguous");
- ``decoder-error``: an exception raised inside the user's decoder, passed on unchanged;
- ``other-exception``: any other exception;
- ``wrong-result``: it returned something the oracle refutes.
A crash (segfault, abort) or a hang is seen by the process that runs the calls.
"""

from __future__ import annotations

import os
import re

OUTCOMES = ("ok", "ok-unchecked", "clear-error", "unclear-error", "decoder-error", "other-exception", "wrong-result")
PROBLEMS = ("unclear-error", "other-exception", "wrong-result")
# "Valid but enormous" requests fail to allocate under the worker's address-space cap: a
# clean RuntimeError from torch's allocator, not bad input.
ALLOCATION_FAILURES = ("can't allocate memory", "not enough memory", "DefaultCPUAllocator")
# Python's own signature errors name the function and the argument: clear enough.
SIGNATURE_ERRORS = re.compile(r"^\w+\(\) (got an unexpected keyword argument|missing \d+ required|takes \d+)")
# Code objects of decoders whose exceptions are the decoder's own (registered by the callers).
DECODER_CODES: set = set()


def raised_by_the_decoder(error: BaseException) -> bool:
    frame = error.__traceback__
    while frame is not None:
        code = frame.tb_frame.f_code
        if code in DECODER_CODES or f"torch{os.sep}nn{os.sep}modules" in code.co_filename:
            return True
        frame = frame.tb_next
    return False


def is_clear(error: BaseException) -> bool:
    message = str(error)
    return (message.startswith("latentsweep") and ": " in message) or bool(SIGNATURE_ERRORS.match(message))


def classify(call, oracle=None) -> tuple[str, str | None]:
    """(outcome, detail) of ``call()``; ``oracle(value)`` returns None when the value is right,
    ``"unchecked"`` when it cannot tell, else what is wrong."""
    try:
        value = call()
    except (ValueError, TypeError) as error:
        detail = f"{type(error).__name__}: {str(error)[:300]}"
        if raised_by_the_decoder(error):
            return "decoder-error", detail
        return ("clear-error" if is_clear(error) else "unclear-error"), detail
    except Exception as error:  # noqa: BLE001 - classified, judged by the caller
        detail = f"{type(error).__name__}: {str(error)[:300]}"
        return ("decoder-error" if raised_by_the_decoder(error) else "other-exception"), detail
    if oracle is None:
        return "ok-unchecked", None
    try:
        verdict = oracle(value)
    except RuntimeError as error:  # the reference cannot allocate a valid but enormous result
        if not any(s in str(error) for s in ALLOCATION_FAILURES):
            raise
        verdict = "unchecked"
    if verdict == "unchecked":
        return "ok-unchecked", None
    return ("ok", None) if verdict is None else ("wrong-result", verdict)
