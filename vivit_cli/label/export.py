"""Out of the loop: the answers as CSV (what `vivit train` reads), or Label Studio tasks with the loop's suggestions
as predictions, for teams that review there. Features only from an embed file and the cache: exporting runs no
model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO

import numpy as np

from vivit_cli.label.background import take_given, train_once
from vivit_cli.label.loop import Loop
from vivit_cli.learn.cache import EmbeddingCache
from vivit_cli.writers.answers import ANSWERS, LABEL_STUDIO, answer_record, labelstudio_task
from vivit_cli.writers.formats import write_all


def answers_csv(loop: Loop, out: str, stdout: IO[str]) -> int:
    """The project's answers as `path,label` rows into `out` ("-": stdout); how many."""
    current = loop.answers.state.current
    write_all(out, [answer_record(p, label) for p, label in current.items()], ANSWERS, stdout)
    return len(current)


def labelstudio_tasks(
    loop: Loop, out: str, given: Mapping[str, np.ndarray], cache: EmbeddingCache, model: str, stdout: IO[str]
) -> int:
    """Every video of the project as a Label Studio task into `out`; how many."""
    current = loop.answers.state.current
    for path in take_given(loop, given):
        features = cache.get(path)
        if features is not None:
            loop.embedded(loop.number(path), features)  # type: ignore[arg-type]
    train_once(loop, accuracy=False)
    tasks = []
    for i, path in enumerate(loop.project.videos):
        top = loop.suggestions(i)[:1]
        suggestion = (top[0].label, top[0].score) if top and top[0].by != "nearest" else None
        tasks.append(labelstudio_task(i, path, current.get(path), suggestion, f"vivit label, {model}"))
    write_all(out, tasks, LABEL_STUDIO, stdout)
    return len(tasks)
