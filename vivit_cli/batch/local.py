"""`vivit batch` on this machine: decoded files from the worker pool -> batches of views -> one row per file."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vivit_cli.batch.plan import DEFAULT_BATCH_SIZE, FLUSH_AFTER_S, Tally, Writer
from vivit_cli.batch.pool import DONE, DecodePool, DecodeSpec, one_line
from vivit_cli.writers.records import error_record, result_record

if TYPE_CHECKING:
    import numpy as np

    from vivit_cli.pipeline import Classifier, PreparedVideo
    from vivit_cli.video.decode import Views


@dataclass(eq=False)
class _Pending:
    """A decoded video whose views are going through the model, possibly over several batches."""

    prepared: PreparedVideo  # pixel_values: numpy (V, T, C, S, S)
    next_view: int = 0
    probs: list[np.ndarray] = field(default_factory=list)

    @property
    def views_left(self) -> int:
        return len(self.prepared.pixel_values) - self.next_view


def run(
    classifier: Classifier,
    paths: Sequence[str],
    pool: DecodePool,
    writer: Writer,
    views: Views,
    top_k: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    tally: Tally | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> Tally:
    """Decode `paths` in the pool, classify `batch_size` views per forward pass, and write each file's row (ok or
    error) as soon as it is known: rows come in completion order, not in the order of `paths`."""
    import numpy as np

    tally = tally or Tally()
    tally.started_s = time.monotonic()
    per_video = views.clips * views.crops
    # Enough decoded ahead for the next batch while this one runs, plus two per worker: memory stays flat.
    pool.submit(paths, DecodeSpec(classifier.config.num_frames, classifier.preprocess, views),
                max_pending=math.ceil(batch_size / per_video) + 2 * pool.workers)
    model, revision = classifier.info.model_id, classifier.info.revision

    def emit(record: dict[str, Any]) -> None:
        tally.write(writer, record, on_row)

    ready: deque[_Pending] = deque()
    ready_views, finished = 0, False
    while not finished or ready_views:
        if not finished and ready_views < batch_size:
            item = pool.get(FLUSH_AFTER_S if ready_views else None)
            if item == DONE:
                finished = True
            elif item is not None:
                assert not isinstance(item, str)
                if item.prepared is None:
                    emit(error_record(item.path, one_line(item.error or "unknown error"), model, revision))
                else:
                    ready.append(_Pending(item.prepared))
                    ready_views += len(item.prepared.pixel_values)
                continue
            # None: decoding has stalled (a slow or hung file); run what is ready rather than wait
        if ready_views:
            for pending in _forward(classifier, ready, batch_size):
                probs = np.concatenate(pending.probs)  # (V, L)
                emit(result_record(classifier.result(pending.prepared, probs, top_k)))
            ready_views = sum(p.views_left for p in ready)
    return tally


def _forward(classifier: Classifier, ready: deque[_Pending], batch_size: int) -> list[_Pending]:
    """One forward pass over up to batch_size views from the front of `ready`; returns the videos it completed."""
    import torch

    shape = ready[0].prepared.pixel_values.shape[1:]
    parts: list[tuple[_Pending, int, int]] = []
    taken = 0
    # Views of one shape only: without a centre crop, frame sizes differ between videos.
    while ready and taken < batch_size and ready[0].prepared.pixel_values.shape[1:] == shape:
        pending = ready[0]
        take = min(batch_size - taken, pending.views_left)
        parts.append((pending, pending.next_view, pending.next_view + take))
        pending.next_view += take
        taken += take
        if pending.views_left == 0:
            ready.popleft()
    x = torch.cat([torch.from_numpy(p.prepared.pixel_values[a:b]) for p, a, b in parts])  # (B, T, C, S, S)
    probs = classifier.scores(x)  # (B, L)
    done, offset = [], 0
    for pending, a, b in parts:
        pending.probs.append(probs[offset : offset + b - a])
        offset += b - a
        if b == len(pending.prepared.pixel_values):
            done.append(pending)
    return done
