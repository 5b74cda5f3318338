"""Every command's records: a result -> the JSON object of one row, and that object -> its CSV row.

The parts every schema shares (a prediction is the same object everywhere, and the top-k becomes the same CSV
cells, what answered the same four fields), and the schema of `vivit classify --json` and `vivit batch` (BATCH);
the live commands' schemas are in live.py. No torch, no OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from vivit_cli.results import ModelInfo, Prediction, VideoEmbedding, VideoResult, shown_path

Record = dict[str, Any]  # one row as JSON: what every writer takes

TOP_SEPARATOR = "|"  # between the top-k labels (and scores) in one CSV cell
SCORE_DECIMALS = 6
SECONDS_DECIMALS = 4  # timestamps, durations, frame rates and latencies of classify, batch and webcam records
TIME_DECIMALS = 3  # timeline rows: milliseconds


@dataclass(frozen=True)
class Schema:
    """What one command writes: its CSV columns and how a record fills them, the formats its --out takes, and
    what it says when an --out name is none of them or cannot be opened."""

    columns: tuple[str, ...]
    formats: tuple[str, ...]
    unknown: str  # the error for a name whose suffix is none of `formats`; {path}: the name
    csv_row: Callable[[Record], Record] = lambda record: record  # a record -> its CSV row; as it is by default
    unwritable: str = "{path}: cannot be written ({reason})"  # {reason}: the system's words
    json_indent: int | None = None  # a JSON file's layout: None puts each record on a line of its own


def prediction_record(p: Prediction) -> Record:
    """One of the top-k, as every command writes it."""
    return {"label": p.label, "score": round(p.score, SCORE_DECIMALS), "index": p.index}


def top_cells(predictions: Sequence[Record]) -> Record:
    """The top-k as two CSV cells: the labels and the scores (6 decimals), each joined with '|'."""
    return {
        "top_labels": TOP_SEPARATOR.join(p["label"] for p in predictions),
        "top_scores": TOP_SEPARATOR.join(_score_cell(p["score"]) for p in predictions),
    }


def best_cells(predictions: Sequence[Record]) -> Record:
    """The top-1 label and score as CSV cells ("" without predictions), then the top-k's cells."""
    best = predictions[0] if predictions else None
    return {
        "label": best["label"] if best else "",
        "score": _score_cell(best["score"]) if best else "",
        **top_cells(predictions),
    }


def _score_cell(score: float) -> str:
    return f"{score:.{SCORE_DECIMALS}f}"


# What answered, in every record: the model id and commit, the device and dtype it ran in.
MODEL_COLUMNS = ("model", "revision", "device", "dtype")
BEST_COLUMNS = ("label", "score", "top_labels", "top_scores")  # the cells best_cells fills
VIDEO_COLUMNS = ("views", "duration_s", "num_frames", "fps")  # the fields ok_record fills after the answer

# classify --json and batch: one row per video.
BATCH_COLUMNS = ("path", "status", *BEST_COLUMNS, *VIDEO_COLUMNS, *MODEL_COLUMNS, "error")


def model_fields(model: ModelInfo) -> Record:
    """What answered, as every record says it: the model and its commit, the device and dtype it ran in."""
    return dict(zip(MODEL_COLUMNS, (model.model_id, model.revision, model.device, model.dtype), strict=True))


def result_record(result: VideoResult) -> Record:
    """The JSON object for one classified video."""
    return ok_record(result, {"predictions": [prediction_record(p) for p in result.predictions]})


def ok_record(result: VideoResult | VideoEmbedding, answer: Record) -> Record:
    """The JSON object for a video the model answered: `answer` (its predictions, or its embedding), then the views
    that went through the model, the video's duration, frame count and rate, and what answered."""
    return {
        "path": shown_path(result.source),
        "status": "ok",
        **answer,
        "views": [
            {
                "clip": v.clip,
                "crop": v.crop,
                "frame_indices": list(v.frame_indices),
                "timestamps_s": [round(t, SECONDS_DECIMALS) for t in v.timestamps_s],
            }
            for v in result.views
        ],
        "duration_s": _rounded(result.duration_s),
        "num_frames": result.num_frames,
        "fps": _rounded(result.fps),
        **model_fields(result.model),
    }


def error_record(
    path: str, message: str, model: str | None = None, revision: str | None = None, empty: Record | None = None
) -> Record:
    """The JSON object for a video that could not be classified; its `error` says why, not which file. `empty`:
    what stands for the missing answer (no predictions; embed's rows: no embedding)."""
    return {
        "path": shown_path(path),
        "status": "error",
        "error": shown_path(reason(path, message)),
        **({"predictions": []} if empty is None else empty),
        "views": [],
        "model": model,
        "revision": revision,
        "device": None,  # no model pass produced this row
        "dtype": None,
    }


def reason(path: str, message: str) -> str:
    """An error without the '<path>: ' it starts with when it names its file (as our errors do, the path quoted
    when it holds control characters): the row holds the path already."""
    for shown in (path, shown_path(path), ascii(path)):
        if message.startswith(f"{shown}: "):
            return message[len(shown) + 2 :]
    return message


def views_cell(views: Sequence[Record]) -> str:
    """The views as one CSV cell: 'clips x crops'."""
    clips = len({v["clip"] for v in views})
    return f"{clips}x{len(views) // clips}" if clips else ""


def batch_row(record: Record) -> Record:
    """A record -> its CSV row: top-1, then the top-k joined with '|', views as 'clips x crops'.

    A row read back from a CSV file (no "predictions") is already flat and comes back as it is.
    """
    row = {column: cell(record.get(column)) for column in BATCH_COLUMNS}
    if "predictions" in record:
        row.update(best_cells(record["predictions"] or []), views=views_cell(record.get("views") or []))
    return row


def cell(value: Any) -> Any:
    """A CSV cell: null as empty."""
    return "" if value is None else value


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, SECONDS_DECIMALS)


BATCH = Schema(
    BATCH_COLUMNS,
    ("csv", "json", "jsonl", "parquet"),
    unknown="cannot tell the format of {path}: use a .csv, .json, .jsonl or .parquet name, or --format",
    csv_row=batch_row,
)
