"""`vivit train --full`'s training step against the model's forward and backward alone, and gradient checkpointing's
cost, on the CPU.

    python benchmarks/bench_finetune.py [--steps 3] [--workers N] [--threads N] [--no-base] [--tiny] [--json PATH]

Makes its own videos (320x240, 30 fps) and models with random weights: a small config (6 layers of 384, 16 frames at
112 px) at batch 8 and ViViT-B at batch 1 (--no-base skips it: one step costs tens of seconds per clip here; --tiny:
a two-layer 32 px model at batch 2 instead of both, to check the harness). Per model, in this process:

  step         a whole optimiser step as train --full runs it: clips decoded by the decode pool's workers (learn.feed)
               while the model trains, normalised on the device, forward, backward, AdamW; seconds per step
  fwd+bwd      the model's forward, loss and backward alone on the same batch, already normalised in memory
  step/fwd+bwd the target is <= 1.1: the workers hide the decoding and the optimiser costs little

Then gradient checkpointing per batch size, off and on: seconds per step (random clips in memory, no decoding) and
the peak memory, each in a fresh process: on a GPU torch.cuda.max_memory_allocated, on a CPU the process's peak
resident set over the steps (VmHWM, reset before them) less its resident set before them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TINY, cpu_description, make_video, write_json  # noqa: E402

STEP_TARGET = 1.1  # a training step / the model's forward and backward alone
SIZE, FPS, SECONDS = (320, 240), 30, 2  # each video: 60 frames, enough for a 16-frame clip at stride 2
STRIDE = 2
SMALL = dict(image_size=112, num_frames=16, tubelet_size=(2, 16, 16), hidden_size=384, num_hidden_layers=6,
             num_attention_heads=6, intermediate_size=1536)  # fmt: skip
CONFIGS = {"tiny": (TINY, 2), "small": (SMALL, 8), "ViViT-B": ({}, 1)}  # name -> (config, batch of the step)
CKPT_BATCHES = {"tiny": (2,), "small": (1, 4, 8), "ViViT-B": (1,)}
LABELS = 4


def build(name: str, device: torch.device, grad_ckpt: bool = False) -> tuple[Any, Any]:
    """A model of CONFIGS[name] with random weights, in training mode on `device`, and its preprocessing."""
    from vivit_cli import PreprocessConfig, VivitConfig, VivitForVideoClassification

    torch.manual_seed(0)
    config = VivitConfig(**CONFIGS[name][0], id2label={i: f"label_{i}" for i in range(LABELS)})
    side = config.image_hw[0]
    with torch.device(device):
        model = VivitForVideoClassification(config)
    model.gradient_checkpointing_enable(grad_ckpt)
    return model.train(), PreprocessConfig(shortest_edge=side, crop_hw=(side, side))


def trainer(
    model: Any, preprocess: Any, device: torch.device, batch: int, steps: int, dtype: str, grad_ckpt: bool
) -> Any:
    """A Trainer as train --full makes it: one epoch of `steps` optimiser steps of `batch` clips."""
    from vivit_cli.learn.feed import Plan
    from vivit_cli.learn.finetune import Settings, Trainer

    settings = Settings(1, batch, 1, 1e-4, 0.05, 0.0, 0, False, grad_ckpt, dtype)
    return Trainer(model, preprocess, device, settings, Plan(batch * steps, batch))


def random_micros(model: Any, batch: int, steps: int, seed: int = 0) -> list[Any]:
    """`steps` micro-batches of random uint8 clips (b, T, S, S, 3), each a whole optimiser step."""
    from vivit_cli.learn.feed import Micro

    g = torch.Generator().manual_seed(seed)
    c = model.config
    side = c.image_hw[0]
    return [
        Micro(torch.randint(0, 256, (batch, c.num_frames, side, side, 3), generator=g, dtype=torch.uint8),
              torch.randint(0, LABELS, (batch,), generator=g), batch, True)
        for _ in range(steps)
    ]  # fmt: skip


def forward_backward(t: Any, frames: torch.Tensor, labels: torch.Tensor, repeats: int) -> float:
    """Seconds of the model's forward, loss and backward alone on inputs already normalised, best of `repeats`."""
    x = t.inputs(frames)  # (b, T, 3, S, S) float32, outside the timing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        with t.autocast():
            logits = t.model(x).logits
        F.cross_entropy(logits.float(), labels.to(t.device)).backward()
        _sync(t.device)
        best = min(best, time.perf_counter() - started)
        t.model.zero_grad(set_to_none=True)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fed_steps(name: str, videos: list[str], steps: int, workers: int) -> dict[str, Any]:
    """A train --full epoch of `steps` steps from the decode pool, and fwd+bwd alone on its first batch."""
    from vivit_cli.batch.pool import DecodePool
    from vivit_cli.learn import clips
    from vivit_cli.learn.feed import Feed

    device = torch.device("cpu")
    model, preprocess = build(name, device)
    batch = CONFIGS[name][1]
    t = trainer(model, preprocess, device, batch, steps, "float32", False)
    spec = clips.ClipSpec(model.config.num_frames, STRIDE, preprocess.crop_hw, 0, 0, False)
    labelled = [(path, i % LABELS) for i, path in enumerate(videos[: batch * steps])]
    with DecodePool(workers, 600, decode=clips.decode) as pool:
        feed = Feed(pool, labelled, t.plan, lambda epoch: spec, 0)
        warm_up = feed.epoch(1)  # an epoch before the timed one: the workers started, the allocator grown
        first = next(warm_up)
        fwd_bwd = forward_backward(t, first.frames, first.labels, 1 if name == "ViViT-B" else 2)
        for _ in warm_up:  # the rest of it, so that the pool's round ends
            pass
        figures = t.train_epoch(feed.epoch(0), lambda: feed.waited_s)
    step = figures.seconds / steps
    return {"batch": batch, "steps": steps, "step_s": step, "fwd_bwd_s": fwd_bwd, "ratio": step / fwd_bwd,
            "waited_share": figures.waited_s / figures.seconds, "workers": workers}  # fmt: skip


def ckpt_child(name: str, batch: int, grad_ckpt: bool, steps: int, device: str = "cpu") -> dict[str, Any]:
    """In a fresh process: seconds per step on random clips, and the step's peak memory."""
    dev = torch.device(device)
    model, preprocess = build(name, dev, grad_ckpt)
    t = trainer(model, preprocess, dev, batch, steps, "float32", grad_ckpt)
    micros = random_micros(model, batch, steps + (name != "ViViT-B"))
    before = _reset_peak()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    if name != "ViViT-B":
        t.train_epoch(iter(micros[:1]), lambda: 0.0)  # a warm-up step
    figures = t.train_epoch(iter(micros[-steps:]), lambda: 0.0)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else _peak() - before
    return {"batch": batch, "grad_ckpt": grad_ckpt, "step_s": figures.seconds / steps, "peak_mib": peak / 2**20}


def _reset_peak() -> int:
    """Reset this process's peak resident set to the present one (Linux's clear_refs 5), and return it in bytes.
    Not ru_maxrss: Linux keeps that across exec, so a fresh process would report its parent's peak."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _peak() -> int:
    return _status("VmHWM")


def _status(field: str) -> int:
    """A field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def ckpt_rows(name: str, steps: int) -> list[dict[str, Any]]:
    rows = []
    for batch in CKPT_BATCHES[name]:
        for on in (False, True):
            args = [sys.executable, __file__, "--child", json.dumps([name, batch, on, steps])]
            done = subprocess.run(args, capture_output=True, text=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3, help="optimiser steps timed per model (ViViT-B: 1)")
    ap.add_argument("--workers", type=int, default=None, help="decode processes [default: train's on a CPU]")
    ap.add_argument("--no-base", action="store_true", help="skip ViViT-B (tens of seconds per step here)")
    ap.add_argument("--tiny", action="store_true", help="a two-layer 32 px model only: checks the harness")
    ap.add_argument("--threads", type=int, help="torch threads of the model [default: torch's, one per core]; "
                    "cores - workers leaves the decode workers cores of their own")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(ckpt_child(*json.loads(args.child))))
        return
    from vivit_cli.batch.plan import default_workers

    names = ["tiny"] if args.tiny else ["small"] + ([] if args.no_base else ["ViViT-B"])
    workers = args.workers or default_workers("cpu")
    print(f"CPU: {cpu_description()}; torch threads {torch.get_num_threads()}; {workers} decode worker(s)")
    out: dict[str, Any] = {"cpu": cpu_description(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "v0.mp4"
        make_video(first, SIZE, FPS, SECONDS)
        videos = [str(first)]
        for i in range(1, max(CONFIGS[n][1] for n in names) * args.steps):
            videos.append(str(Path(tmp) / f"v{i}.mp4"))
            Path(videos[-1]).write_bytes(first.read_bytes())
        for name in names:
            steps = 1 if name == "ViViT-B" else args.steps
            fed = fed_steps(name, videos, steps, workers)
            verdict = "meets" if fed["ratio"] <= STEP_TARGET else "misses"
            print(f"\n{name}, batch {fed['batch']}, fp32: step {fed['step_s']:.3f} s, fwd+bwd alone "
                  f"{fed['fwd_bwd_s']:.3f} s: {fed['ratio']:.2f}x ({verdict} the {STEP_TARGET} target); waiting for "
                  f"clips {fed['waited_share']:.0%} of the step")  # fmt: skip
            rows = ckpt_rows(name, steps)
            print(f"{'batch':>6}{'grad ckpt':>10}{'s/step':>9}{'peak MiB':>10}")
            for r in rows:
                print(
                    f"{r['batch']:>6}{'on' if r['grad_ckpt'] else 'off':>10}{r['step_s']:>9.3f}{r['peak_mib']:>10.0f}"
                )
            out["models"][name] = {"step": fed, "grad_ckpt": rows}
    print("\npeak: the peak resident set of a fresh process over the steps (VmHWM) less its resident set before them")
    write_json(args.json, out)


if __name__ == "__main__":
    main()
