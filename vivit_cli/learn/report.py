"""Validation figures per video: accuracy, and precision, recall, F1 and support per label; as aligned text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int  # validation videos of this label


@dataclass(frozen=True)
class Report:
    accuracy: float
    videos: int
    labels: tuple[LabelScores, ...]

    @property
    def macro_f1(self) -> float:
        supported = [s.f1 for s in self.labels if s.support]
        return float(np.mean(supported)) if supported else float("nan")


def report(probs: np.ndarray, truth: np.ndarray, names: Sequence[str]) -> Report:
    """probs (M, L) and true class ids (M,) -> the figures; a label never predicted has precision 0."""
    predicted = probs.argmax(axis=1)  # (M,)
    scores = []
    for i, name in enumerate(names):
        hits = int(np.sum((predicted == i) & (truth == i)))
        said, support = int(np.sum(predicted == i)), int(np.sum(truth == i))
        precision = hits / said if said else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores.append(LabelScores(name, precision, recall, f1, support))
    accuracy = float(np.mean(predicted == truth)) if len(truth) else float("nan")
    return Report(accuracy, len(truth), tuple(scores))


def report_lines(r: Report) -> list[str]:
    """A plain table: one row per label, then accuracy and macro F1 (terminal and model card alike)."""
    width = max([len("label"), *(len(s.label) for s in r.labels)])
    lines = [f"{'label':<{width}}  precision  recall     f1  support"]
    for s in r.labels:
        lines.append(f"{s.label:<{width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:5.3f}  {s.support:7d}")
    lines.append(f"accuracy {r.accuracy:.3f} over {r.videos} videos; macro F1 {r.macro_f1:.3f}")
    return lines
