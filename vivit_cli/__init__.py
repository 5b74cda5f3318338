"""vivit: label videos with ViViT from the command line or from Python.

The public API is imported lazily so that `vivit --help` does not pay for torch and OpenCV.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
DEFAULT_MODEL = "google/vivit-b-16x2-kinetics400"

_LAZY = {
    "load_model": "vivit_cli.pipeline",
    "Classifier": "vivit_cli.pipeline",
    "LabelSet": "vivit_cli.labels",
    "Prediction": "vivit_cli.results",
    "VideoResult": "vivit_cli.results",
    "VivitConfig": "vivit_cli.model",
    "VivitModel": "vivit_cli.model",
    "VivitForVideoClassification": "vivit_cli.model",
    "PreprocessConfig": "vivit_cli.video.preprocess",
    "save_pretrained": "vivit_cli.checkpoint",
    "VivitError": "vivit_cli.errors",
}

__all__ = [
    "DEFAULT_MODEL",
    "Classifier",
    "LabelSet",
    "PreprocessConfig",
    "Prediction",
    "VideoResult",
    "VivitConfig",
    "VivitError",
    "VivitForVideoClassification",
    "VivitModel",
    "__version__",
    "load_model",
    "save_pretrained",
]

if TYPE_CHECKING:  # pragma: no cover
    from vivit_cli.checkpoint import save_pretrained
    from vivit_cli.errors import VivitError
    from vivit_cli.labels import LabelSet
    from vivit_cli.model import VivitConfig, VivitForVideoClassification, VivitModel
    from vivit_cli.pipeline import Classifier, load_model
    from vivit_cli.results import Prediction, VideoResult
    from vivit_cli.video.preprocess import PreprocessConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'vivit_cli' has no attribute {name!r}")
