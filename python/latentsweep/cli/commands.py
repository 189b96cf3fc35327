"""The commands of the ``latentsweep`` CLI: each ``add_*`` registers one subcommand whose
``run(args)`` does the work through the public Python API."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from .loading import CliError, load_array, load_model, model_part

ENCODER_NAMES = ("encoder", "encode")
DECODER_NAMES = ("decoder", "decode")


# ---- shared options ------------------------------------------------------------------------
def _model_options(parser: argparse.ArgumentParser, *, encoder: bool = True, decoder: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True, metavar="MODULE:ATTR",
                       help="the model: 'package.module:attr' or 'file.py:attr' (nn.Module or factory)")
    group.add_argument("--weights", metavar="FILE", help=".safetensors or torch state dict (weights_only)")
    if encoder:
        group.add_argument("--encoder", metavar="ATTR", help="the model's encoder attribute (default: encoder/encode)")
    if decoder:
        group.add_argument("--decoder", metavar="ATTR", help="the model's decoder attribute (default: decoder/decode)")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: the model's)")


def _data_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=required, metavar="FILE",
                       help="inputs [N, ...] from .npy/.npz/.pt/.safetensors")
    group.add_argument("--key", help="which array of a file holding several")
    group.add_argument("--batch-size", type=int, default=256, help="inputs per encoder call (default 256)")


def _out_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", default=default, metavar="DIR", help=f"output folder (default {default})")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _loaded(args) -> tuple[object, object | None, object | None]:
    model = load_model(args.model, args.weights)
    if args.device is not None and isinstance(model, torch.nn.Module):
        model = model.to(args.device)
    names = lambda own, default: (own,) if own else default  # noqa: E731
    encoder = model_part(model, names(getattr(args, "encoder", None), ENCODER_NAMES), "encoder", "--encoder") \
        if hasattr(args, "encoder") else None
    decoder = model_part(model, names(getattr(args, "decoder", None), DECODER_NAMES), "decoder", "--decoder") \
        if hasattr(args, "decoder") else None
    return model, encoder, decoder


def _encode(encoder, args):
    import latentsweep as ls

    data = load_array(args.data, key=args.key)
    return ls.encode(encoder, data, batch_size=args.batch_size, device=args.device), data


def _out_dir(path: str) -> Path:
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _image_shape(out_shape: tuple[int, ...], hint: list[int] | None) -> tuple[int, ...] | None:
    """The shape to draw outputs as images (the pictures' own rule), or None for tabular
    outputs; a hint that does not fit the outputs is an error."""
    from ..plots._images import image_shape_of, is_image_output

    hint = tuple(hint) if hint else None
    return image_shape_of("--image-shape", out_shape, hint) if is_image_output(out_shape, hint) else None


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
    parser.add_argument("--prior-std", type=float, default=1.0, help="the prior's SD (default 1)")
    parser.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    parser.add_argument("--out", metavar="DIR", help="also write diagnosis.txt and diagnosis.json here")
    parser.set_defaults(run=run_diagnose)


def run_diagnose(args) -> int:
    import latentsweep as ls

    _, encoder, _ = _loaded(args)
    posterior, _ = _encode(encoder, args)
    diagnosis = ls.diagnose(posterior, prior_std=args.prior_std)
    print(json.dumps(diagnosis.to_dict(), indent=2) if args.json else diagnosis)
    if args.out:
        folder = _out_dir(args.out)
        (folder / "diagnosis.txt").write_text(str(diagnosis) + "\n")
        (folder / "diagnosis.json").write_text(json.dumps(diagnosis.to_dict(), indent=2) + "\n")
    return 0


# ---- traverse ------------------------------------------------------------------------------
def _traversal_options(parser: argparse.ArgumentParser) -> None:
    import latentsweep as ls

    group = parser.add_argument_group("traversal")
    group.add_argument("--mode", default="auto", choices=("auto", *ls.MODES),
                       help="how far each latent moves; auto: what the diagnosis recommends "
                       "(prior for VAEs, empirical for plain autoencoders)")
    group.add_argument("--span", type=float, default=2.0, help="±span prior SDs (default 2)")
    group.add_argument("--steps", type=_positive_int, default=11, help="values per latent (default 11)")
    group.add_argument("--dims", type=_int_list, help="latents to traverse, e.g. 0,3,5 (default all)")
    group.add_argument("--anchors", type=_positive_int, default=8, help="traverse from the first N inputs (default 8)")
    group.add_argument("--prior-std", type=float, default=1.0, help="the prior's SD (default 1)")
    group.add_argument("--image-shape", type=_int_list, metavar="H,W", help="draw flat outputs as images of this shape")


def _resolve_mode(mode: str, posterior) -> str:
    import latentsweep as ls

    return ls.diagnose(posterior).recommended_mode if mode == "auto" else mode


def _traverse(decoder, posterior, args, **kwargs):
    import latentsweep as ls

    anchors = posterior[: min(args.anchors, len(posterior))]
    mode = kwargs.pop("mode", _resolve_mode(args.mode, posterior))
    return ls.traverse(
        decoder, anchors, mode=mode, span=args.span, steps=args.steps, dims=args.dims,
        prior_std=args.prior_std, reference=posterior.mu if mode == "empirical" else None,
        device=args.device, **kwargs,
    )


def add_traverse(sub) -> None:
    parser = sub.add_parser(
        "traverse", help="traverse each latent and decode the grid",
        description="Encodes --data, traverses each latent from the first --anchors inputs, "
        "decodes every grid point and writes the statistics (traversal.npz: dims, values, "
        "effect, dim_effect, ranking, sensitivity) and, for image outputs, one grid picture "
        "per anchor.",
    )
    _model_options(parser)
    _data_options(parser, required=True)
    _traversal_options(parser)
    group = parser.add_argument_group("sweep")
    group.add_argument("--sweep-batch-size", default="auto", help="codes per decoder call (default auto)")
    group.add_argument("--store", metavar="PATH", help="keep outputs in a resumable store (.zarr or .npy)")
    group.add_argument("--resume", action="store_true", help="continue the sweep in --store")
    group.add_argument("--overwrite", action="store_true", help="replace the sweep in --store")
    group.add_argument("--no-outputs", action="store_true", help="keep only the statistics")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    _out_option(parser, "latentsweep-out")
    parser.set_defaults(run=run_traverse)


def run_traverse(args) -> int:
    _, encoder, decoder = _loaded(args)
    posterior, _ = _encode(encoder, args)
    batch = args.sweep_batch_size if args.sweep_batch_size == "auto" else _positive_int(args.sweep_batch_size)
    result = _traverse(
        decoder, posterior, args, batch_size=batch, out=args.store, keep_outputs=not args.no_outputs,
        resume=args.resume, overwrite=args.overwrite, progress=False if args.no_progress else None,
    )
    folder = _out_dir(args.out)
    np.savez(
        folder / "traversal.npz", dims=result.dims.numpy(), values=result.values.numpy(),
        effect=result.effect.numpy(), dim_effect=result.dim_effect.numpy(),
        ranking=result.ranking.numpy(), sensitivity=result.sensitivity.numpy(),
        anchor_outputs=result.anchor_outputs.float().numpy(),
    )
    written = ["traversal.npz"]
    shape = _image_shape(result.out_shape, args.image_shape)
    if shape is not None and result.outputs is not None:
        from ..plots import traversal_grid

        for a in range(result.values.shape[0]):
            traversal_grid(result, anchor=a, image_shape=shape, path=folder / f"traversal-anchor{a}.png")
            written.append(f"traversal-anchor{a}.png")
    print(result.summary())
    print(f"wrote {', '.join(written[:3])}{' ...' if len(written) > 3 else ''} to {folder}")
    return 0


# ---- sample --------------------------------------------------------------------------------
def add_sample(sub) -> None:
    parser = sub.add_parser(
        "sample", help="draw codes (posterior or prior) and decode them",
        description="With --data: n reparameterised samples from each input's posterior "
        "(mu + sigma * eps); without: n codes from the N(0, prior_std^2) prior. Writes codes.npy, "
        "decoded.npy and, for image outputs, samples.png.",
    )
    _model_options(parser)
    _data_options(parser, required=False)
    parser.add_argument("-n", "--num-samples", type=_positive_int, default=16, help="samples (per input with --data)")
    parser.add_argument("--inputs", type=_positive_int, default=4, help="with --data: the first N inputs (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--prior-std", type=float, default=1.0, help="the prior's SD (default 1)")
    parser.add_argument("--latent-dim", type=_positive_int, help="latent size for prior samples (default: from the model)")
    parser.add_argument("--image-shape", type=_int_list, metavar="H,W", help="draw flat outputs as images of this shape")
    _out_option(parser, "latentsweep-out")
    parser.set_defaults(run=run_sample)


def run_sample(args) -> int:
    import latentsweep as ls

    model, encoder, decoder = _loaded(args)
    if args.seed < 0:
        raise CliError(f"--seed must be >= 0, got {args.seed}")
    if args.data:
        posterior, _ = _encode(encoder, args)
        if posterior.logvar is None:
            raise CliError("the encoder gives plain codes (an autoencoder): there is no posterior to sample")
        chosen = posterior[: args.inputs]
        codes = ls.sample(chosen.mu, chosen.logvar, args.num_samples, seed=args.seed).flatten(0, 1)
    else:
        dim = args.latent_dim or getattr(model, "latent_dim", None)
        if dim is None:
            raise CliError("give --latent-dim (the model has no latent_dim attribute) or --data")
        codes = ls.sample_prior(args.num_samples, dim, seed=args.seed) * args.prior_std
    from .._modules import model_device

    device = model_device(decoder) or model_device(model) or torch.device("cpu")
    with torch.inference_mode():
        decoded = decoder(codes.to(device)).cpu()
    folder = _out_dir(args.out)
    np.save(folder / "codes.npy", codes.numpy())
    np.save(folder / "decoded.npy", decoded.float().numpy())
    written = ["codes.npy", "decoded.npy"]
    shape = _image_shape(tuple(decoded.shape[1:]), args.image_shape)
    if shape is not None:
        _save_image_grid(decoded.float().reshape(len(decoded), *shape), folder / "samples.png")
        written.append("samples.png")
    print(f"{len(codes)} codes of {codes.shape[1]} latents ({'posterior' if args.data else 'prior'}); "
          f"wrote {', '.join(written)} to {folder}")
    return 0


def _save_image_grid(images: torch.Tensor, path: Path, columns: int = 8) -> None:
    """Tiles [N, (C,) H, W] images in [0, 1] into one PNG."""
    from PIL import Image

    if images.dim() == 3:
        images = images[:, None]
    count, channels, height, width = images.shape
    rows = math.ceil(count / columns)
    canvas = torch.ones(channels, rows * (height + 1), columns * (width + 1))
    for i, image in enumerate(images.clamp(0, 1)):
        r, c = divmod(i, columns)
        canvas[:, r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width] = image
    pixels = (canvas * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
    scale = max(1, 256 // max(height, width))
    picture = Image.fromarray(pixels)
    picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)


# ---- report --------------------------------------------------------------------------------
def add_report(sub) -> None:
    parser = sub.add_parser(
        "report", help="diagnose, traverse and write one self-contained HTML report",
        description="Encodes --data, diagnoses the latent space, traverses each latent by the "
        "recommended mode and by the posterior (for contrast) and writes report.html with the "
        "flags, recommendations and pictures (every image inlined; nothing fetched).",
    )
    _model_options(parser)
    _data_options(parser, required=True)
    _traversal_options(parser)
    parser.add_argument("--feature-names", help="comma-separated names of tabular output features")
    parser.add_argument("--title", default="latentsweep report", help="the report's title")
    _out_option(parser, "latentsweep-out")
    parser.set_defaults(run=run_report)


def run_report(args) -> int:
    _, encoder, decoder = _loaded(args)
    posterior, data = _encode(encoder, args)
    names = [name.strip() for name in args.feature_names.split(",")] if args.feature_names else None
    path, _ = write_report(decoder, posterior, data, args, Path(args.out) / "report.html", title=args.title,
                           feature_names=names)
    print(f"wrote {path}")
    return 0


def write_report(decoder, posterior, data, args, path: Path, *, title: str, feature_names=None):
    """Diagnosis + traversals (recommended mode, and the posterior's for contrast) -> HTML.
    Returns the report's path and the diagnosis."""
    import latentsweep as ls

    diagnosis = ls.diagnose(posterior, prior_std=args.prior_std)
    mode = diagnosis.recommended_mode if args.mode == "auto" else args.mode
    results = {mode: _traverse(decoder, posterior, args, mode=mode, progress=False)}
    if posterior.logvar is not None and mode != "posterior":
        results["posterior"] = _traverse(decoder, posterior, args, mode="posterior", progress=False)
    first = next(iter(results.values()))
    shape = _image_shape(first.out_shape, args.image_shape)
    inputs = None
    if shape is not None and data is not None and math.prod(data.shape[1:]) == math.prod(first.out_shape):
        inputs = data[: first.values.shape[0]].reshape(-1, *first.out_shape)
    written = ls.report(
        path, diagnosis=diagnosis, results=results, posterior=posterior, title=title,
        image_shape=shape if args.image_shape else None, feature_names=feature_names, inputs=inputs,
        prior_std=args.prior_std,
    )
    return written, diagnosis


# ---- demo ----------------------------------------------------------------------------------
def add_demo(sub) -> None:
    parser = sub.add_parser(
        "demo", help="the built-in demo: digits VAEs/AE and a wine VAE (no download)",
        description="Runs latentsweep on models shipped with it, trained on scikit-learn's "
        "bundled data: a well-trained digits VAE, one with ReLU on its mean and log-variance "
        "heads, a plain digits autoencoder, and a VAE on the wine data set. Writes one HTML "
        "report per model and prints the diagnosis summaries.",
    )
    _out_option(parser, "latentsweep-demo")
    parser.add_argument("--quick", action="store_true", help="fewer anchors and steps")
    parser.set_defaults(run=run_demo)


def run_demo(args) -> int:
    from .demo import run_demo as demo

    return demo(Path(args.out), quick=args.quick)
