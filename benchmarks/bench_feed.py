"""The decode feed alone: clips from W decode workers into batches on the model's device, with a model that takes no
time. What it costs the main process per view, the bytes moved, and whether the main process keeps up with the
workers, for the hand-over vivit uses now and the ones before it, in one run.

Run: python benchmarks/bench_feed.py [--videos 24] [--workers W] [--size 1280x720] [--json]
     python benchmarks/bench_feed.py --quick     # a few small videos: checks the harness (the tests run it)

Hand-overs compared (each on the same videos, ViViT-B's sizes: 32 frames, 224x224, one view per video):
  float32 pipe   each view preprocessed to float32 in the worker and pickled through its pipe (vivit before the
                 change: 19 MB per view)
  uint8 pipe     the resized and cropped uint8 frames pickled through the pipe (what a machine without memfd gets)
  uint8 ring     the uint8 frames written into a block of the pool's shared ring; the pipe carries a small message

Figures per hand-over: bytes per view; the main process's CPU time per view (its manager thread receiving, and
the batching: a view copied into the batch and moved to the device), which bounds the views per second one
process can feed; apart from it, the normalising on the device when that is the CPU (the model's first step
there; on a GPU, the GPU's); the latency from a worker's hand-over to the view in a batch; the clips per
second received against W x the workers' own decode rate (feed_vs_decode: 1.0 is a feed that never makes a
worker wait). --json prints one object (the ring's figures at the top level) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent),
                                                         os.environ.get("PYTHONPATH")]))  # the workers import us
from common import cpu_description, make_video_folder  # noqa: E402

from vivit_cli.batch import ring, worker  # noqa: E402
from vivit_cli.batch.pool import DONE, DecodePool  # noqa: E402
from vivit_cli.pipeline import ViewBatcher, to_device  # noqa: E402
from vivit_cli.video.preprocess import PreprocessConfig  # noqa: E402
from vivit_cli.video.sampling import Views  # noqa: E402

VIVIT_B = worker.DecodeSpec(32, PreprocessConfig(), Views())  # transformers' processor defaults are ViViT-B's
QUICK = worker.DecodeSpec(8, PreprocessConfig(shortest_edge=64, crop_hw=(56, 56)), Views())
BATCH = 8  # views per batch
AIM_MS = 2.0  # main-process ms per ViViT-B view: 500 views/s, a large GPU's rate
AIM_FEED = 0.9  # clips/s received / (W x one worker's decode rate)
HANDOVERS = ("float32 pipe", "uint8 pipe", "uint8 ring")


def float32_decode(path: str, spec: worker.DecodeSpec, where: str | None = None):
    """The worker body before the change: the views normalised to float32 (V, T, C, S, S) in the worker."""
    prepared, error = worker.decode(path, spec, where)
    if prepared is None:
        return None, error
    return replace(prepared, frames=spec.preprocess.normalise(torch.from_numpy(prepared.frames)).numpy()), None


_decoded: dict[str, object] = {}  # a worker's first answer, given again by the instant bodies


def instant_decode(path: str, spec: worker.DecodeSpec, where: str | None = None):
    """A worker that answers at once (its first video's frames, again): the feed's own ceiling."""
    if "first" not in _decoded:
        _decoded["first"] = worker.decode(path, spec, where)[0]
    return replace(_decoded["first"], source=path), None


def instant_float32_decode(path: str, spec: worker.DecodeSpec, where: str | None = None):
    if "first32" not in _decoded:
        _decoded["first32"] = float32_decode(path, spec, where)[0]
    return replace(_decoded["first32"], source=path), None


class NoModel:
    """The scoring path up to the model: the batch onto the device and, for uint8, normalised there. The
    normalising is the device's work (on a CPU device, the model's first step): its CPU time is kept apart."""

    def __init__(self, device: torch.device, preprocess: PreprocessConfig, normalise: bool = True) -> None:
        self.device, self.preprocess, self.normalise = device, preprocess, normalise or device.type != "cpu"
        self.normalise_s = 0.0  # this thread's CPU seconds in normalise, on a CPU device

    def forward(self, x: torch.Tensor, output: str) -> np.ndarray:
        """The scoring path's own step onto the device (pipeline.to_device), and no model."""
        if not self.normalise:  # a CPU device, whose normalising is the model's work: left out of the ceiling
            return np.zeros((len(x), 1), np.float32)
        t = time.thread_time()
        y = to_device(x, self.preprocess, self.device)  # (B, T, C, S, S)
        if y.is_cuda:
            torch.cuda.synchronize()
        elif x.dtype == torch.uint8:
            del y  # freeing its pages is part of the step (the model's input, on a CPU device)
            self.normalise_s += time.thread_time() - t
        return np.zeros((len(x), 1), np.float32)

def feed(
    handover: str, paths: list[str], spec: worker.DecodeSpec, workers: int, device: torch.device, instant: bool = False
) -> dict:
    """One hand-over's figures: the pool run to the end with a model that takes no time; `instant`: with workers
    that answer at once, so that the main process alone bounds the rate."""
    real_decode, real_available = worker.decode, ring.available
    import bench_feed  # by reference, so that the workers find it

    bodies = {
        (True, False): bench_feed.float32_decode,
        (True, True): bench_feed.instant_float32_decode,
        (False, True): bench_feed.instant_decode,
    }
    worker.decode = bodies.get((handover == "float32 pipe", instant), real_decode)
    ring.available = (lambda: False) if handover != "uint8 ring" else real_available
    try:
        with DecodePool(workers, 600) as pool:
            while sum(w.ready for w in pool._slots) < workers:  # started (torch imported): time the steady state
                time.sleep(0.05)
            model = NoModel(device, spec.preprocess, normalise=not instant)  # a CPU's own work, not the feed's
            batcher = ViewBatcher(model, BATCH)  # type: ignore[arg-type]
            pool.submit(paths, spec, max_pending=BATCH + 2 * workers)
            decode_s, latency_s, nbytes, views = [], [], [], 0
            cpu0, wall0 = time.process_time(), time.perf_counter()
            while (item := pool.get()) is not DONE:
                assert item is not None and item.prepared is not None, item
                frames = item.prepared.frames
                batcher.add(item.path, frames)
                latency_s.append(time.monotonic() - item.handed_s)
                decode_s.append(item.decode_s)
                nbytes.append(frames.nbytes / len(frames))
                views += len(frames)
            batcher.drain()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        worker.decode, ring.available = real_decode, real_available
    clips_per_s = len(paths) / wall
    return {
        "bytes_per_view": int(statistics.median(nbytes)),
        "handover_ms_per_view": 1000 * (cpu - model.normalise_s) / views,
        "normalise_ms_per_view": 1000 * model.normalise_s / views,
        "latency_ms_median": 1000 * statistics.median(latency_s),
        "decode_s_median": statistics.median(decode_s),
        "clips_per_s": clips_per_s,
        "views_per_s": views / wall,
        "feed_vs_decode": clips_per_s / (workers / statistics.mean(decode_s)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the made H.264 videos")
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="6 small videos and small frames: checks the harness")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout, the tables on stderr")
    args = ap.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    spec = QUICK if args.quick else VIVIT_B
    count, size = (6, (160, 90)) if args.quick else (args.videos, tuple(int(v) for v in args.size.split("x")))
    torch.set_num_threads(1)  # the main process batches; the cores decode
    with tempfile.TemporaryDirectory() as tmp:
        folder, codec = make_video_folder(Path(tmp) / "videos", count, size, 30, 1 if args.quick else args.seconds)
        paths = sorted(str(p) for p in folder.iterdir())
        say(f"{cpu_description()}\n{count} videos {size[0]}x{size[1]} {codec}; {spec.num_frames} frames at "
            f"{spec.preprocess.crop_hw[0]} px per view; {args.workers} decode worker(s); batches of {BATCH} on "
            f"{args.device}; ring available: {ring.available()}\n")
        device = torch.device(args.device)
        figures = {h: feed(h, paths, spec, args.workers, device) for h in HANDOVERS}
        repeats = 3 if args.quick else 10
        ceiling = {h: feed(h, paths * repeats, spec, args.workers, device, instant=True) for h in HANDOVERS}
    say(f"{'hand-over':<14}{'MB/view':>9}{'main ms/view':>14}{'normalise ms':>14}{'latency ms':>12}{'decode s':>10}"
        f"{'clips/s':>9}{'feed/decode':>13}")
    for h, f in figures.items():
        say(f"{h:<14}{f['bytes_per_view'] / 1e6:>9.2f}{f['handover_ms_per_view']:>14.2f}"
            f"{f['normalise_ms_per_view']:>14.2f}"
            f"{f['latency_ms_median']:>12.1f}{f['decode_s_median']:>10.3f}{f['clips_per_s']:>9.2f}"
            f"{f['feed_vs_decode']:>13.2f}")
    say(f"\nthe feed's ceiling: workers that answer at once ({len(paths) * repeats} views)")
    say(f"{'hand-over':<14}{'views/s':>9}{'main ms/view':>14}")
    for h, f in ceiling.items():
        say(f"{h:<14}{f['views_per_s']:>9.1f}{f['handover_ms_per_view']:>14.2f}")
    kept = "uint8 ring" if ring.available() else "uint8 pipe"
    now = {**figures[kept], "ceiling_views_per_s": ceiling[kept]["views_per_s"],
           "ceiling_ms_per_view": ceiling[kept]["handover_ms_per_view"]}
    say(f"\naims: main process <= {AIM_MS} ms per view ({now['handover_ms_per_view']:.2f}), feed >= {AIM_FEED}x "
        f"the workers' decode rate ({now['feed_vs_decode']:.2f}); before: "
        f"{figures['float32 pipe']['handover_ms_per_view']:.2f} ms, {figures['float32 pipe']['feed_vs_decode']:.2f}x")
    if args.json:
        out = {**now, "cpu": cpu_description(), "workers": args.workers, "videos": count,
               "size": f"{size[0]}x{size[1]}", "handovers": figures, "ceiling": ceiling}
        print(json.dumps(out))


if __name__ == "__main__":
    main()
