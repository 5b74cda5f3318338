"""The decode-worker body, one for the local pool's processes and for Ray's decode tasks: a file -> its views; and
the loop of a local pool's worker process."""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from dataclasses import dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any

from vivit_cli.errors import VivitError
from vivit_cli.results import shown_path

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

    from vivit_cli.video.preprocess import PreprocessConfig
    from vivit_cli.video.sampling import Views
    from vivit_cli.video.views import PreparedVideo

FFMPEG_QUIET = "-8"  # AV_LOG_QUIET
CHANNELS = 3  # RGB
READY = "ready"  # a pool worker's first message: imports done, the clock of its first file may start


@dataclass(frozen=True)
class DecodeSpec:
    """What a worker needs to turn a path into model inputs; sent with every file, so it must stay small."""

    num_frames: int
    preprocess: PreprocessConfig
    views: Views

    @property
    def frames_bytes(self) -> int | None:
        """Bytes of one video's uint8 views; None when not known before decoding (no centre crop: frames keep the
        video's shape). The decode pool sizes its shared blocks by it."""
        p = self.preprocess
        if not p.do_center_crop:
            return None
        return self.views.clips * self.views.crops * self.num_frames * p.crop_hw[0] * p.crop_hw[1] * CHANNELS


def one_line(message: str) -> str:
    """An error message fit for one CSV cell and one log line (OpenCV's span several)."""
    return " ".join(message.split())


@cache
def settle(ffmpeg_threads: int = 1) -> None:
    """Make this process a decode worker, once: torch and OpenCV on one thread, FFmpeg's decoder on
    `ffmpeg_threads` (OPENCV_FFMPEG_THREADS, unless set), no FFmpeg chatter (a bad file's error goes into its
    row), and the decoding modules imported now, before any --timeout clock starts. Set OPENCV_FFMPEG_LOGLEVEL or
    OPENCV_LOG_LEVEL to see FFmpeg's own lines."""
    import cv2
    import torch

    import vivit_cli.video.views  # noqa: F401

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)  # read when the first video opens
    # FFmpeg's threads, else one per CPU: setNumThreads misses them. One where the workers fill the cores (frame
    # threading costs CPU per clip); the pool gives a worker more where it would leave cores idle.
    os.environ.setdefault("OPENCV_FFMPEG_THREADS", str(ffmpeg_threads))
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def decode(path: str, spec: DecodeSpec, where: str | None = None) -> tuple[PreparedVideo | None, str | None]:
    """`path` -> (its views, None), or (None, a one-line error). A damaged file can make OpenCV or numpy raise
    anything: it costs that file only. `where` is the name to open when it is not `path` as the user gave it (Ray
    opens absolute paths); the result and its messages name the file as the user did."""
    from vivit_cli.video.views import prepare_video

    where = where or path
    try:
        prepared = prepare_video(where, spec.num_frames, spec.preprocess, spec.views)
        return replace(prepared, source=path), None
    except VivitError as e:
        message = one_line(str(e))
    except Exception as e:
        message = one_line(f"{type(e).__name__}: {e}")
    return None, message if where == path else message.replace(shown_path(where), shown_path(path))


# The loop of a local pool's worker process (pool.DecodePool starts them).


def serve(
    conn: Connection, decode: Callable[[str, DecodeSpec], tuple[Any, str | None]], ffmpeg_threads: int = 1
) -> None:
    """(index, path, spec, block) in, (index, prepared or None, error or None, shape, decode_s, handed_s) out, until
    None or the batch is gone. With a ring (sent first) and a block, the frames go into the block and `shape` says
    theirs; else they travel in `prepared` and `shape` is None. The times (seconds, on the system's monotonic
    clock, one for every process) measure the feed."""
    from vivit_cli.batch import ring

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    _exit_without(conn)
    settle(ffmpeg_threads)
    conn.send(READY)
    attached = None
    while True:
        try:
            task = conn.recv()
            if ring.is_ring(task):
                attached = ring.Attached(conn, task[1], task[2])
                continue
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, path, spec, block = task
        started = time.monotonic()
        prepared, error = decode(path, spec)
        shape = None
        if prepared is not None and attached is not None and block is not None:
            prepared, shape = attached.put(prepared, block)
        try:
            conn.send((index, prepared, error, shape, time.monotonic() - started, time.monotonic()))
        except OSError:
            return


def _exit_without(conn: Connection) -> None:
    """Exit the moment the batch's end of `conn` closes, even while stuck in a decoder, so a killed batch leaves no
    worker behind: OpenCV lets go of the GIL in its calls, so this thread still runs. (The batch is not always
    the parent: under forkserver the server is, and the server lives as long as its children do.)"""
    if not hasattr(select, "poll"):  # Windows: a worker notices when it next reads a task
        return

    def watch() -> None:
        poller = select.poll()
        poller.register(conn.fileno(), 0)  # no events asked for: poll wakes only for a hang-up or an error
        poller.poll()
        os._exit(0)

    threading.Thread(target=watch, name="vivit-batch-watch", daemon=True).start()
