"""The README's demo table, generated from what the diagnosis finds on each shipped model, so
the README cannot claim what the demo does not show (``tests/test_readme.py`` checks it).

Run ``python -m latentsweep.demo.summary`` to print the table.
"""

from __future__ import annotations

from ..diagnosis import Diagnosis, diagnose, dims_label
from ..encoding import encode
from .data import load_digits_data, load_wine_data
from .registry import DEMO_MODELS, load_demo_model


def demo_diagnoses() -> dict[str, Diagnosis]:
    """The diagnosis of every shipped model on its whole data set."""
    data = {"digits": load_digits_data()[0], "wine": load_wine_data()[0]}
    return {
        name: diagnose(encode(load_demo_model(name).encoder, data[spec.dataset], progress=False))
        for name, spec in DEMO_MODELS.items()
    }


def finding_text(diagnosis: Diagnosis) -> str:
    """One line of what the diagnosis says, every number and dim taken from it."""
    parts = []
    if diagnosis.is_variational:
        parts.append(
            f"{diagnosis.num_active} of {diagnosis.latent_dim} latents active, total KL "
            f"{diagnosis.total_kl:.3g} nats"
        )
    else:
        parts.append(f"a plain autoencoder ({diagnosis.latent_dim} latents, no logvar)")
    if diagnosis.axes is not None:
        parts.append(f"{diagnosis.axes.brief()}")
    for flag in diagnosis.flags:
        text = f"`{flag.code}` on {dims_label(flag.dims, diagnosis.latent_shape)}"
        if flag.code == "small-posterior-sd":
            sds = flag.stats["median_posterior_sd"]
            text += f" (median σ {min(sds):.2g}–{max(sds):.2g})" if len(sds) > 1 else f" (median σ {sds[0]:.2g})"
        parts.append(text)
    if not diagnosis.flags:
        parts.append("no flags")
    return "; ".join(parts) + (f"; recommended mode `{diagnosis.recommended_mode}`, traverse "
                               f"{'latents' if diagnosis.recommended_directions == 'coordinates' else 'principal directions'}")


def demo_table(diagnoses: dict[str, Diagnosis] | None = None) -> str:
    """The markdown table of the README's demo section."""
    diagnoses = demo_diagnoses() if diagnoses is None else diagnoses
    lines = ["| model | what it is | what the diagnosis says |", "| --- | --- | --- |"]
    for name, diagnosis in diagnoses.items():
        lines.append(f"| `{name}` | {DEMO_MODELS[name].description} | {finding_text(diagnosis)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(demo_table())
