"""Decoded clips -> model inputs: every clip x crop of a video resized and cropped into one uint8 batch of views, the
frames a decode worker hands over; the model's device normalises them (Classifier.forward). No model."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vivit_cli.results import View
from vivit_cli.video.decode import sample_clips
from vivit_cli.video.preprocess import PreprocessConfig
from vivit_cli.video.sampling import CROP_NAMES, Clip, VideoInfo, Views

# Where a crop sits along the long side -> its name on (landscape, portrait) frames.
CROP_LABELS = {"center": ("center", "center"), "start": ("left", "top"), "end": ("right", "bottom")}


@dataclass(frozen=True)
class PreparedVideo:
    """A video read, resized and cropped: every view as one uint8 batch, ready for the model's device."""

    source: str
    frames: np.ndarray  # (V, T, S, S, C) uint8 RGB: a quarter of the float32 bytes
    views: tuple[View, ...]
    duration_s: float
    num_frames: int
    fps: float

    @property
    def described(self) -> dict[str, Any]:
        """Every field but the pixels: what a result or an embedding says of the video besides the model's output."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "frames"}


def crop_label(where: str, height: int, width: int) -> str:
    """Name a crop as the user sees it: left/right on landscape frames, top/bottom on portrait ones."""
    return CROP_LABELS[where][0 if width >= height else 1]


def prepare_video(path: str | Path, num_frames: int, preprocess: PreprocessConfig, views: Views) -> PreparedVideo:
    """Decode the frames all views need once, then preprocess each view: CPU only, no model."""
    info, clips = sample_clips(str(path), views.sampling(num_frames))
    return preprocess_clips(path, info, clips, preprocess, views)


def preprocess_clips(
    path: str | Path, info: VideoInfo, clips: list[Clip], preprocess: PreprocessConfig, views: Views
) -> PreparedVideo:
    """A video's decoded clips (video.sample_clips) -> each clip's crops, resized and cropped, in one uint8 batch."""
    crops, described = [], []
    for clip in clips:
        for where in CROP_NAMES[views.crops]:
            crops.append(preprocess.crop(clip.frames, where))  # (T, S, S, C) uint8
            described.append(
                View(clip.index, crop_label(where, info.height, info.width), clip.frame_indices, clip.timestamps_s)
            )
    frames = torch.stack(crops).numpy()  # (V, T, S, S, C)
    return PreparedVideo(str(path), frames, tuple(described), info.duration_s, info.frame_count, info.fps)
