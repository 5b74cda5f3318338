"""How well a model labels a data set: top-1 and top-5 accuracy (top-5 only for a model of more than 5 labels),
per-label precision, recall and F1, the confusion matrix and the videos it got wrong. NumPy only: no model, no files.

A ratio whose denominator is zero (precision of a label never predicted, recall of a label with no videos, F1 when
both are zero) is 0, as scikit-learn's zero_division=0 makes it. Macro averages are over the labels that have
videos in what was evaluated: a label with none has no recall to speak of.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

OTHER = "(other)"  # the confusion matrix's last column: predictions of a model label that DATA does not have
TOP_K = 5  # top-k accuracy: the true label among the model's k best


@dataclass(frozen=True)
class Outcome:
    """One video scored: its true label, what the model said first, and where the true label ranked."""

    path: str
    label: str  # the true label
    predicted: str  # the model's top-1, any of its labels
    score: float  # the probability of `predicted` (views averaged)
    label_score: float  # the probability of the true label
    rank: int  # the true label's place in the model's ranking, from 1

    @property
    def correct(self) -> bool:
        return self.rank == 1


@dataclass(frozen=True)
class LabelMetrics:
    """Precision, recall and F1 of one label (or their macro averages), and its number of videos."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    """Every number of a report, from the outcomes of the videos that were scored."""

    labels: tuple[str, ...]  # DATA's labels: the confusion matrix's rows, and its columns before OTHER
    confusion: tuple[tuple[int, ...], ...]  # (L, L + 1): rows true, columns predicted, the last one OTHER
    top1: float
    top5: float | None  # None when the model has TOP_K labels or fewer: its true label is always among the k best
    per_label: tuple[LabelMetrics, ...]
    macro: LabelMetrics  # averages over the labels with support; support: every video
    outcomes: tuple[Outcome, ...]  # sorted by path

    @property
    def columns(self) -> tuple[str, ...]:
        """The confusion matrix's columns: the labels, then OTHER."""
        return (*self.labels, OTHER)

    @property
    def count(self) -> int:
        return len(self.outcomes)

    @property
    def misclassified(self) -> tuple[Outcome, ...]:
        """The videos whose top-1 is wrong, the most confident mistakes first (then by path)."""
        return tuple(sorted((o for o in self.outcomes if not o.correct), key=lambda o: (-o.score, o.path)))


def outcome(path: str, label: str, probs: np.ndarray, model_labels: Sequence[str]) -> Outcome:
    """A video's probabilities over the model's labels (L,) -> its Outcome; `label` must be one of them. The
    ranking breaks ties by class id, as Classifier.top_k does."""
    order = np.argsort(-probs, kind="stable")  # (L,) best first
    true = list(model_labels).index(label)
    best = int(order[0])
    return Outcome(
        path=path,
        label=label,
        predicted=model_labels[best],
        score=float(probs[best]),
        label_score=float(probs[true]),
        rank=int(np.flatnonzero(order == true)[0]) + 1,
    )


def _top_k(outcomes: Sequence[Outcome], k: int) -> float:
    """The share of outcomes whose true label is among the model's k best."""
    return sum(o.rank <= k for o in outcomes) / len(outcomes) if outcomes else 0.0


def confusion_matrix(true: Sequence[int], predicted: Sequence[int], num_labels: int) -> np.ndarray:
    """Label indices -> counts (L, L + 1), rows true, columns predicted; a predicted index outside 0..L-1 (-1) is
    counted in the last column, OTHER."""
    matrix = np.zeros((num_labels, num_labels + 1), dtype=np.int64)
    t = np.asarray(true, dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    p = np.where((p >= 0) & (p < num_labels), p, num_labels)
    np.add.at(matrix, (t, p), 1)
    return matrix


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def precision_recall_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A confusion matrix (L, L + 1) -> per-label precision, recall, F1 (floats) and support (ints), each (L,).

    Precision counts the label's column; OTHER has none. A zero denominator gives 0."""
    n = confusion.shape[0]
    hits = np.diag(confusion[:, :n]).astype(np.float64)  # (L,)
    predicted = confusion[:, :n].sum(axis=0)  # (L,) videos the model gave each label
    support = confusion.sum(axis=1)  # (L,) videos of each label
    precision = _ratio(hits, predicted)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, support


def evaluate(outcomes: Sequence[Outcome], labels: Sequence[str], model_labels: int | None = None) -> Evaluation:
    """Outcomes of the videos scored -> every metric, over DATA's `labels` (each outcome's label is one);
    `model_labels`: how many labels the model ranks (default: DATA's), which says whether top-5 means anything."""
    labels = tuple(labels)
    index = {label: i for i, label in enumerate(labels)}
    outcomes = tuple(sorted(outcomes, key=lambda o: o.path))
    confusion = confusion_matrix(
        [index[o.label] for o in outcomes], [index.get(o.predicted, -1) for o in outcomes], len(labels)
    )
    precision, recall, f1, support = precision_recall_f1(confusion)
    per_label = tuple(
        LabelMetrics(label, float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    )
    present = support > 0
    count = len(outcomes)
    means = (float(m[present].mean()) if present.any() else 0.0 for m in (precision, recall, f1))
    macro = LabelMetrics("macro average", *means, count)
    return Evaluation(
        labels=labels,
        confusion=tuple(tuple(int(c) for c in row) for row in confusion),
        top1=sum(o.correct for o in outcomes) / count if count else 0.0,
        top5=_top_k(outcomes, TOP_K) if TOP_K < (model_labels or len(labels)) else None,
        per_label=per_label,
        macro=macro,
        outcomes=outcomes,
    )
