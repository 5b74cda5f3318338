"""The answers of a labelling project: DIR/answers.jsonl, every answer, skip and undo in the order they came, each
on disk before the call that made it returns; the current answer per video replayed from it; DIR/labels.csv
(path,label: what `vivit train` reads) rewritten atomically after each. No model, no server."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vivit_cli.errors import SourceError
from vivit_cli.label.project import write_atomic
from vivit_cli.results import shown_path
from vivit_cli.writers.answers import ANSWERS, answer_record
from vivit_cli.writers.formats import get_writer

ANSWERS_FILE = "answers.jsonl"
LABELS_FILE = "labels.csv"


@dataclass
class State:
    """What the log says now."""

    current: dict[str, str] = field(default_factory=dict)  # path -> its answer; insertion order: answered last, last
    skipped: set[str] = field(default_factory=set)
    undo: list[tuple[str, str | None]] = field(default_factory=list)  # (path, its answer before), latest last

    def apply(self, event: dict[str, Any]) -> None:
        path = event["video"]
        if event.get("undo"):
            if self.undo:
                path, before = self.undo.pop()
                self.current.pop(path, None)
                if before is not None:
                    self.current[path] = before
        elif event.get("skip"):
            self.skipped.add(path)
        elif isinstance(event.get("label"), str):
            self.undo.append((path, self.current.pop(path, None)))
            self.current[path] = event["label"]
            self.skipped.discard(path)


class Answers:
    """The log and the state it gives. Not thread-safe: the loop calls it under its lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / ANSWERS_FILE
        self.state = State()
        if self.path.exists():
            self._replay()
        self._file = open(self.path, "ab")  # noqa: SIM115 (kept open for the server's life; closed by close())

    def close(self) -> None:
        self._file.close()

    def answer(self, path: str, label: str) -> None:
        self._log({"video": path, "label": label})

    def skip(self, path: str) -> None:
        self._log({"video": path, "skip": True})

    def undo(self) -> str | None:
        """Take back the latest answer still standing; the video it was for, or None when there is none."""
        if not self.state.undo:
            return None
        path, _ = self.state.undo[-1]
        self._log({"video": path, "undo": True, "label": self.state.current.get(path)})
        return path

    def _log(self, event: dict[str, Any]) -> None:
        """Append the event and fsync it; then labels.csv. On a failed write the log is cut back to where it was, so a
        later answer never follows half a line."""
        event = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **event}
        line = (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
        size = self._file.seek(0, io.SEEK_END)
        try:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as e:
            self._file.truncate(size)
            raise SourceError(f"could not save to {shown_path(self.path)}: {e.strerror or e}") from None
        self.state.apply(event)
        self.write_labels()

    def write_labels(self) -> None:
        """labels.csv from the state: one row per answered video, in the order they were answered."""
        out = io.StringIO()
        with get_writer("csv", out, ANSWERS) as writer:
            for path, label in self.state.current.items():
                writer.write(answer_record(path, label))
        try:
            write_atomic(self.folder / LABELS_FILE, out.getvalue())
        except OSError as e:
            raise SourceError(f"could not save {shown_path(self.folder / LABELS_FILE)}: {e.strerror or e}") from None

    def _replay(self) -> None:
        """Every whole line of the log, in order; a torn last line (a write cut by a kill) is cut off the file."""
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        for number, line in enumerate(whole.splitlines(), 1):
            try:
                event = json.loads(line)
                if not isinstance(event, dict) or not isinstance(event.get("video"), str):
                    raise ValueError("not an answer")
            except ValueError:
                raise SourceError(
                    f"{shown_path(self.path)}, line {number}: not an answer this vivit wrote; the project's answers "
                    "are kept as they are: move the file away to start over"
                ) from None
            self.state.apply(event)
        if len(whole) < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(len(whole))
        self.write_labels()  # a kill between the log and labels.csv: the log wins
