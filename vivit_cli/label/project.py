"""A labelling project's folder: the videos it labels (each one's number is its place in the list, for good), the
labels, the backbone and the views, in DIR/project.json, written atomically. No model, no decoding."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vivit_cli.errors import SourceError
from vivit_cli.results import shown_path
from vivit_cli.video.sampling import Views
from vivit_cli.video.sources import collect_videos, path_key

PROJECT_FILE = "project.json"
FORMAT = 1  # bumped when project.json changes its meaning
# The views `vivit train` uses by default: what the loop embeds is what `vivit train DIR/labels.csv` finds cached.
VIEWS = Views(clips=3)


@dataclass(frozen=True)
class Project:
    folder: Path
    videos: tuple[str, ...]  # absolute paths; served and answered by number, never by a path from a request
    labels: tuple[str, ...]  # in the order of their keys, 1 to 9 and on
    model: str
    views: Views = VIEWS

    def file(self, name: str) -> Path:
        return self.folder / name

    def index(self) -> dict[str, int]:
        """path_key -> number, to find a video that an answer or an embedding row names."""
        return {path_key(p): i for i, p in enumerate(self.videos)}

    def with_label(self, label: str) -> Project:
        return self if label in self.labels else replace(self, labels=(*self.labels, label))

    def save(self) -> None:
        data = {"format": FORMAT, "model": self.model, "labels": list(self.labels), "views": asdict(self.views)}
        write_atomic(self.file(PROJECT_FILE), json.dumps({**data, "videos": list(self.videos)}, ensure_ascii=False))


def open_project(
    folder: str | Path, sources: Sequence[str], recursive: bool, labels: Sequence[str], model: str | None
) -> tuple[Project, int]:
    """DIR's project with `sources`' videos and `labels` added (new ones at the end): (project, videos added). A new
    project needs videos and labels; an existing one keeps its model, so its features and suggestions stay whole."""
    from vivit_cli import DEFAULT_MODEL

    folder = Path(os.path.abspath(folder))
    saved = _read(folder)
    if saved is None and (not sources or not labels):
        need = "the videos to label (SOURCE...)" if not sources else "its labels (--labels a,b,c)"
        raise SourceError(f"{shown_path(folder)} is not a labelling project yet: give {need}")
    if saved is not None and model is not None and model != saved.model:
        raise SourceError(
            f"the project {shown_path(folder)} labels with --model {saved.model}, not {model}: leave --model out, "
            "or start another project"
        )
    project = saved or Project(folder, (), (), model or DEFAULT_MODEL)
    known = project.index()
    new = (
        [os.path.abspath(p) for p in collect_videos(sources, recursive) if path_key(p) not in known] if sources else []
    )
    for label in labels:
        project = project.with_label(label)
    project = replace(project, videos=(*project.videos, *dict.fromkeys(new)))
    if project != saved:
        folder.mkdir(parents=True, exist_ok=True)
        project.save()
    return project, len(new)


def _read(folder: Path) -> Project | None:
    path = folder / PROJECT_FILE
    if not path.is_file():
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            what = "a folder" if folder.is_dir() else "a file"
            raise SourceError(f"{shown_path(folder)} is {what} that is not a labelling project: give a new --project")
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, this vivit reads {FORMAT}")
        return Project(folder, tuple(data["videos"]), tuple(data["labels"]), data["model"], Views(**data["views"]))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SourceError(f"{shown_path(path)}: not a project file this vivit can read ({e})") from None


def write_atomic(path: Path, text: str) -> None:
    """`text` into `path`, whole or not at all, on disk before this returns: written beside it, then renamed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
