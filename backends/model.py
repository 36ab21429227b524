"""Plain data for pools and volumes: what the XML says and what a refresh found.

Sizes are always in bytes (ints). Fields that the XML may omit are None, so that
formatting writes back only what was there (plus runtime values when asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field

from .records import FACTORY, record
from .records import set_field as _set

# Volume formats of file-based pools (libvirt's virStorageFileFormat, minus "none").
FILE_VOLUME_FORMATS = (
    "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd",
    "ploop", "cow", "qcow", "qcow2", "qed", "vmdk",
)
# Formats poolkeeper can create in a file pool.
CREATABLE_FILE_FORMATS = ("raw", "qcow2", "qcow", "qed", "vmdk", "vpc", "vdi")

FS_POOL_FORMATS = (
    "auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat",
    "hfs+", "xfs", "ocfs2", "vmfs", "btrfs",
)
NETFS_POOL_FORMATS = ("auto", "nfs", "glusterfs", "cifs")
DISK_POOL_FORMATS = ("unknown", "dos", "dvh", "gpt", "mac", "bsd", "pc98", "sun", "lvm2")
LOGICAL_POOL_FORMATS = ("unknown", "lvm2")
DISK_VOLUME_FORMATS = (
    "none", "linux", "fat16", "fat32", "linux-swap", "linux-lvm", "linux-raid", "extended",
)

VOLUME_TYPES = ("file", "block", "dir", "network", "netdir", "ploop")
POOL_STATES = ("inactive", "building", "running", "degraded", "inaccessible")
WIPE_ALGORITHMS = (
    "zero", "nnsa", "dod", "bsi", "gutmann", "schneier", "pfitzner7", "pfitzner33",
    "random", "trim",
)


@record(frozen=True, slots=True)
class Permissions:
    """Frozen: one instance is shared by every listed volume with the same mode and
    owners (backends.drivers.dir_listing.shared_permissions)."""

    mode: int | None = None  # e.g. 0o711
    owner: int | None = None
    group: int | None = None
    label: str | None = None

    def __init__(
            self, mode: int | None = None, owner: int | None = None, group: int | None = None,
            label: str | None = None) -> None:
        _set(self, "mode", mode)
        _set(self, "owner", owner)
        _set(self, "group", group)
        _set(self, "label", label)

    def is_empty(self) -> bool:
        return self.mode is None and self.owner is None and self.group is None and not self.label


@record()
class Timestamps:
    """Volume timestamps as libvirt prints them ("SEC" or "SEC.NNNNNNNNN")."""

    atime: str | None = None
    mtime: str | None = None
    ctime: str | None = None
    btime: str | None = None

    def __init__(
            self, atime: str | None = None, mtime: str | None = None, ctime: str | None = None,
            btime: str | None = None) -> None:
        self.atime = atime
        self.mtime = mtime
        self.ctime = ctime
        self.btime = btime


@record()
class FreeExtent:
    """A free extent (start, end, in bytes) of a disk pool's device."""
    start: int
    end: int

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


@record()
class Extent:
    """A used extent of a volume on a device (disk partitions, LV segments)."""

    start: int
    end: int

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end


@record()
class SourceDevice:
    """A <device> of a pool's <source>, with its free extents (disk pools)."""
    path: str
    part_separator: bool | None = None
    free_extents: list[FreeExtent] = field(default_factory=list)

    def __init__(
            self, path: str, part_separator: bool | None = None,
            free_extents: list[FreeExtent] = FACTORY) -> None:
        self.path = path
        self.part_separator = part_separator
        self.free_extents = list() if free_extents is FACTORY else free_extents


@record()
class SourceHost:
    """A <host> of a pool's <source>: a name or address, and its port."""
    name: str
    port: int | None = None

    def __init__(self, name: str, port: int | None = None) -> None:
        self.name = name
        self.port = port


@record()
class AuthSecret:
    """The <secret> an <auth> names, by usage or UUID."""
    usage: str | None = None
    uuid: str | None = None

    def __init__(self, usage: str | None = None, uuid: str | None = None) -> None:
        self.usage = usage
        self.uuid = uuid


@record()
class SourceAuth:
    """A pool's <auth>: its type, user name and secret."""
    type: str  # "chap" (iscsi), "ceph"
    username: str
    secret: AuthSecret = field(default_factory=AuthSecret)

    def __init__(self, type: str, username: str, secret: AuthSecret = FACTORY) -> None:
        self.type = type
        self.username = username
        self.secret = AuthSecret() if secret is FACTORY else secret


@record()
class PoolSource:
    """A pool's <source>: hosts, devices, directory, name and format."""
    hosts: list[SourceHost] = field(default_factory=list)
    devices: list[SourceDevice] = field(default_factory=list)
    dir: str | None = None
    name: str | None = None
    format: str | None = None
    initiator_iqn: str | None = None
    auth: SourceAuth | None = None
    protocol_ver: str | None = None
    vendor: str | None = None
    product: str | None = None

    def __init__(
            self, hosts: list[SourceHost] = FACTORY, devices: list[SourceDevice] = FACTORY,
            dir: str | None = None, name: str | None = None, format: str | None = None,
            initiator_iqn: str | None = None, auth: SourceAuth | None = None,
            protocol_ver: str | None = None, vendor: str | None = None,
            product: str | None = None) -> None:
        self.hosts = list() if hosts is FACTORY else hosts
        self.devices = list() if devices is FACTORY else devices
        self.dir = dir
        self.name = name
        self.format = format
        self.initiator_iqn = initiator_iqn
        self.auth = auth
        self.protocol_ver = protocol_ver
        self.vendor = vendor
        self.product = product

    def is_empty(self) -> bool:
        return (
            not self.hosts and not self.devices and self.dir is None and self.name is None
            and self.format is None and self.initiator_iqn is None and self.auth is None
            and self.protocol_ver is None and self.vendor is None and self.product is None
        )


@record()
class PoolTarget:
    """A pool's <target>: its path and permissions."""
    path: str | None = None
    permissions: Permissions | None = None

    def __init__(self, path: str | None = None, permissions: Permissions | None = None) -> None:
        self.path = path
        self.permissions = permissions


@record()
class PoolDef:
    """A pool definition (libvirt <pool> XML)."""

    type: str
    name: str
    uuid: str | None = None
    source: PoolSource = field(default_factory=PoolSource)
    target: PoolTarget = field(default_factory=PoolTarget)
    cow: bool | None = None  # <features><cow state=.../></features>
    mount_opts: list[str] = field(default_factory=list)  # <fs:mount_opts><fs:option name/>
    # Runtime values: filled in when formatting a live pool, ignored on input.
    capacity: int | None = None
    allocation: int | None = None
    available: int | None = None

    def __init__(
            self, type: str, name: str, uuid: str | None = None, source: PoolSource = FACTORY,
            target: PoolTarget = FACTORY, cow: bool | None = None, mount_opts: list[str] = FACTORY,
            capacity: int | None = None, allocation: int | None = None,
            available: int | None = None) -> None:
        self.type = type
        self.name = name
        self.uuid = uuid
        self.source = PoolSource() if source is FACTORY else source
        self.target = PoolTarget() if target is FACTORY else target
        self.cow = cow
        self.mount_opts = list() if mount_opts is FACTORY else mount_opts
        self.capacity = capacity
        self.allocation = allocation
        self.available = available


@record()
class BackingStore:
    """A volume's <backingStore>: the image it is an overlay of."""
    path: str
    format: str | None = None
    permissions: Permissions | None = None
    timestamps: Timestamps | None = None

    def __init__(
            self, path: str, format: str | None = None, permissions: Permissions | None = None,
            timestamps: Timestamps | None = None) -> None:
        self.path = path
        self.format = format
        self.permissions = permissions
        self.timestamps = timestamps


@record()
class EncryptionSecret:
    """A <secret> of a volume's <encryption>, by UUID or usage."""
    type: str = "passphrase"
    uuid: str | None = None
    usage: str | None = None

    def __init__(
            self, type: str = "passphrase", uuid: str | None = None,
            usage: str | None = None) -> None:
        self.type = type
        self.uuid = uuid
        self.usage = usage


@record()
class Encryption:
    """A volume's <encryption>: its format (luks) and secrets."""
    format: str
    secrets: list[EncryptionSecret] = field(default_factory=list)

    def __init__(self, format: str, secrets: list[EncryptionSecret] = FACTORY) -> None:
        self.format = format
        self.secrets = list() if secrets is FACTORY else secrets


@record()
class VolumeTarget:
    """A volume's <target>: path, format, permissions, encryption, features."""
    path: str | None = None
    format: str | None = None
    permissions: Permissions | None = None
    timestamps: Timestamps | None = None
    encryption: Encryption | None = None
    compat: str | None = None
    nocow: bool = False
    cluster_size: int | None = None
    features: list[str] | None = None  # None: no <features>; []: empty <features/>

    def __init__(
            self, path: str | None = None, format: str | None = None,
            permissions: Permissions | None = None, timestamps: Timestamps | None = None,
            encryption: Encryption | None = None, compat: str | None = None, nocow: bool = False,
            cluster_size: int | None = None, features: list[str] | None = None) -> None:
        self.path = path
        self.format = format
        self.permissions = permissions
        self.timestamps = timestamps
        self.encryption = encryption
        self.compat = compat
        self.nocow = nocow
        self.cluster_size = cluster_size
        self.features = features


@record()
class VolumeDef:
    """A volume definition (libvirt <volume> XML)."""

    name: str
    type: str | None = None
    key: str | None = None
    capacity: int | None = None
    allocation: int | None = None
    physical: int | None = None
    source_devices: list[tuple[str, list[Extent]]] = field(default_factory=list)
    target: VolumeTarget = field(default_factory=VolumeTarget)
    backing: BackingStore | None = None
    # how to make it, not part of the XML (virsh's create flags): qcow2 metadata
    # preallocated (--prealloc-metadata); a clone by reflink or not at all (--reflink)
    prealloc_metadata: bool = False
    reflink: bool = False

    def __init__(
            self, name: str, type: str | None = None, key: str | None = None,
            capacity: int | None = None, allocation: int | None = None, physical: int | None = None,
            source_devices: list[tuple[str, list[Extent]]] = FACTORY,
            target: VolumeTarget = FACTORY, backing: BackingStore | None = None,
            prealloc_metadata: bool = False, reflink: bool = False) -> None:
        self.name = name
        self.type = type
        self.key = key
        self.capacity = capacity
        self.allocation = allocation
        self.physical = physical
        self.source_devices = list() if source_devices is FACTORY else source_devices
        self.target = VolumeTarget() if target is FACTORY else target
        self.backing = backing
        self.prealloc_metadata = prealloc_metadata
        self.reflink = reflink


@record()
class DeviceLayout:
    """One device of a disk or logical pool, to scale: what is used by which volume and
    what is free. `used` holds (start, end, volume name) in bytes, end exclusive."""

    path: str
    size: int
    used: list[tuple[int, int, str]] = field(default_factory=list)
    free: list[FreeExtent] = field(default_factory=list)

    def __init__(
            self, path: str, size: int, used: list[tuple[int, int, str]] = FACTORY,
            free: list[FreeExtent] = FACTORY) -> None:
        self.path = path
        self.size = size
        self.used = list() if used is FACTORY else used
        self.free = list() if free is FACTORY else free


@record(frozen=True)
class SourceRule:
    """Which <source> parts a pool type uses, and how many (checked when XML is read).
    `hosts`/`devices` are (at least, at most; None: any number); `initiator` is
    (allowed, required); `needs` words what is missing, by part, for the error."""

    hosts: tuple[int, int | None] = (0, 0)
    devices: tuple[int, int | None] = (0, 0)
    dir: bool = False
    name: bool = False
    initiator: tuple[bool, bool] = (False, False)
    auth: bool = False
    protocol: bool = False
    vendor: bool = True
    # how <device path=...> reads: "path" (a device node), "lvm-path" (no spaces, for
    # LVM's argv), "iqn" (a target IQN), "iqn-strict" (the IQN libiscsi accepts)
    device_kind: str = "path"
    part_separator: bool = False  # <device part_separator=...> (partition naming)
    needs: Mapping[str, str] = field(default_factory=dict)

    def __init__(
            self, hosts: tuple[int, int | None] = (0, 0), devices: tuple[int, int | None] = (0, 0),
            dir: bool = False, name: bool = False, initiator: tuple[bool, bool] = (False, False),
            auth: bool = False, protocol: bool = False, vendor: bool = True,
            device_kind: str = "path", part_separator: bool = False,
            needs: Mapping[str, str] = FACTORY) -> None:
        _set(self, "hosts", hosts)
        _set(self, "devices", devices)
        _set(self, "dir", dir)
        _set(self, "name", name)
        _set(self, "initiator", initiator)
        _set(self, "auth", auth)
        _set(self, "protocol", protocol)
        _set(self, "vendor", vendor)
        _set(self, "device_kind", device_kind)
        _set(self, "part_separator", part_separator)
        _set(self, "needs", dict() if needs is FACTORY else needs)

    @property
    def needs_host(self) -> bool:
        return self.hosts[0] > 0

    @property
    def many_devices(self) -> bool:
        return self.devices[1] is None


@record(frozen=True)
class PoolFeatures:
    """Everything a pool type is and can do, as its driver declares it: the XML checks,
    the controller and the TUI read this instead of naming pool types (the TUI greys out
    what a type cannot do, with the reason, and shapes its forms and words from it)."""

    type: str
    can_build: bool = False
    can_create_volumes: bool = False
    can_delete_volumes: bool = False
    can_resize_volumes: bool = False
    creatable_formats: tuple[str, ...] = ()
    default_volume_format: str | None = None
    wipe_algorithms: tuple[str, ...] = WIPE_ALGORITHMS  # what its volumes can be wiped with
    # -- what the type is --
    article: str = "a"  # "an fs pool"
    pool_formats: tuple[str, ...] = ()  # <source><format type=...>
    default_pool_format: str | None = None  # filled in when absent, printed as libvirt does
    volume_formats: tuple[str, ...] = ()  # () : its volumes have no format of their own
    source: SourceRule = field(default_factory=SourceRule)
    volumes_are_files: bool = False  # the files of a target directory (dir, fs, netfs)
    volume_urls: bool = False  # its volume paths are iscsi:// URLs, not local paths
    volumes_are_devices: bool = False  # device nodes, so its target may be under /dev
    volume_permissions: bool = True  # <permissions> of a volume can be set
    supports_cow: bool = False  # <features><cow state=.../> (the target's copy-on-write)
    mount_options: bool = False  # <fs:mount_opts> (what it mounts)
    has_target: bool = True  # a local <target><path> (LUNs reached over the network: no)
    volumes_fully_allocated: bool = False  # never sparse (partitions)
    backing_is_snapshot: bool = False  # an overlay is a block snapshot of its base (LVM)
    has_layout: bool = False  # extents drawn to scale (the extent bar, <freeExtent>)
    can_delete_storage: bool = False  # pool-delete destroys something
    delete_needs_empty: bool = False  # pool-delete only removes an empty directory
    target_automatic: bool = False  # the target path follows from the source (/dev/VG)
    target_hint: str = "the directory that holds its volumes"  # what <target><path> is
    # -- words and the define form --
    build_does: str = "has nothing to build"  # "{target}"/"{source}" are filled in
    delete_does: str = "destroys its storage"
    form_fields: tuple[str, ...] = ("name", "target")  # define-form control ids, in order
    target_placeholder: str = ""
    default_target: str = ""
    discover_hint: str | None = None  # None: sources cannot be discovered
    # -- what it needs installed --
    tools: Mapping[str, str] = field(default_factory=dict)  # tool -> Debian package
    optional_tools: Mapping[str, str] = field(default_factory=dict)  # for some choices only
    test_packages: tuple[str, ...] = ()  # Debian packages its tests also need (servers)

    def __init__(
            self, type: str, can_build: bool = False, can_create_volumes: bool = False,
            can_delete_volumes: bool = False, can_resize_volumes: bool = False,
            creatable_formats: tuple[str, ...] = (), default_volume_format: str | None = None,
            wipe_algorithms: tuple[str, ...] = WIPE_ALGORITHMS, article: str = "a",
            pool_formats: tuple[str, ...] = (), default_pool_format: str | None = None,
            volume_formats: tuple[str, ...] = (), source: SourceRule = FACTORY,
            volumes_are_files: bool = False, volume_urls: bool = False,
            volumes_are_devices: bool = False, volume_permissions: bool = True,
            supports_cow: bool = False, mount_options: bool = False, has_target: bool = True,
            volumes_fully_allocated: bool = False, backing_is_snapshot: bool = False,
            has_layout: bool = False, can_delete_storage: bool = False,
            delete_needs_empty: bool = False, target_automatic: bool = False,
            target_hint: str = "the directory that holds its volumes",
            build_does: str = "has nothing to build", delete_does: str = "destroys its storage",
            form_fields: tuple[str, ...] = ("name", "target"), target_placeholder: str = "",
            default_target: str = "", discover_hint: str | None = None,
            tools: Mapping[str, str] = FACTORY, optional_tools: Mapping[str, str] = FACTORY,
            test_packages: tuple[str, ...] = ()) -> None:
        _set(self, "type", type)
        _set(self, "can_build", can_build)
        _set(self, "can_create_volumes", can_create_volumes)
        _set(self, "can_delete_volumes", can_delete_volumes)
        _set(self, "can_resize_volumes", can_resize_volumes)
        _set(self, "creatable_formats", creatable_formats)
        _set(self, "default_volume_format", default_volume_format)
        _set(self, "wipe_algorithms", wipe_algorithms)
        _set(self, "article", article)
        _set(self, "pool_formats", pool_formats)
        _set(self, "default_pool_format", default_pool_format)
        _set(self, "volume_formats", volume_formats)
        _set(self, "source", SourceRule() if source is FACTORY else source)
        _set(self, "volumes_are_files", volumes_are_files)
        _set(self, "volume_urls", volume_urls)
        _set(self, "volumes_are_devices", volumes_are_devices)
        _set(self, "volume_permissions", volume_permissions)
        _set(self, "supports_cow", supports_cow)
        _set(self, "mount_options", mount_options)
        _set(self, "has_target", has_target)
        _set(self, "volumes_fully_allocated", volumes_fully_allocated)
        _set(self, "backing_is_snapshot", backing_is_snapshot)
        _set(self, "has_layout", has_layout)
        _set(self, "can_delete_storage", can_delete_storage)
        _set(self, "delete_needs_empty", delete_needs_empty)
        _set(self, "target_automatic", target_automatic)
        _set(self, "target_hint", target_hint)
        _set(self, "build_does", build_does)
        _set(self, "delete_does", delete_does)
        _set(self, "form_fields", form_fields)
        _set(self, "target_placeholder", target_placeholder)
        _set(self, "default_target", default_target)
        _set(self, "discover_hint", discover_hint)
        _set(self, "tools", dict() if tools is FACTORY else tools)
        _set(self, "optional_tools", dict() if optional_tools is FACTORY else optional_tools)
        _set(self, "test_packages", test_packages)

    @property
    def a_pool(self) -> str:
        """'a dir pool', 'an fs pool'."""
        return f"{self.article} {self.type} pool"

    @property
    def discoverable(self) -> bool:
        return self.discover_hint is not None

    @property
    def volumes_have_format(self) -> bool:
        return bool(self.volume_formats)

    @property
    def packages(self) -> tuple[str, ...]:
        """The Debian packages of the tools it always needs."""
        return tuple(sorted(set(self.tools.values())))


@record()
class PoolSizes:
    """A pool's capacity, allocation and free space, in bytes."""
    capacity: int
    allocation: int
    available: int  # free space in all (a disk pool: the sum of its free extents)
    largest_free: int | None = None  # a disk pool: its largest free extent (one partition)

    def __init__(
            self, capacity: int, allocation: int, available: int,
            largest_free: int | None = None) -> None:
        self.capacity = capacity
        self.allocation = allocation
        self.available = available
        self.largest_free = largest_free


@record()
class PoolStatus:
    """What `pool-list --details` shows for one pool."""

    name: str
    type: str
    uuid: str
    state: str  # one of POOL_STATES
    autostart: bool
    persistent: bool
    capacity: int | None = None
    allocation: int | None = None
    available: int | None = None
    target: str | None = None
    source: str | None = None  # one-line summary for display
    detail: str | None = None  # runtime state in words, e.g. "/dev/loop3 (ext4) mounted"
    volume_limit: str | None = None  # why its volumes cannot be made or written here
    largest_free: int | None = None  # the largest free extent (disk pools; see PoolSizes)
    features: PoolFeatures | None = None  # what its type can do; None: type unknown here

    def __init__(
            self, name: str, type: str, uuid: str, state: str, autostart: bool, persistent: bool,
            capacity: int | None = None, allocation: int | None = None,
            available: int | None = None, target: str | None = None, source: str | None = None,
            detail: str | None = None, volume_limit: str | None = None,
            largest_free: int | None = None, features: PoolFeatures | None = None) -> None:
        self.name = name
        self.type = type
        self.uuid = uuid
        self.state = state
        self.autostart = autostart
        self.persistent = persistent
        self.capacity = capacity
        self.allocation = allocation
        self.available = available
        self.target = target
        self.source = source
        self.detail = detail
        self.volume_limit = volume_limit
        self.largest_free = largest_free
        self.features = features

    @property
    def active(self) -> bool:
        return self.state == "running"

    @property
    def started(self) -> bool:
        """Started, usable or not (inaccessible, degraded): pool-destroy stops it."""
        return self.state in ("running", "degraded", "inaccessible")

    @property
    def type_features(self) -> PoolFeatures:
        """What its type can do (a type this host does not know: nothing)."""
        return self.features or PoolFeatures(type=self.type)


class _NoItems(list):  # type: ignore[type-arg]
    """The one empty list that volumes without extents share (a pool of 100,000 volumes
    need not hold 200,000 empty lists): it equals [], and changing it in place raises
    (assign a new list instead)."""

    __slots__ = ()

    def _frozen(self, *_args: object, **_kwargs: object) -> None:
        raise TypeError("a VolumeInfo's shared empty list: assign a new list instead")

    append = extend = insert = remove = pop = clear = sort = reverse = _frozen  # type: ignore[assignment]
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _frozen  # type: ignore[assignment]


NO_ITEMS: list = _NoItems()  # type: ignore[type-arg]


def _no_items() -> list:  # type: ignore[type-arg]
    return NO_ITEMS


_SIZES: dict[int, int] = {}  # sizes listed so far: images of one size share one int


def shared_size(n: int) -> int:
    """`n`, as the int object an earlier volume holds (a listing of images of a few sizes
    need not keep a new int per volume and field; at most 65,536 are kept)."""
    return _SIZES.setdefault(n, n) if len(_SIZES) < 65536 else _SIZES.get(n, n)


@record(slots=True)
class VolumeInfo:
    """One volume as a refresh found it."""

    name: str
    key: str
    path: str
    type: str = "file"  # one of VOLUME_TYPES
    format: str = "raw"  # the format actions use (recorded at create, declared, or probed)
    format_recorded: bool = False  # True: `format` is what poolkeeper recorded, not a probe
    probed_format: str | None = None  # what the header says, for display; None if not probed
    capacity: int = 0
    allocation: int = 0
    physical: int = 0
    backing: BackingStore | None = None
    data_file: str | None = None  # qcow2 external data file named by the header (never opened)
    # vmdk extent files qemu would open: (name as written, path beside the image), never opened
    extent_files: list[tuple[str, str]] = field(default_factory=_no_items)
    # the backing chain below, each file with the format it is opened as, once the controller
    # has checked it (None: not checked); image_spec names every file of it itself
    backing_chain: list[BackingStore] | None = None
    cluster_size: int | None = None
    compat: str | None = None
    features: list[str] | None = None
    encryption: str | None = None  # encryption format found in the header
    permissions: Permissions | None = None
    timestamps: Timestamps | None = None
    symlink: str | None = None  # the link text when the entry is a symlink
    extents: list[tuple[str, list[Extent]]] = field(default_factory=_no_items)  # device -> used
    attributes: str | None = None  # type-specific flags for display (LV attr, partition flags)
    error: str | None = None  # why the volume could not be read (listed, not dropped)
    # Change detection for live refresh: cheap stat signature.
    signature: tuple = ()
    # (inode, birth time ns, inode generation) of a file: matched against the format record
    # (None when the driver does not report it; a part is None where the filesystem has none)
    file_id: tuple[int, int | None, int | None] | None = None
    times_ns: tuple[int, int, int] | None = None  # atime, mtime, ctime (timestamps on demand)
    # True: listed from its directory entry alone, its header not read yet (a quick listing,
    # backends/streamed_listing.py): format "", capacity 0 and no backing mean "unknown".
    # Only the TUI's cache holds such an info; nothing acts on it. Its header is read INTO
    # it (VolumeCache.probed), pending cleared last: the one change made in place to an
    # info the cache has published.
    pending: bool = False

    def __init__(
            self, name: str, key: str, path: str, type: str = "file", format: str = "raw",
            format_recorded: bool = False, probed_format: str | None = None, capacity: int = 0,
            allocation: int = 0, physical: int = 0, backing: BackingStore | None = None,
            data_file: str | None = None, extent_files: list[tuple[str, str]] = FACTORY,
            backing_chain: list[BackingStore] | None = None, cluster_size: int | None = None,
            compat: str | None = None, features: list[str] | None = None,
            encryption: str | None = None, permissions: Permissions | None = None,
            timestamps: Timestamps | None = None, symlink: str | None = None,
            extents: list[tuple[str, list[Extent]]] = FACTORY, attributes: str | None = None,
            error: str | None = None, signature: tuple = (),
            file_id: tuple[int, int | None, int | None] | None = None,
            times_ns: tuple[int, int, int] | None = None, pending: bool = False) -> None:
        self.name = name
        self.key = key
        self.path = path
        self.type = type
        self.format = format
        self.format_recorded = format_recorded
        self.probed_format = probed_format
        self.capacity = capacity
        self.allocation = allocation
        self.physical = physical
        self.backing = backing
        self.data_file = data_file
        self.extent_files = _no_items() if extent_files is FACTORY else extent_files
        self.backing_chain = backing_chain
        self.cluster_size = cluster_size
        self.compat = compat
        self.features = features
        self.encryption = encryption
        self.permissions = permissions
        self.timestamps = timestamps
        self.symlink = symlink
        self.extents = _no_items() if extents is FACTORY else extents
        self.attributes = attributes
        self.error = error
        self.signature = signature
        self.file_id = file_id
        self.times_ns = times_ns
        self.pending = pending

    def stamped(self) -> Timestamps | None:
        """libvirt's <timestamps> ("SEC" or "SEC.NNNNNNNNN"; Linux has no btime: "0")."""
        if self.timestamps is not None or self.times_ns is None:
            return self.timestamps
        return Timestamps(*(_stamp(ns) for ns in self.times_ns), btime="0")

    @property
    def percent_allocated(self) -> float:
        return 100.0 * self.allocation / self.capacity if self.capacity else 0.0


def _stamp(ns: int) -> str:
    sec, frac = divmod(ns, 1_000_000_000)
    return f"{sec}.{frac:09d}" if frac else str(sec)
