"""Shared by the benchmarks: the machine's description and a full-size random ViViT-B checkpoint."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

VIVIT_B = dict(num_labels=400)  # transformers' VivitConfig defaults are ViViT-B/16x2


def cpu_description() -> str:
    """The CPU's model name, core count and the vector flags that decide fp32/bf16 speed."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name in ("unknown CPU", platform.processor()):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"]
    shown = " ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"
    return f"{name} ({os.cpu_count()} cores; {shown}); torch {torch.__version__}, {torch.get_num_threads()} threads"


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
