"""The GPU check cannot rot while no GPU is at hand: its quick run goes through every step on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GPU_CHECK = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"
STEPS = ("machine", "correctness", "speed", "compile", "batch_command")


def test_gpu_check_without_cuda_says_so_in_one_line() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run([sys.executable, str(GPU_CHECK)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1 and "no CUDA" in done.stdout


def test_gpu_check_quick_on_the_cpu_measures_every_step(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--quick", "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert not figures["errors"], figures["errors"]
    assert all(figures[step] for step in STEPS), [s for s in STEPS if not figures[s]]
    assert figures["correctness"]["bf16_vs_fp32"] and figures["speed"]["rows"]
