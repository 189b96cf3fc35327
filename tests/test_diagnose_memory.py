"""diagnose's memory check counts what diagnose holds: its peak, measured in a fresh process as
the resident high-water mark above the inputs, stays within diagnosis.STATISTICS_COPIES float64
copies of the codes (it was ~6 copies against 4 counted: the check refused too-large inputs
~1.5x too late, after the allocation had begun)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from latentsweep import diagnosis

N, D = 400_000, 32  # 102 MB a float64 copy: the interpreter's own noise is well below one

SCRIPT = """
import json, resource, sys, torch, latentsweep
torch.manual_seed(0)
mu = torch.randn({n}, {d})
logvar = torch.randn({n}, {d}).mul_(0.1).sub_(2.0) if {with_logvar} else None
posterior = latentsweep.Posterior(mu, logvar)
latentsweep.diagnose(posterior[:100])  # (imports and one-time allocations before the baseline)
resident = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize()
latentsweep.diagnose(posterior)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"copies": (peak - resident) / ({n} * {d} * 8)}}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and ru_maxrss in KiB (Linux)")
@pytest.mark.parametrize("with_logvar", [True, False], ids=["vae", "autoencoder"])
def test_diagnose_peak_is_within_the_counted_copies(with_logvar):
    script = SCRIPT.format(n=N, d=D, with_logvar=with_logvar)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    copies = json.loads(completed.stdout.strip().splitlines()[-1])["copies"]
    # The check must not be late (the peak within the count) nor far too early (a VAE's
    # diagnosis refused at twice what it needs).
    assert copies <= diagnosis.STATISTICS_COPIES, copies
    if with_logvar:
        assert copies > diagnosis.STATISTICS_COPIES / 2, copies
