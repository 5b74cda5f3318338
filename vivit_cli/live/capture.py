"""Live sources for `vivit webcam`: a camera, a file or a stream -> a capture thread -> a ring buffer of frames."""

from __future__ import annotations

import collections
import contextlib
import glob
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from vivit_cli.errors import CaptureError, VideoError
from vivit_cli.live.settings import CaptureSettings, Source
from vivit_cli.results import LiveEvent
from vivit_cli.video.names import ffmpeg_name

MAX_BACKOFF_S = 8.0  # ... up to this many seconds
FPS_WINDOW_FRAMES = 30  # frames the measured capture rate is averaged over
TIMEOUT_SLACK = 0.9  # an open that failed after this fraction of the open timeout failed by timing out
MAX_STREAM_STEP_S = 5.0  # a source's own timestamps that jump further (or back) between frames are not trusted
MIN_STEP_S = 1e-6  # timestamps strictly increase, also across a reconnect


class Capture(Protocol):
    """What the capture thread needs of a cv2.VideoCapture (tests pass fakes)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def open_capture(source: Source, settings: CaptureSettings = CaptureSettings()) -> cv2.VideoCapture:
    """An opened capture for the source, or a CaptureError that says why; the caller releases it."""
    started = time.monotonic()
    with _quiet_opencv():
        if source.kind == "camera":
            # CAP_ANY: V4L2, DirectShow/Media Foundation or AVFoundation, whichever this platform has.
            cap = cv2.VideoCapture(int(source.target))
        elif source.kind == "file":
            # FFmpeg holds the file open from here on: the name may go once it is open.
            with ffmpeg_name(str(source.target)) as name:
                cap = cv2.VideoCapture(name, cv2.CAP_FFMPEG)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                round(1000 * settings.open_timeout_s),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                round(1000 * settings.read_timeout_s),
            ]
            cap = cv2.VideoCapture(str(source.target), cv2.CAP_FFMPEG, params)
    try:
        if not cap.isOpened():
            error = VideoError if source.kind == "file" else CaptureError
            raise error(_open_failure(source, settings, time.monotonic() - started))
        if source.kind == "camera":
            # A camera's own queue of frames would make labels describe the past; not every backend has one.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        elif source.kind == "file":
            cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    except BaseException:
        cap.release()
        raise
    return cap


def _open_failure(source: Source, settings: CaptureSettings, elapsed_s: float) -> str:
    if source.kind == "camera":
        devices = sorted(glob.glob("/dev/video*")) if sys.platform.startswith("linux") else []
        here = f" (this machine has {', '.join(devices)})" if devices else ""
        if sys.platform.startswith("linux") and not devices:
            here = " (this machine has no /dev/video* device)"
        return f"no camera at index {source.target}, or it is in use by another program{here}"
    if source.kind == "file":
        return f"{source.name}: not a video FFmpeg can open"
    if elapsed_s >= TIMEOUT_SLACK * settings.open_timeout_s:
        return f"{source.name}: did not answer within {settings.open_timeout_s:g} s (--open-timeout)"
    return f"{source.name}: cannot be opened (refused, not found, or not a video stream FFmpeg can read)"


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV logs every backend it tries; our error says what failed in one line instead."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


# eq=False: dataclass equality would compare the images element-wise.
@dataclass(frozen=True, eq=False)
class Frame:
    index: int  # frames read since the start, from 0 (a file's own frame index)
    time_s: float  # a file's timestamp (index / fps); else seconds since capture started (see FrameClock)
    image: np.ndarray  # (H, W, 3) uint8 BGR, as OpenCV reads it
    segment: int = 0  # which (re)opening of the source it came from


class RingBuffer:
    """The newest `capacity` consecutive frames of one segment: what one window needs, and no more."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.peak = 0  # the most frames ever held: never above capacity
        self.closed = False  # the capture has ended: no more frames will come
        self._frames: collections.deque[Frame] = collections.deque(maxlen=capacity)
        self._cond = threading.Condition()

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: Frame) -> None:
        """Add the newest frame; a reconnect, a gap or a new frame size starts the buffer afresh."""
        with self._cond:
            if self._frames:
                last = self._frames[-1]
                if (frame.segment, frame.index, frame.image.shape) != (last.segment, last.index + 1, last.image.shape):
                    self._frames.clear()  # a window must never span a reconnect
            self._frames.append(frame)
            self.peak = max(self.peak, len(self._frames))
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def newest(self) -> Frame | None:
        with self._cond:
            return self._frames[-1] if self._frames else None

    def take(self, after: int | None, every: int) -> tuple[Frame, ...] | None:
        """The full buffer if it ends at least `every` frames after frame `after`, else None."""
        with self._cond:
            return self._due(after, every)

    def wait(self, after: int | None, every: int, timeout_s: float) -> tuple[Frame, ...] | None:
        """Like take, waiting up to timeout_s for such a window (or for the end of the capture)."""
        with self._cond:
            self._cond.wait_for(lambda: self.closed or self._due(after, every) is not None, timeout_s)
            return self._due(after, every)

    def _due(self, after: int | None, every: int) -> tuple[Frame, ...] | None:
        if len(self._frames) < self.capacity:
            return None
        if after is not None and self._frames[-1].index - after < every:
            return None
        return tuple(self._frames)


class FrameClock:
    """Timestamps of a camera's or stream's frames, in seconds since capture started.

    A stream delivers what its server buffered in a burst when it connects (15 frames in 10 ms), so arrival times
    would squeeze half a second into nothing. The source's own timestamps (CAP_PROP_POS_MSEC: a stream's
    presentation times, a camera driver's buffer times) are used where they are plausible: present and
    increasing by less than MAX_STREAM_STEP_S from frame to frame. Each (re)opening is anchored at its first
    frame's arrival; a frame without a plausible timestamp gets its arrival time and anchors the next.
    """

    def __init__(self) -> None:
        self.last_s = -math.inf
        self.own = False  # whether the latest frame's time came from the source's own clock
        self._anchor: tuple[float, float] | None = None  # (time_s, the source's ms) both at one frame
        self._last_ms = math.nan

    def restart(self) -> None:
        """A reopened source: its own clock starts again."""
        self._anchor, self._last_ms = None, math.nan

    def __call__(self, arrival_s: float, source_ms: float) -> float:
        step_ms = source_ms - self._last_ms  # nan when either is missing
        self.own = self._anchor is not None and 0 < step_ms <= 1000 * MAX_STREAM_STEP_S
        if self.own:
            assert self._anchor is not None
            time_s = self._anchor[0] + (source_ms - self._anchor[1]) / 1000
        else:
            time_s = max(arrival_s, self.last_s + MIN_STEP_S)
            plausible = math.isfinite(source_ms) and source_ms >= 0
            self._anchor = (time_s, source_ms) if plausible else None
        self._last_ms = source_ms if math.isfinite(source_ms) else math.nan
        self.last_s = max(time_s, self.last_s + MIN_STEP_S)
        return self.last_s


class Grabber:
    """Reads a source as fast as it gives frames (a file paced to its frame rate), reopening one that drops.

    What happens to the source (lost, reopened) goes into `events`, for the thread that talks to the user.
    """

    def __init__(
        self,
        source: Source,
        capture: Capture,
        reopen: Callable[[], Capture],
        settings: CaptureSettings,
        stop: threading.Event,
        fps: float | None = None,
        pace: bool = False,
    ) -> None:
        self.source, self.settings, self.stop = source, settings, stop
        self.fps, self.pace = fps, pace and fps is not None
        self.frames_read = 0
        self.error: BaseException | None = None
        self.events: queue.SimpleQueue[LiveEvent] = queue.SimpleQueue()
        self.clock = FrameClock()
        self._failures = 0  # reopenings since the last good frame
        self._cap: Capture | None = capture
        self._reopen = reopen
        self._times: collections.deque[float] = collections.deque(maxlen=FPS_WINDOW_FRAMES)

    @property
    def rate(self) -> float | None:
        """Frames per second the source delivered lately (None until two frames came)."""
        times = list(self._times)
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def frames(self) -> Iterator[Frame]:
        """Good frames until the file ends or `stop` is set; never a failed read or a placeholder."""
        segment, started = 0, time.monotonic()
        while not self.stop.is_set():
            assert self._cap is not None
            asked = time.monotonic()
            ok, image = self._cap.read()
            if ok and image is not None and image.size:
                self._failures = 0
                index = self.frames_read
                if self.pace and (delay := started + index / self.fps - time.monotonic()) > 0:
                    if self.stop.wait(delay):
                        return
                now = time.monotonic()
                self._times.append(now)
                self.frames_read += 1
                if self.source.kind == "file" and self.fps:
                    time_s = index / self.fps
                else:
                    time_s = self.clock(now - started, _position_ms(self._cap))
                yield Frame(index, time_s, image, segment)
                continue
            if self.source.kind == "file":
                return  # the end of a file is the normal end
            waited = time.monotonic() - asked
            self.release()
            if not self._reconnect(self._lost_why(waited)):
                return
            segment += 1
            self.clock.restart()

    def _lost_why(self, waited_s: float) -> str:
        if self.source.kind == "stream" and waited_s >= TIMEOUT_SLACK * self.settings.read_timeout_s:
            return f"no frame for {self.settings.read_timeout_s:g} s (--read-timeout)"
        return "stopped sending frames"

    def _reconnect(self, why: str) -> bool:
        """Reopen the source with growing pauses, saying so in `events`; False when `stop` was set meanwhile.

        Attempts count from the last good frame: a source that reopens but sends nothing uses them up too.
        """
        attempts, lost_at = self.settings.reconnect, time.monotonic()
        while self._failures < attempts:
            attempt = self._failures = self._failures + 1
            delay = min(MAX_BACKOFF_S, self.settings.backoff_s * 2 ** (attempt - 1))
            self._event("reconnecting", attempt, f"{why}; reopening (attempt {attempt} of {attempts}) in {delay:g} s")
            if self.stop.wait(delay):
                return False
            try:
                self._cap = self._reopen()
            except CaptureError as e:
                why = f"attempt {attempt} failed: {_without_name(str(e), self.source.name)}"
                continue
            down = time.monotonic() - lost_at
            self._event("reconnected", attempt, f"reconnected after {down:.1f} s (attempt {attempt} of {attempts})")
            return True
        message = f"stopped sending frames; {attempts} reconnect attempt(s) failed (--reconnect)"
        self._event("failed", attempts, f"{why}; gave up")
        raise CaptureError(f"{self.source.name}: {message}")

    def _event(self, kind: str, attempt: int, message: str) -> None:
        self.events.put(LiveEvent(kind, time.time(), attempt, self.settings.reconnect, message))

    def run(self, ring: RingBuffer) -> None:
        """The capture thread: every frame into the ring, which keeps only the newest; errors kept for the caller."""
        try:
            for frame in self.frames():
                ring.push(frame)
        except BaseException as e:  # handed to the main thread, which raises it
            self.error = e
        finally:
            self.release()
            ring.close()

    def release(self) -> None:
        if self._cap is not None:
            cap, self._cap = self._cap, None
            cap.release()


def _position_ms(cap: Capture) -> float:
    """The source's own timestamp of the frame just read, in ms; nan where it has none (or a fake capture)."""
    get = getattr(cap, "get", None)
    try:
        return float(get(cv2.CAP_PROP_POS_MSEC)) if get is not None else math.nan
    except (cv2.error, TypeError, ValueError):
        return math.nan


def _without_name(message: str, name: str) -> str:
    """An error's text without the source's name in front, for events shown next to that name."""
    return message.removeprefix(f"{name}: ")


def file_fps(source: Source) -> float:
    """A file's checked frame rate (OpenCV's is distrusted), for pacing and timestamps."""
    from vivit_cli.video.probe import open_video

    return open_video(str(source.target)).fps
