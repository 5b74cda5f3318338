"""Tiny synthetic videos for tests: every frame shows its own index, so a test can tell which came back."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

# (fourcc, suffix) pairs the opencv-python wheel writes; a wheel without one makes write_video raise.
FORMATS = [
    ("MJPG", ".avi"),
    ("mp4v", ".mp4"),
    ("XVID", ".avi"),
    ("mp4v", ".mov"),
    ("mp4v", ".m4v"),
    ("FFV1", ".mkv"),
    ("HFYU", ".avi"),
    ("VP80", ".webm"),
    ("WMV2", ".wmv"),
    ("FLV1", ".flv"),
    ("PIM1", ".mpg"),  # MPEG-1 program stream: OpenCV reports fewer frames than decode
]

DIGITS = 5  # bands per frame, so indices up to 4**5 - 1 = 1023 are encodable
LEVELS = (16, 88, 160, 232)  # grey levels of one base-4 digit; 72 apart survives lossy codecs
FPS = 30.0  # frames/s of every test video unless asked otherwise

FrameFn = Callable[[int, int, int], np.ndarray]


def index_frame(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame of horizontal grey bands spelling `index` in base 4, most significant digit on top."""
    if not 0 <= index < len(LEVELS) ** DIGITS:
        raise ValueError(f"index {index} does not fit in {DIGITS} base-4 digits")
    frame = np.empty((height, width, 3), np.uint8)
    for band in range(DIGITS):
        digit = index // len(LEVELS) ** (DIGITS - 1 - band) % len(LEVELS)
        frame[band * height // DIGITS : (band + 1) * height // DIGITS] = LEVELS[digit]
    return frame


def decode_index(frame: np.ndarray) -> int:
    """The index an `index_frame` shows, read from the middle of each band (codecs blur the edges)."""
    height, width = frame.shape[:2]
    index = 0
    for band in range(DIGITS):
        top, bottom = band * height // DIGITS, (band + 1) * height // DIGITS
        quarter_h, quarter_w = (bottom - top) // 4, width // 4
        middle = frame[top + quarter_h : bottom - quarter_h, quarter_w : width - quarter_w]
        level = float(np.median(middle))
        index = index * len(LEVELS) + int(np.argmin([abs(level - v) for v in LEVELS]))
    return index


def corner_frame(index: int, width: int, height: int) -> np.ndarray:
    """An RGB index frame with a red square in its top-left corner, to tell which way is up."""
    frame = index_frame(index, width, height)
    side = min(width, height) // 4
    frame[:side, :side] = (255, 0, 0)
    return frame


def write_video(
    path: Path,
    num_frames: int,
    size: tuple[int, int] = (64, 48),
    fourcc: str = "MJPG",
    fps: float = FPS,
    frame_fn: FrameFn = index_frame,
) -> Path:
    """Write `num_frames` frames of `frame_fn(index, width, height)` (RGB) at `size` (width, height)."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    try:
        if not writer.isOpened():
            raise RuntimeError(f"this OpenCV cannot write {fourcc} into {path.suffix}")
        for i in range(num_frames):
            writer.write(cv2.cvtColor(frame_fn(i, width, height), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB, decoded sequentially: the reference for any seeking reader."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    frames = []
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return frames
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()


def ffmpeg_exe() -> str:
    """The ffmpeg binary imageio-ffmpeg bundles, else one on PATH; tests skip without either."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        exe = shutil.which("ffmpeg")
        if exe is None:
            import pytest

            pytest.skip("needs imageio-ffmpeg or an ffmpeg on PATH")
        return exe


def ffmpeg(*args: str) -> None:
    """Run the bundled ffmpeg quietly, raising with its stderr on failure."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")


def write_video_ffmpeg(
    path: Path,
    num_frames: int,
    size: tuple[int, int],
    codec: tuple[str, ...] = ("-c:v", "ffv1"),
    fps: float = FPS,
    frame_fn: FrameFn = index_frame,
) -> Path:
    """Like write_video, through ffmpeg: for what cv2.VideoWriter cannot make (odd sizes, lossless RGB)."""
    # cv2.VideoWriter rounds odd sizes down to even ones; ffmpeg keeps 97x61 with a 4:4:4 or RGB codec.
    width, height = size
    raw = b"".join(frame_fn(i, width, height).tobytes() for i in range(num_frames))
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
        "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", *codec, str(path),
    ]  # fmt: skip
    result = subprocess.run(cmd, input=raw, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.decode(errors='replace').strip()}")
    return path


def rotate_video(src: Path, dst: Path, degrees: int) -> Path:
    """Copy `src` into `dst` with display-rotation metadata (counter-clockwise degrees), as phones write."""
    # -display_rotation is an input option: it must come before the -i it applies to.
    ffmpeg("-display_rotation", str(degrees), "-i", str(src), "-c", "copy", str(dst))
    return dst


def h264_video(src: Path, dst: Path, bframes: int = 3, gop: int = 24) -> Path:
    """Re-encode `src` as H.264 with B-frames and a keyframe every `gop` frames, the hard case for seeking."""
    ffmpeg(
        "-i", str(src), "-c:v", "libx264", "-preset", "ultrafast", "-bf", str(bframes), "-g", str(gop),
        "-pix_fmt", "yuv420p", str(dst),
    )  # fmt: skip
    return dst
