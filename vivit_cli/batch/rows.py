"""What a run over many files writes for each: its labels (`vivit batch`) or its embedding (`vivit embed`).

A kind names the model output it needs, the schema its rows follow, and how a file's scores or its error become a
row; the local run and the Ray workers take one and do the rest the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vivit_cli.writers import parquet
from vivit_cli.writers.embeddings import EMBED, embedding_record
from vivit_cli.writers.records import BATCH, Record, Schema, error_record, result_record

if TYPE_CHECKING:
    from vivit_cli.pipeline import Classifier, Output
    from vivit_cli.results import ModelInfo
    from vivit_cli.video.views import PreparedVideo


@dataclass(frozen=True)
class Labels:
    """A row of the top-k labels, the views' probabilities averaged."""

    top_k: int = 5
    output: Output = "probs"
    schema: Schema = BATCH

    def record(self, classifier: Classifier, prepared: PreparedVideo, scores: np.ndarray) -> Record:
        return result_record(classifier.result(prepared, scores, self.top_k))

    def error(self, path: str, message: str, info: ModelInfo) -> Record:
        return error_record(path, message, info.model_id, info.revision)

    def table(self, hidden_size: int) -> parquet.Table:
        """The rows' Parquet columns for a model of this hidden size."""
        return parquet.BATCH_TABLE


@dataclass(frozen=True)
class Embeddings:
    """A row of the embedding, the views' features averaged; `keep` also hears every view's features (V, D), to
    cache them for `vivit train` and `vivit label`."""

    output: Output = "features"
    schema: Schema = EMBED
    keep: Callable[[str, np.ndarray], None] | None = None

    def record(self, classifier: Classifier, prepared: PreparedVideo, scores: np.ndarray) -> Record:
        if self.keep is not None and np.isfinite(scores).all():
            self.keep(prepared.source, scores)
        return embedding_record(classifier.embedding(prepared, scores))

    def error(self, path: str, message: str, info: ModelInfo) -> Record:
        return error_record(path, message, info.model_id, info.revision, empty={"embedding": None})

    def table(self, hidden_size: int) -> parquet.Table:
        """The rows' Parquet columns: the embedding a fixed-size list of hidden_size float32 values."""
        return parquet.embed_table(hidden_size)


Kind = Labels | Embeddings  # what a run writes per file
