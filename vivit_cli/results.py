"""What a classification returns: frozen, torch-free records that writers and tables consume."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # probability in [0, 1], averaged over views
    index: int  # class id in the checkpoint's id2label


@dataclass(frozen=True)
class View:
    """One clip x crop that went through the model."""

    clip: int
    crop: str  # "center", "left", "right", "top", "bottom"
    frame_indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What answered: the user's model string resolved to a repo id (or folder) and a commit."""

    model_id: str
    revision: str | None = None  # resolved commit hash; None for a local folder


@dataclass(frozen=True)
class VideoResult:
    source: str
    predictions: tuple[Prediction, ...]
    model: ModelInfo
    views: tuple[View, ...] = ()
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float | None = None
    num_frames: int | None = None
    fps: float | None = None
    extra: dict = field(default_factory=dict)
