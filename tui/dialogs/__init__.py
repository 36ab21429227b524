"""poolkeeper's modal dialogs. Each is a ModalScreen whose result is the object named in
its signature, or None when cancelled (Esc or the Cancel button)."""

from backends.model import PoolDef, VolumeDef

from .base import Dialog, Evaluation
from .confirm import ConfirmDialog, ErrorDialog
from .create_volume import CreateVolumeDialog
from .define_pool import DefinePoolDialog
from .fields import Check, Radio, TypedConfirm
from .pool_ops import BuildPoolDialog, DeletePoolDialog
from .results import (
    BuildChoice,
    CloneRequest,
    DeletePoolChoice,
    DeleteVolumesRequest,
    ResizeRequest,
    TransferRequest,
    WipeRequest,
)
from .secret import SecretDialog, SecretValue
from .transfer import DownloadDialog, PathSuggester, UploadDialog
from .volume_ops import (
    CloneVolumeDialog,
    DeleteVolumesDialog,
    ResizeVolumeDialog,
    WipeVolumeDialog,
)

__all__ = [
    "SecretDialog",
    "SecretValue",
    "BuildChoice",
    "BuildPoolDialog",
    "Check",
    "CloneRequest",
    "CloneVolumeDialog",
    "ConfirmDialog",
    "CreateVolumeDialog",
    "DefinePoolDialog",
    "DeletePoolChoice",
    "DeletePoolDialog",
    "DeleteVolumesDialog",
    "DeleteVolumesRequest",
    "Dialog",
    "Evaluation",
    "DownloadDialog",
    "ErrorDialog",
    "PathSuggester",
    "PoolDef",
    "Radio",
    "ResizeRequest",
    "ResizeVolumeDialog",
    "TransferRequest",
    "TypedConfirm",
    "UploadDialog",
    "VolumeDef",
    "WipeRequest",
    "WipeVolumeDialog",
]
