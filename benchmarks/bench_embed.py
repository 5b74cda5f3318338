"""`vivit embed` against `vivit batch` on the same folder and views: do embeddings cost more than labels?

    python benchmarks/bench_embed.py [--videos 8] [--clips 1] [--repeats 2] [--dtype float32] [--tiny] [--json PATH]

Makes its own videos (320x240, 30 fps) and a full-size ViViT-B with random weights (--tiny: a two-layer model at
32 px, to check the harness in seconds), then times the two whole commands in fresh processes, alternated, each
run's best kept (start-up, model load, decode workers and writing included). Both write Parquet. The target is
embed / batch <= 1.05.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_description, make_checkpoint, make_tiny_checkpoint, make_video_folder, write_json  # noqa: E402

TARGET = 1.05  # embed / batch
SIZE, FPS, SECONDS = (320, 240), 30, 4  # each video: 120 frames, enough for a 32-frame clip at stride 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--clips", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the best is kept")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--tiny", action="store_true", help="a two-layer 32 px model: checks the harness in seconds")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        videos, codec = make_video_folder(root / "videos", args.videos, SIZE, FPS, SECONDS)
        folder = make_tiny_checkpoint(root / "ckpt") if args.tiny else make_checkpoint(root / "ckpt")
        print(f"model: {'tiny' if args.tiny else 'ViViT-B'}, {args.dtype}; {args.videos} videos {SIZE[0]}x{SIZE[1]} "
              f"{codec}, {args.clips} clip(s) each; whole commands, best of {args.repeats}\n")
        common = [str(videos), "--model", str(folder), "--device", "cpu", "--dtype", args.dtype, "--clips",
                  str(args.clips)]

        def timed(command: str) -> float:
            cmd = [sys.executable, "-m", "vivit_cli", "-q", command, *common, "--out", str(root / f"{command}.parquet")]
            t = time.perf_counter()
            subprocess.run(cmd, check=True)
            return time.perf_counter() - t

        best = {"batch": float("inf"), "embed": float("inf")}
        for _ in range(args.repeats):
            for command in best:
                best[command] = min(best[command], timed(command))
    ratio = best["embed"] / best["batch"]
    print(f"{'':<13}{'seconds':>9}{'videos/s':>10}")
    for command, s in best.items():
        print(f"vivit {command:<7}{s:>9.2f}{args.videos / s:>10.2f}")
    print(f"\nembed / batch = {ratio:.3f}: {'meets' if ratio <= TARGET else 'misses'} the {TARGET} target")
    write_json(args.json, {"cpu": cpu_description(), "tiny": args.tiny, "videos": args.videos, "clips": args.clips,
                           "dtype": args.dtype, "batch_s": best["batch"], "embed_s": best["embed"],
                           "embed_over_batch": ratio})


if __name__ == "__main__":
    main()
