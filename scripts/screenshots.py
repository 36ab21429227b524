"""Make the README's screenshots from the real app: `.venv/bin/python scripts/screenshots.py`."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backends.controller import StorageController  # noqa: E402
from backends.model import VolumeDef, VolumeTarget  # noqa: E402
from tui.app import PoolkeeperApp  # noqa: E402


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ctl = StorageController(Path(tmp) / "state")
        try:
            for name, size, fmt in (("web01.qcow2", 20 << 30, "qcow2"),
                                    ("db01.img", 8 << 30, "raw"),
                                    ("scratch.img", 512 << 20, "raw")):
                ctl.create_volume_def("default", VolumeDef(
                    name=name, capacity=size, allocation=0 if fmt == "raw" else None,
                    target=VolumeTarget(format=fmt))).wait(60)
            app = PoolkeeperApp(ctl)
            async with app.run_test(size=(120, 24)) as pilot:
                for _ in range(5):
                    await app.workers.wait_for_complete()
                    await pilot.pause(0.1)
                app.save_screenshot("main.svg", str(REPO / "screenshots"))
        finally:
            ctl.close()


if __name__ == "__main__":
    asyncio.run(main())
