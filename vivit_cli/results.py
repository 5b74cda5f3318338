"""What a classification returns: frozen, torch-free records that writers and tables consume (no torch, no OpenCV).

A video's `VideoResult`, a live source's `LivePrediction`s and `LiveEvent`s, a long video's `Timeline` of `Window`s
and `Segment`s.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


def shown_path(path: str | os.PathLike[str]) -> str:
    r"""How every output and message writes a path: as it is, except that bytes of the name that are not UTF-8
    (a Latin-1 `caf\xe9.avi`, which Python holds as a lone surrogate) are written as `\xe9`, so the UTF-8
    writers (JSON, CSV, Parquet, the terminal) never meet a character they cannot encode."""
    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def one_line(path: str | os.PathLike[str]) -> str:
    """A path fit for one line of a message: shown_path's, quoted (as Python writes it) only if it holds control
    characters, so that a name with a newline in it cannot split the line."""
    name = shown_path(path)
    return name if name.isprintable() else ascii(name)


@dataclass(frozen=True)
class Prediction:
    label: str
    score: float  # probability in [0, 1], averaged over views
    index: int  # class id in the checkpoint's id2label


@dataclass(frozen=True)
class View:
    """One clip x crop that went through the model."""

    clip: int
    crop: str  # "center", "left", "right", "top", "bottom"
    frame_indices: tuple[int, ...]
    timestamps_s: tuple[float, ...]


@dataclass(frozen=True)
class ModelInfo:
    """What answered: the user's model string resolved to a repo id (or folder) and a commit."""

    model_id: str
    revision: str | None = None  # resolved commit hash; None for a local folder
    device: str | None = None  # where it ran ("cpu", "cuda:0"); None where no model ran (an error row)
    dtype: str | None = None  # what it computed in ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class VideoResult:
    source: str
    predictions: tuple[Prediction, ...]  # best first; empty when the top-1 is under --min-score
    model: ModelInfo
    views: tuple[View, ...] = ()
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float | None = None
    num_frames: int | None = None
    fps: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class VideoEmbedding:
    """A video's embedding: the final LayerNorm's CLS token (what the classifier head reads), averaged over views."""

    source: str
    vector: tuple[float, ...]  # (hidden_size,) float32 values
    model: ModelInfo
    views: tuple[View, ...] = ()
    duration_s: float | None = None
    num_frames: int | None = None
    fps: float | None = None


@dataclass(frozen=True)
class LivePrediction:
    """One scored window of a live source: when, which frames, and the smoothed top-k that passed the threshold."""

    number: int  # 1 for the first prediction
    wall_time: float  # time.time() when the scores came back
    first_frame: int
    last_frame: int
    first_s: float
    last_s: float
    predictions: tuple[Prediction, ...]  # best first; may be empty under --threshold or --min-score
    latency_s: float  # preprocessing and model
    smoothed_over: int  # predictions averaged into these scores
    frames_skipped: int  # so far: frames beyond the --every schedule that passed while the model was busy


@dataclass(frozen=True)
class LiveEvent:
    """Something that happened to a live source between predictions: lost and being reopened, back, or gone."""

    kind: str  # "reconnecting" (before each attempt), "reconnected" or "failed" (every attempt failed)
    wall_time: float  # time.time() when it happened
    attempt: int  # which reopening: 1 for the first (for "failed", the attempts made)
    attempts: int  # how many --reconnect allows
    message: str  # one line for people, without the source's name


@dataclass(frozen=True)
class Window:
    """One clip of a timeline: the frames it sampled, the time they cover and its top-k."""

    index: int
    start_s: float  # timestamp of its first frame
    end_s: float  # timestamp of the frame after its last one (the video's end for the last window)
    frame_indices: tuple[int, ...]  # a held last frame repeats at the end of the video
    predictions: tuple[Prediction, ...]  # best first, crops averaged; empty when the top-1 is under --min-score

    @property
    def centre_s(self) -> float:
        return (self.start_s + self.end_s) / 2


@dataclass(frozen=True)
class Segment:
    """Adjacent windows whose top-1 label is the same and at least the threshold."""

    index: int
    label: str
    score: float  # mean top-1 probability of its windows
    start_s: float
    end_s: float
    first_window: int
    last_window: int

    @property
    def num_windows(self) -> int:
        return self.last_window - self.first_window + 1


# eq=False: `probs` is an array, which dataclass equality cannot compare.
@dataclass(frozen=True, eq=False)
class Timeline:
    """One video's labels over time: its windows, the segments merged from them, every window's probabilities."""

    source: str
    model: ModelInfo
    labels: tuple[str, ...]
    windows: tuple[Window, ...]
    segments: tuple[Segment, ...]
    cells: tuple[tuple[float, float], ...]  # the stretch of time each window speaks for; they tile the video
    probs: Any  # (W, L) float32 numpy: every window's class probabilities, for the plot
    start_s: float  # first frame's timestamp
    end_s: float  # end of the last frame
    every_s: float
    threshold: float

    def window_at(self, t: float) -> Window | None:
        """The window whose cell holds time `t` (the nearest window centre), or None without windows."""
        if not self.windows:
            return None
        return self.windows[max(0, bisect.bisect_right(self._cell_starts, t) - 1)]

    @cached_property
    def _cell_starts(self) -> list[float]:
        return [a for a, _ in self.cells]


def clock(t: float, decimals: int = 1) -> str:
    """Seconds as m:ss.s (h:mm:ss.s past an hour), with `decimals` digits after the seconds."""
    t = round(max(t, 0.0), decimals)
    h, rest = divmod(t, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:0{3 + decimals}.{decimals}f}" if decimals else f"{int(s):02d}"
    return f"{int(h)}:{int(m):02d}:{sec}" if h else f"{int(m)}:{sec}"


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 video', '3 videos', '0 videos': a count as every message and table writes it."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def short_names(paths: Sequence[str]) -> dict[str, str]:
    """Each path as the fewest of its last components that no other of `paths` ends in: `n0.mp4` where the base
    names differ, `a/n0.mp4` and `b/n0.mp4` where they do not (a path that is the tail of another is written whole,
    the other with one component more)."""
    parts = {p: shown_path(p).replace(os.sep, "/").rstrip("/").split("/") for p in paths}
    taken = dict.fromkeys(parts, 1)  # components shown, from the end
    while True:
        names: dict[tuple[str, ...], list[str]] = {}
        for p, n in taken.items():
            names.setdefault(tuple(parts[p][-n:]), []).append(p)
        clashes = [p for same in names.values() if len({tuple(parts[q]) for q in same}) > 1 for p in same]
        grown = [p for p in clashes if taken[p] < len(parts[p])]
        if not grown:
            return {p: "/".join(parts[p][-n:]) if n < len(parts[p]) else shown_path(p) for p, n in taken.items()}
        for p in grown:
            taken[p] += 1
