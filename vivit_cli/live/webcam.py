"""Live labels: the newest full window of a camera, file or stream -> the model -> smoothed top-k, as it happens."""

from __future__ import annotations

import collections
import functools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from vivit_cli.errors import VideoError
from vivit_cli.live.capture import Grabber, file_fps, open_capture
from vivit_cli.live.frames import Frame, RingBuffer
from vivit_cli.live.settings import CaptureSettings, LiveSettings, Source, check_settings
from vivit_cli.results import LiveEvent, LivePrediction, Prediction

TICK_S = 1 / 60  # seconds between display refreshes (and stop checks) of the main thread
JOIN_TIMEOUT_S = 5.0  # seconds to wait for a thread at shutdown; a stream read may hang up to its read timeout


class ClipModel(Protocol):
    """What the loop needs of a model (a Classifier through ClassifierModel, or a test's fake)."""

    num_frames: int

    def score(self, frames: np.ndarray) -> np.ndarray: ...  # (T, H, W, 3) uint8 RGB -> probabilities (L,)

    def top_k(self, probs: np.ndarray, k: int) -> tuple[Prediction, ...]: ...


class ClassifierModel:
    """A pipeline.Classifier as a ClipModel: one clip in, one probability vector out."""

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier
        self.num_frames: int = classifier.config.num_frames

    def score(self, frames: np.ndarray) -> np.ndarray:
        from vivit_cli.pipeline import score_videos

        x = self.classifier.preprocess(frames)[None]  # (1, T, C, S, S)
        return score_videos(self.classifier, [x], batch_size=1)[0][0]  # (L,)

    def top_k(self, probs: np.ndarray, k: int) -> tuple[Prediction, ...]:
        return self.classifier.top_k(probs, k)


@dataclass(frozen=True)
class LiveStatus:
    """What a display shows between predictions: the newest frame, the latest labels, the rates."""

    frame: Frame | None
    latest: LivePrediction | None
    capture_fps: float | None
    frames_read: int
    frames_skipped: int


@dataclass(frozen=True)
class LiveSummary:
    predictions: int
    frames_read: int
    frames_skipped: int  # as of the last prediction delivered
    max_buffered: int  # the most frames the ring buffer ever held (its capacity bounds it)
    reason: str  # "end", "max-predictions", "duration" or "quit"


class Smoother:
    """The mean of the last k probability vectors."""

    def __init__(self, k: int) -> None:
        self._last: collections.deque[np.ndarray] = collections.deque(maxlen=k)

    def __call__(self, probs: np.ndarray) -> tuple[np.ndarray, int]:
        self._last.append(probs)
        return np.mean(self._last, axis=0), len(self._last)


class _Scorer:
    """A window -> a LivePrediction: sample every stride-th frame, score, smooth, keep the top-k over threshold."""

    def __init__(self, model: ClipModel, settings: LiveSettings) -> None:
        self.model, self.settings = model, settings
        self.smoother = Smoother(settings.smooth)
        self.count, self.last_end, self.skipped = 0, None, 0

    def __call__(self, window: Sequence[Frame]) -> LivePrediction:
        picked = window[:: self.settings.stride]
        assert len(picked) == self.model.num_frames, (len(picked), self.model.num_frames)
        clip = np.stack([_rgb(f.image) for f in picked])  # (T, H, W, 3)
        started = time.perf_counter()
        probs, n = self.smoother(self.model.score(clip))
        latency = time.perf_counter() - started
        top = tuple(p for p in self.model.top_k(probs, self.settings.top_k) if p.score >= self.settings.threshold)
        end = window[-1].index
        if self.last_end is not None:
            self.skipped += max(0, end - self.last_end - self.settings.every)
        self.count, self.last_end = self.count + 1, end
        return LivePrediction(
            self.count,
            time.time(),
            window[0].index,
            end,
            window[0].time_s,
            window[-1].time_s,
            top,
            latency,
            n,
            self.skipped,
        )


def run_live(
    source: Source,
    model: ClipModel,
    settings: LiveSettings = LiveSettings(),
    capture: CaptureSettings | None = None,
    on_prediction: Callable[[LivePrediction], None] | None = None,
    on_tick: Callable[[LiveStatus], bool] | None = None,
    open_source: Callable[[], Any] | None = None,
    on_event: Callable[[LiveEvent], None] | None = None,
) -> LiveSummary:
    """Classify a live source until it ends or a limit is reached; callbacks run in the calling thread.

    on_tick is called about every TICK_S with what a display needs and returns False to stop (the q key).
    on_event hears of a stream or camera that was lost and is being reopened (each attempt), is back, or is gone.
    open_source replaces opening the real source (tests pass fakes with read() and release()).
    """
    check_settings(source, settings)
    fps = file_fps(source) if source.kind == "file" and open_source is None else None
    capture = capture or CaptureSettings()
    ring = RingBuffer(settings.span(model.num_frames))
    scorer = _Scorer(model, settings)
    opener = open_source or functools.partial(open_capture, source, capture)
    stop = threading.Event()
    grabber = Grabber(source, opener(), opener, capture, stop, fps, pace=not settings.fast)
    delivered: list[LivePrediction] = []  # the model thread may have scored one more when the loop stopped

    def deliver(p: LivePrediction) -> None:
        delivered.append(p)
        if on_prediction is not None:
            on_prediction(p)

    def tell() -> None:
        """Hand on what happened to the source, in the calling thread."""
        while True:
            try:
                event = grabber.events.get_nowait()
            except queue.Empty:
                return
            if on_event is not None:
                on_event(event)

    loop = _fast_loop if settings.fast else _threaded_loop
    try:
        reason = loop(grabber, ring, scorer, settings, deliver, on_tick, stop, tell)
    finally:
        tell()  # also the last attempt's failure, before its error goes up
    if scorer.count == 0 and reason == "end":
        raise VideoError(
            f"{source.name}: ended after {grabber.frames_read} frames, before one full window of "
            f"{ring.capacity} ({model.num_frames} frames {settings.stride} apart); try a smaller --stride"
        )
    skipped = delivered[-1].frames_skipped if delivered else 0
    return LiveSummary(len(delivered), grabber.frames_read, skipped, ring.peak, reason)


def _fast_loop(
    grabber: Grabber,
    ring: RingBuffer,
    scorer: _Scorer,
    settings: LiveSettings,
    on_prediction: Callable[[LivePrediction], None],
    on_tick: Callable[[LiveStatus], bool] | None,
    stop: threading.Event,
    tell: Callable[[], None],
) -> str:
    """One thread, nothing dropped: every window `every` frames after the last is scored, in order."""
    deadline = None if settings.duration_s is None else time.monotonic() + settings.duration_s
    latest = None
    try:
        for frame in grabber.frames():
            tell()
            ring.push(frame)
            window = ring.take(scorer.last_end, settings.every)
            if window is not None:
                latest = scorer(window)
                on_prediction(latest)
                if latest.number == settings.max_predictions:
                    return "max-predictions"
            if deadline is not None and time.monotonic() >= deadline:
                return "duration"
            if on_tick is not None and on_tick(_status(grabber, ring, scorer, latest)) is False:
                return "quit"
        return "end"
    finally:
        stop.set()
        grabber.release()


def _threaded_loop(
    grabber: Grabber,
    ring: RingBuffer,
    scorer: _Scorer,
    settings: LiveSettings,
    on_prediction: Callable[[LivePrediction], None],
    on_tick: Callable[[LiveStatus], bool] | None,
    stop: threading.Event,
    tell: Callable[[], None],
) -> str:
    """Capture and model in threads of their own; the model takes the newest window whenever it is free."""
    results: queue.SimpleQueue[LivePrediction] = queue.SimpleQueue()
    errors: list[BaseException] = []

    def score_newest() -> None:
        try:
            while not stop.is_set():
                window = ring.wait(scorer.last_end, settings.every, TICK_S * 6)
                if window is not None:
                    results.put(scorer(window))
                elif ring.closed:
                    return
        except BaseException as e:  # raised again in the main thread
            errors.append(e)

    capture_thread = threading.Thread(target=grabber.run, args=(ring,), name="vivit-capture", daemon=True)
    model_thread = threading.Thread(target=score_newest, name="vivit-model", daemon=True)
    deadline = None if settings.duration_s is None else time.monotonic() + settings.duration_s
    latest = None
    try:
        capture_thread.start()
        model_thread.start()
        while True:
            try:
                latest = results.get(timeout=TICK_S)
                on_prediction(latest)
                if latest.number == settings.max_predictions:
                    return "max-predictions"
            except queue.Empty:
                pass
            tell()
            finished = not model_thread.is_alive() and results.empty()  # read before the errors it may imply
            for error in (*errors, grabber.error):
                if error is not None:
                    raise error
            if finished:
                return "end"
            if deadline is not None and time.monotonic() >= deadline:
                return "duration"
            if on_tick is not None and on_tick(_status(grabber, ring, scorer, latest)) is False:
                return "quit"
    finally:
        stop.set()
        ring.close()
        for thread in (model_thread, capture_thread):
            if thread.is_alive():
                thread.join(JOIN_TIMEOUT_S)
        if not capture_thread.is_alive():
            grabber.release()  # when the thread never started; else it released the capture itself


def _status(grabber: Grabber, ring: RingBuffer, scorer: _Scorer, latest: LivePrediction | None) -> LiveStatus:
    skipped = latest.frames_skipped if latest else 0
    return LiveStatus(ring.newest(), latest, grabber.rate, grabber.frames_read, skipped)


def _rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey, or BGRA) frame as RGB uint8 (H, W, 3)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
