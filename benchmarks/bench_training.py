"""What looking at the latent space costs during training, on the shipped digits VAE.

    python benchmarks/bench_training.py [--repeats 5] [--sample 512] [--epochs 5] [--smoke]

Measured in one run, as users get it:
  (a) one training epoch of the demo digits VAE (1797 digits, batch 128, Adam, the ELBO),
  (b) `log_traversals` to a TensorBoard SummaryWriter on a fixed sample of `--sample` digits
      (defaults: 8 anchors, all 10 latents, 11 steps, one grid + KL bars), and its part without
      pictures (encode + diagnose + traverse),
  (c) Lightning: `--epochs` epochs of `Trainer.fit` with a TensorBoardLogger and
      `TraversalCallback` logging every epoch: each epoch and each call of the callback timed
      inside the fit (so the rest of the machine's load does not enter the difference).
Prints Markdown tables for BENCHMARKS.md; the ratios compare with a training epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch
from torch.utils.data import DataLoader, TensorDataset

import latentsweep as ls
from _timing import add_smoke_option, median_seconds, print_table
from latentsweep.demo.data import load_digits_data
from latentsweep.demo.registry import load_demo_model

BATCH = 128


def elbo_loss(model, x: torch.Tensor) -> torch.Tensor:
    mu, logvar = model.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = model.decoder(z).flatten(1)
    nll = torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum") / x.shape[0]
    return nll + 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1).mean()


def train_epoch(model, optimizer, loader) -> None:
    model.train()
    for (x,) in loader:
        loss = elbo_loss(model, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def lightning_timings(model_factory, data, sample, epochs: int) -> tuple[list[float], list[float]]:
    """Fits with a TensorBoardLogger and TraversalCallback (every epoch); returns the seconds of
    each training epoch without the callback's part, and of each of the callback's calls."""
    import lightning.pytorch as pl

    from latentsweep.integrations.lightning import TraversalCallback

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            vae = model_factory()
            self.encoder, self.decoder = vae.encoder, vae.decoder

        def training_step(self, batch, batch_idx):
            return elbo_loss(self, batch[0])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=2e-3)

    class Timed(TraversalCallback):
        """Times the callback's work inside the fit, and the epoch around it."""

        epochs, calls = [], []

        def on_train_epoch_start(self, trainer, pl_module):
            self.epoch_started = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            started = time.perf_counter()
            super().on_train_epoch_end(trainer, pl_module)
            self.calls.append(time.perf_counter() - started)
            self.epochs.append(started - self.epoch_started)

    timed = Timed(sample)
    with tempfile.TemporaryDirectory() as logdir, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(
            accelerator="cpu", devices=1, max_epochs=epochs, logger=pl.loggers.TensorBoardLogger(logdir),
            callbacks=[timed], enable_progress_bar=False, enable_model_summary=False,
            enable_checkpointing=False, log_every_n_steps=50,
        )
        trainer.fit(Lit(), DataLoader(TensorDataset(data), batch_size=BATCH, shuffle=True))
    return timed.epochs, timed.calls


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample", type=int, default=512, help="inputs encoded per logging epoch")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the Lightning fit")
    add_smoke_option(parser)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.smoke:  # 16 inputs: more than the 8 anchors log_traversals takes by default
        args.repeats, args.sample, args.epochs = 1, 16, 1
    device = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    data, _ = load_digits_data()
    sample = data[: args.sample]
    model = load_demo_model("digits-vae")
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    loader = DataLoader(TensorDataset(data), batch_size=BATCH, shuffle=True)
    epoch = median_seconds(lambda: train_epoch(model, optimizer, loader), repeats=args.repeats, device=device)

    from torch.utils.tensorboard import SummaryWriter

    from latentsweep.integrations.tensorboard import log_traversals

    def statistics_only():
        posterior = ls.encode(model.encoder, sample, progress=False)
        diagnosis = ls.diagnose(posterior)
        ls.traverse(model.decoder, posterior[:8], mode=diagnosis.recommended_mode, steps=11, progress=False)

    with tempfile.TemporaryDirectory() as logdir, SummaryWriter(logdir) as writer:
        step = iter(range(10**6))
        logged = median_seconds(lambda: log_traversals(writer, model.encoder, model.decoder, sample, step=next(step)),
                                repeats=args.repeats, device=device)
    stats = median_seconds(statistics_only, repeats=args.repeats, device=device)

    print(f"\ndigits-vae (64 -> 128 -> 128 -> 10), training epoch: 1797 digits, batch {BATCH}; "
          f"logging: {args.sample} digits, 8 anchors x 10 latents x 11 steps\n")
    print_table(
        ["what", "median", "vs one training epoch"],
        [
            ["one training epoch (plain loop)", f"{epoch * 1e3:.0f} ms", "1.0x"],
            ["`log_traversals` (encode, diagnose, traverse, 2 pictures, TensorBoard)", f"{logged * 1e3:.0f} ms", f"{logged / epoch:.2f}x"],
            ["of which encode + diagnose + traverse", f"{stats * 1e3:.0f} ms", f"{stats / epoch:.2f}x"],
        ],
    )

    epochs, calls = lightning_timings(lambda: load_demo_model("digits-vae"), data, sample, args.epochs)
    lightning_epoch, callback = statistics.median(epochs), statistics.median(calls)
    print(f"\nLightning, {args.epochs} epochs with a TensorBoardLogger, TraversalCallback every epoch "
          "(timed inside the fit)\n")
    print_table(
        ["what", "median", "vs one training epoch"],
        [
            ["one training epoch", f"{lightning_epoch * 1e3:.0f} ms", "1.0x"],
            ["`TraversalCallback` at its end (snapshot, logging)", f"**{callback * 1e3:.0f} ms**", f"{callback / lightning_epoch:.2f}x"],
        ],
    )


if __name__ == "__main__":
    main()
