"""Values as JSON can hold them: JSON has no NaN or infinity (Python's json module writes
``NaN``/``Infinity``, which strict readers such as JavaScript's ``JSON.parse`` reject)."""

from __future__ import annotations

import math


def json_ready(value):
    """``value`` with every NaN and infinite float replaced by ``None``, recursively through
    dicts, lists and tuples (tuples become lists)."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
