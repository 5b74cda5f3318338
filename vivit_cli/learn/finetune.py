"""`vivit train --full`'s loop: the whole network trained on one random clip per video each epoch (learn.feed), in
mixed precision where the dtype asks for it (master weights stay fp32), gradients accumulated over micro-batches
and averaged over the processes of a distributed run; validated each epoch as classify scores a video."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from vivit_cli.learn.memory import out_of_memory
from vivit_cli.learn.optim import Schedule, optimiser
from vivit_cli.pipeline import to_device

if TYPE_CHECKING:
    from vivit_cli.learn.feed import Micro, Plan
    from vivit_cli.model import VivitForVideoClassification
    from vivit_cli.video.preprocess import PreprocessConfig

LABEL_SMOOTHING = 0.1  # of the training loss: a softer target keeps a few hundred videos from being memorised
LAYER_DECAY = 0.75  # each layer's learning rate is this times the one above's (BEiT, VideoMAE fine-tuning)


@dataclass(frozen=True)
class Settings:
    """Every choice of a --full run that changes its weights (training.json keeps them)."""

    epochs: int
    batch_size: int  # clips per forward pass on each process
    accumulate: int  # forward passes per optimiser step
    lr: float  # the head's peak learning rate; the layers below get less (layer_decay)
    weight_decay: float
    warmup: float  # epochs of linear warm-up
    seed: int
    flip: bool
    grad_ckpt: bool
    dtype: str  # what the model computes in: float32, bfloat16 or float16 (weights stay float32)
    layer_decay: float = LAYER_DECAY
    label_smoothing: float = LABEL_SMOOTHING


@dataclass(frozen=True)
class EpochFigures:
    loss: float  # mean training loss per clip (label-smoothed cross-entropy)
    accuracy: float  # of the training clips, as they were seen while the weights moved
    clips: int
    seconds: float
    waited_s: float  # of `seconds`, waiting for a clip from the decode workers


def autocast_dtype(dtype: str) -> torch.dtype | None:
    """The autocast dtype for a --dtype's name; None for float32 (no autocast)."""
    return None if dtype == "float32" else getattr(torch, dtype)


class Trainer:
    """The model, its optimiser and scheduler, and the step: what a resumed run restores (learn.resume)."""

    def __init__(
        self,
        model: VivitForVideoClassification,
        preprocess: PreprocessConfig,
        device: torch.device,
        settings: Settings,
        plan: Plan,
        distributed: bool = False,
    ) -> None:
        self.model, self.preprocess, self.device, self.settings, self.plan = model, preprocess, device, settings, plan
        self.amp = autocast_dtype(settings.dtype)
        model.gradient_checkpointing_enable(settings.grad_ckpt)
        per_epoch = plan.steps_per_epoch
        schedule = Schedule(settings.epochs * per_epoch, max(1, round(settings.warmup * per_epoch)))
        s = settings
        self.optimiser, self.scheduler = optimiser(model, s.lr, s.weight_decay, s.layer_decay, schedule)
        # fp16's range is narrow: the loss is scaled up so that small gradients survive, and steps with inf skipped
        self.scaler = torch.amp.GradScaler(device.type) if self.amp == torch.float16 else None
        self.net: torch.nn.Module = model
        if distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.step = 0  # optimiser steps taken

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 clips (b, T, S, S, 3) -> the model's input (b, T, 3, S, S) float32, normalised on its device."""
        return to_device(frames, self.preprocess, self.device)

    def train_epoch(self, micros: Iterator[Micro], waited: Callable[[], float]) -> EpochFigures:
        """One pass over `micros`; figures over every process."""
        self.model.train()
        started = time.perf_counter()
        totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, clips
        world = self.plan.world
        try:
            for micro in micros:
                self._pass(micro, totals)
        except torch.OutOfMemoryError:  # a GPU's allocator: one line naming what should fit
            raise out_of_memory(self.device, self.settings.batch_size, self.settings.grad_ckpt) from None
        if world > 1:
            import torch.distributed as dist

            dist.all_reduce(totals)
        loss_sum, correct, clips = totals.tolist()
        return EpochFigures(
            loss_sum / max(clips, 1), correct / max(clips, 1), int(clips), time.perf_counter() - started, waited()
        )

    def _pass(self, micro: Micro, totals: torch.Tensor) -> None:
        """One micro-batch forward and backward (the optimiser steps after a step's last); its loss sum, correct
        count and clips added to `totals`."""
        world = self.plan.world
        sync = micro.last or world == 1
        with contextlib.nullcontext() if sync else self.net.no_sync():  # type: ignore[operator]
            if len(micro.labels) or world > 1:  # every process joins each step's gradient exchange
                labels = micro.labels.to(self.device)
                with self.autocast():
                    logits = self.net(self.inputs(micro.frames)).logits  # (b, L)
                losses = F.cross_entropy(
                    logits.float(), labels, label_smoothing=self.settings.label_smoothing, reduction="none"
                )  # (b,)
                # Divided by the clips of the whole step on every process, times the processes (their gradients
                # are averaged): the step's gradient is the mean over its clips, however they were split.
                loss = losses.sum() * (world / micro.step_clips)
                (self.scaler.scale(loss) if self.scaler else loss).backward()
                correct = (logits.argmax(-1) == labels).sum()
                totals += torch.stack([losses.detach().sum().double().cpu(), correct.double().cpu(),
                                       torch.tensor(float(len(labels)), dtype=torch.float64)])  # fmt: skip
        if micro.last:
            self._step()

    def _step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimiser)
            self.scaler.update()
        else:
            self.optimiser.step()
        self.optimiser.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    @property
    def lr(self) -> float:
        """The head's learning rate now."""
        return max(g["lr"] for g in self.optimiser.param_groups)
