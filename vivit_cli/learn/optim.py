"""How `vivit train --full` moves the weights: AdamW over parameter groups whose learning rate decays layer by layer
down the backbone (the layers nearest the pixels change least), no weight decay on biases, norms and tokens, and a
linear warm-up then a cosine decay to zero, stepped once per optimiser step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from vivit_cli.model import VivitForVideoClassification

BETAS = (0.9, 0.999)  # AdamW's, as in ViT and VideoMAE fine-tuning
EPS = 1e-8
NO_DECAY = ("cls_token", "position_embeddings")  # learned tokens: decayed towards zero they would lose their meaning


@dataclass(frozen=True)
class Schedule:
    """Warm-up over `warmup_steps` optimiser steps, then a cosine from the peak to zero at `total_steps`."""

    total_steps: int
    warmup_steps: int

    def factor(self, step: int) -> float:
        """The share of the peak learning rate at optimiser step `step` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps  # never 0: the first step already moves
        left = max(self.total_steps - self.warmup_steps, 1)
        done = min(step - self.warmup_steps, left) / left
        return 0.5 * (1.0 + math.cos(math.pi * done))


def layer_of(name: str, layers: int) -> int:
    """Depth of a parameter: 0 the embeddings, 1..layers the blocks, layers + 1 the final norm and the head."""
    parts = name.split(".")
    if "embeddings" in parts:
        return 0
    if "blocks" in parts:
        return int(parts[parts.index("blocks") + 1]) + 1
    return layers + 1


def param_groups(model: VivitForVideoClassification, lr: float, weight_decay: float, decay: float) -> list[dict]:
    """One group per (depth, decayed or not): the head at `lr`, each layer below at `decay` times the one above."""
    layers = len(model.vivit.blocks)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = layer_of(name, layers)
        decayed = p.dim() > 1 and not name.endswith(NO_DECAY)
        group = groups.setdefault(
            (depth, decayed),
            {"params": [], "lr": lr * decay ** (layers + 1 - depth), "weight_decay": weight_decay if decayed else 0.0},
        )
        group["params"].append(p)
    return [groups[k] for k in sorted(groups)]  # a stable order: the optimiser's state is saved by position


def optimiser(
    model: VivitForVideoClassification, lr: float, weight_decay: float, decay: float, schedule: Schedule
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over param_groups, and its scheduler (call .step() after each optimiser step)."""
    import torch

    groups = param_groups(model, lr, weight_decay, decay)
    # foreach: one kernel per group rather than per tensor; the same numbers
    opt = torch.optim.AdamW(groups, lr=lr, betas=BETAS, eps=EPS, foreach=True)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule.factor)
