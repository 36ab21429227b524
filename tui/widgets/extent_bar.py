"""ExtentBar: the devices of a disk or logical pool drawn to scale, one row per device.

Each `DeviceLayout` (a disk with its partitions and free extents, or a PV with its LV
segments and free ranges) becomes one row across the widget's width: used segments and
free extents in order of their start, each at least one cell wide (the cells a tiny one
needs are taken from the others in proportion to their size, so the largest give the most),
labelled inside where there is room (the volume name, or "free 1.2G"). Uncovered bytes
(partition-table metadata, alignment) are blank gaps, to scale too, and cannot be selected.

Colour is never the only cue, so the bar reads the same with NO_COLOR and in ASCII mode:

    used segments   alternate two fill patterns:  '█' / '▓'   (ASCII '#' / '=')
    free extents    '░'                                       (ASCII '.')
    segment edges   '▏' at the start of every segment          (ASCII '|')
    selection       its own colour (reverse video under NO_COLOR) and a marker line
                    under it: '└──┘'  (ASCII '^^^^')

    sda  |# boot #|=========== root ============|...... free 1.2G ......|# swap #|
                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
         sda: root  start 513.00 MiB  end 2.50 GiB  size 2.00 GiB

Lines: one bar per device, the marker line right under the selected device's bar (a blank
line when nothing is selected), then one info line about the selected segment; height is
the number of devices + 2.

Keys (focused): left/right move along a device, up/down switch devices (to the segment
under the same place), home/end; `n` or enter on a free extent posts FreeSegmentChosen
(on a used segment they do nothing). A click selects; a double click on free space is `n`.

Cost: the geometry (cell ranges and labels) is computed only when the layout or the width
changes; each line's Strip is cached and a selection move rebuilds only the lines it
touches, so a live refresh that sets an identical layout rebuilds nothing.

Component classes (for the app's CSS):
    extent-bar--used-a, extent-bar--used-b, extent-bar--free   fill glyphs
    extent-bar--used-a-label, extent-bar--used-b-label, extent-bar--free-label
    extent-bar--selected, extent-bar--selected-label            the selected segment
    extent-bar--gap, extent-bar--edge, extent-bar--device, extent-bar--marker,
    extent-bar--info, extent-bar--dim
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from backends.model import DeviceLayout
from backends.units import human

from ..shown import shown

Selection = tuple[str, int, int, str | None]
"""(device path, start, end, volume name or None for free space)."""

_NAME_CAP = 14  # widest device name in the row prefix (longer ones are cut)

_USED_A, _USED_B, _FREE, _GAP = "used-a", "used-b", "free", "gap"


class _Glyphs(NamedTuple):
    fill: dict[str, str]
    edge: str
    end: str
    ellipsis: str
    marker_one: str
    marker_left: str
    marker_mid: str
    marker_right: str


_UNICODE = _Glyphs(
    fill={_USED_A: "\u2588", _USED_B: "\u2593", _FREE: "\u2591", _GAP: " "},
    edge="\u258f", end="\u258f", ellipsis="\u2026",
    marker_one="\u25b2", marker_left="\u2514", marker_mid="\u2500", marker_right="\u2518",
)
_ASCII = _Glyphs(
    fill={_USED_A: "#", _USED_B: "=", _FREE: ".", _GAP: " "},
    edge="|", end="|", ellipsis="~",
    marker_one="^", marker_left="^", marker_mid="^", marker_right="^",
)


def short_size(size: int) -> str:
    """A size in at most 5 cells for labels: '512M', '1.2G', '40G', '3T'."""
    value = float(max(size, 0))
    for unit in "BKMGTPE":
        if value < 1000 or unit == "E":
            break
        value /= 1024
    text = f"{value:.1f}" if value < 10 and unit != "B" else f"{value:.0f}"
    return (text.removesuffix(".0") if text.endswith(".0") else text) + unit


def free_rows(layouts: Iterable[DeviceLayout]) -> list[tuple[str, int, int, int]]:
    """Every free extent as (device path, start, end, size): devices in the given order,
    extents by start; empty ones left out. For a cfdisk-like table of free space."""
    rows = []
    for layout in layouts:
        for extent in sorted(layout.free, key=lambda f: (f.start, f.end)):
            if extent.end > extent.start:
                rows.append((layout.path, extent.start, extent.end, extent.end - extent.start))
    return rows


@dataclass(frozen=True)
class _Seg:
    start: int  # as reported (the layout's numbers)
    end: int
    volume: str | None
    kind: str  # _USED_A, _USED_B, _FREE or _GAP
    length: int  # bytes drawn (an overlapping segment is clipped to its predecessor's end)


@dataclass(frozen=True)
class _Device:
    path: str
    name: str  # basename, shown in the row prefix
    size: int
    segs: tuple[_Seg, ...]  # gaps included, in order
    selectable: tuple[int, ...]  # indices into segs of used/free segments


def _signature(layouts: Iterable[DeviceLayout]) -> tuple[object, ...]:
    """The layouts' values, immune to the caller mutating its objects later."""
    return tuple(
        (layout.path, layout.size, tuple(map(tuple, layout.used)),
         tuple((f.start, f.end) for f in layout.free))
        for layout in layouts
    )


def _device(layout: DeviceLayout) -> _Device:
    items: list[tuple[int, int, str | None, bool]] = [
        (s, e, name, True) for s, e, name in layout.used
    ] + [(f.start, f.end, None, False) for f in layout.free]
    items = [item for item in items if item[1] > item[0]]
    items.sort(key=lambda item: (item[0], item[1]))
    total = max([layout.size, *(e for _, e, _, _ in items)])
    segs: list[_Seg] = []
    selectable: list[int] = []
    pos = 0
    used_count = 0
    for start, end, name, used in items:
        draw_start = max(start, pos)
        if end <= draw_start:
            continue  # hidden entirely by an overlapping predecessor
        if draw_start > pos:
            segs.append(_Seg(pos, draw_start, None, _GAP, draw_start - pos))
        if used:
            kind = _USED_A if used_count % 2 == 0 else _USED_B
            used_count += 1
        else:
            kind = _FREE
        selectable.append(len(segs))
        segs.append(_Seg(start, end, name if used else None, kind, end - draw_start))
        pos = end
    if pos < total:
        segs.append(_Seg(pos, total, None, _GAP, total - pos))
    name = os.path.basename(layout.path.rstrip("/")) or layout.path
    return _Device(layout.path, name, total, tuple(segs), tuple(selectable))


def _cell_widths(lengths: list[int], selectable: list[bool], cells: int) -> list[int]:
    """Split `cells` in proportion to `lengths`, every selectable item at least one cell.

    Items too small for a cell get exactly one; the rest share what is left in proportion
    (so the cells they need come mostly from the largest), rounded at cumulative boundaries
    so each is within a cell of its share. With more selectable items than cells, each
    still gets one and the total overflows (the row is cut at the width)."""
    n = len(lengths)
    fixed = [False] * n
    while True:
        room = cells - sum(fixed)
        rest = sum(length for length, f in zip(lengths, fixed, strict=True) if not f)
        if room <= 0 or rest <= 0:
            break
        tiny = [i for i in range(n)
                if not fixed[i] and selectable[i] and lengths[i] * room < rest]
        if not tiny:
            break
        for i in tiny:
            fixed[i] = True
    widths = [0] * n
    acc = prev = 0
    for i in range(n):
        if fixed[i]:
            widths[i] = 1
        elif room > 0 and rest > 0:
            acc += lengths[i]
            boundary = (2 * acc * room + rest) // (2 * rest)  # round half up, exactly
            widths[i] = boundary - prev
            prev = boundary
    for i in range(n):  # room <= 0 or rest == 0: only the minimums
        if selectable[i] and widths[i] == 0:
            widths[i] = 1
    return widths


class _Styles(NamedTuple):
    fill: dict[str, Style]
    label: dict[str, Style]
    selected: Style
    selected_label: Style
    edge: Style
    device: Style
    device_selected: Style
    marker: Style
    info: Style
    info_name: Style
    dim: Style
    base: Style


class _Geometry(NamedTuple):
    name_width: int  # prefix is name_width cells + 1 space
    bar_width: int  # cells for segments; one more for the closing edge
    spans: tuple[tuple[tuple[int, int], ...], ...]  # per device, per seg: (x0, x1) in bar


class ExtentBar(Widget, can_focus=True):
    """Partitions / LV segments and free extents of each device, to scale."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1)", "Previous", show=False),
        Binding("right", "move(1)", "Next", show=False),
        Binding("up", "device(-1)", "Device up", show=False),
        Binding("down", "device(1)", "Device down", show=False),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("n", "choose_free", "New volume here"),
        Binding("enter", "choose_free", "New volume here", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "extent-bar--used-a",
        "extent-bar--used-b",
        "extent-bar--free",
        "extent-bar--used-a-label",
        "extent-bar--used-b-label",
        "extent-bar--free-label",
        "extent-bar--selected",
        "extent-bar--selected-label",
        "extent-bar--gap",
        "extent-bar--edge",
        "extent-bar--device",
        "extent-bar--marker",
        "extent-bar--info",
        "extent-bar--dim",
    }

    DEFAULT_CSS = """
    ExtentBar {
        height: auto;
        & > .extent-bar--used-a { color: $primary; }
        & > .extent-bar--used-a-label { background: $primary; color: $text; }
        & > .extent-bar--used-b { color: $success-darken-1; }
        & > .extent-bar--used-b-label { background: $success-darken-1; color: $text; }
        & > .extent-bar--free { color: $foreground-muted; }
        & > .extent-bar--free-label { color: $foreground; }
        & > .extent-bar--selected { color: $accent-darken-3; }
        & > .extent-bar--selected-label {
            background: $accent-darken-3; color: $text; text-style: bold;
        }
        &:focus > .extent-bar--selected { color: $accent; }
        &:focus > .extent-bar--selected-label { background: $accent; color: $text; }
        & > .extent-bar--gap { color: $foreground-muted; }
        & > .extent-bar--edge { color: $foreground-muted; }
        & > .extent-bar--device { color: $foreground; }
        & > .extent-bar--marker { color: $accent-darken-3; }
        &:focus > .extent-bar--marker { color: $accent; text-style: bold; }
        & > .extent-bar--info { color: $foreground; }
        & > .extent-bar--dim { color: $text-muted; }
    }
    """

    class SegmentSelected(Message):
        """The selection moved (keys, click, select_volume, or a new layout)."""

        def __init__(self, device: str, start: int, end: int, volume: str | None, *,
                     bar: ExtentBar | None = None, user: bool = False) -> None:
            super().__init__()
            self.device = device
            self.start = start
            self.end = end
            self.volume = volume  # None: a free extent
            self.bar = bar
            self.user = user  # True when a key or click moved it

        @property
        def control(self) -> ExtentBar | None:
            return self.bar

    class FreeSegmentChosen(Message):
        """`n` or enter (or a double click) on a free extent: create a volume there."""

        def __init__(self, device: str, start: int, end: int, *,
                     bar: ExtentBar | None = None) -> None:
            super().__init__()
            self.device = device
            self.start = start
            self.end = end
            self.bar = bar

        @property
        def size(self) -> int:
            return self.end - self.start

        @property
        def control(self) -> ExtentBar | None:
            return self.bar

    def __init__(
        self,
        *,
        ascii: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
        disabled: bool = False,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes, disabled=disabled)
        self._ascii = ascii
        self._layouts: list[DeviceLayout] = []
        self._signature: tuple[object, ...] = ()
        self._devices: list[_Device] = []
        self._sel: tuple[int, int] | None = None  # (device index, index into segs)
        self._gen = 0  # bumped when the devices change
        self._geometry: tuple[tuple[int, int], _Geometry] | None = None
        self._lines: dict[tuple[object, ...], Strip] = {}
        self._styles: _Styles | None = None
        self._style_state: object = None
        self.strips_built = 0  # lines rendered from scratch (cache misses); for tests

    # ------------------------------------------------------------------ public API

    @property
    def ascii(self) -> bool:
        return self._ascii


    @property
    def layouts(self) -> list[DeviceLayout]:
        return list(self._layouts)

    @property
    def selected(self) -> Selection | None:
        if self._sel is None:
            return None
        dev = self._devices[self._sel[0]]
        seg = dev.segs[self._sel[1]]
        return (dev.path, seg.start, seg.end, seg.volume)

    def set_layout(self, layouts: list[DeviceLayout]) -> None:
        """Show these devices. The selection stays on the same (device, start) when that
        still exists, else on the segment now covering the old start on that device, else
        on the first segment. An identical layout changes nothing (and costs nothing)."""
        signature = _signature(layouts)
        if signature == self._signature:
            return
        old = self.selected
        old_count = len(self._devices)
        self._signature = signature
        self._layouts = list(layouts)
        self._devices = [_device(layout) for layout in self._layouts]
        self._gen += 1
        self._geometry = None
        self._lines.clear()
        self._sel = self._find_again(old)
        if len(self._devices) != old_count:
            self.refresh(layout=True)
        else:
            self.refresh()
        self._announce(old, user=False)

    def select_volume(self, name: str) -> bool:
        """Select the first segment of volume `name` (an LV can have several)."""
        for d, dev in enumerate(self._devices):
            for i in dev.selectable:
                if dev.segs[i].volume == name:
                    self._select((d, i), user=False)
                    return True
        return False

    def select_segment(self, device: str, start: int) -> bool:
        """Select the segment (used or free) of `device` that starts at `start`."""
        for d, dev in enumerate(self._devices):
            if dev.path == device:
                for i in dev.selectable:
                    if dev.segs[i].start == start:
                        self._select((d, i), user=False)
                        return True
        return False

    def segment_spans(self, device: str) -> list[tuple[int, int, int, int, str | None]]:
        """Where the used/free segments of `device` are drawn at the current width:
        (x0, x1, start, end, volume) with x in the widget's content (x1 exclusive)."""
        geometry = self._get_geometry()
        for d, dev in enumerate(self._devices):
            if dev.path == device:
                offset = geometry.name_width + 1
                spans = geometry.spans[d]
                return [
                    (offset + spans[i][0], offset + spans[i][1], dev.segs[i].start,
                     dev.segs[i].end, dev.segs[i].volume)
                    for i in dev.selectable
                ]
        raise KeyError(device)

    # ------------------------------------------------------------------ selection

    def _find_again(self, old: Selection | None) -> tuple[int, int] | None:
        if old is not None:
            path, start = old[0], old[1]
            for d, dev in enumerate(self._devices):
                if dev.path != path:
                    continue
                for i in dev.selectable:
                    if dev.segs[i].start == start:
                        return (d, i)
                for i in dev.selectable:  # the old start is now inside another segment
                    if dev.segs[i].start <= start < dev.segs[i].end:
                        return (d, i)
                if dev.selectable:
                    return (d, dev.selectable[0])
        for d, dev in enumerate(self._devices):
            if dev.selectable:
                return (d, dev.selectable[0])
        return None

    def _announce(self, old: Selection | None, *, user: bool) -> None:
        new = self.selected
        if new is not None and new != old:
            self.post_message(self.SegmentSelected(*new, bar=self, user=user))

    def _select(self, sel: tuple[int, int] | None, *, user: bool) -> None:
        if sel == self._sel:
            return
        old = self.selected
        self._sel = sel
        self.refresh()  # the bar, marker and info lines move; the cached strips stay
        if (old is None or old[3] is None) != (self.selected is None or self.selected[3] is None):
            self.refresh_bindings()  # the footer's n: New volume here only on free space
        self._announce(old, user=user)

    def action_move(self, step: int) -> None:
        if self._sel is None:
            self._select(self._find_again(None), user=True)
            return
        d, i = self._sel
        order = self._devices[d].selectable
        k = max(0, min(order.index(i) + step, len(order) - 1))
        self._select((d, order[k]), user=True)

    def action_first(self) -> None:
        if self._sel is not None:
            d = self._sel[0]
            self._select((d, self._devices[d].selectable[0]), user=True)

    def action_last(self) -> None:
        if self._sel is not None:
            d = self._sel[0]
            self._select((d, self._devices[d].selectable[-1]), user=True)

    def action_device(self, step: int) -> None:
        if self._sel is None:
            self._select(self._find_again(None), user=True)
            return
        d, i = self._sel
        here = self._devices[d]
        mid = self._fraction_of(here, i)
        target = d + step
        while 0 <= target < len(self._devices) and not self._devices[target].selectable:
            target += step
        if not 0 <= target < len(self._devices):
            return
        dev = self._devices[target]
        # The segment under the same place on screen (every device spans the full width).
        best = min(dev.selectable, key=lambda j: self._distance(dev, j, mid))
        self._select((target, best), user=True)

    @staticmethod
    def _fraction_of(dev: _Device, i: int) -> float:
        before = sum(s.length for s in dev.segs[:i])
        return (before + dev.segs[i].length / 2) / dev.size if dev.size else 0.0

    @staticmethod
    def _distance(dev: _Device, j: int, mid: float) -> float:
        if not dev.size:
            return float(j)
        x0 = sum(s.length for s in dev.segs[:j]) / dev.size
        x1 = x0 + dev.segs[j].length / dev.size
        return 0.0 if x0 <= mid < x1 else min(abs(mid - x0), abs(mid - x1))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # n on a used segment is the screen's n (define a pool), as on a volume row
        if action == "choose_free" and (self.selected or (0, 0, 0, ""))[3] is not None:
            return False
        return super().check_action(action, parameters)

    def disabled_reason(self, action: str, step: int = 0) -> str | None:
        """Why a key of the bar does nothing now (tui.keys: the notice, and F1)."""
        if self._sel is None:
            return None if any(d.selectable for d in self._devices) else "nothing on the bar"
        d, i = self._sel
        order, sel = self._devices[d].selectable, self.selected
        k, name = order.index(i), self._devices[d].name
        if action == "choose_free" and sel is not None and sel[3] is not None:
            return f"only on a free segment: this one is {sel[3]}"
        if action in ("move", "first") and step <= 0 and k == 0:
            return f"first segment of {name} already"
        if action in ("move", "last") and step >= 0 and k == len(order) - 1:
            return f"last segment of {name} already"
        if action == "device" and not any(self._devices[t].selectable for t in (
                range(d - 1, -1, -1) if step < 0 else range(d + 1, len(self._devices)))):
            return f"{'first' if step < 0 else 'last'} device already"
        return None

    def action_choose_free(self) -> None:
        sel = self.selected
        if sel is not None and sel[3] is None:
            self.post_message(self.FreeSegmentChosen(sel[0], sel[1], sel[2], bar=self))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = self._line_map()
        if not 0 <= offset.y < len(row) or row[offset.y][0] != "bar":
            return
        event.stop()
        d = row[offset.y][1]
        geometry = self._get_geometry()
        x = offset.x - geometry.name_width - 1
        for i in self._devices[d].selectable:
            x0, x1 = geometry.spans[d][i]
            if x0 <= x < x1:
                self._select((d, i), user=True)
                if event.chain >= 2:
                    self.action_choose_free()
                return

    # ------------------------------------------------------------------ geometry

    def _get_geometry(self) -> _Geometry:
        width = max(self.size.width, 1)
        key = (self._gen, width)
        if self._geometry is not None and self._geometry[0] == key:
            return self._geometry[1]
        names = [cell_len(shown(dev.name, self._ascii)) for dev in self._devices]
        name_width = min(max(names, default=0), _NAME_CAP, max(width // 5, 3))
        bar_width = max(width - name_width - 2, 1)  # prefix space and closing edge
        spans = []
        for dev in self._devices:
            widths = _cell_widths(
                [s.length for s in dev.segs], [s.kind != _GAP for s in dev.segs], bar_width
            )
            x, row = 0, []
            for w in widths:
                row.append((x, x + w))
                x += w
            spans.append(tuple(row))
        geometry = _Geometry(name_width, bar_width, tuple(spans))
        self._geometry = (key, geometry)
        self._lines.clear()
        return geometry

    def _invalidate(self) -> None:
        self._geometry = None
        self._lines.clear()
        self._gen += 1
        self.refresh()

    # ------------------------------------------------------------------ rendering

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._devices) + 2

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if hasattr(self, "_lines"):  # may be called before __init__ has finished
            self._styles = None
            self._lines.clear()

    def _get_styles(self) -> _Styles:
        no_color = self.app.no_color
        state = (self.get_pseudo_class_state(), no_color)
        if self._styles is not None and state == self._style_state:
            return self._styles
        get = self.get_component_rich_style
        # Without colour the selection is shown in reverse video (and by the marker line).
        reverse = Style(reverse=True, bold=True) if no_color else Style()
        base = self.rich_style
        kinds = {_USED_A: "used-a", _USED_B: "used-b", _FREE: "free", _GAP: "gap"}
        fill = {kind: get(f"extent-bar--{name}") for kind, name in kinds.items()}
        label = {kind: get(f"extent-bar--{name}-label") for kind, name in kinds.items()
                 if kind != _GAP}
        device = get("extent-bar--device")
        self._styles = _Styles(
            fill=fill,
            label=label,
            selected=get("extent-bar--selected") + reverse,
            selected_label=get("extent-bar--selected-label") + reverse,
            edge=get("extent-bar--edge"),
            device=device,
            device_selected=device + Style(bold=True),
            marker=get("extent-bar--marker"),
            info=get("extent-bar--info"),
            info_name=get("extent-bar--info") + Style(bold=True),
            dim=get("extent-bar--dim"),
            base=base,
        )
        self._style_state = state
        self._lines.clear()
        return self._styles

    def _line_map(self) -> list[tuple[str, int]]:
        """What each line shows: ("bar", device), ("marker", device), ("blank", -1) or
        ("info", -1)."""
        lines: list[tuple[str, int]] = []
        for d in range(len(self._devices)):
            lines.append(("bar", d))
            if self._sel is not None and self._sel[0] == d:
                lines.append(("marker", d))
        if self._sel is None:
            lines.append(("blank", -1))
        lines.append(("info", -1))
        return lines

    def render_line(self, y: int) -> Strip:
        styles = self._get_styles()
        geometry = self._get_geometry()
        width = self.size.width
        lines = self._line_map()
        if not 0 <= y < len(lines):
            return Strip.blank(width, styles.base)
        what, d = lines[y]
        if not self._devices and what == "blank":
            what = "empty"
        selected = self._sel[1] if self._sel is not None and self._sel[0] == d else -1
        key = (what, d, selected, width, self._sel if what == "info" else None)
        strip = self._lines.get(key)
        if strip is None:
            self.strips_built += 1
            if what == "bar":
                strip = self._bar_strip(d, selected, geometry, styles)
            elif what == "marker":
                strip = self._marker_strip(d, selected, geometry, styles)
            elif what == "info":
                strip = self._info_strip(styles)
            elif what == "empty":
                strip = Strip([Segment(" no devices", styles.dim)])
            else:
                strip = Strip([])
            strip = strip.crop_extend(0, width, styles.base)
            self._lines[key] = strip
        return strip

    def _label(self, seg: _Seg, room: int) -> str:
        """The text inside a segment `room` cells wide ('' when nothing useful fits)."""
        ascii = self._ascii
        if seg.kind == _FREE:
            size = short_size(seg.end - seg.start)
            for text in (f"free {size}", size, "free"):
                if len(text) <= room:
                    return text
            return ""
        if seg.kind == _GAP or seg.volume is None:
            return ""
        name = shown(seg.volume, ascii)
        if cell_len(name) <= room:
            return name
        if room >= 3:  # cut, with an ellipsis, when at least two characters survive
            ellipsis = _ASCII.ellipsis if ascii else _UNICODE.ellipsis
            return set_cell_size(name, room - 1) + ellipsis
        return ""

    def _segment_parts(self, seg: _Seg, width: int, selected: bool, first: bool,
                       styles: _Styles) -> list[tuple[str, Style]]:
        glyphs = _ASCII if self._ascii else _UNICODE
        fill_char = glyphs.fill[seg.kind]
        if seg.kind == _GAP:  # unallocatable (metadata, alignment): blank, framed at the left
            if width >= 2 or first:
                return [(glyphs.edge, styles.edge), (fill_char * (width - 1), styles.fill[_GAP])]
            return [(fill_char * width, styles.fill[_GAP])]
        fill = styles.selected if selected else styles.fill[seg.kind]
        label_style = styles.selected_label if selected else styles.label[seg.kind]
        parts: list[tuple[str, Style]] = []
        if width >= 2:
            parts.append((glyphs.edge, fill))
            width -= 1
        text = self._label(seg, width)
        n = cell_len(text)
        if not text:
            parts.append((fill_char * width, fill))
            return parts
        if n + 2 <= width:  # " label " centred, the pattern around it
            left = (width - n - 2) // 2
            right = width - n - 2 - left
            parts += [(fill_char * left, fill), (f" {text} ", label_style),
                      (fill_char * right, fill)]
        else:
            parts += [(text, label_style), (fill_char * (width - n), fill)]
        return parts

    def _prefix(self, d: int, geometry: _Geometry, styles: _Styles) -> tuple[str, Style]:
        if d < 0:
            return (" " * (geometry.name_width + 1), styles.base)
        name = shown(self._devices[d].name, self._ascii)
        if cell_len(name) > geometry.name_width:
            ellipsis = _ASCII.ellipsis if self._ascii else _UNICODE.ellipsis
            name = set_cell_size(name, max(geometry.name_width - 1, 0)) + ellipsis
            name = set_cell_size(name, geometry.name_width)
        style = styles.device_selected if self._sel and self._sel[0] == d else styles.device
        return (set_cell_size(name, geometry.name_width) + " ", style)

    def _bar_strip(self, d: int, selected: int, geometry: _Geometry,
                   styles: _Styles) -> Strip:
        dev = self._devices[d]
        parts = [self._prefix(d, geometry, styles)]
        spans = geometry.spans[d]
        for i, seg in enumerate(dev.segs):
            x0, x1 = spans[i]
            if x1 > x0:
                parts += self._segment_parts(seg, x1 - x0, i == selected, x0 == 0, styles)
        end = spans[-1][1] if spans else 0
        if end < geometry.bar_width:  # nothing to draw (an empty device)
            parts.append((" " * (geometry.bar_width - end), styles.base))
        glyphs = _ASCII if self._ascii else _UNICODE
        strip = _strip(parts)
        bar_end = geometry.name_width + 1 + geometry.bar_width
        strip = strip.crop_extend(0, bar_end, styles.base)  # overflowing minimums
        return Strip.join([strip, Strip([Segment(glyphs.end, styles.edge)])])

    def _marker_strip(self, d: int, selected: int, geometry: _Geometry,
                      styles: _Styles) -> Strip:
        x0, x1 = geometry.spans[d][selected]
        w = x1 - x0
        glyphs = _ASCII if self._ascii else _UNICODE
        if w == 1:
            mark = glyphs.marker_one
        else:
            mark = glyphs.marker_left + glyphs.marker_mid * (w - 2) + glyphs.marker_right
        return _strip([
            (" " * (geometry.name_width + 1 + x0), styles.base),
            (mark, styles.marker),
        ])

    def _info_strip(self, styles: _Styles) -> Strip:
        sel = self.selected
        if sel is None:
            return Strip([])
        device, start, end, volume = sel
        d = self._sel[0] if self._sel is not None else 0
        name = shown(self._devices[d].name, self._ascii)
        what = shown(volume, self._ascii) if volume is not None else "free"
        parts = [
            (f" {name}: ", styles.info),
            (what, styles.info_name),
            (f"  start {human(start)}  end {human(end)}  size {human(end - start)}",
             styles.info),
        ]
        if volume is None:
            parts.append(("   n: new volume here", styles.dim))
        return _strip(parts)


def _strip(parts: list[tuple[str, Style]]) -> Strip:
    """A Strip from (text, style) parts, neighbours of the same style merged."""
    segments: list[Segment] = []
    text, style = "", None
    for part_text, part_style in parts:
        if not part_text:
            continue
        if part_style is style or part_style == style:
            text += part_text
        else:
            if text:
                segments.append(Segment(text, style))
            text, style = part_text, part_style
    if text:
        segments.append(Segment(text, style))
    return Strip(segments)
