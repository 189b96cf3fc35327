"""A first look at latentsweep's core ops on random codes (no model needed).

    python examples/quickstart.py
"""

import torch

import latentsweep as ls

print("build:", ls.build_info())

# An encoder's output for 4 inputs with an 8-dimensional latent space: confident posteriors.
mu = torch.randn(4, 8)
logvar = torch.full((4, 8), -6.0)  # posterior SD = exp(-3) ~ 0.05

# Reparameterised samples: [N, n, D], reproducible and sliceable.
z = ls.sample(mu, logvar, 1000, seed=0)
print("samples:", tuple(z.shape), "posterior SD of dim 0:", float(z[0, :, 0].std()))
assert torch.equal(z[:, 500:], ls.sample(mu, logvar, 500, seed=0, sample_offset=500))

# Why traversing by the posterior shows nothing: +-2 posterior SDs is a tiny move.
posterior = ls.traversal_values(mu, mode="posterior", logvar=logvar, steps=5)
prior = ls.traversal_values(mu, mode="prior", steps=5)
print("dim 0 of input 0, posterior mode:", posterior[0, 0].tolist())
print("dim 0 of input 0, prior mode:    ", prior[0, 0].tolist())

# The traversal grid (anchors x dims x steps), one chunk at a time.
codes = ls.traversal_codes(mu, dims=[0, 3], values=prior[:, [0, 3]], start=0, count=10)
print("first 10 grid rows:", tuple(codes.shape))
