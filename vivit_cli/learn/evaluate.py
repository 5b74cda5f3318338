"""`vivit evaluate`'s run: which of DATA's videos, whether the model knows their labels, and each video scored.

No printing: the command says what was chosen and shows the results.
"""

from __future__ import annotations

import difflib
import json
import os
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vivit_cli.errors import SourceError
from vivit_cli.learn.data import video_key
from vivit_cli.learn.export import TRAINING_FILE
from vivit_cli.learn.metrics import Outcome, outcome
from vivit_cli.results import shown_path

if TYPE_CHECKING:
    from vivit_cli.batch.local import Scored
    from vivit_cli.batch.pool import DecodePool
    from vivit_cli.learn.data import Dataset, Example
    from vivit_cli.pipeline import Classifier
    from vivit_cli.video.sampling import Views

DEFAULT_SPLITS = ("test", "val")  # evaluated when DATA has them, in this order of preference; else every video
UNKNOWN_SHOWN = 8  # unknown labels named in the error, each with its suggestions
SUGGESTIONS = 3  # close model labels offered per unknown one
CLOSE_ENOUGH = 0.6  # difflib's similarity cutoff for a suggestion


@dataclass(frozen=True)
class Selection:
    """The videos to evaluate and which part of DATA they are."""

    examples: tuple[Example, ...]
    split: str | None  # None: every video of DATA
    reason: str  # which part of DATA and why, for the command's note: "the test split"
    left_out: int = 0  # videos of that part left out: the model was trained on them
    not_held_out: int = 0  # videos kept (--all) that the model was trained on


def select(dataset: Dataset, split: str | None = None) -> Selection:
    """--split NAME's videos; by default the test split if DATA has one, else val, else every video."""
    if split is not None:
        if split not in dataset.splits:
            has = f"its splits are {', '.join(dataset.splits)}" if dataset.splits else "it has no split folders"
            raise SourceError(f"{shown_path(dataset.source)} has no {split!r} split: {has}")
        return Selection(dataset.split(split), split, f"the {split} split (--split)")
    for name in DEFAULT_SPLITS:
        if name in dataset.splits:
            return Selection(dataset.split(name), name, f"the {name} split")
    if dataset.splits:
        return Selection(dataset.examples, None, f"every split: there is no {' or '.join(DEFAULT_SPLITS)} split")
    return Selection(dataset.examples, None, "every video")


def trained_videos(model_folder: str | os.PathLike[str]) -> frozenset[str] | None:
    """The videos a model learnt from (each as video_key), when it is a folder whose training.json (vivit train's)
    names them; None when it does not say."""
    try:
        with open(os.path.join(model_folder, TRAINING_FILE), encoding="utf-8") as f:
            paths = json.load(f).get("train_videos")
    except (OSError, ValueError, AttributeError):  # no record, or not one vivit train wrote: nothing is known
        return None
    if not isinstance(paths, list):
        return None
    return frozenset(video_key(p) for p in paths if isinstance(p, str))


def hold_out(chosen: Selection, learnt: frozenset[str] | None, keep: bool = False) -> Selection:
    """The chosen videos less those the model learnt from (`learnt`: trained_videos), which would score as if
    seen for the first time; with `keep` (--all) all of them, counted as not held out. None left is an error."""
    if not learnt:
        return chosen
    rest = tuple(e for e in chosen.examples if video_key(e.path) not in learnt)
    seen = len(chosen.examples) - len(rest)
    if keep or not seen:
        return replace(chosen, not_held_out=seen)
    if not rest:
        raise SourceError(
            f"the model was trained on each of the {seen} videos to evaluate ({chosen.reason}): none is held out; "
            "give other videos, or add --all to score these anyway (the figures would not be held out)"
        )
    return replace(chosen, examples=rest, left_out=seen)


def _key(label: str) -> str:
    """How labels are matched for suggestions: 'Playing_Guitar' is near 'playing guitar'. Both sides are NFC by
    then (DATA's labels as read, the model's through model_labels)."""
    return label.casefold().replace("_", " ").replace("-", " ").strip()


def suggest(label: str, known: Sequence[str]) -> list[str]:
    """The model labels closest to `label`: the same but for case, '_' or '-' first, then difflib's nearest."""
    by_key: dict[str, list[str]] = {}
    for name in known:
        by_key.setdefault(_key(name), []).append(name)
    found = list(by_key.get(_key(label), []))
    for key in difflib.get_close_matches(_key(label), list(by_key), n=SUGGESTIONS, cutoff=CLOSE_ENOUGH):
        found += [name for name in by_key[key] if name not in found]
    return found[:SUGGESTIONS]


def model_labels(labels: Sequence[str]) -> list[str]:
    """A model's labels in the spelling DATA's labels have (NFC), so that a decomposed 'café' matches."""
    return [unicodedata.normalize("NFC", label) for label in labels]


def check_labels(labels: Sequence[str], known: Sequence[str], model: str) -> None:
    """Every one of DATA's labels must be one of the model's; else a SourceError names the others with the model
    labels closest to each."""
    known = model_labels(known)
    unknown = [label for label in labels if label not in known]
    if not unknown:
        return
    parts = []
    for label in unknown[:UNKNOWN_SHOWN]:
        close = suggest(label, known)
        parts.append(f"{label!r}" + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
    more = f" and {len(unknown) - UNKNOWN_SHOWN} more" if len(unknown) > UNKNOWN_SHOWN else ""
    raise SourceError(
        f"{len(unknown)} of DATA's {len(labels)} labels are not labels of {model}: {', '.join(parts)}{more}. "
        "Rename those folders (or rows) to the model's labels (vivit labels lists them), or evaluate a model "
        "trained on them"
    )


def score_examples(
    classifier: Classifier, examples: Sequence[Example], pool: DecodePool, views: Views, batch_size: int | None = None
) -> Iterator[Outcome | Scored]:
    """Each example scored (probabilities averaged over its views) as an Outcome, or its file's Scored (with the
    error) when its video does not decode; in completion order. A file listed twice is decoded once."""
    from vivit_cli.batch.local import score_files

    by_path: dict[str, list[Example]] = {}
    for e in examples:
        by_path.setdefault(e.path, []).append(e)
    labels = model_labels(classifier.labels)
    for scored in score_files(classifier, list(by_path), pool, views, batch_size, "probs"):
        for e in by_path[scored.path]:
            if scored.scores is None:
                yield scored
            else:
                yield outcome(e.path, e.label, scored.scores.mean(axis=0), labels)  # (V, L) -> (L,)
