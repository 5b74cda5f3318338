"""Labelled videos -> each one's view features (V, D): from the cache, else through the model (decoded in the worker
pool, batched by score_files) and into the cache the moment each is done."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vivit_cli.batch.local import score_files
from vivit_cli.batch.pool import DecodePool

if TYPE_CHECKING:
    from vivit_cli.learn.cache import EmbeddingCache
    from vivit_cli.pipeline import Classifier
    from vivit_cli.video.sampling import Views


@dataclass(frozen=True)
class Embedded:
    """What embedding the videos gave: features by path, and the videos that failed with why."""

    features: dict[str, np.ndarray]  # path -> (V, D) float32
    failed: dict[str, str]  # path -> one-line error


def embed_videos(
    paths: Sequence[str],
    cache: EmbeddingCache,
    load: Callable[[], Classifier],
    views: Views,
    workers: int,
    timeout_s: float,
    batch_size: int | None,
    on_video: Callable[[str, np.ndarray | str, bool], None],  # (path, its features or why it failed, from the cache)
    # for every video answered; an exception it raises stops the run, and the workers with it
) -> Embedded:
    """Every video's features, cached ones first; `load` is called (while the workers start) only when some video
    is not in the cache, so a run with everything cached loads no model."""
    features: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    todo = []
    for path in dict.fromkeys(paths):
        kept = cache.get(path)
        if kept is None:
            todo.append(path)
        else:
            features[path] = kept
            on_video(path, kept, True)
    if todo:
        with DecodePool(workers, timeout_s) as pool:
            classifier = load()
            for scored in score_files(classifier, todo, pool, views, batch_size, output="features"):
                result: np.ndarray | str
                if scored.scores is None:
                    result = failed[scored.path] = scored.error or "unknown error"
                elif not np.isfinite(scored.scores).all():  # an overflow (fp16): left out, and not cached
                    result = failed[scored.path] = (
                        f"its features are not finite (NaN or inf) in {classifier.dtype_name}"
                    )
                else:
                    cache.put(scored.path, scored.scores)
                    result = features[scored.path] = scored.scores
                on_video(scored.path, result, False)
    return Embedded(features, failed)
