"""The only exceptions the CLI expects: each becomes one line on stderr and an exit code."""

from __future__ import annotations


class VivitError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 1


class ConfigError(VivitError):
    """A config.json or preprocessor_config.json that is not a valid ViViT configuration."""

    exit_code = 3


class CheckpointError(VivitError):
    """A checkpoint folder that is missing files, is not ViViT, or whose weights do not match."""

    exit_code = 3


class ModelNotFoundError(VivitError):
    """A model string that names no folder and no reachable or cached Hub repository."""

    exit_code = 3


class HubAuthError(VivitError):
    """A private or gated repository asked for without a token that may read it."""

    exit_code = 3


class VideoError(VivitError):
    """A video that cannot be opened or decoded."""

    exit_code = 4


class DeviceError(VivitError):
    """A device or dtype the machine cannot provide."""

    exit_code = 2


class SourceError(VivitError):
    """A batch source (folder, glob, file or @list) that names no video, or an output that cannot be used."""

    exit_code = 2


class CaptureError(VivitError):
    """A camera or stream that cannot be opened, does not answer in time, or stops sending frames for good."""

    exit_code = 5


class ClusterError(VivitError):
    """`--ray` without the ray extra, or a Ray cluster that cannot be reached or cannot run the job."""

    exit_code = 2


class LabelError(VivitError):
    """--labels naming a label the model does not have, or --min-score outside [0, 1]."""

    exit_code = 2
