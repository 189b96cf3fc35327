"""The sentences of the report's direction and cluster sections, each built from the numbers it
states (and tested against them), so the page never says what the data do not."""

from __future__ import annotations

import math

import torch

from .clusters import Clusters
from ._shares import format_share
from .latent_shape import latent_label
from .principal import variance_shares
from .result import TraversalResult

# The cluster pairs the report names: the closest and the farthest centroids.
PAIR_ROLES = ("closest", "farthest")
TOP_LATENTS = 3


def _widths(result: TraversalResult) -> list[float]:
    """``[K]`` mean over anchors of the range each traversal covers (in z, or along u)."""
    return (result.values[..., -1] - result.values[..., 0]).abs().double().mean(dim=0).tolist()


def direction_sentences(result: TraversalResult, codes: torch.Tensor | None = None) -> list[str]:
    """What a sweep along directions found: the variance each direction carries (from
    ``codes``, when given), and which direction moves the output most and least."""
    labels, effects = list(result.labels), result.dim_effect.double().tolist()
    a, k, s = result.values.shape
    sentences = [
        f"{k} direction(s) traversed from {a} anchor(s) in {s} steps (mode {result.mode!r}), each over "
        f"{_mean(_widths(result)):.3g} in z on average."
    ]
    if codes is not None and result.directions is not None:
        shares = variance_shares(codes, result.directions)
        if all(math.isfinite(v) for v in shares):
            units = result.directions.double()
            identity = torch.eye(k, dtype=torch.float64, device=units.device)
            orthogonal = bool(torch.allclose(units @ units.T, identity, atol=1e-4))
            total = sum(shares)
            if orthogonal:  # (rounding of float32 unit vectors read 1.0000000244 as ">100%")
                # D orthonormal directions span the codes' space: all of it; fewer, at most all.
                total = 1.0 if k == units.shape[1] else min(total, math.nextafter(1.0, 0.0))
            sentences.append(
                f"Together they carry {format_share(total)} of the codes' variance"
                + ("." if orthogonal else " (they are not orthogonal, so variance they share is counted twice).")
            )
    order = sorted(range(k), key=lambda i: -effects[i])
    text = f"The output moves most along {labels[order[0]]}, by {effects[order[0]]:.3g}"
    if k > 1:
        text += f", and least along {labels[order[-1]]}, by {effects[order[-1]]:.3g}"
    sentences.append(text + f" (effect: mean |x − x0| in {result.output_space}, over the anchors and steps).")
    return sentences


def side_by_side_sentence(latents: TraversalResult, directions: TraversalResult) -> str:
    """The largest effect along the latents against the largest along the directions, each
    with the range it was traversed over (the two are comparable only with their ranges)."""
    parts = []
    for result in (latents, directions):
        effects, widths = result.dim_effect.double().tolist(), _widths(result)
        best = max(range(len(effects)), key=lambda i: effects[i])
        parts.append((result.labels[best], effects[best], widths[best]))
    (lat, lat_effect, lat_width), (dir_, dir_effect, dir_width) = parts
    return (
        f"Beside the latents: they move the output by at most {lat_effect:.3g} ({lat}, traversed over "
        f"{lat_width:.3g} in z), the directions by at most {dir_effect:.3g} ({dir_}, over {dir_width:.3g})."
    )


def cluster_sentences(clusters: Clusters) -> list[str]:
    """How many clusters, how they were found, their sizes, and the latents that separate them
    best and worst (eta squared: the share of a latent's variance the clusters explain)."""
    sizes = clusters.sizes.tolist()
    how = "your labels" if clusters.method == "labels" else f"KMeans with k={clusters.num_clusters}"
    eta = clusters.eta_squared.double().tolist()
    order = sorted(range(len(eta)), key=lambda d: (-eta[d], d))
    name = lambda d: latent_label(d, clusters.latent_shape)  # noqa: E731
    best = ", ".join(f"{name(d)} {eta[d]:.2f}" for d in order[:TOP_LATENTS])
    text = (
        f"The latents that separate the clusters best (η², the share of a latent's variance the "
        f"clusters explain): {best}"
    )
    if len(order) > TOP_LATENTS:
        text += f"; the weakest: {name(order[-1])} {eta[order[-1]]:.2f}"
    return [
        f"{clusters.num_clusters} clusters of {sum(sizes)} codes ({how}), of {min(sizes)} to {max(sizes)} codes each.",
        text + ".",
    ]


def pair_sentence(clusters: Clusters, pair: tuple[int, int], role: str | None = None, interpolation=None) -> str:
    """One pair of clusters: how far apart their centroids are, the latents on which they differ
    most (in pooled within-cluster SDs), and how far the output moves along the path between
    them (mean |x(end) − x(start)|, and the first step t at which half of that is reached)."""
    i, j = pair
    name_i, name_j = clusters.label_values[i], clusters.label_values[j]
    distance = float(torch.linalg.vector_norm((clusters.centroids[j] - clusters.centroids[i]).double()))
    effect = clusters.pair_effect(i, j).double().tolist()
    latents = clusters.separating_latents(i, j, top=min(2, len(effect)))
    differ = " and ".join(f"{latent_label(d, clusters.latent_shape)} ({_signed(effect[d])} SDs)" for d in latents)
    lead = f"The {role} clusters are {name_i} and {name_j}" if role else f"Clusters {name_i} and {name_j}"
    text = f"{lead}, their centroids {distance:.3g} apart in z; they differ most on {differ}."
    if interpolation is not None:
        change = interpolation.change[0].double()
        total = float(change[-1])
        text += (
            f" Along the {interpolation.path} path from {name_i} to {name_j} ({len(change)} steps) the output "
            f"moves by {total:.3g} in all (mean |x(end) − x(start)|)"
        )
        if total > 0:
            half = int(torch.nonzero(change >= total / 2)[0])
            text += f" and has made half of that change by t = {float(interpolation.t[half]):.2g}"
        text += "."
    return text


def _signed(value: float) -> str:
    return f"{value:+.2g}" if math.isfinite(value) else ("+inf" if value > 0 else "-inf")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
