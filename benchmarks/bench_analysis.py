"""The analysis side at the scale of a real data set: encode, diagnose, clusters and
principal_directions against what a user would write instead, in one run.

    python benchmarks/bench_analysis.py [--dims 32|128] [--sizes 10000,100000] [--rounds 5] [--no-memory] [--smoke]

N flat inputs of 784 features through an MLP encoder 784 -> 256 -> 2 x D returning (mu, logvar)
(D = --dims), then each public analysis function on its output, against:
- ``encode``: a plain ``torch.inference_mode()`` loop over batches of the same size concatenating
  mu and logvar, from a tensor, a numpy array and a DataLoader (the same loader for both);
- ``diagnose``: the per-latent statistics by hand in torch (mean and SD of mu, mean posterior
  variance, mean KL);
- ``clusters(k=10)``: scikit-learn's KMeans with the same settings (what ``clusters`` runs),
  then the per-cluster means by hand; and the direction between the closest clusters;
- ``principal_directions``: ``torch.linalg.svd`` of the centred codes, and scikit-learn's PCA.
Times are the best of --rounds interleaved rounds (each round runs every row once, so drifts of
the machine hit all rows alike), each call after a rest of 0.3 s (scikit-learn's OpenMP threads
spin for 200 ms after a call, and slowed the next one on a few cores). Peak memory: the growth of the resident set (VmHWM, reset before the call) of a
fresh subprocess that runs one call on codes made beforehand, beside the codes' own size.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

import latentsweep as ls
from _memory import peak_kib, reset_peak
from _timing import add_smoke_option, print_table

FEATURES, HIDDEN, K_CLUSTERS, BATCH = 784, 256, 10, 256


class Encoder(nn.Module):
    def __init__(self, dims: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * dims))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, default=32, help="latent size D (32 or 128)")
    parser.add_argument("--sizes", default="10000,100000", help="numbers of inputs N, comma-separated")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best of them is shown")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory table (subprocesses)")
    parser.add_argument("--_memory", nargs=3, metavar=("FUNCTIONS", "N", "D"), help=argparse.SUPPRESS)
    add_smoke_option(parser)
    return parser


def model_and_data(n: int, dims: int):
    torch.manual_seed(0)
    encoder = Encoder(dims).eval()
    data = torch.rand(n, FEATURES)
    return encoder, data


def plain_encode(encoder, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """What a user writes: a loop in inference mode, mu and logvar concatenated."""
    mus, logvars = [], []
    with torch.inference_mode():
        for x in batches:
            mu, logvar = encoder(x[0] if isinstance(x, (tuple, list)) else x)
            mus.append(mu)
            logvars.append(logvar)
    return torch.cat(mus), torch.cat(logvars)


def plain_diagnose(mu: torch.Tensor, logvar: torch.Tensor) -> dict:
    """The per-latent statistics of a diagnosis, by hand (float64, as diagnose computes them)."""
    mu, logvar = mu.double(), logvar.double()
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar)
    return dict(mean=mu.mean(0), sd=mu.std(0, correction=0), posterior_variance=logvar.exp().mean(0), kl=kl.mean(0))


def plain_kmeans(codes: torch.Tensor) -> np.ndarray:
    from sklearn.cluster import KMeans

    data = codes.numpy()
    labels = KMeans(n_clusters=K_CLUSTERS, random_state=0, n_init="auto").fit(data).labels_
    # the centroids of the labels, as a user then reads them
    return np.stack([data[labels == c].mean(0) for c in range(K_CLUSTERS)])


def plain_cluster_statistics(codes: torch.Tensor, labels: torch.Tensor, sizes: torch.Tensor) -> tuple:
    """What ``clusters(codes, labels)`` reports, by hand in float64: centroids, per-cluster
    variances, eta^2 and F per latent."""
    x, k = codes.double(), sizes.shape[0]
    centroids = torch.zeros(k, x.shape[1], dtype=torch.float64).index_add_(0, labels, x) / sizes[:, None]
    within = torch.zeros_like(centroids).index_add_(0, labels, (x - centroids[labels]) ** 2)
    between = (sizes[:, None] * (centroids - x.mean(0)) ** 2).sum(0)
    eta = between / (between + within.sum(0))
    f_stat = (between / (k - 1)) / (within.sum(0) / (x.shape[0] - k))
    return centroids, within / sizes[:, None], eta, f_stat


def plain_svd(codes: torch.Tensor) -> torch.Tensor:
    centred = codes.double() - codes.double().mean(0)
    return torch.linalg.svd(centred, full_matrices=False).Vh


def plain_sklearn_pca(codes: torch.Tensor) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(svd_solver="full").fit(codes.numpy()).components_


def rows_for(n: int, dims: int) -> list[tuple[str, str, callable, callable]]:
    """(function, alternative, library call, alternative's call) for one size."""
    encoder, data = model_and_data(n, dims)
    array = data.numpy()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data), batch_size=BATCH)
    posterior = ls.encode(encoder, data, batch_size=BATCH, progress=False)
    mu, logvar = posterior.mu, posterior.logvar
    found = ls.clusters(mu, k=K_CLUSTERS)
    (i, j), _ = found.closest_and_farthest()

    def cluster_directions():
        found = ls.clusters(mu, k=K_CLUSTERS)
        (i, j), _ = found.closest_and_farthest()
        return found.directions(i, j)

    def plain_directions():
        centroids = torch.from_numpy(plain_kmeans(mu)).double()
        distance = torch.cdist(centroids, centroids).fill_diagonal_(float("inf"))
        a, b = divmod(int(distance.argmin()), K_CLUSTERS)
        return torch.nn.functional.normalize(centroids[b] - centroids[a], dim=0)

    return [
        ("`encode` (tensor)", "inference-mode loop", lambda: ls.encode(encoder, data, batch_size=BATCH, progress=False),
         lambda: plain_encode(encoder, data.split(BATCH))),
        ("`encode` (numpy array)", "loop over `torch.from_numpy` slices",
         lambda: ls.encode(encoder, array, batch_size=BATCH, progress=False),
         lambda: plain_encode(encoder, (torch.from_numpy(array[s : s + BATCH]) for s in range(0, n, BATCH)))),
        ("`encode` (DataLoader)", "loop over the same loader", lambda: ls.encode(encoder, loader, progress=False),
         lambda: plain_encode(encoder, loader)),
        ("`diagnose`", "mean, SD, posterior variance, KL in torch", lambda: ls.diagnose(posterior),
         lambda: plain_diagnose(mu, logvar)),
        (f"`clusters(k={K_CLUSTERS})`", "sklearn `KMeans` + centroids", lambda: ls.clusters(mu, k=K_CLUSTERS),
         lambda: plain_kmeans(mu)),
        ("`clusters(labels=...)`", "centroids, variances, eta^2, F by hand", lambda: ls.clusters(mu, found.labels),
         lambda: plain_cluster_statistics(mu, found.labels, found.sizes)),
        ("`Clusters.directions` (with `clusters`)", "KMeans, cdist, normalise", cluster_directions, plain_directions),
        ("`principal_directions`", "`torch.linalg.svd` (centred, float64)", lambda: ls.principal_directions(mu),
         lambda: plain_svd(mu)),
        ("`principal_directions`", "sklearn `PCA`", lambda: ls.principal_directions(mu),
         lambda: plain_sklearn_pca(mu)),
    ]


# Seconds of rest before each timed call: scikit-learn's OpenMP threads spin for a while after
# KMeans and PCA (200 ms by default), and on a few cores they slowed whichever call came next.
SETTLE_SECONDS = 0.3


def best_times(rows, rounds: int, settle: float) -> list[tuple[float, float]]:
    best = [[float("inf"), float("inf")] for _ in rows]
    for round_ in range(rounds + 1):  # (round 0 warms up, untimed)
        for r, (_, _, library, plain) in enumerate(rows):
            order = [(0, library), (1, plain)]  # (each side first in every other round)
            for side, fn in order if round_ % 2 else order[::-1]:
                time.sleep(settle)
                start = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - start
                if round_ > 0:
                    best[r][side] = min(best[r][side], elapsed)
    return best


# --- peak memory, in a fresh subprocess per call -------------------------------------------

MEMORY_FUNCTIONS = ("encode", "diagnose", "clusters", "principal_directions")


def memory_child(functions: list[str], n: int, dims: int) -> None:
    """Runs in the subprocess: builds the inputs, then one call of each function; prints the
    peak's growth during each (meaningful for the first only: the peak never falls)."""
    encoder, data = model_and_data(n if "encode" in functions else BATCH, dims)
    posterior = ls.encode(encoder, data[:BATCH], progress=False)  # (warms up everything but the sizes)
    if functions != ["encode"]:
        generator = torch.Generator().manual_seed(0)
        posterior = ls.Posterior(torch.randn(n, dims, generator=generator),
                                 torch.randn(n, dims, generator=generator) - 3)
        # (warm-ups: imports and first calls are not the call's memory)
        few = posterior[: min(n, 1000)]
        ls.clusters(few.mu, k=2), ls.diagnose(few), ls.principal_directions(few.mu)
    calls = {"encode": lambda: ls.encode(encoder, data, batch_size=BATCH, progress=False),
             "diagnose": lambda: ls.diagnose(posterior),
             "clusters": lambda: ls.clusters(posterior.mu, k=K_CLUSTERS),
             "principal_directions": lambda: ls.principal_directions(posterior.mu)}
    growth = {}
    for function in functions:
        reset_peak()
        before = peak_kib()
        calls[function]()
        growth[function] = (peak_kib() - before) * 1024
    print(json.dumps(growth))


def memory_growth(functions: list[str], n: int, dims: int) -> dict[str, int]:
    out = subprocess.run([sys.executable, __file__, "--_memory", ",".join(functions), str(n), str(dims)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:.0f} MiB" if nbytes >= 2**20 else f"{nbytes / 2**10:.0f} KiB"


def main() -> None:
    args = build_parser().parse_args()
    if args._memory:
        functions, n, dims = args._memory
        memory_child(functions.split(","), int(n), int(dims))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.smoke:
        args.rounds, sizes = 1, [300]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; MLP encoder {FEATURES} -> {HIDDEN} -> 2 x {args.dims}, batch {BATCH}; "
          f"best of {args.rounds} interleaved rounds\n")
    for n in sizes:
        rows = rows_for(n, args.dims)
        best = best_times(rows, args.rounds, 0.0 if args.smoke else SETTLE_SECONDS)
        print(f"N = {n:,}, D = {args.dims}\n")
        print_table(["function", "alternative", "latentsweep", "alternative's time", "latentsweep / alternative"],
                    [[name, other, f"{lib * 1e3:.1f} ms", f"{plain * 1e3:.1f} ms", f"{lib / plain:.2f}x"]
                     for (name, other, _, _), (lib, plain) in zip(rows, best)])
        print()
    if args.no_memory:
        return
    print(f"Peak memory: growth of a fresh process's resident set during one call, D = {args.dims}\n")
    table = []
    for n in sizes:
        codes = n * args.dims * 4
        # One fresh process per function (the peak never falls); --smoke: one for all of them.
        groups = [list(MEMORY_FUNCTIONS)] if args.smoke else [[f] for f in MEMORY_FUNCTIONS]
        growth = {k: v for group in groups for k, v in memory_growth(group, n, args.dims).items()}
        for function in MEMORY_FUNCTIONS:
            table.append([f"`{function}`", f"{n:,}", mib(growth[function]), mib(codes),
                          f"{growth[function] / codes:.1f}x"])
    print_table(["function", "N", "peak growth", "float32 mu [N, D]", "growth / mu"], table)


if __name__ == "__main__":
    main()
