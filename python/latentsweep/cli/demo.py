"""``latentsweep demo``: the whole workflow on the models shipped with latentsweep.

For each demo model, :func:`latentsweep.explain` on its data set (scikit-learn's bundled digits
or wine): encode, diagnose, traverse (a VAE's latents by the recommended mode and by the
posterior; the digits AE's principal directions), cluster, write an HTML report, and print what
the diagnosis found. Nothing is downloaded.

The digits AE is clustered into 10 groups by KMeans, as the people who asked for it did, with
the paths between the closest and the farthest clusters; the digits VAE's latents are drawn
beside its principal directions.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import latentsweep as ls

from ..demo import DEMO_MODELS, load_demo_model, load_digits_data, load_wine_data
from .errors import diagnosis_words

# --quick: drawing dominates the demo (matplotlib lays out and renders every picture), so the
# quick demo diagnoses every model but writes one report, for QUICK_REPORT_MODEL, with fewer
# and smaller pictures: no GIFs, at most 6 latents per picture, lower resolution.
QUICK_REPORT_MODEL = "digits-vae"
QUICK_REPORT = {"gifs": False, "max_dims": 6, "dpi": 60}
# What each model's report shows beyond the default (issue 8 item 10).
EXTRA = {
    "digits-ae": {"clusters": 10},  # directions "auto": an autoencoder's principal directions
    "digits-vae": {"directions": "pca"},  # latents beside principal directions
}


def run_demo(out: Path, *, quick: bool = False) -> int:
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    datasets = {"digits": (load_digits_data()[0], None), "wine": _wine()}
    written = []
    for name, spec in DEMO_MODELS.items():
        model = load_demo_model(name)
        data, feature_names = datasets[spec.dataset]
        posterior = ls.encode(model.encoder, data, progress=False)
        print(f"== {name}: {spec.description}")
        diagnosis = ls.diagnose(posterior)
        if quick and name != QUICK_REPORT_MODEL:
            print(diagnosis_words(diagnosis.summary(), diagnosis, inputs="the demo's inputs"))
            print("   report: not written with --quick (run the demo without it for every report)\n")
            continue
        path = ls.explain(
            model.encoder, model.decoder, data, posterior=posterior, out=out / f"{name}.html",
            title=f"latentsweep demo: {name}", feature_names=feature_names, steps=7 if quick else 11,
            anchors=(4 if quick else 8) if spec.dataset == "digits" else 16, progress=False,
            **EXTRA.get(name, {}), **(QUICK_REPORT if quick else {}),
        )
        written.append((name, spec.description, path))
        print(diagnosis_words(diagnosis.summary(), diagnosis, inputs="the demo's inputs"))
        print(f"   report: {path}\n")
    from .shapes_demo import run_shapes_demo

    shapes_report = run_shapes_demo(out, quick=quick)
    if shapes_report is not None:
        written.append(shapes_report)
    index = out / "index.html"
    index.write_text(_index_page(written), encoding="utf-8")
    print(f"demo finished in {time.perf_counter() - started:.1f} s; open {index}")
    return 0


def _wine():
    x, _, feature_names = load_wine_data()
    return x, feature_names


def _index_page(written: list[tuple[str, str, Path]]) -> str:
    items = "\n".join(
        f'<li><a href="{html.escape(path.name)}">{html.escape(name)}</a>: {html.escape(description)}</li>'
        for name, description, path in written
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>latentsweep demo</title>'
        "<style>body{font-family:system-ui,sans-serif;max-width:50em;margin:2em auto;line-height:1.5}</style>"
        f"</head><body><h1>latentsweep demo</h1><ul>\n{items}\n</ul></body></html>\n"
    )
