"""Fixtures the LUKS tests share (test_luks.py, test_luks_keys.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backends.secrets import SecretStore
from tests.drivers.test_luks import PASSPHRASE


@pytest.fixture
def store(ctl) -> SecretStore:
    return SecretStore(ctl.paths.config_dir)


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    """The passphrase in a 0600 file, for qemu-img and qemu-io run by the tests."""
    path = tmp_path / "key"
    path.write_text(PASSPHRASE)
    path.chmod(0o600)
    return path
