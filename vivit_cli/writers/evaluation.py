"""`vivit evaluate`'s outputs: the report as one JSON object, the confusion matrix as CSV rows, and the terminal's
tables (rich, imported when drawn); `vivit train`'s validation figures as plain text. No torch, no OpenCV."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vivit_cli.results import ModelInfo, counted, short_names, shown_path
from vivit_cli.writers.records import SCORE_DECIMALS, Record, Schema, model_fields
from vivit_cli.writers.tables import model_caption, percent, titled_table

if TYPE_CHECKING:
    from vivit_cli.learn.metrics import Evaluation, LabelMetrics, Outcome

CORNER = "true \\ predicted"  # the confusion CSV's first header cell, above the true labels
TERMINAL_MATRIX_LABELS = 12  # at most this many labels: the confusion matrix is also drawn in the terminal
TERMINAL_MISSES = 10  # misclassified videos listed in the terminal; the report lists them all

REPORT = Schema((), ("json",), unknown="{path}: the report is JSON: give a .json name (or - for stdout)", json_indent=2)


def confusion_schema(columns: tuple[str, ...]) -> Schema:
    """The confusion CSV: a true label, then one count per predicted column."""
    return Schema((CORNER, *columns), ("csv",), unknown="{path}: the matrix is CSV: give a .csv name")


def confusion_rows(evaluation: Evaluation) -> list[Record]:
    """One CSV row per true label: its counts under each predicted label, then OTHER."""
    return [
        {CORNER: label, **dict(zip(evaluation.columns, row, strict=True))}
        for label, row in zip(evaluation.labels, evaluation.confusion, strict=True)
    ]


def _round(value: float) -> float:
    return round(value, SCORE_DECIMALS)


def _optional(value: float | None) -> float | None:
    return None if value is None else _round(value)


def _metrics(m: LabelMetrics) -> Record:
    return {"precision": _round(m.precision), "recall": _round(m.recall), "f1": _round(m.f1), "support": m.support}


def outcome_record(o: Outcome) -> Record:
    """One video scored: its true label, the model's top-1 with its score, the true label's score and rank."""
    return {
        "path": shown_path(o.path),
        "label": o.label,
        "predicted": o.predicted,
        "score": _round(o.score),
        "label_score": _round(o.label_score),
        "rank": o.rank,
        "correct": o.correct,
    }


def report_record(
    evaluation: Evaluation,
    model: ModelInfo,
    data: str,
    split: str | None,
    views: dict[str, int],
    failed: list[tuple[str, str]],
) -> Record:
    """The whole report: accuracy, per-label metrics, the confusion matrix, every video, what failed, and what
    answered (the model, its commit, device and dtype, and the views)."""
    return {
        "data": shown_path(data),
        "split": split,  # null: every video of DATA
        "num_videos": evaluation.count,  # scored, in the metrics
        "num_failed": len(failed),  # not decoded, left out of the metrics
        # top5 is null for a model of 5 labels or fewer: every video would count
        "accuracy": {"top1": _round(evaluation.top1), "top5": _optional(evaluation.top5)},
        "macro": {k: v for k, v in _metrics(evaluation.macro).items() if k != "support"},
        "per_label": [{"label": m.label, **_metrics(m)} for m in evaluation.per_label],
        "confusion": {
            "labels": list(evaluation.labels),  # rows: the true label
            "columns": list(evaluation.columns),  # the labels, then "(other)": any other label of the model
            "matrix": [list(row) for row in evaluation.confusion],
        },
        "misclassified": [outcome_record(o) for o in evaluation.misclassified],
        "videos": [outcome_record(o) for o in evaluation.outcomes],
        "failed": [{"path": shown_path(path), "error": error} for path, error in failed],
        **model_fields(model),
        "views": views,
    }


def metrics_lines(evaluation: Evaluation) -> list[str]:
    """Per-label figures as plain aligned text, then accuracy and macro F1: `vivit train`'s terminal and model
    card, where rich's tables have no place."""
    from rich.cells import cell_len  # a CJK character takes two columns of a terminal

    width = max([len("label"), *(cell_len(m.label) for m in evaluation.per_label)])
    lines = [f"{'label':<{width}}  precision  recall     f1  support"]
    for m in evaluation.per_label:
        label = m.label + " " * (width - cell_len(m.label))
        lines.append(f"{label}  {m.precision:9.3f}  {m.recall:6.3f}  {m.f1:5.3f}  {m.support:7d}")
    lines.append(
        f"accuracy {evaluation.top1:.3f} over {counted(evaluation.count, 'video')}; macro F1 {evaluation.macro.f1:.3f}"
    )
    return lines


def print_evaluation(console: Any, evaluation: Evaluation, model: ModelInfo, what: str) -> None:
    """The per-label table with accuracy in its title (`what`: the data evaluated); the confusion matrix when the
    labels are few; the first mistakes."""
    from rich.markup import escape

    accuracy = f"top-1 {percent(evaluation.top1)}"
    if evaluation.top5 is not None:
        accuracy += f"  top-5 {percent(evaluation.top5)}"
    title = f"{accuracy}  [dim]{counted(evaluation.count, 'video')} of {escape(what)}[/dim]"
    table = titled_table(title, escape(model_caption(model)), show_footer=True)
    macro = evaluation.macro
    footers = (macro.label, percent(macro.precision), percent(macro.recall), percent(macro.f1), str(macro.support))
    for column, footer in zip(("label", "precision", "recall", "F1", "videos"), footers, strict=True):
        table.add_column(column, footer=footer, justify="left" if column == "label" else "right")
    for m in evaluation.per_label:
        table.add_row(escape(m.label), percent(m.precision), percent(m.recall), percent(m.f1), str(m.support))
    console.print(table)
    if len(evaluation.labels) <= TERMINAL_MATRIX_LABELS:
        _print_matrix(console, evaluation)
    _print_misses(console, evaluation)


def _print_matrix(console: Any, evaluation: Evaluation) -> None:
    from rich.markup import escape

    table = titled_table("confusion  [dim]rows: true label, columns: predicted[/dim]")
    table.add_column(CORNER, style="dim")
    for column in evaluation.columns:
        table.add_column(escape(column), justify="right")
    for i, (label, row) in enumerate(zip(evaluation.labels, evaluation.confusion, strict=True)):
        cells = [f"[bold]{n}[/bold]" if j == i else (str(n) if n else "[dim]·[/dim]") for j, n in enumerate(row)]
        table.add_row(escape(label), *cells)
    console.print(table)


def _print_misses(console: Any, evaluation: Evaluation) -> None:
    from rich.markup import escape

    misses = evaluation.misclassified
    if not misses:
        return
    more = len(misses) - TERMINAL_MISSES
    table = titled_table(
        f"misclassified  [dim]{counted(len(misses), 'video')}, most confident first[/dim]",
        f"and {more} more (--out report.json lists them all)" if more > 0 else None,
    )
    for column in ("video", "label", "predicted", "score", "label's rank"):
        numbers = column in ("score", "label's rank")
        # A path too long for the terminal is folded onto more lines, never cut short.
        table.add_column(column, justify="right" if numbers else "left", overflow="fold", no_wrap=numbers)
    shown = misses[:TERMINAL_MISSES]
    names = short_names([o.path for o in shown])  # as few folders as tell them apart
    for o in shown:
        table.add_row(escape(names[o.path]), escape(o.label), escape(o.predicted), percent(o.score), str(o.rank))
    console.print(table)
