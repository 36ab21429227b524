"""Add or edit a libvirt connection: a short name and a URI, with examples and the ssh
set-up a remote URI needs (a key the agent or ?keyfile= offers, the host in known_hosts:
libvirt asks no questions here, so an unknown host key fails rather than prompting)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.widgets import Input, Static

from backends.connection_store import check_connection_name, check_uri
from backends.errors import PoolkeeperError

from .base import Dialog, Evaluation
from .fields import field, text_input

EXAMPLES = ("qemu:///system              this host's libvirtd (as root)\n"
            "qemu+ssh://root@kvm2/system another host, over ssh\n"
            "qemu+tls://kvm2/system      another host, over TLS\n"
            "test:///default             libvirt's test driver (a demo)")
SSH_HINT = ("ssh: the key must work without a prompt (ssh-agent, or "
            "?keyfile=/root/.ssh/id_ed25519 in the URI) and the host must be in "
            "known_hosts already (ssh root@kvm2 once)")


@dataclass(frozen=True)
class ConnectionRequest:
    name: str
    uri: str


def suggest_name(uri: str) -> str:
    """A short name from the URI: its host's first label (kvm2), an address whole
    (10.0.0.5; [::1] as ::1 with '-' for ':'), else the driver and path (system)."""
    rest = uri.split("://", 1)[-1]
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    if host.startswith("["):  # an IPv6 address, maybe with a port after "]"
        host = host[1:].split("]", 1)[0].replace(":", "-").strip("-")
    else:
        host = host.split(":", 1)[0]
        if not host.replace(".", "").isdigit():
            host = host.split(".", 1)[0]
    if host:
        return host[:32]
    path = rest.split("/", 1)[1] if "/" in rest else ""
    word = path.split("?", 1)[0].strip("/").replace("/", "-")
    return (word or uri.split(":", 1)[0])[:32]


class ConnectionDialog(Dialog[ConnectionRequest | None]):
    """A new connection, or an existing one to change (`name`, `uri` given)."""

    def __init__(self, *, name: str = "", uri: str = "", taken: frozenset[str] = frozenset(),
                 ascii: bool = False) -> None:
        self.editing = bool(name)
        self.heading = f"Connection '{name}'" if name else "New connection"
        self.submit_label = "Save" if name else "Connect"
        self.initial = (name, uri)
        self.taken = taken - {name}
        super().__init__(ascii=ascii)

    def compose_body(self) -> ComposeResult:
        yield Static("A libvirt host whose pools join the tree; saved and opened at start.",
                     markup=False, classes="intro")
        yield field("URI", text_input("uri", value=self.initial[1],
                                      placeholder="qemu+ssh://root@kvm2/system"))
        yield field("Name", text_input("name", value=self.initial[0],
                                       placeholder="from the URI: kvm2"))
        yield Static(EXAMPLES, markup=False, classes="intro")
        yield Static(SSH_HINT, markup=False, classes="intro")

    def evaluate(self) -> Evaluation[ConnectionRequest | None]:
        ev: Evaluation[ConnectionRequest | None] = Evaluation()
        uri = self.query_one("#uri", Input).value.strip()
        name = self.query_one("#name", Input).value.strip() or suggest_name(uri)
        if not uri:
            ev.error("uri", "type the libvirt URI of the host")
            return ev
        for control, check, value in (("uri", check_uri, uri),
                                      ("name", check_connection_name, name)):
            try:
                check(value)
            except PoolkeeperError as exc:
                ev.error(control, str(exc))
                return ev
        if name in self.taken:
            ev.error("name", f"a connection named '{name}' exists: choose another name")
            return ev
        if not self.query_one("#name", Input).value.strip():
            ev.note("name", f"will be named '{name}'")
        ev.result = ConnectionRequest(name, uri)
        return ev
