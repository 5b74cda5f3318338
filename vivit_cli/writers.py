"""Results -> records, files (CSV / JSON / JSONL) and the terminal table. No torch, no OpenCV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vivit_cli.results import VideoResult

FORMATS = ("csv", "json", "jsonl")
# The flat row of `vivit batch`: one per video, stable column order (documented in the README).
CSV_COLUMNS = ("path", "status", "label", "score", "top_labels", "top_scores", "views", "model", "revision", "error")
TOP_SEPARATOR = "|"  # between the top-k labels (and scores) in one CSV cell


def result_record(result: VideoResult) -> dict[str, Any]:
    """The JSON object for one classified video."""
    return {
        "path": result.source,
        "status": "ok",
        "predictions": [{"label": p.label, "score": round(p.score, 6), "index": p.index} for p in result.predictions],
        "views": [
            {"clip": v.clip, "crop": v.crop, "frame_indices": list(v.frame_indices),
             "timestamps_s": [round(t, 4) for t in v.timestamps_s]}
            for v in result.views
        ],
        "duration_s": None if result.duration_s is None else round(result.duration_s, 4),
        "num_frames": result.num_frames,
        "fps": None if result.fps is None else round(result.fps, 4),
        "model": result.model.model_id,
        "revision": result.model.revision,
    }


def error_record(path: str, message: str, model: str | None = None, revision: str | None = None) -> dict[str, Any]:
    """The JSON object for a video that could not be classified."""
    return {"path": path, "status": "error", "error": message, "predictions": [], "views": [],
            "model": model, "revision": revision}


def flat_row(record: dict[str, Any]) -> dict[str, Any]:
    """A JSON record -> the CSV row: top-1, then the top-k joined with '|', views as 'clips x crops'.

    A row read back from a CSV file (no "predictions") is already flat and comes back as it is.
    """
    if "predictions" not in record:
        return {column: record.get(column) or "" for column in CSV_COLUMNS}
    preds = record.get("predictions") or []
    views = record.get("views") or []
    clips = len({v["clip"] for v in views})
    return {
        "path": record["path"],
        "status": record["status"],
        "label": preds[0]["label"] if preds else "",
        "score": f"{preds[0]['score']:.6f}" if preds else "",
        "top_labels": TOP_SEPARATOR.join(p["label"] for p in preds),
        "top_scores": TOP_SEPARATOR.join(f"{p['score']:.6f}" for p in preds),
        "views": f"{clips}x{len(views) // clips}" if clips else "",
        "model": record.get("model") or "",
        "revision": record.get("revision") or "",
        "error": record.get("error") or "",
    }


def format_for(path: str | Path | None, explicit: str | None = None) -> str:
    """The output format: --format if given, else the file's suffix; no file means JSONL on stdout."""
    if explicit:
        return explicit
    if path is None or str(path) == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the format of {path}: use a .csv, .json or .jsonl name, or --format")
    return suffix


JSON_EMPTY = "[\n]\n"  # an empty JSON list as RecordWriter writes it
JSON_CLOSE = "\n]\n"  # what follows the last record of a JSON list


@dataclass
class RecordWriter:
    """Writes records one at a time, flushed, so an interrupted run leaves every finished row readable.

    JSON is one record per line inside a list that is closed after each record and reopened by the next, so a
    seekable file is valid JSON at every moment between records. On a stream that cannot seek (a pipe) the
    list is closed by finish(). With `append`, the stream is a file this class wrote (or an empty one).
    """

    stream: IO[str]
    fmt: str
    append: bool = False  # the stream already holds records of this format (resume)
    _count: int = 0

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"unknown format {self.fmt!r}: use one of {', '.join(FORMATS)}")
        self._seekable = _seekable(self.stream)
        size = self.stream.seek(0, io.SEEK_END) if self.append and self._seekable else 0
        fresh = not self.append or size == 0
        if self.fmt == "csv":
            self._csv = csv.DictWriter(self.stream, fieldnames=CSV_COLUMNS, lineterminator="\n")
            if fresh:
                self._csv.writeheader()
        elif self.fmt == "json" and fresh:
            self.stream.write(JSON_EMPTY if self._seekable else "[\n")
        # In JSON only "none yet" or "some" matters: it decides whether a comma comes before the next one.
        self._count = 0 if fresh or size <= len(JSON_EMPTY) else 1
        self.stream.flush()

    def write(self, record: dict[str, Any]) -> None:
        if self.fmt == "csv":
            self._csv.writerow(flat_row(record))
        elif self.fmt == "jsonl":
            self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            line = ("" if self._count == 0 else ",\n") + json.dumps(record, ensure_ascii=False)
            if self._seekable:
                self._reopen_json_list()
                line += JSON_CLOSE
            self.stream.write(line)
        self._count += 1
        self.stream.flush()

    def finish(self) -> None:
        """Close a JSON list written to a stream that cannot seek; nothing to do otherwise."""
        if self.fmt == "json" and not self._seekable:
            self.stream.write(JSON_CLOSE if self._count else "]\n")
        self.stream.flush()

    def _reopen_json_list(self) -> None:
        """Step back over the closing bracket written after the previous record."""
        end = self.stream.seek(0, io.SEEK_END)
        self.stream.seek(end - len(JSON_CLOSE if self._count else JSON_EMPTY.removeprefix("[\n")))
        self.stream.truncate()


def _seekable(stream: IO[str]) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, OSError, ValueError):
        return False


def read_records(path: str | Path, fmt: str) -> Iterator[dict[str, Any]]:
    """Complete records in an output file (for --resume); a record torn by an interrupted write is skipped."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if fmt == "csv":
        yield from _csv_records(text)
        return
    if fmt == "json":
        try:
            data = json.loads(text or "[]")
        except json.JSONDecodeError:
            data = None  # torn mid-write: RecordWriter puts each record on a line of its own
        if isinstance(data, list):
            yield from (r for r in data if isinstance(r, dict))
            return
    for line in text.splitlines():
        line = line.strip().rstrip(",") if fmt == "json" else line
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield record


def _csv_records(text: str) -> Iterator[dict[str, Any]]:
    # RecordWriter ends every row with a newline: text after the last one is a torn row.
    reader = csv.reader(io.StringIO(text[: text.rfind("\n") + 1]))
    header = next(reader, None)
    if header is None:
        return
    try:
        for row in reader:
            if len(row) == len(header):
                yield dict(zip(header, row, strict=True))
    except csv.Error:
        return


def print_results_table(console: Any, result: VideoResult, title_extra: str = "") -> None:
    """A rich table for one video: rank, label, score in %, and a bar."""
    from rich.table import Table

    views = result.views
    clips = len({v.clip for v in views}) or 1
    duration = f"{result.duration_s:.1f} s" if result.duration_s is not None else "?"
    table = Table(
        title=f"{Path(result.source).name}  [dim]{duration}, {clips} clip(s) x {len(views) // clips} crop(s)"
        f"{title_extra}[/dim]",
        title_justify="left",
        caption=model_line([result]),
        caption_justify="left",
    )
    table.add_column("#", justify="right", style="dim")
    table.add_column("label")
    table.add_column("score", justify="right")
    table.add_column("", min_width=20)
    for rank, p in enumerate(result.predictions, 1):
        table.add_row(str(rank), p.label, f"{100 * p.score:.1f}%", _bar(p.score))
    console.print(table)


def _bar(fraction: float, width: int = 20) -> str:
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    return "█" * (eighths // 8) + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[eighths % 8]


def model_line(results: Iterable[VideoResult]) -> str:
    """'model org/name @ abc1234' for the first result, for the table's footer."""
    for r in results:
        rev = f" @ {r.model.revision[:12]}" if r.model.revision else ""
        return f"model {r.model.model_id}{rev}"
    return ""
