"""Shares (of variance, of zeros, of a range) as the texts and tables print them."""

from __future__ import annotations

import math


def format_share(share: float) -> str:
    """A share as a whole percentage, ``0.372`` -> ``"37%"``; one that is not exactly 0 or 1 never
    reads "0%" or "100%" (a dead ReLU head's zero share of 0.999 read "100%"): it gets the digits
    that tell it apart, up to two, then ``"<0.01%"`` or ``">99.99%"`` (``">100%"`` just above 1)."""
    text = f"{share:.0%}"
    if share in (0, 1) or not math.isfinite(share) or float(text[:-1]) not in (0, 100):
        return text
    for digits in (1, 2):
        text = f"{share:.{digits}%}"
        if float(text[:-1]) not in (0, 100):
            return text
    return "<0.01%" if abs(share) < 0.5 else ">99.99%" if share < 1 else ">100%"
