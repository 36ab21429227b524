"""backends/checks.py: one rule per kind of value, applied alike where a definition is read
(xmlio) and where a driver hands the value to a tool. Before, device paths had three rules
(spaces refused by one of them, '..' and commas not refused by xmlio at all)."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

import pytest

from backends import checks, xmlio
from backends.drivers import disk as diskdrv
from backends.drivers import logical as lvmdrv
from backends.errors import UnsafePath, ValidationError

DEVICE_PATHS = ["/dev/sdb", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "/dev/a,b", "/dev/../etc",
                "sdb", "/", "", "/dev/a b", "-o", "/dev/a\x1bb"]
DRIVER_CHECKS = {"disk": diskdrv._check_device_path, "logical": lvmdrv._check_device_path}


def pool_xml(ptype: str, device: str) -> str:
    target = {"disk": "<target><path>/dev</path></target>", "logical": "",
              "fs": "<target><path>/srv/p</path></target>"}[ptype]
    return (f"<pool type='{ptype}'><name>p</name><source><device path={quoteattr(device)}/>"
            f"</source>{target}</pool>")


@pytest.mark.parametrize("ptype", ["disk", "fs", "logical"])
@pytest.mark.parametrize("device", DEVICE_PATHS)
def test_a_definition_and_its_driver_refuse_the_same_device_paths(ptype: str, device: str
                                                                  ) -> None:
    problem = checks.device_path_problem(device, lvm=ptype == "logical")
    if device and "\x1b" not in device:  # XML 1.0 cannot carry ESC at all
        if problem is None:
            xmlio.parse_pool(pool_xml(ptype, device))
        else:
            with pytest.raises(ValidationError):
                xmlio.parse_pool(pool_xml(ptype, device))
    driver_check = DRIVER_CHECKS.get(ptype, checks.require_device_path)
    if problem is None:
        assert driver_check(device) == device
    else:
        with pytest.raises(ValidationError):
            driver_check(device)


def test_device_path_rules() -> None:
    assert checks.device_path_problem("/dev/sdb") is None
    assert "absolute path" in checks.device_path_problem("sdb")  # type: ignore[operator]
    assert "comma" in checks.device_path_problem("/dev/a,b")  # type: ignore[operator]
    assert "U+001B" in checks.device_path_problem("/dev/a\x1b")  # type: ignore[operator]
    assert checks.device_path_problem("/dev/a b") is None
    assert "spaces" in checks.device_path_problem("/dev/a b", lvm=True)  # type: ignore[operator]


@pytest.mark.parametrize("host", ["nfs.example.com", "192.0.2.1", "::1", "-oexec", "a b",
                                  "fe80::1%eth0", "", "h" * 254, "ünï.example"])
def test_a_definition_and_its_driver_refuse_the_same_host_names(host: str) -> None:
    xml = (f"<pool type='netfs'><name>p</name><source><host name={quoteattr(host)}/>"
           "<dir path='/e'/></source><target><path>/srv/p</path></target></pool>")
    if checks.is_host_name(host):
        xmlio.parse_pool(xml)
        assert checks.require_host_name(host) == host
    else:
        with pytest.raises(ValidationError, match="host name"):
            xmlio.parse_pool(xml)
        with pytest.raises(ValidationError, match="host name"):
            checks.require_host_name(host)


@pytest.mark.parametrize("vg", ["vg0", "vg_guests", "-vg", ".", "a b", "v" * 128, "vg/x"])
def test_a_definition_and_its_driver_refuse_the_same_vg_names(vg: str) -> None:
    xml = (f"<pool type='logical'><name>p</name><source><name>{vg}</name></source>"
           "</pool>")
    if checks.is_vg_name(vg):
        xmlio.parse_pool(xml)
        assert checks.require_vg_name(vg) == vg
    else:
        with pytest.raises(ValidationError, match="volume group name"):
            xmlio.parse_pool(xml)
        with pytest.raises(ValidationError, match="volume group name"):
            checks.require_vg_name(vg)


@pytest.mark.parametrize("path", ["json:{}", "nbd://h/x", "host:/x", "iscsi://h/iqn/0"])
def test_remote_backing_stores_are_refused_alike(path: str) -> None:
    assert checks.is_remote_backing(path)
    with pytest.raises(UnsafePath, match=checks.REMOTE_BACKING):
        checks.require_local_backing(path)
    xml = ("<volume><name>v</name><capacity>1</capacity>"
           f"<backingStore><path>{path}</path></backingStore></volume>")
    with pytest.raises(ValidationError, match="is not a local file"):
        xmlio.parse_volume(xml)
