"""Decode worker processes for `vivit batch`: a file that hangs or crashes its decoder costs that file only."""

from __future__ import annotations

import contextlib
import math
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Literal

from vivit_cli.batch import processes, ring, worker
from vivit_cli.batch.worker import DecodeSpec
from vivit_cli.errors import VivitError

if TYPE_CHECKING:
    from collections.abc import Callable

    from vivit_cli.video.views import PreparedVideo

DEFAULT_TIMEOUT_S = 120.0  # seconds one file may take to decode
WORKER_DEPTH = 2  # files queued per worker, so it starts the next one the moment it sends a result
POLL_S = 0.2  # seconds between the manager's checks of deadlines and of the stop flag
EXIT_GRACE_S = 2.0  # seconds an idle worker gets to exit when told to, before it is killed
WAKE_S = 0.5  # the longest the caller of get() waits at once, so that a pending Ctrl-C is acted on
SERVER_RESTARTS = 3  # new forkservers started in a row, with no file answered between them, before the batch stops


class _End(Enum):
    DONE = "all files answered"


DONE = _End.DONE  # what DecodePool.get returns once every submitted file has its answer


@dataclass(frozen=True)
class Decoded:
    """A worker's answer for one file: the prepared video, or why there is none. Its frames may be in the pool's
    shared ring: read them (ViewBatcher.add copies them) before the next get(), which gives their block back."""

    path: str
    prepared: PreparedVideo | None
    error: str | None = None
    decode_s: float = 0.0  # the worker's time on it
    handed_s: float = 0.0  # when the worker handed it over (time.monotonic, the same clock in every process)
    block: int | None = None  # the ring's block that holds its frames


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing's BaseProcess
    conn: Connection
    tasks: deque[tuple[int, str, int | None]] = field(default_factory=deque)  # (index, path, block) sent, not
    # answered; the head is in work
    ready: bool = False
    has_ring: bool = False
    started_s: float = 0.0  # monotonic time the head task started (when it was sent, or the last answer came)
    dead: bool = False
    server: int | None = None  # the forkserver it was started through


class DecodePool:
    """`workers` processes turn paths into PreparedVideos, each file within `timeout_s`, a bounded number ahead.

    A thread of the parent feeds them and collects their answers, so decoding goes on while the model runs;
    a worker that dies is replaced, one that overruns the timeout is killed and replaced, and its file
    answers with an error. Use as a context manager: the workers start (and import torch) on entry.
    """

    def __init__(self, workers: int, timeout_s: float, decode: Callable[[str, Any], Any] | None = None) -> None:
        if workers < 1 or not timeout_s > 0:
            raise VivitError(f"need at least one worker and a positive timeout (got {workers}, {timeout_s})")
        self.workers, self.timeout_s = workers, timeout_s
        # The body each worker runs (path, spec) -> (PreparedVideo or None, error or None), looked up now and sent to
        # the workers by reference: worker.decode unless another is given (train --full's training clips).
        self._decode: Callable[[str, Any], tuple[PreparedVideo | None, str | None]] = decode or worker.decode
        self._ffmpeg_threads = max(1, processes.cores() // workers)  # the cores shared out: a lone worker gets all
        self._ctx = processes.context()
        self._slots: list[_Worker] = []
        self._out: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._manage, name="vivit-decode-manager", daemon=True)
        self._tasks: Iterator[tuple[int, str]] | None = None
        self._spec: DecodeSpec | None = None
        self._max_pending = 0
        self._retry: deque[Any] = deque()  # sent to a worker that died before starting them
        self._exhausted = False
        self._restarts = 0  # forkservers started since the last answer
        self._ring: ring.Ring | None = None
        self._lent: int | None = None  # the block of the answer get() returned last

    def __enter__(self) -> DecodePool:
        self._thread.start()  # the thread starts the workers: the caller goes on to load the model meanwhile
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.close(kill=exc_type is not None)

    def submit(self, paths: Iterable[str], spec: DecodeSpec | Any, max_pending: int) -> None:
        """Decode `paths`, keeping at most `max_pending` files sent out or answered but not yet taken by get. Again,
        with the same workers, once get() has returned DONE: a round after another (train --full's epochs)."""
        assert self._tasks is None, "one round at a time: submit again once get() has returned DONE"
        self._spec, self._max_pending = spec, max(max_pending, 1)
        size = spec.frames_bytes  # None: not known before decoding
        # the files out, those answered and waiting, and the one get() returned last: a block each
        count = self._max_pending + 1
        if self._ring is not None and (not size or self._ring.count < count or self._ring.size < size):
            self._ring.close()  # every block is back: the last round ended
            self._ring = None
        if size and ring.available() and self._ring is None:
            self._ring = ring.Ring(count, size)
            for w in self._slots:
                w.has_ring = False
        self._exhausted = False
        self._tasks = enumerate(paths)  # last: the manager thread starts the round when it sees it

    def get(self, timeout_s: float | None = None) -> Decoded | Literal[_End.DONE] | None:
        """The next answer in completion order; None if none came within timeout_s; DONE after the last one."""
        if self._lent is not None and self._ring is not None:
            self._ring.give_back(self._lent)
            self._lent = None
        deadline = time.monotonic() + (math.inf if timeout_s is None else timeout_s)
        while True:
            # In slices: a wait with no end is not woken by a Ctrl-C that another thread of the process received.
            try:
                item = self._out.get(timeout=max(0.0, min(WAKE_S, deadline - time.monotonic())))
                break
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return None
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, Decoded):
            self._lent = item.block
        return item

    def close(self, kill: bool = False) -> None:
        """Stop the workers: told to exit (killed if they do not), or killed at once when `kill`."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if not kill:
            for w in self._slots:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
        deadline = time.monotonic() + (0.0 if kill else EXIT_GRACE_S)
        for w in self._slots:
            processes.stop(w.process, w.conn, max(0.0, deadline - time.monotonic()))
        self._slots = []
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    # Everything below runs in the manager thread.

    def _manage(self) -> None:
        try:
            while len(self._slots) < self.workers and not self._stop.is_set():
                self._slots.append(self._start_worker())
            while not self._stop.is_set():
                self._dispatch()
                if self._tasks is not None and self._exhausted and not self._retry and not self._in_flight():
                    self._tasks = None  # before DONE: the caller may submit the next round the moment it has it
                    self._out.put(DONE)
                self._poll()
        except BaseException as e:  # handed to the caller's thread, which raises it from get()
            self._out.put(e)

    def _in_flight(self) -> int:
        """Files sent to a worker and not answered."""
        return sum(len(w.tasks) for w in self._slots)

    def _dispatch(self) -> None:
        while self._tasks is not None and self._in_flight() + self._out.qsize() < self._max_pending:
            free = [w for w in self._slots if w.ready and not w.dead and len(w.tasks) < WORKER_DEPTH]
            if not free:
                return
            block = self._ring.take() if self._ring else None
            if self._ring and block is None:  # cannot be, with a block per pending file; waits for get() if it were
                return
            task = self._retry.popleft() if self._retry else next(self._tasks, None)
            if task is None:
                self._exhausted = True
                self._give_back(block)
                return
            w = min(free, key=lambda w: len(w.tasks))
            if not w.tasks:
                w.started_s = time.monotonic()
            w.tasks.append((*task, block))
            try:
                if self._ring and not w.has_ring:
                    self._ring.send(w.conn)
                    w.has_ring = True
                w.conn.send((*task, self._spec, block))
            except OSError:  # it died idle: the file never reached it, so it goes to another worker
                w.tasks.pop()
                self._give_back(block)
                self._retry.appendleft(task)
                w.dead = True
                return

    def _give_back(self, block: int | None) -> None:
        if block is not None and self._ring is not None:
            self._ring.give_back(block)

    def _poll(self) -> None:
        now = time.monotonic()
        waits = [POLL_S] + [w.started_s + self.timeout_s - now for w in self._slots if w.tasks]
        handles = [h for w in self._slots for h in (w.conn, w.process.sentinel)]
        ready = set(wait(handles, timeout=max(0.0, min(waits))))
        for w in list(self._slots):
            if w.conn in ready:
                self._receive(w)
            if w.dead or w.process.sentinel in ready:
                self._receive(w)  # answers it sent before dying are still in the pipe
                self._replace(w, None)
            elif w.tasks and time.monotonic() > w.started_s + self.timeout_s:
                self._replace(w, f"decoding took longer than {self.timeout_s:g} s (--timeout); its worker was stopped")

    def _receive(self, w: _Worker) -> None:
        try:
            while not w.dead and w.conn.poll():
                message = w.conn.recv()
                if message == worker.READY:
                    w.ready, w.started_s = True, time.monotonic()
                    continue
                index, prepared, error, shape, decode_s, handed_s = message
                _, path, block = w.tasks.popleft()
                assert _ == index, "a worker answers its files in order"
                w.started_s, self._restarts = time.monotonic(), 0
                if shape is None:  # its frames came in the message, if it has any
                    self._give_back(block)
                    block = None
                else:
                    assert self._ring is not None and block is not None
                    prepared = replace(prepared, frames=self._ring.frames(block, shape))
                self._out.put(Decoded(path, prepared, error, decode_s, handed_s, block))
        except (EOFError, OSError):
            w.dead = True

    def _replace(self, w: _Worker, timeout_error: str | None) -> None:
        """Stop a dead or hung worker, answer for the file it was on, requeue the rest, start another. A worker lost
        with its forkserver did nothing wrong: its files are all requeued and a new server starts."""
        lost = timeout_error is None and w.server is not None and processes.lost_with_server(w.process)
        if lost:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.process.pid, signal.SIGKILL)  # orphaned, and no longer ours to wait for
            self._server_lost(w.server, "it died while they ran")
        processes.stop(w.process, w.conn, 0.0 if timeout_error or lost else EXIT_GRACE_S)
        if not w.ready and not lost:
            raise VivitError(f"a decode worker failed to start ({processes.describe_exit(w.process.exitcode)})")
        self._slots.remove(w)
        for *_, block in w.tasks:  # its process is gone: it writes no more into them
            self._give_back(block)
        tasks = [task[:2] for task in w.tasks]
        if tasks and not lost:
            _, path = tasks.pop(0)
            error = timeout_error or (
                f"the decoder crashed ({processes.describe_exit(w.process.exitcode)}); its worker was replaced"
            )
            self._out.put(Decoded(path, None, error))
        self._retry.extendleft(reversed(tasks))
        self._slots.append(self._start_worker())

    def _start_worker(self) -> _Worker:
        while True:
            parent_end, child_end = self._ctx.Pipe()
            args = (child_end, self._decode, self._ffmpeg_threads)
            process = self._ctx.Process(target=worker.serve, args=args, daemon=True, name="vivit-decode")
            try:
                processes.start(process)
            except processes.SERVER_GONE as e:
                parent_end.close()
                server = processes.server_pid(self._ctx)
                if server is None:  # not the server's: nothing a new one would change
                    raise
                self._server_lost(server, f"{type(e).__name__}: {e}")
                continue
            finally:
                child_end.close()
            return _Worker(process, parent_end, server=processes.server_pid(self._ctx))

    def _server_lost(self, server: int | None, why: str) -> None:
        """Forget a dead forkserver (once, however many of its workers report it), so that the next start makes a
        new one; a VivitError when that has happened too often with no file answered in between."""
        if server is None or server != processes.server_pid(self._ctx):
            return
        processes.forget_server(server)
        self._restarts += 1
        if self._restarts > SERVER_RESTARTS:
            raise VivitError(
                f"the decode workers cannot be started: their forkserver died {self._restarts} times in a row ({why})"
            )
