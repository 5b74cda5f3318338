"""Frames a live source delivered: the ring buffer that holds the newest window, and the clock that stamps them."""

from __future__ import annotations

import collections
import math
import threading
from dataclasses import dataclass

import numpy as np

MAX_STREAM_STEP_S = 5.0  # a source's own timestamps that jump further (or back) between frames are not trusted
MIN_STEP_S = 1e-6  # timestamps strictly increase, also across a reconnect


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

    def take(self, after: int | None, every: int, timeout_s: float = 0.0) -> tuple[Frame, ...] | None:
        """The full buffer if it ends at least `every` frames after frame `after`, else None; waits up to timeout_s
        for such a window (or for the end of the capture)."""
        with self._cond:
            if timeout_s > 0:
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
