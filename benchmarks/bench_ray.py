"""`vivit batch` on one machine against `vivit batch --ray` on a local Ray started by the run, same folder.

    pip install "vivit-cli[ray]"
    python benchmarks/bench_ray.py [--videos 8] [--batch-size 8] [--tiny] [--job-sizes 2,6] [--json PATH]

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
    write_json,
)

from vivit_cli.pipeline import load_model  # noqa: E402
from vivit_cli.video.sampling import Views  # noqa: E402
from vivit_cli.video.views import prepare_video  # noqa: E402
from vivit_cli.writers import read_records  # noqa: E402

TARGET = 1.15  # Ray's wall time / the local one, start included
SCORE_TOLERANCE = 1e-4  # the two runs batch clips differently; fp32 sums differ in the last bits


def run_cli(
    videos: Path, folder: Path, out: Path, batch_size: int, extra: list[str], dtype: str = "float32"
) -> float:
    """One `vivit batch` in a fresh process; its wall time in seconds."""
    cmd = [sys.executable, "-m", "vivit_cli", "-q", "batch", str(videos), "--model", str(folder), "--device", "cpu",
           "--dtype", dtype, "--out", str(out), "--batch-size", str(batch_size), *extra]
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
    ap.add_argument("--job-sizes", help="e.g. 2,6: both runs at each job size, and from the two ends a fixed start-up "
                    "cost (s) and a steady-state per-clip ratio; replaces --videos")
    ap.add_argument("--dtype", default="float32", help="ours in this dtype [float32: what the figures compare]")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    sizes = [int(n) for n in args.job_sizes.split(",")] if args.job_sizes else [args.videos]
    print(f"CPU: {cpu_description()}")
    if gpu_description():
        print(f"GPU: {gpu_description()} (not used: both runs on --device cpu)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = make_tiny_checkpoint(root / "ckpt") if args.tiny else make_checkpoint(root / "ckpt")
        runs = []  # (videos, local s, Ray s, rows agree)
        for n in sizes:
            videos, codec = make_video_folder(root / f"videos-{n}", n, SIZE, FPS, SECONDS)
            print(f"model: {'tiny' if args.tiny else 'ViViT-B/16x2'} (random weights, {args.dtype}); {n} videos "
                  f"{SIZE[0]}x{SIZE[1]} {codec}, 1 clip each; batch size {args.batch_size}")
            local_s = run_cli(videos, folder, root / f"local-{n}.jsonl", args.batch_size, [], args.dtype)
            ray_s = run_cli(videos, folder, root / f"ray-{n}.jsonl", args.batch_size, ["--ray"], args.dtype)
            runs.append((n, local_s, ray_s, same_rows(root / f"local-{n}.jsonl", root / f"ray-{n}.jsonl")))

        classifier = load_model(folder, device="cpu", dtype=args.dtype)
        cfg = classifier.config
        clip = prepare_video(videos / "v000.mp4", cfg.num_frames, classifier.preprocess, Views())
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # as a decode worker has it
        decode_s = best_time(lambda: prepare_video(videos / "v000.mp4", cfg.num_frames, classifier.preprocess,
                                                   Views()), repeats=3)
        torch.set_num_threads(threads)
        classifier.scores(clip.frames)  # warm-up: first-call allocations
        model_s = best_time(lambda: classifier.scores(clip.frames), repeats=2)

    print(f"\n{'videos':>6}  {'':<22}{'seconds':>9}{'clips/s':>9}")
    for n, local_s, ray_s, agree in runs:
        print(f"{n:>6}  {'vivit batch':<22}{local_s:>9.2f}{n / local_s:>9.2f}")
        print(f"{n:>6}  {'vivit batch --ray':<22}{ray_s:>9.2f}{n / ray_s:>9.2f}")
        ratio = ray_s / local_s
        print(f"{n:>6}  Ray / local = {ratio:.2f}: {'meets' if ratio <= TARGET else 'misses'} the {TARGET} target; "
              f"rows {'agree' if agree else 'DIFFER'}")
    figures: dict = {"cpu": cpu_description(), "tiny": args.tiny, "batch_size": args.batch_size,
                     "runs": [{"videos": n, "local_s": a, "ray_s": b, "rows_agree": ok} for n, a, b, ok in runs]}
    if len(runs) >= 2:
        (n1, l1, r1, _), (n2, l2, r2, _) = runs[0], runs[-1]
        local_per, ray_per = (l2 - l1) / (n2 - n1), (r2 - r1) / (n2 - n1)  # seconds per extra clip
        start_up = (r1 - ray_per * n1) - (l1 - local_per * n1)  # Ray's fixed cost beyond the local one
        figures |= {"ray_start_up_s": start_up, "local_s_per_clip": local_per, "ray_s_per_clip": ray_per,
                    "steady_state_ratio": ray_per / local_per}
        print(f"from {n1} and {n2} videos: Ray costs {start_up:.1f} s more at start, then {ray_per:.2f} s per clip "
              f"against {local_per:.2f} s locally ({ray_per / local_per:.2f}x)")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    extra_s = ray_s - local_s
    figures |= {"decode_s_per_clip_1_core": decode_s, "model_s_per_clip": model_s}
    write_json(args.json, figures)
    print(json.dumps({"decode_s_per_clip_1_core": round(decode_s, 3),
                      f"model_s_per_clip_{threads}_threads": round(model_s, 3),
                      "ray_extra_s": round(extra_s, 1)}))
    print(f"On paper, per CPU node like this one: {1 / model_s:.3f} clips/s (the model is the bottleneck; decoding "
          f"needs {decode_s / model_s:.2f} of a core to keep up). N such nodes: about N x that, after Ray's "
          f"start-up ({extra_s:.0f} s more than local here, for {n} clips).")


if __name__ == "__main__":
    main()
