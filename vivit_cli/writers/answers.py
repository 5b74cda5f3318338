"""The records of `vivit label`: the answers as `vivit train` reads them (ANSWERS: path,label), and Label Studio
tasks with the loop's suggestions as predictions (LABEL_STUDIO). No torch, no OpenCV."""

from __future__ import annotations

from collections.abc import Sequence

from vivit_cli.writers.records import SCORE_DECIMALS, Record, Schema

FROM_NAME, TO_NAME = "label", "video"  # the names in the Label Studio labelling config the tasks go with

ANSWERS = Schema(("path", "label"), ("csv",), unknown="{path}: the answers are CSV: give a .csv name, or - for stdout")
LABEL_STUDIO = Schema(
    (), ("json",), unknown="{path}: Label Studio tasks are JSON: give a .json name, or - for stdout", json_indent=2
)


def answer_record(path: str, label: str) -> Record:
    return {"path": path, "label": label}


def _choice(label: str) -> list[Record]:
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}]


def labelstudio_task(
    number: int, path: str, answer: str | None, suggestion: tuple[str, float] | None, model: str
) -> Record:
    """One video as a Label Studio task: the answer as an annotation, the loop's suggestion as a prediction."""
    task: Record = {"id": number + 1, "data": {TO_NAME: path}}
    if suggestion is not None:
        label, score = suggestion
        task["predictions"] = [
            {"model_version": model, "score": round(score, SCORE_DECIMALS), "result": _choice(label)}
        ]
    if answer is not None:
        task["annotations"] = [{"result": _choice(answer)}]
    return task


def labelstudio_config(labels: Sequence[str]) -> str:
    """The labelling config (Label Studio's XML) the tasks go with: one choice per label."""
    from xml.sax.saxutils import quoteattr

    choices = "".join(f"<Choice value={quoteattr(label)}/>" for label in labels)
    return (
        f'<View><Video name="{TO_NAME}" value="${TO_NAME}"/>'
        f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single">{choices}</Choices></View>'
    )
