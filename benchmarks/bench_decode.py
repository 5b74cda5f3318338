"""Time sampling one centred clip from a 10-second and a 5-minute video: seeking keeps them close.

Run: python benchmarks/bench_decode.py [--keyint N] [--keep DIR] [--repeats 7] [--json PATH].
Or: python benchmarks/bench_decode.py --resolutions 360,720,1080 [--seconds 10]: per resolution (16:9, frames
this many pixels high), one centred clip as vivit reads it against a plain sequential read of the same frames
(cv2 read() from frame 0 to the clip's last frame, the clip's frames converted to RGB): the cost of our
probing, seeking and checks, as a ratio. The videos are H.264 made by the ffmpeg
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
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_json  # noqa: E402

from vivit_cli.video.decode import sample_clips  # noqa: E402
from vivit_cli.video.sampling import Sampling  # noqa: E402

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


def make_video(path: Path, seconds: int, keyint: int | None, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
    """Encode a moving test pattern (so P/B-frames carry real motion) as H.264 in mp4."""
    import imageio_ffmpeg

    gop = ["-g", str(keyint)] if keyint else []
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={size[0]}x{size[1]}:rate={FPS}:duration={seconds}",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", *gop, str(path),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def sample_once(path: Path, hw: tuple[int, int] = (HEIGHT, WIDTH)) -> tuple[float, int]:
    """Seconds to open the video and sample one clip, and its frame count."""
    start = time.perf_counter()
    info, clips = sample_clips(path, SAMPLING)
    seconds = time.perf_counter() - start
    assert clips[0].frames.shape == (SAMPLING.num_frames, *hw, 3)
    assert clips[0].frames.dtype == np.uint8
    return seconds, info.frame_count


def plain_read(path: Path, indices: tuple[int, ...]) -> dict[int, np.ndarray]:
    """The frames at `indices`, read front to back with cv2 and nothing else: no probing, seeking or checks."""
    cap = cv2.VideoCapture(str(path))
    wanted, frames = set(indices), {}
    try:
        for i in range(max(indices) + 1):
            ok, bgr = cap.read()
            if not ok:
                raise RuntimeError(f"{path}: frame {i} did not decode")
            if i in wanted:
                frames[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    return frames


def time_resolutions(folder: Path, heights: list[int], seconds: int, repeats: int, keyint: int | None) -> dict:
    """Per height: best seconds of one centred clip, ours and the plain read, alternating."""
    out = {}
    for height in heights:
        width = height * 16 // 9 // 2 * 2
        path = folder / f"{height}p_{seconds}s_h264.mp4"
        make_video(path, seconds, keyint, (width, height))
        _, clips = sample_clips(path, SAMPLING)  # warm-up: page cache, OpenCV's first use
        indices = clips[0].frame_indices
        plain_read(path, indices)
        ours = plain = float("inf")
        for _ in range(repeats):
            ours = min(ours, sample_once(path, (height, width))[0])
            t = time.perf_counter()
            frames = plain_read(path, indices)
            plain = min(plain, time.perf_counter() - t)
        assert np.array_equal(frames[indices[-1]], clips[0].frames[-1]), "the two reads disagree"
        out[f"{height}p"] = {"size": [width, height], "ours_s": ours, "plain_s": plain, "ratio": ours / plain,
                             "frames_read_plain": indices[-1] + 1, "clip_frames": len(indices)}
    return out


def time_sampling(paths: dict[str, Path], repeats: int) -> dict[str, tuple[float, float, int]]:
    """Best and median seconds per video, and its frame count; runs alternate so load hits both alike."""
    for path in paths.values():  # warm the page cache and OpenCV's first-use set-up
        sample_once(path)
    times: dict[str, list[float]] = {name: [] for name in paths}
    frames = {}
    for _ in range(repeats):
        for name, path in paths.items():
            seconds, frames[name] = sample_once(path)
            times[name].append(seconds)
    return {name: (min(t), statistics.median(t), frames[name]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyint", type=int, help="frames between keyframes (default: libx264's, 250)")
    parser.add_argument("--keep", type=Path, help="make (or reuse) the videos in this folder")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per video")
    parser.add_argument("--resolutions", help="e.g. 360,720,1080: ours against a plain read at each height instead")
    parser.add_argument("--seconds", type=int, default=LENGTHS_S["short"], help="video length for --resolutions")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    if args.resolutions:
        resolutions(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, seconds in LENGTHS_S.items():
            paths[name] = folder / f"{name}_{seconds}s_{WIDTH}x{HEIGHT}_h264_keyint{args.keyint or 250}.mp4"
            if not paths[name].exists():
                make_video(paths[name], seconds, args.keyint)
        results = time_sampling(paths, args.repeats)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores); OpenCV {cv2.__version__}")
    print(
        f"open + one centred clip ({SAMPLING.num_frames} frames, stride {SAMPLING.stride}) from "
        f"{WIDTH}x{HEIGHT} H.264 at {FPS} fps, keyframe every {args.keyint or 250} frames; {args.repeats} runs:"
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
    write_json(args.json, {"cpu": cpu_name(), "long_over_short_best": ratio, "long_over_short_median": median_ratio,
                           "seconds": {n: results[n][0] for n in results}})


def resolutions(args: argparse.Namespace) -> None:
    heights = [int(h) for h in args.resolutions.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        results = time_resolutions(Path(tmp), heights, args.seconds, args.repeats, args.keyint)
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores); OpenCV {cv2.__version__}")
    print(f"one centred clip ({SAMPLING.num_frames} frames, stride {SAMPLING.stride}) from a {args.seconds} s H.264 "
          f"video at {FPS} fps, keyframe every {args.keyint or 250} frames; best of {args.repeats}:")
    print(f"{'':>8}{'ours ms':>10}{'plain ms':>10}{'ratio':>8}  (plain: cv2 read() of frames 0..last of the clip)")
    for name, r in results.items():
        print(f"{name:>8}{r['ours_s'] * 1000:>10.1f}{r['plain_s'] * 1000:>10.1f}{r['ratio']:>7.2f}x")
    write_json(args.json, {"cpu": cpu_name(), "seconds": args.seconds, "resolutions": results})


if __name__ == "__main__":
    main()
