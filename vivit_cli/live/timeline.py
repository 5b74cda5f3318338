"""A long video -> windows every few seconds, scored in batches from one sequential read -> labelled segments.

Torch, NumPy and OpenCV are imported inside `scan` so that the CLI can read this module's defaults cheaply.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vivit_cli.errors import VideoError, VivitError
from vivit_cli.results import Segment, Timeline, Window

if TYPE_CHECKING:  # pragma: no cover
    from vivit_cli.pipeline import Classifier
    from vivit_cli.video.sampling import VideoInfo, Views

DEFAULT_EVERY_S = 1.0  # seconds between window starts
# Top-1 probability a window needs to join a segment: with 400 classes a guess scores 0.0025, so 0.3 keeps
# windows where one label clearly leads and leaves mixed stretches as gaps rather than as flickering labels.
DEFAULT_THRESHOLD = 0.3
DEFAULT_BATCH_SIZE = 8  # windows per forward pass (each is --crops views)
STEP_TOLERANCE = 1e-9  # of a step: 0.3 / 0.1 is 2.9999999999999996 in floating point, yet three steps


def cells(windows: Sequence[Window], start_s: float, end_s: float) -> tuple[tuple[float, float], ...]:
    """Split [start_s, end_s] between windows at the midpoints of their centres."""
    # Windows overlap whenever the step is shorter than a clip: the midpoint is where the nearer window
    # takes over, so a change of scene lands between the last window before it and the first after it.
    bounds = [start_s] + [(a.centre_s + b.centre_s) / 2 for a, b in zip(windows, windows[1:], strict=False)]
    bounds.append(max(end_s, windows[-1].end_s) if windows else end_s)
    return tuple(zip(bounds, bounds[1:], strict=False))


def window_count(frame_count: int, fps: float, every_s: float, span: int) -> int:
    """The windows `scan` will score in a video of `frame_count` frames at a constant `fps`, known before the scan.

    Windows start at the first frame at or after each multiple of `every_s`; those that fit are scored, and
    when the last of them ends before the last frame, so is the next one opened (held at the last frame). For a
    variable frame rate this is an estimate: the scan places windows on the frames' real timestamps.
    """
    if frame_count < 1:
        return 0
    room = frame_count - span  # the last frame a full window can start at
    if room < 0:
        return 1  # shorter than one window: its first window, held at the last frame
    step = every_s * fps  # frames between window starts, not a whole number in general

    def start(k: int) -> int:  # the frame window k opens at, with `add`'s tolerance
        return math.ceil((k - STEP_TOLERANCE) * step)

    full = min(math.floor(room / step + STEP_TOLERANCE) + 1, room + 1)  # several steps to one frame: one window
    ends_early = start(full - 1) + span < frame_count if step >= 1 else False
    return full + (1 if ends_early and start(full) < frame_count else 0)


def merge_segments(
    windows: Sequence[Window], spans: Sequence[tuple[float, float]], threshold: float
) -> tuple[Segment, ...]:
    """Runs of adjacent windows with the same top-1 label scoring at least `threshold`, over their cells. A window
    with no label (its top-1 was under --min-score) breaks a run, as a weak one does."""

    def top_index(w: Window) -> int | None:  # None: the window joins no run
        top = w.predictions[0] if w.predictions else None
        return top.index if top is not None and top.score >= threshold else None

    segments: list[Segment] = []
    for index, group in itertools.groupby(windows, top_index):
        if index is None:
            continue
        run = list(group)
        first, last = run[0], run[-1]
        score = sum(w.predictions[0].score for w in run) / len(run)
        label = first.predictions[0].label
        segments.append(
            Segment(len(segments), label, score, spans[first.index][0], spans[last.index][1], first.index, last.index)
        )
    return tuple(segments)


@dataclass
class _Open:
    """A window still collecting frames: the indices it wants and the frames it has."""

    start: int
    last: int  # index of its last frame
    start_s: float
    frames: list[Any] = field(default_factory=list)  # (crops, C, S, S) tensors, shared with other windows
    indices: list[int] = field(default_factory=list)
    end_s: float | None = None


class _Scanner:
    """Opens a window every `every_s` seconds, fills it from the frames going by, scores full batches."""

    def __init__(self, classifier: Classifier, views: Views, every_s: float, batch_size: int, k: int) -> None:
        self.classifier, self.views, self.every_s, self.batch_size, self.k = classifier, views, every_s, batch_size, k
        self.on_scored: Callable[[int], None] | None = None  # hears the windows scored so far, after each batch
        self.span = views.sampling(classifier.config.num_frames).span  # frames, first to last inclusive
        self.open: list[_Open] = []
        self.done: list[_Open] = []  # complete, waiting for their batch
        self.windows: list[Window] = []
        self.probs: list[Any] = []
        self.t0: float | None = None
        self.covered_to = -1  # the last frame a finished window sampled
        self.next_start_s = 0.0

    def wants(self, index: int, t: float) -> bool:
        """Whether frame `index` opens a window or is sampled by an open one."""
        return self._opens(t) or any(self._samples(w, index) for w in self.open)

    def add(self, index: int, t: float, rgb: Any) -> None:
        # The frame after a window's last frame tells when that window ends.
        self._finish([w for w in self.open if w.last == index - 1], t)
        if self._opens(t):
            if self.t0 is None:
                self.t0 = t
            self.open.append(_Open(index, index + self.span - 1, t))
            # One window per frame however long the gap before it (variable frame rate): the next window
            # opens at the first frame at or after the next multiple of the step.
            steps = int((t - self.t0) / self.every_s + STEP_TOLERANCE) + 1
            self.next_start_s = self.t0 + steps * self.every_s
        sampling = [w for w in self.open if self._samples(w, index)]
        if rgb is not None and sampling:
            tensor = self._preprocess(rgb)
            for w in sampling:
                w.frames.append(tensor)
                w.indices.append(index)

    def finish(self, last: int, end_s: float) -> None:
        """At frame `last`, the video's last: close the windows that end there; if none does, the first one
        still open holds its last frame to cover the tail (later ones would be mostly held frames)."""
        self._finish([w for w in self.open if w.last == last], end_s)
        if self.open and self.covered_to < last:
            w = self.open[0]
            missing = self.classifier.config.num_frames - len(w.frames)
            w.frames += [w.frames[-1]] * missing
            w.indices += [w.indices[-1]] * missing
            self._finish([w], end_s)
        self.open.clear()
        self._score()

    def _opens(self, t: float) -> bool:
        return self.t0 is None or t >= self.next_start_s - STEP_TOLERANCE * self.every_s

    def _samples(self, w: _Open, index: int) -> bool:
        return w.start <= index <= w.last and (index - w.start) % self.views.stride == 0

    def _preprocess(self, rgb: Any) -> Any:
        import torch

        from vivit_cli.video.sampling import CROP_NAMES

        # uint8 until the model's device normalises them: a quarter of float32's memory while windows are open
        crops = [self.classifier.preprocess.crop(rgb[None], where) for where in CROP_NAMES[self.views.crops]]
        return torch.cat(crops)  # (crops, S, S, C)

    def _finish(self, complete: list[_Open], end_s: float) -> None:
        """Move complete windows, which end at `end_s`, to the batch; score it when full."""
        for w in complete:
            w.end_s = end_s
            self.covered_to = max(self.covered_to, w.indices[-1])
            self.open.remove(w)
            self.done.append(w)
            if len(self.done) == self.batch_size:
                self._score()

    def _score(self) -> None:
        import torch

        from vivit_cli.pipeline import score_videos

        if not self.done:
            return
        clips = [torch.stack(w.frames, dim=1) for w in self.done]  # each (crops, T, S, S, C)
        scored = score_videos(self.classifier, clips, batch_size=sum(len(c) for c in clips))  # each (crops, L)
        for w, p in zip(self.done, (s.mean(axis=0) for s in scored), strict=True):
            self.windows.append(
                Window(len(self.windows), w.start_s, w.end_s, tuple(w.indices), self.classifier.top_k(p, self.k))
            )
            self.probs.append(p)
        self.done.clear()
        if self.on_scored:
            self.on_scored(len(self.windows))


def scan(
    classifier: Classifier,
    path: str | Path,
    views: Views | None = None,
    every_s: float = DEFAULT_EVERY_S,
    k: int = 5,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threshold: float = DEFAULT_THRESHOLD,
    progress: Callable[[int, int], None] | None = None,
    info: VideoInfo | None = None,
    on_stop: Callable[[Timeline], None] | None = None,
) -> Timeline:
    """Read `path` once, front to back, scoring a window every `every_s` seconds.

    `progress(windows scored, windows in the video)` is called after each batch, the model being what takes
    the time; the total is `window_count`'s, and the last call gives the windows there really were.
    `info` is the video's probe (`probe.open_video`), when the caller has it already. On Ctrl-C (or SIGTERM)
    `on_stop` is handed the timeline of the windows scored so far, if any, before the interrupt goes on.

    Memory stays bounded whatever the length: frames are kept (preprocessed) only while an open window or
    a window waiting for its batch samples them, at most a clip's span plus `batch_size` windows' frames.
    """
    from vivit_cli.video import decode, probe
    from vivit_cli.video.sampling import Views

    views = views or Views()
    if views.clips != 1:
        raise VivitError(f"a timeline window is one clip: clips must be 1, got {views.clips}")
    if not every_s > 0 or batch_size < 1:
        raise VivitError(f"every_s must be positive and batch_size at least 1 (got {every_s}, {batch_size})")
    info = info or probe.open_video(path)
    scanner = _Scanner(classifier, views, every_s, batch_size, k)
    expected = window_count(info.frame_count, info.fps, every_s, scanner.span)
    if progress:
        scanner.on_scored = lambda done: progress(done, max(expected, done))
    first_s = last_s = None
    period_s = 1.0 / info.fps  # until two frames give the real one
    count = 0
    try:
        with contextlib.closing(decode.iter_frames(path, info, scanner.wants)) as frames:
            for index, t, rgb in frames:
                first_s = t if first_s is None else first_s
                period_s = t - last_s if last_s is not None else period_s
                last_s = t
                scanner.add(index, t, rgb)
                count += 1
        if first_s is None or last_s is None:
            raise VideoError(f"{path}: contains no decodable video frames")
        end_s = last_s + period_s  # the last frame lasts as long as the one before it (variable frame rate)
        scanner.finish(count - 1, end_s)
    except KeyboardInterrupt:
        if on_stop is not None and scanner.windows and first_s is not None:  # the windows paid for so far
            on_stop(_timeline(path, scanner, first_s, scanner.windows[-1].end_s, threshold))
        raise
    if progress:
        progress(len(scanner.windows), len(scanner.windows))
    return _timeline(path, scanner, first_s, end_s, threshold)


def _timeline(path: str | Path, scanner: _Scanner, start_s: float, end_s: float, threshold: float) -> Timeline:
    """The scanner's windows scored so far, as a timeline from `start_s` to `end_s`."""
    import numpy as np

    scored = min(len(scanner.windows), len(scanner.probs))  # equal, unless Ctrl-C fell between the two appends
    windows = tuple(scanner.windows[:scored])
    spans = cells(windows, start_s, end_s)
    return Timeline(
        source=str(path),
        model=scanner.classifier.info,
        labels=tuple(scanner.classifier.labels),
        windows=windows,
        segments=merge_segments(windows, spans, threshold),
        cells=spans,
        probs=np.stack(scanner.probs[:scored]).astype(np.float32),
        start_s=start_s,
        end_s=end_s,
        every_s=scanner.every_s,
        threshold=threshold,
    )
