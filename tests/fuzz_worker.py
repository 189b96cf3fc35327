"""Runs random garbage through latentsweep's public functions; run by test_fuzz.py in a
subprocess, so a crash (segfault, abort) or hang shows up as a bad exit, not a dead pytest.

Each call starts from a valid one and replaces zero to three arguments with garbage (wrong
types, shapes, dtypes, devices, NaN, huge or negative numbers, None, ...), so the checks deep
inside each function are reached too. Every outcome is classified as in fuzz_outcomes.py
(ok by an oracle, clear or unclear error, other exception, wrong result).

Prints a JSON summary: outcome counts per function, and every call of the last four kinds.

Usage: python fuzz_worker.py SEED ITERATIONS [GROUP]   (GROUP: ops, diagnose, traverse, pictures, directions)
"""

from __future__ import annotations

import json
import math
import os
import random
import resource
import sys

# An address-space cap turns "valid but enormous" requests into a clean allocation error
# instead of the machine swapping or the OOM killer striking.
LIMIT = 8 << 30
resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import latentsweep  # noqa: E402
import latentsweep.decoding  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzz_outcomes  # noqa: E402
import latent_oracle  # noqa: E402
import reference  # noqa: E402
import sweep_reference  # noqa: E402

torch.set_num_threads(2)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]
FLOATS = DTYPES[:4]
SCALARS = [
    None, 0, 1, -1, 2, 3, 7, 2**31, 2**32, 2**34 + 1, 2**47, 2**48, 2**63 - 1, 2**63, 2**64, -2**63, 10**30,
    0.0, 0.5, -0.0, 2.5, -3.0, math.nan, math.inf, -math.inf, 1e308, True, False, "3", "", "prior", b"x",
    [], [0], [1, 0], [[0]], (1, 2), [0.5], ["a"], [None], [2**70], {}, object(), np.int64(3), np.float32(1.0),
    np.array([1, 2]), np.zeros((2, 3)), complex(1, 1), slice(1), Ellipsis, torch.float32, torch.int64, "cpu", "meta",
    torch.device("meta"), "nonsense",
]


class Garbage:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def tensor(self):
        rng = self.rng
        dtype = rng.choice(DTYPES if rng.random() < 0.4 else FLOATS)
        shape = [rng.choice([0, 1, 2, 3, 4, 5]) for _ in range(rng.choice([0, 1, 1, 2, 2, 2, 3, 4]))]
        t = torch.randn(shape, dtype=torch.float64) * rng.choice([1.0, 1e3, 1e30])
        if t.numel() and rng.random() < 0.3:
            t.view(-1)[rng.randrange(t.numel())] = rng.choice([math.nan, math.inf, -math.inf, 1e300])
        t = t.to(dtype) if not dtype.is_complex else t.to(dtype)
        r = rng.random()
        if r < 0.1 and t.dim() >= 2:
            t = t.transpose(0, 1)
        elif r < 0.2 and t.dim() >= 1 and t.shape[-1] == 1:
            t = t.expand(*t.shape[:-1], rng.choice([3, 1000]))
        elif r < 0.25:
            t = t.to("meta")
        elif r < 0.3 and t.dim() >= 1:
            t = t[..., ::2]
        return t

    def value(self):
        return self.tensor() if self.rng.random() < 0.4 else self.rng.choice(SCALARS)


def valid_sample(rng):
    n_rows, dim = rng.randint(0, 4), rng.randint(0, 40)
    dtype = rng.choice(FLOATS)
    return latentsweep.sample, {
        "mu": torch.randn(n_rows, dim).to(dtype),
        "logvar": torch.randn(n_rows, dim).to(dtype),
        "n": rng.randint(0, 4),
        "seed": rng.randint(0, 2**64 - 1),
        "row_offset": rng.randint(0, 100),
        "sample_offset": rng.randint(0, 100),
    }, ("mu", "logvar", "n")


def valid_sample_prior(rng):
    return latentsweep.sample_prior, {
        "n": rng.randint(0, 5),
        "latent_size": rng.randint(0, 40),
        "seed": rng.randint(0, 100),
        "offset": rng.randint(0, 100),
        "dtype": rng.choice(FLOATS),
        "device": rng.choice([None, "cpu"]),
    }, ("n", "latent_size")


def valid_traversal_codes(rng):
    a, d, k, s = rng.randint(1, 3), rng.randint(1, 10), rng.randint(1, 3), rng.randint(1, 4)
    dtype = rng.choice(FLOATS)
    anchors = torch.randn(a, d).to(dtype)
    values = torch.randn(*rng.choice([(s,), (k, s), (a, k, s)])).to(dtype)
    total = a * k * s
    start = rng.randint(0, total)
    count = rng.choice([None, rng.randint(0, total - start)])
    kwargs = {"anchors": anchors, "dims": [rng.randrange(d) for _ in range(k)], "values": values, "start": start, "count": count}
    if count is not None and rng.random() < 0.3:
        kwargs["out"] = torch.empty(count, d, dtype=dtype)
    return latentsweep.traversal_codes, kwargs, ("anchors", "dims", "values")


def valid_traversal_values(rng):
    a, d = rng.randint(1, 3), rng.randint(1, 6)
    dtype = rng.choice(FLOATS)
    return latentsweep.traversal_values, {
        "anchors": torch.randn(a, d).to(dtype),
        "mode": rng.choice(latentsweep.MODES),
        "span": rng.choice([0.5, 2.0, 3.0]),
        "steps": rng.randint(1, 7),
        "dims": rng.choice([None, [rng.randrange(d)]]),
        "logvar": torch.randn(a, d).to(dtype),
        "prior_std": rng.choice([1.0, 0.5]),
        "reference": torch.randn(rng.randint(1, 9), d).to(dtype),
        **({"dims": None, "directions": torch.randn(rng.randint(1, 3), d).to(dtype)} if rng.random() < 0.3 else {}),
    }, ("anchors",)


def valid_diagnose(rng):
    n, d = rng.randint(1, 40), rng.randint(1, 6)
    dtype = rng.choice(FLOATS)
    mu = (torch.randn(n, d) * rng.choice([1.0, 1e-3, 3.0])).to(dtype)
    logvar = None if rng.random() < 0.3 else (torch.randn(n, d) - rng.choice([0.0, 4.0])).to(dtype)
    if rng.random() < 0.2:
        mu = torch.relu(mu)
    posterior = latentsweep.Posterior(mu, logvar)
    return latentsweep.diagnose, {"posterior": posterior, "prior_std": rng.choice([1.0, 0.5, 2.0])}, ("posterior",)


# ---- traverse: valid decoders of every shape people write ------------------------------------


def _rowwise(z):
    return torch.stack([z[:, i % z.shape[1]] * (i + 1) / 4 for i in range(5)], dim=1)


def _images(z):
    return torch.sigmoid(_rowwise(z)[:, :4]).view(-1, 1, 2, 2)


DECODERS = {
    "rowwise": _rowwise,
    "images": _images,
    "tuple": lambda z: (_rowwise(z), z.sum()),
    "dict": lambda z: {"sample": _rowwise(z)},
    "float64-out": lambda z: _rowwise(z).double(),
    "transposed": lambda z: _rowwise(z).t().contiguous().t(),
    "expanded": lambda z: z[:, :1].expand(z.shape[0], 6),
    "mlp": torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)),
}
fuzz_outcomes.DECODER_CODES.update(
    d.__code__ for d in DECODERS.values() if hasattr(d, "__code__")
)
fuzz_outcomes.DECODER_CODES.update((_rowwise.__code__, _images.__code__))
# Decoders with a fixed latent size (the MLP) get anchors of that size.
LATENT_SIZE = {"mlp": 4}


def valid_traverse(rng):
    name = rng.choice(list(DECODERS))
    a, d = rng.randint(1, 3), LATENT_SIZE.get(name, rng.randint(1, 5))
    anchors = torch.randn(a, d).to(rng.choice([torch.float32, torch.float64]))
    mode = rng.choice(latentsweep.MODES)
    kwargs = {
        "decoder": DECODERS[name],
        "anchors": anchors,
        "mode": mode,
        "span": rng.choice([0.5, 2.0]),
        "steps": rng.randint(1, 5),
        "dims": rng.choice([None, [rng.randrange(d)]]),
        "logvar": torch.randn(a, d).to(anchors.dtype) - 2,
        "reference": torch.randn(rng.randint(1, 9), d).to(anchors.dtype),
        "batch_size": rng.choice(["auto", 1, 2, 3, 7, 64]),
        "progress": False,
    }
    if mode != "posterior" and rng.random() < 0.5:
        del kwargs["logvar"]
    if mode != "empirical" and rng.random() < 0.5:
        del kwargs["reference"]
    if rng.random() < 0.1:
        kwargs["keep_outputs"] = False
    if rng.random() < 0.1:
        kwargs["output_transform"] = rng.choice(["sigmoid", "tanh"])
    if rng.random() < 0.25:  # a sweep along directions (not unit length: traverse scales them)
        kwargs.pop("dims")
        kwargs["directions"] = torch.randn(rng.randint(1, 3), d).to(anchors.dtype)
    return latentsweep.traverse, kwargs, ("decoder", "anchors")


# ---- pictures: small edge-case results -------------------------------------------------------


def _edge_results():
    prior = latentsweep.Posterior(torch.randn(30, 3), torch.full((30, 3), -3.0))
    one = lambda z: torch.sigmoid(z[:, :1].repeat(1, 4)).view(-1, 1, 2, 2)  # noqa: E731
    rgb = lambda z: z[:, :1].repeat(1, 48).view(-1, 3, 4, 4) * 3  # noqa: E731 - values outside [0, 1]
    tabular = lambda z: z[:, :1] * torch.arange(1, 51, dtype=z.dtype)  # noqa: E731 - 50 features
    single = lambda z: z.sum(1, keepdim=True)  # noqa: E731 - one feature
    constant = lambda z: torch.zeros(z.shape[0], 16, dtype=z.dtype)  # noqa: E731 - flat 4x4, no change
    run = lambda dec, **kw: latentsweep.traverse(dec, prior[: kw.pop("a", 2)], progress=False, **kw)  # noqa: E731
    return {
        "one-step": run(one, a=1, steps=1),
        "rgb": run(rgb, steps=3),
        "tabular": run(tabular, steps=4, mode="absolute"),
        "one-feature": run(single, steps=2),
        "constant-flat": run(constant, steps=3),
        "stats-only": run(one, steps=3, keep_outputs=False),
    }, {
        "vae": latentsweep.diagnose(prior),
        "ae": latentsweep.diagnose(prior.mu),
        "collapsed": latentsweep.diagnose(latentsweep.Posterior(torch.zeros(20, 3), torch.zeros(20, 3))),
    }, prior


EDGE = None


def valid_picture(rng):
    global EDGE
    if EDGE is None:
        EDGE = _edge_results()
    results, diagnoses, posterior = EDGE
    plots = latentsweep.plots
    name = rng.choice(["traversal_grid", "traversal_gif", "response_curves", "sensitivity_heatmap", "kl_bars",
                       "sigma_histograms", "effect_bars"])
    image = rng.choice(["one-step", "rgb", "constant-flat", "stats-only"])
    tab = rng.choice(["tabular", "one-feature", "stats-only"])
    diagnosis = diagnoses[rng.choice(list(diagnoses))]
    if name in ("traversal_grid", "traversal_gif"):
        kwargs = {"result": results[image], "anchor": rng.choice([0, -1, 1]), "diagnosis": rng.choice([None, diagnosis]),
                  "max_dims": rng.choice([None, 1, 2])}
        if image == "constant-flat":
            kwargs["image_shape"] = rng.choice([(4, 4), (1, 4, 4)])
        if name == "traversal_grid" and rng.random() < 0.3:
            kwargs["input"] = torch.rand(*results[image].out_shape)
        return getattr(plots, name), kwargs, ("result",)
    if name in ("response_curves", "sensitivity_heatmap"):
        kwargs = {"result": results[tab], "diagnosis": rng.choice([None, diagnosis]),
                  "max_features": rng.choice([1, 3, 10])}
        if rng.random() < 0.3:
            kwargs["feature_names"] = [f"feature {i}" for i in range(math.prod(results[tab].out_shape))]
        return getattr(plots, name), kwargs, ("result",)
    if name == "kl_bars":
        return plots.kl_bars, {"diagnosis": diagnosis, "log": rng.choice([None, True, False])}, ("diagnosis",)
    if name == "sigma_histograms":
        return plots.sigma_histograms, {"posterior": posterior, "diagnosis": rng.choice([None, diagnoses["vae"]]),
                                        "bins": rng.choice([1, 5, 30]), "max_dims": rng.choice([None, 2])}, ("posterior",)
    chosen = rng.sample(list(results), rng.randint(1, 3))
    return plots.effect_bars, {"results": {n: results[n] for n in chosen}, "log": rng.choice([None, True])}, ("results",)


# ---- directions: direction_codes, principal_directions, clusters, interpolation_codes ----------


def valid_direction_codes(rng):
    a, d, k, s = rng.randint(1, 3), rng.randint(1, 10), rng.randint(1, 3), rng.randint(1, 4)
    dtype = rng.choice(FLOATS)
    directions = latentsweep.unit_directions(torch.randn(k, d, dtype=torch.float64) + 0.1).to(dtype)
    values = torch.randn(*rng.choice([(s,), (k, s), (a, k, s)])).to(dtype)
    total = a * k * s
    start = rng.randint(0, total)
    count = rng.choice([None, rng.randint(0, total - start)])
    kwargs = {"anchors": torch.randn(a, d).to(dtype), "directions": directions, "values": values, "start": start, "count": count}
    if count is not None and rng.random() < 0.3:
        kwargs["out"] = torch.empty(count, d, dtype=dtype)
    return latentsweep.direction_codes, kwargs, ("anchors", "directions", "values")


def valid_principal_directions(rng):
    n, d = rng.randint(2, 12), rng.randint(1, 6)
    return latentsweep.principal_directions, {
        "codes_or_posterior": torch.randn(n, d).to(rng.choice(FLOATS)),
        "k": rng.choice([None, 1, min(n - 1, d)]),
        "method": rng.choice(latentsweep.principal.METHODS),
        "seed": rng.randint(0, 100),
        "iterations": rng.randint(0, 3),
    }, ("codes_or_posterior",)


def valid_clusters(rng):
    n, d = rng.randint(4, 12), rng.randint(1, 4)
    codes = torch.randn(n, d).to(rng.choice(FLOATS))
    if rng.random() < 0.5:
        labels = [rng.randrange(2) for _ in range(n - 2)] + [0, 1]
        return latentsweep.clusters, {"codes_or_posterior": codes, "labels": labels}, ("codes_or_posterior",)
    return latentsweep.clusters, {"codes_or_posterior": codes, "k": rng.randint(2, n - 1), "seed": rng.randint(0, 9)}, ("codes_or_posterior",)


def valid_interpolation_codes(rng):
    p, d = rng.randint(1, 3), rng.randint(1, 6)
    dtype = rng.choice(FLOATS)
    return latentsweep.interpolation_codes, {
        "start": torch.randn(p, d).to(dtype),
        "end": torch.randn(p, d).to(dtype),
        "steps": rng.randint(2, 6),
        "path": rng.choice(latentsweep.paths.PATHS),
    }, ("start", "end")


GROUPS = {
    "ops": [valid_sample, valid_sample_prior, valid_traversal_codes, valid_traversal_values],
    "diagnose": [valid_diagnose],
    "traverse": [valid_traverse],
    "pictures": [valid_picture],
    "directions": [valid_direction_codes, valid_principal_directions, valid_clusters, valid_interpolation_codes],
}


# ---- oracles: what a correct result is --------------------------------------------------------


def _is_float_tensor(x) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype in FLOATS and x.device.type == "cpu" and x.layout == torch.strided


def _tolerance(dtype: torch.dtype) -> float:
    return {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]


def _close(value: torch.Tensor, expected: torch.Tensor, tol: float) -> str | None:
    """None when ``value`` matches ``expected`` wherever the latter is finite (relative to the
    magnitude), else what differs."""
    if tuple(value.shape) != tuple(expected.shape):
        return f"shape {tuple(value.shape)}, expected {tuple(expected.shape)}"
    value, expected = value.double(), expected.double()
    finite = torch.isfinite(expected)
    if not torch.isfinite(value[finite]).all():
        return "non-finite values where the reference is finite"
    error = (value - expected).abs()[finite]
    bound = tol * (1 + expected.abs()[finite])
    if error.numel() and bool((error > bound).any()):
        return f"max error {float(error.max()):.3g} beyond {tol:g} x (1 + |reference|)"
    return None


def oracle_sample(args, kwargs, value):
    mu, logvar, n = args
    if not (_is_float_tensor(mu) and _is_float_tensor(logvar) and isinstance(n, int) and mu.dtype == logvar.dtype):
        return "unchecked"
    if set(kwargs) - {"seed", "row_offset", "sample_offset"} or not all(type(v) is int for v in kwargs.values()):
        return "unchecked"
    precision = "float64" if mu.dtype == torch.float64 else "float32"
    expected = reference.reference_sample(mu, logvar, n, precision=precision, **kwargs)
    if value.dtype != mu.dtype:
        return f"dtype {value.dtype}, expected {mu.dtype}"
    # The scale of each draw: |mu| + sd |eps| (the reference is in float64).
    return _close(value, expected, _tolerance(mu.dtype) * 10)


def oracle_sample_prior(args, kwargs, value):
    n, dim = args
    dtype = kwargs.get("dtype")
    if not (type(n) is int and type(dim) is int and dtype in FLOATS + [None]):
        return "unchecked"
    if not all(type(kwargs.get(k, 0)) is int for k in ("seed", "offset")) or kwargs.get("device") not in (None, "cpu"):
        return "unchecked"
    dtype = dtype or torch.get_default_dtype()
    if value.dtype != dtype:
        return f"dtype {value.dtype}, expected {dtype}"
    precision = "float64" if dtype == torch.float64 else "float32"
    expected = reference.reference_sample_prior(n, dim, seed=kwargs.get("seed", 0), offset=kwargs.get("offset", 0),
                                                precision=precision)
    return _close(value, expected, _tolerance(dtype) * 10)


def oracle_traversal_codes(args, kwargs, value):
    anchors, dims, values = args
    if not (_is_float_tensor(anchors) and _is_float_tensor(values) and isinstance(dims, list)):
        return "unchecked"
    start, count, out = kwargs.get("start", 0), kwargs.get("count"), kwargs.get("out")
    if type(start) is not int or (count is not None and type(count) is not int) or set(kwargs) - {"start", "count", "out"}:
        return "unchecked"
    if out is not None and value is not out:
        return "out= given but a different tensor returned"
    expected = reference.reference_traversal_codes(anchors, dims, values, start=start, count=count)
    if value.dtype != anchors.dtype:
        return f"dtype {value.dtype}, expected {anchors.dtype}"
    if not torch.equal(value, expected) and not (value.isnan() & expected.isnan() | (value == expected)).all():
        return "codes differ from expand + index assignment"
    return None


def oracle_traversal_values(args, kwargs, value):
    (anchors,) = args
    mode = kwargs.get("mode", "prior")
    if not _is_float_tensor(anchors) or mode not in latentsweep.MODES or set(kwargs) - set(VALUES_KEYS):
        return "unchecked"
    if not torch.isfinite(value).all():
        return "a non-finite grid was returned instead of refused"
    if any(not _is_float_tensor(kwargs.get(k)) for k in ("logvar", "reference") if kwargs.get(k) is not None):
        return "unchecked"
    span, steps, prior_std, dims = (kwargs.get(k) for k in ("span", "steps", "prior_std", "dims"))
    if not (type(span) is float and type(steps) is int and type(prior_std) is float and (dims is None or isinstance(dims, list))):
        return "unchecked"
    expected = reference.reference_traversal_values(anchors, **{k: v for k, v in kwargs.items()})
    return _close(value, expected, _tolerance(anchors.dtype) * 10)


VALUES_KEYS = ("mode", "span", "steps", "dims", "logvar", "prior_std", "reference")


def oracle_diagnose(args, kwargs, value):
    (posterior,) = args
    if not isinstance(posterior, latentsweep.Posterior) or kwargs.get("prior_std") != 1.0 or set(kwargs) != {"prior_std"}:
        return "unchecked"
    stats = latent_oracle.latent_stats(posterior.mu, posterior.logvar)
    pairs = [("mu_variance", stats.mu_var), ("mean", stats.aggregate_mean), ("sd", stats.aggregate_sd)]
    if posterior.logvar is not None:
        pairs += [("kl", stats.kl), ("posterior_sd", stats.posterior_sd)]
    for name, expected in pairs:
        problem = _close(getattr(value, name), expected, 1e-9)
        if problem:
            return f"{name}: {problem}"
    return None


def oracle_traverse(args, kwargs, value):
    decoder, anchors = args
    if not (callable(decoder) and _is_float_tensor(anchors)) or kwargs.get("output_transform") not in (None, "sigmoid", "tanh"):
        return "unchecked"
    raw = decoder if decoder in DECODERS.values() else None
    if raw is None:
        return "unchecked"
    transform = {None: lambda x: x, "sigmoid": torch.sigmoid, "tanh": torch.tanh}[kwargs.get("output_transform")]
    unwrap = latentsweep.decoding.select_output
    cast = anchors.dtype if raw is not DECODERS["mlp"] else torch.float32

    def plain(z):
        return transform(unwrap("oracle", raw(z.to(cast))))

    if anchors.dim() > 2 or kwargs.get("latent_shape") is not None:  # structured: tests/test_structured_latents.py
        return "unchecked"
    anchors2 = anchors[None] if anchors.dim() == 1 else anchors
    grid = None
    if kwargs.get("directions") is not None:
        directions = kwargs["directions"]
        if not _is_float_tensor(directions) or value.directions is None:
            return "unchecked" if value.directions is not None else "directions given but result.directions is None"
        unit = latentsweep.unit_directions(directions.double().reshape(-1, anchors2.shape[1]))
        if not torch.allclose(value.directions.double(), unit, rtol=0, atol=torch.finfo(anchors.dtype).eps):
            return "result.directions are not the given directions scaled to unit length (to the anchors' precision)"
        # The grid of the directions the sweep used, rounded as the op rounds (the op itself is checked
        # against the definition by oracle_direction_codes; tests/test_sweep_directions.py checks
        # float64 sweeps against the definition directly).
        grid = latentsweep.direction_codes(anchors2, value.directions.to(anchors2.dtype), value.values.to(anchors2.dtype))
    expected = sweep_reference.reference_sweep(plain, anchors2, value.dims, value.values.to(anchors2.dtype), grid=grid)
    if value.outputs is not None:
        outputs = value.outputs if isinstance(value.outputs, torch.Tensor) else torch.as_tensor(np.asarray(value.outputs))
        problem = _close(outputs, expected["outputs"], _tolerance(outputs.dtype) * 10)
        if problem:
            return f"outputs: {problem}"
    for name in ("effect", "dim_effect", "sensitivity"):
        problem = _close(getattr(value, name), expected[name].reshape(getattr(value, name).shape), 1e-3)
        if problem:
            return f"{name}: {problem}"
    if not torch.equal(anchors, ORIGINAL_ANCHORS.get(id(anchors), anchors)):
        return "the caller's anchors were modified"
    return None


ORIGINAL_ANCHORS: dict[int, torch.Tensor] = {}


def oracle_picture(args, kwargs, value):
    from matplotlib.figure import Figure
    from PIL import Image

    if isinstance(value, Image.Image):
        return None if value.size[0] > 0 else "an empty GIF"
    if not isinstance(value, Figure):
        return f"returned a {type(value).__name__}, not a matplotlib Figure"
    import io

    buffer = io.BytesIO()
    value.savefig(buffer, format="png", dpi=30)
    return None if buffer.tell() > 100 else "the figure rendered to an empty PNG"


def oracle_direction_codes(args, kwargs, value):
    anchors, directions, values = args
    if not all(_is_float_tensor(t) for t in (anchors, directions, values)) or set(kwargs) - {"start", "count", "out"}:
        return "unchecked"
    start, count, out = kwargs.get("start", 0), kwargs.get("count"), kwargs.get("out")
    if type(start) is not int or (count is not None and type(count) is not int):
        return "unchecked"
    if out is not None and value is not out:
        return "out= given but a different tensor returned"
    if value.dtype != anchors.dtype:
        return f"dtype {value.dtype}, expected {anchors.dtype}"
    expected = reference.reference_direction_codes(anchors, directions, values, start=start, count=count)
    a = anchors[None] if anchors.dim() == 1 else anchors
    u = directions[None] if directions.dim() == 1 else directions
    scale = float(a.double().abs().max() + (a.double() @ u.double().T).abs().max() + values.double().abs().max())
    if tuple(value.shape) != tuple(expected.shape):
        return f"shape {tuple(value.shape)}, expected {tuple(expected.shape)}"
    error = float((value.double() - expected).abs().max()) if value.numel() else 0.0
    bound = (4 + a.shape[1]) * torch.finfo(anchors.dtype).eps * scale
    return None if error <= bound else f"max error {error:.3g} beyond {bound:.3g} from the definition"


def oracle_principal_directions(args, kwargs, value):
    (codes,) = args
    if not _is_float_tensor(codes):
        return "unchecked"
    codes = codes.reshape(codes.shape[0], -1)  # [N, *latent_shape] codes are flattened
    vectors = value.vectors.double()
    if not torch.allclose(vectors @ vectors.T, torch.eye(len(value), dtype=torch.float64), atol=1e-4):
        return "the directions are not orthonormal"
    centred = codes.double() - codes.double().mean(0)
    along = (centred @ vectors.T).var(0, unbiased=True)
    if not torch.allclose(along, value.explained_variance.double(), rtol=1e-2, atol=1e-3 * float(along.max()) + 1e-12):
        return "explained_variance is not the variance of the codes along the directions"
    return None


def oracle_clusters(args, kwargs, value):
    (codes,) = args
    if not _is_float_tensor(codes):
        return "unchecked"
    x = codes.reshape(codes.shape[0], -1).double()  # [N, *latent_shape] codes are flattened
    x = x - x[0]  # (a constant latent is 0 exactly: its rounded mean made eta^2 anything from 0 to 1)
    total = ((x - x.mean(0)) ** 2).sum(0)
    between = sum(int((value.labels == c).sum()) * (x[value.labels == c].mean(0) - x.mean(0)) ** 2 for c in range(len(value)))
    eta = torch.where(total > 0, between / total.clamp_min(1e-300), 0.0)
    return _close(value.eta_squared, eta, 1e-3)


def oracle_interpolation_codes(args, kwargs, value):
    start, end = args
    if not (_is_float_tensor(start) and _is_float_tensor(end)) or start.dtype != end.dtype:
        return "unchecked"
    first, last = value[:, 0], value[:, -1]
    if not (torch.equal(first, start.reshape(first.shape)) and torch.equal(last, end.reshape(last.shape))):
        return "the path does not start at start and end at end"
    return None


ORACLES = {
    "sample": oracle_sample,
    "sample_prior": oracle_sample_prior,
    "traversal_codes": oracle_traversal_codes,
    "traversal_values": oracle_traversal_values,
    "diagnose": oracle_diagnose,
    "traverse": oracle_traverse,
    "direction_codes": oracle_direction_codes,
    "principal_directions": oracle_principal_directions,
    "clusters": oracle_clusters,
    "interpolation_codes": oracle_interpolation_codes,
}


def describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor({list(value.shape)}, {value.dtype}, {value.device}, stride={value.stride()})"
    if callable(value) and hasattr(value, "__name__"):
        return f"<{value.__name__}>"
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def classify(fn, args, kwargs) -> tuple[str, str | None]:
    oracle = ORACLES.get(fn.__name__, oracle_picture if fn.__module__.startswith("latentsweep.plots") else None)
    return fuzz_outcomes.classify(
        lambda: fn(*args, **kwargs), None if oracle is None else (lambda value: oracle(args, kwargs, value))
    )


def crash():
    """For the harness's own test: a real segfault, as a buggy kernel would cause."""
    import ctypes

    ctypes.string_at(0)


def sabotage(kind: str) -> None:
    """For the harness's own tests: a wrong result and an unclear error the classification must
    catch."""
    if kind == "wrong":
        original = latentsweep.traversal_codes
        wrapped = lambda *a, **k: original(*a, **k).add_(1.0) if True else None  # noqa: E731
        wrapped.__name__ = "traversal_codes"
        GROUPS["ops"] = [lambda rng: (wrapped, *valid_traversal_codes(rng)[1:])]
    elif kind == "unclear":
        def traversal_values(*args, **kwargs):
            raise ValueError("math domain error")

        GROUPS["ops"] = [lambda rng: (traversal_values, *valid_traversal_values(rng)[1:])]


def main(seed: int, iterations: int, group: str) -> None:
    if os.environ.get("LATENTSWEEP_FUZZ_CRASH"):
        crash()
    if os.environ.get("LATENTSWEEP_FUZZ_SABOTAGE"):
        sabotage(os.environ["LATENTSWEEP_FUZZ_SABOTAGE"])
    rng = random.Random(seed)
    garbage = Garbage(rng)
    outcomes: dict[str, dict[str, int]] = {}
    findings: dict[str, list] = {kind: [] for kind in fuzz_outcomes.PROBLEMS}
    for _ in range(iterations):
        fn, kwargs, positional = rng.choice(GROUPS[group])(rng)
        # Pictures are slow to draw: fewer garbled arguments, so more calls reach the drawing.
        garbled = rng.choice([0, 0, 1, 1, 2] if group == "pictures" else [0, 1, 1, 1, 2, 3])
        for name in rng.sample(list(kwargs), min(len(kwargs), garbled)):
            if name != "progress":
                kwargs[name] = garbage.value()
        if rng.random() < 0.02:
            kwargs["bogus_keyword"] = garbage.value()
        args = [kwargs.pop(p) for p in positional]
        for a in args:
            if isinstance(a, torch.Tensor) and a.device.type == "cpu" and a.layout == torch.strided:
                ORIGINAL_ANCHORS[id(a)] = a.clone()
        call = f"{fn.__name__}({', '.join(map(describe, args))}, " + ", ".join(f"{k}={describe(v)}" for k, v in kwargs.items()) + ")"
        outcome, detail = classify(fn, args, kwargs)
        ORIGINAL_ANCHORS.clear()
        if outcome in findings:
            findings[outcome].append({"call": call, "error": detail})
        outcomes.setdefault(fn.__name__, {}).setdefault(outcome, 0)
        outcomes[fn.__name__][outcome] += 1
    print(json.dumps({"outcomes": outcomes, **findings}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "ops")
