"""The demo's ground-truth part: the shipped beta-VAE on Shapes, scored by the
disentanglement metrics, with its report (diagnosis, traversals and the metrics table)."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import diagnosis_words

DESCRIPTION = "beta-VAE on the procedural Shapes data set, scored against its known factors"


def run_shapes_demo(out: Path, *, quick: bool) -> tuple[str, str, Path] | None:
    """Prints the diagnosis and the metrics; writes the report unless ``quick`` (the quick demo
    draws one report only). Returns (name, description, report path) or None."""
    import latentsweep as ls

    from ..demo.shapes_vae import SHAPES_VAE_NAME, load_shapes_vae

    model = load_shapes_vae()
    data = ls.datasets.Shapes()
    images = data.observations(data.sample_factors(500 if quick else 2000, torch.Generator().manual_seed(0)))
    posterior = ls.encode(model.encoder, images, progress=False)
    # Smaller than the study defaults (10,000 / 5,000) so the demo stays short on a laptop;
    # `latentsweep metrics` runs the full sizes.
    sizes = dict(num_train=1000, num_test=500, sampling_votes=(300, 200)) if quick else \
        dict(num_train=2000, num_test=1000, sampling_votes=(500, 300))
    names = [m for m in ls.metrics.METRICS if m != "dci"]  # DCI's gradient boosting takes minutes
    results = ls.metrics.evaluate(model.encoder, data, metrics=names, progress=False, **sizes)
    print(f"== {SHAPES_VAE_NAME}: {DESCRIPTION}")
    diagnosis = ls.diagnose(posterior)
    if quick:
        print(diagnosis_words(diagnosis.summary(), diagnosis, inputs="the demo's images"))
        print(results)
        print("   report: not written with --quick (run the demo without it for every report)\n")
        return None
    path = ls.explain(model.encoder, model.decoder, images, posterior=posterior, out=out / f"{SHAPES_VAE_NAME}.html",
                      title=f"latentsweep demo: {SHAPES_VAE_NAME}", metrics=results, anchors=8, progress=False)
    print(diagnosis_words(diagnosis.summary(), diagnosis, inputs="the demo's images"))
    print(results)
    print(f"   report: {path}\n")
    return SHAPES_VAE_NAME, DESCRIPTION, path
