"""Time sampling one centred clip from a 10-second and a 5-minute video: seeking keeps them close.

Run: python benchmarks/bench_decode.py [--keyint N] [--keep DIR]. The videos are H.264 made by the ffmpeg
that imageio-ffmpeg bundles (libx264 defaults: medium preset, B-frames, a keyframe at most every 250
frames), because that is what real videos are and a long GOP is the hard case for seeking: a seek decodes
from the keyframe before its target. --keyint 30 is closer to phone videos (a keyframe a second).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from vivit_cli.video.decode import sample_clips
from vivit_cli.video.sampling import Sampling

WIDTH, HEIGHT = 640, 360  # pixels
FPS = 30  # frames/s
LENGTHS_S = {"short": 10, "long": 300}  # seconds
SAMPLING = Sampling(num_frames=32, stride=2, clips=1)
REPEATS = 7  # timed runs per video; the best and the median are reported
MAX_RATIO = 1.5  # the long video may take at most this many times the short one


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_video(path: Path, seconds: int, keyint: int | None) -> None:
    """Encode a moving test pattern (so P/B-frames carry real motion) as H.264 in mp4."""
    import imageio_ffmpeg

    gop = ["-g", str(keyint)] if keyint else []
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={seconds}",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", *gop, str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def sample_once(path: Path) -> tuple[float, int]:
    """Seconds to open the video and sample one clip, and its frame count."""
    start = time.perf_counter()
    info, clips = sample_clips(path, SAMPLING)
    seconds = time.perf_counter() - start
    assert clips[0].frames.shape == (SAMPLING.num_frames, HEIGHT, WIDTH, 3)
    assert clips[0].frames.dtype == np.uint8
    return seconds, info.frame_count


def time_sampling(paths: dict[str, Path]) -> dict[str, tuple[float, float, int]]:
    """Best and median seconds per video, and its frame count; runs alternate so load hits both alike."""
    for path in paths.values():  # warm the page cache and OpenCV's first-use set-up
        sample_once(path)
    times: dict[str, list[float]] = {name: [] for name in paths}
    frames = {}
    for _ in range(REPEATS):
        for name, path in paths.items():
            seconds, frames[name] = sample_once(path)
            times[name].append(seconds)
    return {name: (min(t), statistics.median(t), frames[name]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyint", type=int, help="frames between keyframes (default: libx264's, 250)")
    parser.add_argument("--keep", type=Path, help="make (or reuse) the videos in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, seconds in LENGTHS_S.items():
            paths[name] = folder / f"{name}_{seconds}s_{WIDTH}x{HEIGHT}_h264_keyint{args.keyint or 250}.mp4"
            if not paths[name].exists():
                make_video(paths[name], seconds, args.keyint)
        results = time_sampling(paths)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores); OpenCV {cv2.__version__}")
    print(
        f"open + one centred clip ({SAMPLING.num_frames} frames, stride {SAMPLING.stride}) from "
        f"{WIDTH}x{HEIGHT} H.264 at {FPS} fps, keyframe every {args.keyint or 250} frames; {REPEATS} runs:"
    )
    for name, seconds in LENGTHS_S.items():
        best, median, frames = results[name]
        print(
            f"  {seconds:>4} s video ({frames:>5} frames): best {best * 1000:7.1f} ms, median {median * 1000:7.1f} ms"
        )
    ratio = results["long"][0] / results["short"][0]
    verdict = "ok" if ratio <= MAX_RATIO else f"over the {MAX_RATIO}x target"
    median_ratio = results["long"][1] / results["short"][1]
    print(f"  long / short: {ratio:.2f}x on the best runs ({verdict}), {median_ratio:.2f}x on the medians")


if __name__ == "__main__":
    main()
