"""diagnose's memory check counts what diagnose holds: its peak above the inputs (measured in a
fresh process, tests/peak_memory.py) stays within diagnosis.STATISTICS_COPIES float64 copies of
the codes (it was ~6 copies against 4 counted: the check refused too-large inputs ~1.5x too
late, after the allocation had begun)."""

from __future__ import annotations

import pytest

from latentsweep import diagnosis

from peak_memory import linux_only, peak_bytes

N, D = 400_000, 32  # 102 MB a float64 copy: the interpreter's own noise is well below one

SETUP = """
import torch, latentsweep
torch.manual_seed(0)
mu = torch.randn({n}, {d})
logvar = torch.randn({n}, {d}).mul_(0.1).sub_(2.0) if {with_logvar} else None
posterior = latentsweep.Posterior(mu, logvar)
latentsweep.diagnose(posterior[:100])  # (imports and one-time allocations before the baseline)
"""


@linux_only
@pytest.mark.parametrize("with_logvar", [True, False], ids=["vae", "autoencoder"])
def test_diagnose_peak_is_within_the_counted_copies(with_logvar):
    copies = peak_bytes(SETUP.format(n=N, d=D, with_logvar=with_logvar), "latentsweep.diagnose(posterior)") / (N * D * 8)
    # The check must not be late (the peak within the count) nor far too early (a VAE's
    # diagnosis refused at twice what it needs).
    assert copies <= diagnosis.STATISTICS_COPIES, copies
    if with_logvar:
        assert copies > diagnosis.STATISTICS_COPIES / 2, copies
