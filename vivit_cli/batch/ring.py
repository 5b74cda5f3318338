"""Shared memory between the decode pool and its workers: one ring of equal blocks, each one video's frames. A
worker writes a video's uint8 views into the block it was given and sends only a small message; the batch reads
them in place, copies them into the model's batch and gives the block back for the next file.

The ring is anonymous memory (Linux's memfd): it has no name, so nothing is left in /dev/shm whatever ends the
run (Ctrl-C, SIGTERM, SIGKILL, a crash); the kernel frees it when the last process holding it exits. Its one
file descriptor reaches each worker over the worker's own socket. Where there is no memfd (macOS, Windows), or
a video's views do not fit a block, the frames travel through the pipe, pickled, as uint8 all the same.
"""

from __future__ import annotations

import mmap
import os
import socket
from collections import deque
from dataclasses import replace
from multiprocessing import reduction
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from vivit_cli.video.views import PreparedVideo

NAME = "vivit-frames"  # what /proc/PID/fd shows for the ring: memfd:vivit-frames
FRAMES = np.uint8
IN_PLACE = np.empty(0, FRAMES)  # the frames of a reply whose frames are in its block
# Map every page at once: otherwise each block's first use pays a page fault per 4 KiB on both sides (about 1 ms a
# ViViT-B view), and the ring is all used soon anyway.
MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def available() -> bool:
    return hasattr(os, "memfd_create") and hasattr(socket, "AF_UNIX")


class Ring:
    """`count` blocks of `size` bytes in one memfd; the pool's manager thread takes blocks, any thread gives back."""

    def __init__(self, count: int, size: int) -> None:
        self.count, self.size = count, size
        self.fd = os.memfd_create(NAME, os.MFD_CLOEXEC)
        try:
            os.ftruncate(self.fd, count * size)
            self._map = mmap.mmap(self.fd, count * size, flags=MAP_FLAGS)
        except OSError:
            os.close(self.fd)
            raise
        self._free = deque(range(count))  # deque's append and popleft are atomic: no lock between the two threads

    def take(self) -> int | None:
        """A free block, or None when every block is out."""
        try:
            return self._free.popleft()
        except IndexError:
            return None

    def give_back(self, block: int) -> None:
        self._free.append(block)

    @property
    def free(self) -> int:
        return len(self._free)

    def frames(self, block: int, shape: tuple[int, ...]) -> np.ndarray:
        """The frames a worker wrote into `block`, in place: valid until the block is given back."""
        return np.ndarray(shape, FRAMES, buffer=self._map, offset=block * self.size)

    def send(self, conn: Connection) -> None:
        """Hand the ring to the worker at the other end of `conn` (a socket): its size, then its descriptor."""
        conn.send((NAME, self.count, self.size))
        with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
            reduction.sendfds(s, [self.fd])

    def close(self) -> None:
        """Let go of the memory: arrays still viewing it keep their pages until they are gone."""
        os.close(self.fd)
        self._map = None  # type: ignore[assignment]  # unmapped when the last view of it goes


class Attached:
    """A worker's side of the ring: writes a video's frames into the block its task names."""

    def __init__(self, conn: Connection, count: int, size: int) -> None:
        with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
            (fd,) = reduction.recvfds(s, 1)
        try:
            self._map = mmap.mmap(fd, count * size, flags=MAP_FLAGS)
        finally:
            os.close(fd)
        self.size = size

    def put(self, prepared: PreparedVideo, block: int) -> tuple[PreparedVideo, tuple[int, ...] | None]:
        """Write `prepared`'s frames into `block`: (prepared without them, their shape); unchanged and None when
        they do not fit (they go through the pipe)."""
        frames = prepared.frames
        if frames.dtype != FRAMES or frames.nbytes > self.size:
            return prepared, None
        np.copyto(np.ndarray(frames.shape, FRAMES, buffer=self._map, offset=block * self.size), frames)
        return replace(prepared, frames=IN_PLACE), frames.shape


def is_ring(message: Any) -> bool:
    return isinstance(message, tuple) and len(message) == 3 and message[0] == NAME
