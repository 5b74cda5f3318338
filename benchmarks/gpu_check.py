"""One prepared command for a machine with a GPU: is vivit right there, how fast is it, and what bounds `vivit batch`.

    python benchmarks/gpu_check.py [--out gpu_check.json] [--budget-s 480]
    python benchmarks/gpu_check.py --quick --device cpu     # the same steps, tiny model, on the CPU (the tests run it)

Steps, in one run, on ViViT-B with random weights (--quick: a two-layer 32 px model and a few small videos):

  machine      GPU name and memory, CUDA and driver versions, CPU and its cores, torch
  correctness  logits on the GPU in fp32 against the CPU in fp32 (max |diff|); bf16 and fp16 against GPU fp32 on
               32 random clips: max |diff| of probabilities and logits, top-1 and top-5 agreement
  speed        clips/s of the model alone at batch 1, 8, 32 and 64 in bf16, fp16 and fp32; peak GPU memory per
               batch size; the SDPA backend each dtype actually ran; the fraction of the matmul peak of the same
               dtype (and of bf16's) measured in this run with a large matrix product
  compile      torch.compile of the model in bf16: compile time apart, then clips/s against eager
  vivit batch  the whole command on 64 generated 720p H.264 videos with 4, 8 and (cores - 1) decode workers:
               videos/s; the model's clips/s alone (uint8 frames in, as the workers hand them over); the feed's
               clips/s alone (the decode pool into batches on the GPU, no model: bench_feed.py); the share of the
               loop's wall time the GPU computes (near 1: the model bounds the run; well below: decoding does);
               and one line naming the bottleneck
  finetune     train --full's step (bf16 autocast, fp32 weights, AdamW) on random clips in memory: clips/s and peak
               GPU memory at batch 1, 4 and 8 with gradient checkpointing off and on, against the activations
               --grad-ckpt auto estimates; then the batch doubled from 8 until it no longer fits, off and on

Every figure goes to the JSON file (--out) besides the printed tables. A step that fails is reported and the
others still run; the exit code is then 1. Steps that would start after --budget-s seconds are skipped and
say so. Without CUDA (and without --device cpu) it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_feed  # noqa: E402
import bench_finetune  # noqa: E402
from common import (  # noqa: E402
    best_time,
    cpu_description,
    forward_flops,
    make_our_checkpoint,
    make_video_folder,
    matmul_peak,
    write_json,
)

from vivit_cli import load_model  # noqa: E402
from vivit_cli.batch import ring  # noqa: E402
from vivit_cli.batch.worker import DecodeSpec  # noqa: E402
from vivit_cli.checkpoint import load_checkpoint, read_preprocess  # noqa: E402
from vivit_cli.errors import DeviceError  # noqa: E402
from vivit_cli.learn.memory import activation_bytes  # noqa: E402
from vivit_cli.video.sampling import Views  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CLI_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
SDPA_OPS = {  # aten op -> the backend's name
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU kernel)",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
    "aten::_scaled_dot_product_fused_attention_overrideable": "overrideable",
}


class Settings:
    """What a full run and a --quick run do: the same steps, at different sizes."""

    def __init__(self, quick: bool, device: torch.device) -> None:
        gpu = device.type == "cuda"
        self.quick = quick
        self.batch_sizes = (1, 2) if quick else (1, 8, 32, 64)
        self.check_clips = 4 if quick else 32  # low-precision dtypes against fp32
        self.cpu_ref_clips = 2  # the CPU reference is slow for ViViT-B: a few clips
        self.matmul_n = 512 if quick else (8192 if gpu else 2048)
        self.min_timed_s = 0.05 if quick else 1.0  # per speed figure, after a warm-up call
        self.compile_batch = 2 if quick else 32
        self.videos = 3 if quick else 64
        self.video_size = (320, 240) if quick else (1280, 720)
        self.video_seconds = 1 if quick else 4
        self.cli_batch = 2 if quick else 32
        cores = _cores()
        self.workers = sorted({1, 2} if quick else {4, 8, max(1, cores - 1)})
        self.finetune_batches = (1, 4, 8)
        self.finetune_steps = 1 if quick else 3  # timed, after a warm-up step
        self.finetune_max_batch = 256 if gpu else 0  # the search for the largest batch stops there; none on a CPU


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Run:
    """The figures gathered so far, the steps' errors, and the time left."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.figures: dict[str, Any] = {}
        self.errors: dict[str, str] = {}

    def step(self, name: str, fn: Callable[[], Any]) -> None:
        """Run one step into figures[name]; a failure is kept as an error and the run goes on."""
        left = self.budget_s - (time.monotonic() - self.start)
        if left <= 0:
            self.figures[name] = {"skipped": f"time budget of {self.budget_s:.0f} s spent"}
            print(f"\n[{name}] skipped: the time budget of {self.budget_s:.0f} s is spent", flush=True)
            return
        t = time.monotonic()
        try:
            self.figures[name] = fn()
        except Exception as e:  # one broken step must not cost the others' figures
            self.errors[name] = f"{type(e).__name__}: {e}"
            print(f"\n[{name}] FAILED: {self.errors[name]}\n{traceback.format_exc()}", flush=True)
        print(f"[{name}] {time.monotonic() - t:.1f} s", flush=True)


def machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_description(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": _cores(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info |= {
            "gpu": p.name,
            "gpu_memory_gib": round(p.total_memory / 2**30, 1),
            "compute_capability": f"{p.major}.{p.minor}",
            "cuda_runtime": torch.version.cuda,
            "driver": _driver_version(),
            "bf16_supported": torch.cuda.is_bf16_supported(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        }
    print(f"CPU: {info['cpu']}")
    if device.type == "cuda":
        print(
            f"GPU: {info['gpu']} ({info['gpu_memory_gib']} GiB, compute {info['compute_capability']}), "
            f"CUDA {info['cuda_runtime']}, driver {info['driver']}, bf16 {'yes' if info['bf16_supported'] else 'no'}"
        )
    return info


def _driver_version() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def random_clips(clf: Any, n: int, seed: int) -> torch.Tensor:
    """n clips of the model's input shape, like preprocessed frames ([-1, 1] scale), on the CPU in fp32."""
    gen = torch.Generator().manual_seed(seed)
    h, w = clf.config.image_hw
    return torch.randn(n, clf.config.num_frames, 3, h, w, generator=gen)  # (n, T, C, H, W)


def logits(clf: Any, x: torch.Tensor, batch: int) -> torch.Tensor:
    """The model's logits for x, `batch` clips at a time, as fp32 on the CPU."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(clf.model(x[i : i + batch].to(clf.device, clf.dtype)).logits.float().cpu())
    return torch.cat(out)


def correctness(folder: Path, device: torch.device, s: Settings) -> dict[str, Any]:
    ref = load_model(folder, device=device, dtype="float32")
    x = random_clips(ref, s.check_clips, seed=1)
    ref_logits = logits(ref, x, batch=8)  # (n, L)
    ref_probs = ref_logits.softmax(-1)
    top2 = ref_logits.topk(2, dim=-1).values
    out: dict[str, Any] = {
        "clips": s.check_clips,
        "fp32_median_top1_margin": round((top2[:, 0] - top2[:, 1]).median().item(), 6),
    }
    cpu = load_model(folder, device="cpu", dtype="float32")
    n = s.cpu_ref_clips
    out["fp32_vs_cpu_fp32"] = {
        "clips": n,
        "max_abs_logit_diff": (logits(cpu, x[:n], 1) - ref_logits[:n]).abs().max().item(),
    }
    del cpu
    ref_top5 = ref_logits.topk(5, dim=-1).indices
    for name in ("bf16", "fp16"):
        clf = load_model(folder, device=device, dtype=CLI_DTYPES[name])
        lg = logits(clf, x, batch=8)
        top5 = lg.topk(5, dim=-1).indices
        out[f"{name}_vs_fp32"] = {
            "max_abs_prob_diff": (lg.softmax(-1) - ref_probs).abs().max().item(),
            "max_abs_logit_diff": (lg - ref_logits).abs().max().item(),
            "top1_agreement": (top5[:, 0] == ref_top5[:, 0]).float().mean().item(),
            "top5_same_set": sum(set(a.tolist()) == set(b.tolist()) for a, b in zip(top5, ref_top5, strict=True))
            / len(x),
            "top5_mean_overlap": sum(
                len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top5, ref_top5, strict=True)
            )
            / (5 * len(x)),
        }
        del clf
    _free(device)
    print(
        f"\ncorrectness ({s.check_clips} random clips; fp32 median top-1 logit margin "
        f"{out['fp32_median_top1_margin']:.4f}: random weights make near-ties)"
    )
    print(
        f"  {device} fp32 vs CPU fp32: max |logit diff| {out['fp32_vs_cpu_fp32']['max_abs_logit_diff']:.2e} ({n} clips)"
    )
    for name in ("bf16", "fp16"):
        r = out[f"{name}_vs_fp32"]
        print(
            f"  {name} vs {device} fp32: max |prob diff| {r['max_abs_prob_diff']:.2e}, max |logit diff| "
            f"{r['max_abs_logit_diff']:.3f}, top-1 agree {r['top1_agreement']:.0%}, top-5 same set "
            f"{r['top5_same_set']:.0%} (mean overlap {r['top5_mean_overlap']:.0%})"
        )
    return out


def _sync(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def sdpa_backend(model: torch.nn.Module, x: torch.Tensor) -> str:
    """Which scaled_dot_product_attention kernel one forward pass actually ran, from the aten ops it dispatched."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        seen: set[str] = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.seen.add(f"aten::{func.overloadpacket.__name__}")
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), Ops() as ops:
        model(x)
    found = [label for op, label in SDPA_OPS.items() if op in ops.seen]
    if not found and "aten::_softmax" in ops.seen:
        found = ["math (matmul, softmax, matmul)"]
    return ", ".join(found) or "none seen"


def throughput(fn: Callable[[], object], batch: int, min_s: float, sync: Callable[[], None]) -> float:
    """Clips/s over as many calls as fill min_s (at least 3), after two warm-up calls (kernels chosen, pools grown)."""
    fn()
    sync()
    t = time.perf_counter()
    fn()
    sync()
    calls = max(3, math.ceil(min_s / max(time.perf_counter() - t, 1e-6)))
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return calls * batch / (time.perf_counter() - t)


def _flops(x: float) -> str:
    return f"{x / 1e12:.1f} TFLOP/s" if x >= 1e12 else f"{x / 1e9:.0f} GFLOP/s"


def speed(folder: Path, device: torch.device, s: Settings) -> dict[str, Any]:
    sync = _sync(device)
    peaks = {name: matmul_peak(device, dt, s.matmul_n, sync=sync) for name, dt in DTYPES.items()}
    rows: list[dict[str, Any]] = []
    backends = {}
    for name, dt in DTYPES.items():
        clf = load_model(folder, device=device, dtype=CLI_DTYPES[name])
        flops = forward_flops(clf.config)
        backends[name] = sdpa_backend(clf.model, random_clips(clf, 1, 0).to(device, dt))
        for batch in s.batch_sizes:
            row: dict[str, Any] = {"dtype": name, "batch": batch}
            x = random_clips(clf, batch, seed=batch).to(device, dt)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            try:
                with torch.inference_mode():
                    cps = throughput(lambda m=clf.model, x=x: m(x), batch, s.min_timed_s, sync)
            except torch.cuda.OutOfMemoryError:
                row["error"] = "out of memory"
                rows.append(row)
                del x
                _free(device)
                break  # larger batches will not fit either
            row |= {
                "clips_per_s": cps,
                "ms_per_clip": 1000 / cps,
                "of_dtype_matmul_peak": cps * flops / peaks[name],
                "of_bf16_matmul_peak": cps * flops / peaks["bf16"],
            }
            if device.type == "cuda":
                row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            rows.append(row)
            del x
        del clf
        _free(device)
    print(
        f"\nspeed: the model alone, random clips already on {device}; matmul peak measured with {s.matmul_n}^3: "
        + ", ".join(f"{n} {_flops(p)}" for n, p in peaks.items())
    )
    print(
        f"{'dtype':<6}{'batch':>6}{'clips/s':>10}{'ms/clip':>9}{'of own peak':>13}{'of bf16 peak':>14}{'peak mem':>10}"
    )
    for r in rows:
        if "error" in r:
            print(f"{r['dtype']:<6}{r['batch']:>6}  {r['error']}")
            continue
        mem = f"{r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else "n/a"
        print(
            f"{r['dtype']:<6}{r['batch']:>6}{r['clips_per_s']:>10.2f}{r['ms_per_clip']:>9.2f}"
            f"{r['of_dtype_matmul_peak']:>12.1%}{r['of_bf16_matmul_peak']:>13.1%}{mem:>11}"
        )
    print("SDPA backend run: " + "; ".join(f"{n}: {b}" for n, b in backends.items()))
    return {"matmul_peak_flops": peaks, "flops_per_clip": flops, "rows": rows, "sdpa_backend": backends}


def compiled(folder: Path, device: torch.device, s: Settings, backend: str) -> dict[str, Any]:
    """torch.compile of the bf16 model: the first call's time (compiling) apart from the steady clips/s."""
    sync = _sync(device)
    dtype = "bf16" if device.type == "cuda" else "fp32"  # bf16 on a CPU without it would measure emulation
    clf = load_model(folder, device=device, dtype=CLI_DTYPES[dtype])
    x = random_clips(clf, s.compile_batch, seed=3).to(device, DTYPES[dtype])
    with torch.inference_mode():
        eager_cps = throughput(lambda: clf.model(x), s.compile_batch, s.min_timed_s, sync)
        eager_logits = clf.model(x).logits.float()
        model = torch.compile(clf.model, backend=backend)
        t = time.perf_counter()
        compiled_logits = model(x).logits.float()
        sync()
        compile_s = time.perf_counter() - t
        compiled_cps = throughput(lambda: model(x), s.compile_batch, s.min_timed_s, sync)
    out = {
        "backend": backend,
        "dtype": dtype,
        "batch": s.compile_batch,
        "compile_s": compile_s,
        "eager_clips_per_s": eager_cps,
        "compiled_clips_per_s": compiled_cps,
        "speedup": compiled_cps / eager_cps,
        "max_abs_logit_diff": (compiled_logits - eager_logits).abs().max().item(),
    }
    print(
        f"\ntorch.compile (backend {backend}, {dtype}, batch {s.compile_batch}): compiling took {compile_s:.1f} s; "
        "then "
        f"{compiled_cps:.2f} clips/s against eager {eager_cps:.2f} ({out['speedup']:.2f}x; logits within "
        f"{out['max_abs_logit_diff']:.1e})"
    )
    return out


SUMMARY = re.compile(r"(\d+) ok, (\d+) failed.*?; (\d+) videos in ([\d.]+) s")


def scores_seconds(folder: Path, device: torch.device, dtype: str, clips: int, batch: int) -> float:
    """Seconds Classifier.scores takes over `clips` random clips, `batch` at a time: the model's share of a run."""
    clf = load_model(folder, device=device, dtype=CLI_DTYPES[dtype])
    h, w = clf.config.image_hw
    gen = torch.Generator().manual_seed(4)
    # uint8 frames on the CPU, as the decode workers hand them over: the copy and the normalising are timed
    x = torch.randint(0, 256, (clips, clf.config.num_frames, h, w, 3), dtype=torch.uint8, generator=gen)
    sync = _sync(device)

    def model_only() -> None:
        for i in range(0, len(x), batch):
            clf.scores(x[i : i + batch])  # copy in, forward, softmax, copy out: what the batch loop calls

    model_only()  # warm-up
    return best_time(model_only, 1, sync)


def batch_command(folder: Path, root: Path, device: torch.device, s: Settings) -> dict[str, Any]:
    """The whole `vivit batch` in a fresh process, against the model alone on as many clips at the same batch size."""
    dtype = "bf16" if device.type == "cuda" else "fp32"
    videos, codec = make_video_folder(root / "videos", s.videos, s.video_size, 30, s.video_seconds)
    model_s = scores_seconds(folder, device, dtype, s.videos, s.cli_batch)
    _free(device)
    paths = sorted(str(p) for p in videos.iterdir())
    spec = DecodeSpec(load_model(folder, device="cpu").config.num_frames, read_preprocess(folder), Views())
    runs = []
    for workers in s.workers:
        fed = bench_feed.feed("uint8 ring" if ring.available() else "uint8 pipe", paths, spec, workers, device)
        out = root / f"rows-{workers}.jsonl"
        cmd = [
            sys.executable,
            "-m",
            "vivit_cli",
            "batch",
            str(videos),
            "--model",
            str(folder),
            "--device",
            str(device),
            "--dtype",
            CLI_DTYPES[dtype],
            "--batch-size",
            str(s.cli_batch),
            "--workers",
            str(workers),
            "--out",
            str(out),
        ]
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        wall_s = time.perf_counter() - t
        if done.returncode != 0:
            raise RuntimeError(f"vivit batch --workers {workers} exited {done.returncode}: {done.stderr[-2000:]}")
        rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
        ok = sum(r.get("status") == "ok" for r in rows)
        if ok != s.videos:
            raise RuntimeError(f"vivit batch --workers {workers}: {ok} ok rows of {s.videos}")
        m = SUMMARY.search(done.stderr)
        loop_s = float(m.group(4)) if m else None  # from the model loaded to the last row
        runs.append(
            {
                "workers": workers,
                "wall_s": wall_s,
                "loop_s": loop_s,
                "videos_per_s_loop": s.videos / loop_s if loop_s else None,
                "videos_per_s_wall": s.videos / wall_s,
                "model_share_of_loop": model_s / loop_s if loop_s else None,
                "start_up_s": wall_s - loop_s if loop_s else None,
                "feed_clips_per_s": fed["clips_per_s"],
                "feed_vs_decode": fed["feed_vs_decode"],
                "feed_main_ms_per_view": fed["handover_ms_per_view"],
            }
        )
    print(
        f"\nvivit batch: {s.videos} videos {s.video_size[0]}x{s.video_size[1]} {codec}, {s.video_seconds} s "
        f"at 30 fps, 1 clip each; {dtype}, batch size {s.cli_batch}; the model alone on {s.videos} clips: "
        f"{model_s:.2f} s ({s.videos / model_s:.1f} clips/s)"
    )
    print(f"{'workers':>8}{'wall s':>9}{'loop s':>9}{'videos/s':>10}{'feed clips/s':>14}{'GPU busy':>10}  bound by")
    for r in runs:
        share = r["model_share_of_loop"]
        bound = "?" if share is None else ("the model" if share >= 0.8 else "decoding" if share < 0.5 else "both")
        loop = f"{r['loop_s']:.2f}" if r["loop_s"] else "?"
        print(
            f"{r['workers']:>8}{r['wall_s']:>9.2f}{loop:>9}{(r['videos_per_s_loop'] or 0):>10.2f}"
            f"{r['feed_clips_per_s']:>14.1f}{(share or 0):>9.0%}  {bound}"
        )
    print("  (loop: the command's own summary, model load and worker start excluded; wall: the whole process;")
    print("   feed: the decode pool into batches on the device with no model, bench_feed.py; GPU busy: the model")
    print("   alone on as many clips over the loop's time)")
    best = max(runs, key=lambda r: r["feed_clips_per_s"])
    model_rate = s.videos / model_s
    fed, most = best["feed_clips_per_s"], best["workers"]
    bottleneck = (
        f"decoding: {most} workers feed {fed:.1f} clips/s, the model takes {model_rate:.1f}" if fed < model_rate
        else f"the model: {model_rate:.1f} clips/s, the feed gives {fed:.1f} with {most} workers"
    )
    print(f"bottleneck: {bottleneck}")
    return {
        "videos": s.videos,
        "size": s.video_size,
        "codec": codec,
        "dtype": dtype,
        "batch_size": s.cli_batch,
        "model_only_s": model_s,
        "model_clips_per_s": s.videos / model_s,
        "bottleneck": bottleneck,
        "runs": runs,
    }


def finetune_rate(folder: Path, device: torch.device, batch: int, grad_ckpt: bool, steps: int) -> dict[str, Any]:
    """One train --full configuration: clips/s over `steps` optimiser steps after a warm-up one, and the peak memory;
    {"error": "out of memory"} where it does not fit."""
    sync = _sync(device)
    model = load_checkpoint(folder, device, torch.float32).model.train()
    model.gradient_checkpointing_enable(grad_ckpt)
    preprocess = read_preprocess(folder)
    row: dict[str, Any] = {"batch": batch, "grad_ckpt": grad_ckpt}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = micros = None
    try:
        t = bench_finetune.trainer(model, preprocess, device, batch, steps + 1, "bfloat16", grad_ckpt)
        micros = bench_finetune.random_micros(model, batch, steps + 1, seed=batch)
        t.train_epoch(iter(micros[:1]), lambda: 0.0)  # warm-up: kernels chosen, AdamW's moments made
        sync()
        started = time.perf_counter()
        t.train_epoch(iter(micros[1:]), lambda: 0.0)
        sync()
        row["clips_per_s"] = steps * batch / (time.perf_counter() - started)
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    except (torch.OutOfMemoryError, DeviceError):  # DeviceError: the Trainer's own line for an out-of-memory step
        row["error"] = "out of memory"
    row["estimated_activations_gib"] = activation_bytes(model.config, batch, "bfloat16") / 2**30
    del model, t, micros  # before the cache is emptied: the next configuration starts from an empty GPU
    _free(device)
    return row


def finetune(folder: Path, device: torch.device, s: Settings) -> dict[str, Any]:
    """train --full's step at batch 1, 4 and 8 with gradient checkpointing off and on, then the largest batch."""
    rows = [
        finetune_rate(folder, device, batch, on, s.finetune_steps)
        for on in (False, True)
        for batch in s.finetune_batches
    ]
    largest: dict[str, int | None] = {}
    for on in (False, True):
        batch = max((r["batch"] for r in rows if r["grad_ckpt"] == on and "error" not in r), default=0)
        if batch == max(s.finetune_batches):  # every batch tried fits: double it until one does not
            while 2 * batch <= s.finetune_max_batch:
                rows.append(finetune_rate(folder, device, 2 * batch, on, 1))
                if "error" in rows[-1]:
                    break
                batch *= 2
        largest["on" if on else "off"] = batch if device.type == "cuda" else None
    print("\nfinetune: train --full's step on random clips in memory, bf16 autocast, fp32 weights, AdamW")
    print(f"{'batch':>6}{'grad ckpt':>10}{'clips/s':>10}{'peak mem':>11}{'estimated':>11}")
    for r in sorted(rows, key=lambda r: (r["grad_ckpt"], r["batch"])):
        on = "on" if r["grad_ckpt"] else "off"
        if "error" in r:
            print(f"{r['batch']:>6}{on:>10}  {r['error']}")
            continue
        mem = f"{r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else "n/a"
        print(f"{r['batch']:>6}{on:>10}{r['clips_per_s']:>10.2f}{mem:>11}{r['estimated_activations_gib']:>7.2f} GiB")
    if device.type == "cuda":
        print(f"largest batch that fits (doubled from 8, up to {s.finetune_max_batch}): "
              f"{largest['off']} without gradient checkpointing, {largest['on']} with it")  # fmt: skip
    return {"rows": rows, "largest_batch": largest, "dtype": "bf16"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to run the steps on the CPU")
    ap.add_argument("--quick", action="store_true", help="a tiny model and a few small videos: checks the script")
    ap.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="where every figure goes (JSON)")
    ap.add_argument(
        "--compile-backend",
        help="torch.compile's backend [default: inductor; --quick: aot_eager, which skips code generation]",
    )
    ap.add_argument("--budget-s", type=float, default=480.0, help="steps that would start later are skipped")
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA here (torch {torch.__version__}, built for CUDA {torch.version.cuda}): nothing "
            "measured; --device cpu runs the steps on the CPU"
        )
        return 0
    warnings.filterwarnings("ignore", message="float16 on a CPU")  # --device cpu measures fp16 there on purpose
    s = Settings(args.quick, device)
    run = Run(args.budget_s)
    run.figures["settings"] = {k: v for k, v in vars(s).items()} | {"device": str(device)}
    run.step("machine", lambda: machine(device))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = make_our_checkpoint(root / "ckpt", tiny=args.quick)
        print(f"model: {'tiny (2 layers, 32 px)' if args.quick else 'ViViT-B/16x2'}, random weights, 400 labels")
        run.step("correctness", lambda: correctness(folder, device, s))
        run.step("speed", lambda: speed(folder, device, s))
        backend = args.compile_backend or ("aot_eager" if args.quick else "inductor")
        run.step("compile", lambda: compiled(folder, device, s, backend))
        run.step("batch_command", lambda: batch_command(folder, root, device, s))
        run.step("finetune", lambda: finetune(folder, device, s))
    run.figures["errors"] = run.errors
    run.figures["elapsed_s"] = time.monotonic() - run.start
    write_json(args.out, run.figures)
    print(
        f"\n{run.figures['elapsed_s']:.0f} s in all; every figure in {args.out}"
        + (f"; FAILED steps: {', '.join(run.errors)}" if run.errors else "")
    )
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
