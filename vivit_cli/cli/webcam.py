"""`vivit webcam`: live labels from a camera, a file or a stream."""

from __future__ import annotations

import click

from vivit_cli.cli.options import (
    SECONDS,
    file_option,
    label_options,
    load_classifier,
    model_options,
    stride_option,
    warn_once,
)
from vivit_cli.labels import LabelSet
from vivit_cli.live import settings as live
from vivit_cli.results import counted


@click.command("webcam")
@click.option(
    "--source", "-s", default="0", help="A camera index, a video file, or a stream URL (rtsp://, http://, ...)."
)
@model_options
@stride_option("Frames between the sampled frames of a window.")
@click.option("--top-k", "-k", type=click.IntRange(1), default=live.TOP_K, help="Labels per prediction.")
@click.option(
    "--every",
    type=click.IntRange(1),
    default=live.WEBCAM_EVERY,
    help="Frames between predictions (more when the model is slower than the source).",
)
@click.option(
    "--smooth", type=click.IntRange(1), default=1, help="Average the probabilities of the last K predictions."
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Leave out labels whose (smoothed) score is below this, on screen and in the log.",
)
@label_options
@click.option("--show", is_flag=True, help="Open a window with the frames and the labels; q or Esc quits.")
@file_option(
    "--out",
    "-o",
    help="Log one row per prediction, and one per event of the source (lost, reopened): a .csv or .jsonl file, or - "
    "for JSONL on stdout. An existing file is replaced when the first row comes.",
)
@click.option("--max-predictions", "-n", type=click.IntRange(1), help="Stop after N predictions.")
@click.option("--duration", type=SECONDS, help="Stop after S seconds.")
@click.option("--fast", is_flag=True, help="Read a file as fast as the model goes, scoring every window.")
@click.option(
    "--reconnect",
    type=click.IntRange(0),
    default=live.RECONNECT_ATTEMPTS,
    help="Attempts to reopen a stream or camera that stops, with growing pauses.",
)
@click.option("--open-timeout", type=SECONDS, default=live.OPEN_TIMEOUT_S, help="Seconds a stream may take to answer.")
@click.option(
    "--read-timeout",
    type=SECONDS,
    default=live.READ_TIMEOUT_S,
    help="Seconds without a frame before a stream counts as dropped.",
)
@click.pass_context
def webcam_command(
    ctx: click.Context,
    source: str,
    model: str,
    stride: int,
    top_k: int,
    every: int,
    smooth: int,
    threshold: float,
    labels: LabelSet,
    show: bool,
    out: str | None,
    max_predictions: int | None,
    duration: float | None,
    fast: bool,
    reconnect: int,
    open_timeout: float,
    read_timeout: float,
) -> None:
    """Label what a camera, a file or a stream shows, live.

    Exit codes: 0 stopped by a limit, q or the end of a file; 5 no camera, a stream that does not answer or
    stops for good; 4 an unreadable file; 3 model problem; 2 bad usage, device or no display; 130 Ctrl-C, 143 SIGTERM.
    """
    import contextlib
    import sys

    from rich.console import Console

    from vivit_cli.live import view, webcam
    from vivit_cli.results import LiveEvent, LivePrediction
    from vivit_cli.writers.formats import LazyWriter, check_folder, format_for, open_output
    from vivit_cli.writers.live import WEBCAM, webcam_event_record, webcam_record

    src = live.parse_source(source)  # usage errors before the model is fetched and loaded
    settings = live.LiveSettings(stride, every, smooth, top_k, threshold, max_predictions, duration, fast)
    live.check_settings(src, settings)
    capture_settings = live.CaptureSettings(open_timeout, read_timeout, reconnect)
    if out:
        format_for(out, None, WEBCAM)
        check_folder(out)
    if show:
        view.check_display()
    live_model = webcam.ClassifierModel(load_classifier(ctx, model, labels))
    console = Console(stderr=True)
    mode = "off" if ctx.obj["quiet"] else "live" if console.is_terminal else "lines"
    with contextlib.ExitStack() as stack:
        # Opened with the first row: a source that cannot be opened leaves an existing log as it was.
        log = LazyWriter(lambda: stack.enter_context(open_output(out, WEBCAM, sys.stdout))) if out else None
        # Said through the console: rich prints it above its live panel.
        warn = warn_once(
            lambda line: console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)
        )
        window = view.PreviewWindow(warn=warn) if show else None
        if window:
            stack.callback(window.close)
        terminal = stack.enter_context(view.TerminalView(console, mode, src.name))

        def on_prediction(p: LivePrediction) -> None:
            if log:
                log.write(webcam_record(p, src.name, live_model.classifier.info))
            terminal.prediction(p)

        def on_event(e: LiveEvent) -> None:
            if log:
                log.write(webcam_event_record(e, src.name))
            terminal.event(e)

        def on_tick(status: webcam.LiveStatus) -> bool:
            terminal.tick(status)
            return window.show(status) if window else True

        summary = webcam.run_live(
            src, live_model, settings, capture_settings, on_prediction, on_tick, on_event=on_event
        )
    if not ctx.obj["quiet"]:
        click.echo(
            f"{counted(summary.predictions, 'prediction')} from {counted(summary.frames_read, 'frame')} "
            f"({summary.frames_skipped} skipped while the model was busy); stopped: {summary.reason}.",
            err=True,
        )
