"""Parquet output for `vivit batch` and `vivit embed` (local or --ray): the JSON records as typed columns. pyarrow
is imported lazily: it comes with the ray extra, or on its own (`pip install pyarrow`). No torch, no OpenCV."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vivit_cli.errors import SourceError
from vivit_cli.writers.embeddings import EMBED_COLUMNS
from vivit_cli.writers.files import FULL, write_error
from vivit_cli.writers.formats import PARQUET, RecordWriter
from vivit_cli.writers.records import BATCH_COLUMNS, Record

SUFFIX = f".{PARQUET}"
ROW_GROUP_ROWS = 4096  # records held in memory before they go to the file as one row group
READ_BATCH_ROWS = 65536  # records read back at a time (--resume), so a huge file is never all in memory
# The batch CSV's columns, with the top-k as a list of structs in place of the two joined cells; label and score
# repeat the first prediction so queries need no unnesting.
COLUMNS = tuple("predictions" if c == "top_labels" else c for c in BATCH_COLUMNS if c != "top_scores")


def require_pyarrow() -> None:
    """Our one-line error, before anything runs, when pyarrow is missing."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise SourceError(
            'Parquet output needs pyarrow: pip install pyarrow (or "vivit-cli[ray]", which has it)'
        ) from None


@dataclass(frozen=True)
class Table:
    """How one command's records become Parquet rows: its columns, typed where a record holds more than a string.

    `vivit batch`'s rows hold the top-k as a list of structs; `vivit embed`'s hold the embedding as a fixed-size list
    of `embedding_size` float32 values, a standard Arrow type (an error row's is null).
    """

    columns: tuple[str, ...]
    embedding_size: int | None = None  # embed's rows: the model's hidden size

    def schema(self) -> Any:
        import pyarrow as pa

        prediction = pa.struct([("label", pa.string()), ("score", pa.float64()), ("index", pa.int64())])
        view = pa.struct(
            [
                ("clip", pa.int64()),
                ("crop", pa.string()),
                ("frame_indices", pa.list_(pa.int64())),
                ("timestamps_s", pa.list_(pa.float64())),
            ]
        )
        types = {
            "score": pa.float64(),
            "predictions": pa.list_(prediction),
            "views": pa.list_(view),
            "duration_s": pa.float64(),
            "num_frames": pa.int64(),
            "fps": pa.float64(),
        }
        if self.embedding_size is not None:
            types["embedding"] = pa.list_(pa.float32(), self.embedding_size)
        return pa.schema([(name, types.get(name, pa.string())) for name in self.columns])

    def to_row(self, record: Record) -> dict[str, Any]:
        """A JSON record -> a row of schema(): a top-k's first label and score as columns of their own."""
        row = {name: record.get(name) for name in self.columns}
        row["views"] = record.get("views") or []
        if "predictions" in self.columns:
            preds = record.get("predictions") or []
            best = preds[0] if preds else {}
            row.update(label=best.get("label"), score=best.get("score"), predictions=preds)
        return row


BATCH_TABLE = Table(COLUMNS)


def embed_table(hidden_size: int) -> Table:
    """`vivit embed`'s rows, for a model of this hidden size."""
    return Table(EMBED_COLUMNS, hidden_size)


class ParquetWriter(RecordWriter):
    """Writes records to `path` through a temporary file that takes its name when finish() closes it.

    A Parquet file is readable only once closed, so the rows stay in the hidden temporary file until then; the
    CLI calls finish() on Ctrl-C and on errors too. A killed process leaves the old `path` as it was.
    """

    def __init__(self, path: str, table: Table = BATCH_TABLE) -> None:
        import pyarrow.parquet as pq

        self.path, self.table = path, table
        self._schema = table.schema()
        self._tmp = Path(path).with_name(f".{Path(path).name}.partial")
        self._rows: list[dict[str, Any]] = []
        self._done = False  # finished, or abandoned after a failed write
        try:
            self._file = pq.ParquetWriter(self._tmp, self._schema)
        except OSError as e:
            self._tmp.unlink(missing_ok=True)
            if e.errno in FULL:
                raise write_error(path, e) from None
            raise SourceError(f"cannot write {path}: {e}") from None

    def write(self, record: Record) -> None:
        self._rows.append(self.table.to_row(record))
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._failing(self._flush)

    def finish(self) -> None:
        """Write the last rows, close the file and give it its name."""
        if not self._done:
            self._failing(self._close)

    def abandon(self) -> None:
        """Close and delete the temporary file: `path` keeps what it held."""
        self._done = True
        with contextlib.suppress(OSError):
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def _failing(self, step: Callable[[], None]) -> None:
        """`step`, or when the disk is full, the temporary file given up (it is unreadable without the footer that
        could not be written) and the error: `path` keeps what it held, the rows of an earlier run included."""
        try:
            step()
        except OSError as e:
            self.abandon()
            raise write_error(self.path, e, f"; a Parquet file is readable only when whole: {self.path} is as it was "
                              "before this run") from None  # fmt: skip

    def _close(self) -> None:
        self._flush()
        self._file.close()
        os.replace(self._tmp, self.path)
        self._done = True

    def _flush(self) -> None:
        import pyarrow as pa

        if self._rows:
            self._file.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
            self._rows = []


def read_parquet_records(path: str | Path, columns: list[str] | None = None) -> Iterator[Record]:
    """The records of a Parquet file this module wrote, a batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for part in pq.ParquetFile(path).iter_batches(READ_BATCH_ROWS, columns=columns):
            yield from part.to_pylist()
    except (OSError, pa.ArrowException) as e:
        raise SourceError(f"cannot read {path} for --resume: {e}") from None


@contextmanager
def open_parquet(out: str, table: Table, kept: Iterable[Record] = ()) -> Iterator[ParquetWriter]:
    """A writer for `out` whose first rows are `kept` (--resume: the old rows to keep), finished afterwards."""
    writer = ParquetWriter(out, table)
    try:
        for record in kept:
            writer.write(record)
    except BaseException:
        writer.abandon()  # the old file stays as it is
        raise
    with writer:
        yield writer
