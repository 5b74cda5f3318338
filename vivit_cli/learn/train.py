"""`vivit train`'s steps below the command line: which videos train and which validate, the checks that make a
dataset trainable, the features stacked for the head, and the record of what was done."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from vivit_cli.errors import SourceError
from vivit_cli.learn.data import Dataset, Example, stratified_split
from vivit_cli.learn.head import L2_GRID, Fit, Head, Videos, train_head, video_probs
from vivit_cli.learn.metrics import Evaluation, evaluate, outcome

if TYPE_CHECKING:
    import numpy as np

FAILED_SHOWN = 5  # labels named in an error
FIRM_VALIDATION = 5  # validation videos a label needs before its figures are more than rough


@dataclass(frozen=True)
class Split:
    """The videos the head learns from and those it is judged on, and how they were chosen."""

    train: tuple[Example, ...]
    val: tuple[Example, ...]
    how: str  # for the card: "DATA's val split" or "20% of each label's videos held out, ..."


def usable(data: Dataset) -> Dataset:
    """The videos and labels train uses: with split folders or a split column, train and val (test is for
    evaluate); the labels are theirs."""
    examples = data.examples
    if data.splits:
        unsplit = sum(e.split is None for e in examples)
        if unsplit:
            raise SourceError(
                f"{data.source}: {unsplit} videos have no split while others do: give every row a split "
                "(train, val or test), or none"
            )
        if not data.split("train"):
            raise SourceError(f"{data.source}: DATA has {', '.join(data.splits)} splits but no train split")
        examples = data.split("train") + data.split("val")
    return Dataset(data.source, examples, tuple(sorted({e.label for e in examples})))


def leave_out(data: Dataset, failed: Collection[str]) -> Dataset:
    """The dataset without the videos that failed; its labels stay, so one left with too few videos is an error."""
    return replace(data, examples=tuple(e for e in data.examples if e.path not in failed))


def check_trainable(data: Dataset, after: str = "") -> None:
    """Two labels or more, and every label with two videos (one to learn from, one to validate), one of them
    for training; `after` says what happened first (videos that failed were left out)."""
    counts = data.counts()
    has_train = Counter(e.label for e in data.examples if e.split in (None, "train"))
    where = f"{data.source}{after}"
    if len(data.labels) < 2:
        raise SourceError(f"{where}: only one label ({data.labels[0]!r}); train needs two or more labels")
    few = [label for label, n in counts.items() if n < 2]
    if few:
        shown = ", ".join(f"{label!r} ({counts[label]})" for label in few[:FAILED_SHOWN])
        raise SourceError(
            f"{where}: every label needs at least two videos (one to train on, one to validate); too few: {shown}"
        )
    untrained = [label for label in data.labels if not has_train[label]]
    if untrained:
        raise SourceError(f"{where}: label {untrained[0]!r} has validation videos but none in the train split")


def choose_split(data: Dataset, fraction: float, seed: int) -> Split:
    """DATA's val split when it has one; else `fraction` of each label's videos, chosen by `seed`."""
    if data.split("val"):
        return Split(data.split("train"), data.split("val"), "DATA's val split")
    train, held = stratified_split(data.examples, fraction, seed)
    return Split(train, held, f"{fraction:.0%} of each label's videos held out, at least one, seed {seed}")


@dataclass(frozen=True)
class Trained:
    head: Head
    evaluation: Evaluation  # of the validation videos, as `vivit evaluate` reports them


def fit(
    split: Split,
    features: Mapping[str, np.ndarray],
    labels: Sequence[str],
    l2: float | None,
    on_fit: Callable[[Fit], None],
    pick: Callable[[Sequence[Head]], Head] | None = None,
) -> Trained:
    """The head on the training videos' views (each one a sample, class ids by position in `labels`), and how it
    does on the validation videos."""
    ids = {label: i for i, label in enumerate(labels)}
    train, val = (
        Videos.stack([features[e.path] for e in part], [ids[e.label] for e in part])
        for part in (split.train, split.val)
    )
    head = train_head(train, val, len(labels), l2, on_fit, pick)
    probs = video_probs(head, val)  # (M, L) in split.val's order
    outcomes = [outcome(e.path, e.label, p, labels) for e, p in zip(split.val, probs, strict=True)]
    return Trained(head, evaluate(outcomes, labels))


def cautions(split: Split, trained: Trained, labels: Sequence[str], l2_fixed: bool) -> list[str]:
    """What makes the validation figures, or the head, less sure than they look: labels with few validation
    videos (one video more or less moves their recall by a large step), and a strength picked at an end of the
    grid (a stronger or weaker one, untried, might do better)."""
    said = []
    val = Counter(e.label for e in split.val)
    few = [label for label in labels if val[label] < FIRM_VALIDATION]
    if few:
        shown = ", ".join(f"{label!r} ({val[label]})" for label in few[:FAILED_SHOWN])
        more = f" and {len(few) - FAILED_SHOWN} more" if len(few) > FAILED_SHOWN else ""
        said.append(
            f"{len(few)} of {len(labels)} labels have fewer than {FIRM_VALIDATION} validation videos: {shown}{more}; "
            "the validation figures are rough (more videos, or a larger --val, make them firmer)"
        )
    l2 = trained.head.fit.l2
    if not l2_fixed and l2 in (L2_GRID[0], L2_GRID[-1]):
        end, beyond, other = ("weakest", "weaker", l2 / 10) if l2 == L2_GRID[0] else ("strongest", "stronger", l2 * 10)
        said.append(
            f"the L2 strength picked, {l2:g}, is the {end} tried ({', '.join(f'{g:g}' for g in L2_GRID)}): "
            f"a {beyond} one might do better; try --l2 {other:g}"
        )
    return said


def record(
    data: Dataset,
    split: Split,
    base: tuple[str, str | None],
    settings: Mapping[str, Any],
    trained: Trained,
    failed: Mapping[str, str],
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """training.json: what the model was made from and with, and how it did; the model card is written from it."""
    return {
        "base_model": base[0],
        "base_revision": base[1],
        "data": data.source,
        "labels": list(data.labels),
        "counts": {"train": data.counts(split.train), "val": data.counts(split.val)},
        "val_videos": [e.path for e in split.val],  # so that evaluate can keep to videos the head never saw
        "train_videos": [os.path.abspath(e.path) for e in split.train],  # what evaluate leaves out by default
        "failed": dict(failed),
        "warnings": list(warnings),
        "settings": {
            **settings,
            "l2": trained.head.fit.l2,  # the strength chosen, in the place of the one asked for (None: the grid)
            "l2_fixed": settings["l2"] is not None,
            "l2_grid": list(L2_GRID),
            "validation": split.how,
        },
        "validation": figures(trained.evaluation, trained.head.fit.val_loss),
    }


def figures(ev: Evaluation, loss: float) -> dict[str, Any]:
    """training.json's validation figures."""
    return {
        "accuracy": ev.top1,
        "log_loss": loss,
        "macro_f1": ev.macro.f1,
        "per_label": {
            m.label: {"precision": m.precision, "recall": m.recall, "f1": m.f1, "support": m.support}
            for m in ev.per_label
        },
    }
