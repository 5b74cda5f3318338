"""Training clips for `vivit train --full`, decoded by the decode pool's workers while the model trains: each epoch
the videos in a seeded order, cut into optimiser steps of micro-batches; each process of a distributed run takes
its share of every micro-batch. Clips come out in the planned order whatever order the workers finish them in, so
that a run, a resumed run and a distributed run see the same batches; never more than a few batches are held."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vivit_cli.batch.pool import DONE, DecodePool

if TYPE_CHECKING:
    import torch

    from vivit_cli.learn.clips import ClipSpec

AHEAD_BATCHES = 2  # micro-batches decoded ahead of the one training, so that the next is ready when it is wanted


@dataclass(frozen=True)
class Plan:
    """How an epoch's videos become optimiser steps: `batch` clips per forward pass on each of `world` processes,
    `accumulate` forward passes per step."""

    videos: int
    batch: int
    world: int = 1
    accumulate: int = 1

    def steps(self, seed: int, epoch: int) -> list[list[list[int]]]:
        """Per optimiser step, its micro-batches of video indices (every process's). A last micro-batch is trimmed
        to a whole number of clips per process, so that each has the same share."""
        order = list(range(self.videos))
        random.Random(f"{seed}:{epoch}").shuffle(order)
        size = self.batch * self.world
        micros = [order[i : i + size] for i in range(0, len(order), size)]
        if micros and len(micros[-1]) % self.world:
            micros[-1] = micros[-1][: len(micros[-1]) // self.world * self.world]
        micros = [m for m in micros if m]
        return [micros[i : i + self.accumulate] for i in range(0, len(micros), self.accumulate)]

    @property
    def steps_per_epoch(self) -> int:
        return len(self.steps(0, 0))  # the count does not depend on the order

    @property
    def clips_per_epoch(self) -> int:
        return sum(len(m) for step in self.steps(0, 0) for m in step)


@dataclass(frozen=True, eq=False)
class Micro:
    """One forward pass's clips on this process."""

    frames: torch.Tensor  # (b, T, S, S, 3) uint8; b may be 0 where every clip failed to decode
    labels: torch.Tensor  # (b,) int64
    step_clips: int  # clips of the whole optimiser step, over every process: the loss is divided by it
    last: bool  # the step's last micro-batch: the optimiser steps after it


class Feed:
    """An epoch's micro-batches for process `rank` of `world`, decoded in `pool` with the body of learn.clips."""

    def __init__(
        self,
        pool: DecodePool,
        videos: Sequence[tuple[str, int]],  # (path, class id)
        plan: Plan,
        spec: Callable[[int], ClipSpec],  # epoch -> what the workers draw
        seed: int,
        rank: int = 0,
        pin: bool = False,  # micro-batches in pinned memory: a GPU copies them in without waiting
    ) -> None:
        self.pool, self.videos, self.plan, self.spec, self.seed, self.rank = pool, videos, plan, spec, seed, rank
        self.pin = pin
        self.waited_s = 0.0  # time the training waited for a clip, this epoch
        self.failed: dict[str, str] = {}  # path -> why, over every epoch

    def epoch(self, epoch: int) -> Iterator[Micro]:
        """This process's micro-batches of `epoch`, in the plan's order."""
        self.waited_s = 0.0
        steps = self.plan.steps(self.seed, epoch)
        mine = [[m[self.rank :: self.plan.world] for m in step] for step in steps]
        order = [i for step in mine for m in step for i in m]
        spec = self.spec(epoch)
        self.pool.submit([self.videos[i][0] for i in order], spec, max_pending=AHEAD_BATCHES * self.plan.batch + 2)
        arrived: dict[str, np.ndarray | None] = {}  # clips that came before their turn, copied out of the pool
        for step, planned in zip(mine, steps, strict=True):
            total = sum(len(m) for m in planned)
            for k, micro in enumerate(step):
                frames, labels = self._micro(micro, arrived)
                yield Micro(frames, labels, total, k == len(step) - 1)
        self._wait(DONE)  # the pool's round ends, so that the next epoch (or the validation) can submit

    def _micro(self, micro: Sequence[int], arrived: dict[str, np.ndarray | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """The clips of `micro` that decoded, copied one by one into one uint8 batch (b, T, S, S, 3) as each is
        taken, and their class ids."""
        import torch

        frames: torch.Tensor | None = None
        labels: list[int] = []
        for i in micro:
            path, label = self.videos[i]
            clip = self._take(path, arrived)
            if clip is None:
                continue
            if frames is None:
                frames = torch.empty((len(micro), *clip.shape), dtype=torch.uint8, pin_memory=self.pin)
            frames[len(labels)].copy_(torch.from_numpy(clip))
            labels.append(label)
        if frames is None:
            frames = torch.empty(0, dtype=torch.uint8)
        return frames[: len(labels)], torch.tensor(labels, dtype=torch.int64)

    def _take(self, path: str, arrived: dict[str, np.ndarray | None]) -> np.ndarray | None:
        """The clip of `path` (its frames, or None where it failed), waiting for the pool where it has not come. What
        get() returned lives in a block of the pool's ring that the next get() reuses: the clip returned is read
        before then, and those that come before their turn are copied."""
        if path in arrived:
            return arrived.pop(path)
        while True:
            item = self._wait(None)
            if item.prepared is None:
                self.failed[item.path] = item.error or "unknown error"
            frames = None if item.prepared is None else item.prepared.frames
            if item.path == path:
                return frames
            arrived[item.path] = None if frames is None else np.array(frames)

    def _wait(self, expect: object) -> Any:
        started = time.perf_counter()
        item = self.pool.get()
        self.waited_s += time.perf_counter() - started
        if expect is DONE:
            assert item is DONE, "every clip submitted was taken"
        else:
            assert item is not DONE, "a clip planned for this epoch never came"
        return item
