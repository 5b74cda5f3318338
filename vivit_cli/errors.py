"""The only exceptions the CLI expects: each becomes one line on stderr and an exit code (a family's `exit_code`)."""

from __future__ import annotations


class VivitError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 1


class OutputError(VivitError):
    """Exit 1: an output that could not be written to the end (a full disk); what was written before stays valid."""


class UsageError(VivitError):
    """Exit 2: bad usage: a device, source, output, cluster or label that cannot be had as asked."""

    exit_code = 2


class ModelError(VivitError):
    """Exit 3: a model that cannot be found, fetched or read as a ViViT checkpoint."""

    exit_code = 3


class VideoError(VivitError):
    """Exit 4: a video that cannot be opened or decoded."""

    exit_code = 4


class CaptureError(VivitError):
    """Exit 5: a camera or stream that cannot be opened, does not answer in time, or stops sending frames for good."""

    exit_code = 5


class ConfigError(ModelError):
    """A config.json or preprocessor_config.json that is not a valid ViViT configuration."""


class CheckpointError(ModelError):
    """A checkpoint folder that is missing files, is not ViViT, or whose weights do not match."""


class ModelNotFoundError(ModelError):
    """A model string that names no folder and no reachable or cached Hub repository."""


class HubAuthError(ModelError):
    """A private or gated repository asked for without a token that may read it."""


class DeviceError(UsageError):
    """A device or dtype the machine cannot provide."""


class SourceError(UsageError):
    """A batch source (folder, glob, file or @list) that names no video, or an output that cannot be used."""


class ClusterError(UsageError):
    """`--ray` without the ray extra, or a Ray cluster that cannot be reached or cannot run the job."""


class LabelError(UsageError):
    """--labels naming a label the model does not have, or --min-score outside [0, 1]."""
