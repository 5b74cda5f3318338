"""Shared by the benchmarks: the machine's description, random checkpoints, timing, FLOPs and the matmul peak."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

VIVIT_B = dict(num_labels=400)  # transformers' VivitConfig defaults are ViViT-B/16x2
TINY = dict(image_size=32, num_frames=4, tubelet_size=(2, 8, 8), hidden_size=24, num_hidden_layers=2,
            num_attention_heads=3, intermediate_size=32)  # a forward pass in milliseconds: checks a harness


def cpu_name_and_flags() -> tuple[str, set[str]]:
    """The CPU's model name and its flags from /proc/cpuinfo (no flags where there is none)."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("unknown CPU", platform.processor()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name, flags


def cpu_native_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (AVX-512 BF16 or AMX); elsewhere torch emulates it, slowly."""
    flags = cpu_name_and_flags()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_description() -> str:
    """The CPU's model name, core count and the vector flags that decide fp32/bf16 speed."""
    name, flags = cpu_name_and_flags()
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    shown = " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"
    bf16 = "native bf16: yes" if cpu_native_bf16() else "native bf16: no"
    return (f"{name} ({os.cpu_count()} cores; {shown}; {bf16}); torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def gpu_description() -> str | None:
    if not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    return f"{p.name} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"


def make_checkpoint(folder: Path, **overrides: object) -> Path:
    """Save a ViViT-B with random weights (transformers' initialisation) in the Hub layout."""
    import transformers

    torch.manual_seed(0)
    config = transformers.VivitConfig(**{**VIVIT_B, **overrides})
    model = transformers.VivitForVideoClassification(config)
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        '{"image_processor_type": "VivitImageProcessor", "do_resize": true, "size": {"shortest_edge": 256},'
        ' "do_center_crop": true, "crop_size": {"height": 224, "width": 224}, "do_rescale": true,'
        ' "rescale_factor": 0.00784313725490196, "offset": true, "do_normalize": true,'
        ' "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2}'
    )
    return folder


def make_our_checkpoint(folder: Path, tiny: bool = False) -> Path:
    """Save a ViViT-B (tiny: two layers at 32 px) with random weights and 400 labels, with our save_pretrained.

    No transformers import: quicker than make_checkpoint, for scripts that compare ours with ours.
    """
    from vivit_cli import PreprocessConfig, VivitConfig, VivitForVideoClassification, save_pretrained

    torch.manual_seed(0)
    config = VivitConfig(**(TINY if tiny else {}), id2label={i: f"label_{i}" for i in range(400)})
    preprocess = PreprocessConfig(shortest_edge=32, crop_hw=(32, 32)) if tiny else PreprocessConfig()
    return save_pretrained(VivitForVideoClassification(config), folder, preprocess)


def make_tiny_checkpoint(folder: Path) -> Path:
    """A two-layer 32 px ViViT with random weights: checks a harness in seconds."""
    return make_our_checkpoint(folder, tiny=True)


def forward_flops(config: Any, batch: int = 1) -> float:
    """Multiply-adds x 2 of one forward pass over the whole token sequence: linear layers and attention.

    Our model computes only the CLS row in the last block, so this slightly overstates its work (by ~1/12 for
    ViViT-B); it is the work a plain implementation does, and the same count for every implementation.
    """
    D, inner, L = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    t, h, w = config.tubelet_size
    size = config.image_size
    height, width = (size, size) if isinstance(size, int) else size
    N = 1 + (config.num_frames // t) * (height // h) * (width // w)
    linear = N * D * (3 * D + D + 2 * inner)  # qkv, output projection, two MLP layers
    attention = 2 * N * N * D  # QK^T and PV over all heads
    embed = (N - 1) * D * config.num_channels * t * h * w
    return 2.0 * batch * (L * (linear + attention) + embed)


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 3,
                sync: Callable[[], None] = lambda: None) -> float:
    """FLOP/s of one large square matrix product in `dtype`: what the machine's matrix units reach here."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    with torch.inference_mode():
        torch.mm(a, b)  # warm-up: library start-up and packing
        return 2.0 * n**3 / best_time(lambda: torch.mm(a, b), repeats, sync)


def write_json(path: Path | str | None, figures: dict[str, Any]) -> None:
    """Every figure of a run, for report.py and for the record; nothing when no path is given."""
    if path:
        Path(path).write_text(json.dumps(figures, indent=1, default=str) + "\n")


def best_time(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """The fastest of `repeats` calls, in seconds (the least disturbed by the rest of the machine)."""
    times = []
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def make_video(path: Path, size: tuple[int, int], fps: int, seconds: int) -> str:
    """A moving test pattern: H.264 through the ffmpeg imageio-ffmpeg bundles, else OpenCV's mp4v; the codec used."""
    try:
        import imageio_ffmpeg

        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc2=size={size[0]}x{size[1]}:rate={fps}:duration={seconds}", "-c:v", "libx264",
             "-pix_fmt", "yuv420p", str(path)],
            check=True,
        )  # fmt: skip
        return "H.264"
    except (ImportError, subprocess.CalledProcessError, FileNotFoundError):
        import cv2
        import numpy as np

        w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        try:
            for i in range(seconds * fps):
                frame = np.full((size[1], size[0], 3), (i * 3) % 256, np.uint8)
                cv2.circle(frame, (i * 5 % size[0], size[1] // 2), 40, (0, 0, 255), -1)
                w.write(frame)
        finally:
            w.release()
        return "MPEG-4 part 2 (mp4v)"


def make_video_folder(folder: Path, count: int, size: tuple[int, int], fps: int, seconds: int) -> tuple[Path, str]:
    """`count` copies of one made video (decoding costs the same for each); returns the folder and codec."""
    folder.mkdir()
    codec = make_video(folder / "v000.mp4", size, fps, seconds)
    for i in range(1, count):
        shutil.copyfile(folder / "v000.mp4", folder / f"v{i:03d}.mp4")
    return folder, codec
