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
from typing import Protocol

import cv2
import numpy as np

from vivit_cli.errors import CaptureError, VideoError
from vivit_cli.live.frames import Frame, FrameClock, RingBuffer
from vivit_cli.live.settings import MAX_BACKOFF_S, CaptureSettings, Source
from vivit_cli.results import LiveEvent, counted
from vivit_cli.video.names import ffmpeg_name

FPS_WINDOW_FRAMES = 30  # frames the measured capture rate is averaged over
TIMEOUT_SLACK = 0.9  # an open that failed after this fraction of the open timeout failed by timing out


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
        here = ""
        if sys.platform.startswith("linux"):
            devices = ", ".join(sorted(glob.glob("/dev/video*"))) or "no /dev/video* device"
            here = f" (this machine has {devices})"
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


class Grabber:
    """Reads a source as fast as it gives frames (a file paced to its frame rate), reopening one that drops.

    `open_source` opens it, now and at each reopening. What happens to the source (lost, reopened) goes into
    `events`, for the thread that talks to the user; setting `stop` ends the reading.
    """

    def __init__(
        self,
        source: Source,
        open_source: Callable[[], Capture],
        settings: CaptureSettings,
        fps: float | None = None,
        pace: bool = False,
    ) -> None:
        self.source, self.settings, self.stop = source, settings, threading.Event()
        self.fps, self.pace = fps, pace and fps is not None
        self.frames_read = 0
        self.error: BaseException | None = None
        self.events: queue.SimpleQueue[LiveEvent] = queue.SimpleQueue()
        self.clock = FrameClock()
        self._failures = 0  # reopenings since the last good frame
        self._open = open_source
        self._cap: Capture | None = open_source()
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
                self._cap = self._open()
            except CaptureError as e:
                # Shown next to the source's name already: the error's text without it in front.
                why = f"attempt {attempt} failed: {str(e).removeprefix(f'{self.source.name}: ')}"
                continue
            down = time.monotonic() - lost_at
            self._event("reconnected", attempt, f"reconnected after {down:.1f} s (attempt {attempt} of {attempts})")
            return True
        self._event("failed", attempts, f"{why}; gave up")
        message = f"stopped sending frames; {counted(attempts, 'reconnect attempt')} failed (--reconnect)"
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
