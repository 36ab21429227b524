"""A pool source that may be an image file, attached to a loop device while the pool runs
or is built (fs and disk pools), written once for both.

The attachment is claimed before it is made (loops.LoopClaims) and recorded in the pool's
extras with the loop's identity, so a loop device that was detached and reused by someone
else is never taken for ours. Attaching happens under the image's own lock
(blockprobe.image_lock), where every state root meets: a loop device of the image that this
root did not leave behind is refused, never detached.
"""

from __future__ import annotations

import os
from typing import Any

from .. import blockprobe
from ..errors import InUse
from ..loops import LoopClaims

ALREADY_ATTACHED = ("already attached as {device} (losetup -l shows it); detach it first or "
                    "use {device} as the source device")


class LoopImageSource:
    """Mixed into a driver that has `name`, `source_path`, `runtime_dir` and `extras`."""

    name: str
    source_path: str
    runtime_dir: Any
    extras: dict[str, Any]

    @property
    def _loops(self) -> LoopClaims:
        return LoopClaims(self.runtime_dir)

    def _recorded_loop(self) -> blockprobe.LoopIdentity | None:
        """The loop device recorded for this pool, if it is still that one."""
        rec = self.extras.get("loop")
        if not isinstance(rec, dict) or not isinstance(rec.get("device"), str):
            return None
        ident = blockprobe.loop_identity(rec["device"])
        return ident if ident is not None and ident.matches(rec) else None

    def _release_and_refuse_attached(self, image: str, why: str) -> None:
        """Release what a killed poolkeeper of this root left attached (see loops.py); any
        other loop device of the image is refused ("{image} is " + why), never detached."""
        self._loops.release_stale(image)
        for ident in blockprobe.loops_backed_by(image):
            raise InUse(f"{image} is " + why.format(device=ident.device))

    def _attach_image_for_start(self) -> blockprobe.LoopIdentity:
        """Attach the pool's image and record the loop device in the extras."""
        image = os.path.realpath(self.source_path)
        with blockprobe.image_lock(image):  # check and attach as one step for every root
            self._release_and_refuse_attached(image, ALREADY_ATTACHED)
            ident = self._loops.attach(image, self.name)
        self.extras["loop"] = ident.record()
        return ident
