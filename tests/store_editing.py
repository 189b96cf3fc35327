"""Editing a store's metadata by hand, as a user's tool, a bad copy or a forger would: the tests
of stores that must refuse (or survive) what they find."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


@contextlib.contextmanager
def edited_json(folder: Path):
    """``folder``'s ``zarr.json`` (a store's, or one of its arrays') as a dict, written back
    when the block ends."""
    meta_file = Path(folder) / "zarr.json"
    meta = json.loads(meta_file.read_text())
    yield meta
    meta_file.write_text(json.dumps(meta))


@contextlib.contextmanager
def edited_attributes(store: Path):
    """The store's latentsweep attributes (params, plan, geometry, checksums...) as a dict,
    written back when the block ends."""
    with edited_json(store) as meta:
        yield meta["attributes"]["latentsweep"]
