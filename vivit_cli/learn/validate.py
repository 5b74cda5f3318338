"""A --full run's validation each epoch: the validation videos scored as `vivit classify` scores a video (its clips
and crops, their probabilities averaged), through the scoring path that batch and evaluate use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from vivit_cli.batch.local import score_files
from vivit_cli.learn.head import log_loss
from vivit_cli.learn.metrics import Evaluation, evaluate, outcome

if TYPE_CHECKING:
    from vivit_cli.batch.pool import DecodePool
    from vivit_cli.learn.data import Example
    from vivit_cli.learn.finetune import Trainer
    from vivit_cli.pipeline import Classifier
    from vivit_cli.video.sampling import Views


@dataclass(frozen=True)
class Validation:
    evaluation: Evaluation
    loss: float  # mean negative log-likelihood of the true label, per video
    failed: dict[str, str]  # path -> why it did not decode


def validate(
    trainer: Trainer,
    classifier: Classifier,
    pool: DecodePool,
    videos: Sequence[Example],
    labels: Sequence[str],
    views: Views,
    batch_size: int | None,
) -> Validation:
    """Score `videos` with the model as it is now (in eval mode, under the run's autocast), each its views averaged.
    `classifier` wraps trainer.model."""
    by_path = {e.path: e.label for e in videos}
    outcomes, probs, truth, failed = [], [], [], {}
    trainer.model.eval()
    with trainer.autocast():
        for scored in score_files(classifier, list(by_path), pool, views, batch_size, output="probs"):
            if scored.scores is None:
                failed[scored.path] = scored.error or "unknown error"
                continue
            p = scored.scores.mean(axis=0)  # (L,): the views' probabilities averaged
            label = by_path[scored.path]
            outcomes.append(outcome(scored.path, label, p, labels))
            probs.append(p)
            truth.append(list(labels).index(label))
    loss = log_loss(np.stack(probs), np.asarray(truth)) if probs else float("nan")
    return Validation(evaluate(outcomes, labels), loss, failed)
