"""Shares (of variance, of zeros, of a range) as the texts and tables print them."""

from __future__ import annotations

import math


def format_share(share: float, digits: int = 0) -> str:
    """A share as a percentage with ``digits`` decimals (default whole: ``0.372`` -> ``"37%"``;
    ``digits=1``: ``"37.2%"``); one that is not exactly 0 or 1 never reads "0%" or "100%" (a dead
    ReLU head's zero share of 0.999 read "100%"): it gets the digits that tell it apart, up to
    two (or ``digits``), then ``"<0.01%"`` or ``">99.99%"`` (``">100%"`` just above 1)."""
    text = f"{share:.{digits}%}"
    if share in (0, 1) or not math.isfinite(share) or float(text[:-1]) not in (0, 100):
        return text
    most = max(2, digits)
    for more in range(digits + 1, most + 1):
        text = f"{share:.{more}%}"
        if float(text[:-1]) not in (0, 100):
            return text
    least = f"{10.0 ** -most:.{most}f}"
    return f"<{least}%" if abs(share) < 0.5 else f">{100 - 10.0 ** -most:.{most}f}%" if share < 1 else ">100%"
