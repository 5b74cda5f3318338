"""Live labels: the newest full window of a camera, file or stream -> the model -> smoothed top-k, as it happens."""

from __future__ import annotations

import collections
import contextlib
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
from vivit_cli.live.capture import Grabber, open_capture
from vivit_cli.live.frames import Frame, RingBuffer
from vivit_cli.live.settings import CaptureSettings, LiveSettings, Source, check_settings
from vivit_cli.results import LiveEvent, LivePrediction, Prediction
from vivit_cli.video.probe import open_video
from vivit_cli.video.sampling import Sampling

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

        x = self.classifier.preprocess.crop(frames)[None]  # (1, T, S, S, C) uint8: normalised on the model's device
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


@dataclass(frozen=True)
class LiveSummary:
    predictions: int
    frames_read: int
    frames_skipped: int  # as of the last prediction delivered
    max_buffered: int  # the most frames the ring buffer ever held (its capacity bounds it)
    reason: str  # "end", "max-predictions", "duration" or "quit"


class _Scorer:
    """A window -> a LivePrediction: sample every stride-th frame, score, smooth, keep the top-k over threshold."""

    def __init__(self, model: ClipModel, settings: LiveSettings) -> None:
        self.model, self.settings = model, settings
        self.recent: collections.deque[np.ndarray] = collections.deque(maxlen=settings.smooth)  # probabilities
        self.count, self.last_end, self.skipped = 0, None, 0

    def __call__(self, window: Sequence[Frame]) -> LivePrediction:
        picked = window[:: self.settings.stride]
        assert len(picked) == self.model.num_frames, (len(picked), self.model.num_frames)
        clip = np.stack([_rgb(f.image) for f in picked])  # (T, H, W, 3)
        started = time.perf_counter()
        self.recent.append(self.model.score(clip))
        probs = np.mean(self.recent, axis=0)  # (L,)
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
            len(self.recent),
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
    # A file's checked frame rate (OpenCV's is distrusted), for pacing and timestamps.
    fps = open_video(str(source.target)).fps if source.kind == "file" and open_source is None else None
    capture = capture or CaptureSettings()
    ring = RingBuffer(Sampling(model.num_frames, settings.stride).span)  # one window's frames, first to last
    opener = open_source or functools.partial(open_capture, source, capture)
    grabber = Grabber(source, opener, capture, fps, pace=not settings.fast)
    run = _Run(grabber, ring, _Scorer(model, settings), settings, on_prediction, on_tick, on_event)
    try:
        reason = run.fast() if settings.fast else run.threaded()
    finally:
        run.tell()  # also the last attempt's failure, before its error goes up
    latest = run.latest
    if latest is None and reason == "end":
        raise VideoError(
            f"{source.name}: ended after {grabber.frames_read} frames, before one full window of "
            f"{ring.capacity} ({model.num_frames} frames {settings.stride} apart); try a smaller --stride"
        )
    number, skipped = (latest.number, latest.frames_skipped) if latest else (0, 0)
    return LiveSummary(number, grabber.frames_read, skipped, ring.peak, reason)


@dataclass
class _Run:
    """One live run's parts and the checks its two loops share; callbacks run in the calling thread."""

    grabber: Grabber
    ring: RingBuffer
    scorer: _Scorer
    settings: LiveSettings
    on_prediction: Callable[[LivePrediction], None] | None
    on_tick: Callable[[LiveStatus], bool] | None
    on_event: Callable[[LiveEvent], None] | None
    # The last prediction handed on (handed on in order, so its number counts them); the model thread may score
    # one more at a stop.
    latest: LivePrediction | None = None

    def __post_init__(self) -> None:
        duration = self.settings.duration_s
        self.deadline = None if duration is None else time.monotonic() + duration

    def tell(self) -> None:
        """Hand on what happened to the source."""
        while not self.grabber.events.empty():  # this thread is the only one that takes from the queue
            event = self.grabber.events.get()
            if self.on_event is not None:
                self.on_event(event)

    def deliver(self, prediction: LivePrediction) -> bool:
        """Hand on a prediction; True when it is the last one asked for (--max-predictions)."""
        self.latest = prediction
        if self.on_prediction is not None:
            self.on_prediction(prediction)
        return prediction.number == self.settings.max_predictions

    def limit(self) -> str | None:
        """Why to stop between predictions ("duration", or "quit" from the display), else None."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "duration"
        if self.on_tick is None:  # no display: nothing to build a status for, frame after frame
            return None
        status = LiveStatus(self.ring.newest(), self.latest, self.grabber.rate, self.grabber.frames_read)
        return "quit" if self.on_tick(status) is False else None

    def fast(self) -> str:
        """One thread, nothing dropped: every window `every` frames after the last is scored, in order."""
        try:
            for frame in self.grabber.frames():
                self.tell()
                self.ring.push(frame)
                window = self.ring.take(self.scorer.last_end, self.settings.every)
                if window is not None and self.deliver(self.scorer(window)):
                    return "max-predictions"
                if reason := self.limit():
                    return reason
            return "end"
        finally:
            self.grabber.stop.set()
            self.grabber.release()

    def threaded(self) -> str:
        """Capture and model in threads of their own; the model takes the newest window whenever it is free."""
        results: queue.SimpleQueue[LivePrediction] = queue.SimpleQueue()
        errors: list[BaseException] = []
        stop, ring, scorer = self.grabber.stop, self.ring, self.scorer

        def score_newest() -> None:
            try:
                while not stop.is_set():
                    window = ring.take(scorer.last_end, self.settings.every, TICK_S * 6)
                    if window is not None:
                        results.put(scorer(window))
                    elif ring.closed:
                        return
            except BaseException as e:  # raised again in the main thread
                errors.append(e)

        capture_thread = threading.Thread(target=self.grabber.run, args=(ring,), name="vivit-capture", daemon=True)
        model_thread = threading.Thread(target=score_newest, name="vivit-model", daemon=True)
        try:
            capture_thread.start()
            model_thread.start()
            while True:
                with contextlib.suppress(queue.Empty):
                    if self.deliver(results.get(timeout=TICK_S)):
                        return "max-predictions"
                self.tell()
                finished = not model_thread.is_alive() and results.empty()  # read before the errors it may imply
                for error in (*errors, self.grabber.error):
                    if error is not None:
                        raise error
                if finished:
                    return "end"
                if reason := self.limit():
                    return reason
        finally:
            stop.set()
            ring.close()
            for thread in (model_thread, capture_thread):
                if thread.is_alive():
                    thread.join(JOIN_TIMEOUT_S)
            if not capture_thread.is_alive():
                self.grabber.release()  # when the thread never started; else it released the capture itself


def _rgb(image: np.ndarray) -> np.ndarray:
    """OpenCV's BGR (or grey, or BGRA) frame as RGB uint8 (H, W, 3)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
