"""Which frames a video gives the model: clips spread over it, crops of each, frame indices. No OpenCV, no torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vivit_cli.errors import VivitError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_STRIDE = 2  # frames between sampled frames: ViViT-B/16x2 was trained with 2
CROP_NAMES = {1: ("center",), 3: ("start", "center", "end")}  # crops per view count, along the long side


@dataclass(frozen=True)
class VideoInfo:
    path: str
    frame_count: int  # frames the file really holds (verified or corrected)
    fps: float  # checked; never 0/NaN
    width: int  # as frames come out, after rotation
    height: int

    @property
    def duration_s(self) -> float:
        return self.frame_count / self.fps


@dataclass(frozen=True)
class Sampling:
    num_frames: int  # frames per clip (from the checkpoint)
    stride: int = DEFAULT_STRIDE  # frames between sampled frames
    clips: int = 1  # temporal views

    def __post_init__(self) -> None:
        for name in ("num_frames", "stride", "clips"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Sampling.{name} must be a positive integer, got {value!r}")

    @property
    def span(self) -> int:
        """Frames one clip covers, first to last inclusive."""
        return (self.num_frames - 1) * self.stride + 1


@dataclass(frozen=True)
class Views:
    """How a video becomes model inputs: `clips` temporal clips x `crops` spatial crops, `stride` frames apart."""

    stride: int = DEFAULT_STRIDE
    clips: int = 1
    crops: int = 1

    def __post_init__(self) -> None:
        if self.stride < 1 or self.clips < 1:
            raise VivitError(f"stride and clips must be at least 1 (got stride={self.stride}, clips={self.clips})")
        if self.crops not in CROP_NAMES:
            raise VivitError(f"crops must be 1 or 3, got {self.crops}")

    def sampling(self, num_frames: int) -> Sampling:
        """The frames these views read from a video, for a model of `num_frames` frames per clip."""
        return Sampling(num_frames, self.stride, self.clips)


# eq=False: dataclass equality would compare the frame arrays element-wise and fail on truth value.
@dataclass(frozen=True, eq=False)
class Clip:
    index: int  # which temporal view
    frame_indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB


def clip_indices(frame_count: int, sampling: Sampling) -> list[tuple[int, ...]]:
    """Frame indices of each temporal view; the formula is in the README's "Frame sampling" section."""
    if frame_count < 1:
        raise ValueError(f"frame_count must be at least 1, got {frame_count}")
    n, last = sampling.clips, frame_count - 1
    room = max(frame_count - sampling.span, 0)  # start positions beyond 0 that keep a clip inside the video
    # Clip c starts at the centre of the c-th of n equal slices of [0, room]: n == 1 is the centred clip.
    starts = [room * (2 * c + 1) // (2 * n) for c in range(n)]
    # A video shorter than a clip holds its last frame rather than looping: a jump back to frame 0 would
    # read as motion that never happened, and indices stay non-decreasing.
    return [tuple(min(start + j * sampling.stride, last) for j in range(sampling.num_frames)) for start in starts]
