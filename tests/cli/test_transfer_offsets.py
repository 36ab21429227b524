"""vol-upload / vol-download with --offset and --length, by name and in their places (virsh
takes them as numbers): the bytes land where asked; a negative one is refused."""

from __future__ import annotations

import os
from pathlib import Path


def test_upload_and_download_at_an_offset(cli, tmp_path: Path) -> None:
    images = tmp_path / "images"
    assert cli("pool-define-as", "p", "dir", "--target", str(images)).code == 0
    assert cli("pool-start", "p", "--build").code == 0
    assert cli("vol-create-as", "p", "v.raw", "1M").code == 0
    src = tmp_path / "src.bin"
    data = os.urandom(100_000)
    src.write_bytes(data)
    r = cli("vol-upload", "--pool", "p", "v.raw", str(src), "--offset", "4096")
    assert r.code == 0, r
    assert (images / "v.raw").read_bytes()[4096:104_096] == data
    out = tmp_path / "out.bin"
    r = cli("vol-download", "v.raw", str(out), "p", "4096", "100000")  # in their places
    assert r.code == 0 and out.read_bytes() == data, r
    r = cli("vol-download", "v.raw", str(out), "--pool", "p", "--offset", "8192",
            "--length", "10")
    assert r.code == 0 and out.read_bytes() == data[4096:4106], r
    r = cli("vol-upload", "--pool", "p", "v.raw", str(src), "--offset=-1")
    assert r.code == 1 and "--offset takes a number of bytes" in r.err, r
    assert (images / "v.raw").read_bytes()[4096:104_096] == data
