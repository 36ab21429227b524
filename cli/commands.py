"""Every verb of the CLI in one table: its name, summary and options as virsh has them
(`virsh help pool`, `virsh help volume`), in virsh's order, which is also the order in
which words given without an option name fill them (cli.argspec). Options poolkeeper adds
(--json, --force, --newpool, ...) come last and are given by name only.
"""

from __future__ import annotations

import argparse
from importlib import import_module
from typing import Any, TextIO

from backends.controller import StorageController
from backends.model import WIPE_ALGORITHMS

from . import verbs as v
from .argspec import Handler, Opt, Verb, data, flag, number, string


class _Handler:
    """`module.name`, imported when its verb runs."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def resolve(self) -> Handler:
        module = import_module(self.module, __package__)
        return getattr(module, self.name)  # type: ignore[no-any-return]

    def __call__(self, ctl: Any, args: argparse.Namespace, out: TextIO) -> int:
        return self.resolve()(ctl, args, out)


class _Later:
    """A module of handlers imported only when one of its verbs runs: pool_verbs,
    secret_verbs and volume_verbs (datetime, queue, base64, getpass, ...) cost every other
    verb ~4 ms of imports. cli.verbs, which argspec imports anyway, is used directly."""

    def __init__(self, module: str) -> None:
        self._module = module

    def __getattr__(self, name: str) -> _Handler:
        return _Handler(self._module, name)


pv = _Later(".pool_verbs")
sv = _Later(".secret_verbs")
vv = _Later(".volume_verbs")

# options whose value names a pool (by name or UUID): main resolves them to its name
POOL_REFS = ("pool", "inputpool", "newpool")


def _pool(required: bool = True, help_text: str = "pool name or uuid") -> Opt:
    return data("pool", help_text, required=required)


def _vol(help_text: str = "vol name, key or path") -> Opt:
    return data("vol", help_text)


def _json() -> Opt:
    return flag("json", "machine-readable output (poolkeeper)")


_BUILD = (flag("build", "build the pool as normal"),
          flag("no-overwrite", "do not overwrite any existing data"),
          flag("overwrite", "overwrite any existing data"))
_OVERWRITE = (("overwrite", "no-overwrite"),)


def _pool_as(create: bool) -> tuple[Opt, ...]:
    """pool-define-as / pool-create-as, in virsh's order (virshPoolAsOpts)."""
    opts = [data("name", "name of the pool"), data("type", "type of the pool"),
            flag("print-xml", "print XML document, but don't define/create")]
    for name, text in (
        ("source-host", "source-host for underlying storage"),
        ("source-path", "source path for underlying storage"),
        ("source-dev", "source device for underlying storage"),
        ("source-name", "source name for underlying storage"),
        ("target", "target for underlying storage"),
        ("source-format", "format for underlying storage"),
        ("auth-type", "auth type to be used for underlying storage"),
        ("auth-username", "auth username to be used for underlying storage"),
        ("secret-usage", "auth secret usage to be used for underlying storage"),
        ("secret-uuid", "auth secret UUID to be used for underlying storage"),
        ("adapter-name", "adapter name to be used for underlying storage"),
        ("adapter-wwnn", "adapter wwnn to be used for underlying storage"),
        ("adapter-wwpn", "adapter wwpn to be used for underlying storage"),
        ("adapter-parent", "adapter parent scsi_hostN to be used for underlying vHBA storage"),
        ("adapter-parent-wwnn", "adapter parent scsi_hostN wwnn to be used for underlying "
                                "vHBA storage"),
        ("adapter-parent-wwpn", "adapter parent scsi_hostN wwpn to be used for underlying "
                                "vHBA storage"),
        ("adapter-parent-fabric-wwn", "adapter parent scsi_hostN fabric_wwn to be used for "
                                      "underlying vHBA storage"),
        ("source-protocol-ver", "nfsvers value for NFS pool mount option"),
        ("source-initiator", "initiator iqn for underlying storage"),
    ):
        opts.append(string(name, text, repeat=name == "source-dev"))
    if create:
        opts += _BUILD
    opts.append(string("source-port", "source host's port (poolkeeper)", positional=False))
    return tuple(opts)


def _simple(name: str, summary: str, verb: object, message: str, description: str) -> Verb:
    return Verb(name, summary, v.simple_handler(verb, message),  # type: ignore[arg-type]
                (_pool(),), description)


_PREALLOC = flag("prealloc-metadata", "preallocate metadata (for qcow2 instead of full "
                                      "allocation)")
_REFLINK = flag("reflink", "use btrfs COW lightweight copy")
_VALIDATE = flag("validate", "validate the XML against the schema")
_XPATH = (string("xpath", "xpath expression to filter the XML document", positional=False),
          flag("wrap", "wrap xpath results in an common root element"))

POOL_VERBS: tuple[Verb, ...] = (
    Verb("find-storage-pool-sources-as", "find potential storage pool sources",
         pv.cmd_find_sources_as,
         (data("type", "type of storage pool sources to find"),
          string("host", "optional host to query"), string("port", "optional port to query"),
          string("initiator", "optional initiator IQN to use for query")),
         "Returns XML <sources> document."),
    Verb("find-storage-pool-sources", "discover potential storage pool sources",
         pv.cmd_find_sources,
         (data("type", "type of storage pool sources to discover"),
          string("srcSpec", "optional file of source xml to query for pools"),
          string("host", "host to query (poolkeeper)", positional=False),
          string("device", "device to probe (poolkeeper)", positional=False)),
         "Returns XML <sources> document."),
    Verb("pool-autostart", "autostart a pool", v.cmd_pool_autostart,
         (_pool(), flag("disable", "disable autostarting")),
         "Configure a pool to be automatically started at boot."),
    Verb("pool-build", "build a pool", v.cmd_pool_build, (_pool(), *_BUILD[1:]),
         "Build a given pool.", exclusive=_OVERWRITE),
    Verb("pool-create-as", "create a pool from a set of args", pv.cmd_pool_create_as,
         _pool_as(create=True), "Create a pool.", exclusive=_OVERWRITE),
    Verb("pool-create", "create a pool from an XML file", pv.cmd_pool_create,
         (data("file", "file containing an XML pool description"), *_BUILD, _VALIDATE),
         "Create a pool.", exclusive=_OVERWRITE),
    Verb("pool-define-as", "define a pool from a set of args", v.cmd_pool_define_as,
         _pool_as(create=False), "Define a pool."),
    Verb("pool-define", "define an inactive persistent storage pool or modify an existing "
         "persistent one from an XML file", v.cmd_pool_define,
         (data("file", "file containing an XML pool description"), _VALIDATE),
         "Define or modify a persistent storage pool."),
    Verb("pool-delete", "delete a pool", v.cmd_pool_delete,
         (_pool(), flag("force", "erase the storage even though it still holds volumes "
                                 "(poolkeeper)")),
         "Delete a given pool."),
    _simple("pool-destroy", "destroy (stop) a pool", StorageController.stop_pool,
            "Pool {pool} destroyed",
            "Forcefully stop a given pool. Raw data in the pool is untouched"),
    Verb("pool-dumpxml", "pool information in XML", v.cmd_pool_dumpxml,
         (_pool(), flag("inactive", "show inactive defined XML"), *_XPATH),
         "Output the pool information as an XML dump to stdout."),
    Verb("pool-edit", "edit XML configuration for a storage pool", pv.cmd_pool_edit,
         (_pool(),), "Edit the XML configuration for a storage pool."),
    Verb("pool-info", "storage pool information", v.cmd_pool_info,
         (_pool(), flag("bytes", "Return pool info in bytes"), _json()),
         "Returns basic information about the storage pool."),
    Verb("pool-list", "list pools", v.cmd_pool_list,
         (flag("inactive", "list inactive pools"),
          flag("all", "list inactive & active pools"),
          flag("transient", "list transient pools"),
          flag("persistent", "list persistent pools"),
          flag("autostart", "list pools with autostart enabled"),
          flag("no-autostart", "list pools with autostart disabled"),
          string("type", "only list pool of specified type(s) (if supported)"),
          flag("details", "display extended details for pools"),
          flag("uuid", "list UUID of active pools only"),
          flag("name", "list name of active pools only"), _json()),
         "Returns list of pools.",
         exclusive=(("all", "inactive"), ("details", "uuid"), ("details", "name"),
                    ("json", "uuid"), ("json", "name"))),
    Verb("pool-name", "convert a pool UUID to pool name", pv.cmd_pool_name, (_pool(),)),
    _simple("pool-refresh", "refresh a pool", StorageController.refresh_pool,
            "Pool {pool} refreshed", "Refresh a given pool."),
    Verb("pool-start", "start a (previously defined) inactive pool", v.cmd_pool_start,
         (_pool(), *_BUILD), "Start a pool.", exclusive=_OVERWRITE),
    _simple("pool-undefine", "undefine an inactive pool", StorageController.undefine_pool,
            "Pool {pool} has been undefined",
            "Undefine the configuration for an inactive pool."),
    Verb("pool-uuid", "convert a pool name to pool UUID", pv.cmd_pool_uuid, (_pool(),)),
    Verb("pool-event", "Storage Pool Events", pv.cmd_pool_event,
         (string("pool", "filter by storage pool name or uuid"),
          string("event", "which event type to wait for"),
          flag("loop", "loop until timeout or interrupt, rather than one-shot"),
          number("timeout", "timeout seconds"), flag("list", "list valid event types"),
          flag("timestamp", "show timestamp for each printed event")),
         "List event types, or wait for storage pool events to occur"),
    Verb("pool-capabilities", "storage pool capabilities", v.cmd_pool_capabilities, (),
         "Returns capabilities of storage pool support."),
)

VOLUME_VERBS: tuple[Verb, ...] = (
    Verb("vol-clone", "clone a volume.", v.cmd_vol_clone,
         (_vol(), data("newname", "clone name"), _pool(False), _PREALLOC, _REFLINK,
          flag("print-xml", "print XML document rather than clone the volume"),
          string("newpool", "clone into this pool (poolkeeper)", positional=False)),
         "Clone an existing volume within the parent pool.", group="volume"),
    Verb("vol-create-as", "create a volume from a set of args", v.cmd_vol_create_as,
         (data("pool", "pool name"), data("name", "name of the volume"),
          data("capacity", "size of the vol, as scaled integer (default bytes)"),
          string("allocation", "initial allocation size, as scaled integer (default bytes)"),
          string("format", "file format type raw,bochs,qcow,qcow2,qed,vmdk"),
          string("backing-vol", "the backing volume if taking a snapshot"),
          string("backing-vol-format", "format of backing volume if taking a snapshot"),
          _PREALLOC, flag("print-xml", "print XML document, but don't define/create")),
         "Create a vol.", group="volume"),
    Verb("vol-create", "create a vol from an XML file", v.cmd_vol_create,
         (data("pool", "pool name"), data("file", "file containing an XML vol description"),
          _PREALLOC, _VALIDATE), "Create a vol.", group="volume"),
    Verb("vol-create-from", "create a vol, using another volume as input",
         vv.cmd_vol_create_from,
         (_pool(), data("file", "file containing an XML vol description"), _vol(),
          string("inputpool", "pool name or uuid of the input volume's pool"),
          _PREALLOC, _REFLINK, _VALIDATE),
         "Create a vol from an existing volume.", group="volume"),
    Verb("vol-delete", "delete a vol", v.cmd_vol_delete,
         (_vol(), _pool(False), flag("delete-snapshots", "delete snapshots associated with "
                                     "volume (must be supported by storage driver)")),
         "Delete a given vol.", group="volume"),
    Verb("vol-download", "download volume contents to a file", v.cmd_vol_download,
         (_vol(), data("file", "file"), _pool(False),
          number("offset", "volume offset to download from"),
          number("length", "amount of data to download"),
          flag("sparse", "preserve sparseness of volume")),
         "Download volume contents to a file", group="volume"),
    Verb("vol-dumpxml", "vol information in XML", v.cmd_vol_dumpxml,
         (_vol(), _pool(False), *_XPATH),
         "Output the vol information as an XML dump to stdout.", group="volume"),
    Verb("vol-info", "storage vol information", v.cmd_vol_info,
         (_vol(), _pool(False),
          flag("bytes", "sizes are represented in bytes rather than pretty units"),
          flag("physical", "return the physical size of the volume in allocation field"),
          _json()),
         "Returns basic information about the storage vol.", group="volume"),
    Verb("vol-key", "returns the volume key for a given volume name or path", vv.cmd_vol_key,
         (_vol("volume name or path"), _pool(False)), group="volume"),
    Verb("vol-list", "list vols", v.cmd_vol_list,
         (_pool(), flag("details", "display extended details for volumes"), _json()),
         "Returns list of vols by pool.", group="volume"),
    Verb("vol-name", "returns the volume name for a given volume key or path",
         vv.cmd_vol_name, (_vol("volume key or path"),), group="volume"),
    Verb("vol-path", "returns the volume path for a given volume name or key",
         v.cmd_vol_path, (_vol("volume name or key"), _pool(False)), group="volume"),
    Verb("vol-pool", "returns the storage pool for a given volume key or path",
         vv.cmd_vol_pool,
         (_vol("volume key or path"),
          flag("uuid", "return the pool uuid rather than pool name")), group="volume"),
    Verb("vol-resize", "resize a vol", v.cmd_vol_resize,
         (_vol(), data("capacity", "new capacity for the vol, as scaled integer (default "
                       "bytes)"), _pool(False),
          flag("allocate", "allocate the new capacity, rather than leaving it sparse"),
          flag("delta", "use capacity as a delta to current size, rather than the new size"),
          flag("shrink", "allow the resize to shrink the volume")),
         "Resizes a storage volume. This is safe only for storage volumes not in use by "
         "an active guest.", group="volume"),
    Verb("vol-upload", "upload file contents to a volume", v.cmd_vol_upload,
         (_vol(), data("file", "file"), _pool(False),
          number("offset", "volume offset to upload to"),
          number("length", "amount of data to upload"),
          flag("sparse", "preserve sparseness of volume")),
         "Upload file contents to a volume", group="volume"),
    Verb("vol-wipe", "wipe a vol", v.cmd_vol_wipe,
         (_vol(), _pool(False), string("algorithm", "perform selected wiping algorithm",
                                       default="zero", choices=WIPE_ALGORITHMS)),
         "Ensure data previously on a volume is not accessible to future reads",
         group="volume"),
)

_SECRET = data("secret", "secret UUID (or its usage: poolkeeper)")

SECRET_VERBS: tuple[Verb, ...] = (
    Verb("secret-define", "define or modify a secret from an XML file",
         sv.cmd_secret_define,
         (data("file", "file containing secret attributes in XML"),
          flag("validate", "validate the XML against the schema")),
         "Define or modify a secret.", group="secret"),
    Verb("secret-dumpxml", "secret attributes in XML", sv.cmd_secret_dumpxml,
         (_SECRET, *_XPATH), "Output attributes of a secret as an XML dump to stdout "
         "(never its value).", group="secret"),
    Verb("secret-get-value", "Output a secret value", sv.cmd_secret_get_value,
         (_SECRET, flag("plain", "get value without converting to base64"),
          flag("reveal", "yes, print the value on the screen (poolkeeper: refused without "
                         "it, and always for a private secret)")),
         "Output a secret value to stdout.", group="secret"),
    Verb("secret-list", "list secrets", sv.cmd_secret_list,
         (flag("ephemeral", "list ephemeral secrets"),
          flag("no-ephemeral", "list non-ephemeral secrets"),
          flag("private", "list private secrets"),
          flag("no-private", "list non-private secrets"), _json()),
         "Returns a list of secrets", group="secret"),
    Verb("secret-set", "store a secret by its usage name (iSCSI CHAP password; "
         "poolkeeper); the value is read from stdin", v.cmd_secret_set,
         (data("usage", "the name pools use: <secret usage='...'/>"),), group="secret"),
    Verb("secret-set-value", "set a secret value", sv.cmd_secret_set_value,
         (_SECRET, string("file", "read secret from file", positional=False),
          flag("plain", "read the secret from file without converting from base64"),
          flag("interactive", "read the secret from the terminal"),
          string("base64", "base64-encoded secret value (refused: a value on the command "
                           "line can be read by every user; give it on stdin or with --file)",
                 positional=False)),
         "Set a secret value (poolkeeper: read from stdin when neither --file nor "
         "--interactive is given).", group="secret"),
    Verb("secret-undefine", "undefine a secret", v.cmd_secret_undefine,
         (data("usage", "secret UUID or usage"),
          flag("force", "undefine it even while encrypted volumes need it (poolkeeper)")),
         "Undefine a secret.", group="secret"),
)

GROUPS = (("Storage Pool", "pool", POOL_VERBS), ("Storage Volume", "volume", VOLUME_VERBS),
          ("Secret", "secret", SECRET_VERBS))


def all_verbs() -> dict[str, Verb]:
    return {verb.name: verb for _t, _k, verbs in GROUPS for verb in verbs}
