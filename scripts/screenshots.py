"""Make the README's screenshots from the real app on a demo root: `make screenshots`.

Runs the real StorageController (not the test stub) on tui.demo.make_demo_root() in a
temporary directory, drives the TUI with Pilot and writes SVGs into screenshots/:

    main.svg           the main screen, pool "images" selected (the demo's volumes and a
                       4 GiB fully allocated db02.img)
    define-pool.svg    the define-pool dialog, type netfs, filled in (the XML preview shows)
    create-volume.svg  the create-volume dialog, filled in (a qcow2 overlay)
    jobs.svg           the jobs panel with a running 'random' wipe of a 4 GiB volume
    hosts.svg          several hosts in the tree: this host, two libvirt connections (to
                       libvirt's test driver, test:///default) and one that fails

The demo's paths are temporary directories, so they differ from run to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Input, Select  # noqa: E402
from textual.worker import WorkerCancelled  # noqa: E402

from backends.connection_store import ConnectionStore, SavedConnection  # noqa: E402
from backends.controller import StorageController  # noqa: E402
from backends.fleet import Fleet  # noqa: E402
from backends.model import WIPE_ALGORITHMS, VolumeDef, VolumeTarget  # noqa: E402
from tui.app import PoolkeeperApp  # noqa: E402
from tui.demo import close_demo, make_demo_root  # noqa: E402
from tui.screens.main import MainScreen  # noqa: E402
from tui.widgets.jobs_panel import JobsPanel  # noqa: E402

OUT = REPO / "screenshots"
SIZE = (120, 32)
GiB = 1 << 30
WIPED = "db02.img"  # made for the jobs screenshot: 4 GiB, fully allocated


async def settle(pilot: Pilot[None], rounds: int = 6) -> None:
    for _ in range(rounds):
        # an exclusive worker replaced by a newer one is the design (tests/settle.py)
        with contextlib.suppress(WorkerCancelled):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.05)


async def save(pilot: Pilot[None], name: str) -> None:
    for widget in pilot.app.screen.query(Input):
        widget.cursor_blink = False  # the cursor shows, steadily
    await pilot.pause(0.1)
    pilot.app.save_screenshot(name, str(OUT))
    print(f"screenshots/{name}")


async def type_in(pilot: Pilot[None], selector: str, text: str) -> None:
    widget = pilot.app.screen.query_one(selector, Input)
    widget.focus()
    widget.value = text
    widget.cursor_position = len(text)
    await pilot.pause()


async def choose(pilot: Pilot[None], selector: str, value: object) -> None:
    pilot.app.screen.query_one(selector, Select).value = value
    await pilot.pause()


async def main_screen(pilot: Pilot[None], screen: MainScreen) -> None:
    screen.select_pool("images")
    await settle(pilot)
    await save(pilot, "main.svg")


async def define_pool(pilot: Pilot[None]) -> None:
    await pilot.press("n")
    await settle(pilot)
    await choose(pilot, "#type", "netfs")
    await type_in(pilot, "#name", "nfs-images")
    await type_in(pilot, "#target", "/mnt/nfs-images")
    await type_in(pilot, "#host", "nas.example.com")
    await type_in(pilot, "#srcdir", "/export/images")
    await choose(pilot, "#format", "nfs")
    await settle(pilot)
    await save(pilot, "define-pool.svg")
    await pilot.press("escape")
    await settle(pilot)


async def create_volume(pilot: Pilot[None]) -> None:
    await pilot.press("c")
    await settle(pilot)
    dialog = pilot.app.screen
    await type_in(pilot, "#name", "web02.qcow2")
    await type_in(pilot, "#capacity", "20G")
    await choose(pilot, "#format", "qcow2")
    base = next(i for i, v in enumerate(dialog.candidates) if v.name == "base.qcow2")
    await choose(pilot, "#backing", base)
    await type_in(pilot, "#name", "web02.qcow2")  # focus back on the first field
    await settle(pilot)
    await save(pilot, "create-volume.svg")
    await pilot.press("escape")
    await settle(pilot)


async def jobs(pilot: Pilot[None], ctl: StorageController, screen: MainScreen) -> None:
    # As a person would: the volume, w, the 'random' algorithm, its name typed, enter.
    assert screen.table.select(WIPED), f"{WIPED} is not in the table"
    screen.table.focus()
    await pilot.press("w")
    await settle(pilot)
    await pilot.press(*["down"] * WIPE_ALGORITHMS.index("random"), "enter")
    pilot.app.screen.query_one("#confirm Input", Input).focus()
    await pilot.press(*WIPED, "enter")
    await pilot.pause(0.2)
    panel = screen.query_one("#jobs", JobsPanel)
    job = next((j for j in panel.jobs.values() if j.description.startswith("wipe")), None)
    if job is None:
        raise SystemExit("the wipe did not start")
    try:
        await pilot.press("j")
        deadline = time.monotonic() + 20
        while (job.fraction or 0) < 0.2 and not job.finished and time.monotonic() < deadline:
            await pilot.pause(0.1)
        await pilot.pause(0.3)  # a progress event or two reach the panel
        if job.finished:
            raise SystemExit(f"the wipe ended before the screenshot: {job.state} {job.error}")
        await save(pilot, "jobs.svg")
    finally:
        job.cancel()
        job._finished.wait(60)
    await settle(pilot)


async def run(root: Path) -> None:
    ctl = StorageController(root)
    try:
        ctl.create_volume_def("images", VolumeDef(
            name=WIPED, capacity=4 * GiB, allocation=None,
            target=VolumeTarget(format="raw"))).wait(120)
        app = PoolkeeperApp(ctl, monitor_interval=None)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.main_screen
            await main_screen(pilot, screen)
            await define_pool(pilot)
            await create_volume(pilot)
            await jobs(pilot, ctl, screen)
    finally:
        ctl.close()


HOSTS = [("kvm2", "test:///default"), ("lab", "test:///default"),
         ("kvm3", "qemu:///session?socket=/run/nonexistent/libvirt-sock")]


async def hosts(root: Path) -> None:
    """The tree with several hosts: real libvirt connections (the test driver) and one
    that cannot connect, beside this host's demo pools."""
    native = StorageController(root)
    ConnectionStore(native.paths.config_dir).save([SavedConnection(*h) for h in HOSTS])
    fleet = Fleet(native, native.paths.config_dir)
    fleet.open()
    try:
        deadline = time.monotonic() + 30
        while any(c.state == "connecting" for c in fleet.connections()):
            if time.monotonic() > deadline:
                raise SystemExit(f"the connections did not answer: {fleet.connections()}")
            await asyncio.sleep(0.05)
        app = PoolkeeperApp(fleet, monitor_interval=None)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            deadline = time.monotonic() + 10
            while "default-pool@lab" not in app.main_screen.pools and \
                    time.monotonic() < deadline:
                await pilot.pause(0.1)
            for name, size, fmt in (("web01.qcow2", 8, "qcow2"), ("db01.img", 20, "raw"),
                                    ("win11.qcow2", 30, "qcow2")):
                fleet.create_volume_def("default-pool@kvm2", VolumeDef(
                    name=name, capacity=size * GiB, target=VolumeTarget(format=fmt))).wait(60)
            app.main_screen.select_pool("default-pool@kvm2")
            await settle(pilot)
            await save(pilot, "hosts.svg")
    finally:
        ConnectionStore(native.paths.config_dir).save([])
        fleet.close()


def main() -> int:
    OUT.mkdir(exist_ok=True)
    root = make_demo_root()
    try:
        asyncio.run(run(root))
        asyncio.run(hosts(root))
    finally:
        close_demo(None, root.parent)  # its pools stopped: mounts and loop devices go too
    return 0


if __name__ == "__main__":
    sys.exit(main())
