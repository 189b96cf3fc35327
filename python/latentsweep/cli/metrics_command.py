"""``latentsweep metrics``: disentanglement metrics of an encoder against known factors."""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

from .._checks import INT64_MAX
from ..metrics._inputs import MAX_BINS
from ..metrics._sampling import DEFAULT_ENCODE_BATCH
from ..metrics.evaluation import HISTOGRAM_METRICS, MIN_POINTS, POINT_BATCH, SAMPLED, evaluate, metric_names
from .commands import _device, _positive_count, integer_at_least, seed_below
from .errors import UsageError, say, user_code
from .loading import CliError, load_array

# Points to draw: at least the metrics' minimum, at most what the library's integer rule takes.
_points = integer_at_least(MIN_POINTS, INT64_MAX)
# metrics.evaluate's defaults, which the options take and their help states (one source)
DEFAULTS = {name: p.default for name, p in inspect.signature(evaluate).parameters.items()
            if p.default is not inspect.Parameter.empty}


def add_metrics(sub) -> None:
    from ..metrics import METRICS

    parser = sub.add_parser(
        "metrics", help="disentanglement metrics (MIG, SAP, DCI, ...) against known factors",
        description="Scores an encoder's means against ground-truth factors with disentanglement_lib's "
        "definitions and study defaults. Without --model: the shipped beta-VAE; without --data: the "
        "procedural Shapes data set (nothing is downloaded). With --data, --factors gives each "
        "observation's integer factor values [N, F]; points are drawn from those rows with replacement.",
    )
    group = parser.add_argument_group("model (default: the shipped beta-VAE on Shapes)")
    group.add_argument("--model", metavar="MODULE:ATTR", help="'package.module:attr' or 'file.py:attr'")
    group.add_argument("--weights", metavar="FILE", help=".safetensors or torch state dict (weights_only)")
    group.add_argument("--weights-key", metavar="KEY", help="the entry of a checkpoint dict that holds the state dict")
    group.add_argument("--encoder", metavar="ATTR",
                       help="the model's encoder attribute, or a path such as vae.encode (default: encoder/encode)")
    group.add_argument("--device", type=_device, default=None, help="cpu, cuda, cuda:1 ... (default: the model's)")
    data = parser.add_argument_group("data (default: latentsweep.datasets.Shapes)")
    data.add_argument("--data", metavar="FILE", help="observations [N, ...] from .npy/.npz/.pt/.safetensors")
    data.add_argument("--key", help="which array of --data holds the observations")
    data.add_argument("--factors", metavar="FILE", help="integer factors [N, F] of the observations in --data")
    data.add_argument("--factors-key", help="which array of --factors holds them")
    data.add_argument("--factor-names", help="comma-separated names of the F factors")
    options = parser.add_argument_group("metrics")
    options.add_argument("--metrics", default="all", help=f"'all' or comma-separated names from {', '.join(METRICS)}")
    options.add_argument("--num-train", type=_points, default=DEFAULTS["num_train"],
                         help=f"train points (default {DEFAULTS['num_train']})")
    options.add_argument("--num-test", type=_points, default=DEFAULTS["num_test"],
                         help=f"test points (default {DEFAULTS['num_test']})")
    # (--votes, --bins and --dci-estimator: None unless given, so that one given to metrics that
    # do not use it is told apart and refused; it was ignored)
    options.add_argument("--votes", type=_votes, metavar="TRAIN,EVAL",
                         help="FactorVAE/BetaVAE votes TRAIN,EVAL, integers >= 1 (default: --num-train,--num-test): "
                         f"for {'/'.join(SAMPLED)}")
    options.add_argument("--seed", type=seed_below(32), default=DEFAULTS["seed"],
                         help=f"seed of every draw and classifier, in [0, 2**32) (default {DEFAULTS['seed']})")
    options.add_argument("--bins", type=integer_at_least(1, MAX_BINS), default=None,
                         help=f"histogram bins per latent (default {DEFAULTS['bins']}, at most {MAX_BINS:,}): for "
                         f"{', '.join(HISTOGRAM_METRICS)}")
    options.add_argument("--batch-size", type=_positive_count, default=None,
                         help=f"observations per encoder call (default {POINT_BATCH}; {DEFAULT_ENCODE_BATCH} for "
                         "FactorVAE/BetaVAE)")
    options.add_argument("--dci-estimator", choices=("gradient_boosting", "random_forest"), default=None,
                         help=f"DCI importances: the reference's gradient boosting (default "
                         f"{DEFAULTS['dci_estimator']}; minutes at 10,000 points) or a faster random forest: for dci")
    parser.add_argument("--json", metavar="FILE", help="also write the scores, settings and versions as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_metrics)


def chosen_metrics(args) -> str | list[str]:
    """--metrics as metrics.evaluate takes it, checked by its rule before the model is loaded or
    the data read: a mistyped name is a usage error, said at once."""
    names = args.metrics if args.metrics == "all" else [m.strip() for m in args.metrics.split(",") if m.strip()]
    try:
        metric_names(names)
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from None
    return names


def run_metrics(args) -> int:
    import latentsweep as ls

    _check_option_dependencies(args)
    if args.json is not None:  # before the scores are computed, not after
        _check_writable(Path(args.json), "--json")
    names = chosen_metrics(args)
    _check_used_by(metric_names(names), args)
    encoder = _encoder(args)
    data = _data(args)
    with user_code("the encoder, on the observations,", encoder):
        results = ls.metrics.evaluate(
            encoder, data, metrics=names, num_train=args.num_train, num_test=args.num_test, seed=args.seed,
            batch_size=args.batch_size, sampling_votes=args.votes,
            bins=DEFAULTS["bins"] if args.bins is None else args.bins,
            dci_estimator=DEFAULTS["dci_estimator"] if args.dci_estimator is None else args.dci_estimator,
            progress=False if args.no_progress else None,
        )
    print(results)
    if args.json is not None:
        path = Path(args.json)
        try:
            path.write_text(json.dumps(results.to_dict(), indent=2), encoding="utf-8")
        except OSError as error:  # the scores were printed above: they are not lost
            raise CliError(f"--json {path}: cannot write it ({error.strerror or error}); the scores are printed above")
        print(f"wrote {path}")
    return 0


def _votes(text: str) -> tuple[int, int]:
    """--votes TRAIN,EVAL: two integers, each >= 1 as the library's sampling_votes takes them (a
    usage error otherwise, as any malformed value; a 0 was the library's error, exit 1)."""
    try:
        votes = tuple(int(v) for v in text.split(","))
    except ValueError:
        votes = ()
    if len(votes) != 2:
        raise argparse.ArgumentTypeError(f"expected TRAIN,EVAL (two integers), got {text!r}")
    return _positive_count(str(votes[0])), _positive_count(str(votes[1]))


def _check_used_by(names: list[str], args) -> None:
    """--votes, --bins and --dci-estimator given to metrics none of which uses them: a usage
    error (they did nothing, silently; the printed settings left them out)."""
    for flag, value, users in (("--votes", args.votes, SAMPLED), ("--bins", args.bins, HISTOGRAM_METRICS),
                               ("--dci-estimator", args.dci_estimator, ("dci",))):
        if value is not None and not set(users) & set(names):
            raise UsageError(f"{flag} is for {', '.join(users)}, none of which --metrics {','.join(names)} runs")


def _needs(flags: list[str], needed: str) -> str:
    """``--a/--b need --c`` (``--a needs --c`` for one flag): what options lack another."""
    return f"{'/'.join(flags)} {'needs' if len(flags) == 1 else 'need'} {needed}"


def _check_option_dependencies(args) -> None:
    """Options that do nothing without another one, refused before any work as usage errors
    (exit 2, as every command's; they were found after loading the model, exit 1)."""
    given = lambda *pairs: [flag for flag, value in pairs if value is not None]  # noqa: E731  ('' is given)
    if args.model is None and (flags := given(("--weights", args.weights), ("--weights-key", args.weights_key),
                                              ("--encoder", args.encoder))):
        raise UsageError(_needs(flags, "--model (without it: the shipped beta-VAE)"))
    if args.data is None and (flags := given(("--factors", args.factors), ("--factors-key", args.factors_key),
                                             ("--key", args.key), ("--factor-names", args.factor_names))):
        raise UsageError(_needs(flags, "--data (without it: the Shapes data set and its factors)"))
    if args.data is not None and args.factors is None:
        raise UsageError("--data needs --factors: the integer factor values [N, F] of each observation")


def _check_writable(path: Path, flag: str) -> None:
    """A file the command will write at the end, tried now: its folder is created and the file
    opened for appending (removed again if it was not there)."""
    from .._checks import blocking_file

    if path.is_dir():  # (an empty --json is refused with every empty path, by check_path_options)
        raise CliError(f"{flag} {path}: a folder is in the way of the file")
    blocked = blocking_file(path)
    if blocked is not None:
        raise CliError(f"{flag} {path}: {blocked} is a file, not a folder")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as error:
        raise CliError(f"{flag} {path}: cannot write it ({error.strerror or error})") from None
    if not existed:
        path.unlink()


def _encoder(args):
    if args.model is None:  # (--weights and the like without --model: refused by _check_option_dependencies)
        from ..demo.shapes_vae import load_shapes_vae

        model = load_shapes_vae()
        return model.to(args.device).encoder if args.device else model.encoder
    from .commands import _loaded, _other_part

    # The parser declares no --decoder, so only the encoder is looked up.
    _, encoder, _ = _loaded(args)
    if other := _other_part(args, "encoder"):  # (the metrics run it batch by batch: said before, not after)
        say("note", f"the metrics use the model's 'encoder'; {other}")
    return encoder


def _data(args):
    import latentsweep as ls

    if args.data is None:
        return ls.datasets.Shapes()
    observations = load_array(args.data, key=args.key)
    factors = load_array(args.factors, key=args.factors_key, option="--factors")
    names = [n.strip() for n in args.factor_names.split(",")] if args.factor_names else None
    return ls.datasets.LabelledArrays(observations, factors, factor_names=names)


# ---- the report's metrics table ------------------------------------------------------------
REPORT_METRICS = "mig,sap,modularity_explicitness,unsupervised,irs"


def add_report_metrics_options(parser) -> None:
    group = parser.add_argument_group("disentanglement metrics (when the factors of --data are known)")
    group.add_argument("--factors", metavar="FILE", help="integer factors [N, F] of the observations in --data: "
                       "adds a table of disentanglement metrics")
    group.add_argument("--factors-key", help="which array of --factors holds them")
    group.add_argument("--factor-names", help="comma-separated names of the F factors")
    # (None unless given: one given without --factors, even at its default value, is told apart
    # and refused; `--num-train 10000` was ignored as if left out)
    group.add_argument("--metrics", default=None, help=f"'all' or comma-separated names (default {REPORT_METRICS})")
    group.add_argument("--num-train", type=_points, default=None,
                       help=f"train points drawn from --data (default {DEFAULTS['num_train']})")
    group.add_argument("--num-test", type=_points, default=None, help=f"test points (default {DEFAULTS['num_test']})")
    group.add_argument("--seed", type=seed_below(32), default=None,
                       help=f"seed of the metrics' draws, in [0, 2**32) (default {DEFAULTS['seed']})")


def check_report_metrics_options(args) -> None:
    """The metrics' options do nothing without --factors: said before the report's work."""
    given = [flag for flag, value in (
        ("--factors-key", args.factors_key), ("--factor-names", args.factor_names), ("--metrics", args.metrics),
        ("--num-train", args.num_train), ("--num-test", args.num_test), ("--seed", args.seed)) if value is not None]
    if args.factors is None and given:
        raise UsageError(_needs(given, "--factors (the factor values [N, F] of the observations in --data)"))
    for name, default in (("metrics", REPORT_METRICS), ("num_train", DEFAULTS["num_train"]),
                          ("num_test", DEFAULTS["num_test"]), ("seed", DEFAULTS["seed"])):
        setattr(args, name, default if getattr(args, name) is None else getattr(args, name))
    if args.factors is not None:
        chosen_metrics(args)


def report_metrics(encoder, observations, args):
    """The MetricResults for the report, or None without --factors."""
    if args.factors is None:
        return None
    import latentsweep as ls

    factors = load_array(args.factors, key=args.factors_key, option="--factors")
    names = [n.strip() for n in args.factor_names.split(",")] if args.factor_names else None
    data = ls.datasets.LabelledArrays(observations, factors, factor_names=names)
    return ls.metrics.evaluate(encoder, data, metrics=chosen_metrics(args), num_train=args.num_train,
                               num_test=args.num_test, seed=args.seed, batch_size=args.batch_size, progress=False)
