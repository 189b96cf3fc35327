"""Directions, clusters and paths on the shipped digits autoencoder (a plain AE, whose
coordinate axes are arbitrary): its principal directions, 10 KMeans clusters and a decoded path
between the two farthest clusters. Writes two pictures.

    python examples/directions.py [--out DIR]      (default: ./latentsweep-directions)
"""

import argparse
from pathlib import Path

import torch

import latentsweep as ls
from latentsweep.demo import load_demo_model, load_digits_data

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--out", type=Path, default=Path("latentsweep-directions"))
out = parser.parse_args().out

model = load_demo_model("digits-ae")
images, digits = load_digits_data()
codes = ls.encode(model.encoder, images, progress=False).mu  # [1797, 8]


def decode(z: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.decoder(z)


# Principal directions, traversed from the codes' mean over the codes' own 2%..98% quantiles.
pcs = ls.principal_directions(codes, k=5)
print("explained variance:", [f"{r:.1%}" for r in pcs.explained_variance_ratio.tolist()])
values = ls.traversal_values(pcs.mean, mode="empirical", span=2.0, steps=9, reference=codes, directions=pcs)[0]
grid = ls.direction_codes(pcs.mean, pcs.vectors, values)  # [5 * 9, 8]
ls.plots.direction_grid(
    decode(grid).view(5, 9, 1, 8, 8), pcs, values=values,
    title="digits AE: principal directions from the mean code", path=out / "digits-ae-principal-directions.png",
)

# 10 clusters, as the user who trained this model did; how well they match the digits.
found = ls.clusters(codes, k=10, seed=0)
print("cluster sizes:", found.sizes.tolist())
print("latents by eta squared:", torch.argsort(found.eta_squared, descending=True).tolist())
(near, far) = found.closest_and_farthest()
path = ls.interpolation_codes(found.centroids[far[0]], found.centroids[far[1]], steps=9)[0]  # linear: an AE has no prior
ls.plots.cluster_panel(
    found, centroid_outputs=decode(found.centroids), interpolation=decode(path), pair=far,
    title="digits AE: 10 KMeans clusters of the codes", path=out / "digits-ae-clusters.png",
)
print(f"separating latents of clusters {far}: {found.separating_latents(*far, top=3)}")
print("pictures in", out)
