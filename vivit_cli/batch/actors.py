"""What `vivit batch --ray` runs on the cluster: the decode task, the model worker and the attempts ledger.

Ray is not imported at module level: the driver imports this module before it knows whether Ray is installed.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from vivit_cli.batch.pool import CRASH_ENV, CRASH_EXIT, FFMPEG_QUIET, HANG_ENV, DecodeSpec, one_line
from vivit_cli.errors import VivitError
from vivit_cli.memory import keep_freed_memory
from vivit_cli.results import ModelInfo
from vivit_cli.writers import error_record, result_record

if TYPE_CHECKING:
    from vivit_cli.pipeline import Classifier

# A file whose decoder took its worker down this many times gets an error row; once may be a lost node.
DECODE_ATTEMPTS = 2
TIMEOUT_EXIT = 71  # exit status of a decode worker stopped by its watchdog (--timeout)
DIE_ONCE_ENV = "VIVIT_TEST_RAY_DIE_ONCE"  # tests: a marker file; the model worker that creates it exits
DIE_ON_CALL = 2  # tests: ... on its second batch, once the rows of a first batch have gone back to the driver
DIE_EXIT = 72
HANG_SLEEP_S = 1.0  # tests: seconds a test hang sleeps at a time


class Ledger:
    """A Ray actor that counts the unfinished decode attempts per file, so a file that kills its worker every
    time (a decoder crash, a hang past --timeout) gets an error row instead of being retried forever."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[int, str | None]] = {}  # path -> (attempts not finished, why the last ended)

    def start(self, path: str) -> tuple[int, str | None]:
        """Count an attempt; returns the earlier unfinished ones and the reason the last one was stopped."""
        attempts, why = self._open.get(path, (0, None))
        self._open[path] = (attempts + 1, why)
        return attempts, why

    def stopped(self, path: str, why: str) -> None:
        self._open[path] = (self._open.get(path, (1, None))[0], why)

    def finish(self, path: str) -> None:
        self._open.pop(path, None)


@dataclass(frozen=True)
class DecodeJob:
    """What every decode task needs besides its row."""

    spec: DecodeSpec
    timeout_s: float  # seconds one file may take (--timeout)
    ledger: Any  # the Ledger's actor handle


def decode_row(row: dict[str, Any], job: DecodeJob) -> dict[str, Any]:
    """{"path": as given, "where": absolute} -> {"path", "prepared": a pickled PreparedVideo or b"", "error"}."""
    import ray

    _settle_decoder()
    path, where = str(row["path"]), str(row["where"])
    attempts, why = ray.get(job.ledger.start.remote(path))
    if why is not None or attempts >= DECODE_ATTEMPTS:
        job.ledger.finish.remote(path)
        return _failed(path, why or f"the decoder crashed its worker {attempts} times")
    # A decoder stuck in native code cannot be interrupted: the watchdog takes the worker down, Ray retries the
    # task, and the ledger turns the retry into this file's error row.
    watchdog = threading.Timer(job.timeout_s, _stop_hung, (job.ledger, path, job.timeout_s))
    watchdog.daemon = True
    watchdog.start()
    try:
        decoded = _prepare(path, where, job.spec)
    finally:
        watchdog.cancel()
    job.ledger.finish.remote(path)
    return decoded


def _prepare(path: str, where: str, spec: DecodeSpec) -> dict[str, Any]:
    from vivit_cli.pipeline import prepare_video

    hang_on, crash_on = os.environ.get(HANG_ENV), os.environ.get(CRASH_ENV)
    while hang_on and hang_on in path:  # the test stand-in for a decoder stuck in native code
        time.sleep(HANG_SLEEP_S)
    if crash_on and crash_on in path:
        os._exit(CRASH_EXIT)
    try:
        prepared = prepare_video(where, spec.num_frames, spec.preprocess, spec.views)
        prepared = replace(prepared, source=path, pixel_values=prepared.pixel_values.numpy())
        return {"path": path, "prepared": pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL), "error": ""}
    except VivitError as e:
        message = one_line(str(e))
    except Exception as e:  # a damaged file can make OpenCV or numpy raise anything: it costs that file only
        message = one_line(f"{path}: {type(e).__name__}: {e}")
    # Messages name the file as the user did, not as the worker opened it: rows match a local run's.
    return {"path": path, "prepared": b"", "error": message.replace(where, path)}


def _failed(path: str, why: str) -> dict[str, Any]:
    return {"path": path, "prepared": b"", "error": f"{path}: {why}"}


def _stop_hung(ledger: Any, path: str, timeout_s: float) -> None:
    import ray

    ray.get(ledger.stopped.remote(path, f"decoding took longer than {timeout_s:g} s (--timeout); its worker was "
                                        "stopped"))
    os._exit(TIMEOUT_EXIT)


_settled = False


def _settle_decoder() -> None:
    """One core per decode task, and no FFmpeg chatter: a bad file's error goes into its row."""
    global _settled
    if _settled:
        return
    import cv2
    import torch

    import vivit_cli.pipeline  # noqa: F401  (imported here, before the --timeout watchdog starts its clock)

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", FFMPEG_QUIET)
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    _settled = True


class ModelWorker:
    """One Ray actor of the model pool: loads the checkpoint once, then turns batches of decoded videos into
    records (JSON text, so that the driver writes them as they are)."""

    def __init__(self, load_ref: str, info: ModelInfo, device: str, dtype: str, top_k: int, batch_size: int,
                 threads: int | None) -> None:
        from vivit_cli.pipeline import load_model

        use_threads(threads)
        keep_freed_memory()
        self.classifier = load_model(load_ref, device=device, dtype=dtype)
        self.info, self.top_k, self.batch_size = info, top_k, batch_size
        self.calls = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        _die_once_for_tests(self.calls)
        records: list[dict[str, Any] | None] = [None] * len(batch["path"])
        decoded = []
        for i, (path, blob, error) in enumerate(zip(batch["path"], batch["prepared"], batch["error"], strict=True)):
            if error:
                records[i] = error_record(str(path), str(error), self.info.model_id, self.info.revision)
            else:
                decoded.append((i, pickle.loads(blob)))
        probs = score_views(self.classifier, [p.pixel_values for _, p in decoded], self.batch_size)
        for (i, prepared), view_probs in zip(decoded, probs, strict=True):
            # The model string as the driver resolved it, not as the worker opened it: rows match a local run's.
            records[i] = result_record(replace(self.classifier.result(prepared, view_probs, self.top_k),
                                               model=self.info))
        text = np.array([json.dumps(r, ensure_ascii=False) for r in records], dtype=object)
        return {"path": batch["path"], "record": text}


def use_threads(threads: int | None) -> None:
    """Give torch `threads` threads in a Ray worker. Ray sets OMP_NUM_THREADS to the CPUs a worker reserves (1 for
    a model worker that reserves none); torch.set_num_threads sets OpenMP's and MKL's thread counts over it."""
    import torch

    if threads:
        torch.set_num_threads(threads)


def score_views(classifier: Classifier, videos: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Each video's views (V, T, C, S, S) -> its probabilities (V, L), `batch_size` views per forward pass."""
    import torch

    views = [(i, v) for i, video in enumerate(videos) for v in range(len(video))]
    out: list[list[np.ndarray]] = [[] for _ in videos]
    start = 0
    while start < len(views):
        shape = videos[views[start][0]].shape[1:]
        end = start + 1
        # Views of one shape only: without a centre crop, frame sizes differ between videos.
        while end < len(views) and end - start < batch_size and videos[views[end][0]].shape[1:] == shape:
            end += 1
        x = torch.from_numpy(np.stack([videos[i][v] for i, v in views[start:end]]))  # (B, T, C, S, S)
        for (i, _), p in zip(views[start:end], classifier.scores(x), strict=True):
            out[i].append(p)
        start = end
    return [np.stack(p) for p in out]


def _die_once_for_tests(calls: int) -> None:
    marker = os.environ.get(DIE_ONCE_ENV)
    if not marker or calls < DIE_ON_CALL:
        return
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    os._exit(DIE_EXIT)
