"""`vivit batch` on one machine against `vivit batch --ray` on a local Ray started by the run, same folder.

    pip install "vivit-cli[ray]"
    python benchmarks/bench_ray.py [--videos 8] [--batch-size 8] [--tiny]

Makes its own videos (bench_batch.py's: 320x240 H.264, 30 fps, 4 s) and a full-size ViViT-B with random weights
(--tiny: a two-layer 32 px model, to check the harness in a minute). Both runs are the whole command in a fresh
process, so the Ray time includes importing Ray, starting the local cluster, the workers and their model loads,
and shutting it down. It then times one clip's decoding (one core) and one clip through the model (all cores),
the figures the README's estimate of throughput per node is made from. The target is Ray / local <= 1.15.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import FPS, SECONDS, SIZE  # noqa: E402
from common import (  # noqa: E402
    best_time,
    cpu_description,
    gpu_description,
    make_checkpoint,
    make_tiny_checkpoint,
    make_video_folder,
)

from vivit_cli.pipeline import Views, load_model, prepare_video  # noqa: E402
from vivit_cli.writers import read_records  # noqa: E402

TARGET = 1.15  # Ray's wall time / the local one, start included
SCORE_TOLERANCE = 1e-4  # the two runs batch clips differently; fp32 sums differ in the last bits


def run_cli(videos: Path, folder: Path, out: Path, batch_size: int, extra: list[str]) -> float:
    """One `vivit batch` in a fresh process; its wall time in seconds."""
    cmd = [sys.executable, "-m", "vivit_cli", "-q", "batch", str(videos), "--model", str(folder), "--device", "cpu",
           "--out", str(out), "--batch-size", str(batch_size), *extra]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a fresh local Ray, not someone's cluster
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t


def same_rows(a: Path, b: Path) -> bool:
    ours = {r["path"]: r for r in read_records(a, "jsonl")}
    theirs = {r["path"]: r for r in read_records(b, "jsonl")}
    if ours.keys() != theirs.keys():
        return False
    return all(
        [p["label"] for p in ours[k]["predictions"]] == [p["label"] for p in theirs[k]["predictions"]]
        and all(abs(p["score"] - q["score"]) <= SCORE_TOLERANCE
                for p, q in zip(ours[k]["predictions"], theirs[k]["predictions"], strict=True))
        for k in ours
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8, help="views per forward pass, as --batch-size")
    ap.add_argument("--tiny", action="store_true", help="a two-layer 32 px model: checks the harness quickly")
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}")
    if gpu_description():
        print(f"GPU: {gpu_description()} (not used: both runs on --device cpu)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos, codec = make_video_folder(root / "videos", args.videos, SIZE, FPS, SECONDS)
        folder = make_tiny_checkpoint(root / "ckpt") if args.tiny else make_checkpoint(root / "ckpt")
        print(f"model: {'tiny' if args.tiny else 'ViViT-B/16x2'} (random weights, fp32); {args.videos} videos "
              f"{SIZE[0]}x{SIZE[1]} {codec}, 1 clip each; batch size {args.batch_size}\n")

        local_s = run_cli(videos, folder, root / "local.jsonl", args.batch_size, [])
        ray_s = run_cli(videos, folder, root / "ray.jsonl", args.batch_size, ["--ray"])
        agree = same_rows(root / "local.jsonl", root / "ray.jsonl")

        classifier = load_model(folder, device="cpu")
        cfg = classifier.config
        clip = prepare_video(videos / "v000.mp4", cfg.num_frames, classifier.preprocess, Views())
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as a decode worker has it
        decode_s = best_time(lambda: prepare_video(videos / "v000.mp4", cfg.num_frames, classifier.preprocess,
                                                   Views()), repeats=3)
        torch.set_num_threads(threads)
        classifier.scores(clip.pixel_values)  # warm-up: first-call allocations
        model_s = best_time(lambda: classifier.scores(clip.pixel_values), repeats=2)

    n = args.videos
    print(f"{'':<22}{'seconds':>9}{'clips/s':>9}")
    print(f"{'vivit batch':<22}{local_s:>9.2f}{n / local_s:>9.2f}")
    print(f"{'vivit batch --ray':<22}{ray_s:>9.2f}{n / ray_s:>9.2f}")
    ratio = ray_s / local_s
    print(f"\nRay / local = {ratio:.2f}: {'meets' if ratio <= TARGET else 'misses'} the {TARGET} target; "
          f"rows {'agree' if agree else 'DIFFER'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    extra_s = ray_s - local_s
    print(json.dumps({"decode_s_per_clip_1_core": round(decode_s, 3),
                      f"model_s_per_clip_{threads}_threads": round(model_s, 3),
                      "ray_extra_s": round(extra_s, 1)}))
    print(f"On paper, per CPU node like this one: {1 / model_s:.3f} clips/s (the model is the bottleneck; decoding "
          f"needs {decode_s / model_s:.2f} of a core to keep up). N such nodes: about N x that, after Ray's "
          f"start-up ({extra_s:.0f} s more than local here, for {n} clips).")


if __name__ == "__main__":
    main()
