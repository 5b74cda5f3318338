"""A --full run over several processes, as `torchrun` starts them: which one this is, the process group (NCCL
between GPUs, gloo on CPUs), and what process 0 alone decides, handed to the others."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

# Process 0 alone validates and writes while the others wait in the next exchange: on a slow machine, long.
WAIT = timedelta(hours=6)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the process's number on its machine: its GPU
    local_size: int = 1

    @property
    def main(self) -> bool:
        """The process that prints and writes."""
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.size > 1


def from_env() -> World:
    """What torchrun says of this process (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); one process without it."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return World()
    size = int(env["WORLD_SIZE"])
    return World(int(env["RANK"]), size, int(env.get("LOCAL_RANK", 0)), int(env.get("LOCAL_WORLD_SIZE", size)))


def start(world: World, device_type: str) -> None:
    """Join the process group (a no-op for one process)."""
    if not world.many:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", timeout=WAIT)


def stop(world: World) -> None:
    if world.many:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


class Failed(Exception):
    """Process 0 failed at something the others waited for: they stop with its exit code, saying nothing."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def main_does(world: World, work: Callable[[], T]) -> T:
    """`work` on process 0, its result handed to every process; where it raises, process 0 raises it and the others
    raise Failed with the exit code it will have."""
    if not world.many:
        return work()
    import torch.distributed as dist

    box: list[Any] = [None]
    error: BaseException | None = None
    if world.main:
        try:
            box[0] = ("ok", work())
        except BaseException as e:
            error = e
            box[0] = ("failed", getattr(e, "exit_code", 130 if isinstance(e, KeyboardInterrupt) else 1))
    dist.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    kind, value = box[0]
    if kind == "failed":
        raise Failed(value)
    return value
