"""Every command's records: a result -> the JSON object of one row, and that object -> its CSV row.

The schemas the README documents, in one place: `vivit classify --json` and `vivit batch` (BATCH),
`vivit timeline` (TIMELINE) and `vivit webcam --out` (WEBCAM). A prediction is the same object in all of them, and
the top-k becomes the same CSV cells. No torch, no OpenCV.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vivit_cli.results import LiveEvent, LivePrediction, ModelInfo, Prediction, Timeline, VideoResult, shown_path

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
    csv_row: Callable[[Record], Record]
    formats: tuple[str, ...]
    unknown: str  # the error for a name whose suffix is none of `formats`; {path}: the name
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


# classify --json and batch: one row per video.

BATCH_COLUMNS = (
    "path",
    "status",
    "label",
    "score",
    "top_labels",
    "top_scores",
    "views",
    "duration_s",
    "num_frames",
    "fps",
    "model",
    "revision",
    "device",
    "dtype",
    "error",
)


def model_fields(model: ModelInfo) -> Record:
    """What answered, as every record says it: the model and its commit, the device and dtype it ran in."""
    return {"model": model.model_id, "revision": model.revision, "device": model.device, "dtype": model.dtype}


def result_record(result: VideoResult) -> Record:
    """The JSON object for one classified video."""
    return {
        "path": shown_path(result.source),
        "status": "ok",
        "predictions": [prediction_record(p) for p in result.predictions],
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


def error_record(path: str, message: str, model: str | None = None, revision: str | None = None) -> Record:
    """The JSON object for a video that could not be classified; its `error` says why, not which file."""
    return {
        "path": shown_path(path),
        "status": "error",
        "error": shown_path(reason(path, message)),
        "predictions": [],
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


def batch_row(record: Record) -> Record:
    """A record -> its CSV row: top-1, then the top-k joined with '|', views as 'clips x crops'.

    A row read back from a CSV file (no "predictions") is already flat and comes back as it is.
    """
    if "predictions" not in record:
        return {column: record.get(column) or "" for column in BATCH_COLUMNS}
    views = record.get("views") or []
    clips = len({v["clip"] for v in views})
    return {
        "path": record["path"],
        "status": record["status"],
        **best_cells(record.get("predictions") or []),
        "views": f"{clips}x{len(views) // clips}" if clips else "",
        **{column: _cell(record.get(column)) for column in BATCH_COLUMNS[7:]},
    }


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, SECONDS_DECIMALS)


# timeline: one row per segment, then one per window, in the same columns; `kind` tells them apart. Segment rows
# span the stretch their windows speak for (these tile the video); window rows span the frames they sampled.

TIMELINE_COLUMNS = (
    "path",
    "kind",
    "index",
    "start_s",
    "end_s",
    "label",
    "score",
    "segment",
    "first_window",
    "last_window",
    "first_frame",
    "last_frame",
    "top_labels",
    "top_scores",
    "model",
    "revision",
    "device",
    "dtype",
)


def timeline_records(timeline: Timeline) -> list[Record]:
    """The JSON objects: segments first, then windows; `predictions` is the top-k ([the label] for a segment)."""
    common = {"path": shown_path(timeline.source), **model_fields(timeline.model)}
    of_window = {w: s.index for s in timeline.segments for w in range(s.first_window, s.last_window + 1)}
    rows = []
    for s in timeline.segments:
        first, last = timeline.windows[s.first_window], timeline.windows[s.last_window]
        label = Prediction(s.label, s.score, first.predictions[0].index)
        rows.append(
            _span_record(
                common,
                "segment",
                s.index,
                s.start_s,
                s.end_s,
                s.index,
                s.first_window,
                s.last_window,
                first.frame_indices[0],
                last.frame_indices[-1],
                (label,),
            )
        )
    for w in timeline.windows:
        rows.append(
            _span_record(
                common,
                "window",
                w.index,
                w.start_s,
                w.end_s,
                of_window.get(w.index),
                w.index,
                w.index,
                w.frame_indices[0],
                w.frame_indices[-1],
                w.predictions,
            )
        )
    return rows


def timeline_row(record: Record) -> Record:
    """A record -> its CSV row: null as an empty cell; a window's top-k joined with '|'."""
    row = {k: ("" if record.get(k) is None else record[k]) for k in TIMELINE_COLUMNS}
    if record["kind"] == "window":
        row.update(top_cells(record["predictions"]))
    return row


def _span_record(
    common: Record,
    kind: str,
    index: int,
    start_s: float,
    end_s: float,
    segment: int | None,
    first_window: int,
    last_window: int,
    first_frame: int,
    last_frame: int,
    predictions: Sequence[Prediction],
) -> Record:
    top = [prediction_record(p) for p in predictions]
    return {
        "path": common["path"],
        "kind": kind,
        "index": index,
        "start_s": round(start_s, TIME_DECIMALS),
        "end_s": round(end_s, TIME_DECIMALS),
        "label": top[0]["label"],
        "score": top[0]["score"],
        "segment": segment,
        "first_window": first_window,
        "last_window": last_window,
        "first_frame": first_frame,
        "last_frame": last_frame,
        "predictions": top,
        **{k: common[k] for k in ("model", "revision", "device", "dtype")},
    }


# webcam --out: one row per prediction, and one per event of the source (lost, reopened); `event` tells them apart.

WEBCAM_COLUMNS = (
    "time",
    "source",
    "event",
    "prediction",
    "first_frame",
    "last_frame",
    "first_s",
    "last_s",
    "latency_s",
    "smoothed_over",
    "label",
    "score",
    "top_labels",
    "top_scores",
    "model",
    "revision",
    "device",
    "dtype",
    "attempt",
    "message",
)
PREDICTION_EVENT = "prediction"  # the `event` of a prediction's row


def webcam_record(p: LivePrediction, source: str, model: ModelInfo | None = None) -> Record:
    """The JSON object for one prediction: wall-clock time, the frame span and the (smoothed) top-k."""
    return {
        "time": _local_time(p.wall_time),
        "source": shown_path(source),
        "event": PREDICTION_EVENT,
        "prediction": p.number,
        "first_frame": p.first_frame,
        "last_frame": p.last_frame,
        "first_s": round(p.first_s, SECONDS_DECIMALS),
        "last_s": round(p.last_s, SECONDS_DECIMALS),
        "latency_s": round(p.latency_s, SECONDS_DECIMALS),
        "smoothed_over": p.smoothed_over,
        "predictions": [prediction_record(x) for x in p.predictions],
        **(model_fields(model) if model else dict.fromkeys(("model", "revision", "device", "dtype"))),
    }


def webcam_event_record(event: LiveEvent, source: str) -> Record:
    """The JSON object for an event: "reconnecting" (before each attempt), "reconnected" or "failed"."""
    return {
        "time": _local_time(event.wall_time),
        "source": shown_path(source),
        "event": event.kind,
        "attempt": event.attempt,
        "message": event.message,
    }


def webcam_row(record: Record) -> Record:
    """A record -> its CSV row: top-1, then the top-k joined with '|'; an event's row leaves the rest empty."""
    if "predictions" not in record:
        return {k: _cell(record.get(k)) for k in WEBCAM_COLUMNS}
    return {**{k: v for k, v in record.items() if k != "predictions"}, **best_cells(record["predictions"])}


def _local_time(wall_time: float) -> str:
    """ISO 8601 with milliseconds, in local time with its offset."""
    return datetime.fromtimestamp(wall_time).astimezone().isoformat(timespec="milliseconds")


BATCH = Schema(
    BATCH_COLUMNS,
    batch_row,
    ("csv", "json", "jsonl", "parquet"),
    unknown="cannot tell the format of {path}: use a .csv, .json or .jsonl name, or --format",
)
TIMELINE = Schema(
    TIMELINE_COLUMNS,
    timeline_row,
    ("csv", "json", "jsonl"),
    unknown="{path}: cannot tell the format: use a .csv, .json or .jsonl name, or - for JSONL on stdout",
    unwritable="{path}: cannot write there ({reason})",
    json_indent=1,
)
WEBCAM = Schema(
    WEBCAM_COLUMNS,
    webcam_row,
    ("csv", "jsonl"),
    unknown="--out {path}: use a .csv or .jsonl name (or - for JSONL on stdout)",
    unwritable="--out {path}: cannot be written ({reason})",
)
