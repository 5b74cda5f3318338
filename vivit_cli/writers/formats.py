"""Records -> files and streams: the format from an --out name, one writer per format, and rows read back.

No torch, no OpenCV: nothing in `vivit_cli.writers` imports them, directly or through another module.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from vivit_cli.errors import OutputError, SourceError
from vivit_cli.writers.files import FULL, RowFile, write_error
from vivit_cli.writers.files import STDOUT as STDOUT  # as an --out name: JSONL on stdout
from vivit_cli.writers.files import check_folder as check_folder  # the one check of an output, for every command
from vivit_cli.writers.records import BATCH, Record, Schema

PARQUET = "parquet"
JSON_EMPTY = "[\n]\n"  # an empty JSON list as JsonWriter writes it
JSON_CLOSE = "\n]\n"  # what follows the last record of a JSON list


def format_for(path: str | Path | None, explicit: str | None = None, schema: Schema = BATCH) -> str:
    """The output format: --format if given, else the suffix of `path`, one of `schema.formats`; no file (or "-")
    means JSONL on stdout (or the schema's one format, when JSONL is not one). A name that tells none is the command's
    own SourceError."""
    if explicit:
        if explicit not in schema.formats:
            raise SourceError(f"unknown format {explicit!r}: use one of {', '.join(schema.formats)}")
        return explicit
    if path is None or str(path) == STDOUT:
        return "jsonl" if "jsonl" in schema.formats else schema.formats[0]
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in schema.formats:
        raise SourceError(schema.unknown.format(path=path))
    return suffix


class RecordWriter:
    """Takes records one at a time: write() each, then finish() once, also after an interrupt."""

    def write(self, record: Record) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """The output is complete."""

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.finish()  # also after an error or Ctrl-C: every row written so far stays readable


class TextWriter(RecordWriter):
    """Records into a text stream, flushed after each, so an interrupted run leaves every finished row readable.

    With `append`, the stream is a file a writer of this format wrote (or an empty one): --resume adds to it.
    """

    def __init__(self, stream: IO[str], schema: Schema = BATCH, append: bool = False) -> None:
        self.stream, self.schema = stream, schema
        self.seekable = _seekable(stream)
        self.size = stream.seek(0, io.SEEK_END) if append and self.seekable else 0  # what an append starts after
        self._start()
        stream.flush()

    def write(self, record: Record) -> None:
        start = self.stream.tell() if self.seekable else None
        try:
            self._write(record)
            self.stream.flush()
        except BaseException:  # a full disk, or Ctrl-C mid-record: no torn record stays
            if start is not None:
                self._undo(start)
            raise

    def finish(self) -> None:
        self.stream.flush()

    def _undo(self, start: int) -> None:
        """Cut off what a failed write left after `start` (where the file ended before it), and put back the tail
        that the write replaced."""
        tail = self._tail()
        with contextlib.suppress(OSError, OutputError, ValueError):
            self.stream.truncate(start - len(tail.encode("utf-8")))
            self.stream.seek(0, io.SEEK_END)
            self.stream.write(tail)

    def _tail(self) -> str:
        """What the file holds after its last record, that the next record replaces."""
        return ""

    def _start(self) -> None:
        """Whatever comes before the first record of a new file."""

    def _write(self, record: Record) -> None:
        raise NotImplementedError


class CsvWriter(TextWriter):
    """The schema's columns; the top-k joined into cells. A header opens a new file."""

    def _start(self) -> None:
        self._csv = csv.DictWriter(self.stream, fieldnames=self.schema.columns, lineterminator="\n")
        if self.size == 0:
            self._csv.writeheader()

    def _write(self, record: Record) -> None:
        self._csv.writerow(self.schema.csv_row(record))


class JsonlWriter(TextWriter):
    """One record per line."""

    def _write(self, record: Record) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")


class JsonWriter(TextWriter):
    """A list of records, each on lines of its own (laid out as json.dump(..., indent=schema.json_indent) would).

    The list is closed after each record and reopened by the next, so a seekable file is valid JSON at every
    moment between records. On a stream that cannot seek (a pipe) finish() closes the list.
    """

    def _start(self) -> None:
        if self.size == 0:
            self.stream.write(JSON_EMPTY if self.seekable else "[\n")
        self._empty = self.size <= len(JSON_EMPTY)  # no record yet: no comma before the next one

    def _write(self, record: Record) -> None:
        text = json.dumps(record, ensure_ascii=False, indent=self.schema.json_indent)
        if self.schema.json_indent:  # an item of the list: one level deeper than a record on its own
            text = "\n".join(" " * self.schema.json_indent + line for line in text.splitlines())
        line = ("" if self._empty else ",\n") + text
        if self.seekable:  # step back over the closing bracket written after the previous record
            end = self.stream.seek(0, io.SEEK_END)
            self.stream.seek(end - len(self._tail()))
            self.stream.truncate()
            line += JSON_CLOSE
        self.stream.write(line)
        self._empty = False

    def _tail(self) -> str:
        return "" if not self.seekable else JSON_EMPTY.removeprefix("[\n") if self._empty else JSON_CLOSE

    def finish(self) -> None:
        if not self.seekable:
            self.stream.write("]\n" if self._empty else JSON_CLOSE)
        self.stream.flush()


WRITERS: dict[str, type[TextWriter]] = {"csv": CsvWriter, "json": JsonWriter, "jsonl": JsonlWriter}


def get_writer(fmt: str, stream: IO[str], schema: Schema = BATCH, append: bool = False) -> TextWriter:
    """The writer of `fmt` ("csv", "json" or "jsonl") for a command's records on `stream`."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(WRITERS)}")
    return WRITERS[fmt](stream, schema, append)


@contextmanager
def open_output(path: str, schema: Schema, stdout: IO[str]) -> Iterator[TextWriter]:
    """A writer for the file `path` in the format its suffix names, or for JSONL on `stdout` when `path` is "-";
    finished (and the file closed) afterwards, however the block ends."""
    fmt = format_for(path, None, schema)
    with _open_text(path, schema, stdout) as stream, get_writer(fmt, stream, schema) as writer:
        yield writer


def write_all(path: str, records: Iterable[Record], schema: Schema, stdout: IO[str]) -> None:
    """Every record into `path` (or `stdout` for "-") at once, for a command that has all its rows at the end."""
    with _write_errors(path, schema), open_output(path, schema, stdout) as writer:
        for record in records:
            writer.write(record)


def write_document(path: str, document: Record, schema: Schema, stdout: IO[str]) -> None:
    """One JSON object into `path` (or `stdout` for "-"), laid out with schema.json_indent: a report, not rows."""
    text = json.dumps(document, ensure_ascii=False, indent=schema.json_indent) + "\n"
    with _write_errors(path, schema), _open_text(path, schema, stdout) as stream:
        stream.write(text)


@contextmanager
def _write_errors(path: str, schema: Schema) -> Iterator[None]:
    """A file that cannot be written is the command's SourceError; stdout's own errors pass through."""
    try:
        yield
    except OSError as e:
        if path == STDOUT:
            raise
        if e.errno in FULL:
            raise write_error(path, e) from None
        raise SourceError(schema.unwritable.format(path=path, reason=e.strerror or e)) from None


@contextmanager
def _open_text(path: str, schema: Schema, stdout: IO[str]) -> Iterator[IO[str]]:
    if path == STDOUT:
        yield stdout
        return
    with _write_errors(path, schema):
        stream = RowFile(path)
    with stream:
        yield stream


def _seekable(stream: IO[str]) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, OSError, ValueError):
        return False


def read_records(path: str | Path, fmt: str, columns: list[str] | None = None) -> Iterator[Record]:
    """The complete records of an output file (for --resume); a record torn by an interrupted write is skipped.

    `columns` limits what is read of a Parquet file; text formats are read whole.
    """
    if fmt == PARQUET:
        from vivit_cli.writers.parquet import read_parquet_records

        yield from read_parquet_records(path, columns)
        return
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if fmt == "csv":
        yield from _csv_records(text)
        return
    if fmt == "json":
        try:
            data = json.loads(text or "[]")
        except json.JSONDecodeError:
            data = None  # torn mid-write: JsonWriter puts each record on lines of its own
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


def _csv_records(text: str) -> Iterator[Record]:
    # CsvWriter ends every row with a newline: text after the last one is a torn row.
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


class LazyWriter(RecordWriter):
    """A writer that opens the output when the first row comes: a job that fails before (workers that cannot load
    the model, an unreachable cluster) leaves an existing --out as it was. Whoever opens the real writer finishes
    it."""

    def __init__(self, open_writer: Callable[[], RecordWriter]) -> None:
        self._open = open_writer
        self._writer: RecordWriter | None = None

    def write(self, record: Record) -> None:
        if self._writer is None:
            self._writer = self._open()
        self._writer.write(record)
