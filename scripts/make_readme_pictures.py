"""Draws the pictures in README.md from the shipped demo models.

    python scripts/make_readme_pictures.py    # writes docs/images/*.png
"""

from __future__ import annotations

from pathlib import Path

import latentsweep as ls
from latentsweep.demo import load_demo_model, load_digits_data, load_wine_data

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    x, _ = load_digits_data()
    vae = load_demo_model("digits-vae")
    posterior = ls.encode(vae.encoder, x, progress=False)
    diagnosis = ls.diagnose(posterior)
    anchors = posterior[3:4]
    dims = diagnosis.active_dims
    by_posterior = ls.traverse(vae.decoder, anchors, mode="posterior", dims=dims, steps=9, progress=False)
    by_prior = ls.traverse(vae.decoder, anchors, mode="prior", dims=dims, steps=9, progress=False)
    ls.traversal_grid(by_posterior, diagnosis=diagnosis, title="mode='posterior': ±2 posterior SDs",
                            path=OUT / "digits-posterior-traversal.png")
    ls.traversal_grid(by_prior, diagnosis=diagnosis, title="mode='prior': ±2 prior SDs",
                            path=OUT / "digits-prior-traversal.png")
    ls.kl_bars(diagnosis, path=OUT / "digits-kl.png")
    ls.sigma_histograms(posterior, diagnosis=diagnosis, dims=dims, path=OUT / "digits-sigma.png")

    # The digits VAE: its active latents beside its principal directions, from the same input.
    pcs = ls.principal_directions(posterior, k=len(dims))
    along = ls.traverse(vae.decoder, anchors, directions=pcs, mode="prior", steps=9, progress=False)
    ls.traversal_grid(by_prior, diagnosis=diagnosis, title="latents (mode='prior')", path=OUT / "digits-vae-latents.png")
    ls.plots.direction_grid(along.outputs[0], ls.Directions(along.directions, along.labels, source=""),
                            values=along.values[0], anchor_values=along.anchor_values[0],
                            title="principal directions (mode='prior')", path=OUT / "digits-vae-principal-directions.png")

    # The digits AE: 10 KMeans clusters, decoded centroids, paths between the closest and farthest.
    ae = load_demo_model("digits-ae")
    codes = ls.encode(ae.encoder, x, progress=False)
    found = ls.clusters(codes, k=10, seed=0)
    paths = {pair: ls.interpolate(ae.decoder, found.centroids[pair[0]], found.centroids[pair[1]], steps=9,
                                  progress=False).outputs[0] for pair in found.closest_and_farthest()}
    at_centroids = ls.interpolate(ae.decoder, found.centroids, found.centroids, steps=2, progress=False).outputs[:, 0]
    ls.plots.cluster_panel(found, centroid_outputs=at_centroids, interpolation=paths,
                           title="digits AE: 10 KMeans clusters, the closest and the farthest pair",
                           path=OUT / "digits-ae-cluster-paths.png")

    wine_x, _, names = load_wine_data()
    wine = load_demo_model("wine-vae")
    wine_posterior = ls.encode(wine.encoder, wine_x, progress=False)
    result = ls.traverse(wine.decoder, wine_posterior[:32], steps=11, progress=False)
    ls.sensitivity_heatmap(result, feature_names=names, path=OUT / "wine-sensitivity.png")
    ls.response_curves(result, feature_names=names, max_features=4, path=OUT / "wine-response.png")
    print(f"wrote pictures to {OUT}")


if __name__ == "__main__":
    main()
