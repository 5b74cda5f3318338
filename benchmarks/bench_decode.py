"""Time sampling one centred clip from a 10-second and a 5-minute video: seeking keeps them close.

Run: python benchmarks/bench_decode.py [--keyint N] [--keep DIR] [--repeats 7] [--json PATH].
Or: python benchmarks/bench_decode.py --resolutions 360,720,1080 [--seconds 10] [--pool-seconds 3]: per resolution
(16:9, frames this many pixels high), one centred clip as vivit reads it against a plain sequential read of the same
frames (cv2 read() from frame 0 to the clip's last frame, the clip's frames converted to RGB): the cost of our
probing, seeking and checks, as a ratio. Then decoding near its own limit: each read with FFmpeg's own threads
(OpenCV's default, which is one per CPU up to 16 whatever cv2.setNumThreads says, or 1 or 2 through
OPENCV_FFMPEG_THREADS) and PyAV's (1 thread; 2 with thread_type AUTO, FRAME or SLICE; seek to the keyframe before the
clip, decode forward, RGB uint8), in one process (CPU seconds per clip) and as pools that fill every core (processes
x threads = cores; and a process per core with OpenCV's default threads, as decode workers ran before they set 1):
clips per second per core. Rounds alternate every reader and pool and repeat until no figure improves by over 5%.
The videos are H.264 made by the ffmpeg
that imageio-ffmpeg bundles (libx264 defaults: medium preset, B-frames, a keyframe at most every 250
frames), because that is what real videos are and a long GOP is the hard case for seeking: a seek decodes
from the keyframe before its target. --keyint 30 is closer to phone videos (a keyframe a second).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_name_and_flags, write_json  # noqa: E402

from vivit_cli.video.decode import sample_clips  # noqa: E402
from vivit_cli.video.sampling import Sampling  # noqa: E402

WIDTH, HEIGHT = 640, 360  # pixels
FPS = 30  # frames/s
LENGTHS_S = {"short": 10, "long": 300}  # seconds
SAMPLING = Sampling(num_frames=32, stride=2, clips=1)
REPEATS = 7  # timed runs per video; the best and the median are reported
MAX_RATIO = 1.5  # the long video may take at most this many times the short one
THREADS_VAR = "OPENCV_FFMPEG_THREADS"  # OpenCV reads it at every open: FFmpeg's decoding threads per capture
DEFAULT_THREADS = min(cv2.getNumberOfCPUs(), 16)  # OpenCV's own choice when neither it nor CAP_PROP_N_THREADS is set
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
HALF = max(1, CORES // 2)  # processes of 2 threads that fill the cores
MIN_ROUNDS = 3  # timing rounds at least (or --repeats, if fewer)
STABLE = 0.05  # a round that improves no figure by more than this ends the timing
POOL_SECONDS = 3.0  # each pool reads for this long per round
# Readers: (read, FFmpeg threads or None for OpenCV's default, PyAV's thread_type).
READERS = {"ours_default": ("ours", None, ""), "ours_t1": ("ours", 1, ""), "ours_t2": ("ours", 2, ""),
           "plain_default": ("plain", None, ""), "plain_t1": ("plain", 1, ""), "pyav_t1": ("pyav", 1, "SLICE"),
           "pyav_auto_t2": ("pyav", 2, "AUTO"), "pyav_frame_t2": ("pyav", 2, "FRAME"),
           "pyav_slice_t2": ("pyav", 2, "SLICE")}  # fmt: skip
# Pools on every core: (read, threads, thread_type, processes). ours_t1 is a decode worker per core as settle() leaves
# it; ours_default is the same with OpenCV's default threads, as the workers ran before settle() set them.
POOLS = {"ours_default": ("ours", None, "", CORES), "ours_t1": ("ours", 1, "", CORES), "ours_t2": ("ours", 2, "", HALF),
         "pyav_t1": ("pyav", 1, "SLICE", CORES), "pyav_frame_t2": ("pyav", 2, "FRAME", HALF)}  # fmt: skip


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


@contextlib.contextmanager
def ffmpeg_threads(threads: int | None) -> Iterator[None]:
    """FFmpeg's decoding threads for the captures OpenCV opens inside the block; None: OpenCV's default."""
    old = os.environ.pop(THREADS_VAR, None)
    if threads is not None:
        os.environ[THREADS_VAR] = str(threads)
    try:
        yield
    finally:
        os.environ.pop(THREADS_VAR, None)
        if old is not None:
            os.environ[THREADS_VAR] = old


def pyav_read(path: Path, indices: tuple[int, ...], threads: int, thread_type: str) -> dict[int, np.ndarray]:
    """The frames at `indices` with PyAV: seek to the keyframe before the first, decode forward, RGB uint8."""
    import av

    wanted, frames = set(indices), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        stream.codec_context.thread_type = thread_type
        rate, base, t0 = stream.average_rate, stream.time_base, stream.start_time or 0
        container.seek(t0 + round(min(indices) / (rate * base)), stream=stream, backward=True)
        for frame in container.decode(stream):
            i = round((frame.pts - t0) * base * rate)
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return frames


def read(kind: str, path: Path, indices: tuple[int, ...], threads: int | None, how: str) -> dict[int, np.ndarray]:
    """One clip's frames by one of the readers compared."""
    if kind == "pyav":
        return pyav_read(path, indices, threads or DEFAULT_THREADS, how)
    with ffmpeg_threads(threads):
        if kind == "plain":
            return plain_read(path, indices)
        _, clips = sample_clips(path, SAMPLING)
    return dict(zip(clips[0].frame_indices, clips[0].frames, strict=True))


def pool_task(task: tuple) -> tuple[float, int, float]:
    """One pool process reading the same clip over and over from `start_at` for `seconds`: its clips per second,
    its clips, and the CPU seconds they took (all its threads; what other work on the machine does not inflate)."""
    kind, path, indices, threads, how, start_at, seconds = task
    cv2.setNumThreads(1)  # as settle() leaves every decode worker
    time.sleep(max(0.0, start_at - time.time()))
    start, cpu, n = time.time(), time.process_time(), 0
    while True:
        read(kind, path, indices, threads, how)
        n, now = n + 1, time.time()
        if now >= start + seconds:
            return n / (now - start), n, time.process_time() - cpu


def threads_started(path: Path, threads: int | None) -> int | None:
    """Threads a capture adds to this process once it decodes (None where /proc does not say)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    before = len(os.listdir(tasks))
    with ffmpeg_threads(threads):
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        for _ in range(8):
            cap.grab()
        return len(os.listdir(tasks)) - before
    finally:
        cap.release()


def time_resolutions(folder: Path, heights: list[int], seconds: int, repeats: int, keyint: int | None,
                     pool_seconds: float) -> dict:
    """Per height: best seconds of one centred clip, ours and the plain read, every reader and every pool."""
    out = {}
    with multiprocessing.get_context("spawn").Pool(CORES) as pool:
        for height in heights:
            width = height * 16 // 9 // 2 * 2
            path = folder / f"{height}p_{seconds}s_h264.mp4"
            make_video(path, seconds, keyint, (width, height))
            _, clips = sample_clips(path, SAMPLING)  # warm-up: page cache, OpenCV's first use
            indices = clips[0].frame_indices
            for key, (kind, threads, how) in READERS.items():
                frames = read(kind, path, indices, threads, how)
                assert np.array_equal(frames[indices[-1]], clips[0].frames[-1]), f"{key} and ours disagree"
            pool.map(pool_task, [("ours", path, indices, 1, "", time.time() + 0.5, 0.2)] * CORES)  # imports
            wall = {k: math.inf for k in READERS}
            cpu, rate = dict(wall), {k: 0.0 for k in POOLS}
            pool_cpu = dict(rate)  # clips per CPU-second of the pool's processes
            for done in range(1, repeats + 1):
                before = [*wall.values(), *cpu.values(), *rate.values(), *pool_cpu.values()]
                for key, (kind, threads, how) in READERS.items():
                    t, c = time.perf_counter(), time.process_time()
                    read(kind, path, indices, threads, how)
                    cpu[key] = min(cpu[key], time.process_time() - c)
                    wall[key] = min(wall[key], time.perf_counter() - t)
                for key, (kind, threads, how, procs) in POOLS.items():
                    task = (kind, path, indices, threads, how, time.time() + 0.2, pool_seconds)
                    rates, clips, cpu_s = zip(*pool.map(pool_task, [task] * procs, chunksize=1), strict=True)
                    rate[key], pool_cpu[key] = max(rate[key], sum(rates)), max(pool_cpu[key], sum(clips) / sum(cpu_s))
                after = [*wall.values(), *cpu.values(), *rate.values(), *pool_cpu.values()]
                gain = max((abs(b - a) / a for a, b in zip(before, after, strict=True) if 0 < a < math.inf), default=1)
                if done >= min(MIN_ROUNDS, repeats) and gain <= STABLE:
                    break
            readers = {k: {"wall_s": wall[k], "cpu_s": cpu[k], "threads": READERS[k][1] or DEFAULT_THREADS,
                           "clips_per_cpu_s": 1 / cpu[k]} for k in READERS}  # fmt: skip
            pools = {k: {"processes": POOLS[k][3], "threads": POOLS[k][1] or DEFAULT_THREADS, "clips_per_s": rate[k],
                         "per_core": rate[k] / CORES, "vs_default": rate[k] / rate["ours_default"],
                         "clips_per_cpu_s": pool_cpu[k], "per_cpu_s_vs_default": pool_cpu[k] / pool_cpu["ours_default"]}
                     for k in POOLS}  # fmt: skip
            out[f"{height}p"] = {
                "size": [width, height], "ours_s": readers["ours_default"]["wall_s"], "rounds": done,
                "plain_s": readers["plain_default"]["wall_s"], "frames_read_plain": indices[-1] + 1,
                "ratio": readers["ours_default"]["wall_s"] / readers["plain_default"]["wall_s"],
                "clip_frames": len(indices), "readers": readers, "pools": pools,
                "best_pool": max(pools, key=lambda k: pools[k]["clips_per_s"]),
                "best_pool_per_cpu_s": max(pools, key=lambda k: pools[k]["clips_per_cpu_s"]),
            }  # fmt: skip
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


def machine() -> str:
    """The CPU, its cores and the vector flags FFmpeg's decoders and swscale use; the decoding libraries."""
    import av

    name, flags = cpu_name_and_flags()
    shown = " ".join(f for f in ("avx2", "avx512f", "avx512bw", "avx512vl") if f in flags) or "no avx2"
    return f"{name} ({CORES} cores; {shown}); OpenCV {cv2.__version__}, PyAV {av.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyint", type=int, help="frames between keyframes (default: libx264's, 250)")
    parser.add_argument("--keep", type=Path, help="make (or reuse) the videos in this folder")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per video (rounds at most)")
    parser.add_argument("--resolutions", help="e.g. 360,720,1080: ours against a plain read at each height instead")
    parser.add_argument("--seconds", type=int, default=LENGTHS_S["short"], help="video length for --resolutions")
    parser.add_argument("--pool-seconds", type=float, default=POOL_SECONDS, help="each pool's reading per round")
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
    print(f"CPU: {machine()}")
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
    write_json(args.json, {"cpu": cpu_name_and_flags()[0], "long_over_short_best": ratio,
                           "long_over_short_median": median_ratio, "seconds": {n: results[n][0] for n in results}})


def resolutions(args: argparse.Namespace) -> None:
    heights = [int(h) for h in args.resolutions.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        make_video(Path(tmp) / "probe.mp4", 1, None)
        started = {str(n): threads_started(Path(tmp) / "probe.mp4", n) for n in (None, 1, 2)}
        results = time_resolutions(Path(tmp), heights, args.seconds, args.repeats, args.keyint, args.pool_seconds)
    print(f"CPU: {machine()}")
    print(f"FFmpeg threads a capture starts with cv2.setNumThreads(1), as in a decode worker: OpenCV's default "
          f"{started['None']}, {THREADS_VAR}=1: {started['1']}, =2: {started['2']}")
    print(f"one centred clip ({SAMPLING.num_frames} frames, stride {SAMPLING.stride}) from a {args.seconds} s H.264 "
          f"video at {FPS} fps, keyframe every {args.keyint or 250} frames; best of up to {args.repeats} rounds:")
    print(f"{'':>8}{'ours ms':>10}{'plain ms':>10}{'ratio':>8}  (both OpenCV's default threads; plain: cv2 read() "
          "of frames 0..last of the clip)")
    for name, r in results.items():
        print(f"{name:>8}{r['ours_s'] * 1000:>10.1f}{r['plain_s'] * 1000:>10.1f}{r['ratio']:>7.2f}x")
    for name, r in results.items():
        print(f"\n{name} ({r['size'][0]}x{r['size'][1]}, frames 0..{r['frames_read_plain'] - 1} decoded, "
              f"{r['rounds']} rounds)  threads  wall ms   CPU ms  clips per CPU-s")
        for key, f in r["readers"].items():
            print(f"  {key:<36}{f['threads']:>7}{f['wall_s'] * 1000:>9.1f}{f['cpu_s'] * 1000:>9.1f}"
                  f"{f['clips_per_cpu_s']:>10.2f}")
        print(f"  pools on all {CORES} cores{'procs x threads':>32}  clips/s  per core  vs default  per CPU-s"
              "  vs default")
        for key, f in r["pools"].items():
            print(f"  {key:<36}{f['processes']:>7} x {f['threads']:<6}{f['clips_per_s']:>7.2f}{f['per_core']:>10.2f}"
                  f"{f['vs_default']:>11.2f}x{f['clips_per_cpu_s']:>10.2f}{f['per_cpu_s_vs_default']:>11.2f}x")
        print(f"  most clips per second per core: {r['best_pool']}; per CPU-second: {r['best_pool_per_cpu_s']}")
    write_json(args.json, {"cpu": machine(), "cores": CORES, "opencv_default_threads": DEFAULT_THREADS,
                           "threads_started": started, "seconds": args.seconds, "resolutions": results})


if __name__ == "__main__":
    main()
