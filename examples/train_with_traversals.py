"""Watch a VAE's latent space while it trains: the digits VAE of the demo, trained from scratch.

    python examples/train_with_traversals.py                 # Lightning + TraversalCallback
    python examples/train_with_traversals.py --plain         # a plain loop + log_traversals
    python examples/train_with_traversals.py --relu-heads    # the classic mistake, flagged
    tensorboard --logdir runs                                # then look at IMAGES and TEXT

Needs `pip install 'latentsweep[lightning,tensorboard]'`. Nothing is downloaded: the digits come
with scikit-learn.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader, TensorDataset

from latentsweep.demo.data import load_digits_data
from latentsweep.demo.models import DigitsVAE


def elbo_loss(encoder, decoder, x: torch.Tensor) -> torch.Tensor:
    """Negative ELBO per input: Bernoulli likelihood of the pixels, KL to N(0, I)."""
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    recon = decoder(z).flatten(1)
    nll = torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum") / x.shape[0]
    return nll + 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(1).mean()


def with_lightning(vae, train, sample, args) -> None:
    import lightning.pytorch as pl

    from latentsweep.integrations.lightning import TraversalCallback

    class LitVAE(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = vae.encoder, vae.decoder

        def training_step(self, batch, batch_idx):
            loss = elbo_loss(self.encoder, self.decoder, batch[0])
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=2e-3)

    loggers = [pl.loggers.TensorBoardLogger(args.out, name="lightning"), pl.loggers.CSVLogger(args.out, name="lightning-csv")]
    trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", logger=loggers,
                         callbacks=[TraversalCallback(sample, every_n_epochs=args.every)],
                         enable_checkpointing=False)
    trainer.fit(LitVAE(), DataLoader(TensorDataset(train), batch_size=128, shuffle=True))
    print(f"logged to {loggers[0].log_dir} (TensorBoard) and {loggers[1].log_dir} (CSV, PNG files)")


def with_plain_loop(vae, train, sample, args) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from latentsweep.integrations.tensorboard import log_traversals

    optimizer = torch.optim.Adam(vae.parameters(), lr=2e-3)
    loader = DataLoader(TensorDataset(train), batch_size=128, shuffle=True)
    step = 0
    with SummaryWriter(f"{args.out}/plain") as writer:
        for epoch in range(args.epochs):
            vae.train()
            for (x,) in loader:
                loss = elbo_loss(vae.encoder, vae.decoder, x)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                writer.add_scalar("loss", loss.item(), step)
                step += 1
            if (epoch + 1) % args.every == 0:
                snapshot = log_traversals(writer, vae.encoder, vae.decoder, sample, step=step)
                print(f"epoch {epoch + 1}: {snapshot.diagnosis.summary()} ({snapshot.seconds:.2f} s)")
    print(f"logged to {args.out}/plain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", action="store_true", help="a plain PyTorch loop instead of Lightning")
    parser.add_argument("--relu-heads", action="store_true", help="ReLU on the mean and log-variance heads")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--every", type=int, default=5, help="log every n epochs")
    parser.add_argument("--out", default="runs")
    args = parser.parse_args()

    torch.manual_seed(0)
    images, _ = load_digits_data()
    train, sample = images[:1500], images[1500:]  # the sample: a fixed set of held-out digits
    relu = "relu" if args.relu_heads else None
    vae = DigitsVAE(latent_dim=10, mean_activation=relu, logvar_activation=relu)
    (with_plain_loop if args.plain else with_lightning)(vae, train, sample, args)


if __name__ == "__main__":
    main()
