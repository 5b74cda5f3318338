"""A timeline -> rows for CSV / JSON / JSONL, and the terminal table of its segments. No torch, no OpenCV.

The schema (README, "Timeline"): one row per segment, then one per window, in the same columns; `kind` tells them
apart. Segment rows span the stretch their windows speak for (these tile the video); window rows span the frames
they sampled.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vivit_cli.errors import SourceError
from vivit_cli.results import clock
from vivit_cli.writers.records import TOP_SEPARATOR

if TYPE_CHECKING:  # pragma: no cover
    from vivit_cli.results import Timeline

CSV_COLUMNS = ("path", "kind", "index", "start_s", "end_s", "label", "score", "segment", "first_window",
               "last_window", "first_frame", "last_frame", "top_labels", "top_scores", "model", "revision")
FORMATS = ("csv", "json", "jsonl")
TIME_DECIMALS = 3  # milliseconds
SCORE_DECIMALS = 6


def timeline_records(timeline: Timeline) -> list[dict[str, Any]]:
    """The JSON objects: segments first, then windows; `predictions` is the top-k ([the label] for a segment)."""
    common = {"path": timeline.source, "model": timeline.model.model_id, "revision": timeline.model.revision}
    of_window = {w: s.index for s in timeline.segments for w in range(s.first_window, s.last_window + 1)}
    rows = []
    for s in timeline.segments:
        first, last = timeline.windows[s.first_window], timeline.windows[s.last_window]
        index = first.predictions[0].index
        rows.append(_record(common, "segment", s.index, s.start_s, s.end_s, s.index, s.first_window, s.last_window,
                            first.frame_indices[0], last.frame_indices[-1],
                            [{"label": s.label, "score": round(s.score, SCORE_DECIMALS), "index": index}]))
    for w in timeline.windows:
        preds = [{"label": p.label, "score": round(p.score, SCORE_DECIMALS), "index": p.index} for p in w.predictions]
        rows.append(_record(common, "window", w.index, w.start_s, w.end_s, of_window.get(w.index), w.index, w.index,
                            w.frame_indices[0], w.frame_indices[-1], preds))
    return rows


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """A JSON record -> its CSV row: top-k joined with '|', null as an empty cell."""
    preds = record["predictions"]
    row = {k: ("" if record.get(k) is None else record[k]) for k in CSV_COLUMNS}
    row["top_labels"] = TOP_SEPARATOR.join(p["label"] for p in preds) if record["kind"] == "window" else ""
    row["top_scores"] = TOP_SEPARATOR.join(f"{p['score']:.6f}" for p in preds) if record["kind"] == "window" else ""
    return row


def write_timeline(timeline: Timeline, out: str | Path | IO[str]) -> None:
    """Write the rows into the file `out`, in the format its suffix names, or as JSONL into a stream."""
    records = timeline_records(timeline)
    if not isinstance(out, (str, Path)):
        _write(out, records, "jsonl")
        return
    fmt = output_format(out)
    try:
        with open(out, "w", encoding="utf-8", newline="") as f:
            _write(f, records, fmt)
    except OSError as e:
        raise SourceError(f"{out}: cannot write there ({e.strerror or e})") from None


def output_format(out: str | Path) -> str:
    """"csv", "json" or "jsonl" from the suffix of `out` ("-" is JSONL on stdout), checked before any work."""
    if str(out) == "-":
        return "jsonl"
    fmt = Path(out).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise SourceError(f"{out}: cannot tell the format: use a .csv, .json or .jsonl name, or - for JSONL on stdout")
    if not Path(out).absolute().parent.is_dir():
        raise SourceError(f"{out}: no folder {Path(out).absolute().parent} to write into")
    return fmt


def print_segments_table(console: Any, timeline: Timeline) -> None:
    """A rich table: one row per segment, with the stretches below the threshold between them dimmed."""
    from rich.table import Table

    name = Path(timeline.source).name
    details = (f"{clock(timeline.end_s - timeline.start_s)}, {len(timeline.windows)} windows every "
               f"{timeline.every_s:g} s, threshold {timeline.threshold:g}")
    table = Table(
        title=f"{name}  [dim]{details}[/dim]",
        title_justify="left",
        min_width=len(name) + 2 + len(details),  # a title wider than the columns would wrap
        caption=f"model {timeline.model.model_id}"
        + (f" @ {timeline.model.revision[:12]}" if timeline.model.revision else ""),
        caption_justify="left",
    )
    for name, justify in (("#", "right"), ("start", "right"), ("end", "right"), ("label", "left"),
                          ("score", "right"), ("windows", "right")):
        table.add_column(name, justify=justify, style="dim" if name == "#" else None)  # type: ignore[arg-type]
    at = timeline.start_s
    for s in timeline.segments:
        if s.start_s > at + 1e-6:
            table.add_row("", clock(at), clock(s.start_s), "[dim](below threshold)[/dim]", "", "")
        table.add_row(str(s.index), clock(s.start_s), clock(s.end_s), s.label, f"{100 * s.score:.1f}%",
                      str(s.num_windows))
        at = s.end_s
    if timeline.end_s > at + 1e-6:
        table.add_row("", clock(at), clock(timeline.end_s), "[dim](below threshold)[/dim]", "", "")
    console.print(table)


def _record(common: dict[str, Any], kind: str, index: int, start_s: float, end_s: float, segment: int | None,
            first_window: int, last_window: int, first_frame: int, last_frame: int,
            predictions: list[dict[str, Any]]) -> dict[str, Any]:
    top = predictions[0]
    return {"path": common["path"], "kind": kind, "index": index, "start_s": round(start_s, TIME_DECIMALS),
            "end_s": round(end_s, TIME_DECIMALS), "label": top["label"], "score": top["score"], "segment": segment,
            "first_window": first_window, "last_window": last_window, "first_frame": first_frame,
            "last_frame": last_frame, "predictions": predictions, "model": common["model"],
            "revision": common["revision"]}


def _write(stream: IO[str], records: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "csv":
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_row(r) for r in records)
    elif fmt == "jsonl":
        stream.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        json.dump(records, stream, ensure_ascii=False, indent=1)
        stream.write("\n")

