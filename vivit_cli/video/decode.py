"""Frame-index sampling and OpenCV reading: a video path -> upright RGB frames at chosen indices."""

from __future__ import annotations

import functools
import math
import os
import queue
import statistics
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vivit_cli.errors import VideoError, VivitError

VideoPath = str | os.PathLike[str]

# Suffixes batch mode treats as video (lower case); FFmpeg decides what really decodes.
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ts .mts .m2ts .ogv .mxf .vob .asf .f4v".split()
)

DEFAULT_FPS = 30.0  # frames/s, assumed when neither the container nor the timestamps give a usable rate
MIN_PLAUSIBLE_FPS = 0.1  # frames/s; below this a reported rate is treated as garbage
MAX_PLAUSIBLE_FPS = 1000.0  # frames/s; VFR containers sometimes report their time base (90000) instead
FPS_AGREEMENT = 0.25  # relative gap between reported and measured rates beyond which timestamps win
FPS_PROBE_FRAMES = 8  # frames decoded at open to measure the rate from timestamps
MAX_PLAUSIBLE_FRAME_COUNT = 100_000_000  # ~38 days at 30 frames/s; larger reports are garbage
SEEK_MIN_GAP_FRAMES = 48  # gaps up to this many frames are grabbed through rather than seeked across
CROP_NAMES = {1: ("center",), 3: ("start", "center", "end")}  # crops per view count, along the long side
SEEK_TOLERANCE_FRAMES = 0.5  # how far (in frame periods) a seek's timestamp may be from where it was aimed


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
    stride: int = 2  # frames between sampled frames
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

    stride: int = 2
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


def open_video(path: VideoPath) -> VideoInfo:
    """Probe a video: frames it really holds, a checked frame rate and the upright frame size."""
    name = _check_file(path)
    frame_count = None
    cap = _open_capture(name)
    try:
        if not cap.grab():
            raise VideoError(f"{_show(name)}: contains no decodable video frames")
        ok, first = cap.retrieve()
        if not ok or first is None:
            raise VideoError(f"{_show(name)}: contains no decodable video frames")
        probe_ms = [cap.get(cv2.CAP_PROP_POS_MSEC)]
        while len(probe_ms) < FPS_PROBE_FRAMES:
            if not cap.grab():
                frame_count = len(probe_ms)  # the whole video fit in the probe: counted exactly
                break
            probe_ms.append(cap.get(cv2.CAP_PROP_POS_MSEC))
        fps = checked_fps(cap.get(cv2.CAP_PROP_FPS), probe_ms)
        reported = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    if frame_count is None and math.isfinite(reported) and len(probe_ms) < reported <= MAX_PLAUSIBLE_FRAME_COUNT:
        # Two sources that fail differently (container header, packets at the end) agreeing is proof enough.
        if _count_packets(name, int(reported), fps, probe_ms[0]) == int(reported):
            frame_count = int(reported)
    if frame_count is None:
        frame_count = _count_by_grabbing(name)
    height, width = first.shape[:2]
    return VideoInfo(path=name, frame_count=frame_count, fps=fps, width=width, height=height)


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
        raise VideoError(f"{_show(name)}: contains no decodable video frames")

    times_s = _timestamps_s([i for i, _, _ in got], [ms for _, _, ms in got], info.fps)
    by_target = {}
    for (i, bgr, _), t in zip(got, times_s, strict=True):
        if bgr.shape[:2] != (info.height, info.width):
            raise VideoError(
                f"{_show(name)}: frame {i} is {bgr.shape[1]}x{bgr.shape[0]}, "
                f"the video starts at {info.width}x{info.height}"
            )
        by_target[i] = (_to_rgb(bgr), t)
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
    cap = _open_capture(name)
    try:
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
                if bgr.shape[:2] != (info.height, info.width):
                    raise VideoError(
                        f"{_show(name)}: frame {index} is {bgr.shape[1]}x{bgr.shape[0]}, "
                        f"the video starts at {info.width}x{info.height}"
                    )
                rgb = _to_rgb(bgr)
            yield index, t, rgb
            index, previous_s = index + 1, t
    finally:
        cap.release()


def checked_fps(reported: float, timestamps_ms: list[float]) -> float:
    """The container's frame rate if plausible and consistent with the decoded timestamps, else theirs."""
    deltas = [b - a for a, b in zip(timestamps_ms, timestamps_ms[1:], strict=False)]
    measured = None
    if deltas and all(math.isfinite(d) and d > 0 for d in deltas):
        measured = 1000.0 / statistics.median(deltas)
        if not MIN_PLAUSIBLE_FPS <= measured <= MAX_PLAUSIBLE_FPS:
            measured = None
    plausible = math.isfinite(reported) and MIN_PLAUSIBLE_FPS <= reported <= MAX_PLAUSIBLE_FPS
    if plausible and (measured is None or abs(reported - measured) <= FPS_AGREEMENT * measured):
        return float(reported)
    return measured if measured is not None else DEFAULT_FPS


def _check_file(path: VideoPath) -> str:
    """The path as a string, or a VideoError saying why it cannot be a readable video file."""
    name = os.fspath(path)
    if not os.path.exists(name):
        raise VideoError(f"{_show(name)}: no such file")
    if os.path.isdir(name):
        raise VideoError(f"{_show(name)}: is a directory, not a video file")
    if not os.path.isfile(name):  # a FIFO or device would block or stream forever
        raise VideoError(f"{_show(name)}: not a regular file")
    try:
        with open(name, "rb") as f:
            empty = f.read(1) == b""
    except OSError as e:
        raise VideoError(f"{_show(name)}: cannot be read ({e.strerror or e})") from e
    if empty:
        raise VideoError(f"{_show(name)}: empty file (0 bytes)")
    return name


def _open_capture(name: str) -> cv2.VideoCapture:
    """An opened FFmpeg capture that rotates frames upright; the caller releases it."""
    # An absolute path cannot be mistaken by FFmpeg for a protocol ("pipe:0", "http:x").
    cap = cv2.VideoCapture(os.path.abspath(name), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{_show(name)}: not a video FFmpeg can open (unknown format or damaged file)")
    # OpenCV >= 4.5 defaults to this, but phone videos must come out upright whatever the default becomes.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def _count_packets(name: str, reported: int, fps: float, t0_ms: float) -> int | None:
    """Frames the file holds, from the last timestamp among the packets near `reported`; None if unsure."""
    cap = _open_capture(name)
    try:
        # Raw mode reads packets without decoding them: checking the tail costs a demux, not a GOP decode.
        # The seek lands on the keyframe before the claimed last frame (or is clamped to the real end).
        if not cap.set(cv2.CAP_PROP_FORMAT, -1) or not cap.set(cv2.CAP_PROP_POS_FRAMES, reported - 1):
            return None
        last_ms = -math.inf
        while cap.grab():
            # Max, not last: B-frames put packets in decode order, not presentation order.
            last_ms = max(last_ms, cap.get(cv2.CAP_PROP_POS_MSEC))
    finally:
        cap.release()
    if not math.isfinite(last_ms):
        return None
    return round((last_ms - t0_ms) * fps / 1000.0) + 1


def _count_by_grabbing(name: str) -> int:
    """Frames that decode, counted by decoding every one: the slow path for files whose count is off."""
    cap = _open_capture(name)
    try:
        count = 0
        while cap.grab():
            count += 1
    finally:
        cap.release()
    if count == 0:
        raise VideoError(f"{_show(name)}: contains no decodable video frames")
    return count


def _decode(
    name: str, targets: list[int], fps: float, allow_seek: bool
) -> tuple[list[tuple[int, np.ndarray, float]], bool]:
    """(index, BGR frame, timestamp ms) for the sorted `targets` that decode, and whether a seek strayed."""
    got: list[tuple[int, np.ndarray, float]] = []
    cap = _open_capture(name)
    try:
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
    finally:
        cap.release()
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


def _to_rgb(frame: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or gray, or BGRA) frame as RGB uint8 (H, W, 3)."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _show(name: str) -> str:
    """A path fit for a one-line message: quoted only if it holds control characters."""
    return name if name.isprintable() else ascii(name)


class ClipsAhead:
    """sample_clips over `paths` in one background thread, one video ahead of the caller: OpenCV releases the GIL
    while it decodes, so video i + 1 decodes while the caller runs the model on video i.

        with ClipsAhead(paths, sampling) as ahead:
            for path, clips in ahead:
                info, frames = clips()  # or the error decoding that video raised, raised here, in its turn
    """

    def __init__(self, paths: Sequence[VideoPath], sampling: Sampling) -> None:
        self._paths, self._sampling = list(paths), sampling
        self._todo: queue.Queue[VideoPath | None] = queue.Queue()
        self._done: queue.Queue[tuple[VideoInfo, list[Clip]] | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._decode, name="vivit-decode", daemon=True)

    def __enter__(self) -> ClipsAhead:
        self._thread.start()
        if self._paths:
            self._todo.put(self._paths[0])
        return self

    def __exit__(self, *exc: object) -> None:
        # Waits for the video in flight (one at most): a thread still inside OpenCV when Python exits aborts the
        # process. A daemon, so a second Ctrl-C during this wait still exits.
        self._todo.put(None)
        self._thread.join()

    def __iter__(self) -> Iterator[tuple[VideoPath, Callable[[], tuple[VideoInfo, list[Clip]]]]]:
        for i, path in enumerate(self._paths):
            outcome = self._done.get()
            if i + 1 < len(self._paths):
                self._todo.put(self._paths[i + 1])
            yield path, functools.partial(_outcome, outcome)

    def _decode(self) -> None:
        while (path := self._todo.get()) is not None:
            try:
                self._done.put(sample_clips(path, self._sampling))
            except BaseException as e:  # raised in the caller's thread, in this video's turn
                self._done.put(e)


def _outcome(outcome: tuple[VideoInfo, list[Clip]] | BaseException) -> tuple[VideoInfo, list[Clip]]:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
