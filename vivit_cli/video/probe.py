"""Opening a video with OpenCV: checks on the file, the frames it really holds and a frame rate to trust."""

from __future__ import annotations

import contextlib
import errno
import math
import os
import statistics
from collections.abc import Iterator

import cv2

from vivit_cli.errors import VideoError
from vivit_cli.results import shown_path
from vivit_cli.video.names import ffmpeg_name
from vivit_cli.video.sampling import VideoInfo

VideoPath = str | os.PathLike[str]

DEFAULT_FPS = 30.0  # frames/s, assumed when neither the container nor the timestamps give a usable rate
MIN_PLAUSIBLE_FPS = 0.1  # frames/s; below this a reported rate is treated as garbage
MAX_PLAUSIBLE_FPS = 1000.0  # frames/s; VFR containers sometimes report their time base (90000) instead
FPS_AGREEMENT = 0.25  # relative gap between reported and measured rates beyond which timestamps win
FPS_PROBE_FRAMES = 8  # frames decoded at open to measure the rate from timestamps
MAX_PLAUSIBLE_FRAME_COUNT = 100_000_000  # ~38 days at 30 frames/s; larger reports are garbage


def open_video(path: VideoPath) -> VideoInfo:
    """Probe a video: frames it really holds, a checked frame rate and the upright frame size."""
    name = _check_file(path)
    frame_count = None
    with _capture(name) as cap:
        ok, first = cap.retrieve() if cap.grab() else (False, None)
        if not ok or first is None:
            raise VideoError(f"{shown_name(name)}: contains no decodable video frames")
        probe_ms = [cap.get(cv2.CAP_PROP_POS_MSEC)]
        while len(probe_ms) < FPS_PROBE_FRAMES:
            if not cap.grab():
                frame_count = len(probe_ms)  # the whole video fit in the probe: counted exactly
                break
            probe_ms.append(cap.get(cv2.CAP_PROP_POS_MSEC))
        fps = checked_fps(cap.get(cv2.CAP_PROP_FPS), probe_ms)
        reported = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    if frame_count is None and math.isfinite(reported) and len(probe_ms) < reported <= MAX_PLAUSIBLE_FRAME_COUNT:
        # Two sources that fail differently (container header, packets at the end) agreeing is proof enough.
        if _count_packets(name, int(reported), fps, probe_ms[0]) == int(reported):
            frame_count = int(reported)
    if frame_count is None:
        frame_count = _count_by_grabbing(name)
    height, width = first.shape[:2]
    return VideoInfo(path=name, frame_count=frame_count, fps=fps, width=width, height=height)


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
        raise VideoError(f"{shown_name(name)}: {_missing(name)}")
    if os.path.isdir(name):
        raise VideoError(f"{shown_name(name)}: is a directory, not a video file")
    if not os.path.isfile(name):  # a FIFO or device would block or stream forever
        raise VideoError(f"{shown_name(name)}: not a regular file")
    try:
        with open(name, "rb") as f:
            empty = f.read(1) == b""
    except OSError as e:
        raise VideoError(f"{shown_name(name)}: cannot be read ({e.strerror or e})") from e
    if empty:
        raise VideoError(f"{shown_name(name)}: empty file (0 bytes)")
    return name


def _missing(name: str) -> str:
    """Why a name that `exists` denies is not there: a link loop and a broken link are not a missing file."""
    try:
        os.stat(name)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (it leads back to itself)"
        if os.path.islink(name) and e.errno == errno.ENOENT:
            return f"a symbolic link to {shown_name(os.readlink(name))}, which does not exist"
    return "no such file"


@contextlib.contextmanager
def _capture(name: str) -> Iterator[cv2.VideoCapture]:
    """An opened FFmpeg capture that rotates frames upright, released when the block ends."""
    # FFmpeg holds the file open from here on, and seeks never reopen it: the name may go once it is open.
    with ffmpeg_name(name) as opencv_name:
        cap = cv2.VideoCapture(opencv_name, cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise VideoError(f"{shown_name(name)}: not a video FFmpeg can open (unknown format or damaged file)")
        # OpenCV >= 4.5 defaults to this, but phone videos must come out upright whatever the default becomes.
        cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        yield cap
    finally:
        cap.release()


def _count_packets(name: str, reported: int, fps: float, t0_ms: float) -> int | None:
    """Frames the file holds, from the last timestamp among the packets near `reported`; None if unsure."""
    with _capture(name) as cap:
        # Raw mode reads packets without decoding them: checking the tail costs a demux, not a GOP decode.
        # The seek lands on the keyframe before the claimed last frame (or is clamped to the real end).
        if not cap.set(cv2.CAP_PROP_FORMAT, -1) or not cap.set(cv2.CAP_PROP_POS_FRAMES, reported - 1):
            return None
        last_ms = -math.inf
        while cap.grab():
            # Max, not last: B-frames put packets in decode order, not presentation order.
            last_ms = max(last_ms, cap.get(cv2.CAP_PROP_POS_MSEC))
    if not math.isfinite(last_ms):
        return None
    return round((last_ms - t0_ms) * fps / 1000.0) + 1


def _count_by_grabbing(name: str) -> int:
    """Frames that decode, counted by decoding every one: the slow path for files whose count is off."""
    count = 0
    with _capture(name) as cap:
        while cap.grab():
            count += 1
    if count == 0:
        raise VideoError(f"{shown_name(name)}: contains no decodable video frames")
    return count


def shown_name(name: str) -> str:
    """A path fit for a one-line message: bytes that are not UTF-8 as `\\xe9`; quoted if it holds control characters."""
    name = shown_path(name)
    return name if name.isprintable() else ascii(name)


def codec(path: VideoPath) -> str:
    """The video stream's codec as its four-character code in lower case ('avc1', 'vp90', 'mp4v'); '' if unknown."""
    with _capture(_check_file(path)) as cap:
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
    return "".join(chr((code >> 8 * k) & 0xFF) for k in range(4)).strip("\0 ").lower()
