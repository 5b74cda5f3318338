"""Where a --full run starts: the base model's backbone in float32 (master weights) with the head today's `train`
fits on the frozen features (linear probe, then fine-tune: the pretrained features are kept better than under a
random head), in training mode on the run's device."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vivit_cli.checkpoint import PICKLE_FILE, SAFETENSORS_FILE, SAFETENSORS_INDEX, load_checkpoint
from vivit_cli.errors import CheckpointError
from vivit_cli.model import VivitForVideoClassification

if TYPE_CHECKING:
    from vivit_cli.learn.head import Head

POOLER = "pooler."  # a bare VivitModel's pooler: the classification model has none


def check_weights(folder: Path, model: str) -> None:
    """A CheckpointError (exit 3) for a model folder with nothing to fine-tune, before any video is decoded."""
    if not any((folder / name).is_file() for name in (SAFETENSORS_FILE, SAFETENSORS_INDEX, PICKLE_FILE)):
        raise CheckpointError(
            f"{model} has no weights to fine-tune (no {SAFETENSORS_FILE} or {PICKLE_FILE} in {folder}): --full "
            "starts from a trained backbone; give --model a checkpoint with weights"
        )


def build(folder: Path, labels: Sequence[str], head: Head | None, device: torch.device) -> VivitForVideoClassification:
    """The base model's backbone with a classifier for `labels`: `head`'s weights (the linear probe), or left as
    initialised where a resumed run's state will replace them (head None)."""
    base = load_checkpoint(folder, device, torch.float32).model
    backbone = base.vivit if isinstance(base, VivitForVideoClassification) else base
    config = dataclasses.replace(
        base.config, id2label=dict(enumerate(labels)), problem_type="single_label_classification"
    )
    with torch.device(device):
        model = VivitForVideoClassification(config)
    state = {k: v for k, v in backbone.state_dict().items() if not k.startswith(POOLER)}
    model.vivit.load_state_dict(state, strict=True)
    if head is not None:
        with torch.no_grad():
            model.classifier.weight.copy_(torch.from_numpy(head.weight))  # (L, D)
            model.classifier.bias.copy_(torch.from_numpy(head.bias))  # (L,)
    return model.train()
