"""The commands of the ``latentsweep`` CLI: each ``add_*`` registers one subcommand whose
``run(args)`` does the work through the public Python API."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from .._checks import INT64_MAX, prior_std_outside_range, rows_nonfinite
from .._extension import _C
from ..encoding import encode
from ..explanation import explain
from ..distributed import shard_refusal, world_and_rank
from .errors import (STRUCTURED_CODES, CliError, PythonAdvice, UsageError, _other_rank, cli_words,
                     diagnosis_words, no_store_to_keep, say, user_code)
from .loading import load_array, load_model, model_part, part_device_dtype

# A flat output of a square size at least this large may be an image (8x8 digits and up).
MIN_SQUARE_IMAGE = 64
PRIOR_SAMPLES_PER_ROW = 8
ENCODER_NAMES = ("encoder", "encode")
DECODER_NAMES = ("decoder", "decode")


# ---- shared options ------------------------------------------------------------------------
def _model_options(parser: argparse.ArgumentParser, *, encoder: bool = True, decoder: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True, metavar="MODULE:ATTR",
                       help="the model: 'package.module:attr' or 'file.py:attr' (nn.Module or factory)")
    group.add_argument("--weights", metavar="FILE",
                       help=".safetensors, a torch state dict or a checkpoint holding one (weights_only); "
                       "without it the model keeps the weights its factory gives it, with a warning")
    group.add_argument("--weights-key", metavar="KEY",
                       help="the entry of a checkpoint dict that holds the state dict (default: the "
                       "file itself, or state_dict/model_state_dict/model/net/module)")
    if encoder:
        group.add_argument("--encoder", metavar="ATTR",
                           help="the model's encoder attribute, or a path such as vae.encode (default: encoder/encode)")
    if decoder:
        from ..decoding import OUTPUT_TRANSFORMS

        group.add_argument("--decoder", metavar="ATTR",
                           help="the model's decoder attribute, or a path such as vae.decode (default: decoder/decode)")
        group.add_argument("--decoder-output", metavar="KEY",
                           help="the part of a decoder output that is a tuple, dict or object: an index, key or "
                           "attribute (default: the first element, or 'sample', 'x_hat', ... in that order)")
        group.add_argument("--latent-shape", type=_latent_shape_flag, metavar="C,H,W",
                           help="the shape of one code as the decoder takes it, for a decoder that takes structured "
                           "codes (e.g. 64,1,1 for a DCGAN-style [N, 64, 1, 1] input) from an encoder that gives flat "
                           "[N, D] ones (D = C*H*W; default: the encoder's codes' shape; sample without --data: the "
                           "prior samples' shape)")
        group.add_argument("--output-activation", default="none", choices=("none", *OUTPUT_TRANSFORMS),
                           help="applied to the decoder's outputs before anything is measured or drawn: sigmoid "
                           "for a decoder that returns logits (default none; the report says which space)")
    group.add_argument("--device", type=_device, default=None, help="cpu, cuda, cuda:1 ... (default: the model's)")


# The defaults of --batch-size and report's --max-directions: the library's
ENCODER_BATCH_SIZE = inspect.signature(encode).parameters["batch_size"].default
EXPLAIN_MAX_DIRECTIONS = inspect.signature(explain).parameters["max_directions"].default


def _data_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=required, metavar="FILE",
                       help="inputs [N, ...] from .npy/.npz/.pt/.safetensors")
    group.add_argument("--key", help="which array of a file holding several")
    # (without a required --data, None: a --batch-size given without --data is told apart and refused)
    group.add_argument("--batch-size", type=_positive_count, default=ENCODER_BATCH_SIZE if required else None,
                       help=f"inputs per encoder call (default {ENCODER_BATCH_SIZE})")


def _out_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", default=default, metavar="DIR", help=f"output folder (default {default})")


def integer_at_least(low: int, high: int | None = None):
    """An argparse type: an integer >= low, and <= high when given (a usage error, exit 2,
    otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}, got {value}")
        return value

    return parse


_positive_int = integer_at_least(1)
# A count or size that the library checks with its integer rule (at most int64's largest,
# _checks.integer's default): a larger one is the flag's usage error, not the library's message
# naming its keyword (batch_size, steps).
_positive_count = integer_at_least(1, INT64_MAX)
# The sampling ops' limits (the library refuses more, exit 1, naming its n= and latent_size=):
# prior draws' rows, posterior draws per input, the latent size.
MAX_PRIOR_SAMPLES, MAX_POSTERIOR_SAMPLES, MAX_LATENT_SIZE = (
    int(_C.MAX_ROW_COUNTER), int(_C.MAX_SAMPLE_COUNTER), int(_C.MAX_LATENT_SIZE))


def _power(limit: int) -> str:
    """A power of two as ``2**k`` (the limits above are)."""
    return f"2**{limit.bit_length() - 1}"


def _positive_float(text: str) -> float:
    """A finite number > 0 (argparse's float() accepts nan, inf and negatives)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _prior_std(text: str) -> float:
    """A prior SD the diagnosis takes (the library's range: a value beyond it was refused after the
    model was loaded and the data encoded, with exit 1 and in the diagnosis' words)."""
    value = _positive_float(text)
    problem = prior_std_outside_range(value)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return value


def seed_below(power: int):
    """An argparse type: a seed, an integer in [0, 2**power) (a usage error otherwise, as any
    other bad number): sampling takes 64 bits, the metrics 32 (numpy's seeds)."""
    def seed(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not 0 <= value < 2**power:
            raise argparse.ArgumentTypeError(f"must lie in [0, 2**{power}), got {value}")
        return value

    return seed


def _sweep_batch_size(text: str) -> str | int:
    return "auto" if text == "auto" else _positive_count(text)


def _device(text: str) -> torch.device:
    """A device that exists here: naming CUDA on a build or machine without it is a usage
    error, not a traceback halfway through."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise argparse.ArgumentTypeError(f"{text!r}: {why} (torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text!r}: there are {torch.cuda.device_count()} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"expected cpu, cuda, cuda:N or mps, got {text!r}")
    return device


def _decoder_options(args) -> dict:
    """traverse's output= and output_transform= from --decoder-output and --output-activation."""
    chosen = getattr(args, "decoder_output", None)
    activation = getattr(args, "output_activation", "none")
    return {
        "output": int(chosen) if chosen is not None and chosen.lstrip("-").isdigit() else chosen,
        "output_transform": None if activation == "none" else activation,
    }


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _runs_as_built(args, model) -> bool:
    """No --weights for a model that has weights (parameters or buffers): it runs as built. A
    model without any has nothing --weights could load (an empty state dict is refused), so it
    is not warned about."""
    if args.weights is not None:
        return False
    return not isinstance(model, torch.nn.Module) or bool(model.state_dict())


def _loaded(args, *, need_encoder: bool = True) -> tuple[object, object | None, object | None]:
    if args.weights_key is not None and args.weights is None:  # (it was ignored: the model ran as built)
        raise UsageError("--weights-key names the entry of the --weights checkpoint that holds the state dict: "
                         "it needs --weights")
    model = load_model(args.model, args.weights, weights_key=args.weights_key)
    if _runs_as_built(args, model):
        say("warning", f"no --weights: {args.model} runs with the weights it was built with (random, "
            "unless it loads trained ones itself); the results describe those weights")
    if args.device is not None and isinstance(model, torch.nn.Module):
        model = model.to(args.device)
    names = lambda own, default: (own,) if own is not None else default  # noqa: E731  ('' is a name, refused)
    encoder = model_part(model, names(getattr(args, "encoder", None), ENCODER_NAMES), "encoder", "--encoder") \
        if hasattr(args, "encoder") and need_encoder else None
    decoder = model_part(model, names(getattr(args, "decoder", None), DECODER_NAMES), "decoder", "--decoder") \
        if hasattr(args, "decoder") else None
    # (said where the part fails, or the encoder gives plain codes)
    args.other_parts = {"encoder": _other_part_advice(model, encoder, args, "encoder"),
                        "decoder": _other_part_advice(model, decoder, args, "decoder")}
    return model, encoder, decoder


def _encode(encoder, model, args):
    """Encodes --data: floating data cast to the encoder's dtype (numpy saves float64 by
    default), integer ids kept as they are (an Embedding takes them), as latentsweep.encode does."""
    import latentsweep as ls
    data = load_array(args.data, key=args.key)
    if data.is_floating_point():
        data = data.to(part_device_dtype(encoder, model)[1])
    bad = rows_nonfinite(torch.atleast_1d(data))
    if bad is not None:
        rows = bad.nonzero().flatten()[:5].tolist()
        raise CliError(f"--data {args.data}: NaN or Inf in row(s) {rows} (as {str(data.dtype).removeprefix('torch.')}, "
                       "the encoder's dtype: values beyond its range become Inf)")
    other = _other_part(args, "encoder")
    try:
        with user_code(f"the encoder, on --data {args.data} of shape {list(data.shape)} "
                       f"{str(data.dtype).removeprefix('torch.')},", encoder, model):
            posterior = ls.encode(encoder, data, batch_size=args.batch_size, device=args.device,
                                  progress=_encode_progress(args))
    except CliError as error:
        raise (_advised(error, other) if other else error) from error.__cause__
    if other and posterior.logvar is None:
        say("warning", f"the model's 'encoder' gives plain codes [N, {posterior.latent_dim}], read as an autoencoder's; "
            f"{other} (for a VAE's posterior, mu and logvar)")
    return _shaped(posterior, getattr(args, "latent_shape", None)), data


def _encode_progress(args) -> bool | None:
    """The encoder's bar as the sweep's: none with --no-progress, and under torchrun rank 0's
    alone (every rank drew its own, and --no-progress hid only the sweep's)."""
    return False if getattr(args, "no_progress", False) or _other_rank() else None


def _other_part(args, role: str) -> str:
    """The advice _loaded found for the role ('' when none, or when the parts came otherwise)."""
    return getattr(args, "other_parts", {}).get(role, "")


def _other_part_advice(model, part, args, role: str) -> str:
    """Advice naming the model's method ('encode') where the default took its module attribute
    ('encoder') and the model has both: in AntixK's PyTorch-VAE or diffusers' AutoencoderKL the
    'encoder' module is the network's body and 'encode' returns the posterior ('decoder' and
    'decode' likewise); '' otherwise."""
    body, method = ENCODER_NAMES if role == "encoder" else DECODER_NAMES
    if part is None or getattr(args, role, None) is not None or part is not getattr(model, body, None) \
            or not callable(getattr(model, method, None)):
        return ""
    return f"the model also has '{method}', which may be the one to use: pass --{role} {method}"


@contextlib.contextmanager
def _decoder_advice(args):
    """A failure of the decoder's own code names the model's 'decode' where the default took its
    'decoder' body (see _other_part_advice)."""
    try:
        yield
    except CliError as error:
        other = _other_part(args, "decoder")
        if not other or error.__cause__ is None:
            raise
        raise _advised(error, other) from error.__cause__


def _advised(error: CliError, advice: str) -> CliError:
    """The error with advice added (and its notes kept)."""
    advised = CliError(f"{error}; {advice}")
    for note in getattr(error, "__notes__", ()):
        advised.add_note(note)
    return advised


def _shaped(posterior, shape: tuple[int, ...] | None):
    """The encoder's codes in --latent-shape's shape, as the decoder takes them (the flat codes of
    an encoder whose decoder takes [N, D, 1, 1])."""
    import latentsweep as ls

    if shape is None or shape == posterior.latent_shape:
        return posterior
    if len(posterior.latent_shape) > 1:
        raise UsageError(f"--latent-shape {_as_flag(shape)}, but the encoder gives codes of shape "
                         f"{_as_flag(posterior.latent_shape)}")
    if math.prod(shape) != posterior.latent_dim:
        raise UsageError(f"--latent-shape {_as_flag(shape)} holds {math.prod(shape)} latents, but the encoder gives "
                         f"{posterior.latent_dim}")
    return ls.Posterior(posterior.mu, posterior.logvar, latent_shape=shape)


def _out_dir(path: str) -> Path:
    folder = Path(path)
    store = enclosing_store(folder)
    if store is not None:
        raise CliError(f"--out {path!r} is inside the sweep store {str(store)!r}, whose folder holds only what its "
                       "sweep writes; pass another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # (the file itself: --out a/b with a file a named a/b)
        blocking = next((str(part) for part in (folder, *folder.parents) if part.exists() and not part.is_dir()), path)
        raise CliError(f"--out {path!r}: a file is in the way of the output folder"
                       + ("" if blocking == path else f" ({blocking!r})")) from None
    except OSError as error:
        raise CliError(f"--out {path!r}: cannot create the folder ({error.strerror})") from None
    return folder


@contextlib.contextmanager
def _out_folder(path: str):
    """``--out``'s folder, made before the command's work (so a path that cannot be written fails
    at once) and removed again if the command fails before writing anything into it."""
    existed = Path(path).exists()
    folder = _out_dir(path)
    try:
        yield folder
    except BaseException:
        with contextlib.suppress(OSError):  # (under torchrun another rank may have removed it first)
            if not existed and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


def _no_folder_in_the_way(folder: Path, args, names) -> None:
    """The files a command writes into --out, checked before its work: a folder of one's name was
    found after it, said as an OSError naming no option ("[Errno 21] Is a directory"), or in the
    library's words (report.html's as "--store", a picture's as path=)."""
    for name in names:
        if (folder / name).is_dir():
            raise CliError(f"--out {args.out!r}: a folder named {name} is in the way of the results")


def enclosing_store(path: Path) -> Path | None:
    """The sweep store that ``path`` is, or lies inside (a store's own files: its units and its
    effect array), or None."""
    from ..stores import looks_like_store

    return next((c for c in (path.resolve(), *path.resolve().parents) if looks_like_store(c)), None)


def _image_shape(out_shape: tuple[int, ...], hint: tuple[int, ...] | None, data: torch.Tensor | None = None):
    """The shape to draw outputs as images (the library's rule,
    :func:`latentsweep.explanation.output_image_shape`), or None for tabular outputs; flat
    outputs of a square size get a note suggesting --image-shape."""
    from ..explanation import output_image_shape

    shape = output_image_shape(out_shape, hint, data, fn="--image-shape")
    size = math.prod(out_shape)
    side = math.isqrt(size)
    if shape is None and len(out_shape) == 1 and size >= MIN_SQUARE_IMAGE and side * side == size:
        say("note", f"the decoder's outputs are flat vectors of {size} values, drawn as tabular features; "
            f"if they are {side}x{side} images, pass --image-shape {side},{side}")
    return shape


# ---- info ----------------------------------------------------------------------------------
def add_info(sub) -> None:
    parser = sub.add_parser("info", help="how latentsweep was built, and this machine",
                            description="Prints the build (torch version, CUDA, CPU kernels) and the devices.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(run=run_info)


def run_info(args) -> int:
    import latentsweep as ls

    info = ls.build_info()
    info["torch_running"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


# ---- diagnose ------------------------------------------------------------------------------
def add_diagnose(sub) -> None:
    parser = sub.add_parser(
        "diagnose", help="encode data and diagnose the latent space",
        description="Encodes --data with the model's encoder and reports, per latent: KL to the "
        "prior, active units, posterior SDs, the marginal, and flags for the usual mistakes "
        "(tiny posterior SDs, collapsed dims, ReLU on the mean or log-variance head).",
    )
    _model_options(parser, decoder=False)
    _data_options(parser, required=True)
    parser.add_argument("--prior-std", type=_prior_std, default=1.0, help="the prior's SD (default 1)")
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    parser.add_argument("--out", metavar="DIR", help="also write diagnosis.txt and diagnosis.json here")
    parser.set_defaults(run=run_diagnose)


def run_diagnose(args) -> int:
    # --out's folder is made before the work (a file in its way was found after the diagnosis)
    with _out_folder(args.out) if args.out else contextlib.nullcontext() as folder:
        if folder is not None:
            _no_folder_in_the_way(folder, args, ("diagnosis.txt", "diagnosis.json"))
        return _diagnose_into(folder, args)


def _diagnose_into(folder: Path | None, args) -> int:
    import latentsweep as ls

    model, encoder, _ = _loaded(args)
    posterior, _ = _encode(encoder, model, args)
    diagnosis = ls.diagnose(posterior, prior_std=args.prior_std)
    text = diagnosis_words(str(diagnosis), diagnosis)  # (its advice in flags; the JSON: the library's data)
    print(json.dumps(diagnosis.to_dict(), indent=2) if args.json else text)
    if folder is not None:
        (folder / "diagnosis.txt").write_text(text + "\n", encoding="utf-8")
        (folder / "diagnosis.json").write_text(json.dumps(diagnosis.to_dict(), indent=2) + "\n",
                                               encoding="utf-8")
    return 0


# ---- traverse ------------------------------------------------------------------------------
def _traversal_options(parser: argparse.ArgumentParser, *, dims_default: str = "all") -> None:
    import latentsweep as ls

    group = parser.add_argument_group("traversal")
    group.add_argument("--mode", default="auto", choices=("auto", *ls.modes.MODE_TABLE),
                       help="how far each latent moves; auto: what the diagnosis recommends "
                       "(prior for VAEs, empirical for plain autoencoders); "
                       + "; ".join(f"{m.name}: {m.use}" for m in ls.modes.MODE_TABLE.values()))
    group.add_argument("--span", type=_positive_float, default=2.0,
                       help="how far each latent moves, in SDs either side (default 2): the prior's SDs (--prior-std) "
                       "in the prior, absolute and quantile modes (quantile: at most "
                       f"{ls.modes.MAX_QUANTILE_SPAN:g}), each input's posterior SDs in posterior mode; empirical "
                       "mode takes the data's quantiles at the normal levels of +/- span SDs")
    group.add_argument("--steps", type=_positive_count, default=11, help="values per latent (default 11)")
    group.add_argument("--dims", type=_int_list, help=f"latents to traverse, e.g. 0,3,5 (default {dims_default})")
    group.add_argument("--anchors", type=_positive_count, default=8, help="traverse from the first N inputs (default 8)")
    group.add_argument("--prior-std", type=_prior_std, default=1.0, help="the prior's SD (default 1)")
    group.add_argument("--image-shape", type=_image_shape_flag, metavar="H,W",
                       help="draw flat outputs as images of this shape (H,W or C,H,W)")


def _check_span_fits_mode(args) -> None:
    """A --span beyond what an explicit --mode takes (the mode table's max_span: quantile's) is a
    usage error, said before loading (it was the library's error after it, exit 1)."""
    import latentsweep as ls

    limit = None if args.mode == "auto" else ls.modes.MODE_TABLE[args.mode].max_span
    if limit is not None and args.span > limit:
        raise UsageError(f"--mode {args.mode} takes --span <= {limit:g} (beyond it the prior's tail probability "
                         f"underflows float64), got {args.span:g}")


def _check_grid_fits(args, anchors: int = 1, dims: int | None = None) -> None:
    """The traversal values [A, K, S] (A anchors, K latents, S = --steps) must have a size in bytes
    that is an int64: a usage error naming the options. Before loading, with A = 1 and K = the
    --dims given (else 1), the least grid these options can make; after it, the real one."""
    from ..traversal import check_values_size

    dims = (len(args.dims) if args.dims else 1) if dims is None else dims
    try:
        check_values_size("traverse", anchors, dims, args.steps)  # (the library's rule; its error was exit 1)
    except ValueError:
        raise UsageError(f"--steps {args.steps} from {anchors} anchor(s) along {dims} latent(s) make A * K * S = "
                         f"{anchors * dims * args.steps} values, whose size in bytes overflows int64: pass fewer "
                         "--steps, --anchors or --dims") from None


def _resolve_mode(mode: str, posterior, prior_std: float = 1.0) -> str:
    import latentsweep as ls

    if mode != "auto" and ls.modes.MODE_TABLE[mode].needs_logvar and posterior.logvar is None:
        raise UsageError(f"--mode {mode} needs an encoder that gives a posterior (mu, logvar), but this one "
                         "gives plain codes (an autoencoder): use --mode empirical (what --mode auto picks)")
    return ls.diagnose(posterior, prior_std=prior_std).recommended_mode if mode == "auto" else mode


def _anchors(posterior, args):
    """The first --anchors inputs, saying so when there are fewer."""
    if args.anchors > len(posterior):
        say("note", f"--anchors {args.anchors}, but --data has {len(posterior)} inputs: traversing from all "
            f"{len(posterior)}")
    return posterior[: args.anchors]


def _traverse(decoder, posterior, anchors, args, *, mode: str, **kwargs):
    import latentsweep as ls

    with _decoder_advice(args), user_code(f"the decoder, on codes of {posterior.latent_dim} latents,", decoder):
        return ls.traverse(
            decoder, anchors, mode=mode, span=args.span, steps=args.steps, dims=args.dims,
            prior_std=args.prior_std, reference=posterior.mu if ls.modes.MODE_TABLE[mode].needs_reference else None,
            device=args.device, **_decoder_options(args), **kwargs,
        )


def add_traverse(sub) -> None:
    parser = sub.add_parser(
        "traverse", help="traverse each latent and decode the grid",
        description="Encodes --data, traverses each latent from the first --anchors inputs, "
        "decodes every grid point and writes the statistics (traversal.npz: dims, labels, latent_shape, values, "
        "effect, dim_effect, ranking, sensitivity; bfloat16 values, which numpy lacks, as float32) and, for image "
        "outputs, one grid picture per anchor.",
    )
    _model_options(parser)
    _data_options(parser, required=True)
    _traversal_options(parser)
    group = parser.add_argument_group("sweep")
    group.add_argument("--sweep-batch-size", type=_sweep_batch_size, default="auto",
                       help="codes per decoder call: auto or an integer >= 1 (default auto)")
    group.add_argument("--store", metavar="PATH", help="keep outputs in a resumable store (.zarr or .npy)")
    group.add_argument("--resume", action="store_true", help="continue the sweep in --store")
    group.add_argument("--overwrite", action="store_true", help="replace the sweep in --store")
    group.add_argument("--no-outputs", action="store_true", help="keep only the statistics")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    group.add_argument("--shard", type=_shard, metavar="I/N",
                       help="compute only shard I of N into --store, I from 0 (a Slurm array --array=0-(N-1): "
                       "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT); under torchrun the ranks split the sweep by themselves")
    _out_option(parser, "latentsweep-out")
    parser.set_defaults(run=run_traverse)


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    try:
        return int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N, e.g. 0/4, got {text!r}") from None


def _first_code(posterior) -> torch.Tensor:
    """The first input's code as the decoder takes it (``[1, *latent_shape]``), for checks on
    one decoded output before the long work."""
    return posterior.mu[:1].view(1, *posterior.latent_shape)


def run_traverse(args) -> int:
    _check_span_fits_mode(args)
    _check_grid_fits(args)
    world, _ = world_and_rank()
    if world > 1 and args.store is None and not args.no_outputs:
        raise UsageError(f"with {world} processes, pass --store sweep.zarr (one store all ranks write into) "
                         "or --no-outputs")
    # (the library's rule, said before every rank loads its inputs)
    if args.shard is not None and (refusal := shard_refusal(world)) is not None:
        raise UsageError(cli_words(refusal))
    if args.shard is not None and args.store is None:
        raise UsageError("--shard needs --store (the store the shards share)")
    if args.resume and args.store is None:
        raise UsageError("--resume needs --store (the store of the sweep to continue)")
    if args.resume and args.overwrite:  # (a usage error, said before loading; the library's said it as exit 1)
        raise UsageError("--resume continues the sweep in --store and --overwrite replaces it: pass one of them")
    if args.no_outputs and args.image_shape is not None:  # (no outputs kept: no pictures, and nothing said)
        raise UsageError("--image-shape says how to draw the outputs, which --no-outputs does not keep: pass one of "
                         "them")
    if args.overwrite and args.store is None:
        raise UsageError("--overwrite replaces a stored sweep: it needs --store (--out's files are always replaced)")
    with contextlib.ExitStack() as kept:  # (--out's folder, kept until the sweep's files are written)
        with _agreed_by_every_rank(args.device):  # (the sweep agrees by itself)
            if args.store is not None and Path(args.store).resolve() in (Path(args.out).resolve(),
                                                                         *Path(args.out).resolve().parents):
                raise CliError(f"traverse: --out {args.out!r} is --store {args.store!r} or inside it: a store's "
                               "folder holds only what the sweep writes; pass another --out")
            if args.store is not None and enclosing_store(Path(args.store).parent) is not None:
                raise CliError(f"--store {args.store!r} is inside the sweep store "
                               f"{str(enclosing_store(Path(args.store).parent))!r}, whose folder holds only what its "
                               "sweep writes; pass another --store")
            folder = kept.enter_context(_out_folder(args.out))
            pictures = [] if args.no_outputs else [  # (the anchors' pictures this run may write)
                p.name for p in folder.iterdir() if (m := _PICTURE.fullmatch(p.name)) and int(m.group(1)) < args.anchors]
            _no_folder_in_the_way(folder, args, ["traversal.npz", *sorted(pictures)])  # found now, not after the sweep
            inputs = _traversal_inputs(args)
        return _traverse_into(folder, args, *inputs)


@contextlib.contextmanager
def _agreed_by_every_rank(device: torch.device | None):
    """Under torchrun, the process group joined before the command loads its inputs, and every
    rank told whether the others loaded theirs: each rank printed the same error (a missing --data)
    before the sweep joined the group; now the first rank that failed says it once, a failure one
    rank alone hits (a file missing on one node) is said by that rank, and every rank exits
    non-zero (:func:`.errors.say_failure`). The group is joined as the sweep joins it (backend and
    device by the same rules) and the sweep then uses it; a group created so is destroyed when the
    process exits. Alone (no launcher), nothing is joined and nothing waits."""
    from .. import distributed

    workers = distributed.join("latentsweep.traverse", None, device)  # (as traverse joins it)
    try:
        yield
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - the other ranks learn it, then it is raised
        workers.agree(error)  # (Ctrl-C, which torchrun passes to every rank, is said once, as in the sweep)
        raise
    workers.agree()


def _traversal_inputs(args) -> tuple:
    """What traverse loads before its sweep: (the decoder, the posterior of --data, the data, the
    mode), checked (a decoded code against --image-shape)."""
    model, encoder, decoder = _loaded(args)
    posterior, data = _encode(encoder, model, args)
    mode = _resolve_mode(args.mode, posterior, args.prior_std)
    if args.image_shape is not None:  # checked on one decoded code, not after the sweep
        from ..explanation import output_image_shape

        one = _decoded(_first_code(posterior), decoder, model, args, "latentsweep traverse")
        if isinstance(one, torch.Tensor) and one.dim() >= 2:
            output_image_shape(tuple(one.shape[1:]), args.image_shape, data, fn="--image-shape")
    return decoder, posterior, data, mode


def _traverse_into(folder: Path, args, decoder, posterior, data, mode: str) -> int:
    import latentsweep as ls

    if args.steps == 1:
        say("note", "--steps 1: one value per latent (the start of its range): effects, but no slopes "
            "(the sensitivity is 0)")
    anchors = _anchors(posterior, args)
    _check_grid_fits(args, len(anchors), len(args.dims) if args.dims else posterior.latent_dim)
    result = _traverse(
        decoder, posterior, anchors, args, mode=mode, batch_size=args.sweep_batch_size,
        out=args.store, keep_outputs=not args.no_outputs, resume=args.resume, overwrite=args.overwrite,
        progress=False if args.no_progress else None, shard=args.shard,
    )
    if isinstance(result, ls.StoreStatus):  # a shard of a sweep that other shards still work on
        print(result.summary())
        return 0
    if world_and_rank()[1] != 0 and args.shard is None:
        return 0  # one summary and one set of files, from rank 0
    _write_traversal(folder, result, args, data)
    return 0


# The files a command writes into --out, and the list of those it wrote last (with each file's
# size and modification time): a run that writes fewer (fewer anchors; a sample whose outputs are
# not images) removes the files of the last run that it did not rewrite, and only those,
# untouched since (never a user's file of that name).
_TRAVERSAL_FILES = re.compile(r"traversal(-anchor\d+\.png|\.npz)")
_SAMPLE_FILES = re.compile(r"codes\.npy|decoded\.npy|samples\.png")
_PICTURE = re.compile(r"traversal-anchor(\d+)\.png")
_WRITTEN_LIST = {"traverse": ".latentsweep-traverse.json", "sample": ".latentsweep-sample.json"}


def _fingerprint(path: Path) -> list[int]:
    status = path.stat()
    return [status.st_size, status.st_mtime_ns]


def _last_written(folder: Path, command: str, own: re.Pattern) -> dict[str, list[int]]:
    try:
        files = json.loads((folder / _WRITTEN_LIST[command]).read_text(encoding="utf-8"))["files"]
        return {name: list(mark) for name, mark in files.items() if own.fullmatch(name)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # none, or not ours: remove nothing
        return {}


def _own_files_before(folder: Path, own: re.Pattern) -> set[str]:
    return {p.name for p in folder.iterdir() if own.fullmatch(p.name) and p.is_file()}


def _record_written(folder: Path, command: str, own: re.Pattern, written: list[str], before: set[str],
                    args) -> None:
    """After ``command`` wrote ``written`` into --out (which held ``before`` of its kind): removes
    the files it wrote last time that this run did not rewrite (untouched since), records this
    run's, and says what it replaced (a second `sample` left the first one's samples.png beside
    files it did not picture, without a word)."""
    last = _last_written(folder, command, own)
    stale = [name for name, mark in sorted(last.items()) if name not in written
             and (folder / name).is_file() and _fingerprint(folder / name) == mark]
    for name in stale:
        (folder / name).unlink()
    (folder / _WRITTEN_LIST[command]).write_text(
        json.dumps({"files": {name: _fingerprint(folder / name) for name in written}}), encoding="utf-8")
    replaced = sorted(before & set(written))
    if replaced or stale:
        say("note", f"--out {args.out}: replaced {len(replaced)} file(s) of an earlier run"
                    + (f" and removed {len(stale)} it wrote that this run did not" if stale else ""))


def _write_traversal(folder: Path, result, args, data) -> None:
    from ..stores import stored_array

    before = _own_files_before(folder, _TRAVERSAL_FILES)
    np.savez(  # (bfloat16, which numpy lacks, as float32: the stores' rule)
        folder / "traversal.npz", dims=stored_array(result.dims), values=stored_array(result.values),
        effect=stored_array(result.effect), dim_effect=stored_array(result.dim_effect),
        ranking=stored_array(result.ranking), sensitivity=stored_array(result.sensitivity),
        anchor_outputs=result.anchor_outputs.float().numpy(),
        latent_shape=np.array(result.latent_shape, dtype=np.int64), labels=np.array(result.labels),
    )
    written = ["traversal.npz"]
    shape = _image_shape(result.out_shape, args.image_shape, data)
    if shape is not None and result.outputs is not None:
        from ..plots import traversal_grid
        from ..plots._common import SAVE_DPI, shown_tile_pixels

        for a in range(result.values.shape[0]):  # (tiles no larger than the saved picture shows)
            traversal_grid(result, anchor=a, image_shape=shape, max_tile_size=shown_tile_pixels(SAVE_DPI),
                           path=folder / f"traversal-anchor{a}.png")
            written.append(f"traversal-anchor{a}.png")
    _record_written(folder, "traverse", _TRAVERSAL_FILES, written, before, args)
    print(result.summary())
    print(f"wrote {', '.join(written[:3])}{' ...' if len(written) > 3 else ''} to {folder}")


# ---- open ----------------------------------------------------------------------------------
def add_open(sub) -> None:
    parser = sub.add_parser(
        "open", help="summarise a stored sweep (complete or not)",
        description="Reads the sweep stored at PATH (read-only, checking every unit's checksums) and "
        "prints its summary, or which work units are still missing.",
    )
    parser.add_argument("path", metavar="PATH", help="the store (.zarr, or the .npy of an .npy store)")
    parser.set_defaults(run=run_open)


def run_open(args) -> int:
    import latentsweep as ls

    try:
        # One check of every unit's record and rows when the store is complete (a status first
        # read a large store twice); the status only for a store open_sweep refuses.
        try:
            opened = ls.open_sweep(args.path)
        except ValueError:
            status = ls.sweep_status(args.path)  # (its own error, if any, is the one said)
            if not status.complete:  # the status, then why open_sweep refuses it and what to do (exit 1)
                print(status.summary())
            raise
        print(opened.summary())
    except ValueError as error:  # in open's words: the library's advice names its writer's arguments
        from .._checks import user_path
        from ..stores import recorded_params, writer_of
        from ..sweep import unfinished_advice

        text = str(error).removeprefix("latentsweep.sweep_status: ").removeprefix("latentsweep.open_sweep: ")
        named = [word for word in ("resume=True", "overwrite=True") if word in text]
        # (None: its parameters cannot be read, so neither can who wrote it; it was said as traverse)
        params = recorded_params(user_path(args.path))
        writer = None if params is None else writer_of(params)
        if writer == "interpolate":  # no command writes it: its advice stays Python's
            # (said of the arguments the advice names: both were said of an advice that named one)
            raise PythonAdvice(f"open: {text}" + (f" ({' and '.join(named)}: argument{'s' * (len(named) > 1)} of "
                                                  "latentsweep.interpolate, which wrote it)" if named else "")) from None
        unfinished = unfinished_advice("traverse")
        if unfinished in text:
            text = text.replace(unfinished, "Finish it: run the traverse command that wrote it again with --resume, "
                                             "or its missing --shard runs")
        elif named:
            plural = "s" * (len(named) > 1)
            text += f" ({' and '.join(cli_words(word) for word in named)}: option{plural} of the traverse command"
            # (keyword names without "=True", which would be said as the flags)
            text += " that wrote it)" if writer else (
                f", if it wrote it; a store of Python's latentsweep.interpolate takes its "
                f"{' and '.join(word.removesuffix('True') for word in named)} argument{plural})")
        raise CliError(f"open: {text}") from None
    return 0


# ---- sample --------------------------------------------------------------------------------
def add_sample(sub) -> None:
    parser = sub.add_parser(
        "sample", help="draw codes (posterior or prior) and decode them",
        description="With --data: n reparameterised samples from each input's posterior "
        "(mu + sigma * eps); without: n codes from the N(0, prior_std^2) prior. Writes codes.npy (in the model's "
        "dtype; bfloat16, which numpy lacks, as float32), decoded.npy (float32) and, for image outputs, samples.png.",
    )
    _model_options(parser)
    _data_options(parser, required=False)
    parser.add_argument("-n", "--num-samples", type=integer_at_least(1, MAX_PRIOR_SAMPLES), default=16,
                        help=f"samples (per input with --data; default 16): at most {_power(MAX_PRIOR_SAMPLES)}, "
                        f"{_power(MAX_POSTERIOR_SAMPLES)} with --data")
    parser.add_argument("--inputs", type=_positive_int, default=None,
                        help="with --data: the first N inputs (default 4)")
    parser.add_argument("--seed", type=seed_below(64), default=0, help="random seed in [0, 2**64) (default 0)")
    parser.add_argument("--prior-std", type=_positive_float, default=None,  # (None: told apart when given)
                        help="the prior's SD, for prior samples (without --data; default 1)")
    parser.add_argument("--latent-dim", type=integer_at_least(1, MAX_LATENT_SIZE),
                        help=f"latent size D for prior samples, at most {_power(MAX_LATENT_SIZE)} (default: the "
                        "model's latent_dim, latent_size or z_dim attribute, else the input size of the decoder's "
                        "first Linear layer, else the one input size of the model's Linear layers that the decoder accepts)")
    parser.add_argument("--image-shape", type=_image_shape_flag, metavar="H,W",
                        help="draw flat outputs as images of this shape (H,W or C,H,W)")
    _out_option(parser, "latentsweep-out")
    parser.set_defaults(run=run_sample)


def _as_flag(shape: tuple[int, ...]) -> str:
    """A shape as --latent-shape takes it: ``4,8,8``."""
    return ",".join(map(str, shape))


def _shape(expected: str, lengths: tuple[int, ...] | None = None):
    """An argparse type: a shape given as comma-separated integers >= 1 (of one of ``lengths``
    when given), the one rule of the options that take a shape; ``expected`` says the form. An
    empty value is a usage error, not "no shape" (leave the option out for that)."""
    def parse(text: str) -> tuple[int, ...]:
        shape = tuple(_int_list(text))
        if not shape or min(shape) < 1 or lengths is not None and len(shape) not in lengths:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return shape

    return parse


_latent_shape_flag = _shape("comma-separated integers >= 1, e.g. 4,8,8")
# (H, W) or (C, H, W): what the library's image_shape takes (plots._images.image_shape_of)
_image_shape_flag = _shape("H,W or C,H,W: 2 or 3 comma-separated integers >= 1, e.g. 28,28", lengths=(2, 3))


def _prior_codes(args, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """-n codes from N(0, --prior-std²) in the decoder's dtype (codes.npy holds what the decoder
    got: float32 draws were saved for a float64 or float16 model), refused when --prior-std puts
    them beyond that dtype's range (Inf codes, blamed on the decoder) or rounds them to 0."""
    import latentsweep as ls

    dtype = dtype if dtype.is_floating_point else torch.get_default_dtype()
    info, name = torch.finfo(dtype), str(dtype).removeprefix("torch.")
    if args.prior_std < info.tiny:
        raise UsageError(f"--prior-std {args.prior_std:g} is below the smallest normal {name} ({info.tiny:.3g}), "
                         "the decoder's dtype: the samples would lose their precision or round to 0; pass a larger "
                         "--prior-std")
    draws = ls.sample_prior(args.num_samples, dim, seed=args.seed, dtype=dtype)
    reach = float(draws.abs().max()) * args.prior_std  # (a Python float: inf, not an overflow, beyond 1.8e308)
    if reach > info.max:
        raise UsageError(f"--prior-std {args.prior_std:g}: the samples reach {reach:.3g}, beyond the largest "
                         f"{name} ({info.max:.3g}), the decoder's dtype; pass a smaller --prior-std")
    return draws * args.prior_std


def run_sample(args) -> int:
    if args.inputs is not None and not args.data:
        raise UsageError("--inputs picks inputs of --data (posterior samples); without --data the codes come "
                         "from the prior")
    # (options that would otherwise do nothing, silently)
    if not args.data and (given := [flag for flag, value in (("--key", args.key), ("--encoder", args.encoder),
                                                             ("--batch-size", args.batch_size)) if value is not None]):
        raise UsageError(f"{' and '.join(given)} concern{'s' if len(given) == 1 else ''} the inputs of --data "
                         "(posterior samples); without --data the codes come from the prior")
    if args.data and args.prior_std is not None:
        raise UsageError("--prior-std is the prior's SD, for prior samples; with --data the codes come from each "
                         "input's posterior")
    if args.data and args.num_samples > MAX_POSTERIOR_SAMPLES:  # (the library's limit, said before loading)
        raise UsageError(f"-n/--num-samples must be <= {MAX_POSTERIOR_SAMPLES} ({_power(MAX_POSTERIOR_SAMPLES)}) with "
                         f"--data (samples per input), got {args.num_samples}")
    if not args.data and args.latent_shape is not None and math.prod(args.latent_shape) > MAX_LATENT_SIZE:
        raise UsageError(f"--latent-shape {_as_flag(args.latent_shape)}: the prior samples' latent size "
                         f"{math.prod(args.latent_shape)} must be <= {MAX_LATENT_SIZE} ({_power(MAX_LATENT_SIZE)})")
    args.prior_std = 1.0 if args.prior_std is None else args.prior_std
    args.batch_size = ENCODER_BATCH_SIZE if args.batch_size is None else args.batch_size
    with _out_folder(args.out) as folder:
        _no_folder_in_the_way(folder, args, ("codes.npy", "decoded.npy", "samples.png"))
        return _sample_into(folder, args)


def _sample_into(folder: Path, args) -> int:
    import latentsweep as ls
    from ..stores import stored_array
    from .samples import latent_dim, save_samples_picture

    model, encoder, decoder = _loaded(args, need_encoder=bool(args.data))
    args.inputs = 4 if args.inputs is None else args.inputs
    data = None  # (with --data: flat outputs of as many values as each input are drawn in its shape)
    if args.data:
        posterior, data = _encode(encoder, model, args)
        if posterior.logvar is None:
            # (the way forward: prior samples, of the size its codes have)
            shape = posterior.latent_shape
            size = f"--latent-dim {shape[0]}, the size" if len(shape) == 1 else \
                f"--latent-shape {_as_flag(shape)}, the shape"
            raise CliError("the encoder gives plain codes (an autoencoder): there is no posterior to sample; "
                           f"leave --data out to decode samples of the prior ({size} of its codes)")
        if args.latent_dim is not None and args.latent_dim != posterior.latent_dim:
            raise UsageError(f"--latent-dim {args.latent_dim}, but the encoder gives {posterior.latent_dim} latents")
        if args.inputs > len(posterior):
            say("note", f"--inputs {args.inputs}, but --data has {len(posterior)} inputs: sampling from all of them")
        chosen = posterior[: args.inputs]
        # (in the decoder's shape: [n, *latent_shape] for a structured latent)
        codes = ls.sample(chosen.mu, chosen.logvar, args.num_samples, seed=args.seed).view(-1, *chosen.latent_shape)
        per_row, row_label, column_label = args.num_samples, "input {}".format, "sample"
        title = f"{args.num_samples} posterior samples per input (mu + sigma * eps), seed {args.seed}"
    else:
        shape = args.latent_shape
        if shape is not None and args.latent_dim is not None and args.latent_dim != math.prod(shape):
            raise UsageError(f"--latent-dim {args.latent_dim}, but --latent-shape {_as_flag(shape)} holds "
                             f"{math.prod(shape)} latents")
        dim, source = (math.prod(shape), "--latent-shape") if shape is not None else \
            latent_dim(model, decoder, args.latent_dim)
        codes = _prior_codes(args, dim, part_device_dtype(decoder, model)[1])
        codes = codes if shape is None else codes.view(-1, *shape)  # (in the decoder's shape)
        per_row, column_label = PRIOR_SAMPLES_PER_ROW, "sample (row start + column)"
        row_label = lambda r: str(r * per_row)  # noqa: E731
        title = f"{args.num_samples} samples from the prior N(0, {args.prior_std:g}²), D={dim} ({source}), seed {args.seed}"
    decoded = _decoded(codes, decoder, model, args, "latentsweep sample",
                       size_from="--latent-dim" if not args.data and source == "--latent-dim" else None)
    if not isinstance(decoded, torch.Tensor) or decoded.dim() < 2 or decoded.shape[0] != len(codes):
        what = tuple(decoded.shape) if isinstance(decoded, torch.Tensor) else type(decoded).__name__
        raise CliError(f"the decoder must return a [B={len(codes)}, ...] tensor, got {what}")
    decoded = decoded.cpu()
    if not bool(torch.isfinite(decoded).all()):
        raise CliError("the decoder returned NaN/Inf for some of the sampled codes")
    before = _own_files_before(folder, _SAMPLE_FILES)
    np.save(folder / "codes.npy", stored_array(codes))  # (in the model's dtype: bfloat16 as float32)
    np.save(folder / "decoded.npy", decoded.float().numpy())
    written = ["codes.npy", "decoded.npy"]
    shape = _image_shape(tuple(decoded.shape[1:]), args.image_shape, data)
    if shape is not None:
        save_samples_picture(decoded.float().reshape(len(decoded), *shape).numpy(), folder / "samples.png",
                             per_row=per_row, row_label=row_label, title=title, column_label=column_label)
        written.append("samples.png")
    _record_written(folder, "sample", _SAMPLE_FILES, written, before, args)
    print(f"{len(codes)} codes of {codes[0].numel()} latents ({'posterior' if args.data else 'prior'}); "
          f"wrote {', '.join(written)} to {folder}")
    return 0


# ---- report ----------------------------------------------------------------------------------
DIRECTION_WORDS = ("auto", "coordinates", "pca", "clusters")


def add_report(sub) -> None:
    parser = sub.add_parser(
        "report", help="diagnose, traverse and write one self-contained HTML report",
        description="Encodes --data, diagnoses the latent space, traverses what can be read (a VAE's active "
        "latents by the recommended mode, beside the posterior's range for contrast; a plain autoencoder's "
        "principal directions), clusters the codes when asked (with paths between the closest and the farthest "
        "clusters) and writes report.html with the flags, recommendations and pictures (every image inlined; "
        "nothing fetched). The same as latentsweep.explain() in Python.",
    )
    _model_options(parser)
    _data_options(parser, required=True)
    # (explain's default: a VAE's active latents when some collapsed, else all)
    _traversal_options(parser, dims_default="a VAE's active latents when some collapsed, else all")
    group = parser.add_argument_group("directions and clusters")
    group.add_argument("--directions", default="auto", metavar="auto|coordinates|pca|clusters|FILE.npy",
                       help="what to traverse besides a VAE's latents: auto (an autoencoder's principal directions), "
                       "coordinates (latents only), pca (principal directions), clusters (the directions between the "
                       "closest and the farthest clusters; needs --clusters), or a .npy file of [K, D] vectors")
    group.add_argument("--clusters", type=_cluster_count, metavar="K",
                       help="find K >= 2 clusters of the codes (KMeans): centroid table, decoded centroids, paths "
                       "between the closest and the farthest clusters")
    group.add_argument("--max-directions", type=_positive_count, default=None,  # (None: told apart when given)
                       help=f"at most this many principal directions (default {EXPLAIN_MAX_DIRECTIONS}): for "
                       "--directions pca, and auto with a plain autoencoder")
    parser.add_argument("--feature-names", help="comma-separated names of tabular output features (not for images)")
    parser.add_argument("--title", default="latentsweep report", help="the report's title")
    from .metrics_command import add_report_metrics_options

    add_report_metrics_options(parser)
    _out_option(parser, "latentsweep-out")
    parser.set_defaults(run=run_report)


# KMeans clusters: at least 2 (one cluster has no direction between clusters), at most explain's limit.
_cluster_count = integer_at_least(2, INT64_MAX)


def _decoded(codes: torch.Tensor, decoder, model, args, fn: str, *, size_from: str | None = None):
    """The decoder (with --decoder-output and --output-activation) on ``codes``, on the model's
    device and dtype. When the decoder's own code fails on flat codes ``[B, D]`` with an error
    about its input's shape, the error adds the likely cause: a first Linear of another width
    (code_width_hint), else a decoder that takes ``[B, C, H, W]`` codes (STRUCTURED_CODES); and
    the model's 'decode' where the default took its 'decoder' body. ``size_from``: the option that
    set the codes' size D (sample's --latent-dim), named first as the likely cause."""
    from .._modules import first_linear_inputs, shape_error, without_grad
    from ..decoder_probe import code_width_hint
    from ..decoding import decoder_call

    device, dtype = part_device_dtype(decoder, model)
    decode = decoder_call(fn, decoder, **_decoder_options(args))
    try:
        with user_code(f"the decoder, on codes of shape {list(codes.shape)},", decoder, model), \
                without_grad():
            return decode(codes.to(device, dtype))
    except CliError as error:  # (user_code's: the decoder's own code raised)
        other = _other_part(args, "decoder")
        # (a conv decoder given [16, 8] said only torch's "Expected 3D or 4D input to conv_transpose2d")
        shapes = codes.dim() == 2 and error.__cause__ is not None and shape_error(error.__cause__)
        width = first_linear_inputs(decoder) if shapes else None
        why = "" if not shapes else _size_advice(size_from, codes.shape[1], model, decoder) if size_from else \
            STRUCTURED_CODES if width in (None, codes.shape[1]) else code_width_hint(codes.shape[1], width)
        advice = "; ".join(text for text in (why, other) if text)
        if not advice:
            raise
        raise _advised(error, advice) from error.__cause__


def _size_advice(option: str, size: int, model, decoder) -> str:
    """Advice for a decoder that failed on the shape of codes whose size D an option set: the
    size the model says it takes, when that is another (a --latent-dim typed wrong was advised
    --latent-shape); else the advice for a decoder that takes structured codes."""
    from .samples import stated_latent_dim

    found = stated_latent_dim(model, decoder)
    if found is None or found[0] == size:
        return STRUCTURED_CODES
    return f"{option} {size} may not be the decoder's latent size ({found[1]} is {found[0]}): pass {option} " \
           f"{found[0]}, or leave it out"


def run_report(args) -> int:
    from .metrics_command import check_report_metrics_options

    check_report_metrics_options(args)
    _check_span_fits_mode(args)
    _check_grid_fits(args)
    if args.directions == "clusters" and args.clusters is None:
        raise UsageError("--directions clusters needs --clusters K (the number of KMeans clusters to go between)")
    if args.max_directions is not None and args.directions not in ("auto", "pca"):
        raise UsageError(f"--max-directions limits the principal directions (--directions pca, or auto with a plain "
                         f"autoencoder); --directions {args.directions} traverses none")
    with _out_folder(args.out) as folder, no_store_to_keep("report.html is written at the end: nothing of this run "
                                                            "is kept; run the command again"):
        _no_folder_in_the_way(folder, args, ("report.html",))
        return _report_into(folder, args)


def _report_into(folder: Path, args) -> int:
    import latentsweep as ls
    from ..explanation import output_image_shape
    from ..plots._features import check_feature_names_fit
    from .loading import load_directions
    from .metrics_command import report_metrics

    directions = args.directions if args.directions in DIRECTION_WORDS else load_directions(args.directions)
    model, encoder, decoder = _loaded(args)
    posterior, data = _encode(encoder, model, args)
    if isinstance(directions, torch.Tensor) and directions.dim() > 2:  # [K, *latent_shape]
        if tuple(directions.shape[1:]) != posterior.latent_shape:  # (usage errors: exit 2, as --latent-shape's)
            raise UsageError(f"--directions {args.directions}: vectors of shape {list(directions.shape[1:])}, but "
                             f"the encoder gives codes of shape {list(posterior.latent_shape)}")
        directions = directions.flatten(1)
    if isinstance(directions, torch.Tensor) and directions.shape[-1] != posterior.latent_dim:
        raise UsageError(f"--directions {args.directions}: vectors of {directions.shape[-1]} values, but the "
                         f"encoder gives codes of {posterior.latent_dim} latents")
    if args.anchors > len(posterior):
        say("note", f"--anchors {args.anchors}, but --data has {len(posterior)} inputs: traversing from all "
            f"{len(posterior)}")
    names = [name.strip() for name in args.feature_names.split(",")] if args.feature_names else None
    if names is not None:  # checked on one decoded code, before the report's long work (explain's rule)
        one = _decoded(_first_code(posterior), decoder, model, args, "latentsweep report")
        if isinstance(one, torch.Tensor) and one.dim() >= 1 and len(one) == 1:
            out_shape = tuple(one.shape[1:])
            images = output_image_shape(out_shape, args.image_shape, data, fn="latentsweep.explain") is not None
            check_feature_names_fit("latentsweep.explain", names, out_shape, drawn_as_images=images)
    title = f"{args.title} (no --weights: the model's weights as built)" if _runs_as_built(args, model) else args.title
    if args.max_directions is not None and args.directions == "auto" and \
            ls.diagnose(posterior, prior_std=args.prior_std).recommended_directions == "coordinates":
        say("note", f"--max-directions {args.max_directions} does nothing here: --directions auto traverses a VAE's "
            "latents, not principal directions (pass --directions pca for those)")
    args.max_directions = EXPLAIN_MAX_DIRECTIONS if args.max_directions is None else args.max_directions
    metrics = report_metrics(encoder, data, args)
    with _decoder_advice(args), user_code(f"the decoder, on codes of {posterior.latent_dim} latents,", decoder, encoder,
                                          model):
        path = ls.explain(
            encoder, decoder, data, posterior=posterior, out=folder / "report.html",
            clusters=args.clusters, directions=directions, mode=args.mode, span=args.span, steps=args.steps,
            anchors=args.anchors, dims=args.dims, max_directions=args.max_directions, prior_std=args.prior_std,
            device=args.device, image_shape=args.image_shape, feature_names=names, title=title, metrics=metrics,
            # the sweeps' bars as the encoder's (on a terminal): without them a report of hours said nothing
            progress=_encode_progress(args), **_decoder_options(args),
        )
    print(f"wrote {path}")
    return 0


# ---- demo ----------------------------------------------------------------------------------
def add_demo(sub) -> None:
    parser = sub.add_parser(
        "demo", help="the built-in demo: digits VAEs/AE, a wine VAE and a Shapes beta-VAE (no download)",
        description="Runs latentsweep on models shipped with it, trained on scikit-learn's "
        "bundled data: a well-trained digits VAE, one with ReLU on its mean and log-variance "
        "heads, a plain digits autoencoder, and a VAE on the wine data set; and a beta-VAE on the "
        "procedural Shapes data, scored by the disentanglement metrics. Writes one HTML "
        "report per model and prints the diagnosis summaries.",
    )
    _out_option(parser, "latentsweep-demo")
    parser.add_argument("--quick", action="store_true",
                        help="diagnose every model but write only the digits-vae report, with fewer pictures")
    parser.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from ..demo import DEMO_MODELS
    from ..demo.shapes_vae import SHAPES_VAE_NAME
    from .demo import QUICK_REPORT_MODEL, run_demo as demo

    folder = _out_dir(args.out)
    reports = [QUICK_REPORT_MODEL] if args.quick else [*DEMO_MODELS, SHAPES_VAE_NAME]
    _no_folder_in_the_way(folder, args, [f"{name}.html" for name in reports] + ["index.html"])
    with no_store_to_keep("Each report is written when its model is done: those written so far are in --out; run "
                          "the demo again for the rest"):
        return demo(folder, quick=args.quick)
