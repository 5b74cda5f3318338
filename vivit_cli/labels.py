"""Which of a model's labels a prediction may name, and the score it needs: parsed from the user's words, checked
against a checkpoint's labels. No torch, no files beyond a --labels @file."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from vivit_cli.errors import LabelError

LIST_PREFIX = "@"  # --labels @file.txt: one label per line
SEPARATOR = ","  # --labels a,b,c
SUGGESTIONS = 3  # close known labels named for each unknown one
SHOWN_UNKNOWN = 10  # unknown names the error spells out; the rest are counted
MAX_LIST_BYTES = 4 * 1024 * 1024  # a --labels @file larger than this is not a list of labels (/dev/zero, a video)
MAX_LABEL_CHARS = 1000  # characters in one label; Kinetics' longest has 48
# Unicode categories a label may not hold: control characters (a newline, a tab, NUL) and line or paragraph
# separators, which break a table's row, a CSV cell read by hand, a plot's text and the model card's Markdown.
UNPRINTABLE = frozenset({"Cc", "Zl", "Zp"})


@dataclass(frozen=True)
class LabelSet:
    """The labels predictions are restricted to (all the model's when `names` is empty) and the score below which
    a prediction is left out of the top-k. Duplicate names are kept once, in their first place."""

    names: tuple[str, ...] = ()
    min_score: float = 0.0  # probability in [0, 1]; 0 keeps every prediction

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(dict.fromkeys(self.names)))
        if not all(isinstance(n, str) and n for n in self.names):
            raise LabelError("a label name must be a non-empty string")
        if not 0.0 <= self.min_score <= 1.0:
            raise LabelError(f"--min-score is a probability in [0, 1], got {self.min_score:g}")

    def class_ids(self, known: Sequence[str]) -> tuple[int, ...]:
        """The class ids of `names` among `known` (a checkpoint's labels in class-id order), in class-id order;
        every class id without names. A name the checkpoint has twice brings both ids."""
        if not self.names:
            return tuple(range(len(known)))
        have = set(known)
        unknown = [n for n in self.names if n not in have]
        if unknown:
            raise LabelError(unknown_message(unknown, known))
        wanted = set(self.names)
        return tuple(i for i, name in enumerate(known) if name in wanted)


def parse_labels(text: str) -> tuple[str, ...]:
    """--labels' value -> names: 'a,b,c', or '@file.txt' with one label per line (for labels holding a comma).
    Spaces around a name and empty names (blank lines) are dropped; duplicates are kept once."""
    if text.startswith(LIST_PREFIX):
        parts = _read_list(text).splitlines()
    else:
        parts = text.split(SEPARATOR)
    for n, part in enumerate(parts, 1):
        problem = label_problem(part.strip()) if part.strip() else None
        if problem:
            where = f"line {n}" if text.startswith(LIST_PREFIX) else f"name {n}"
            raise LabelError(f"--labels {text if text.isprintable() else repr(text)}, {where}: {problem}")
    names = tuple(dict.fromkeys(p.strip() for p in parts if p.strip()))
    if not names:
        raise LabelError(f"--labels {text!r} names no label")
    return names


def _read_list(text: str) -> str:
    """A --labels @file's text, read no further than MAX_LIST_BYTES: a device or a huge file is refused, not
    held in memory."""
    path = text[len(LIST_PREFIX) :]
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LIST_BYTES + 1)
    except FileNotFoundError:
        raise LabelError(f"--labels {text}: no such file") from None
    except OSError as e:
        raise LabelError(f"--labels {text}: cannot be read ({e.strerror or e})") from None
    if len(data) > MAX_LIST_BYTES:
        raise LabelError(
            f"--labels {text}: larger than {MAX_LIST_BYTES // 1024 // 1024} MiB, not a list of labels "
            "(one label per line)"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelError(f"--labels {text}: cannot be read as UTF-8 text ({e})") from None


def label_problem(name: str) -> str | None:
    """What makes `name` unfit to be a label, or None: empty, too long, or holding a control character or a line
    break (it would break every table, plot and file that shows it)."""
    if not name.strip():
        return "an empty label"
    if len(name) > MAX_LABEL_CHARS:
        return f"a label of {len(name)} characters, more than {MAX_LABEL_CHARS}"
    bad = next((c for c in name if unicodedata.category(c) in UNPRINTABLE), None)
    if bad is not None:
        return f"label {name!r} holds a control character or line break ({bad!r})"
    return None


def one_line_label(name: str) -> str:
    """`name` with its control characters and line breaks written as escapes (`\\n`): how a label that
    label_problem would refuse (a foreign model's) is drawn, rather than breaking a line or the text layout."""
    if not any(unicodedata.category(c) in UNPRINTABLE for c in name):
        return name
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in UNPRINTABLE else c for c in name)


def unknown_message(unknown: Sequence[str], known: Sequence[str]) -> str:
    """'unknown label(s) ...', each with the closest known labels (case ignored), and where to see them all."""
    parts = []
    for name in unknown[:SHOWN_UNKNOWN]:
        close = closest(name, known)
        parts.append(f"{name!r} (did you mean {', '.join(map(repr, close))}?)" if close else repr(name))
    more = f" and {len(unknown) - SHOWN_UNKNOWN} more" if len(unknown) > SHOWN_UNKNOWN else ""
    word = "label" if len(unknown) == 1 else "labels"
    return (
        f"the model has no {word} {', '.join(parts)}{more}; names are matched exactly, case included "
        f"(`vivit labels MODEL` lists its {len(known)})"
    )


def closest(name: str, known: Sequence[str]) -> list[str]:
    """The known labels nearest to `name`, best first, case ignored: 'Archery' finds 'archery'."""
    by_lower: dict[str, list[str]] = {}
    for label in known:
        by_lower.setdefault(label.lower(), []).append(label)
    matches = difflib.get_close_matches(name.lower(), by_lower, n=SUGGESTIONS)
    return [label for key in matches for label in by_lower[key]][:SUGGESTIONS]
