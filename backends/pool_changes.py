"""What an edit of a running pool's definition changes, and when each change takes effect.

virsh pool-edit works on a running pool: it edits the persistent definition, and the pool
runs on as it was started. poolkeeper's running pool is found through its definition, so
what it claims (type, source, target: pool_claims.identity) changes only while it is
stopped; the rest is saved at once and takes effect as said here.
"""

from __future__ import annotations

from .model import Permissions, PoolDef


def _perm_changes(running: Permissions | None, new: Permissions | None) -> list[str]:
    """The permissions `new` asks for that the running target does not have (a field the
    new definition leaves out is left as it is: not a change)."""
    running, new = running or Permissions(), new or Permissions()
    changes = []
    for field, shown in (("mode", lambda v: f"{v:04o}"), ("owner", str), ("group", str),
                         ("label", str)):
        old_value, new_value = getattr(running, field), getattr(new, field)
        if new_value is not None and new_value != old_value:
            old_text = "none" if old_value is None else shown(old_value)
            changes.append(f"{field} {old_text} -> {shown(new_value)}")
    return changes


def claimed_changes(running: PoolDef, new: PoolDef) -> list[str]:
    """The changes to what the pool claims (only while it is stopped), in words."""
    changes = []
    if running.type != new.type:
        changes.append(f"the type ({running.type} -> {new.type})")
    if running.target.path != new.target.path:
        changes.append(f"the target path ({running.target.path} -> {new.target.path})")
    old, now = running.source, new.source
    if [d.path for d in old.devices] != [d.path for d in now.devices]:
        changes.append("the source device ({} -> {})".format(
            ",".join(d.path for d in old.devices) or "none",
            ",".join(d.path for d in now.devices) or "none"))
    if [(h.name, h.port) for h in old.hosts] != [(h.name, h.port) for h in now.hosts]:
        changes.append("the source host")
    for field, label in (("dir", "source directory"), ("name", "source name"),
                         ("format", "source format")):
        if getattr(old, field) != getattr(now, field):
            changes.append(f"the {label} ({getattr(old, field)} -> {getattr(now, field)})")
    return changes


def pending_changes(running: PoolDef, new: PoolDef, *, builds_target: bool) -> list[str]:
    """The changes saved for a running pool that it does not run with yet, each with
    when it takes effect. `builds_target`: the pool's build makes its target directory
    (dir pools), where the permissions are applied; the others apply them at start."""
    changes = []
    perms = _perm_changes(running.target.permissions, new.target.permissions)
    if perms:
        when = ("rebuild: stop the pool (s), build it (b) and start it (s)" if builds_target
                else "restart: stop the pool (s) and start it again (s)")
        changes.append(f"the target's permissions ({', '.join(perms)}) take effect after "
                       f"a {when}")
    if running.mount_opts != new.mount_opts:
        changes.append("the mount options take effect after a restart (s, then s)")
    old, now = running.source, new.source
    if (old.auth, old.initiator_iqn, old.protocol_ver) != (
            now.auth, now.initiator_iqn, now.protocol_ver):
        changes.append("the source's login (auth, initiator, protocol) takes effect after "
                       "a restart (s, then s)")
    if running.cow != new.cow:
        changes.append("copy-on-write applies to the volumes created from now on")
    return changes
