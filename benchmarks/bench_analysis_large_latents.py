"""principal_directions and diagnose at large latent sizes (D in the thousands): the routes that
avoid the D x D eigendecomposition against the computation they replaced, in one run.

    python benchmarks/bench_analysis_large_latents.py [--cases N:D:k,...] [--diagnose N:D,...] [--passes N:D,...]
        [--rounds 1] [--smoke]

Codes: N rows of D float32 latents, 8 dominant directions (SDs 10 down to 1) plus noise of SD 0.1
and an offset. Each row times the library's call now and as it was before, in the same process,
alternating (--rounds rounds, the best of each):

- ``principal_directions(codes, k)``: before is the same call with the exact method's previous
  core (``old_exact`` below, the function as it was, swapped in): the D x D covariance, every
  eigenvector from ``torch.linalg.eigh``, and a complete D x D QR of the directions found
  whenever eigenvalues were left unresolved (always for N <= D rows), even with no component
  left to find. Now: the N x N Gram matrix for N <= 0.75 D rows; only the k leading eigenvectors
  of a CPU matrix of 1024 or more when k is at most an eighth of it; no needless QR. The last
  column is the largest difference between the two results' vectors (the same sign rule).
- ``diagnose(codes)`` (a plain autoencoder's codes: its axis statistics are the D x D part):
  before, its Wasserstein correlation went through the checks of a caller's covariance (one
  more D x D eigvalsh); now it does not (the same bits).

A second table times the passes over blocks of rows (``--passes``): ``diagnose(codes)`` (its
axis statistics above 1024 latents: a randomised pass, 10 passes over the codes) and
``principal_directions(codes, 16, method="randomized")`` with each block of rows converted into
a new float64 tensor (``new_tensor_per_block`` below, swapped in: what ``row_blocks`` did) and
into the one buffer each pass now reuses. The last column says whether the results are the same
bits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import time

import torch
from _timing import add_smoke_option, print_table

import latentsweep as ls
from latentsweep import directions, principal
from latentsweep.metrics import unsupervised_scores

DOMINANT = 8


def old_exact(codes, mean, k):
    """latentsweep.principal._exact before this change, verbatim."""
    latent = codes.shape[1]
    found_values, found_vectors, found = [], [], 0
    complement = None
    while found < k:
        width = latent if complement is None else complement.shape[1]
        covariance = torch.zeros(width, width, dtype=torch.float64, device=codes.device)
        for centred in codes.centred_blocks(mean):
            if complement is not None:
                centred = centred @ complement
            covariance += centred.T @ centred
        covariance /= codes.shape[0] - 1
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        order = torch.argsort(eigenvalues, descending=True, stable=True)
        eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
        if complement is not None:
            eigenvectors = complement @ eigenvectors
        resolved = int((eigenvalues >= principal.RESOLVED_SHARE * eigenvalues[0]).sum()) if eigenvalues[0] > 0 else width
        found_values.append(eigenvalues[:resolved])
        found_vectors.append(eigenvectors[:, :resolved])
        found += resolved
        if resolved == width:
            break
        complement = torch.linalg.qr(torch.cat(found_vectors, dim=1), mode="complete").Q[:, found:]
    values, vectors = torch.cat(found_values)[:k], torch.cat(found_vectors, dim=1)[:, :k]
    return values.clamp_min(0.0), vectors.T


@contextlib.contextmanager
def before():
    """The library as it was: the old exact core, the checked Wasserstein correlation."""
    saved = principal._exact, unsupervised_scores.formed_covariance_wasserstein_correlation
    principal._exact = old_exact
    unsupervised_scores.formed_covariance_wasserstein_correlation = unsupervised_scores.gaussian_wasserstein_correlation
    try:
        yield
    finally:
        principal._exact, unsupervised_scores.formed_covariance_wasserstein_correlation = saved


def new_tensor_per_block(codes, *extra):
    """latentsweep.directions.row_blocks before the reused buffer: a new float64 tensor per
    block (``double()``, or a float64 copy, as scaled_rows made of float64 codes)."""
    rows = directions.rows_per_block(codes)
    for begin in range(0, codes.shape[0], rows):
        block = codes[begin : begin + rows].to(torch.float64, copy=True)
        yield (block, *(t[begin : begin + rows] for t in extra)) if extra else block


@contextlib.contextmanager
def blocks_before():
    """The passes as they were: each block of rows a new tensor."""
    saved = principal.row_blocks
    principal.row_blocks = new_tensor_per_block
    try:
        yield
    finally:
        principal.row_blocks = saved


def make_codes(num_rows: int, latent: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(latent, DOMINANT, generator=g, dtype=torch.float64)).Q.T
    z = torch.randn(num_rows, DOMINANT, generator=g, dtype=torch.float64) * torch.logspace(1, 0, DOMINANT, dtype=torch.float64)
    noise = 0.1 * torch.randn(num_rows, latent, generator=g, dtype=torch.float64)
    return (z @ basis + noise + 3).float()


def best_of_alternating(old, new, rounds: int, state=before) -> tuple[float, float, object, object]:
    """Best times of old() (inside state()) and new(), alternating, a rest before each call
    (BLAS threads that spin after a call slowed the next one on few cores); their last results."""
    times = {"old": [], "new": []}
    results = {}
    for _ in range(rounds):
        for name, fn in (("old", old), ("new", new)):
            time.sleep(0.3)
            with state() if name == "old" else contextlib.nullcontext():
                started = time.perf_counter()
                results[name] = fn()
                times[name].append(time.perf_counter() - started)
    return min(times["old"]), min(times["new"]), results["old"], results["new"]


def route(num_rows: int, latent: int, k: int | None) -> str:
    gram = num_rows <= principal.GRAM_MAX_ROWS_PER_LATENT * latent
    size = num_rows if gram else latent
    wanted = min(num_rows - 1, latent) if k is None else k
    partial = size >= principal.PARTIAL_MIN_SIZE and wanted <= principal.PARTIAL_MAX_SHARE * size
    return ("Gram N x N" if gram else "covariance D x D") + (f", top {wanted} only" if partial else "")


def same_bits(a, b) -> bool:
    """Whether two results (a Diagnosis or Directions) hold the same tensors and numbers."""
    for name in vars(a):
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, torch.Tensor) and not (torch.equal(x, y) or x.is_floating_point() and torch.equal(
                x.isnan(), y.isnan()) and torch.equal(x.nan_to_num(), y.nan_to_num())):  # (NaN where both are)
            return False
        if not isinstance(x, torch.Tensor) and name != "flags" and x != y:
            return False
    return True


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [tuple(int(v) for v in case.split(":")) for case in text.split(",")]


def parse_cases(text: str) -> list[tuple[int, int, int | None]]:
    cases = []
    for case in text.split(","):
        n, d, k = case.split(":")
        cases.append((int(n), int(d), None if k in ("", "all") else int(k)))
    return cases


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="500:1024:all,2000:1024:all,2000:1024:16,2000:4096:all,2000:4096:16,"
                                           "8000:4096:16",
                        help="principal_directions cases N:D:k, comma-separated (k 'all': the default k)")
    parser.add_argument("--diagnose", default="2000:1024,50000:1024", help="diagnose cases N:D, comma-separated")
    parser.add_argument("--passes", default="20000:2048,50000:4096",
                        help="cases N:D of the second table (each block of rows a new tensor, or one buffer)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds; the best of each is shown")
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.smoke:  # every route at tiny sizes: the partial eigensolver's threshold lowered to reach them
        principal.PARTIAL_MIN_SIZE = 32
        cases, diagnose_cases, rounds = [(20, 64, None), (300, 64, None), (300, 64, 4), (40, 64, 4)], [(100, 32)], 1
        pass_cases = [(100, 32)]
        directions.CHUNK_VALUES = 32 * 30  # (blocks of 30 rows: the passes' route at tiny sizes)
    else:
        cases = parse_cases(args.cases)
        diagnose_cases, pass_cases = parse_sizes(args.diagnose), parse_sizes(args.passes)
        rounds = args.rounds
    importlib.import_module("scipy.linalg")  # (the top-k route's first call imports it, 0.17 s once: not timed)
    print(f"float32 codes, {DOMINANT} dominant directions + noise; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; best of {rounds} alternating round(s)\n")
    rows = []
    for num_rows, latent, k in cases:
        codes = make_codes(num_rows, latent)
        old, new, old_result, new_result = best_of_alternating(
            lambda: ls.principal_directions(codes, k), lambda: ls.principal_directions(codes, k), rounds)
        difference = float((old_result.vectors - new_result.vectors).abs().max())
        rows.append(["`principal_directions`", f"{num_rows:,}", f"{latent:,}", "all" if k is None else str(k),
                     route(num_rows, latent, k), f"{old:.3f} s", f"{new:.3f} s", f"**{old / new:.1f}x**",
                     f"{difference:.1e}"])
    for num_rows, latent in diagnose_cases:
        codes = make_codes(num_rows, latent)
        old, new, old_result, new_result = best_of_alternating(lambda: ls.diagnose(codes), lambda: ls.diagnose(codes),
                                                               rounds)
        same = old_result.axes == new_result.axes
        rows.append(["`diagnose`", f"{num_rows:,}", f"{latent:,}", "", "no check of its own covariance",
                     f"{old:.3f} s", f"{new:.3f} s", f"**{old / new:.1f}x**", "same axes" if same else "axes differ"])
    print_table(["function", "N", "D", "k", "route now", "before", "now", "before / now", "max vector difference"], rows)
    print()
    rows = []
    calls = {"`diagnose`": ls.diagnose,
             "`principal_directions(k=16, randomized)`": lambda c: ls.principal_directions(c, 16, method="randomized")}
    for num_rows, latent in pass_cases:
        codes = make_codes(num_rows, latent)
        for label, call in calls.items():
            old, new, old_result, new_result = best_of_alternating(lambda: call(codes), lambda: call(codes), rounds,
                                                                   blocks_before)
            rows.append([label, f"{num_rows:,}", f"{latent:,}", f"{directions.rows_per_block(codes):,} rows",
                         f"{old:.3f} s", f"{new:.3f} s", f"**{old / new:.2f}x**",
                         "same bits" if same_bits(old_result, new_result) else "differ"])
    print_table(["function", "N", "D", "blocks of", "a new tensor per block", "one buffer per pass", "before / now",
                 "results"], rows)


if __name__ == "__main__":
    main()
