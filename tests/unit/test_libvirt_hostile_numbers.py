"""Numbers in XML from a libvirt daemon (another host: not trusted) that Python's int()
would take or choke on: digits of other scripts, superscripts. They read as unknown (0 /
None), never as a crash of the TUI's worker or a number the daemon did not send."""

from __future__ import annotations

import pytest

from backends.libvirt_controller import volume_from_xml
from backends.libvirt_host import device_layouts

HOSTILE = ["²", "١٠", "１０", " 5 ", "1_0", "-3", "0x10"]


@pytest.mark.parametrize("text", HOSTILE)
def test_free_extents_with_foreign_digits_read_as_zero(text: str) -> None:
    pool = (f"<pool type='disk'><name>d</name><capacity>{text}</capacity><source>"
            f"<device path='/dev/sdb'><freeExtent start='{text}' end='1048576'/></device>"
            "</source></pool>")
    [layout] = device_layouts(pool, [])
    expected = 5 if text == " 5 " else 0
    assert layout.free[0].start == expected


@pytest.mark.parametrize("text", HOSTILE)
def test_volume_sizes_with_foreign_digits_read_as_unknown(text: str) -> None:
    info = volume_from_xml(f"<volume><name>v</name><key>k</key><capacity>{text}</capacity>"
                           f"<allocation>{text}</allocation><target><path>/p/v</path>"
                           "</target></volume>")
    expected = 5 if text == " 5 " else 0
    assert (info.capacity, info.allocation) == (expected, expected)
