"""The report's section for a :class:`MetricResults`: the scores and how they were computed."""

from __future__ import annotations

import html

from .evaluation import MetricResults, settings_text

# What each score measures, one line each, shown beside the number.
_MEANINGS = {
    "mig": "gap between the two latents most informative about each factor, / H(factor) (Chen et al. 2018)",
    "sap": "gap between the two best single-latent classifiers per factor (Kumar et al. 2018)",
    "dci.disentanglement": "each latent matters for one factor (Eastwood & Williams 2018)",
    "dci.completeness": "each factor is captured by one latent",
    "dci.informativeness_train": "accuracy of the per-factor classifiers (train)",
    "dci.informativeness_test": "accuracy of the per-factor classifiers (test)",
    "modularity": "each latent depends on one factor (Ridgeway & Mozer 2018)",
    "explicitness_train": "ROC-AUC of linear factor classifiers (train)",
    "explicitness_test": "ROC-AUC of linear factor classifiers (test)",
    "irs": "latents robust to interventions on other factors (Suter et al. 2019)",
    "factor_vae.train_accuracy": "majority vote: fixed factor -> least-varying latent (Kim & Mnih 2018)",
    "factor_vae.eval_accuracy": "the same on fresh votes",
    "beta_vae.train_accuracy": "linear classifier of the fixed factor from |z1 - z2| (Higgins et al. 2017)",
    "beta_vae.eval_accuracy": "the same on fresh points",
    "unsupervised.gaussian_total_correlation": "dependence between latents, Gaussian fit (nats; 0 = independent)",
    "unsupervised.gaussian_wasserstein_correlation": "W2^2 to the product of marginals (0 = independent)",
    "unsupervised.gaussian_wasserstein_correlation_norm": "the same / total variance",
    "unsupervised.mutual_info": "mean histogram MI between latent pairs (nats)",
}


def metrics_section(results: MetricResults) -> str:
    """An HTML ``<section>`` (all text escaped) with the score table and the settings."""
    if not isinstance(results, MetricResults):
        raise TypeError(f"latentsweep.report: metrics must be a latentsweep.metrics.MetricResults, got {type(results).__name__}")
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{value:.4f}</td><td>{esc(_MEANINGS.get(name, ''))}</td></tr>"
        for name, value in results.scores.items()
    )
    s = results.settings
    versions = ", ".join(f"{k} {v}" for k, v in results.versions.items())
    settings = (
        f"Drawn from {s['data']}: {settings_text(s)}. Factors: {', '.join(results.factor_names)}. "
        f"Versions: {versions}."
    )
    return (
        "<section><h2>Disentanglement metrics</h2>"
        "<p>Scores against the known factors, with disentanglement_lib's definitions (higher is more "
        "disentangled, except the unsupervised dependence scores).</p>"
        f"<table><thead><tr><th>metric</th><th>score</th><th>what it measures</th></tr></thead><tbody>{rows}</tbody></table>"
        f'<p class="meta">{esc(settings)}</p></section>'
    )
