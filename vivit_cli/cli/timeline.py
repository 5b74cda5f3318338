"""`vivit timeline`: one video's labels over time, as segments, rows, a plot and an overlay video."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from vivit_cli.batch.plan import default_batch_size
from vivit_cli.cli.options import (
    SECONDS,
    batch_size_option,
    file_option,
    label_options,
    load_classifier,
    model_options,
    say_stopped,
    warn_once,
    window_options,
)
from vivit_cli.cli.progress import progress_bar, tqdm_progress
from vivit_cli.labels import LabelSet
from vivit_cli.live.timeline import DEFAULT_EVERY_S, DEFAULT_THRESHOLD
from vivit_cli.video.sampling import Views
from vivit_cli.writers.pictures import PICTURE_NAMES

if TYPE_CHECKING:
    from vivit_cli.results import Timeline


@click.command("timeline")
@click.argument("video_path", metavar="VIDEO", type=click.Path(path_type=str))
@model_options
@window_options
@label_options
@click.option(
    "--every",
    type=SECONDS,
    default=DEFAULT_EVERY_S,
    help="Seconds between window starts; each window is one clip (num_frames frames, --stride apart).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=DEFAULT_THRESHOLD,
    help="Top-1 score a window needs to join a segment; weaker windows, and windows with no label (--min-score), "
    "leave a gap.",
)
@batch_size_option("Windows per forward pass (each is --crops views)", "the bar then moves window by window")
@file_option("--out", "-o", help="Segment and window rows: a .csv, .json or .jsonl file, or - for JSONL on stdout.")
@file_option("--plot", help=f"Draw the timeline into a {PICTURE_NAMES} picture.")
@file_option(
    "--overlay", help="Write the video with each frame's labels drawn on it (.mp4; H.264 with PyAV installed)."
)
@click.pass_context
def timeline_command(
    ctx: click.Context,
    views: Views,
    top_k: int,
    labels: LabelSet,
    out: str | None,
    plot: str | None,
    overlay: str | None,
    **_: Any,
) -> None:
    """Label VIDEO over time: a window every --every seconds, merged into segments of one label.

    Prints the segments (with --out -, JSONL rows instead). Exit codes as for classify.
    """
    from vivit_cli.live.overlay import check_overlay_path
    from vivit_cli.live.plot import check_plot_path
    from vivit_cli.writers.files import held_outputs
    from vivit_cli.writers.formats import check_folder, format_for
    from vivit_cli.writers.live import TIMELINE

    if views.clips != 1:
        raise click.BadParameter("each window is one clip: use --every to place windows closer", param_hint="--clips")
    # Bad output names, outputs that cannot be written and a video that cannot be read fail now, not after fetching
    # the model or the scan.
    if out:
        format_for(out, None, TIMELINE)
        check_folder(out)
    if plot:
        check_plot_path(plot)
    if overlay:
        check_overlay_path(overlay)
    with held_outputs([("--out", out), ("--plot", plot), ("--overlay", overlay)]):
        _timeline(ctx, views, top_k, labels)


def _timeline(ctx: click.Context, views: Views, top_k: int, labels: LabelSet) -> None:
    """The scan and its outputs, with the command's other options from ctx.params."""
    from tqdm import tqdm

    from vivit_cli.live import timeline
    from vivit_cli.live.overlay import write_overlay
    from vivit_cli.results import clock, counted, shown_path
    from vivit_cli.video import probe

    p = ctx.params
    video_path, every, threshold, out, plot, overlay = (
        p[k] for k in ("video_path", "every", "threshold", "out", "plot", "overlay")
    )
    info = probe.open_video(video_path)
    classifier = load_classifier(ctx, p["model"], labels)
    batch_size = p["batch_size"] or default_batch_size(classifier.device.type)
    quiet = ctx.obj["quiet"]
    span = views.sampling(classifier.config.num_frames).span
    windows = timeline.window_count(info.frame_count, info.fps, every, span)
    if not quiet:
        click.echo(
            f"Scoring {counted(windows, 'window')} of {span} frames (one every {every:g} s over "
            f"{info.duration_s:.1f} s, {info.frame_count} frames), {batch_size} per forward pass",
            err=True,
        )
    # The plot and the overlay draw the same labels: what they cannot draw is said once, above the overlay's bar.
    warn = warn_once(lambda line: tqdm.write(line, file=sys.stderr))
    stopped: list[Timeline] = []  # the windows scored before Ctrl-C
    try:
        with progress_bar(ctx, "window", windows, "scoring") as bar:
            result = timeline.scan(
                classifier,
                video_path,
                views,
                every,
                top_k,
                batch_size,
                threshold,
                tqdm_progress(bar),
                info,
                on_stop=stopped.append,
            )
    except KeyboardInterrupt:
        if stopped:  # paid for: written as a whole run's would be, and said so
            partial = stopped[0]
            kept = _write(ctx, partial, out, plot, warn)
            if not quiet:
                done = f"{len(partial.windows)} of {counted(windows, 'window')}"
                line = f"Interrupted after {done} (to {clock(partial.end_s)})"
                line += f": wrote their {' and '.join(kept)}" if kept else ""
                say_stopped(ctx, line + ("; no overlay" if overlay else ""))
        raise
    _write(ctx, result, out, plot, warn)
    if overlay:
        with progress_bar(ctx, "frame", desc="overlay") as bar:
            written = write_overlay(result, overlay, progress=tqdm_progress(bar), warn=warn)
        if not quiet:
            if written.note:
                click.echo(f"Note: {written.note}", err=True)
            codecs = written.codec + (f" + {written.audio}" if written.audio else "")  # sound kept: its codec too
            click.echo(f"Wrote {shown_path(overlay)} ({codecs}, {written.frames} frames)", err=True)


def _write(
    ctx: click.Context, result: Timeline, out: str | None, plot: str | None, warn: Callable[[str], None]
) -> list[str]:
    """The rows (--out), the segments table and the plot of `result`; what was written, as said on stderr."""
    from rich.console import Console

    from vivit_cli.live.plot import save_plot
    from vivit_cli.results import shown_path
    from vivit_cli.writers.formats import STDOUT, write_all
    from vivit_cli.writers.live import TIMELINE, timeline_records
    from vivit_cli.writers.tables import print_segments_table

    kept = []
    if out:
        write_all(out, timeline_records(result), TIMELINE, sys.stdout)
        kept += [] if out == STDOUT else [f"windows and segments to {shown_path(out)}"]
    print_segments_table(Console(stderr=out == STDOUT), result)
    if plot:
        save_plot(result, plot, warn=warn)
        kept.append(f"plot to {shown_path(plot)}")
        if not ctx.obj["quiet"]:
            click.echo(f"Wrote {shown_path(plot)}", err=True)
    return kept
