"""Tiny random ViViT checkpoints written by transformers, for parity and loading tests (no network)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

TINY = dict(  # a few hundred parameters per layer: each forward pass takes milliseconds
    image_size=16,
    num_frames=4,
    tubelet_size=[2, 8, 8],
    hidden_size=24,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=32,
    num_labels=5,
)
WEIGHT_STD = 0.3  # large enough that activations are far from zero, small enough that they stay finite


def hf():
    """transformers, quiet: no progress bars, no warnings about untrained heads."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def hf_config(**overrides: Any):
    """A transformers VivitConfig: TINY with overrides, eager attention so it can return probabilities."""
    return hf().VivitConfig(**{**TINY, **overrides}, attn_implementation="eager")


@torch.no_grad()
def randomize(model: torch.nn.Module, seed: int = 0, std: float = WEIGHT_STD) -> torch.nn.Module:
    """Every parameter random and non-trivial (LayerNorm weights around one), deterministically."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        noise = torch.randn(p.shape, generator=gen) * std
        layer_norm_weight = name.endswith("weight") and p.dim() == 1  # only LayerNorms have 1-D weights
        p.copy_(1.0 + noise if layer_norm_weight else noise)
    return model.eval()


def write_hf(model: torch.nn.Module, folder: Path, fmt: str = "safetensors") -> Path:
    """transformers' save_pretrained; fmt="bin" turns its weights into pytorch_model.bin instead."""
    from safetensors.torch import load_file

    model.save_pretrained(folder)
    if fmt == "bin":
        weights = folder / "model.safetensors"
        torch.save(load_file(weights), folder / "pytorch_model.bin")
        weights.unlink()
    return folder


def make_hf(base: bool = False, pooler: bool = True, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """A random transformers VivitForVideoClassification (or VivitModel when base) in eval mode."""
    t = hf()
    config = hf_config(**overrides)
    model = t.VivitModel(config, add_pooling_layer=pooler) if base else t.VivitForVideoClassification(config)
    return randomize(model, seed)


def video(
    config: Any, batch: int = 2, seed: int = 1, frames: int | None = None, size: tuple[int, int] | None = None
) -> torch.Tensor:
    """Random pixel values (B, T, C, H, W) for a config (ours or transformers'), or another frame count/size."""
    hw = config.image_size if isinstance(config.image_size, (list, tuple)) else (config.image_size,) * 2
    h, w = size or hw
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames or config.num_frames, config.num_channels, h, w, generator=gen)


def write_ours(folder: Path, labels: list[str] | None = None, seed: int = 0, **overrides: Any) -> Path:
    """A random checkpoint of our own model, saved without transformers: TINY at 32 px, preprocessing to match."""
    from vivit_cli.checkpoint import save_pretrained
    from vivit_cli.model import VivitConfig, VivitForVideoClassification
    from vivit_cli.video.preprocess import PreprocessConfig

    settings = {**TINY, "image_size": 32, **overrides}
    settings["tubelet_size"] = tuple(settings["tubelet_size"])
    num_labels = settings.pop("num_labels")
    names = labels or [f"label {i}" for i in range(num_labels)]
    config = VivitConfig(**settings, id2label=dict(enumerate(names)))
    size = config.image_hw[0]
    return save_pretrained(
        randomize(VivitForVideoClassification(config), seed),
        folder,
        PreprocessConfig(shortest_edge=size, crop_hw=(size, size)),
    )
