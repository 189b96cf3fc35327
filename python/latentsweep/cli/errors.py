"""How the command line reports problems: one line on stderr, in the command line's words.

The library's messages name keyword arguments (``resume=True``); on the command line the same
advice names flags (``--resume``). :func:`one_line` does that translation, once, for every
message the CLI prints.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys

from ..encoding import ONE_DIMENSIONAL_HINT
from ..explanation import STOPPED_ADVICE

# How a decoder that takes structured codes [N, C, H, W] gets them on the command line (the
# library's advice names traverse's anchors and latent_shape=; the CLI's first call says this).
STRUCTURED_CODES = ("for a decoder that takes structured codes, pass --latent-shape C,H,W (e.g. 64,1,1 for a "
                    "DCGAN-style [N, 64, 1, 1] input), or use an encoder that returns codes of that shape")


class CliError(Exception):
    """An error the CLI reports as one line on stderr (exit status 1)."""


class UsageError(CliError):
    """Options that do not go together (``--shard`` without ``--store``), found before any work:
    said as argparse says its own usage errors (the command, exit status 2, its --help)."""


class PythonAdvice(CliError):
    """An error whose advice is for Python callers and is said in the library's words (no flags):
    ``open`` of a store that latentsweep.interpolate wrote, which no command writes."""


class StandardOutputError(CliError):
    """Writing the command's output to stdout failed (a full disk, a closed terminal)."""


class _NamedStandardOutput:
    """stdout whose write errors say that stdout failed (Python's own said only "[Errno 28] No
    space left on device", as if a store could not be written). A closed pipe stays a
    BrokenPipeError: the reader has what it wanted."""

    def __init__(self, stream):
        self._stream = stream

    def _named(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise StandardOutputError(f"cannot write to standard output: {error.strerror or error}") from error

    def write(self, text):
        return self._named(self._stream.write, text)

    def flush(self):
        return self._named(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def standard_output_named():
    """stdout's write errors as StandardOutputError while a command runs. A standard stream that
    is closed (``latentsweep open s.zarr >&-``: Python sets it to None) is os.devnull meanwhile,
    as Python's print() treats it: what goes to it is dropped (print went to None.write, an
    AttributeError said as a bug; the library's progress bar asked None whether it is a tty)."""
    stream, errors = sys.stdout, sys.stderr
    with contextlib.ExitStack() as closing:
        devnull = closing.enter_context(open(os.devnull, "w", encoding="utf-8")) \
            if stream is None or errors is None else None
        # a path that stdout's encoding cannot show (undecodable bytes under a strict UTF-8 locale,
        # é under PYTHONIOENCODING=ascii) is shown escaped, as on stderr: it failed the command
        # after its work, with a UnicodeEncodeError naming no option
        closing.enter_context(_escaped_when_unencodable(stream))
        sys.stdout = _NamedStandardOutput(stream or devnull)
        sys.stderr = errors or devnull
        try:
            yield
        finally:
            sys.stdout, sys.stderr = stream, errors


@contextlib.contextmanager
def _escaped_when_unencodable(stream):
    """``stream``'s encoding errors as backslash escapes meanwhile (a stream that cannot be
    reconfigured, such as a test's capture, is left as it is)."""
    before = getattr(stream, "errors", None)
    try:
        stream.reconfigure(errors="backslashreplace")
    except (AttributeError, ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors=before)


# What mode "empirical" spans on the command line (diagnosis_words names the inputs of a command without --data).
_EMPIRICAL_RANGE = "its range: the codes of {inputs}"
# Library wording -> command-line wording, applied in order (a pattern where the words carry a
# value: the store's batch size).
_CLI_WORDS = (
    (re.compile(r"planned with batch_size=(\d+)"), r"planned with --sweep-batch-size \1"),
    (re.compile(r"pass batch_size=(\d+) or 'auto'"), r"pass --sweep-batch-size \1 or auto (or leave it out)"),
    (re.compile(r"batch_size=(\d+) \(([\d,]+ codes a call: the whole grid; )?the decoder took"),
     r"--sweep-batch-size \1 (\2the decoder took"),
    ("pass a smaller batch_size, or 'auto' (it keeps within memory_budget)",
     "pass a smaller --sweep-batch-size, or leave it out (auto keeps the decoder within its memory budget)"),
    # (encode's batches of --data, made smaller where the encoder would take more than the memory)
    (re.compile(r"\bbatch_size=(\d+) \((?:([\d,]+) inputs a call: the whole data; )?the encoder took"),
     lambda m: f"--batch-size {m[1]} ({m[2] + ' inputs a call: all of --data; ' if m[2] else ''}the encoder took"),
    (re.compile(r"pass batch_size=(\d+) or less to choose the size yourself"),
     r"pass --batch-size \1 or less to choose the size yourself"),
    ("latentsweep.open_sweep(path) reads it as it is (latentsweep.sweep_status(path) says which units it lacks)",
     "`latentsweep open PATH` reads it as it is (or says which units it lacks)"),
    ("Call traverse(...) again with the same arguments and resume=True", "Run the same command again with --resume"),
    ("call traverse with the same arguments to resume it", "run the same command with --resume to continue it"),
    ("call traverse with that sweep's arguments to resume it", "run the command with that sweep's options and --resume"),
    # (a store of Python's interpolate, which no command writes: --overwrite, or another --store)
    ("holds a sweep that interpolate wrote, not traverse: call interpolate with that sweep's arguments to resume it",
     "holds a sweep that Python's latentsweep.interpolate wrote, which no command resumes (`latentsweep open PATH` "
     "reads it); give another --store"),
    ("traverse(..., out=path, resume=True)", "the same command with --resume"),
    ("traverse(..., resume=True)", "the same command with --resume"),
    (re.compile(r"holds a sweep with different parameters \(it differs in: ([\w, ]+)\)"),
     lambda m: f"holds a sweep made with other options: it differs in its {_store_fields(m.group(1))}"),
    (" (device=), read it with latentsweep.open_sweep,", " (--device), read it with `latentsweep open PATH`,"),
    ("read it with latentsweep.open_sweep,", "read it with `latentsweep open PATH`,"),
    ("latentsweep.open_sweep(path) says what is wrong", "`latentsweep open PATH` says what is wrong"),
    ("resume=True and overwrite=True", "--resume and --overwrite"),
    ("resume=True", "--resume"),
    ("overwrite=True", "--overwrite"),
    ("keep_outputs=False", "--no-outputs"),
    ("out='sweep.zarr'", "--store sweep.zarr"),
    ("out='", "--store '"),
    ("needs out=", "needs --store"),
    ("pass an out= on a filesystem", "pass a --store on a filesystem"),  # (a rank that reaches another store)
    ("shard=", "--shard"),
    ("mode='posterior'", "--mode posterior"),
    ("mode='empirical'", "--mode empirical"),
    ("mode='auto'", "--mode auto"),
    ("directions='clusters' needs clusters=K (KMeans) or labels", "--directions clusters needs --clusters K"),
    ("pass image_shape=(H, W) or (C, H, W)", "pass --image-shape H,W or C,H,W"),
    (re.compile(r"pass image_shape=\((\d+), (\d+), (\d+)\)"), r"pass --image-shape \1,\2,\3"),
    ("image_shape (", "--image-shape ("),
    ("image_shape must be", "--image-shape must be"),
    ("--image-shape: --image-shape ", "--image-shape "),  # (the CLI names the flag as the function: said once)
    ("sample_prior: D must be", "the latent size D (--latent-dim, or the product of --latent-shape) must be"),
    ("metrics.evaluate: metrics must be", "--metrics must be"),
    (re.compile(r"^\w+: dims\[\.\.\.\] must be"), "each of --dims must be"),
    ("span * prior_std must be", "--span * --prior-std must be"),
    ("traverse a smaller range (span=, prior_std=, or smaller values=)",
     "traverse a smaller range (--span, --prior-std)"),
    (": span must be", ": --span must be"),
    ("output_transform='sigmoid'", "--output-activation sigmoid"),
    ("method that adds it (vae.decode rather than vae.decoder)", "method that adds it (--decoder decode, for a model "
     "with a decode method)"),
    ("(image_shape= for outputs drawn as images says so)", "(--image-shape for outputs drawn as images says so)"),
    ("output_transform=", "--output-activation"),
    # (posterior samples: the parts by rows of --data are Python's too; the command has none)
    ("draw fewer (n=), or in parts with sample_offset= (or fewer rows at a time, with row_offset=)",
     "draw fewer (-n) or from fewer --inputs"),
    ("draw fewer (n=), or in parts with sample_offset=", "draw fewer (-n)"),
    ("draw fewer (n=), or in parts with offset=", "draw fewer (-n)"),
    (re.compile(r"(?:^metrics\.evaluate: )?sampling_votes\[\.\.\.\] must be"), "each of --votes must be"),
    # the metrics' sizes that cannot be held ("num_train=N and num_test=M: holding ...; lower num_train/num_test")
    (re.compile(r"(?<![\w.\[-])num_(train|test)=(\d+)(?= and |: )"), r"--num-\1 \2"),
    (re.compile(r"(?<![\w.-])sampling_votes\[0\]=(\d+) and sampling_votes\[1\]=(\d+)(?=: )"), r"--votes \1,\2"),
    ("lower sampling_votes[0]/sampling_votes[1]", "lower --votes"),
    (re.compile(r"(?<=lower )num_train(/num_test)?$"), lambda m: "--num-train" + ("/--num-test" if m[1] else "")),
    ("sampling_votes[0]", "--votes TRAIN"),  # (BetaVAE's training votes)
    (re.compile(r"(?:^traverse: )?shard (index|count) must"), lambda m: f"--shard's {'I' if m[1] == 'index' else 'N'} must"),
    ("factor_names has", "--factor-names has"),
    ("evaluate: bins must be", "evaluate: --bins must be"),
    ("pass fewer steps, anchors or dims", "pass fewer --steps, --anchors or --dims"),
    ("traverse fewer latents (dims=) or directions", "pass fewer --dims"),  # (the sensitivity [K, F])
    ("pass max_dims= (fewer rows), or gifs=False",  # (report's GIF)
     "pass fewer --dims (or --max-directions) or --steps"),
    (re.compile(r"(?<![\w.-])num_train=(\d+) is below"), r"--num-train \1 is below"),
    # the encoder's note on its inputs' shape (after one_line's "; "): the command has said the
    # --data's shape already
    (re.compile(r";? the encoder raised this on batch \d+ of the data, given inputs \[[^\]]*\] \w+(?:; its|$)"),
     lambda m: "; the encoder's" if m[0].endswith("its") else ""),
    ("pass them flat (data.flatten(1)), or put", "save --data flat, one row per input, or put"),
    ("is data what the model was trained on", "is --data what the model was trained on"),
    ("a decoder that takes structured codes gets them from anchors of that shape ([A, C, H, W]) or "
     "latent_shape=(C, H, W)", STRUCTURED_CODES),
    (re.compile(r"(?:clusters: k|explain: clusters) must be <= (\d+), got"),  # (k < N: what --data holds)
     lambda m: f"--clusters must be <= {m[1]} (fewer than the {int(m[1]) + 1} inputs in --data), got"),
    ("clusters: k must be", "--clusters must be"),
    ("explain: clusters must be", "--clusters must be"),
    (re.compile(r"fewer than clusters=(\d+) clusters; use clusters <= "), r"fewer than --clusters \1; use --clusters <= "),
    (re.compile(r"\(KMeans of clusters=(\d+)\)"), r"(KMeans of --clusters \1)"),
    ("metrics.evaluate: unknown metric(s)", "--metrics: unknown metric(s)"),
    ("datasets.LabelledArrays: factors ", "--factors: the factors "),
    (": output=", ": --decoder-output "),
    # the library's advice for Python callers, as what a command-line user can do
    (re.compile(r"\(for an encoder returning \(z, mu, logvar\), pass types\.MethodType\(lambda self, x: self\(x\)\[1:\], "
                r"model\)[^()]*\)"),
     "(for an encoder returning (z, mu, logvar), give the model a method that returns (mu, logvar), e.g. "
     "def encode_mu_logvar(self, x): return self.encoder(x)[1:], and pass --encoder encode_mu_logvar)"),
    (ONE_DIMENSIONAL_HINT, " (the codes must be [B, D], one row of D latents per input: give the model a method "
     "that returns them so and pass its name with --encoder)"),
    (re.compile(r"\bdata is (?:torch\.)?(\w+) while the encoder's parameters are (?:torch\.)?(\w+); pass "
                r"floating-point data \(e\.g\. data\.float\(\) / 255 for uint8 images\) unless the encoder takes "
                r"integers \(an Embedding\)"),
     r"(--data is \1 while the encoder's parameters are \2: int32/int64 data goes to the encoder as it is, for an "
     r"encoder that takes integers such as token ids; save --data as floating-point numbers otherwise)"),
    (re.compile(r"pass floating-point data \(e\.g\. data\.float\(\) / 255 for uint8 images\)"),
     "save --data as floating-point numbers (int32/int64 data is passed to the encoder as it is)"),
    ("encode: data is empty (no batches, or no rows)", "--data holds no inputs (0 rows)"),
    (re.compile(r"^(\w+): codes must be \[N, D\] with N >= (\d+) and D >= 1, got shape \((\d+), (\d+)\)"),
     lambda m: _too_few_codes(*m.groups()) or m.group(0)),
    (re.compile(r"^diagnose: posterior has (\d+) input\(s\); a diagnosis needs at least (\d+) \((.*)\)$"),
     r"--data needs at least \2 inputs for the diagnosis, got \1 (\3)"),
    (re.compile(r"^datasets\.LabelledArrays: observations must be \[N, \.\.\.\] with N >= (\d+), got shape \((\d+)[^)]*\)"),
     r"--data needs at least \1 observations, got \2"),
    # the diagnosis's advice (diagnose, demo) as the options of traverse and report
    (re.compile(r"\(dims=diagnosis\.active_dims: ([\d, -]+)\)"),
     lambda m: f"(--dims {_dims_flag(m[1])} traverses the active ones)"),
    ('mode "empirical" (reference=posterior.mu)', f"--mode empirical ({_EMPIRICAL_RANGE.format(inputs='--data')})"),
    ('(mode "prior", the default)', "(--mode prior, what --mode auto, the default, picks)"),
    ('mode "prior" (the default)', "--mode prior (what --mode auto, the default, picks)"),
    (re.compile(r'(?<![\w-])mode "\w+"(?:(?: or|, not) "\w+")*'), lambda m: "--" + m[0].replace('"', "")),
    (re.compile(r"^Recommendation \(mode '(\w+)'\)", re.MULTILINE), r"Recommendation (--mode \1)"),
    ("(latentsweep.principal_directions(posterior))", "(`latentsweep report --directions pca` draws them)"),
    # a keyword argument that the command line takes as the flag of the same name
    (re.compile(r"(?<![\w.-])feature_names\b"), "--feature-names"),  # (only report takes it)
    (re.compile(r"(?<![\w.-])(num_train|num_test|sampling_votes|factor_names|dims|seed)(?= (?:must|has) )"),
     lambda m: "--" + {"sampling_votes": "votes"}.get(m.group(1), m.group(1)).replace("_", "-")),
)
# What needs at least N codes, i.e. N inputs in --data, by the library function that says so.
_NEEDS_CODES = {"principal_directions": "principal directions (--directions pca, or auto for an autoencoder)",
                "clusters": "--clusters", "explain": "--clusters"}  # (explain's own: its clusters')
# A store's parameters (store_session.sweep_params: the sweep's identity) as the options of
# traverse, the one command with --store, that set them.
_STORE_FIELDS = {
    "keep_outputs": "statistics-only setting (--no-outputs)",
    "output_space": "output space (--output-activation, --decoder-output)",
    "mode": "mode (--mode)",
    "dims": "latents (--dims)",
    "grid": "grid's shape (--anchors, --dims, --steps)",
    "values": "values (--mode, --span, --steps, --prior-std; --data for --mode empirical)",
    "anchors": "anchors (--anchors, --data, the encoder)",
    "decoder": "decoder (--model, --weights, --decoder)",
    "out_shape": "outputs' shape (the decoder, --decoder-output)",
    "output_dtype": "outputs' dtype (the model's)",
    "latent_dim": "latent size (the encoder's)",
    "latent_shape": "latents' shape (the encoder's)",
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_OWN_PREFIX = re.compile(r"^(latentsweep: )+")
_NOTE_PREFIX = re.compile(r"^latentsweep(\.\w+)+: ")  # a note repeats the function its message names
_LIBRARY_PREFIX = re.compile(r"^latentsweep\.([\w.]+): ")


def _too_few_codes(fn: str, needed: str, rows: str, latents: str) -> str | None:
    """``codes must be [N, D] with N >= k`` from a library function, as the inputs --data lacks
    (the codes are the encoded --data); None when the rows were enough (D is the problem)."""
    if int(rows) >= int(needed):
        return None
    return (f"--data needs at least {needed} inputs for {_NEEDS_CODES.get(fn, fn.replace('_', ' '))}, "
            f"got {rows}")


def _dims_flag(ranges: str) -> str:
    """Latents as the library lists them (``0-3, 8``) as --dims takes them (``0,1,2,3,8``)."""
    runs = [[int(end) for end in run.split("-")] for run in ranges.split(", ")]
    return ",".join(str(d) for run in runs for d in range(run[0], run[-1] + 1))


def diagnosis_words(text: str, diagnosis, *, inputs: str = "--data") -> str:
    """A diagnosis's text (``str(diagnosis)``, its summary) as a command prints it: its advice in
    the command line's words (``--mode empirical``, ``--dims 0,1,2``), with the active latents
    listed where the library's text names them without a list (``dims=diagnosis.active_dims``).
    ``inputs`` names where the encoded inputs came from (the demo has no --data: its own)."""
    from ..diagnosis import format_dims

    listed = f"(dims=diagnosis.active_dims: {format_dims(diagnosis.active_dims or [])})"
    text = cli_words(text.replace("(dims=diagnosis.active_dims)", listed))
    return text.replace(_EMPIRICAL_RANGE.format(inputs="--data"), _EMPIRICAL_RANGE.format(inputs=inputs))


def _store_fields(fields: str) -> str:
    """The parameters a stored sweep differs in (``keep_outputs, values``), as the options that
    set them; one the command line has no option for keeps its name."""
    named = [_STORE_FIELDS.get(field, field) for field in fields.split(", ")]
    return " and ".join(filter(None, (", ".join(named[:-1]), named[-1])))


def cli_words(text: str) -> str:
    for library, cli in _CLI_WORDS:
        text = library.sub(cli, text) if isinstance(library, re.Pattern) else text.replace(library, cli)
    return text


def one_line(error: BaseException | str) -> str:
    """The message and its notes (e.g. what a stopped sweep kept) on one line: no ANSI escape
    codes, no repeated ``latentsweep:`` prefix (the CLI adds its own) nor the function's name
    again in a note, flags instead of keyword arguments."""
    parts = [str(error), *getattr(error, "__notes__", ())]
    parts = [_OWN_PREFIX.sub("", " ".join(_ANSI.sub("", part).split())) for part in parts]
    parts = parts[:1] + [_NOTE_PREFIX.sub("", part) for part in parts[1:]]
    parts = [part for part in parts if part]
    # A note follows its message after "; " unless the message ended a sentence ("boom the sweep
    # stopped after ..." read as one clause).
    text = "".join(part if i == 0 else (" " if parts[i - 1][-1] in ".;:!?" else "; ") + part
                   for i, part in enumerate(parts)) or type(error).__name__
    library = _LIBRARY_PREFIX.match(text)
    text = text.removeprefix("latentsweep.")
    text = text if isinstance(error, PythonAdvice) else cli_words(text)
    if library and text.startswith(f"{library.group(1)}: --"):
        # "explain: --directions clusters needs ...": the flag says where, the function's name
        # (of a Python API the user did not call) says nothing more
        text = text.removeprefix(f"{library.group(1)}: ")
    return text


@contextlib.contextmanager
def warnings_said():
    """The library's warnings as one line each, in the command line's words (not Python's
    "file.py:174: RuntimeWarning:" and the source line); far outliers clipped in the pictures
    said once, when the command ends, with how many pictures (a report drew four, traverse one
    per anchor, each advising vmin= and vmax=, which no command has)."""
    import warnings

    from ..plots._common import clipping_collected, clipping_text

    with warnings.catch_warnings(), clipping_collected() as clipped:
        warnings.showwarning = lambda message, category, *_, **__: _say_warning(str(message), category)
        try:
            yield
        finally:
            if clipped:
                say("warning", clipping_text(clipped))


def _say_warning(message: str, category: type[Warning]) -> None:
    """A warning, said by rank 0 under a launcher; one about a rank's own run (ProcessWarning: an
    out-of-memory retry on rank 1 alone, which the bitwise-identity promise points to) by that
    rank, naming it."""
    from .._checks import ProcessWarning

    if not (issubclass(category, ProcessWarning) and _other_rank()):
        say("warning", message)
    else:
        world, rank = _world_and_rank()
        say("warning", message, f" (rank {rank} of {world})", every_rank=True)


def say(kind: str, message: BaseException | str, where: str = "", *, every_rank: bool = False) -> None:
    """Prints ``latentsweep: KIND: message`` (and ``where``) on stderr (kind: error, warning,
    note). Under a launcher (torchrun) every rank runs the same command: its warnings and notes
    are said by rank 0 only (each was printed once per rank; ``every_rank``: one of this rank's
    own); errors by any rank (see :func:`say_failure`). Nothing when stderr is closed
    (print(file=None) wrote it to stdout, among the command's output)."""
    if sys.stderr is None or kind in ("warning", "note") and not every_rank and _other_rank():
        return
    print(f"latentsweep: {kind}: {one_line(message)}{where}", file=sys.stderr, flush=True)


def say_failure(error: BaseException, message: BaseException | str | None = None, kind: str = "error") -> None:
    """Says the error that ends the command (``message``: how, else ``error`` itself; ``kind``:
    error, or interrupted for Ctrl-C, which torchrun passes to every rank), once for a
    launcher's group: a failure every rank raised together (one rank failed and the others
    learnt it, or every rank refused the same input: :func:`..distributed.failure_said_by`) is
    said by the rank that failed first, naming it when it is not rank 0. The others wait until
    it has been said before they exit (torchrun ends every rank once one has failed: one that
    left first could end it before it spoke), and say it themselves if it was not."""
    from .. import distributed

    message = error if message is None else message
    said_by = distributed.failure_said_by(error)
    if said_by is None:  # this rank's own failure (alone, or one the others did not learn)
        say(kind, message)
        return
    world, rank = _world_and_rank()
    if said_by == rank:
        say(kind, message, f" (rank {rank} of {world})" if rank != 0 else "")
        distributed.tell_failure_said()
    elif not distributed.wait_until_failure_said(said_by):  # it died first: nothing is lost
        say(kind, message)


def _world_and_rank() -> tuple[int, int]:
    from ..distributed import world_and_rank

    try:
        return world_and_rank()
    except ValueError:  # (a WORLD_SIZE or RANK that is not a number: the command says so)
        return 1, 0


def _other_rank() -> bool:
    """A rank other than 0 of a launcher's group (WORLD_SIZE > 1 too: a stray RANK alone, as some
    clusters set, must not silence the error): it leaves usage errors, warnings and notes to rank 0."""
    return _world_and_rank()[1] != 0


def reason(error: BaseException) -> str:
    """``Type: first line of the message``, for errors raised by the user's code."""
    if isinstance(error, SystemExit):
        return f"SystemExit (it called sys.exit({error.code!r}))"
    text = _ANSI.sub("", str(error)).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def _source_files(objects) -> set[str]:
    """The files that define the user's callables: functions, bound methods, modules' classes."""
    files = set()
    for obj in objects:
        owner = getattr(obj, "__self__", None)
        for candidate in (obj, getattr(obj, "__func__", None), type(obj), owner, type(owner)):
            try:
                files.add(os.path.realpath(inspect.getsourcefile(candidate)))
            except (TypeError, OSError):  # built-ins, C types, None
                pass
    return files


def _raised_in(error: BaseException, files: set[str]) -> bool:
    """Whether the traceback passes through one of ``files``, or through an nn.Module's call (the
    library calls no module but the user's)."""
    module_calls = os.path.join("torch", "nn", "modules", "")
    frame = error.__traceback__
    while frame is not None:
        name = frame.tb_frame.f_code.co_filename
        if module_calls in name or os.path.realpath(name) in files:
            return True
        frame = frame.tb_next
    return False


# The library's advice after a sweep without a store stopped (Ctrl-C, or a decoder that failed),
# traverse's or explain's: traverse's --store keeps its units; the commands that traverse inside
# (report, demo) have none.
_STORE_ADVICE = re.compile(r"Pass out='sweep\.zarr' to keep partial results on disk and make long sweeps resumable\.|"
                           + re.escape(STOPPED_ADVICE))
# ... and its advice for outputs too large to keep in memory (traverse's --store or --no-outputs)
_MEMORY_ADVICE = "pass out='sweep.zarr' (on disk, resumable) or keep_outputs=False (statistics only)"


@contextlib.contextmanager
def no_store_to_keep(what: str):
    """For a command without --store (nor --no-outputs): the library's advice to keep a stopped
    sweep's work in a store (said as "Pass --store sweep.zarr", an option the command lacks)
    becomes ``what`` the command keeps, also in the CliError that :func:`user_code` made of the
    error (its notes); outputs too large for memory, fewer points."""
    try:
        yield
    except BaseException as error:
        notes = getattr(error, "__notes__", None)
        if notes:
            error.__notes__ = [_STORE_ADVICE.sub(what, note) for note in notes]
        if isinstance(error, ValueError) and _MEMORY_ADVICE in str(error):
            raise CliError(str(error).replace(_MEMORY_ADVICE, "pass fewer --steps, --anchors or --dims")) from error
        raise


@contextlib.contextmanager
def user_code(what: str, *callables):
    """Exceptions raised in the user's encoder or decoder (``callables``, and whatever they call:
    their traceback passes through the files that define them) become one CliError that says
    where they came from (``what``, e.g. "the encoder, on --data x.npy [40, 7] float32"). The
    library's own errors pass unchanged (a store's OSError is not the decoder's). Notes (what a
    stopped sweep kept) stay."""
    try:
        yield
    except CliError:
        raise
    except Exception as error:  # noqa: BLE001  (user code raises anything)
        if str(error).startswith("latentsweep") or not _raised_in(error, _source_files(callables)):
            raise
        wrapped = CliError(f"{what} raised {reason(error)}")
        for note in getattr(error, "__notes__", ()):
            wrapped.add_note(note)
        raise wrapped from error
