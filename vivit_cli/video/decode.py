"""Reading frames with OpenCV: a video path -> upright RGB frames at chosen indices, or every frame in order."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np

from vivit_cli.errors import VideoError
from vivit_cli.video.probe import VideoPath, _capture, _check_file, open_video, shown_name
from vivit_cli.video.sampling import Clip, Sampling, VideoInfo, clip_indices

SEEK_MIN_GAP_FRAMES = 48  # gaps up to this many frames are grabbed through rather than seeked across
SEEK_TOLERANCE_FRAMES = 0.5  # how far (in frame periods) a seek's timestamp may be from where it was aimed


def read_frames(
    path: VideoPath, indices: Iterable[int], info: VideoInfo | None = None
) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    """Decode the frames at `indices` once each, in increasing order, seeking across large gaps.

    Returns index -> RGB uint8 frame (H, W, 3) and index -> timestamp in seconds. Indices past the
    last frame that decodes get the last frame. `info` saves a second probe when the caller has one.
    """
    wanted = set(indices)
    if not wanted:
        return {}, {}
    if min(wanted) < 0:
        raise ValueError(f"frame indices must be non-negative, got {min(wanted)}")
    name = _check_file(path)
    if info is None:
        info = open_video(name)
    last = info.frame_count - 1
    targets = sorted({min(i, last) for i in wanted})
    got, lost = _decode(name, targets, info.fps, allow_seek=True)
    if lost:  # a seek could not be verified: read the rest grabbing forward from frame 0
        got += _decode(name, targets[len(got) :], info.fps, allow_seek=False)[0]
    if not got:
        raise VideoError(f"{shown_name(name)}: contains no decodable video frames")

    times_s = _timestamps_s([i for i, _, _ in got], [ms for _, _, ms in got], info.fps)
    by_target = {}
    for (i, bgr, _), t in zip(got, times_s, strict=True):
        by_target[i] = (_to_rgb(bgr, name, i, info), t)
    decoded = sorted(by_target)
    frames, times = {}, {}
    for i in sorted(wanted):
        # Decoding may end before the verified count (a damaged tail): hold the last frame that decoded.
        j = min(i, last)
        if j not in by_target:
            j = max(k for k in decoded if k <= j)
        frames[i], times[i] = by_target[j]
    return frames, times


def sample_clips(path: VideoPath, sampling: Sampling) -> tuple[VideoInfo, list[Clip]]:
    """Open a video, read the union of all views' frames once, and assemble one Clip per view."""
    info = open_video(path)
    per_clip = clip_indices(info.frame_count, sampling)
    frames, times = read_frames(path, {i for clip in per_clip for i in clip}, info)
    clips = [
        Clip(
            index=c,
            frame_indices=idx,
            timestamps_s=tuple(times[i] for i in idx),
            frames=np.stack([frames[i] for i in idx]),  # (T, H, W, 3)
        )
        for c, idx in enumerate(per_clip)
    ]
    return info, clips


def iter_frames(
    path: VideoPath, info: VideoInfo | None = None, wanted: Callable[[int, float], bool] | None = None
) -> Iterator[tuple[int, float, np.ndarray | None]]:
    """Decode every frame once, in order: (index, timestamp in seconds, RGB frame or None).

    `wanted(index, timestamp_s)` says which frames to convert to RGB (default: all); the others are only
    decoded, which skips the colour conversion and copy. Timestamps are the decoder's, in seconds, and
    strictly increasing: where one is missing or goes backwards, the previous one plus one frame period.
    """
    if info is None:
        info = open_video(path)
    name = os.fspath(path)
    period_s = 1.0 / info.fps
    with _capture(name) as cap:
        index, previous_s = 0, -math.inf
        while cap.grab():
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = ms / 1000.0 if math.isfinite(ms) and ms >= 0 and ms / 1000.0 > previous_s else None
            if t is None:
                t = index * period_s if previous_s == -math.inf else previous_s + period_s
            rgb = None
            if wanted is None or wanted(index, t):
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    return  # a frame that grabs but does not decode ends the video, as in read_frames
                rgb = _to_rgb(bgr, name, index, info)
            yield index, t, rgb
            index, previous_s = index + 1, t


def _decode(
    name: str, targets: list[int], fps: float, allow_seek: bool
) -> tuple[list[tuple[int, np.ndarray, float]], bool]:
    """(index, BGR frame, timestamp ms) for the sorted `targets` that decode, and whether a seek strayed."""
    got: list[tuple[int, np.ndarray, float]] = []
    with _capture(name) as cap:
        # Frame 0's timestamp is the origin every seek is checked against.
        if not cap.grab():
            return got, False
        current = 0  # index of the frame the last successful grab() decoded
        t0_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        for target in targets:
            if allow_seek and target - current > SEEK_MIN_GAP_FRAMES:
                if not _seek_and_grab(cap, target, fps, t0_ms):
                    return got, True
                current = target
            while current < target:
                # grab() decodes without the colour conversion and copy that retrieve() pays for.
                if not cap.grab():
                    return got, False
                current += 1
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                return got, False
            got.append((target, bgr, ms))
    return got, False


def _seek_and_grab(cap: cv2.VideoCapture, index: int, fps: float, t0_ms: float) -> bool:
    """Seek to `index` and grab it; True only if both the position and the timestamp say it landed there."""
    # OpenCV seeks by time (index / fps) and counts frames from timestamps, so a keyframe-inexact
    # seek, a wrong rate or a wrong frame count shows up as a position or timestamp off target.
    if not cap.set(cv2.CAP_PROP_POS_FRAMES, index):
        return False
    if round(cap.get(cv2.CAP_PROP_POS_FRAMES)) != index or not cap.grab():
        return False
    expected_ms = t0_ms + index * 1000.0 / fps
    return abs(cap.get(cv2.CAP_PROP_POS_MSEC) - expected_ms) <= SEEK_TOLERANCE_FRAMES * 1000.0 / fps


def _timestamps_s(indices: list[int], times_ms: list[float], fps: float) -> list[float]:
    """Decoder timestamps in seconds if they are usable, else index / fps for every frame."""
    usable = all(math.isfinite(ms) and ms >= 0 and (i == 0 or ms > 0) for i, ms in zip(indices, times_ms, strict=True))
    usable = usable and all(b > a for a, b in zip(times_ms, times_ms[1:], strict=False))
    if usable:
        return [ms / 1000.0 for ms in times_ms]
    return [i / fps for i in indices]


def _to_rgb(frame: np.ndarray, name: str, index: int, info: VideoInfo) -> np.ndarray:
    """OpenCV's BGR (or gray, or BGRA) frame `index` as RGB uint8 (H, W, 3), if it has the video's first size."""
    if frame.shape[:2] != (info.height, info.width):
        raise VideoError(
            f"{shown_name(name)}: frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
            f"the video starts at {info.width}x{info.height}"
        )
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
