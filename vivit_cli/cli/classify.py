"""`vivit classify`: a table (or JSON lines) of each video's top labels."""

from __future__ import annotations

import os
import shlex
from typing import Any

import click

from vivit_cli.batch.plan import default_batch_size
from vivit_cli.cli.options import label_options, load_classifier, model_ids, model_options, timeout_option, view_options
from vivit_cli.cli.progress import above_bars, progress_bar, views_postfix
from vivit_cli.labels import LabelSet
from vivit_cli.results import short_names, shown_path
from vivit_cli.video.sampling import Views


@click.command("classify")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=str))
@model_options
@view_options
@label_options
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout: one object per video, per line.")
@timeout_option("the file is reported as failed")
@click.pass_context
def classify_command(
    ctx: click.Context,
    videos: tuple[str, ...],
    model: str,
    views: Views,
    top_k: int,
    labels: LabelSet,
    as_json: bool,
    timeout: float,
) -> None:
    """Classify each VIDEO and show its top labels.

    Exit codes: 0 all classified, 4 a video failed (each one is named on stderr, the rest still run),
    3 model or checkpoint problem, 2 bad usage or device, 130 Ctrl-C, 143 SIGTERM.
    """
    import json

    from rich.console import Console

    from vivit_cli.batch.pool import DONE, DecodePool
    from vivit_cli.batch.worker import DecodeSpec
    from vivit_cli.errors import VideoError
    from vivit_cli.writers.records import error_record, reason, result_record
    from vivit_cli.writers.tables import print_results_table

    console = Console()
    failed = 0
    ids: tuple[str, str | None] = (model, None)  # until the model is loaded

    def fail(path: str, message: str) -> None:
        nonlocal failed
        if ctx.obj["debug"]:
            raise VideoError(message)
        failed += 1
        with above_bars():
            # One line names the file and says why, whether the message named the file or not (a crash does not).
            click.secho(f"Error: {shown_path(path)}: {shown_path(reason(path, message))}", fg="red", err=True)
            if as_json:
                click.echo(json.dumps(error_record(path, message, *ids), ensure_ascii=False))

    # Paths that cannot be videos are known before the model loads: when none can, it is not loaded (or downloaded).
    unusable = {path: why for path in videos if (why := _unusable(path))}
    todo = [path for path in videos if path not in unusable]
    names = short_names(videos)  # each table's title: as few folders as tell the videos apart
    if not todo:
        for path in videos:
            fail(path, unusable[path])
        ctx.exit(VideoError.exit_code)
    # Decoding runs in a worker process, so a decoder that crashes costs its file only; one worker answers in order,
    # and it decodes the next video while the model runs on this one. It starts, and imports torch, while the model
    # loads.
    with DecodePool(workers=1, timeout_s=timeout) as pool:
        classifier = load_classifier(ctx, model, labels)
        ids = model_ids(classifier)
        # A video's views go through the model as a batch would take them (on a CPU, one at a time): many views of
        # a long video then move the bar as they are scored, at no cost (batching gains little on a CPU).
        batch_size = default_batch_size(classifier.device.type)
        pool.submit(todo, DecodeSpec(classifier.config.num_frames, classifier.preprocess, views), max_pending=1)

        def classify_next(path: str, bar: Any) -> None:
            """The next decoded video through the model, its views moving the bar; then its table or JSON line."""
            decoded = pool.get()
            assert decoded is not None and decoded is not DONE and decoded.path == path, "one worker answers in order"
            if decoded.prepared is None:
                return fail(path, decoded.error or "unknown error")
            scored = views_postfix(bar, len(decoded.prepared.frames))
            result = classifier.classify_prepared(decoded.prepared, top_k, batch_size, scored)
            with above_bars():
                if as_json:
                    click.echo(json.dumps(result_record(result), ensure_ascii=False))
                else:
                    print_results_table(console, result, names[path])

        # A bar where a person watches (not in a log): counted in videos, with a long video's views after it.
        with progress_bar(ctx, "video", len(videos), terminal_only=True) as bar:
            for path in videos:
                if path in unusable:
                    fail(path, unusable[path])
                else:
                    classify_next(path, bar)
                bar.update()
    if failed:
        ctx.exit(VideoError.exit_code)


def _unusable(path: str) -> str | None:
    """Why `path` cannot be a video file, known without opening it; None when it may be one (the decoder decides)."""
    from vivit_cli.video.sources import is_url

    shown = shown_path(path)
    if is_url(path) and not os.path.lexists(path):
        return f"{shown}: a URL, not a video file; to label a stream, use: vivit webcam --source {shlex.quote(shown)}"
    if os.path.isdir(path):
        return f"{shown}: is a directory, not a video file; for the videos in it, use: vivit batch {shlex.quote(shown)}"
    if not os.path.lexists(path):
        return f"{shown}: no such file"
    return None
