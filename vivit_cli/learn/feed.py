"""Training clips for `vivit train --full`, decoded by the decode pool's workers while the model trains: each epoch
the videos in a seeded order, cut into optimiser steps of micro-batches; each process of a distributed run takes
its share of every micro-batch. Clips come out in the planned order whatever order the workers finish them in, so
that a run, a resumed run and a distributed run see the same batches; never more than a few batches are held."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vivit_cli.batch.pool import DONE, DecodePool

if TYPE_CHECKING:
    import torch

    from vivit_cli.learn.clips import ClipSpec

AHEAD_BATCHES = 2  # micro-batches decoded ahead of the one training, so that the next is ready when it is wanted


class TrainingPool(DecodePool):
    """The decode pool with learn.clips' body (training clips, and classify's views for validation), taking a round
    of files after another: its workers start once for the whole run, not twice an epoch."""

    def __init__(self, workers: int, timeout_s: float) -> None:
        from vivit_cli.learn import clips

        super().__init__(workers, timeout_s)
        self._decode = clips.decode
        self._rounds = 0

    def submit(self, paths: Iterable[str], spec: Any, max_pending: int) -> None:
        """As DecodePool.submit, again once the last round's files were all taken (get returned DONE)."""
        if self._rounds:  # the manager thread ended with the last round: a new one goes on with the same workers
            self._thread.join()
            self._thread = threading.Thread(target=self._manage, name="vivit-decode-manager", daemon=True)
            self._exhausted = False
            super().submit(paths, spec, max_pending)
            self._thread.start()
        else:
            super().submit(paths, spec, max_pending)
        self._rounds += 1


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
    ) -> None:
        self.pool, self.videos, self.plan, self.spec, self.seed, self.rank = pool, videos, plan, spec, seed, rank
        self.waited_s = 0.0  # time the training waited for a clip, this epoch
        self.failed: dict[str, str] = {}  # path -> why, over every epoch

    def epoch(self, epoch: int) -> Iterator[Micro]:
        """This process's micro-batches of `epoch`, in the plan's order."""
        import numpy as np
        import torch

        self.waited_s = 0.0
        steps = self.plan.steps(self.seed, epoch)
        mine = [[m[self.rank :: self.plan.world] for m in step] for step in steps]
        order = [i for step in mine for m in step for i in m]
        self.pool.submit(
            [self.videos[i][0] for i in order], self.spec(epoch), max_pending=AHEAD_BATCHES * self.plan.batch + 2
        )
        arrived: dict[str, np.ndarray | None] = {}
        for step, planned in zip(mine, steps, strict=True):
            total = sum(len(m) for m in planned)
            for k, micro in enumerate(step):
                clips = [(self._take(self.videos[i][0], arrived), self.videos[i][1]) for i in micro]
                kept = [(c, label) for c, label in clips if c is not None]
                frames = torch.from_numpy(np.stack([c for c, _ in kept])) if kept else torch.empty(0, dtype=torch.uint8)
                labels = torch.tensor([label for _, label in kept], dtype=torch.int64)
                yield Micro(frames, labels, total, k == len(step) - 1)
        self._wait(DONE)  # the pool's round ends, so that the next epoch (or the validation) can submit

    def _take(self, path: str, arrived: dict) -> object:
        """The clip of `path` (its frames, or None where it failed), waiting for the pool where it has not come."""
        while path not in arrived:
            item = self._wait(None)
            arrived[item.path] = None if item.prepared is None else item.prepared.frames
            if item.prepared is None:
                self.failed[item.path] = item.error or "unknown error"
        return arrived.pop(path)

    def _wait(self, expect: object) -> object:
        started = time.perf_counter()
        item = self.pool.get()
        self.waited_s += time.perf_counter() - started
        if expect is DONE:
            assert item is DONE, "every clip submitted was taken"
        else:
            assert item is not DONE, "a clip planned for this epoch never came"
        return item
