"""A training video -> one random clip, as `vivit train --full` shows it to the model each epoch: a random temporal
position, a random resized crop, a horizontal flip only where asked. Runs in the decode pool's workers; uint8 out
(the model's device normalises). The draw is a function of (seed, epoch, path) alone: whichever worker decodes a
video, in whatever order, a run, a resumed run and each process of a distributed one see the same clip."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from vivit_cli.batch.worker import CHANNELS
from vivit_cli.errors import VivitError

MIN_AREA = 0.35  # the smallest share of the frame a crop keeps: smaller ones often lose the thing that moves
RATIOS = (3 / 4, 4 / 3)  # the crop's aspect ratio, drawn log-uniformly, as Inception-style crops are
TRIES = 10  # draws of a crop that fits the frame before the whole frame is taken


@dataclass(frozen=True)
class ClipSpec:
    """What a worker needs to draw and decode one epoch's clip of a video; sent with every file, so small."""

    num_frames: int
    stride: int
    size: tuple[int, int]  # (height, width) the model takes
    seed: int
    epoch: int
    flip: bool

    @property
    def frames_bytes(self) -> int:
        """Bytes of one clip's uint8 frames: the decode pool sizes its shared blocks by it."""
        return self.num_frames * self.size[0] * self.size[1] * CHANNELS


@dataclass(frozen=True, eq=False)
class TrainingClip:
    source: str
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB


@dataclass(frozen=True)
class Draw:
    """Where one epoch's clip of one video lies."""

    start: int  # first frame
    box: tuple[int, int, int, int]  # top, left, height, width of the crop
    flip: bool


def draw(path: str, spec: ClipSpec, frame_count: int, height: int, width: int) -> Draw:
    """The clip of `path` for spec's epoch: its own random stream, seeded by (seed, epoch, path)."""
    rng = random.Random(f"{spec.seed}:{spec.epoch}:{path}")
    span = (spec.num_frames - 1) * spec.stride + 1
    start = rng.randint(0, max(frame_count - span, 0))
    box = (0, 0, height, width)
    for _ in range(TRIES):
        area = height * width * rng.uniform(MIN_AREA, 1.0)
        ratio = math.exp(rng.uniform(math.log(RATIOS[0]), math.log(RATIOS[1])))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= width and 0 < h <= height:
            box = (rng.randint(0, height - h), rng.randint(0, width - w), h, w)
            break
    return Draw(start, box, spec.flip and rng.random() < 0.5)


def decode_clip(path: str, spec: ClipSpec) -> TrainingClip:
    """`path` -> its clip for spec's epoch, cropped and resized to spec.size, uint8."""
    import torch
    import torch.nn.functional as F

    from vivit_cli.video.decode import read_frames
    from vivit_cli.video.probe import open_video

    info = open_video(path)
    d = draw(path, spec, info.frame_count, info.height, info.width)
    indices = [min(d.start + j * spec.stride, info.frame_count - 1) for j in range(spec.num_frames)]
    frames, _ = read_frames(path, indices, info)
    top, left, h, w = d.box
    clip = np.stack([frames[i][top : top + h, left : left + w] for i in indices])  # (T, h, w, 3)
    if d.flip:
        clip = clip[:, :, ::-1]
    # channels-last uint8: torch's antialiased bilinear resize takes its fast path (as preprocessing does)
    x = torch.from_numpy(np.ascontiguousarray(clip)).permute(0, 3, 1, 2)  # (T, 3, h, w)
    if (h, w) != spec.size:
        x = F.interpolate(x, size=spec.size, mode="bilinear", antialias=True)  # (T, 3, S, S)
    return TrainingClip(path, x.permute(0, 2, 3, 1).contiguous().numpy())  # (T, S, S, 3)


def decode(path: str, spec: Any) -> tuple[Any, str | None]:
    """The decode pool's body for --full: a training clip for a ClipSpec, else the views classify decodes (for the
    validation videos); (result, None) or (None, a one-line error)."""
    from vivit_cli.batch import worker

    if not isinstance(spec, ClipSpec):
        return worker.decode(path, spec)
    try:
        return decode_clip(path, spec), None
    except VivitError as e:
        return None, worker.one_line(str(e))
    except Exception as e:  # a damaged file can make OpenCV or numpy raise anything: it costs that file only
        return None, worker.one_line(f"{type(e).__name__}: {e}")
