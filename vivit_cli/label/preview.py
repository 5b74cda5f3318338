"""What a browser shows of a video: the original where it plays it, else a preview made for it (the frames the model
saw, as VP8 WebM, which every browser plays); a thumbnail for the strip of what comes next; and where in the video
the model looked. No model."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vivit_cli.errors import VivitError
from vivit_cli.video import decode, probe
from vivit_cli.video.names import ffmpeg_name
from vivit_cli.video.sampling import Sampling, clip_indices

BROWSER_CONTAINERS = frozenset({".mp4", ".m4v", ".mov", ".webm", ".mkv", ".ogv"})
BROWSER_CODECS = frozenset({"avc1", "h264", "x264", "vp80", "vp08", "vp90", "vp09", "av01", "theo"})
PREVIEW_HEIGHT = 360  # pixels: large on the page, small on disk
THUMB_HEIGHT = 90
PREVIEW_FOURCC = "VP80"  # OpenCV's FFmpeg writes VP8 everywhere; H.264 needs an encoder it does not ship
JPEG_QUALITY = 80


@dataclass(frozen=True)
class Looked:
    """Where the model looked: each clip's first and last moment, in seconds, and the video's length."""

    clips: tuple[tuple[float, float], ...]
    duration_s: float


def plays_in_browser(path: str) -> bool:
    """Whether a browser plays the file as it is, judged by its container and codec; the page also falls back to the
    preview when it does not."""
    if Path(path).suffix.lower() not in BROWSER_CONTAINERS:
        return False
    try:
        return probe.codec(path) in BROWSER_CODECS
    except Exception:  # a file that cannot be probed gets the preview, which says why it fails
        return False


def looked(path: str, sampling: Sampling) -> Looked:
    info = probe.open_video(path)
    clips = clip_indices(info.frame_count, sampling)
    spans = tuple((c[0] / info.fps, (c[-1] + 1) / info.fps) for c in clips)
    return Looked(spans, info.duration_s)


def make_preview(path: str, out: Path, sampling: Sampling) -> Path:
    """The frames of every clip the model saw, at the video's own pace (its rate over the stride), as WebM in `out`;
    written beside it and renamed, so a half-made preview is never served."""
    info = probe.open_video(path)
    indices = [i for clip in clip_indices(info.frame_count, sampling) for i in clip]
    frames, _ = decode.read_frames(path, indices, info)
    size = _fit(info.width, info.height, PREVIEW_HEIGHT)
    # Written as Matroska (of which WebM is a profile; browsers play VP8 in either): asked for WebM by name, OpenCV's
    # FFmpeg wrapper prints a line about codec tags on stderr that nothing can silence.
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".mkv")
    os.close(fd)
    try:
        with ffmpeg_name(tmp) as name:
            writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*PREVIEW_FOURCC), info.fps / sampling.stride, size)
            try:
                for i in indices:
                    writer.write(
                        cv2.cvtColor(cv2.resize(frames[i], size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
                    )
            finally:
                writer.release()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def make_thumb(path: str, sampling: Sampling) -> bytes:
    """A JPEG of the middle frame of the middle clip."""
    info = probe.open_video(path)
    clips = clip_indices(info.frame_count, sampling)
    middle = clips[len(clips) // 2][len(clips[0]) // 2]
    frames, _ = decode.read_frames(path, [middle], info)
    rgb = cv2.resize(frames[middle], _fit(info.width, info.height, THUMB_HEIGHT), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok, "OpenCV encodes any 8-bit frame as JPEG"
    return np.asarray(jpeg).tobytes()


def _fit(width: int, height: int, most: int) -> tuple[int, int]:
    """A frame size at most `most` high, the same shape, with even sides (4:2:0 video needs them)."""
    scale = min(1.0, most / height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


class Media:
    """Each video's browser-facing files, made once and kept in the project (DIR/previews, DIR/thumbs), one maker at
    a time per file; `prefetch` makes them ahead, for the videos that come next."""

    def __init__(self, videos: tuple[str, ...], folder: Path, sampling: Sampling) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.videos, self.folder, self.sampling = videos, folder, sampling
        self._lock = threading.Lock()
        self._making: dict[Path, threading.Lock] = {}
        self._known: dict[tuple[str, int], object] = {}
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vivit-label-media")

    def plays(self, i: int) -> bool:
        return self._once(("plays", i), lambda: plays_in_browser(self.videos[i]))  # type: ignore[return-value]

    def looked(self, i: int) -> Looked | None:
        def find() -> Looked | None:
            try:
                return looked(self.videos[i], self.sampling)
            except VivitError:
                return None

        return self._once(("looked", i), find)  # type: ignore[return-value]

    def preview(self, i: int) -> Path:
        return self._file(
            self.folder / "previews" / f"{i}.webm", lambda out: make_preview(self.videos[i], out, self.sampling)
        )

    def thumb(self, i: int) -> Path:
        def make(out: Path) -> None:
            tmp = out.with_name(f".{out.name}.tmp")
            tmp.write_bytes(make_thumb(self.videos[i], self.sampling))
            os.replace(tmp, out)

        return self._file(self.folder / "thumbs" / f"{i}.jpg", make)

    def prefetch(self, numbers: list[int]) -> None:
        for i in numbers:
            self._ahead.submit(self._quietly, i)

    def close(self) -> None:
        self._ahead.shutdown(wait=False, cancel_futures=True)

    def _quietly(self, i: int) -> None:
        with contextlib.suppress(Exception):  # a video that fails says why when it is asked for
            self.looked(i)
            self.thumb(i)
            if not self.plays(i):
                self.preview(i)

    def _once(self, key: tuple[str, int], make: Callable[[], object]) -> object:
        with self._lock:
            if key in self._known:
                return self._known[key]
        value = make()
        with self._lock:
            self._known[key] = value
        return value

    def _file(self, out: Path, make: Callable[[Path], object]) -> Path:
        with self._lock:
            lock = self._making.setdefault(out, threading.Lock())
        with lock:
            if not out.is_file():
                out.parent.mkdir(parents=True, exist_ok=True)
                make(out)
        return out
