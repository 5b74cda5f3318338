"""Faults injected by tests into decode workers and Ray's model workers: nothing in vivit_cli exists for them.

A decode body is swapped by monkeypatching `vivit_cli.batch.worker.decode` before a pool or a Ray job starts: the
pool and the Ray job look it up then and send it to their workers by reference (this module is importable there,
through the tests' sys.path; Ray gets it by value). A subprocess run takes the same swap from `cli_with_faults`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vivit_cli.batch import worker

CRASH_EXIT = 70  # exit status of a crashed decoder
HANG_SLEEP_S = 1.0  # seconds a hung decoder sleeps at a time (it never stops)
DIE_EXIT = 72

_real_decode = worker.decode
ROOT = str(Path(__file__).resolve().parent.parent)  # the checkout: `tests` imports from there


def decode(
    path: str, spec: Any, where: str | None = None, *, hang_on: str | None = None, crash_on: str | None = None
) -> Any:
    """The real decode, except that a path containing `hang_on` never answers and one containing `crash_on` takes
    its worker down at once: the stand-ins for a decoder stuck or crashing in native code."""
    while hang_on and hang_on in path:
        time.sleep(HANG_SLEEP_S)
    if crash_on and crash_on in path:
        os._exit(CRASH_EXIT)
    return _real_decode(path, spec, where)


def faulty(hang_on: str | None = None, crash_on: str | None = None) -> Any:
    """A decode body with faults, picklable by reference (a partial of this module's function)."""
    return functools.partial(decode, hang_on=hang_on, crash_on=crash_on)


def late_clip(path: str, spec: Any, *, on: str, seconds: float) -> Any:
    """train --full's decode body, except that a path containing `on` answers `seconds` late: the files after it
    come first."""
    from vivit_cli.learn import clips

    if on in path:
        time.sleep(seconds)
    return clips.decode(path, spec)


def late(on: str, seconds: float) -> Any:
    """late_clip as a decode body, picklable by reference."""
    return functools.partial(late_clip, on=on, seconds=seconds)


def install(monkeypatch: Any, hang_on: str | None = None, crash_on: str | None = None) -> None:
    """Swap the decode body for the rest of the test, for local pools and Ray jobs alike."""
    monkeypatch.setattr(worker, "decode", faulty(hang_on, crash_on))
    try:
        import ray.cloudpickle

        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    except ImportError:
        pass


def server_killing_decode(path: str, spec: Any, where: str | None = None, *, on: str, marker: str) -> Any:
    """The real decode, except that the first file containing `on` (once per `marker` file) kills the forkserver
    that started this worker, its parent, and then never answers: a worker caught mid-file by its server's death."""
    if on in path and first_time(marker):
        os.kill(os.getppid(), signal.SIGKILL)
        while True:
            time.sleep(HANG_SLEEP_S)
    return _real_decode(path, spec, where)


def install_server_killer(monkeypatch: Any, on: str, marker: str) -> None:
    monkeypatch.setattr(worker, "decode", functools.partial(server_killing_decode, on=on, marker=marker))


def first_time(marker: str) -> bool:
    """True for the first caller in any process: the one that creates `marker`."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def kill_forkserver() -> int | None:
    """SIGKILL the decode pool's forkserver in this process, if one runs; its process id."""
    from multiprocessing import forkserver

    pid = forkserver._forkserver._forkserver_pid
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    return pid


class _Os:
    """os, except that waitpid(pid, WNOHANG) reports `pid` alive."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def waitpid(self, pid: int, options: int) -> tuple[int, int]:
        return (0, 0) if pid == self.pid and options == os.WNOHANG else os.waitpid(pid, options)


@contextlib.contextmanager
def dying_forkserver() -> Iterator[None]:
    """Kill the forkserver and keep it, for the stdlib, in the state a dying server is in: its socket closed, its
    process not yet reapable, so that the stdlib's check (a waitpid) takes it for alive."""
    from multiprocessing import forkserver

    pid = kill_forkserver()
    if pid is None:
        yield
        return
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, and left unreaped
    forkserver.os = _Os(pid)  # type: ignore[assignment]
    try:
        yield
    finally:
        forkserver.os = os


def traced_decode(path: str, spec: Any, where: str | None = None, *, marks: str) -> Any:
    """The real decode, leaving in `marks` the monotonic time (ns, the same clock in every process) at which each
    file's decoding started and ended: how a test sees what a worker does while the model runs."""
    _mark(marks, path, "start")
    try:
        return _real_decode(path, spec, where)
    finally:
        _mark(marks, path, "end")


def install_traced(monkeypatch: Any, marks: str) -> None:
    monkeypatch.setattr(worker, "decode", functools.partial(traced_decode, marks=marks))


def _mark_file(marks: str, path: str, what: str) -> str:
    return os.path.join(marks, f"{Path(path).name}.{what}")


def _mark(marks: str, path: str, what: str) -> None:
    tmp = _mark_file(marks, path, what) + ".tmp"
    Path(tmp).write_text(str(time.monotonic_ns()))
    os.replace(tmp, _mark_file(marks, path, what))  # whole or absent, for a reader in another process


def traced_ns(marks: str, path: str, what: str) -> int:
    return int(Path(_mark_file(marks, path, what)).read_text())


def wait_traced(marks: str, path: str, what: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(_mark_file(marks, path, what)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def dying_model_worker(marker: str, on_call: int = 2) -> Any:
    """A ModelWorker that exits on its `on_call`-th batch (once the rows of a first batch have gone back to the
    driver), once per `marker` file: the stand-in for a model worker lost with its node."""
    from vivit_cli.batch.actors import ModelWorker

    class Dying(ModelWorker):
        calls = 0

        def __call__(self, batch: Any) -> Any:
            self.calls += 1
            if self.calls >= on_call and first_time(marker):
                os._exit(DIE_EXIT)
            return super().__call__(batch)

    return Dying


def cli_with_faults(hang_on: str | None = None, crash_on: str | None = None) -> list[str]:
    """argv prefix that runs `vivit` in a subprocess with the faulty decode body swapped in (with ROOT on
    PYTHONPATH, so that `tests` imports there and in its workers)."""
    code = (
        "import sys; from tests import faults; from vivit_cli.batch import worker; "
        f"worker.decode = faults.faulty({hang_on!r}, {crash_on!r}); "
        "from vivit_cli.cli import main; sys.argv[0] = 'vivit'; main()"
    )
    return [sys.executable, "-c", code]


def ffmpeg_threads_decode(path: str, spec: Any, where: str | None = None) -> Any:
    """No decoding: the file's error says how many threads the worker gives FFmpeg."""
    return None, os.environ.get("OPENCV_FFMPEG_THREADS")
