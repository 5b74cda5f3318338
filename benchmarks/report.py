"""Run the benchmarks one after another and print one table of ratios, with the CPU (and GPU) they ran on.

    python benchmarks/report.py [--quick] [--only model,classify,batch,decode,ray,gpu] [--json report.json]

Each row is a ratio measured within one benchmark run (both sides on the same machine, minutes apart at most),
so rows compare across machines where seconds do not. The benchmarks run as subprocesses with their own flags
and write their figures as JSON; their own output goes to stderr (--logs keeps it in files). --quick runs the
same benchmarks with a two-layer 32 px model and small videos: it checks the harness, its ratios mean little.

  model      bench_model.py: ours against transformers (sdpa, eager) in fp32 and, where the CPU has it, bf16;
             ours against the matmul peak measured in the same run (the fraction of the FLOP limit)
  classify   bench_classify.py: `vivit classify` against transformers' video-classification pipeline
  batch      bench_batch.py: the batch loop and the whole `vivit batch` against the model alone on the same clips
  decode     bench_decode.py --resolutions: one clip at 360p, 720p and 1080p against a plain sequential read
  ray        bench_ray.py --job-sizes: Ray against local, as a fixed start-up cost and a per-clip ratio
  gpu        gpu_check.py, only where CUDA is available
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import cpu_description, cpu_native_bf16, gpu_description  # noqa: E402

Row = tuple[str, str, str]  # what, ratio, the figures it comes from

# name -> (script, full flags, quick flags); each also gets --json PATH (gpu_check: --out PATH)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "model": ("bench_model.py", ["--batch-sizes", "1", "--repeats", "2"],
              ["--tiny", "--batch-sizes", "1,2", "--repeats", "3", "--matmul-n", "512"]),
    "classify": ("bench_classify.py", ["--repeats", "1"], ["--tiny", "--repeats", "1", "--seconds", "3"]),
    "batch": ("bench_batch.py", ["--videos", "4", "--batch-size", "4", "--repeats", "1"],
              ["--tiny", "--videos", "4", "--batch-size", "2", "--repeats", "1"]),
    "decode": ("bench_decode.py", ["--resolutions", "360,720,1080", "--seconds", "4", "--repeats", "5"],
               ["--resolutions", "360,720,1080", "--seconds", "3", "--repeats", "2"]),
    "ray": ("bench_ray.py", ["--job-sizes", "2,6", "--batch-size", "8"], ["--tiny", "--job-sizes", "2,4"]),
    "gpu": ("gpu_check.py", [], ["--quick"]),
}  # fmt: skip


def run_benchmark(name: str, quick: bool, folder: Path, logs: Path | None) -> tuple[dict[str, Any] | None, str]:
    """Run one benchmark; its figures (None if it failed) and a line on how it went."""
    script, full, fast = BENCHMARKS[name]
    out = folder / f"{name}.json"
    cmd = [sys.executable, str(HERE / script), *(fast if quick else full),
           *(["--out", str(out)] if name == "gpu" else ["--json", str(out)])]  # fmt: skip
    print(f"[{name}] {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    log = done.stdout + done.stderr
    if logs:
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{name}.log").write_text(log)
    print(log, file=sys.stderr, flush=True)
    if done.returncode != 0 or not out.exists():
        return None, f"{name}: FAILED (exit {done.returncode}) after {elapsed:.0f} s: {_last_line(done.stderr)}"
    return json.loads(out.read_text()), f"{name}: {elapsed:.0f} s"


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def _t(seconds: float) -> str:
    """Seconds as a person reads them: 4.39 s, 12.3 ms, 45 us."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e3:.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"


def _x(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def model_rows(f: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    batch = min(r["batch"] for r in f["rows"])
    per = {(r["dtype"], r["model"]): r for r in f["rows"] if r["batch"] == batch}
    for dtype in ("fp32", "bf16"):
        ours = per.get((dtype, "ours"))
        if ours is None:
            continue
        for impl in ("sdpa", "eager"):
            theirs = per.get((dtype, f"transformers {impl}"))
            if theirs:
                rows.append(
                    (
                        f"model {dtype}, batch {batch}: ours / transformers {impl}",
                        _x(ours["s_per_clip"], theirs["s_per_clip"]),
                        f"{_t(ours['s_per_clip'])} vs {_t(theirs['s_per_clip'])} per clip",
                    )
                )
        peak = f["matmul_peak_flops"][dtype]
        rows.append(
            (
                f"model {dtype}: ours / {dtype} matmul peak (share of FLOP limit)",
                f"{ours['of_matmul_peak']:.0%}",
                f"{f['flops_per_clip'] / ours['s_per_clip'] / 1e9:.0f} of {peak / 1e9:.0f} GFLOP/s",
            )
        )
    if ("bf16", "ours") in per:
        a, b = per[("bf16", "ours")]["s_per_clip"], per[("fp32", "ours")]["s_per_clip"]
        rows.append(("model: ours bf16 / ours fp32 (aim <= 0.62)", _x(a, b), f"{_t(a)} vs {_t(b)} per clip"))
    return rows


def classify_rows(f: dict[str, Any]) -> list[Row]:
    r, fresh, inproc = f["ratios"], f["fresh_s"], f["in_process_s"]
    return [
        ("classify, fresh process: ours / transformers pipeline", f"{r['fresh']:.2f}x",
         f"{_t(fresh['ours'])} vs {_t(fresh['theirs'])}"),
        ("classify, in process, first call (load included)", f"{r['first_call']:.2f}x",
         f"{_t(inproc['ours']['first'])} vs {_t(inproc['theirs']['first'])}"),
        ("classify, in process, warm call", f"{r['warm_call']:.2f}x",
         f"{_t(inproc['ours']['warm'])} vs {_t(inproc['theirs']['warm'])}"),
    ]  # fmt: skip


def batch_rows(f: dict[str, Any]) -> list[Row]:
    what = f"{f['clips']} clips, batch {f['batch_size']}, {f['workers']} worker(s)"
    rows = [
        (
            "batch loop / model only",
            f"{f['loop_over_model']:.2f}x",
            f"{_t(f['batch_loop_s'])} vs {_t(f['model_only_s'])} ({what})",
        )
    ]
    if f.get("cli_s"):
        rows.append(
            (
                "vivit batch, whole command / model only",
                f"{f['cli_over_model']:.2f}x",
                f"{_t(f['cli_s'])} vs {_t(f['model_only_s'])}",
            )
        )
    return rows


def decode_rows(f: dict[str, Any]) -> list[Row]:
    return [(f"decode one clip at {name}: ours / plain sequential read", f"{r['ratio']:.2f}x",
             f"{r['ours_s'] * 1000:.0f} ms vs {r['plain_s'] * 1000:.0f} ms ({r['size'][0]}x{r['size'][1]}, "
             f"{r['frames_read_plain']} frames read plainly)")
            for name, r in f["resolutions"].items()]  # fmt: skip


def ray_rows(f: dict[str, Any]) -> list[Row]:
    sizes = " and ".join(str(r["videos"]) for r in f["runs"])
    agree = all(r["rows_agree"] for r in f["runs"])
    rows = [(f"Ray / local, {r['videos']} videos (whole command)", _x(r["ray_s"], r["local_s"]),
             f"{_t(r['ray_s'])} vs {_t(r['local_s'])}") for r in f["runs"]]  # fmt: skip
    if "ray_start_up_s" in f:
        rows += [
            ("Ray: fixed start-up cost beyond local", f"+{f['ray_start_up_s']:.1f} s", f"fitted on {sizes} videos"),
            ("Ray / local, steady state per clip", f"{f['steady_state_ratio']:.2f}x",
             f"{_t(f['ray_s_per_clip'])} vs {_t(f['local_s_per_clip'])} per clip; rows "
             f"{'agree' if agree else 'DIFFER'}"),
        ]  # fmt: skip
    return rows


def gpu_rows(f: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    speed = f.get("speed") or {}
    best = {}
    for r in speed.get("rows", []):
        if "clips_per_s" in r and r["clips_per_s"] > best.get(r["dtype"], {}).get("clips_per_s", 0):
            best[r["dtype"]] = r
    for dtype, r in best.items():
        rows.append(
            (
                f"GPU model {dtype}, best batch ({r['batch']}): share of bf16 matmul peak",
                f"{r['of_bf16_matmul_peak']:.0%}",
                f"{r['clips_per_s']:.1f} clips/s",
            )
        )
    if "bf16" in best and "fp32" in best:
        rows.append(
            ("GPU model: bf16 / fp32 clips/s", _x(best["bf16"]["clips_per_s"], best["fp32"]["clips_per_s"]), "")
        )
    comp = f.get("compile") or {}
    if "speedup" in comp:
        rows.append(
            (
                f"GPU torch.compile / eager ({comp['dtype']})",
                f"{comp['speedup']:.2f}x",
                f"compile {comp['compile_s']:.0f} s apart",
            )
        )
    for r in (f.get("batch_command") or {}).get("runs", []):
        share = r.get("model_share_of_loop")
        rows.append(
            (
                f"GPU vivit batch, {r['workers']} workers: model share of the loop",
                f"{share:.0%}" if share is not None else "-",
                f"{(r.get('videos_per_s_loop') or 0):.1f} videos/s",
            )
        )
    return rows


ROWS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "model": model_rows, "classify": classify_rows, "batch": batch_rows, "decode": decode_rows, "ray": ray_rows,
    "gpu": gpu_rows,
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny model, small videos: checks the harness")
    ap.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ",".join(BENCHMARKS))
    ap.add_argument("--json", type=Path, help="write every benchmark's figures and the table here")
    ap.add_argument("--logs", type=Path, help="keep each benchmark's output in this folder")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}: choose from {', '.join(BENCHMARKS)}")
    import torch

    if "gpu" in names and not torch.cuda.is_available():
        names.remove("gpu")
    if "ray" in names and not _has("ray"):
        names.remove("ray")
        print("[ray] skipped: ray is not installed (pip install 'vivit-cli[ray]')", file=sys.stderr)
    start = time.perf_counter()
    figures, notes, rows = {}, [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            f, note = run_benchmark(name, args.quick, Path(tmp), args.logs)
            notes.append(note)
            if f is not None:
                figures[name] = f
                try:
                    rows += ROWS[name](f)
                except (KeyError, TypeError, ZeroDivisionError) as e:
                    notes.append(f"{name}: figures incomplete ({type(e).__name__}: {e})")
    elapsed = time.perf_counter() - start
    table = render(rows, notes, args.quick, elapsed)
    print(table)
    if args.json:
        args.json.write_text(json.dumps({"table": table, "figures": figures}, indent=1, default=str) + "\n")
    if any("FAILED" in n for n in notes):
        sys.exit(1)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def render(rows: list[Row], notes: list[str], quick: bool, elapsed: float) -> str:
    lines = [f"vivit performance report, {datetime.now():%Y-%m-%d %H:%M}"
             + (" (--quick: a tiny model checks the harness; the ratios mean little)" if quick else ""),
             f"CPU: {cpu_description()}", f"CPU bf16: {'native' if cpu_native_bf16() else 'not native (fp32 only)'}",
             f"GPU: {gpu_description() or 'none'}", ""]  # fmt: skip
    width = max((len(r[0]) for r in rows), default=10)
    lines.append(f"{'':<{width}}  {'ratio':>8}  figures")
    lines += [f"{what:<{width}}  {ratio:>8}  {detail}" for what, ratio, detail in rows]
    lines += ["", f"runs ({elapsed:.0f} s in all): " + "; ".join(notes)]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
