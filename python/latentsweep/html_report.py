"""One self-contained HTML page that explains a latent space: the diagnosis, its flags and
what to do about them, the recommended traversal mode, and the pictures.

Every picture is inlined as a ``data:`` URI and the style sheet is inline, so the file opens
anywhere, offline, and can be mailed or attached as a CI artifact. All text is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from . import _checks
from ._shares import format_share
from .diagnosis import Diagnosis, diagnose, dims_label
from .findings import findings, posterior_sd_sentence
from .latent_shape import latent_label
from .modes import MODE_TABLE
from .plots import _common
from .plots._images import is_image_output, single_output
from .plots._features import (
    MAX_CURVE_FEATURES,
    check_feature_names_fit,
    feature_labels,
    feature_name_list,
    pick_features,
)
from .plots.effect_bars import effect_bars, named_results
from .plots.kl_bars import kl_bars
from .plots.response_curves import response_curves
from .plots.sensitivity_heatmap import sensitivity_heatmap
from .plots.sigma_histograms import sigma_histograms
from .plots.traversal_gif import gif_bytes
from .plots.traversal_grid import traversal_grid
from .posterior import Posterior
from .report_pictures import pictured_results

_FN = "latentsweep.report"
# The largest side of a tile in the report's GIFs, and of its figures' at its default dpi
# (_common.shown_tile_pixels): a page shows a GIF of 12 latents at most about 110 pixels a tile,
# and full-size 256 x 256 outputs made GIFs of 5.9 MB each (24 MB at 512 x 512; at 1024 x 1024 the
# GIF was refused after every sweep). Larger outputs are averaged down by a whole factor, to
# 64-128 pixels, as large as the 64-pixel tiles small outputs are enlarged to in a GIF.
TILE_PIXELS = _common.SHOWN_TILE_PIXELS
DEFAULT_DPI = _common.SHOWN_TILE_DPI  # the report's dpi unless asked (its figures' tile bound grows above it)
# Latents whose rows of the diagnosis table are shown in the page's flow; a longer table scrolls
# in a box of its own (about as tall as these rows).
TABLE_ROWS_IN_PAGE = 48


def report(
    path,
    *,
    diagnosis: Diagnosis | None = None,
    results=None,
    posterior: Posterior | None = None,
    title: str = "latentsweep report",
    image_shape=None,
    feature_names=None,
    inputs=None,
    reconstructions=None,
    anchor_indices: Sequence[int] = (0,),
    max_dims: int | None = 12,
    gifs: bool = True,
    prior_std: float | None = None,
    dpi: int = DEFAULT_DPI,
    metrics=None,
    directions=None,
    clusters=None,
    centroid_outputs=None,
    interpolations=None,
    pictures=None,
) -> Path:
    """Writes one self-contained HTML report and returns its path.

    Args:
        path: the ``.html`` file to write (its folder is created).
        diagnosis: a :class:`Diagnosis` (default: ``diagnose(posterior)`` when ``posterior``
            is given).
        results: a :class:`TraversalResult`, or a mapping name -> TraversalResult, e.g.
            ``{"prior": ..., "posterior": ...}`` traversals of the same anchors, drawn side by
            side so the contrast shows.
        posterior: the :class:`Posterior` over the data (``[N, D]``); with ``logvar`` it adds
            the per-latent histograms of the posterior SD against the prior SD.
        title: the page's title.
        image_shape: ``(H, W)`` or ``(C, H, W)`` to draw flat outputs as images.
        feature_names: names of the output features of tabular results (refused when the
            results are drawn as images).
        inputs: the anchors' input images ``[A, *out_shape]``, drawn before each traversal.
        reconstructions: their reconstructions ``[A, *out_shape]`` (default with ``inputs``:
            the decoded anchors).
        anchor_indices: which anchors get a traversal grid and GIF (image outputs).
        max_dims: at most this many latents per traversal picture (sorted by KL or effect);
            ``None`` for all.
        gifs: add an animated GIF per anchor (image outputs).
        prior_std: the prior's SD when the diagnosis is computed here (default 1); with
            ``diagnosis=``, it must be the diagnosis' own.
        dpi: resolution of the pictures (10 to 1200); a picture that would exceed about 33
            million pixels (5,800 x 5,800) is drawn at the highest dpi that fits, with a warning.
            Outputs larger than 128 pixels a side (more at a dpi above 90: 128 x dpi / 90) are
            drawn averaged down by a whole factor (the GIFs' at 128 whatever the dpi), a tile
            being drawn smaller still.
        metrics: a :class:`latentsweep.metrics.MetricResults` (from ``metrics.evaluate`` when the
            factors of variation are known): adds a table of the scores and their settings.
        directions: a :class:`TraversalResult` of a sweep along directions
            (``traverse(..., directions=...)``), or a mapping name -> such results, in a section
            of their own: one grid per anchor with a row per direction (its label says the share
            of the variance), the effect per direction, and the variance each direction carries
            in ``posterior``'s codes; a latent traversal in ``results`` from the same anchors is
            drawn beside it. (In ``results``, a direction sweep is drawn like a latent one.)
        clusters: a :class:`Clusters` of the codes: the centroid table on the latents that
            separate the clusters best, with sentences on the closest and farthest pairs.
        centroid_outputs: ``[C, *out_shape]`` the decoder at the centroids (drawn in the panel).
        interpolations: a mapping ``{(i, j): Interpolation}`` of paths between clusters i and
            j (:func:`latentsweep.interpolate` from centroid i to centroid j): one strip each.
        pictures: a mapping name -> TraversalResult of the latents drawn of ``results[name]``,
            with their outputs, for a ``results[name]`` of many latents traversed with
            ``keep_outputs=False``: its effects and sensitivities are drawn from it, its grids,
            GIFs and response curves from ``pictures[name]`` (the same anchors, steps and mode,
            each latent's values equal; holding at least the ``max_dims`` latents drawn, of
            largest KL for a VAE's diagnosis, else of largest effect:
            :func:`latentsweep.report_pictures.drawn_dims`). Likewise for ``directions[name]``
            of many directions: its grids from ``pictures[name]``, a sweep of its first
            ``max_dims`` directions (or more, in order) with their outputs.
            :func:`latentsweep.explain` does so when it traverses more than it draws.

    Returns:
        the path of the written file.

    Raises:
        TypeError, ValueError: bad arguments (e.g. an ``image_shape`` that does not match the
            outputs, an anchor index out of range), or nothing to report.
    """
    path = _check_path(path)
    options = check_options(_FN, title=title, feature_names=feature_names, anchor_indices=anchor_indices,
                            max_dims=max_dims, gifs=gifs, dpi=dpi)
    feature_names, anchor_indices, max_dims, dpi = (options[k] for k in ("feature_names", "anchor_indices",
                                                                       "max_dims", "dpi"))
    if posterior is not None and not isinstance(posterior, Posterior):
        raise TypeError(f"{_FN}: posterior must be a latentsweep.Posterior, got {type(posterior).__name__}")
    _common.check_diagnosis(_FN, diagnosis)
    if prior_std is not None:  # (any object was taken, and a diagnosis' own prior silently won)
        prior_std = _checks.prior_std(_FN, prior_std)
        if diagnosis is not None and not math.isclose(prior_std, diagnosis.prior_std, rel_tol=1e-9):
            raise ValueError(f"{_FN}: prior_std={prior_std:g} but the diagnosis was computed with prior_std="
                             f"{diagnosis.prior_std:g}; pass diagnose(posterior, prior_std={prior_std:g}), or leave "
                             "prior_std out")
    if diagnosis is None and posterior is not None:
        diagnosis = diagnose(posterior, prior_std=1.0 if prior_std is None else prior_std)
    named = named_results(_FN, results) if results is not None else {}
    along = _direction_results(directions)
    cluster_view = _check_clusters(clusters, centroid_outputs, interpolations)
    if diagnosis is None and not named and metrics is None and not along and cluster_view is None:
        raise ValueError(
            f"{_FN}: nothing to report: pass diagnosis=, posterior=, results=, directions=, clusters= and/or metrics="
        )
    _check_one_latent_size(diagnosis, posterior, cluster_view,
                           {**{f"results[{n!r}]": r for n, r in named.items()},
                            **{f"directions[{n!r}]": r for n, r in along.items()}})
    if diagnosis is not None and posterior is not None and diagnosis.is_variational != posterior.is_variational:
        # (diagnose(posterior.mu) by mistake: the page called a VAE a plain autoencoder beside its
        # posterior SDs)
        what = ("a VAE's (with log-variances)", "has none") if diagnosis.is_variational else \
            ("a plain autoencoder's (no log-variances)", "has them")
        raise ValueError(f"{_FN}: the diagnosis is {what[0]} but posterior {what[1]}; pass the diagnosis of this "
                         "posterior (diagnose(posterior))")
    # name -> what the pictures of results[name], and the grids of directions[name], are drawn from
    drawn, drawn_along = pictured_results(_FN, pictures, named, along, diagnosis, max_dims)
    for result in named.values():
        images = is_image_output(result.out_shape, image_shape, fn=_FN)  # raises for an image_shape that does not fit
        if images:
            _check_grid_columns(result, anchor_indices, inputs=inputs, reconstructions=reconstructions)
        check_feature_names_fit(_FN, feature_names, result.out_shape, drawn_as_images=images)
    # Its folder, after the checks (a bad option left empty folders) and before the pictures (a
    # folder that cannot be made fails now); write_file names a file system error as path='s.
    _common.write_file(_FN, path, lambda _: None)

    # (one warning for the pictures that clip far outliers, one for those that draw some steps)
    with _common.clipping_said_once(_FN), _common.columns_said_once(_FN):
        page = _Page(dpi=dpi)
        body = [f"<h1>{_esc(title)}</h1>", f'<p class="meta">{_esc(_generated_line())}</p>']
        if diagnosis is not None:
            body += [_findings(diagnosis), _recommendation(diagnosis), _flags(diagnosis), _table(diagnosis)]
            body.append(_latent_pictures(page, diagnosis, posterior))
        if metrics is not None:
            from .metrics.html_section import metrics_section

            body.append(metrics_section(metrics))
        if named:
            body.append(
                _traversals(page, named, drawn, diagnosis, image_shape, feature_names, inputs, reconstructions,
                            anchor_indices, max_dims, gifs)
            )
        if along:
            body.append(_directions(page, along, drawn_along, named, drawn, diagnosis, posterior, image_shape,
                                    anchor_indices, max_dims))
        if cluster_view is not None:
            body.append(_clusters(page, *cluster_view, image_shape))
        if diagnosis is not None:
            body.append(
                "<details><summary>The diagnosis as text</summary>"
                f"<pre>{_esc(str(diagnosis))}</pre></details>"
            )
        body.append('<p class="meta">A self-contained page: every picture is inlined; nothing is fetched.</p>')
        document = (
            "<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
        )
    _common.write_file(_FN, path, lambda p: p.write_text(document, encoding="utf-8"))
    return path


# ---- sections ---------------------------------------------------------------------------


def _findings(diagnosis: Diagnosis) -> str:
    """The most important finding as the page's first heading, then the others in order."""
    found = findings(diagnosis)
    lead, rest = found[0], found[1:]
    css = "finding action" if lead.action else "finding"
    parts = [f'<section class="{css}"><h2>{_esc(lead.headline)}</h2><p>{_esc(lead.text)}</p>']
    if rest:
        items = "".join(f"<li><strong>{_esc(f.headline)}.</strong> {_esc(f.text)}</li>" for f in rest)
        parts.append(f"<p>Also found, in order of importance:</p><ul>{items}</ul>")
    return "".join(parts) + "</section>"


def _recommendation(diagnosis: Diagnosis) -> str:
    mode = diagnosis.recommended_mode
    # An autoencoder's recommendation already says all there is (no prior to explain).
    paragraphs = ([_mode_explanation(diagnosis)] if diagnosis.is_variational else []) + [diagnosis.recommendation]
    dims = diagnosis.active_dims
    extra = f", dims={dims}" if dims is not None and 0 < len(dims) < diagnosis.latent_dim else ""
    if diagnosis.recommended_directions == "principal":  # an autoencoder: along its principal directions
        extra += ", directions=latentsweep.principal_directions(posterior)"
    call = MODE_TABLE[mode].traverse_call(prior_std=diagnosis.prior_std, extra=extra)
    return (
        '<section class="recommendation"><h2>Recommended traversal mode: '
        f"<code>{_esc(mode)}</code></h2>"
        + "".join(f"<p>{_esc(p)}</p>" for p in paragraphs)
        + f"<pre>{_esc(call)}</pre></section>"
    )


def _mode_explanation(diagnosis: Diagnosis) -> str:
    """Why to traverse by the prior, with this model's numbers (a VAE's diagnosis)."""
    p = diagnosis.prior_std
    if MODE_TABLE[diagnosis.recommended_mode].needs_reference:  # a mode that follows the codes' spread
        text = (
            "Traverse by the spread of the codes (mode \"empirical\"), not by the posterior: some "
            f"latents do not follow the prior N(0, {p:g}²), so its range would miss where the data "
            "lies, while the codes' own quantiles span what the decoder has seen."
        )
    else:
        text = (
            "Traverse by the prior, not the posterior. Across the data a VAE's codes spread like the "
            f"prior N(0, {p:g}²) (that is what its KL term asks for), so the decoder knows that range, "
            f"and moving a latent by ± 2 prior SDs (a range of {4 * p:g}) explores it."
        )
    text += (
        " The posterior SD σ_d only says how certain the encoder is about one input, and a trained "
        "encoder is usually very certain."
    )
    sd_sentence = posterior_sd_sentence(diagnosis)
    if sd_sentence:
        text += " Here: " + sd_sentence[0].lower() + sd_sentence[1:]
    text += (
        ' Mode "prior" (the default) moves each latent by ± span × prior_std around the anchor; '
        'mode "empirical" follows the spread of the codes themselves, for when they do not follow '
        "the prior."
    )
    return text


def _flags(diagnosis: Diagnosis) -> str:
    if not diagnosis.flags:
        return '<section><h2>Flags</h2><p class="ok">No problems found.</p></section>'
    items = []
    for flag in diagnosis.flags:
        dims = dims_label(flag.dims, diagnosis.latent_shape)
        stats = "; ".join(_stat_text(name, value, flag.dims, diagnosis.latent_shape)
                          for name, value in flag.stats.items())
        items.append(
            f'<div class="flag"><h3><code>{_esc(flag.code)}</code> {_esc(dims)}</h3>'
            f"<p>{_esc(flag.recommendation)}</p>"
            f'<p class="stats">{_esc(stats)}</p></div>'
        )
    return f"<section><h2>Flags ({len(diagnosis.flags)})</h2>{''.join(items)}</section>"


def _stat_text(name: str, value, dims: list[int], latent_shape) -> str:
    if isinstance(value, list):
        shown = ", ".join(f"{latent_label(d, latent_shape)} {_number(v)}" for d, v in zip(dims[:12], value[:12]))
        return f"{name}: {shown}" + (" ..." if len(value) > 12 else "")
    return f"{name}: {_number(value)}"


def _table(diagnosis: Diagnosis) -> str:
    """The per-latent statistics, flagged rows highlighted."""
    columns = [("KL", diagnosis.kl), ("Var(mu)", diagnosis.mu_variance), ("posterior SD", diagnosis.posterior_sd),
               ("mean", diagnosis.mean), ("SD", diagnosis.sd), ("min", diagnosis.min), ("max", diagnosis.max)]
    columns = [(name, values) for name, values in columns if values is not None]
    codes = {d: [] for d in range(diagnosis.latent_dim)}
    for flag in diagnosis.flags:
        for d in flag.dims:
            codes[d].append(flag.code)
    head = ["latent"] + (["active"] if diagnosis.is_variational else []) + [n for n, _ in columns] + ["zeros", "flags"]
    rows = []
    for d in range(diagnosis.latent_dim):
        cells = [latent_label(d, diagnosis.latent_shape)]
        if diagnosis.is_variational:
            cells.append("yes" if bool(diagnosis.active[d]) else "no")
        cells += [_number(float(values[d])) for _, values in columns]
        zeros = float(diagnosis.zero_fraction[d])
        cells.append(format_share(zeros) if math.isfinite(zeros) else "n/a")
        cells.append(", ".join(codes[d]))
        css = ' class="flagged"' if codes[d] else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{_esc(c)}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{_esc(h)}</th>" for h in head)
    kind = "VAE" if diagnosis.is_variational else "plain autoencoder"
    summary = f"{diagnosis.num_inputs} inputs, {diagnosis.latent_dim} latent dims ({kind})"
    if diagnosis.is_variational:
        summary += f"; total KL {diagnosis.total_kl:.4g} nats; {diagnosis.num_active}/{diagnosis.latent_dim} active units"
    # A table of more rows scrolls in a box of its own: 4,096 latents pushed every picture a
    # thousand rows down the page
    box = "scroll tall" if diagnosis.latent_dim > TABLE_ROWS_IN_PAGE else "scroll"
    return (
        f"<section><h2>Diagnosis</h2><p>{_esc(summary)}. Statistics over the data; mean and SD are of the "
        "aggregate posterior (compare with the prior).</p>"
        f'<div class="{box}"><table><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        "</section>"
    )


def _latent_pictures(page: "_Page", diagnosis: Diagnosis, posterior: Posterior | None) -> str:
    if not diagnosis.is_variational:
        return (
            "<section><h2>Latent space</h2><p>A plain autoencoder (no logvar): there is no KL per "
            "latent and no posterior SD to draw.</p></section>"
        )
    figures = [
        page.figure(
            kl_bars(diagnosis), "KL per latent",
            "KL of each latent, mean over the data. Collapsed latents (grey) carry no information; "
            "their traversals show nothing.",
        )
    ]
    if posterior is not None and posterior.logvar is not None and posterior.latent_dim == diagnosis.latent_dim:
        # Of more latents than panels, those of largest KL (by index: the first 48 of 4,096, a
        # corner of one channel of a structured latent, often all collapsed)
        panels = _common.DEFAULT_MAX_PANELS
        cut = posterior.latent_dim > panels
        figures.append(
            page.figure(
                sigma_histograms(posterior, diagnosis=diagnosis, order="kl" if cut else "dims", max_dims=panels),
                "Posterior SD per latent against the prior SD",
                "Posterior SD per input and latent (log scale) against the prior SD (red line). Far "
                "left of the line, ± 2 posterior SDs moves z by a sliver of the prior's range."
                + (f" The {panels} latents of largest KL of the {posterior.latent_dim} are drawn." if cut else ""),
                wide=True,
            )
        )
    return f'<section><h2>Latent space</h2><div class="pictures">{"".join(figures)}</div></section>'


def _traversals(page, named, drawn, diagnosis, image_shape, feature_names, inputs, reconstructions,
                anchor_indices, max_dims, gifs) -> str:
    """One block per traversal, one after the other at full width (grids side by side shrank
    their labels to a few pixels), after a chart comparing their effects. ``drawn``: name -> the
    result its grids, GIFs and response curves are drawn from (``pictures=``, or itself)."""
    curves = _curve_features(named, drawn, image_shape, feature_names)
    blocks = []
    for name, result in named.items():
        shown = drawn[name]
        parts = [f"<h3>{_esc(name)}</h3>", f'<p class="meta">{_esc(_result_line(result, diagnosis))}</p>', _ranking(result)]
        if is_image_output(result.out_shape, image_shape):
            if shown.outputs is None:
                parts.append(
                    '<p class="note">The outputs were not kept (keep_outputs=False), so there is no '
                    "grid to draw; the effects are above.</p>"
                )
            for a in anchor_indices if shown.outputs is not None else ():
                figure = traversal_grid(
                    shown, anchor=a, diagnosis=diagnosis, max_dims=max_dims, image_shape=image_shape,
                    input=inputs, reconstruction=reconstructions, max_tile_size=page.tile_pixels,
                )
                parts.append(page.figure(figure, f"{name}: traversal grid of anchor {a}",
                                         f"Anchor {a} of {name!r}: one row per {result.traversal_kind}, one column "
                                         "per step."))
                if gifs:
                    data = gif_bytes(shown, anchor=a, diagnosis=diagnosis, max_dims=max_dims, image_shape=image_shape,
                                     fn=_FN, max_tile_size=TILE_PIXELS)
                    parts.append(page.image(data, "image/gif", f"{name}: animated traversal of anchor {a}",
                                            f"Anchor {a} of {name!r}: every {result.traversal_kind} moves through "
                                            "its steps at once.",
                                            pixelated=True))
        else:
            if shown.outputs is not None:
                chosen, rule = curves
                parts.append(page.figure(
                    response_curves(shown, diagnosis=diagnosis, max_dims=max_dims, feature_names=feature_names,
                                    features=chosen),
                    f"{name}: response curves",
                    f"Each output feature against the {result.traversal_kind}, mean over anchors; the band shows how much "
                    f"anchors differ. {rule}",
                    wide=True,
                ))
            else:
                parts.append('<p class="note">The outputs were not kept (keep_outputs=False): no response curves.</p>')
            parts.append(page.figure(
                sensitivity_heatmap(result, diagnosis=diagnosis, max_dims=max_dims, feature_names=feature_names),
                f"{name}: sensitivity heatmap",
                f"Mean absolute slope of each output feature along each {result.traversal_kind}: which "
                f"{result.traversal_kind} moves which feature.",
                wide=True,
            ))
        blocks.append(f'<div class="column">{"".join(parts)}</div>')
    comparison = page.figure(effect_bars(named, max_dims=max_dims), "Effect per latent", _effect_caption(named, diagnosis))
    heading = "Traversals" + (f" compared ({len(named)})" if len(named) > 1 else "")
    return (
        f'<section><h2>{heading}</h2><p>{_esc(_anchors_note(named))}</p><div class="pictures">{comparison}</div>'
        f'<div class="columns">{"".join(blocks)}</div></section>'
    )


def _curve_features(named, drawn, image_shape, feature_names) -> tuple[list[int] | None, str]:
    """One subset of output features for every response-curve figure (so a colour means one
    feature throughout), and the sentence stating the rule that chose it (by the sensitivity of
    every traversed latent, whether or not its outputs are drawn)."""
    tabular = [r for name, r in named.items()
               if drawn[name].outputs is not None and not is_image_output(r.out_shape, image_shape)]
    sizes = {math.prod(r.out_shape) for r in tabular}
    if len(sizes) != 1:
        return None, ""
    num_features = sizes.pop()
    if num_features <= MAX_CURVE_FEATURES:
        return None, f"All {num_features} features are drawn."
    names = feature_labels(_FN, feature_names, num_features)
    total = sum(r.sensitivity.sum(dim=0) for r in tabular)  # [F] over latents and traversals
    chosen = pick_features(_FN, None, names, total[None], MAX_CURVE_FEATURES)
    return chosen, (
        f"{len(chosen)} of {num_features} features are drawn, the same in every figure: those with "
        "the largest sensitivity summed over all latents and traversals."
    )


def _active_positions(result, diagnosis) -> tuple[list[int], list[int]]:
    """Positions into ``result.dims`` of the active latents and of the others (all count as
    active without a VAE diagnosis, and directions always: activity is per latent)."""
    dims = result.dims.tolist()
    if diagnosis is None or not diagnosis.is_variational or result.directions is not None:
        return list(range(len(dims))), []
    active = diagnosis.active.tolist()
    return [i for i, d in enumerate(dims) if active[d]], [i for i, d in enumerate(dims) if not active[d]]


def traversal_widths(result) -> list[float]:
    """``[K]`` how far each traversed latent moves, mean over anchors of |last - first value|."""
    return (result.values[..., -1] - result.values[..., 0]).abs().double().mean(dim=0).tolist()


def _share(value: float) -> str:
    """A share as a percentage with one decimal (none short of 1 reads "100.0%"); "n/a" where
    there is none (codes that do not vary)."""
    return format_share(value, digits=1) if math.isfinite(value) else "n/a"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _result_line(result, diagnosis=None) -> str:
    a, k, s = result.values.shape
    widths = traversal_widths(result)
    active, inactive = _active_positions(result, diagnosis)
    kind = result.traversal_kind
    if inactive and active:
        ranges = (
            f"the {len(active)} active latents move over {_mean([widths[i] for i in active]):.3g} in z on "
            f"average, the {len(inactive)} inactive ones over {_mean([widths[i] for i in inactive]):.3g}"
        )
    else:
        ranges = f"each {kind} moves over {_mean(widths):.3g} in {'z' if kind == 'latent' else 'its coordinate'} on average"
    return (
        f"mode {result.mode!r}: {a} anchors × {k} {kind}s × {s} steps, output shape "
        f"{tuple(result.out_shape)}, effects measured in {result.output_space}; {ranges}; "
        f"{result.speed_text()}"
    )


def _effect_caption(named: dict, diagnosis) -> str:
    """What the effect chart shows, with each traversal's numbers; comparisons are worded by
    the numbers, never assumed."""
    space = {r.output_space for r in named.values()}
    text = f"Mean change of the output ({' / '.join(sorted(space))}) over each traversal, per latent (dim_effect)."
    stats = []
    for name, result in named.items():
        active, _ = _active_positions(result, diagnosis)
        widths = traversal_widths(result)
        effects = result.dim_effect.double().tolist()
        stats.append((name, _mean([widths[i] for i in active]), _mean([effects[i] for i in active])))
    which = "active latents" if diagnosis is not None and diagnosis.is_variational else "latents"
    if all(math.isnan(width) for _, width, _ in stats):  # (a collapsed VAE: no active latent to average)
        return text + f" No traversed latent is active: there are no {which} to average over."
    text += " On the " + which + ": " + "; ".join(
        f"{name!r} moved z over {width:.3g} on average and changed the output by {effect:.3g}"
        if not math.isnan(width) else f"{name!r} traversed none of them"
        for name, width, effect in stats
    ) + "."
    if len(stats) == 2:
        (first, _, e1), (second, _, e2) = stats
        if e1 > 0 and e2 > 0 and math.isfinite(e1) and math.isfinite(e2):
            ratio = e2 / e1
            if 0.8 <= ratio <= 1.25:
                text += f" Both changed the output about equally ({second!r}: {ratio:.2g}× {first!r})."
            else:
                more, less, factor = (second, first, ratio) if ratio > 1 else (first, second, 1 / ratio)
                text += f" {more!r} changed the output {factor:.2g}× as much as {less!r}."
    return text


def _anchors_note(named: dict) -> str:
    results = list(named.values())
    first = results[0].anchors
    same = all(r.anchors.shape == first.shape and bool((r.anchors == first).all()) for r in results[1:])
    count = first.shape[0]
    if len(results) == 1:
        return f"The traversal starts from {count} anchor(s); 'anchor i' is row i of the anchors passed to traverse."
    if same:
        return (
            f"All {len(results)} traversals start from the same {count} anchor(s), so the grids of "
            "anchor i show one input traversed in different ways."
        )
    return (
        "The traversals start from different anchors: 'anchor i' of one is not the same input as "
        "'anchor i' of another, so compare their grids with care."
    )


def _ranking(result, top: int = 8) -> str:
    """The latents (or directions) that move the output most in this traversal (saying when it
    is cut), named by the result's labels."""
    effect = result.dim_effect.tolist()
    labels, kind = result.labels, result.traversal_kind
    order = sorted(range(len(labels)), key=lambda i: -effect[i])[:top]
    cells = "".join(f"<tr><td>{_esc(labels[i])}</td><td>{_esc(_number(effect[i]))}</td></tr>" for i in order)
    caption = (f"The {len(order)} of {len(labels)} {kind}s that move the output most" if len(order) < len(labels)
               else f"All {len(labels)} {kind}s, by effect")
    return (
        f'<table class="small"><caption>{_esc(caption)}</caption><thead><tr><th>{kind}</th><th>effect</th></tr>'
        f"</thead><tbody>{cells}</tbody></table>"
    )


# ---- directions and clusters ------------------------------------------------------------


def _direction_results(directions) -> dict:
    """``directions=`` as a mapping name -> TraversalResult along directions."""
    if directions is None:
        return {}
    from .result import TraversalResult

    named = {"directions": directions} if isinstance(directions, TraversalResult) else directions
    if not isinstance(named, Mapping) or not named:
        raise TypeError(
            f"{_FN}: directions must be a TraversalResult of traverse(..., directions=...) or a non-empty mapping "
            f"name -> such results, got {type(directions).__name__}"
        )
    for name, result in named.items():
        if not isinstance(result, TraversalResult):
            raise TypeError(f"{_FN}: directions[{name!r}] must be a TraversalResult, got {type(result).__name__}")
        if result.directions is None:
            raise ValueError(f"{_FN}: directions[{name!r}] is a traversal of latents; pass it in results=")
    return dict(named)


def _check_grid_columns(result, anchor_indices, **columns) -> None:
    """The anchors of a result's grids, and the images drawn before each grid's steps
    (``inputs=``, ``reconstructions=``), checked before any picture by the grid's own rule, but
    named as report's arguments (the grid named them ``input`` and ``reconstruction``). Also for
    a result without outputs (no grid is drawn): images of the wrong shape are still a mistake."""
    num_anchors = result.values.shape[0]
    for a in anchor_indices:
        _checks.index(_FN, "anchor_indices", a, num_anchors, what="anchor(s)")
        for keyword, value in columns.items():
            if value is not None:
                single_output(_FN, keyword, value, result.out_shape, a, num_anchors)


def _check_one_latent_size(diagnosis, posterior, cluster_view, traversals: dict) -> None:
    """The diagnosis, posterior and clusters describe one model: they, and every traversal shown
    beside them, have its latent size D (a diagnosis of another model would label the rows with
    the wrong latents' KL). Traversals alone may compare models of different sizes."""
    model = {}
    if diagnosis is not None:
        model["diagnosis"] = diagnosis.latent_dim
    if posterior is not None:
        model["posterior"] = posterior.latent_dim
    if cluster_view is not None:
        model["clusters"] = cluster_view[0].centroids.shape[1]
    if not model:
        return
    sizes = {**model, **{name: result.anchors.shape[1] for name, result in traversals.items()}}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{name} D={size}" for name, size in sizes.items())
        raise ValueError(f"{_FN}: the inputs describe models of different latent sizes ({listed}); "
                         "pass the diagnosis, posterior, clusters and traversals of one model")


def _check_clusters(clusters, centroid_outputs, interpolations):
    """(clusters, centroid outputs or None, {(i, j): Interpolation}) or None."""
    from .clusters import Clusters
    from .interpolation import Interpolation

    if clusters is None:
        if centroid_outputs is not None or interpolations is not None:
            raise ValueError(f"{_FN}: centroid_outputs= and interpolations= need clusters=")
        return None
    if not isinstance(clusters, Clusters):
        raise TypeError(f"{_FN}: clusters must be a latentsweep.Clusters, got {type(clusters).__name__}")
    if centroid_outputs is not None:  # (a nested list was "got shape ()", then had no .shape to draw)
        centroid_outputs = _common.user_array(_FN, "centroid_outputs", centroid_outputs, finite=False)
        shape = tuple(centroid_outputs.shape)
        if len(shape) < 2 or shape[0] != clusters.num_clusters:
            raise ValueError(
                f"{_FN}: centroid_outputs must be [C={clusters.num_clusters}, *out_shape], got shape {shape}"
            )
        if not np.isfinite(centroid_outputs).all():
            raise ValueError(f"{_FN}: centroid_outputs has NaN/Inf values (they would be drawn black)")
    paths = {}
    if interpolations is not None:
        if not isinstance(interpolations, Mapping):
            raise TypeError(f"{_FN}: interpolations must be a mapping {{(i, j): Interpolation}}, got "
                            f"{type(interpolations).__name__}")
        for key, value in interpolations.items():
            if isinstance(key, (str, bytes)) or not hasattr(key, "__len__") or len(key) != 2:
                raise TypeError(f"{_FN}: interpolations' keys must be cluster pairs (i, j), got {key!r}")
            pair = tuple(_checks.index(_FN, "interpolations' pair", k, clusters.num_clusters, what="cluster(s)")
                         for k in key)
            if not isinstance(value, Interpolation) or value.num_paths != 1:
                raise TypeError(f"{_FN}: interpolations[{key!r}] must be an Interpolation of one path, got {value!r}")
            _check_path_between_centroids(clusters, pair, key, value)
            if centroid_outputs is not None and tuple(value.out_shape) != tuple(centroid_outputs.shape[1:]):
                # (said before any picture, in report's words: cluster_panel's came after the others were drawn)
                raise ValueError(f"{_FN}: interpolations[{key!r}] decodes to outputs of shape {list(value.out_shape)}, "
                                 f"but centroid_outputs are of shape {list(centroid_outputs.shape[1:])}; pass both "
                                 "from one decoder")
            paths[pair] = value
    return clusters, centroid_outputs, paths


def _check_path_between_centroids(clusters, pair: tuple[int, int], key, path) -> None:
    """A path the page describes as "from i to j" goes from centroid i to centroid j (to float
    rounding: it may have been decoded in a narrower dtype): one of another model's codes, or of
    any other two points, or under the reversed key, was described as the clusters'."""
    import torch

    centroids = clusters.centroids.detach().double().cpu()
    if path.start.shape[1] != centroids.shape[1]:
        raise ValueError(f"{_FN}: interpolations[{key!r}] is a path in codes of D={path.start.shape[1]} latents, but "
                         f"the clusters' codes have D={centroids.shape[1]}; pass paths between these clusters")
    scale = max(float(centroids.abs().max()), 1e-300)
    for end, index in (("start", pair[0]), ("end", pair[1])):
        point = getattr(path, end)[0].detach().double().cpu()
        if not torch.allclose(point, centroids[index], rtol=1e-3, atol=1e-3 * scale):
            away = float(torch.linalg.vector_norm(point - centroids[index]))
            raise ValueError(f"{_FN}: interpolations[{key!r}] must go from centroid {pair[0]} to centroid {pair[1]} "
                             f"of clusters, but its {end} is {away:.3g} away from centroid {index} "
                             "(latentsweep.interpolate(decoder, clusters.centroids[i], clusters.centroids[j]))")


def _directions(page, along, drawn_along, named, drawn, diagnosis, posterior, image_shape, anchor_indices,
                max_dims) -> str:
    """One block per direction sweep: sentences from the numbers, a table of the effect and
    variance share per direction, and per anchor the direction grid, drawn from ``drawn_along``'s
    result of its name (beside the latent grid of a latent traversal from the same anchors, when
    there is one; drawn from ``drawn``'s result of its name). Those hold the outputs where the
    traversals kept none (``pictures=``)."""
    from .directions import Directions
    from .plots.direction_grid import direction_grid
    from .principal import variance_shares
    from .report_texts import direction_sentences, side_by_side_sentence

    codes = posterior.mu if posterior is not None else None
    blocks = []
    for name, result in along.items():
        if codes is not None and codes.shape[1] != result.anchors.shape[1]:
            codes = None  # not the codes of this latent space
        twin_name = next((n for n, r in named.items() if r.anchors.shape == result.anchors.shape
                          and bool((r.anchors == result.anchors).all())), None)
        twin = named[twin_name] if twin_name is not None else None
        sentences = direction_sentences(result, codes)
        if twin is not None:
            sentences.append(side_by_side_sentence(twin, result))
        parts = [f"<h3>{_esc(name)}</h3>", "".join(f"<p>{_esc(t)}</p>" for t in sentences)]
        shares = variance_shares(codes, result.directions) if codes is not None else None
        rows = "".join(
            f"<tr><td>{_esc(label)}</td><td>{_esc(_number(float(result.dim_effect[k])))}</td>"
            + (f"<td>{_share(shares[k])}</td>" if shares is not None else "") + "</tr>"
            for k, label in enumerate(result.labels)
        )
        head = "<th>direction</th><th>effect</th>" + ("<th>share of the codes' variance</th>" if shares else "")
        parts.append(f'<table class="small"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>')
        pictured = drawn_along[name]
        if pictured.outputs is None:
            parts.append('<p class="note">The outputs were not kept (keep_outputs=False): no grid to draw.</p>')
        elif not is_image_output(result.out_shape, image_shape):
            parts.append('<p class="note">Tabular outputs: the effects are above (grids are drawn for images).</p>')
        else:
            shown = Directions(pictured.directions, tuple(pictured.labels), source="")
            for a in anchor_indices:
                _checks.index(_FN, "anchor_indices", a, result.values.shape[0], what="anchor(s)")
                figures = []
                if twin is not None and drawn[twin_name].outputs is not None:
                    figures.append(page.figure(
                        traversal_grid(drawn[twin_name], anchor=a, diagnosis=diagnosis, max_dims=max_dims,
                                       image_shape=image_shape, max_tile_size=page.tile_pixels,
                                       title=f"latents ({twin.mode}), anchor {a}"),
                        f"latents, anchor {a}", f"Anchor {a}: one row per latent ({twin.mode!r})."))
                figures.append(page.figure(
                    direction_grid(pictured.outputs[a], shown, values=pictured.values[a],
                                   anchor_values=pictured.anchor_values[a], image_shape=image_shape,
                                   max_dims=max_dims, max_tile_size=page.tile_pixels,
                                   title=f"{name} ({result.mode}), anchor {a}"),
                    f"{name}, anchor {a}",
                    f"Anchor {a}: one row per direction, labelled with the share of the codes' variance it "
                    "carries where known; columns are coordinates along it."))
                parts.append(f'<div class="pictures">{"".join(figures)}</div>')
        blocks.append(f'<div class="column">{"".join(parts)}</div>')
    heading = "Traversals along directions"
    intro = (
        "Directions in latent space (principal components of the codes, directions between cluster "
        "centroids, or your own) traversed like latents: each grid row moves the anchor along one unit "
        "direction, keeping its other coordinates."
    )
    return f'<section><h2>{heading}</h2><p>{_esc(intro)}</p><div class="columns">{"".join(blocks)}</div></section>'


def _clusters(page, clusters, centroid_outputs, paths, image_shape) -> str:
    """The cluster panel (centroid table, decoded centroids, paths between clusters) and its
    sentences, the closest and farthest pairs named as such."""
    from .plots.cluster_panel import cluster_panel
    from .report_texts import PAIR_ROLES, cluster_sentences, pair_sentence

    roles = {}
    if clusters.num_clusters >= 2:
        roles = {pair: role for pair, role in zip(clusters.closest_and_farthest(), PAIR_ROLES)}
    sentences = cluster_sentences(clusters)
    named_pairs = list(paths) or list(roles)
    for pair in dict.fromkeys(named_pairs):
        role = roles.get(pair) or roles.get(pair[::-1])
        sentences.append(pair_sentence(clusters, pair, role, paths.get(pair)))
    images = centroid_outputs is not None and is_image_output(tuple(centroid_outputs.shape[1:]), image_shape)
    if not images and paths:
        first = next(iter(paths.values()))
        images = is_image_output(first.out_shape, image_shape)
    strips = {pair: np.asarray(p.outputs[0]) for pair, p in paths.items() if p.outputs is not None} if images else None
    # At most the pictures' bound of clusters, said in the caption (a warning would name the panel).
    shown = min(clusters.num_clusters, _common.DEFAULT_MAX_PANELS)
    figure = cluster_panel(
        clusters, centroid_outputs=centroid_outputs if images else None, interpolation=strips or None,
        max_clusters=shown, image_shape=image_shape, max_tile_size=page.tile_pixels,
        title=f"{clusters.num_clusters} clusters of the codes",
    )
    cut = f" The {shown} largest of the {clusters.num_clusters} clusters are drawn." \
        if shown < clusters.num_clusters else ""
    caption = (
        "Top: the centroids on the latents with the largest η², each cell coloured by how far it lies from "
        "the latent's mean over clusters." + cut
        + (" Then the decoded centroids" + (" and the decoded paths between clusters." if strips else ".")
           if images else "")
    )
    return (
        f'<section><h2>Clusters</h2>{"".join(f"<p>{_esc(t)}</p>" for t in sentences)}'
        f'<div class="pictures">{page.figure(figure, "clusters", caption, wide=True)}</div></section>'
    )


def check_options(fn: str, **options) -> dict:
    """The checks of :func:`report`'s options that need no results, named for ``fn``
    (:func:`latentsweep.explain` runs them before its sweeps), on those given. Returns them with
    ``feature_names`` read into a list of strings (a generator is read once), ``anchor_indices``
    a tuple of distinct ints, ``max_dims`` and ``dpi`` Python ints; other options as they are."""
    checked = dict(options)
    if "title" in options and not isinstance(options["title"], str):
        raise TypeError(f"{fn}: title must be a string, got {type(options['title']).__name__}")
    if options.get("feature_names") is not None:
        checked["feature_names"] = feature_name_list(fn, options["feature_names"])
    if "anchor_indices" in options:
        anchor_indices = options["anchor_indices"]
        if isinstance(anchor_indices, (int, str, bytes)) or not isinstance(anchor_indices, Sequence):
            raise TypeError(f"{fn}: anchor_indices must be a sequence of ints, e.g. (0, 1), got {anchor_indices!r}")
        checked["anchor_indices"] = tuple(dict.fromkeys(  # an anchor repeated is drawn once
            _checks.integer(fn, f"anchor_indices[{i}]", a) for i, a in enumerate(anchor_indices)))
    if "max_dims" in options:
        checked["max_dims"] = _checks.optional_integer(fn, "max_dims", options["max_dims"], low=1)
    if "gifs" in options:
        _checks.boolean(fn, "gifs", options["gifs"])
    if "dpi" in options:
        # (below 10 the font renderer fails: "FT_Set_Char_Size ... invalid ppem value")
        checked["dpi"] = _checks.integer(fn, "dpi", options["dpi"], low=10, high=1200)
    if options.get("reconstructions") is not None:  # what it holds; its shape needs the outputs'
        _checks.numeric_array(fn, "reconstructions", options["reconstructions"])
    return checked


# ---- page building ----------------------------------------------------------------------


class _Page:
    """Renders figures to inline images (and frees them: a report may draw dozens)."""

    def __init__(self, *, dpi: int):
        self.dpi = dpi
        # The largest side of an output's tile in its figures (TILE_PIXELS at the default dpi)
        self.tile_pixels = _common.shown_tile_pixels(dpi)

    def figure(self, figure, alt: str, caption: str, *, wide: bool = False) -> str:
        data = _common.figure_png(figure, dpi=self.dpi)
        figure.clear()
        return self.image(data, "image/png", alt, caption, wide=wide)

    def image(self, data: bytes, mime: str, alt: str, caption: str, *, wide: bool = False,
              pixelated: bool = False) -> str:
        uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
        css = ' class="wide"' if wide else ""
        img_css = ' class="pixels"' if pixelated else ""  # keep small decoded images sharp when scaled
        return (
            f'<figure{css}><img{img_css} src="{uri}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>"
        )


def _check_path(path) -> Path:
    try:
        path = _checks.output_file(_FN, "path", path)
    except OSError as error:  # (a name too long for the file system: raised by the folder test)
        raise ValueError(f"{_FN}: cannot write path={str(path)!r}: {error.strerror or error}") from error
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{_FN}: path={str(path)!r} must end in .html (the report is an HTML page)")
    return path


def _generated_line() -> str:
    from . import __version__

    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"Generated by latentsweep {__version__} on {now}."


def _number(value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool) or isinstance(value, int):
        return str(value)
    return f"{value:.3g}"


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1400px; padding: 1.5rem 2rem; color: #1d1d1f; background: #fff; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid #e3e3e8; padding-bottom: 0.2rem; margin-top: 2rem; }
.meta { color: #666; font-size: 0.9rem; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; }
pre { background: #f5f5f7; padding: 0.6rem 0.8rem; border-radius: 6px; overflow-x: auto; font-size: 0.85rem; }
.recommendation { background: #eef5ff; border-left: 6px solid #2f6fdb; padding: 0.2rem 1.2rem 0.6rem; border-radius: 6px; }
.recommendation h2 { border: none; }
.flag { border-left: 6px solid #e0a000; background: #fff8e6; padding: 0.3rem 1rem; margin: 0.7rem 0; border-radius: 6px; }
.flag h3 { margin: 0.3rem 0; font-size: 1.05rem; } .flag .stats { color: #555; font-size: 0.85rem; }
.ok { color: #17803d; font-weight: 600; }
.note { color: #8a5a00; }
.scroll { overflow-x: auto; }
.scroll.tall { max-height: 32rem; overflow-y: auto; } .scroll.tall th { position: sticky; top: 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f0f0f3; } td:first-child, td:last-child { text-align: left; }
tr.flagged td { background: #fff3d6; }
table.small { font-size: 0.8rem; }
.pictures { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }
figure { margin: 0.6rem 0; } figure.wide { flex-basis: 100%; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
img.pixels { image-rendering: pixelated; }
figcaption { color: #555; font-size: 0.85rem; max-width: 60rem; }
.columns { display: flex; flex-direction: column; gap: 1.5rem; }
.column { min-width: 0; border-top: 1px solid #e3e3e8; }
caption { text-align: left; color: #555; font-size: 0.8rem; }
.finding { background: #eef5ff; border-left: 6px solid #2f6fdb; padding: 0.2rem 1.2rem 0.6rem; border-radius: 6px; }
.finding.action { background: #fff0ee; border-left-color: #c62828; }
.finding h2 { border: none; }
"""
