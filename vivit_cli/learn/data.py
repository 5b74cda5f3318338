"""The user's labelled videos: DATA (label folders, split folders above them, or a CSV/JSONL of path,label) -> a
Dataset of examples; the seeded, stratified train/validation split. No model, no decoding."""

from __future__ import annotations

import csv
import json
import os
import random
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vivit_cli.errors import SourceError
from vivit_cli.labels import label_problem
from vivit_cli.results import one_line, shown_path
from vivit_cli.video.sources import collect_videos, is_video_name

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
TABLE_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MISSING_SHOWN = 3  # files named in the error about rows whose files do not exist
REPEATS_SHOWN = 3  # videos named in the warning about videos listed more than once
FORMS = (
    "DATA/<label>/*.mp4, DATA/train|val|test/<label>/*.mp4, or a .csv/.jsonl with path and label (and optionally split)"
)


@dataclass(frozen=True)
class Example:
    """One labelled video."""

    path: str  # as found (a path the user can read back)
    label: str  # folder name or CSV/JSONL label, any Unicode (NFC)
    split: str | None  # "train", "val", "test" or None when DATA has no split folders / column


@dataclass(frozen=True)
class Dataset:
    """DATA read: every example, in a stable order, and the labels they use."""

    source: str
    examples: tuple[Example, ...]
    labels: tuple[str, ...]  # sorted, unique

    def split(self, name: str) -> tuple[Example, ...]:
        """The examples of one split ("train", "val", "test"); none when DATA has no such split."""
        return tuple(e for e in self.examples if e.split == name)

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits DATA names, in train, val, test order."""
        found = {e.split for e in self.examples}
        return tuple(s for s in SPLITS if s in found)

    def counts(self, examples: Iterable[Example] | None = None) -> dict[str, int]:
        """Label -> number of videos (of `examples`, default all), every label of the dataset, in label order."""
        tally = Counter(e.label for e in (self.examples if examples is None else examples))
        return {label: tally[label] for label in self.labels}


def read_data(source: str | Path) -> Dataset:
    """DATA -> a Dataset; SourceError (one line: what is wrong and what works) for anything it cannot use."""
    text = os.fspath(source)
    if os.path.isdir(text):
        examples = _read_folder(text)
    elif os.path.isfile(text):
        kind = TABLE_SUFFIXES.get(Path(text).suffix.lower())
        if kind is None:
            raise SourceError(f"{shown_path(text)}: not a folder, .csv or .jsonl; DATA is {FORMS}")
        examples = _read_table(text, kind)
    else:
        raise SourceError(f"{shown_path(text)}: no such folder or file; DATA is {FORMS}")
    if not examples:
        raise SourceError(f"{shown_path(text)}: no videos found; DATA is {FORMS}")
    examples = _once_each(examples, text)
    return Dataset(text, tuple(examples), tuple(sorted({e.label for e in examples})))


def video_key(path: str) -> str:
    """One video, however DATA reaches it: a row's `./x.mp4` and `x.mp4`, or a link to a file listed too."""
    return os.path.normcase(os.path.realpath(path))


def _once_each(examples: list[Example], source: str) -> list[Example]:
    """A video listed twice is one video: kept once (its first row), with a warning, when every listing gives it
    the same label and split; else a SourceError naming it. Counted twice it would train twice, or be judged on
    the videos it trained on, and every figure would count it again."""
    first: dict[str, Example] = {}
    repeats: Counter[str] = Counter()
    keys: dict[str, str] = {}  # a path repeated a million times is resolved once
    for e in examples:
        if e.path not in keys:
            keys[e.path] = video_key(e.path)
        kept = first.setdefault(keys[e.path], e)
        if kept is e:
            continue
        if (kept.label, kept.split) != (e.label, e.split):
            a, b = (f"{x.label!r}" + (f" ({x.split})" if x.split else "") for x in (kept, e))
            raise SourceError(
                f"{one_line(e.path)} is listed as {a} and as {b}: a video has one label and one split; list it once"
            )
        repeats[kept.path] += 1
    if repeats:
        shown = ", ".join(f"{one_line(p)} ({n + 1} times)" for p, n in repeats.most_common(REPEATS_SHOWN))
        more = f" and {len(repeats) - REPEATS_SHOWN} more" if len(repeats) > REPEATS_SHOWN else ""
        many = f"{len(repeats)} videos are" if len(repeats) > 1 else "1 video is"
        warnings.warn(
            f"{one_line(source)}: {many} listed more than once: {shown}{more}; each is kept once", stacklevel=3
        )
    return list(first.values())


def stratified_split(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[tuple[Example, ...], tuple[Example, ...]]:
    """(train, val): about `fraction` of each label's videos held out, chosen by `seed`. Every label keeps at least
    one training video and, with two or more, gives at least one to validation. Videos keep their order."""
    if not 0.0 < fraction < 1.0:
        raise SourceError(f"the validation fraction must be between 0 and 1 (exclusive), got {fraction}")
    by_label: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        by_label.setdefault(e.label, []).append(i)
    held: set[int] = set()
    for label, indices in by_label.items():
        n = len(indices)
        if n < 2:
            continue
        order = sorted(indices, key=lambda i: examples[i].path)  # the input's order does not change the draw
        random.Random(f"{seed}:{label}").shuffle(order)  # per label: adding a label leaves the others' split alone
        held.update(order[: min(n - 1, max(1, round(n * fraction)))])
    train = tuple(e for i, e in enumerate(examples) if i not in held)
    val = tuple(e for i, e in enumerate(examples) if i in held)
    return train, val


def _label(name: str, where: str, fix: str) -> str:
    """One spelling per label: macOS writes folder names decomposed (NFD), a CSV typed by hand is composed; bytes
    of a folder name that are not UTF-8 written as `\\xe9`, so that config.json can hold it. A name with a
    control character or a line break, or nothing but spaces, is refused: `where` it is and how to `fix` it."""
    name = unicodedata.normalize("NFC", shown_path(name))
    problem = label_problem(name)
    if problem:
        raise SourceError(f"{where}: {problem}; {fix}")
    return name.strip()


def _subfolders(folder: str, root: str) -> list[str]:
    """The folders in `folder`, hidden ones left out; a link among them back into `root` (DATA) is an error."""
    names = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    for name in names:
        _check_link(os.path.join(folder, name), root)
    return names


def _check_link(path: str, root: str) -> None:
    """A link to DATA, into it or above it would list DATA's videos again, as another label (or forever)."""
    if not os.path.islink(path):
        return
    target, top = os.path.realpath(path), os.path.realpath(root)
    if os.path.commonpath([target, top]) in (target, top):
        raise SourceError(
            f"{one_line(path)}: a link back into {one_line(root)} (it leads to {one_line(target)}), which would "
            "list its videos again: remove the link"
        )


def _read_folder(folder: str) -> list[Example]:
    """DATA/<label>/... or DATA/<split>/<label>/...: the split layout when every subfolder is a split's name."""
    subfolders = _subfolders(folder, folder)
    loose = [n for n in sorted(os.listdir(folder)) if is_video_name(n) and os.path.isfile(os.path.join(folder, n))]
    if loose:
        raise SourceError(
            f"{shown_path(os.path.join(folder, loose[0]))}: a video outside any label folder "
            f"({len(loose)} in all); put each video in DATA/<label>/"
        )
    if not subfolders:
        raise SourceError(f"{shown_path(folder)}: no label folders; DATA is {FORMS}")
    if not all(s.lower() in SPLIT_NAMES for s in subfolders):
        return list(_read_labels(folder, None, folder))
    examples = []
    for s in subfolders:
        split_folder = os.path.join(folder, s)
        if not _subfolders(split_folder, folder):
            raise SourceError(f"{one_line(split_folder)}: a split folder without label folders (<split>/<label>/)")
        examples += _read_labels(split_folder, SPLIT_NAMES[s.lower()], folder)
    return examples


def _read_labels(folder: str, split: str | None, root: str) -> Iterator[Example]:
    for name in _subfolders(folder, root):
        label_folder = os.path.join(folder, name)
        label = _label(name, one_line(label_folder), "rename the folder")
        try:
            paths = collect_videos([label_folder], recursive=True)
        except SourceError:
            raise SourceError(
                f"{one_line(label_folder)}: label folder {name!r} holds no videos; add some or remove it"
            ) from None
        for path in paths:
            yield Example(path, label, split)


def _read_table(path: str, kind: str) -> list[Example]:
    """A CSV or JSONL of path,label[,split]; relative paths are relative to the file's folder."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(_csv_rows(f, path) if kind == "csv" else _jsonl_rows(f, path))
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"{shown_path(path)}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    base = os.path.dirname(path)
    examples, missing = [], []
    for line, row in rows:
        file, label, split = (_cell(row, k) for k in ("path", "label", "split"))
        if not file or not label:
            raise SourceError(f"{shown_path(path)}, line {line}: a row without a {'path' if not file else 'label'}")
        if split and split.lower() not in SPLIT_NAMES:
            raise SourceError(f"{shown_path(path)}, line {line}: split {split!r} is none of {', '.join(SPLITS)}")
        full = os.path.join(base, os.path.expanduser(file))
        if not os.path.exists(full):
            missing.append(full)
            continue
        label = _label(label, f"{one_line(path)}, line {line}", "fix the row")
        examples.append(Example(full, label, SPLIT_NAMES[split.lower()] if split else None))
    if missing:
        shown = ", ".join(shown_path(m) for m in missing[:MISSING_SHOWN])
        more = f" (+{len(missing) - MISSING_SHOWN} more)" if len(missing) > MISSING_SHOWN else ""
        raise SourceError(
            f"{shown_path(path)}: {len(missing)} of {len(rows)} rows name files that do not exist: {shown}{more}; "
            "relative paths are read from the file's folder"
        )
    return examples


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value).strip()


def _csv_rows(f: Any, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(f)
    fields = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
    _need_columns(path, fields)
    for row in reader:
        if any((v or "").strip() for v in row.values() if isinstance(v, str)):
            yield reader.line_num, {k: row.get(original) for k, original in fields.items()}


def _jsonl_rows(f: Any, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SourceError(f"{shown_path(path)}, line {n}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise SourceError(f"{shown_path(path)}, line {n}: each line must be an object with path and label")
        row = {str(k).strip().lower(): v for k, v in row.items()}
        _need_columns(path, row, n)
        yield n, row


def _need_columns(path: str, fields: Iterable[str], line: int | None = None) -> None:
    lacking = [c for c in ("path", "label") if c not in set(fields)]
    if lacking:
        where = f", line {line}" if line else ""
        raise SourceError(
            f"{shown_path(path)}{where}: no {' or '.join(lacking)} column; give path and label "
            "(and optionally split: train, val or test)"
        )
