"""The records of the commands that label over time: `vivit timeline`'s segments and windows (TIMELINE), and
`vivit webcam --out`'s predictions and source events (WEBCAM). Built from the shared parts in records.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vivit_cli.results import LiveEvent, LivePrediction, ModelInfo, Prediction, Segment, Timeline, Window, shown_path
from vivit_cli.writers.records import (
    BEST_COLUMNS,
    MODEL_COLUMNS,
    SECONDS_DECIMALS,
    TIME_DECIMALS,
    Record,
    Schema,
    best_cells,
    cell,
    model_fields,
    prediction_record,
    top_cells,
)

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
    *MODEL_COLUMNS,
)


def timeline_records(timeline: Timeline) -> list[Record]:
    """The JSON objects: segments first, then windows; `predictions` is the top-k ([the label] for a segment)."""
    of_window = {w: s.index for s in timeline.segments for w in range(s.first_window, s.last_window + 1)}
    rows = []
    for s in timeline.segments:
        first, last = timeline.windows[s.first_window], timeline.windows[s.last_window]
        label = Prediction(s.label, s.score, first.predictions[0].index)
        rows.append(_span_record(timeline, "segment", s, s.index, first, last, (label,)))
    for w in timeline.windows:
        rows.append(_span_record(timeline, "window", w, of_window.get(w.index), w, w, w.predictions))
    return rows


def timeline_row(record: Record) -> Record:
    """A record -> its CSV row: null as an empty cell; a window's top-k joined with '|'."""
    row = {k: cell(record.get(k)) for k in TIMELINE_COLUMNS}
    if record["kind"] == "window":
        row.update(top_cells(record["predictions"]))
    return row


def _span_record(
    timeline: Timeline,
    kind: str,
    span: Segment | Window,
    segment: int | None,
    first: Window,
    last: Window,
    predictions: Sequence[Prediction],
) -> Record:
    """One row of `kind`: the span's time, the segment it is in, its first and last window and frame, its top-k."""
    top = [prediction_record(p) for p in predictions]
    return {
        "path": shown_path(timeline.source),
        "kind": kind,
        "index": span.index,
        "start_s": round(span.start_s, TIME_DECIMALS),
        "end_s": round(span.end_s, TIME_DECIMALS),
        "label": top[0]["label"] if top else None,  # None: a window with no label (--min-score)
        "score": top[0]["score"] if top else None,
        "segment": segment,
        "first_window": first.index,
        "last_window": last.index,
        "first_frame": first.frame_indices[0],
        "last_frame": last.frame_indices[-1],
        "predictions": top,
        **model_fields(timeline.model),
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
    *BEST_COLUMNS,
    *MODEL_COLUMNS,
    "attempt",
    "message",
)
PREDICTION_EVENT = "prediction"  # the `event` of a prediction's row


def webcam_record(p: LivePrediction, source: str, model: ModelInfo) -> Record:
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
        **model_fields(model),
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
        return {k: cell(record.get(k)) for k in WEBCAM_COLUMNS}
    return {**{k: v for k, v in record.items() if k != "predictions"}, **best_cells(record["predictions"])}


def _local_time(wall_time: float) -> str:
    """ISO 8601 with milliseconds, in local time with its offset."""
    return datetime.fromtimestamp(wall_time).astimezone().isoformat(timespec="milliseconds")


TIMELINE = Schema(
    TIMELINE_COLUMNS,
    ("csv", "json", "jsonl"),
    unknown="{path}: cannot tell the format: use a .csv, .json or .jsonl name, or - for JSONL on stdout",
    csv_row=timeline_row,
    unwritable="{path}: cannot write there ({reason})",
    json_indent=1,
)
WEBCAM = Schema(
    WEBCAM_COLUMNS,
    ("csv", "jsonl"),
    unknown="--out {path}: use a .csv or .jsonl name (or - for JSONL on stdout)",
    csv_row=webcam_row,
    unwritable="--out {path}: cannot be written ({reason})",
)
