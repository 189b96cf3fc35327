"""Fake (meta) kernels: shapes and dtypes of the compiled ops without running them, so they
work under torch.compile and torch.library.opcheck."""

from __future__ import annotations

import torch


@torch.library.register_fake("latentsweep::sample")
def _sample_fake(mu, logvar, n, seed=0, row_offset=0, sample_offset=0):
    return mu.new_empty((mu.shape[0], n, mu.shape[1]))


@torch.library.register_fake("latentsweep::traversal_codes")
def _traversal_codes_fake(anchors, dims, values, start=0, count=None):
    if count is None:
        count = anchors.shape[0] * dims.shape[0] * values.shape[2] - start
    return anchors.new_empty((count, anchors.shape[1]))


@torch.library.register_fake("latentsweep::sample_prior_")
def _sample_prior_fake(self, seed=0, offset=0):
    return None


@torch.library.register_fake("latentsweep::traversal_codes_into")
def _traversal_codes_into_fake(anchors, dims, values, start, count, out):
    return None
