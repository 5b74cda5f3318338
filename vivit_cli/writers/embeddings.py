"""The records of `vivit embed`: one row per video with its embedding (EMBED). No torch, no OpenCV."""

from __future__ import annotations

from vivit_cli.results import VideoEmbedding
from vivit_cli.writers.records import MODEL_COLUMNS, VIDEO_COLUMNS, Record, Schema, ok_record

FLOAT32_DIGITS = 9  # significant digits that give a float32 back exactly from its JSON text

EMBED_COLUMNS = ("path", "status", "embedding", *VIDEO_COLUMNS, *MODEL_COLUMNS, "error")


def embedding_record(embedding: VideoEmbedding) -> Record:
    """The JSON object for one embedded video: its vector (float32 values), the views averaged, the model."""
    return ok_record(embedding, {"embedding": [float(f"{x:.{FLOAT32_DIGITS}g}") for x in embedding.vector]})


EMBED = Schema(
    EMBED_COLUMNS,
    ("jsonl", "json", "parquet"),
    unknown="cannot tell the format of {path}: embeddings go to a .parquet, .jsonl or .json file, or --format",
)
