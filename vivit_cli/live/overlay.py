"""The overlay video: every frame of the input with its window's labels drawn on it, H.264 when PyAV is at hand.

The labels of a frame are known only once its window has been through the model, so the overlay is a second
sequential read after `timeline.scan`: holding decoded frames until their batch is scored would cost up to
(batch size x step + a clip's span) full-resolution frames, about 2 GB for 1080p at the defaults, where a
second decode costs a fraction of the model's time and keeps one frame in memory.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vivit_cli.errors import SourceError
from vivit_cli.live.draw import NO_LABEL, draw_labels
from vivit_cli.live.sound import AudioTrack
from vivit_cli.live.text import Warn
from vivit_cli.results import Timeline, clock, shown_path
from vivit_cli.video import decode, probe
from vivit_cli.video.names import ffmpeg_name
from vivit_cli.writers.files import check_folder

MP4_SUFFIXES = (".mp4", ".m4v", ".mov")
SUFFIXES = (*MP4_SUFFIXES, ".mkv")  # containers both H.264 and mp4v go into
MAX_LABELS = 3  # rows on the frame: more would hide the picture
H264_ENCODERS = ("libx264", "libopenh264", "h264")  # PyAV encoder names, best first
H264_CRF = "20"  # x264 constant quality (lower is better; its default is 23): keeps the label text crisp
PTS_PER_S = 90_000  # PyAV time base: MPEG's clock, fine enough for any frame rate
FALLBACK_FOURCC = "mp4v"
FALLBACK_NOTE = (
    "no H.264 encoder (pip install 'vivit-cli[overlay]' for PyAV): wrote MPEG-4 Part 2 (mp4v) with no sound, "
    "which most browsers will not play"
)


@dataclass(frozen=True)
class OverlayResult:
    path: str
    codec: str  # "h264" or "mp4v"
    frames: int
    width: int
    height: int
    note: str | None = None  # for the user: why the file is not what they might expect
    audio: str | None = None  # the sound's codec ("aac"); None where the input has none (or it could not be kept)


def write_overlay(
    timeline: Timeline,
    out: str | Path,
    k: int = MAX_LABELS,
    progress: Callable[[int, int], None] | None = None,
    warn: Warn | None = None,
) -> OverlayResult:
    """Read the timeline's video again, front to back, and write it with each frame's window's top-k drawn.

    `progress(frames written, frames in the video)` is called after every frame; `warn` hears of characters
    no installed font has, at every frame that has them.
    """
    out = check_overlay_path(out)
    info = probe.open_video(timeline.source)
    # 4:2:0 video, the only kind every browser plays, needs even sides: an odd one gets its edge repeated.
    width, height = info.width + info.width % 2, info.height + info.height % 2
    h264 = h264_encoder()
    count = 0
    # The name lives until the encoder is closed: PyAV opens the file at the first frame, and faststart reopens it
    # to move the index to the front.
    with ffmpeg_name(out) as name, ffmpeg_name(timeline.source) as source:
        encoder: _H264 | _Mp4v
        if h264:
            encoder = _H264(name, out, h264, width, height, info.fps, AudioTrack.of(source, timeline.start_s))
        else:
            encoder = _Mp4v(name, out, width, height, info.fps)
        try:
            with contextlib.closing(decode.iter_frames(timeline.source, info)) as frames:
                for _, t, rgb in frames:
                    assert rgb is not None  # iter_frames without `wanted` converts every frame
                    window = timeline.window_at(t)
                    if window is not None:
                        rgb = draw_labels(rgb, window.predictions[:k], clock(t - timeline.start_s), NO_LABEL, warn)
                    if rgb.shape[:2] != (height, width):
                        rgb = np.pad(rgb, ((0, height - rgb.shape[0]), (0, width - rgb.shape[1]), (0, 0)), mode="edge")
                    encoder.write(rgb, t - timeline.start_s)
                    count += 1
                    if progress:
                        progress(count, info.frame_count)
        except BaseException:
            encoder.close(flush=False)  # the error (or Ctrl-C) matters, not the half-written file's tail
            raise
        encoder.close()
    note = encoder.note
    if (width, height) != (info.width, info.height):
        note = (note + "; " if note else "") + f"padded {info.width}x{info.height} to even sides {width}x{height}"
    return OverlayResult(str(out), encoder.codec, count, width, height, note, encoder.audio)


def check_overlay_path(out: str | Path) -> Path:
    """`out` as a Path if its suffix names a container the overlay can go into."""
    out = Path(out)
    if out.suffix.lower() not in SUFFIXES:
        names = ", ".join("*" + s for s in SUFFIXES)
        raise SourceError(f"{shown_path(out)}: the overlay must be a video file named {names}")
    check_folder(out)
    return out


def h264_encoder() -> str | None:
    """The first H.264 encoder PyAV offers, or None without PyAV (or with a build that has none)."""
    try:
        import av
    except ImportError:
        return None
    for name in H264_ENCODERS:
        with contextlib.suppress(ValueError):  # PyAV's UnknownCodecError: this build lacks that encoder
            av.codec.Codec(name, "w")
            return name
    return None


def _cannot_write(out: Path, why: object) -> SourceError:
    return SourceError(f"{shown_path(out)}: cannot write the overlay there ({why})")


class _H264:
    """Frames -> H.264 (yuv420p, +faststart) through PyAV, each frame at its own timestamp (VFR stays VFR); with the
    input's sound (`sound`) where it has some."""

    codec = "h264"

    def __init__(
        self, name: str, out: Path, encoder: str, width: int, height: int, fps: float, sound: AudioTrack | None
    ) -> None:
        import av

        self.sound, self.note = sound, None

        try:
            # faststart puts the index first, so a browser plays the file before it has all of it.
            options = {"movflags": "+faststart"} if out.suffix.lower() in MP4_SUFFIXES else {}
            self.container = av.open(name, "w", options=options)
        except (OSError, av.error.FFmpegError) as e:
            if sound:
                sound.close()
            raise _cannot_write(out, e) from None
        try:
            self.stream: Any = self.container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001))
            self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
            if encoder == "libx264":  # other encoders would warn about an option they do not know
                self.stream.options = {"crf": H264_CRF}
            self.stream.codec_context.time_base = Fraction(1, PTS_PER_S)
            if self.sound:
                self.sound.add_to(self.container)
        except Exception:
            self.container.close()
            if self.sound:
                self.sound.close()
            raise
        self.out, self.last_pts = out, -1

    def write(self, rgb: np.ndarray, t: float) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self.last_pts = max(round(t * PTS_PER_S), self.last_pts + 1)  # strictly increasing, as muxers demand
        frame.pts, frame.time_base = self.last_pts, Fraction(1, PTS_PER_S)
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            if self.sound:
                self.sound.mux_until(t)
        except (OSError, av.error.FFmpegError) as e:  # a full disk, mostly
            raise SourceError(f"{shown_path(self.out)}: writing the overlay failed ({e})") from None

    @property
    def audio(self) -> str | None:
        return self.sound.codec if self.sound and self.sound.kept else None

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                for packet in self.stream.encode():  # the frames the encoder holds back for B-frames
                    self.container.mux(packet)
                if self.sound:
                    self.sound.mux_until(math.inf)
                    self.sound.flush()
                    self.note = self.sound.note
        finally:
            if self.sound:
                self.sound.close()
            try:
                self.container.close()
            except Exception:
                if flush:  # when aborting, the error that stopped us is the one to report
                    raise


class _Mp4v:
    """Frames -> MPEG-4 Part 2 through OpenCV at a constant rate: the fallback that needs no extra package (and
    writes no sound)."""

    codec = FALLBACK_FOURCC
    note = FALLBACK_NOTE
    audio = None

    def __init__(self, name: str, out: Path, width: int, height: int, fps: float) -> None:
        self.writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*FALLBACK_FOURCC), fps, (width, height))
        if not self.writer.isOpened():
            self.writer.release()
            raise _cannot_write(out, "OpenCV could not open an mp4v writer")

    def write(self, rgb: np.ndarray, t: float) -> None:
        self.writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def close(self, flush: bool = True) -> None:
        self.writer.release()
