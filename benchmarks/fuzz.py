"""Damaged videos through `vivit batch` and `vivit classify`: does every file get its row, and no run die silently?

    python benchmarks/fuzz.py [--count 300] [--seed 13] [--timeout 20] [--workers 2] [--json PATH]

Makes --count damaged copies (tests/fuzz.py: truncated, bit-flipped, chunks swapped, index zeroed) of an H.264
mp4 and an MJPEG avi, half of each, and a two-layer 32 px ViViT with random weights (the model is not what is
tested). Then runs each command once over all of them, in a fresh process, and prints per command: files tried,
rows written (batch: rows in the file; classify: JSON objects on stdout), files that failed, crashes isolated
(a decoder that took its worker down), hangs (stopped by --timeout), whether the run ended with a message and
an exit code of ours (0 or 4), and its wall time.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))
from common import cpu_description, make_tiny_checkpoint, write_json  # noqa: E402

from tests import fuzz  # noqa: E402

CRASHED = "the decoder crashed"
HUNG = "(--timeout)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=300, help="damaged files (half H.264 mp4, half MJPEG avi)")
    parser.add_argument("--seed", type=int, default=fuzz.SEED)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one file may take to decode")
    parser.add_argument("--workers", type=int, default=2, help="vivit batch --workers")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    print(cpu_description())
    with tempfile.TemporaryDirectory(prefix="vivit-fuzz-") as tmp:
        folder = Path(tmp)
        files = fuzz.variants(folder / "videos", args.count, args.seed)
        checkpoint = make_tiny_checkpoint(folder / "ckpt")
        paths = [str(p) for p in files]
        common = ["--model", str(checkpoint), "--timeout", f"{args.timeout:g}"]
        out = folder / "rows.jsonl"
        figures = {
            "count": args.count,
            "seed": args.seed,
            "batch": run(["batch", *paths, *common, "--workers", str(args.workers), "--out", str(out)], paths, out),
            "classify": run(["classify", *paths, *common, "--json"], paths, None),
        }
    for command in ("batch", "classify"):
        f = figures[command]
        print(
            f"{command:8s} files tried {f['files']}, rows written {f['rows']} ({f['ok']} ok, {f['failed']} failed), "
            f"crashes isolated {f['crashes']}, hangs {f['hangs']}, exit {f['exit']} "
            f"({'ours' if f['clean'] else 'NOT OURS'}), {f['wall_s']:.1f} s"
        )
    if args.json:
        write_json(args.json, figures)
    if not all(figures[c]["clean"] and figures[c]["rows"] == args.count for c in ("batch", "classify")):
        sys.exit(1)


def run(vivit_args: list[str], paths: list[str], out: Path | None) -> dict:
    """One command over every file, in a fresh process; what came back."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vivit_cli", "-q", *vivit_args], capture_output=True, text=True, env=env, check=False
    )
    wall_s = time.perf_counter() - started
    text = out.read_text() if out is not None and out.exists() else done.stdout
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    errors = [r["error"] for r in rows if r["status"] == "error"]
    named = {line.removeprefix("Error: ") for line in done.stderr.splitlines() if line.startswith("Error: ")}
    return {
        "files": len(paths),
        "rows": len(rows),
        "ok": len(rows) - len(errors),
        "failed": len(errors),
        "crashes": sum(CRASHED in e for e in errors),
        "hangs": sum(HUNG in e for e in errors),
        "exit": done.returncode,
        # Ours: exit 0 or 4, every file answered once, and (classify) every failure named on stderr.
        "clean": done.returncode in (0, 4)
        and sorted(r["path"] for r in rows) == sorted(paths)
        and (out is not None or all(e in named for e in errors)),
        "wall_s": wall_s,
    }


if __name__ == "__main__":
    main()
