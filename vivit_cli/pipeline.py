"""One pipeline for every command: model string -> Classifier; video -> views -> tensors -> scores -> results."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from vivit_cli import DEFAULT_MODEL, hub
from vivit_cli.checkpoint import load_checkpoint
from vivit_cli.errors import DeviceError, VivitError
from vivit_cli.model import VivitConfig, VivitForVideoClassification, VivitModel
from vivit_cli.results import ModelInfo, Prediction, VideoResult, View
from vivit_cli.video import decode as video
from vivit_cli.video.decode import CROP_NAMES, Clip, VideoInfo, Views
from vivit_cli.video.preprocess import PreprocessConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None or "auto": the first GPU when there is one, else the CPU; a named GPU must exist."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but CUDA is not available on this machine")
        if (dev.index or 0) >= torch.cuda.device_count():
            raise DeviceError(f"no GPU {dev.index}: this machine has {torch.cuda.device_count()}")
    elif dev.type not in ("cpu", "mps"):
        raise DeviceError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return dev


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (AVX-512 BF16 or AMX); elsewhere bf16 is emulated, slowly."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None or "auto": fp32 on a CPU, bf16 on a GPU that has it (else fp16), as whisper picks."""
    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise DeviceError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
        dtype = DTYPES[dtype]
    if device.type == "cpu" and dtype == torch.bfloat16 and not cpu_has_native_bf16():
        warnings.warn("this CPU has no native bf16: bfloat16 runs about 4x slower than float32 here", stacklevel=2)
    elif device.type == "cpu" and dtype == torch.float16:
        warnings.warn("float16 on a CPU is slow and less precise; float32 is the CPU default", stacklevel=2)
    return dtype


@dataclass(frozen=True)
class PreparedVideo:
    """A video read and preprocessed: every view as one batch, ready for the model."""

    source: str
    pixel_values: torch.Tensor  # (V, T, C, S, S) float32
    views: tuple[View, ...]
    duration_s: float
    num_frames: int
    fps: float


def crop_label(where: str, height: int, width: int) -> str:
    """Name a crop as the user sees it: left/right on landscape frames, top/bottom on portrait ones."""
    if where == "center":
        return "center"
    landscape = width >= height
    return {("start", True): "left", ("end", True): "right", ("start", False): "top", ("end", False): "bottom"}[
        (where, landscape)
    ]


def prepare_video(path: str | Path, num_frames: int, preprocess: PreprocessConfig, views: Views) -> PreparedVideo:
    """Decode the frames all views need once, then preprocess each view: CPU only, no model."""
    info, clips = video.sample_clips(str(path), views.sampling(num_frames))
    return preprocess_clips(path, info, clips, preprocess, views)


def preprocess_clips(
    path: str | Path, info: VideoInfo, clips: list[Clip], preprocess: PreprocessConfig, views: Views
) -> PreparedVideo:
    """A video's decoded clips (video.sample_clips) -> each clip's crops preprocessed into one batch."""
    tensors, described = [], []
    for clip in clips:
        for where in CROP_NAMES[views.crops]:
            tensors.append(preprocess(clip.frames, crop=where))  # (T, C, S, S)
            described.append(View(clip.index, crop_label(where, info.height, info.width), clip.frame_indices,
                                  clip.timestamps_s))
    return PreparedVideo(str(path), torch.stack(tensors), tuple(described), info.duration_s, info.frame_count,
                         info.fps)


class Classifier:
    """A loaded checkpoint on a device: preprocessing, the model, labels and where they came from."""

    def __init__(
        self,
        model: VivitForVideoClassification | VivitModel,
        config: VivitConfig,
        preprocess: PreprocessConfig,
        source: hub.LocalModel,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model, self.config, self.preprocess = model, config, preprocess
        self.source, self.device, self.dtype = source, device, dtype

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    @cached_property
    def info(self) -> ModelInfo:
        return ModelInfo(self.source.model_id, self.source.revision)

    def scores(self, pixel_values: torch.Tensor) -> np.ndarray:
        """(B, T, C, S, S) -> class probabilities (B, num_labels), float32 numpy."""
        if not isinstance(self.model, VivitForVideoClassification) or self.config.num_labels == 0:
            raise VivitError(f"{self.source.model_id} has no classification head (it is a bare VivitModel)")
        with torch.inference_mode():
            x = pixel_values.to(self.device, self.dtype, non_blocking=True)
            logits = self.model(x).logits.float()  # (B, L)
            return logits.softmax(dim=-1).cpu().numpy()

    def top_k(self, probs: np.ndarray, k: int) -> tuple[Prediction, ...]:
        """probs (L,) -> the k best predictions, best first (ties broken by class id)."""
        order = np.argsort(-probs, kind="stable")[: max(1, min(k, len(probs)))]
        return tuple(Prediction(self.labels[i], float(probs[i]), int(i)) for i in order)

    def result(self, prepared: PreparedVideo, view_probs: np.ndarray, k: int) -> VideoResult:
        """Average the views' probabilities (the ViViT / MMAction2 test protocol) into one result."""
        return VideoResult(
            source=prepared.source,
            predictions=self.top_k(view_probs.mean(axis=0), k),
            model=self.info,
            views=prepared.views,
            duration_s=prepared.duration_s,
            num_frames=prepared.num_frames,
            fps=prepared.fps,
        )

    def classify(self, path: str | Path, views: Views | None = None, k: int = 5) -> VideoResult:
        """One video, all its views (default: one centred clip) in one batch."""
        views = views or Views()
        info, clips = video.sample_clips(str(path), views.sampling(self.config.num_frames))
        return self.classify_clips(path, info, clips, views, k)

    def classify_clips(self, path: str | Path, info: VideoInfo, clips: list[Clip], views: Views, k: int = 5
                       ) -> VideoResult:
        """classify() for a video already decoded by video.sample_clips (video.ClipsAhead, in another thread)."""
        prepared = preprocess_clips(path, info, clips, self.preprocess, views)
        return self.result(prepared, self.scores(prepared.pixel_values), k)


def load_model(
    name_or_path: str | Path = DEFAULT_MODEL,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> Classifier:
    """A Hub repo id (org/name[@revision]) or a checkpoint folder -> a Classifier on device, in eval mode."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    local = hub.fetch(hub.parse_model(str(name_or_path)))
    ckpt = load_checkpoint(local.folder, dev, dt)
    return Classifier(ckpt.model, ckpt.config, ckpt.preprocess, local, dev, dt)
