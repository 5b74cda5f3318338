"""One run at a time on an output: a file of rows, a model folder, a labelling project.

A hold is an advisory lock (flock) on a hidden file beside the output, `.NAME.lock`. The kernel lets go of it when
its process ends, however it ends, so a run killed with SIGKILL never blocks the next one; the file itself is
removed by the run that held it. No torch, no files besides the lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from vivit_cli.errors import SourceError
from vivit_cli.results import shown_path

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not kept apart
    fcntl = None  # type: ignore[assignment]


def lock_path(path: str | os.PathLike[str]) -> Path:
    """Where the hold on `path` is kept: `.NAME.lock` in the same folder (a folder that is swapped whole, as a model
    folder is, cannot hold its own lock)."""
    target = Path(os.path.abspath(os.fspath(path)))
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def held(path: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold `path` for this run; a SourceError (exit 2) naming it when another run holds it. `what` says what the
    path is to the user ("--out", "the project")."""
    if fcntl is None:
        yield
        return
    lock = lock_path(path)
    fd = _acquire(lock, path, what)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()  # before the lock is let go: a run that opens it now finds it gone and tries again
        os.close(fd)


def _acquire(lock: Path, path: str | os.PathLike[str], what: str) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return os.open(os.devnull, os.O_RDONLY)  # a folder that cannot be written: the output's own check says so
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_pid(fd)
            os.close(fd)
            by = f" (process {holder})" if holder else ""
            raise SourceError(
                f"{what} {shown_path(path)} is in use by another vivit run{by}: wait for it to finish, or choose "
                "another"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not a file its last holder removed while we opened it
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
