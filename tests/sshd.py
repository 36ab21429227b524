"""An sshd of the test's own on 127.0.0.1, for `qemu+ssh://` connections (no host sshd used).

Everything lives in a directory the caller gives: a throwaway host key and client key, the
server's sshd_config (keys only, no PAM, root only, its AuthorizedKeysFile and PidFile
there), its log, and the client side: an ssh_config whose known_hosts (holding this
server's host key) is there too, and a `ssh` wrapper using it that libvirt runs through the
URI's `command=` parameter. So neither the host's sshd nor root's ~/.ssh is read or written:
host keys are checked strictly against the file made here. sshd runs in the foreground
(`-D -e`) and is stopped by its PID on exit, failure or not. Needs root and
openssh-server (and openssh-client for the client side).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by absolute path
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; its init script makes it


class Sshd(NamedTuple):
    port: int
    pid: int
    key: Path  # the client's private key (libvirt's `keyfile=`)
    ssh: Path  # the ssh wrapper (libvirt's `command=`): strict host keys from the temp dir

    def uri(self, path: str, **params: str) -> str:
        """A qemu+ssh URI for root on this server; `params` are extra query parameters."""
        query = "&".join([f"keyfile={self.key}", f"command={self.ssh}",
                          *(f"{k}={v}" for k, v in params.items())])
        return f"qemu+ssh://root@127.0.0.1:{self.port}{path}?{query}"


def sshd_missing() -> str | None:
    """Why a private sshd cannot run here, or None when it can."""
    if not os.path.exists(SSHD):
        return "sshd is not installed (apt-get install openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install openssh-client)"
    if os.geteuid() != 0:
        return "the private sshd takes root logins, which needs root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "poolkeeper-test",
                    "-f", str(path)], check=True, stdin=subprocess.DEVNULL)


def _answers(port: int) -> bool:
    """The server is up when it sends its banner."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _write_configs(base: Path, port: int) -> Path:
    config = base / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1:{port}\n"
        f"HostKey {base / 'host_key'}\n"
        f"PidFile {base / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\n"
        "AuthenticationMethods publickey\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\n"
        "PermitRootLogin prohibit-password\nAllowUsers root\n"
        # the temp dir sits under /tmp (world-writable), which StrictModes refuses
        "StrictModes no\n"
        "PrintMotd no\nX11Forwarding no\nAllowTcpForwarding no\nLogLevel VERBOSE\n")
    host_pub = (base / "host_key.pub").read_text().split()
    (base / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    (base / "ssh_config").write_text(
        "Host *\n"
        f"  UserKnownHostsFile {base / 'known_hosts'}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        "  IdentitiesOnly yes\n"
        "  ConnectTimeout 10\n")
    return config


@contextlib.contextmanager
def private_sshd(base: Path) -> Iterator[Sshd]:
    """sshd on 127.0.0.1 (a free port) with its keys and configuration under `base`."""
    base.mkdir(mode=0o700, exist_ok=True)
    _keygen(base / "host_key")
    _keygen(base / "client_key")
    shutil.copyfile(base / "client_key.pub", base / "authorized_keys")
    ssh = base / "ssh"
    ssh.write_text(f"#!/bin/sh\nexec ssh -F {base / 'ssh_config'} \"$@\"\n")
    ssh.chmod(0o755)
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    log_path = base / "sshd.log"
    for _attempt in range(5):  # another process may take the free port before sshd binds it
        port = _free_port()
        config = _write_configs(base, port)
        subprocess.run([SSHD, "-t", "-f", str(config)], check=True, capture_output=True)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while proc.poll() is None and not _answers(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"private sshd did not answer; {log_path}: "
                                       + log_path.read_text()[-2000:])
                time.sleep(0.05)
            if proc.poll() is not None:
                if "Address already in use" in log_path.read_text():
                    continue
                raise RuntimeError(f"private sshd exited ({proc.returncode}); {log_path}: "
                                   + log_path.read_text()[-2000:])
            yield Sshd(port, proc.pid, base / "client_key", ssh)
            return
        finally:
            stop(proc)
    raise RuntimeError(f"private sshd found no free port; {log_path}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End sshd (its listener; sessions it forked end with their connections)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # a test may have stopped it
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
