"""atheris harness: the code that turns definitions into tool argv (see fuzz/checks.py).

The first bytes pick a builder (mount options, fs/netfs mount, pvcreate/vgcreate, lvcreate,
parted mkpart plan, parted output, iscsiadm, --host, iscsi-direct URL/options, qemu-img
create, volume paths); the rest fill a valid template definition of that kind with fuzzed
values in a few fields. The checks are those of tests/reliability/test_fuzz_argv.py: our
own error, or an argv where no user value can be read as an option, no NUL, and mount's -o
list ending with nodev,nosuid,noexec. No tool is ever run: runner.run is replaced by a
recorder for the whole process.

Run by `make fuzz` (fuzz/run.py); by hand:
    .venv/bin/python fuzz/fuzz_argv.py -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["backends"]):
    from backends import runner
    from backends.drivers import disk as diskdrv
    from backends.drivers import lvm_report, parted_table
    from backends.model import (
        AuthSecret,
        BackingStore,
        PoolDef,
        PoolSource,
        PoolTarget,
        SourceAuth,
        SourceDevice,
        SourceHost,
        VolumeDef,
        VolumeTarget,
    )
    from fuzz import checks



def _no_tool(argv: list[str], **_kwargs: object) -> runner.Completed:
    return runner.Completed(list(argv), list(argv), 0, "", "", 0.0)


runner.run = _no_tool  # nothing a fuzzed builder does may reach a real tool

WORDS = [
    "", " ", "-", "--", "-oexec", "--help", "exec", "suid", "dev", "defaults", "nfsvers=3",
    "rw", "noatime", "a,b", "../", "..", "/", "//", "/dev/sdb", "/a/../b", ";", "$(reboot)",
    "iqn.2013-06.com.example:t0", "iqn.2013-06.x:../y", "127.0.0.1", "::1", "[::1]", "%eth0",
    "json:{}", "nbd://h/x", "1.1", "1.1,backing_file=/etc/shadow", "\x00", "\n", "\t", "\x9b",
    "é", "\ud800", "x" * 300, "9" * 30, "lvm", "gpt", "raw", "qcow2", "vg", "vg/lv",
]
TEMPLATES = {
    "fs": PoolDef(type="fs", name="f", source=PoolSource(devices=[SourceDevice("/dev/sdb")],
                                                         format="ext4"),
                  target=PoolTarget("/mnt/f"), mount_opts=["noatime"]),
    "netfs": PoolDef(type="netfs", name="n", source=PoolSource(
        hosts=[SourceHost("nfs.example", 2049)], dir="/export", format="nfs",
        protocol_ver="4.1"), target=PoolTarget("/mnt/n")),
    "logical": PoolDef(type="logical", name="vg", source=PoolSource(
        name="vg", devices=[SourceDevice("/dev/sdb"), SourceDevice("/dev/sdc")]),
        target=PoolTarget("/dev/vg")),
    "iscsi": PoolDef(type="iscsi", name="i", source=PoolSource(
        hosts=[SourceHost("127.0.0.1", 3260)],
        devices=[SourceDevice("iqn.2013-06.com.example:t0")],
        initiator_iqn="iqn.2013-06.com.example:init",
        auth=SourceAuth("chap", "user", AuthSecret(usage="s"))), target=PoolTarget("/dev/x")),
    "iscsi-direct": PoolDef(type="iscsi-direct", name="d", source=PoolSource(
        hosts=[SourceHost("127.0.0.1", 3260)],
        devices=[SourceDevice("iqn.2013-06.com.example:t0")],
        initiator_iqn="iqn.2013-06.com.example:init")),
}
POOL_FIELDS = ["name", "target.path", "source.dir", "source.name", "source.format",
               "source.initiator_iqn", "source.protocol_ver", "host.name", "host.port",
               "device.path", "device.path2", "mount_opts", "auth.username"]


def text(fdp: atheris.FuzzedDataProvider) -> str:
    if fdp.ConsumeBool():
        return fdp.PickValueInList(WORDS) + fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 4))
    return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))


def number(fdp: atheris.FuzzedDataProvider) -> int:
    return fdp.PickValueInList([0, 1, -1, 512, 1 << 20, 2**63 - 1, 2**63, 2**64,
                                fdp.ConsumeInt(9)])


def fuzzed_pool(fdp: atheris.FuzzedDataProvider, ptype: str) -> PoolDef:
    pool = copy.deepcopy(TEMPLATES[ptype])
    src = pool.source
    for _ in range(fdp.ConsumeIntInRange(0, 3)):
        field = fdp.PickValueInList(POOL_FIELDS)
        if field == "host.port" and src.hosts:
            src.hosts[0].port = number(fdp)
        elif field == "host.name" and src.hosts:
            src.hosts[0].name = text(fdp)
        elif field == "device.path" and src.devices:
            src.devices[0].path = text(fdp)
        elif field == "device.path2":
            src.devices.append(SourceDevice(text(fdp)))
        elif field == "mount_opts":
            pool.mount_opts.append(text(fdp))
        elif field == "auth.username" and src.auth is not None:
            src.auth.username = text(fdp)
        elif "." in field:
            owner, attr = field.split(".")
            setattr(pool.source if owner == "source" else pool.target, attr, text(fdp))
        else:
            setattr(pool, field, text(fdp))
    return pool


def fuzzed_volume(fdp: atheris.FuzzedDataProvider) -> VolumeDef:
    vol = VolumeDef(name=text(fdp) if fdp.ConsumeBool() else "v",
                    capacity=number(fdp) if fdp.ConsumeBool() else 1 << 30,
                    allocation=number(fdp) if fdp.ConsumeBool() else None,
                    target=VolumeTarget(format=fdp.PickValueInList(
                        ["qcow2", "qcow", "qed", "vmdk", "vpc", "vdi", "raw", None])))
    if fdp.ConsumeBool():
        vol.target.compat = text(fdp)
    if fdp.ConsumeBool():
        vol.target.cluster_size = number(fdp)
    if fdp.ConsumeBool():
        vol.target.features = [text(fdp), "lazy_refcounts"]
    vol.target.nocow = fdp.ConsumeBool()
    if fdp.ConsumeBool():
        vol.backing = BackingStore(path=text(fdp), format=text(fdp) if fdp.ConsumeBool()
                                   else "qcow2")
    return vol


def vg(fdp: atheris.FuzzedDataProvider) -> tuple[lvm_report.VGState, list[lvm_report.LVState]]:
    state = lvm_report.VGState(name="vg", uuid="u", attr="wz--n-", size=0, free=0,
                           extent_size=512 << fdp.ConsumeIntInRange(0, 20), extent_count=0,
                           free_count=0, seqno=1, lv_count=0, missing_count=0)
    lvs = []
    for name, attr, segtype in (("thin", "twi-aotz--", "thin-pool"), ("base", "-wi-a-----",
                                                                        "linear")):
        if fdp.ConsumeBool():
            lvs.append(lvm_report.LVState(name, "u-" + name, f"/dev/vg/{name}", attr, 1 << 30, "",
                                      0, "", segtype, None, "", ("public",), False))
    return state, lvs


def disk_table(fdp: atheris.FuzzedDataProvider) -> diskdrv.DiskTable:
    sector = fdp.PickValueInList([512, 4096])
    size = fdp.ConsumeIntInRange(1, 1 << 22) * sector
    cuts = sorted({fdp.ConsumeIntInRange(1, max(1, size // sector - 1))
                   for _ in range(fdp.ConsumeIntInRange(0, 8))})
    spans = [(cuts[i] * sector, cuts[i + 1] * sector) for i in range(0, len(cuts) - 1, 2)]
    label = fdp.PickValueInList(["msdos", "gpt", "sun"])
    if label == "msdos":
        spans = spans[:4]
    table = diskdrv.DiskTable("/dev/loop9", size, sector, label, [
        diskdrv.Partition(n, s, e, "primary", "", "", (), None)
        for n, (s, e) in enumerate(spans, start=1)])
    table.gaps = parted_table._gaps(sector if label == "msdos" else 34 * sector, size, spans)
    return table


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    which = fdp.ConsumeIntInRange(0, 11)
    through = fdp.ConsumeBool()
    if which == 0:
        checks.check_mount_options(["nfsvers=4"] if through else [],
                                   [text(fdp) for _ in range(fdp.ConsumeIntInRange(0, 4))])
    elif which == 1:
        checks.check_fs_mount(fuzzed_pool(fdp, "fs"), through)
    elif which == 2:
        checks.check_netfs_mount(fuzzed_pool(fdp, "netfs"), through)
    elif which == 3:
        checks.check_logical_build(fuzzed_pool(fdp, "logical"), through)
    elif which == 4:
        state, lvs = vg(fdp)
        vol = fuzzed_volume(fdp)
        if vol.backing is not None and fdp.ConsumeBool():
            vol.backing.path = "/dev/vg/base"
        checks.check_lvcreate(vol, state, lvs, through)
    elif which == 5:
        table = disk_table(fdp)
        start = fdp.ConsumeIntInRange(0, 1 << 14) << 20 if fdp.ConsumeBool() else None
        checks.check_mkpart_plan(table, fdp.PickValueInList(list(diskdrv.MKPART_ARGS)),
                                 fdp.ConsumeIntInRange(1, 1 << 40), start)
    elif which == 6:
        checks.check_parse_parted(fdp.ConsumeUnicode(fdp.remaining_bytes()))
    elif which == 7:
        checks.check_iscsiadm(fuzzed_pool(fdp, "iscsi"), through)
    elif which == 8:
        checks.check_host_arg(text(fdp))
    elif which == 9:
        checks.check_iscsi_direct(fuzzed_pool(fdp, "iscsi-direct"), through,
                                  fdp.ConsumeIntInRange(0, 16383),
                                  fdp.ConsumeIntInRange(0, 2**62),
                                  fdp.ConsumeIntInRange(1, 2**62), text(fdp))
    elif which == 10:
        checks.check_qemu_img_create(fuzzed_volume(fdp), through)
    else:
        checks.check_volume_path(text(fdp))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
