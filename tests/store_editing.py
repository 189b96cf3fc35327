"""Editing a store's metadata by hand, as a user's tool, a bad copy or a forger would: the tests
of stores that must refuse (or survive) what they find."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from latentsweep.merge import UnitStatistics, unit_latents
from latentsweep.plan import plan_from_dict
from latentsweep.stores import encode_record, read_record


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


def record_shapes(store: Path, record: Path) -> dict[str, tuple[int, ...]]:
    """The shapes of a unit record's statistics, as the store's plan and geometry give them (the
    latents its traversals touch)."""
    attrs = json.loads((Path(store) / "zarr.json").read_text())["attributes"]["latentsweep"]
    plan, geometry = plan_from_dict(attrs["plan"]), attrs["geometry"]
    unit = int(Path(record).stem.removeprefix("u"))
    _, count = unit_latents(*plan.unit_rows_of(unit), geometry["num_steps"], geometry["num_dims"])
    return UnitStatistics.shapes(count, math.prod(geometry["out_shape"]))


def rewrite_unit_records(store: Path, new_header) -> None:
    """Every unit record of the store written again with ``new_header(header)`` as its header,
    its statistics as they are (as a version that wrote such headers would have)."""
    for record in (Path(store) / "units").glob("*.rec"):
        header, arrays = read_record(record, record_shapes(store, record))
        record.write_bytes(encode_record(new_header(header), arrays))
