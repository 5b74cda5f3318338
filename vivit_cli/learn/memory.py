"""A --full step's memory, roughly: what `--grad-ckpt auto` decides by, and the line a step that ran out of memory
ends with. Estimates, not promises: the GPU check (benchmarks/gpu_check.py) measures the real peaks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from vivit_cli.errors import DeviceError

if TYPE_CHECKING:
    from vivit_cli.config import VivitConfig

# Bytes a transformer layer keeps for the backward pass per token and hidden unit, in 16-bit (Korthikanti et al.
# 2022, "Reducing Activation Recomputation in Large Transformer Models": 34 sbh, less the attention's N x N scores,
# which the fused attention a GPU runs does not keep). Float32 keeps twice as many bytes.
ACTIVATION_BYTES_16BIT = 34
STATE_BYTES = 12  # per parameter, still to come at the first step: its float32 gradient and AdamW's two moments
GIB = 2**30


def activation_bytes(config: VivitConfig, batch: int, dtype: str) -> int:
    """Roughly what one forward pass of `batch` clips keeps for its backward pass, gradient checkpointing off."""
    t, h, w = config.grid
    tokens = t * h * w + 1  # the tubelets and the CLS token
    scale = 1 if dtype in ("bfloat16", "float16") else 2
    return batch * tokens * config.hidden_size * config.num_hidden_layers * ACTIVATION_BYTES_16BIT * scale


def free_bytes(device: torch.device, model: torch.nn.Module) -> int | None:
    """What a GPU has left for activations once the weights (already on it) have their gradients and AdamW's
    moments; None off a GPU."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free - STATE_BYTES * sum(p.numel() for p in model.parameters() if p.requires_grad)


def wants_grad_ckpt(choice: str, needed: int, free: int | None) -> bool:
    """--grad-ckpt: on or off as asked; auto: on where the device is a GPU (`free` known) that has less free memory
    than the step's activations `needed`."""
    if choice != "auto":
        return choice == "on"
    return free is not None and needed > free


def out_of_memory(device: torch.device, batch: int, grad_ckpt: bool) -> DeviceError:
    """What to try when a training step does not fit: gradient checkpointing first, then a smaller batch."""
    half = max(1, batch // 2)
    if not grad_ckpt:
        return DeviceError(
            f"{device} ran out of memory training on {batch} clips per forward pass: try --grad-ckpt on"
            + (f", or --batch-size {half} --accumulate {batch // half} for the same step" if batch > 1 else "")
        )
    if batch > 1:
        return DeviceError(
            f"{device} ran out of memory training on {batch} clips per forward pass with --grad-ckpt on: try "
            f"--batch-size {half} --accumulate {batch // half} for the same step"
        )
    return DeviceError(f"{device} ran out of memory training on one clip with --grad-ckpt on: try --dtype bfloat16")
