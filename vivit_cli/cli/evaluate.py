"""`vivit evaluate`: how well a model labels the user's labelled videos."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from vivit_cli.cli.options import (
    batch_size_option,
    fetch_model,
    file_option,
    load_classifier,
    model_options,
    note,
    sampling_options,
    timeout_option,
    warn_once,
    workers_option,
)
from vivit_cli.cli.progress import progress_bar, say_failed
from vivit_cli.results import counted
from vivit_cli.writers.pictures import PICTURE_NAMES

if TYPE_CHECKING:
    from vivit_cli.learn.data import Example
    from vivit_cli.learn.metrics import Outcome
    from vivit_cli.results import ModelInfo
    from vivit_cli.video.sampling import Views


@click.command("evaluate")
@click.argument("data", type=click.Path(path_type=str))
@model_options
@sampling_options
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    help="The split of DATA to evaluate. [default: test if DATA has it, else val, else every video]",
)
@click.option(
    "--all",
    "keep_trained",
    is_flag=True,
    help="Also score the videos the model was trained on (a model from vivit train names them); its figures are "
    "then not held out. [default: they are left out]",
)
@file_option("--out", "-o", help="The whole report as JSON: .json, or - for stdout (the tables then go to stderr).")
@file_option("--matrix", help="The confusion matrix as a .csv file.")
@file_option("--plot", help=f"The confusion matrix as a heat map: a {PICTURE_NAMES} picture.")
@workers_option()
@batch_size_option("Views (clips x crops) per forward pass", "the progress bar moves a video at a time")
@timeout_option("the video counts as failed")
@click.pass_context
def evaluate_command(
    ctx: click.Context, data: str, views: Views, out: str | None, matrix: str | None, plot: str | None, **p: Any
) -> None:
    """Score the labelled videos of DATA and report how well MODEL labels them.

    DATA is a folder of label folders (DATA/<label>/*.mp4), split folders above them (DATA/test/<label>/...),
    or a .csv/.jsonl of path,label[,split]. Its labels must be the model's. A model that vivit train wrote names
    the videos it learnt from: they are left out (--all keeps them). Prints top-1 accuracy (and top-5, for a model
    of more than 5 labels), per-label precision, recall and F1, the confusion matrix and the videos it got wrong;
    the confusion matrix's last column, (other), counts predictions of the model's labels that DATA does not have.
    Videos that do not decode are left out of the metrics. Exit codes: 0 done, 4 some videos failed to decode (the
    report covers the rest), 3 model or checkpoint problem, 2 bad usage, DATA or device, 130 Ctrl-C, 143 SIGTERM.
    """
    from vivit_cli.writers.files import held_outputs

    _check_outputs(out, matrix, plot)  # before anything is read, fetched or loaded
    with held_outputs([("--out", out), ("--matrix", matrix), ("--plot", plot)]):
        _evaluate(ctx, data, views, out, matrix, plot, p)


def _evaluate(
    ctx: click.Context,
    data: str,
    views: Views,
    out: str | None,
    matrix: str | None,
    plot: str | None,
    p: dict[str, Any],
) -> None:
    from dataclasses import asdict

    from rich.console import Console

    from vivit_cli.checkpoint import read_config
    from vivit_cli.errors import VideoError
    from vivit_cli.learn import evaluate as run
    from vivit_cli.learn.confusion import save_confusion
    from vivit_cli.learn.data import read_data
    from vivit_cli.learn.metrics import evaluate
    from vivit_cli.writers.evaluation import REPORT, confusion_rows, confusion_schema, print_evaluation, report_record
    from vivit_cli.writers.formats import STDOUT, write_all, write_document

    dataset = read_data(data)
    chosen = run.select(dataset, p["split"])
    local = fetch_model(ctx, p["model"], weights=False)
    chosen = run.hold_out(chosen, run.trained_videos(local.folder), p["keep_trained"])
    left_out = f"; {chosen.left_out} it was trained on left out (--all keeps them)" if chosen.left_out else ""
    videos = counted(len(chosen.examples), "video")
    note(ctx, f"evaluating {videos} of {data} ({chosen.reason}{left_out}), {counted(len(dataset.labels), 'label')}")
    if chosen.not_held_out:
        warn_once()(f"the model was trained on {chosen.not_held_out} of these videos (--all): the figures are not "
                    "held out, and flatter it")  # fmt: skip
    config, _ = read_config(local.folder)
    run.check_labels(dataset.labels, config.labels, local.model_id)  # before the weights are fetched or loaded
    info, outcomes, failed = _score(ctx, local.pinned, chosen.examples, views)
    listed_in = out if out and out != STDOUT else None
    say_failed(ctx, failed, len(chosen.examples), "the metrics leave them out", listed_in)
    if not outcomes:
        raise VideoError(f"none of the {len(chosen.examples)} videos could be decoded: nothing to evaluate")
    evaluation = evaluate(outcomes, dataset.labels, len(config.labels))
    if out is not None:
        record = report_record(evaluation, info, data, chosen.split, asdict(views), failed)
        write_document(out, record, REPORT, sys.stdout)
    if matrix is not None:
        write_all(matrix, confusion_rows(evaluation), confusion_schema(evaluation.columns), sys.stdout)
    what = f"{data}, {chosen.split} split" if chosen.split else data
    if plot is not None:
        title = f"{info.model_id} on {what}: top-1 {evaluation.top1:.1%}, {counted(evaluation.count, 'video')}"
        save_confusion(evaluation, title, plot, warn_once())
    if not (out == STDOUT and ctx.obj["quiet"]):  # the tables go to stderr when the report is on stdout
        print_evaluation(Console(stderr=out == STDOUT), evaluation, info, what)
    if failed:
        ctx.exit(VideoError.exit_code)


def _check_outputs(out: str | None, matrix: str | None, plot: str | None) -> None:
    """Names that cannot be written are usage errors now, not after every video has been scored."""
    from vivit_cli.errors import SourceError
    from vivit_cli.writers.evaluation import REPORT, confusion_schema
    from vivit_cli.writers.formats import STDOUT, check_folder, format_for
    from vivit_cli.writers.pictures import check_picture_path

    if out is not None and out != STDOUT:
        format_for(out, None, REPORT)
        check_folder(out)
    for name, option in ((matrix, "--matrix"), (plot, "--plot")):
        if name == STDOUT:
            raise SourceError(f"{option} goes to a file, not to stdout")
        if name is not None:
            check_folder(name)
    if matrix is not None:
        format_for(matrix, None, confusion_schema(()))
    if plot is not None:
        check_picture_path(plot)


def _score(
    ctx: click.Context, model: str, examples: Sequence[Example], views: Views
) -> tuple[ModelInfo, list[Outcome], list[tuple[str, str]]]:
    """Every example scored, with the command's --device, --workers and the like, and a bar on stderr: what answered
    (ModelInfo), the outcomes, and (path, why) of the videos that failed."""
    from vivit_cli.batch.plan import default_workers
    from vivit_cli.batch.pool import DecodePool
    from vivit_cli.device import resolve_device
    from vivit_cli.learn.evaluate import score_examples
    from vivit_cli.learn.metrics import Outcome
    from vivit_cli.writers.records import reason

    p = ctx.params
    outcomes: list[Outcome] = []
    failed: list[tuple[str, str]] = []
    # The workers start, and import torch, while the model loads.
    with DecodePool(p["workers"] or default_workers(resolve_device(p["device"]).type), p["timeout"]) as pool:
        classifier = load_classifier(ctx, model)
        with progress_bar(ctx, "video", len(examples)) as bar:
            for item in score_examples(classifier, examples, pool, views, p["batch_size"]):
                if isinstance(item, Outcome):
                    outcomes.append(item)
                else:
                    failed.append((item.path, reason(item.path, item.error or "unknown error")))
                bar.update()
    return classifier.info, outcomes, sorted(failed)
