"""`vivit batch`'s plan: sources -> video paths, the output and --resume, checked before any model loads.

Torch, NumPy and OpenCV are imported inside the functions that need them, so the CLI reads the defaults cheaply.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from vivit_cli.batch import processes
from vivit_cli.batch.pool import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S  # re-exported: a run's defaults together
from vivit_cli.errors import SourceError
from vivit_cli.results import counted, one_line
from vivit_cli.video.sources import collect_videos, path_key
from vivit_cli.writers import parquet
from vivit_cli.writers.files import RowFile
from vivit_cli.writers.formats import PARQUET, RecordWriter, check_folder, format_for, get_writer, read_records
from vivit_cli.writers.records import BATCH, Schema, views_cell

if TYPE_CHECKING:
    from vivit_cli.results import ModelInfo

# Views (clips x crops) per forward pass, by device (--batch-size auto). On a CPU batching barely pays (ViViT-B:
# 8.83 s a view one at a time, 8.59 s in batches of 4) and one view a pass writes each file's row, and moves the
# bar, as soon as the file is done. On a GPU a batch amortises the launches; with the model at tens of ms a view,
# decoding is the limit there, so a bigger batch would only hold rows back and take memory.
CPU_BATCH_SIZE = 1
GPU_BATCH_SIZE = 8
MAX_WORKERS = 8  # decode processes by default, at most
CPU_CORES_PER_WORKER = 4  # on a CPU the model is the bottleneck: a worker per this many cores keeps it fed
FLUSH_AFTER_S = 1.0  # seconds without a newly decoded file after which a part-full batch runs anyway
LISTED_FAILURES = 5  # failed files named, with why, at the end of a run; the others are only counted


@dataclass(frozen=True)
class Plan:
    """What a batch run will do: the files still to classify, and where their rows go."""

    todo: tuple[str, ...]
    out: str | None  # None: stdout
    fmt: str
    skipped: int  # files that already have an ok row in `out` (--resume)
    resume: bool
    models: frozenset[tuple[str, str]] = frozenset()  # (model, revision or "") of those rows
    shapes: frozenset[str] = frozenset()  # their views, as "clips x crops" ("2x1")
    schema: Schema = BATCH  # what a row holds: labels (batch) or an embedding (embed)
    table: parquet.Table = parquet.BATCH_TABLE  # its Parquet columns (embed's depend on the model: set once known)


def plan(
    sources: Sequence[str], recursive: bool, out: str | None, fmt: str | None, resume: bool, schema: Schema = BATCH
) -> Plan:
    """Check the options and list the files, before any model is loaded; --resume reads `out` but leaves it as is."""
    out = None if out == "-" else out
    if resume and out is None:
        raise SourceError("--resume needs --out: rows written to stdout cannot be read back")
    fmt = format_for(out, fmt, schema)
    if fmt == PARQUET:
        if out is None:
            raise SourceError(f"Parquet goes to a file, not to stdout: give --out preds{parquet.SUFFIX}")
        parquet.require_pyarrow()
    if out is not None:
        if os.path.isdir(out):
            suffixes = ", ".join(f".{f}" for f in schema.formats)
            raise SourceError(f"--out {out} is a folder: give a file name ending in {suffixes}")
        check_folder(out)
    paths = collect_videos(sources, recursive)
    finished: list[dict[str, Any]] = []
    if resume and out is not None and os.path.isfile(out):
        records = read_records(out, fmt, columns=["path", "status", "model", "revision", "views"])
        finished = [r for r in records if r.get("status") == "ok"]
    done = {path_key(str(r.get("path"))) for r in finished}
    todo = tuple(p for p in paths if path_key(p) not in done)
    models = frozenset((str(r.get("model") or ""), str(r.get("revision") or "")) for r in finished)
    shapes = frozenset(_shape(r.get("views")) for r in finished) - {""}
    return Plan(todo, out, fmt, len(paths) - len(todo), resume, models, shapes, schema)


def _shape(views: Any) -> str:
    """A row's views as 'clips x crops': a CSV cell holds it as it is, the other formats list the views."""
    return views if isinstance(views, str) else views_cell(views or [])


def check_views(job: Plan, clips: int, crops: int) -> None:
    """--resume adds rows made from the views of the finished ones: one file, one way of sampling videos."""
    ours = f"{clips}x{crops}"
    others = sorted(job.shapes - {ours})
    if others:
        theirs = others[0].split("x")
        raise SourceError(
            f"--resume: {job.out} holds rows of {theirs[0]} clips x {theirs[1]} crops, not {clips} x {crops}: resume "
            "with those --clips and --crops, or write to another --out"
        )


def check_model(job: Plan, info: ModelInfo) -> None:
    """--resume adds rows to a file only from the model that wrote its finished rows: one file, one model."""
    ours = (info.model_id, info.revision or "")
    others = sorted(m for m in job.models if not _same_model(m, ours))
    if others:
        raise SourceError(
            f"--resume: {job.out} holds rows from {_named(others[0])}, not {_named(ours)}: resume with that --model, "
            "or write to another --out"
        )


def _named(model: tuple[str, str]) -> str:
    """(model, revision) as a message names it: the revision cut to 12 characters, as a commit is shown."""
    return f"{model[0]}@{model[1][:12]}" if model[1] else model[0]


def _same_model(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Same id and revision; a folder is the same folder however its path is spelt."""
    if a == b:
        return True
    try:
        return a[1] == b[1] == "" and os.path.samefile(a[0], b[0])
    except OSError:
        return False


@contextmanager
def open_output(job: Plan, stdout: IO[str]) -> Iterator[RecordWriter]:
    """A writer for job.out (or `stdout`); on --resume the file keeps its finished rows and loses a torn last one.

    Error rows of the files about to be retried are dropped first, so every file has one row in the end.
    The rewrite goes through a temporary file and a rename: an interrupt leaves the old file or the new one.
    """
    if job.out is None:
        with get_writer(job.fmt, stdout, job.schema) as writer:
            yield writer
        return
    resume = job.resume and os.path.isfile(job.out)
    if job.fmt == PARQUET:
        with parquet.open_parquet(job.out, job.table, _kept(job) if resume else ()) as writer:
            yield writer
        return
    if resume:
        tmp = Path(job.out).with_name(f".{Path(job.out).name}.resume-tmp")
        try:
            with RowFile(tmp, output=job.out) as stream, get_writer(job.fmt, stream, job.schema) as kept:
                for record in _kept(job):
                    kept.write(record)
            os.replace(tmp, job.out)
        finally:
            tmp.unlink(missing_ok=True)  # left only by a rewrite that failed (a full disk): --out is as it was
    with RowFile(job.out, append=resume) as stream, get_writer(job.fmt, stream, job.schema, append=resume) as writer:
        yield writer


def _kept(job: Plan) -> Iterator[dict[str, Any]]:
    """The rows of job.out that --resume keeps: each file's first, unless the file is about to be retried."""
    assert job.out is not None
    retry = {path_key(p) for p in job.todo}
    seen: set[str] = set()
    for record in read_records(job.out, job.fmt):
        key = path_key(str(record.get("path")))
        if key not in retry and key not in seen:
            seen.add(key)
            yield record


def default_batch_size(device: str) -> int:
    """--batch-size auto for a device ("cpu", "cuda:0", "mps"): CPU_BATCH_SIZE on a CPU, else GPU_BATCH_SIZE."""
    return CPU_BATCH_SIZE if device.partition(":")[0] == "cpu" else GPU_BATCH_SIZE


def default_workers(device_type: str, cores: int | None = None) -> int:
    """Decode processes: on a CPU the model is far slower than decoding, so few; on a GPU, most of the cores."""
    cores = cores or processes.cores()
    wanted = cores // CPU_CORES_PER_WORKER if device_type == "cpu" else cores - 1
    return max(1, min(MAX_WORKERS, wanted))


@dataclass
class Tally:
    """Counts of the rows a run wrote; the CLI reads them for its summary, after an interrupt too."""

    ok: int = 0
    failed: int = 0
    started_s: float = field(default_factory=time.monotonic)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, why) of the first LISTED_FAILURES

    def count(self, record: dict[str, Any]) -> None:
        """Count one row written, ok or error, and keep the first few errors to list at the end."""
        if record["status"] == "ok":
            self.ok += 1
            return
        self.failed += 1
        if len(self.failures) < LISTED_FAILURES:
            self.failures.append((str(record["path"]), str(record.get("error") or "unknown error")))

    def summary(self, job: Plan, interrupted: bool = False) -> str:
        """One line for stderr: what was done of `job`, how fast, and where it went."""
        elapsed = time.monotonic() - self.started_s
        done = self.ok + self.failed
        line = (
            f"{'Interrupted' if interrupted else 'Done'}: {self.ok} ok, {self.failed} failed"
            + (f", {job.skipped} already done" if job.skipped else "")
            + f"; {counted(done, 'video')} in {elapsed:.1f} s ({done / max(elapsed, 1e-9):.2f} videos/s)"
        )
        if job.out is not None:
            line += f" -> {job.out}"
            if interrupted:
                line += "; run again with --resume to finish"
        return line

    def failure_lines(self, out: str | None) -> list[str]:
        """What follows the summary when files failed: 'Failed:', then 'path: why' for the first few."""
        if not self.failed:
            return []
        lines = ["Failed:"] + [f"  {one_line(path)}: {why}" for path, why in self.failures]
        more = self.failed - len(self.failures)
        if more:
            lines.append(f"  and {more} more: see their error rows" + (f" in {out}" if out is not None else ""))
        return lines


@dataclass
class Rows:
    """The one way rows leave a run, local or on Ray: written, counted in the tally, then handed to `on_row`."""

    writer: RecordWriter  # CSV, JSON or JSONL text, or Parquet
    tally: Tally
    on_row: Callable[[dict[str, Any]], None] | None = None

    def write(self, record: dict[str, Any]) -> None:
        self.writer.write(record)
        self.tally.count(record)
        if self.on_row is not None:
            self.on_row(record)
