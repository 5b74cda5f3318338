"""Many files on this machine: decoded in the worker pool -> batches of views -> each file's scores, in the order
they finish; `run` writes them as rows (labels or embeddings)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vivit_cli.batch.plan import FLUSH_AFTER_S, Rows, Tally, default_batch_size
from vivit_cli.batch.pool import DONE, DecodePool
from vivit_cli.batch.rows import Kind
from vivit_cli.batch.worker import DecodeSpec, one_line
from vivit_cli.writers.formats import RecordWriter

if TYPE_CHECKING:
    import numpy as np

    from vivit_cli.pipeline import Classifier, Output
    from vivit_cli.video.sampling import Views
    from vivit_cli.video.views import PreparedVideo


@dataclass(frozen=True)
class Scored:
    """One file's outcome: its decoded views and their scores, or why it failed."""

    path: str
    prepared: PreparedVideo | None = None
    scores: np.ndarray | None = None  # (V, L) probabilities or (V, D) features
    error: str | None = None


def score_files(
    classifier: Classifier,
    paths: Sequence[str],
    pool: DecodePool,
    views: Views,
    batch_size: int | None = None,
    output: Output = "probs",
) -> Iterator[Scored]:
    """Decode `paths` in the pool and score `batch_size` views per forward pass; each file's outcome as soon as it
    is known, in completion order. `batch_size` None picks it by the classifier's device (default_batch_size)."""
    from vivit_cli.pipeline import ViewBatcher

    batch_size = batch_size or default_batch_size(classifier.device.type)
    per_video = views.clips * views.crops
    # Enough decoded ahead for the next batch while this one runs, plus two per worker: memory stays flat.
    pool.submit(
        paths,
        DecodeSpec(classifier.config.num_frames, classifier.preprocess, views),
        max_pending=math.ceil(batch_size / per_video) + 2 * pool.workers,
    )
    batcher = ViewBatcher(classifier, batch_size, output)

    def done(finished: list[tuple[Any, np.ndarray]]) -> Iterator[Scored]:
        for prepared, scores in finished:
            yield Scored(prepared.source, prepared, scores)

    while (item := pool.get(FLUSH_AFTER_S if batcher.pending else None)) is not DONE:
        if item is None:  # decoding has stalled (a slow or hung file): run what is ready rather than wait
            yield from done(batcher.step())
        elif item.prepared is None:
            yield Scored(item.path, error=one_line(item.error or "unknown error"))
        else:
            yield from done(batcher.add(item.prepared, item.prepared.frames))
    yield from done(batcher.drain())


def run(
    classifier: Classifier,
    paths: Sequence[str],
    pool: DecodePool,
    writer: RecordWriter,
    views: Views,
    kind: Kind,
    batch_size: int | None = None,
    tally: Tally | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Tally:
    """Score `paths` (score_files) and write each file's row, ok or error, as soon as it is known: rows come in
    completion order, not in the order of `paths`. `kind`: what a row holds, Labels(top_k) or Embeddings()."""
    tally = tally or Tally()
    tally.started_s = time.monotonic()
    rows = Rows(writer, tally, on_row)
    for scored in score_files(classifier, paths, pool, views, batch_size, kind.output):
        if scored.prepared is None or scored.scores is None:
            rows.write(kind.error(scored.path, scored.error or "unknown error", classifier.info))
        else:
            rows.write(kind.record(classifier, scored.prepared, scored.scores))
    return tally
