"""How the decode workers start: a forkserver that imported torch and OpenCV once, a new one when it dies, and the
temporary folder that holds its socket.

multiprocessing starts the forkserver once and trusts it: when it dies, every worker it started reports exit 255
(no status can come), and the next start fails (ConnectionRefusedError, EOFError) while the dead server is not yet
reaped, since the stdlib's only check is a waitpid. The pool asks here instead.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from multiprocessing import util
from typing import Any

PRELOAD = ["vivit_cli.batch.worker", "vivit_cli.video.views"]  # imported once by the server, not by each worker
NO_STATUS = 255  # the exit status multiprocessing gives a process whose forkserver died before it could tell
# What process.start() raises when the server has died or is dying: its socket refuses or is gone, or it closed
# the pipes of a start it had accepted.
SERVER_GONE = (ConnectionError, FileNotFoundError, EOFError)
TEMP_PREFIX = "vivit-pool-"  # our folders in the system's temporary folder, one per process that starts workers
SOCKET_PATH_MAX = 104  # bytes in a Unix socket's path on macOS (108 on Linux)
SOCKET_PATH_ADDS = len("/vivit-pool-12345678/listener-12345678") + 1  # what our folder and the socket add, and a NUL

try:
    import fcntl
except ImportError:  # Windows: spawn, no forkserver and no folder to keep
    fcntl = None  # type: ignore[assignment]

_OPEN_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)  # for its lock
_held: list[int] = []  # the descriptor that holds this process's folder, for the life of the process


def context() -> Any:
    """forkserver where there is one: workers fork from a server that imported torch and OpenCV but never ran
    them, so starts and restarts are fast and no thread pool is copied; spawn elsewhere."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    _own_tempdir()
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def uses_server(ctx: Any) -> bool:
    return ctx.get_start_method() == "forkserver"


def server_pid(ctx: Any) -> int | None:
    """The process id of `ctx`'s forkserver (multiprocessing keeps it to itself); None before its first start, and
    for a context with no server."""
    if not uses_server(ctx):
        return None
    from multiprocessing import forkserver

    return forkserver._forkserver._forkserver_pid


def start(process: Any) -> None:
    """process.start(), with Ctrl-C held off for the processes it may launch (the forkserver and, through it, the
    worker): a Ctrl-C while the server imports torch would print its traceback; the batch decides what a Ctrl-C
    does. The mask is inherited across fork and exec; the forkserver ignores the signal once it has started."""
    if os.name == "posix":
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()  # it unblocks SIGINT in this thread when it starts, so it goes first
    with _no_interrupts():
        process.start()


def lost_with_server(process: Any) -> bool:
    """Whether a worker that looks dead was lost with its forkserver, not dead itself: with the server gone no status
    came, and the worker still runs (until it sees its pipe to the batch close). A worker that exits by itself is
    reaped by the server before its status is sent, so its process is gone by then."""
    if process.exitcode != NO_STATUS:
        return False
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the id was taken by another user's process: ours is gone
        return False
    return True


def forget_server(pid: int | None) -> None:
    """Kill and reap forkserver `pid` if it is still the current one, and forget it, so that the next start launches
    a new one. Its workers are lost with it; a server that only lost its socket file is stopped too."""
    from multiprocessing import forkserver

    server = forkserver._forkserver
    with server._lock:
        if pid is None or server._forkserver_pid != pid:
            return  # forgotten already (by another worker's loss) or never ours
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # quick: it is dead or dying, and still our child
        with contextlib.suppress(OSError, TypeError):
            os.close(server._forkserver_alive_fd)
        with contextlib.suppress(OSError, TypeError):
            os.unlink(server._forkserver_address)
        server._forkserver_pid = server._forkserver_alive_fd = None


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _own_tempdir() -> None:
    """multiprocessing makes a folder for the server's socket and removes it at exit, which a run killed with SIGKILL
    never reaches. Ours is locked for the life of this process, removed at exit, and each run removes those whose
    process is gone (the kernel lets go of the lock however a process ends)."""
    config = mp.current_process()._config
    if fcntl is None or config.get("tempdir") is not None:  # chosen already, by us or by multiprocessing
        return
    base = tempfile.gettempdir()
    if len(os.fsencode(base)) + SOCKET_PATH_ADDS > SOCKET_PATH_MAX:  # multiprocessing knows what to do there
        return
    _remove_orphans(base)
    folder = _locked_folder(base)
    if folder is None:
        return
    config["tempdir"] = folder
    # as multiprocessing does for its own: after the other exit handlers, with rmtree held against a late shutdown
    util.Finalize(None, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True}, exitpriority=-100)


def _locked_folder(base: str) -> str | None:
    while True:
        try:
            folder = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=base)
            fd = os.open(folder, _OPEN_FOLDER)
        except OSError:
            return None  # multiprocessing makes its own, and says so if it cannot
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.path.isdir(folder):  # not removed as an orphan between its making and its lock
            _held.append(fd)
            return folder
        os.close(fd)


def _remove_orphans(base: str) -> None:
    try:
        names = [n for n in os.listdir(base) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return
    for name in names:
        folder = os.path.join(base, name)
        try:
            fd = os.open(folder, _OPEN_FOLDER)
        except OSError:  # another user's, or not a folder
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(folder, ignore_errors=True)  # the lock was free: the process that made it is gone
        except OSError:  # held: its process runs
            pass
        finally:
            os.close(fd)


def stop(process: Any, conn: Any, grace_s: float) -> None:
    """Wait `grace_s` for a worker to exit, kill it if it has not, and close our end of its pipe."""
    process.join(grace_s)
    if process.is_alive():
        process.kill()
        process.join()
    conn.close()


def describe_exit(code: int | None) -> str:
    """A process's end in words: the signal that killed it, or its exit status."""
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit status {code}"


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
