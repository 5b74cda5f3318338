"""What `vivit batch --ray` runs on the cluster: the decode task, the model worker and the attempts ledger.

Ray is not imported at module level: the driver imports this module before it knows whether Ray is installed.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from vivit_cli.batch import worker
from vivit_cli.batch.rows import Kind
from vivit_cli.batch.worker import DecodeSpec
from vivit_cli.device import keep_freed_memory
from vivit_cli.writers.records import model_fields

if TYPE_CHECKING:
    from vivit_cli.batch.cluster import ClusterModel, WorkerSizes

# A file whose decoder took its worker down this many times gets an error row; once may be a lost node.
DECODE_ATTEMPTS = 2
TIMEOUT_EXIT = 71  # exit status of a decode worker stopped by its watchdog (--timeout)


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
    decode: Callable[[str, DecodeSpec, str], tuple[Any, str | None]]  # worker.decode, sent by reference


def decode_row(row: dict[str, Any], job: DecodeJob) -> dict[str, Any]:
    """{"path": as given, "where": absolute} -> {"path", "prepared": a pickled PreparedVideo or b"", "error"}."""
    import ray

    worker.settle()
    path, where = str(row["path"]), str(row["where"])
    attempts, why = ray.get(job.ledger.start.remote(path))
    if why is not None or attempts >= DECODE_ATTEMPTS:
        job.ledger.finish.remote(path)
        return {"path": path, "prepared": b"", "error": why or f"the decoder crashed its worker {attempts} times"}
    # A decoder stuck in native code cannot be interrupted: the watchdog takes the worker down, Ray retries the
    # task, and the ledger turns the retry into this file's error row.
    watchdog = threading.Timer(job.timeout_s, _stop_hung, (job.ledger, path, job.timeout_s))
    watchdog.daemon = True
    watchdog.start()
    try:
        prepared, error = job.decode(path, job.spec, where)
    finally:
        watchdog.cancel()
    job.ledger.finish.remote(path)
    blob = b"" if prepared is None else pickle.dumps(prepared, protocol=pickle.HIGHEST_PROTOCOL)
    return {"path": path, "prepared": blob, "error": error or ""}


def _stop_hung(ledger: Any, path: str, timeout_s: float) -> None:
    import ray

    ray.get(
        ledger.stopped.remote(path, f"decoding took longer than {timeout_s:g} s (--timeout); its worker was stopped")
    )
    os._exit(TIMEOUT_EXIT)


class ModelWorker:
    """One Ray actor of the model pool: loads the checkpoint once, then turns batches of decoded videos into
    records (JSON text, so that the driver writes them as they are)."""

    def __init__(self, model: ClusterModel, sizes: WorkerSizes, dtype: str, kind: Kind, batch_size: int) -> None:
        from vivit_cli.pipeline import load_model

        use_threads(sizes.threads)
        keep_freed_memory()
        self.classifier = load_model(model.load_ref, device=sizes.device, dtype=dtype, labels=model.labels)
        # The model string as the driver resolved it, with where this worker runs it.
        here = self.classifier.info
        self.info = replace(model.info, device=here.device, dtype=here.dtype)
        self.kind, self.batch_size = kind, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from vivit_cli.pipeline import score_videos

        records: list[dict[str, Any] | None] = [None] * len(batch["path"])
        decoded = []
        for i, (path, blob, error) in enumerate(zip(batch["path"], batch["prepared"], batch["error"], strict=True)):
            if error:
                records[i] = self.kind.error(str(path), str(error), self.info)
            else:
                decoded.append((i, pickle.loads(blob)))
        scores = score_videos(self.classifier, [p.frames for _, p in decoded], self.batch_size, self.kind.output)
        for (i, prepared), view_scores in zip(decoded, scores, strict=True):
            # The model string as the driver resolved it, not as the worker opened it: rows match a local run's.
            records[i] = {**self.kind.record(self.classifier, prepared, view_scores), **model_fields(self.info)}
        text = np.array([json.dumps(r, ensure_ascii=False) for r in records], dtype=object)
        return {"path": batch["path"], "record": text}


def use_threads(threads: int | None) -> None:
    """Give torch `threads` threads in a Ray worker. Ray sets OMP_NUM_THREADS to the CPUs a worker reserves (1 for
    a model worker that reserves none); torch.set_num_threads sets OpenMP's and MKL's thread counts over it."""
    import torch

    if threads:
        torch.set_num_threads(threads)
