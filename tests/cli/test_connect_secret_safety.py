"""`secret-undefine -c URI` against a real private libvirtd: libvirt forgets which secret
opens a LUKS volume once its pool restarts (unless the secret's usage names the volume's
path), so a secret is not undefined while an encrypted volume's secret is unknown, a pool
is stopped (its volumes cannot be looked at), or a volume names it; --force still can."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_connect_libvirtd import ENV, MISSING, REPO, Host, daemon_in

pytestmark = pytest.mark.skipif(MISSING is not None, reason=str(MISSING))
UUID = "77777777-7777-7777-7777-777777777777"


@pytest.fixture
def host() -> Iterator[Host]:
    base = Path(tempfile.mkdtemp(prefix="pk-connect-secrets-"))
    try:
        with daemon_in(base) as daemon:
            yield daemon
    finally:
        shutil.rmtree(base, ignore_errors=True)


def encrypted_volume(host: Host, tmp_path: Path) -> Path:
    """Pool 'rp' (persistent, running) holding g.img, LUKS with secret UUID (usage
    'shared-key', not the volume's path)."""
    secret = tmp_path / "s.xml"
    secret.write_text(f"<secret ephemeral='no' private='no'><uuid>{UUID}</uuid>"
                      "<usage type='volume'><volume>shared-key</volume></usage></secret>\n")
    host.pk("secret-define", str(secret))
    subprocess.run([sys.executable, "-m", "cli", "-c", host.uri, "secret-set-value", UUID],
                   input=b"hunter2\n", env=ENV, cwd=REPO, check=True, capture_output=True,
                   timeout=60)
    target = host.pools / "rp"
    host.pk("pool-define-as", "rp", "dir", "--target", str(target))
    host.pk("pool-build", "rp")
    host.pk("pool-start", "rp")
    vol = tmp_path / "g.xml"
    vol.write_text("<volume><name>g.img</name><capacity unit='M'>8</capacity><target>"
                   "<format type='raw'/><encryption format='luks'><secret type='passphrase' "
                   f"uuid='{UUID}'/></encryption></target></volume>\n")
    host.pk("vol-create", "rp", str(vol))
    return target


def test_not_undefined_once_the_pool_restarted_and_libvirt_forgot(host, tmp_path):
    encrypted_volume(host, tmp_path)
    r = host.pk("secret-undefine", UUID, ok=False)
    assert r.returncode == 1 and "key of encrypted volumes" in r.stderr, r
    host.pk("pool-destroy", "rp")
    host.pk("pool-start", "rp")  # libvirt no longer says which secret g.img has
    r = host.pk("secret-undefine", UUID, ok=False)
    assert r.returncode == 1 and "does not know which secret opens" in r.stderr, r
    assert "g.img" in r.stderr and UUID in host.virsh("secret-list")


def test_not_undefined_while_a_pool_is_stopped(host, tmp_path):
    encrypted_volume(host, tmp_path)
    host.pk("pool-destroy", "rp")
    r = host.pk("secret-undefine", UUID, ok=False)
    assert r.returncode == 1 and "the pools rp are stopped" in r.stderr, r
    assert host.pk("secret-undefine", UUID, "--force").stdout == f"Secret {UUID} deleted\n"
