"""`vivit batch` on this machine: decoded files from the worker pool -> batches of views -> one row per file."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from vivit_cli.batch.plan import FLUSH_AFTER_S, Rows, Tally, Writer, default_batch_size
from vivit_cli.batch.pool import DONE, DecodePool
from vivit_cli.batch.worker import DecodeSpec, one_line
from vivit_cli.writers.records import error_record, result_record

if TYPE_CHECKING:
    import numpy as np

    from vivit_cli.pipeline import Classifier
    from vivit_cli.video.sampling import Views


def run(
    classifier: Classifier,
    paths: Sequence[str],
    pool: DecodePool,
    writer: Writer,
    views: Views,
    top_k: int,
    batch_size: int | None = None,
    tally: Tally | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Tally:
    """Decode `paths` in the pool, classify `batch_size` views per forward pass, and write each file's row (ok or
    error) as soon as it is known: rows come in completion order, not in the order of `paths`. `batch_size` None
    picks it by the classifier's device (default_batch_size)."""
    from vivit_cli.pipeline import ViewBatcher

    batch_size = batch_size or default_batch_size(classifier.device.type)
    tally = tally or Tally()
    tally.started_s = time.monotonic()
    rows = Rows(writer, tally, on_row)
    per_video = views.clips * views.crops
    # Enough decoded ahead for the next batch while this one runs, plus two per worker: memory stays flat.
    pool.submit(
        paths,
        DecodeSpec(classifier.config.num_frames, classifier.preprocess, views),
        max_pending=math.ceil(batch_size / per_video) + 2 * pool.workers,
    )
    model, revision = classifier.info.model_id, classifier.info.revision
    batcher = ViewBatcher(classifier, batch_size)

    def emit(done: list[tuple[Any, np.ndarray]]) -> None:
        for prepared, probs in done:  # probs (V, L)
            rows.write(result_record(classifier.result(prepared, probs, top_k)))

    while (item := pool.get(FLUSH_AFTER_S if batcher.pending else None)) is not DONE:
        if item is None:  # decoding has stalled (a slow or hung file): run what is ready rather than wait
            emit(batcher.step())
        elif item.prepared is None:
            rows.write(error_record(item.path, one_line(item.error or "unknown error"), model, revision))
        else:
            emit(batcher.add(item.prepared, item.prepared.pixel_values))
    emit(batcher.drain())
    return tally
