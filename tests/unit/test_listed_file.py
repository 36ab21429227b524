"""backends.drivers.dir_listing.listed_file: the same volume as the model's keywords make."""

from __future__ import annotations

from dataclasses import fields

from backends.drivers.dir_listing import listed_file
from backends.model import NO_ITEMS, BackingStore, Permissions, VolumeInfo


def test_listed_file_is_the_keyword_volume_field_for_field() -> None:
    """Every argument lands in its own field (a field added or moved in VolumeInfo
    without listed_file following fails here), and the rest are the defaults."""
    perms = Permissions(0o644, 1, 2)
    args = dict(fmt="qcow2", capacity=10, physical=11, allocation=12,
                backing=BackingStore("/b", "raw"), data_file="/d",
                extent_files=[("e", "/e")], cluster_size=65536, compat="1.1",
                features=["lazy_refcounts"], encryption="luks", permissions=perms,
                signature=(5, 11, 24, 7), file_id=(5, 6, 8), times_ns=(1, 2, 3))
    made = listed_file("v.qcow2", "/p/v.qcow2", **args)  # type: ignore[arg-type]
    fmt = args.pop("fmt")
    want = VolumeInfo(name="v.qcow2", key="/p/v.qcow2", path="/p/v.qcow2", format=fmt,
                      probed_format=fmt, **args)  # type: ignore[arg-type]
    assert made == want
    for f in fields(VolumeInfo):
        assert getattr(made, f.name) is getattr(want, f.name) or f.name in (
            "name", "key", "path"), f.name
    assert made.extents is NO_ITEMS and made.type == "file" and not made.pending
