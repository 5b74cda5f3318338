"""Frames -> model input, following a checkpoint's preprocessor_config.json as VivitImageProcessor does.

torch is imported when frames are first preprocessed: reading the settings stays torch-free (the driver of a Ray
job reads them, and never runs the model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vivit_cli.errors import ConfigError

if TYPE_CHECKING:
    import torch

# PIL's resample codes, as preprocessor_config.json stores them, mapped to torch's modes. torch's bilinear and
# bicubic with antialias=True follow PIL's filters on downscales (within a grey level); plain bilinear
# (OpenCV's INTER_LINEAR too) does not antialias and is up to 100 grey levels off. PIL's box (4), lanczos (1)
# and hamming (5) have no torch equivalent (torch's "area" is not box: up to 30 grey levels off), so are refused.
RESAMPLE_MODES = {0: "nearest-exact", 2: "bilinear", 3: "bicubic"}
CROPS = ("center", "start", "end")  # where along the long side a crop sits (left/top, right/bottom)


@dataclass(frozen=True)
class PreprocessConfig:
    """VivitImageProcessor's settings; defaults are transformers' when a checkpoint has no file."""

    do_resize: bool = True
    shortest_edge: int | None = 256  # resize so the short side is this long ...
    resize_hw: tuple[int, int] | None = None  # ... or to exactly (height, width)
    resample: int = 2  # PIL code: bilinear
    do_center_crop: bool = True
    crop_hw: tuple[int, int] = (224, 224)
    do_rescale: bool = True
    rescale_factor: float = 1 / 127.5
    offset: bool = True  # x * factor - 1: with 1/127.5, [-1, 1]
    do_normalize: bool = True
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if self.resample not in RESAMPLE_MODES:
            raise ConfigError(f"preprocessor resample={self.resample} is not supported (use 0, 2 or 3)")
        if self.offset and not self.do_rescale:
            raise ConfigError("preprocessor offset=true needs do_rescale=true")
        if self.do_resize and self.shortest_edge is None and self.resize_hw is None:
            raise ConfigError("preprocessor size needs shortest_edge or height and width")
        size = self.resize_hw if self.shortest_edge is None else (self.shortest_edge,)
        if any(s <= 0 for s in (*(size or ()), *self.crop_hw)):
            raise ConfigError(f"preprocessor sizes must be positive, got size {size} and crop_size {self.crop_hw}")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> PreprocessConfig:
        """Read a preprocessor_config.json dict (sizes as transformers writes them: dicts or ints)."""
        try:
            kw: dict[str, Any] = {}
            for name in ("do_resize", "do_center_crop", "do_rescale", "offset", "do_normalize"):
                if name in raw:
                    kw[name] = bool(raw[name])
            if "resample" in raw:
                kw["resample"] = int(raw["resample"])
            if "rescale_factor" in raw:
                kw["rescale_factor"] = float(raw["rescale_factor"])
            for name in ("image_mean", "image_std"):
                if name in raw:
                    v = raw[name]
                    kw[name] = tuple(float(x) for x in (v if isinstance(v, (list, tuple)) else [v] * 3))
            size = raw.get("size")
            if isinstance(size, int):
                kw["shortest_edge"] = size
            elif isinstance(size, Mapping):
                if "shortest_edge" in size:
                    kw["shortest_edge"] = int(size["shortest_edge"])
                elif "height" in size and "width" in size:
                    kw["shortest_edge"], kw["resize_hw"] = None, (int(size["height"]), int(size["width"]))
                else:
                    raise ValueError(f"size {dict(size)} has neither shortest_edge nor height and width")
            elif size is not None:
                raise ValueError(f"size {size!r} is neither a number nor a mapping")
            crop = raw.get("crop_size")
            if isinstance(crop, int):
                kw["crop_hw"] = (crop, crop)
            elif isinstance(crop, Mapping):
                kw["crop_hw"] = (int(crop["height"]), int(crop["width"]))
            elif crop is not None:
                raise ValueError(f"crop_size {crop!r} is neither a number nor a mapping")
        except (TypeError, ValueError, KeyError) as e:
            raise ConfigError(f"invalid preprocessor_config.json: {e}") from None
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The preprocessor_config.json that transformers' VivitImageProcessor reads."""
        size = (
            {"shortest_edge": self.shortest_edge}
            if self.resize_hw is None
            else {"height": self.resize_hw[0], "width": self.resize_hw[1]}
        )
        return {
            "image_processor_type": "VivitImageProcessor",
            "do_resize": self.do_resize,
            "size": size,
            "resample": self.resample,
            "do_center_crop": self.do_center_crop,
            "crop_size": {"height": self.crop_hw[0], "width": self.crop_hw[1]},
            "do_rescale": self.do_rescale,
            "rescale_factor": self.rescale_factor,
            "offset": self.offset,
            "do_normalize": self.do_normalize,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
        }

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        """Size of a (height, width) frame after resize and crop."""
        if self.do_resize:
            height, width = self.resized_hw(height, width)
        return self.crop_hw if self.do_center_crop else (height, width)

    def resized_hw(self, height: int, width: int) -> tuple[int, int]:
        if self.resize_hw is not None:
            return self.resize_hw
        s = self.shortest_edge
        assert s is not None
        # transformers truncates the long side: int(s * long / short)
        return (s, int(s * width / height)) if height <= width else (int(s * height / width), s)

    def __call__(self, frames: np.ndarray | torch.Tensor, crop: str = "center") -> torch.Tensor:
        """(T, H, W, C) uint8 RGB -> (T, C, S, S) float32; crop: "center", "start" or "end" along the long side."""
        return self.normalise(self.crop(frames, crop))

    def crop(self, frames: np.ndarray | torch.Tensor, where: str = "center") -> torch.Tensor:
        """(T, H, W, C) uint8 RGB -> (T, S, S, C) uint8, resized and cropped: what a decode worker hands over."""
        import torch

        if where not in CROPS:
            raise ValueError(f"crop must be one of {CROPS}, got {where!r}")
        x = torch.as_tensor(frames)
        if x.dim() != 4:
            raise ValueError(f"frames must be (T, H, W, C), got shape {tuple(x.shape)}")
        # channels-last memory lets torch's uint8 antialiased resize take its fast path
        x = x.permute(0, 3, 1, 2)  # (T, C, H, W), a channels-last view
        if self.do_resize:
            x = self._resize(x)
        if self.do_center_crop:
            x = crop_frames(x, self.crop_hw, where)  # (T, C, S, S)
        return x.permute(0, 2, 3, 1)  # (T, S, S, C), a view

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., H, W, C) uint8 -> (..., C, H, W) float32 on the frames' device: rescale, offset, mean and std."""
        import torch

        x = frames.movedim(-1, -3)  # (..., C, H, W), a view
        # One copy into contiguous float, then rescale and normalise folded into one multiply-add per channel:
        # ((x * f - o) - m) / s == x * (f / s) - (o + m) / s, equal to the step-by-step values within float rounding.
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device).copy_(x)  # (..., C, H, W)
        f, o = (self.rescale_factor, 1.0 if self.offset else 0.0) if self.do_rescale else (1.0, 0.0)
        channels = x.shape[-3]
        mean = torch.tensor(self.image_mean if self.do_normalize else (0.0,) * channels).view(-1, 1, 1)
        std = torch.tensor(self.image_std if self.do_normalize else (1.0,) * channels).view(-1, 1, 1)
        scale, shift = (f / std).to(x.device), ((o + mean) / std).to(x.device)  # (C, 1, 1) each
        return out.mul_(scale).sub_(shift)  # (..., C, H, W)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        size = self.resized_hw(x.shape[-2], x.shape[-1])
        if size == tuple(x.shape[-2:]):
            return x
        mode = RESAMPLE_MODES[self.resample]
        antialias = mode in ("bilinear", "bicubic")
        if x.dtype == torch.uint8 and mode != "bilinear":
            # only bilinear has a uint8 kernel; PIL also rounds back to uint8 after resizing
            y = F.interpolate(x.float(), size=size, mode=mode, antialias=antialias)
            return y.round_().clamp_(0, 255).to(torch.uint8)
        return F.interpolate(x, size=size, mode=mode, antialias=antialias)


def crop_frames(x: torch.Tensor, crop_hw: tuple[int, int], where: str = "center") -> torch.Tensor:
    """Crop (T, C, H, W) to crop_hw; `where` places it along the long side; pads with zeros if too small."""
    import torch.nn.functional as F

    ch, cw = crop_hw
    h, w = x.shape[-2:]
    if h < ch or w < cw:  # as transformers does: zero-pad, centred, up to the crop size
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        x = F.pad(x, ((pw + 1) // 2, pw // 2, (ph + 1) // 2, ph // 2))
        h, w = x.shape[-2:]
    top, left = (h - ch) // 2, (w - cw) // 2
    if where != "center":
        if w - cw >= h - ch:  # landscape: move along the width
            left = 0 if where == "start" else w - cw
        else:
            top = 0 if where == "start" else h - ch
    return x[..., top : top + ch, left : left + cw]
