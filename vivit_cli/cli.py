"""The `vivit` command: a thin Click group over the pipeline. Data to stdout, chatter to stderr."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click

from vivit_cli import DEFAULT_MODEL, __version__, batch
from vivit_cli.errors import VivitError
from vivit_cli.timeline import DEFAULT_BATCH_SIZE, DEFAULT_EVERY_S, DEFAULT_THRESHOLD

EXIT_INTERRUPTED = 130  # as a shell reports SIGINT
EXIT_TERMINATED = 143  # as a shell reports SIGTERM


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --device and --dtype, shared by every command that runs the model."""
    f = click.option(
        "--dtype",
        type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
        default="auto",
        envvar="VIVIT_DTYPE",
        show_default=True,
        help="Weights and activations precision; auto: fp32 on CPU, bf16 (else fp16) on GPU. [env: VIVIT_DTYPE]",
    )(f)
    f = click.option(
        "--device",
        default="auto",
        envvar="VIVIT_DEVICE",
        show_default=True,
        help="auto, cpu, cuda or cuda:N. [env: VIVIT_DEVICE]",
    )(f)
    f = click.option(
        "--model",
        "-m",
        default=DEFAULT_MODEL,
        envvar="VIVIT_MODEL",
        show_default=True,
        help="Hub repo id (org/name[@revision]) or a local checkpoint folder. [env: VIVIT_MODEL]",
    )(f)
    return f


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a job scheduler, a container stopping), handled as Ctrl-C is: the current rows are
    written, workers stopped and the summary printed, then exit 143."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


class _Group(click.Group):
    """Turns our errors into one line on stderr and an exit code; --debug shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv or bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except VivitError as e:
            if debug:
                raise
            click.secho(f"Error: {e}", fg="red", err=True)
            ctx.exit(e.exit_code)
        except Terminated:
            click.echo("Terminated.", err=True)
            ctx.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.secho(f"Warning: {message}", fg="yellow", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="vivit")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or notes on stderr.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Label videos with ViViT (Video Vision Transformer)."""
    ctx.obj = {"debug": debug, "quiet": quiet}
    warnings.showwarning = _show_warning
    logging.basicConfig(level=logging.WARNING, format="%(message)s")


def _fetch_model(ctx: click.Context, model: str, weights: bool = True) -> Any:
    """MODEL -> a hub.LocalModel through the Hugging Face cache; its note (offline, cached) on stderr."""
    from vivit_cli import hub

    _quiet_hub(ctx, model)
    local = hub.fetch(hub.parse_model(model), weights=weights)
    _note(ctx, local.note)
    return local


def _quiet_hub(ctx: click.Context, model: str) -> None:
    """With --quiet, huggingface_hub's progress bars stay off too (a local folder never imports it)."""
    from vivit_cli import hub

    if ctx.obj["quiet"] and hub.parse_model(model).folder is None:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def _note(ctx: click.Context, note: str | None) -> None:
    if note and not ctx.obj["quiet"]:
        click.echo(f"Note: {note}", err=True)


@cli.command("download")
@click.argument("model", required=False, default=DEFAULT_MODEL, envvar="VIVIT_MODEL")
@click.pass_context
def download_command(ctx: click.Context, model: str) -> None:
    """Fetch MODEL into the Hugging Face cache for offline use; print its folder.

    MODEL: org/name, org/name@revision or a folder [default: $VIVIT_MODEL, else the Kinetics-400 ViViT-B].
    """
    local = _fetch_model(ctx, model)
    click.echo(local.folder)
    if local.revision and not ctx.obj["quiet"]:
        click.echo(f"{local.model_id} at {local.revision[:7]} is cached: it also works offline.", err=True)


@cli.command("labels")
@click.argument("model", required=False, default=DEFAULT_MODEL, envvar="VIVIT_MODEL")
@click.pass_context
def labels_command(ctx: click.Context, model: str) -> None:
    """Print MODEL's label names, one per line, in class-id order (fetches config.json only).

    MODEL: org/name, org/name@revision or a folder [default: $VIVIT_MODEL, else the Kinetics-400 ViViT-B].
    """
    local = _fetch_model(ctx, model, weights=False)
    from vivit_cli.config import read_config

    config, _ = read_config(local.folder)
    for name in config.labels:
        click.echo(name)


def view_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--stride, --clips, --crops and --top-k, shared by the commands that classify videos."""
    f = click.option("--top-k", "-k", type=click.IntRange(1), default=5, show_default=True,
                     help="How many labels to report per video.")(f)
    f = click.option("--crops", type=click.Choice(["1", "3"]), default="1", show_default=True,
                     help="Spatial crops per clip: 1 (centre) or 3 (left/centre/right, or top/centre/bottom).")(f)
    f = click.option("--clips", type=click.IntRange(1), default=1, show_default=True,
                     help="Clips spread evenly over the video; their scores are averaged.")(f)
    f = click.option("--stride", type=click.IntRange(1), default=2, show_default=True, envvar="VIVIT_STRIDE",
                     help="Frames between sampled frames (ViViT-B/16x2 was trained with 2). [env: VIVIT_STRIDE]")(f)
    return f


def _load_classifier(ctx: click.Context, model: str, device: str, dtype: str) -> Any:
    """Load the model the way every command does, with the Hub's note (offline, cached) on stderr."""
    from vivit_cli.pipeline import load_model

    _quiet_hub(ctx, model)
    classifier = load_model(model, device=device, dtype=dtype)
    _note(ctx, classifier.source.note)
    return classifier


@cli.command("classify")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=str))
@model_options
@view_options
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout: one object per video, per line.")
@click.pass_context
def classify_command(ctx: click.Context, videos: tuple[str, ...], model: str, device: str, dtype: str,
                     stride: int, clips: int, crops: str, top_k: int, as_json: bool) -> None:
    """Classify each VIDEO and show its top labels.

    Exit codes: 0 all classified, 4 a video failed (each one is named on stderr, the rest still run),
    3 model or checkpoint problem, 2 bad usage or device, 130 interrupted.
    """
    import json

    from rich.console import Console

    from vivit_cli.errors import VideoError
    from vivit_cli.video import ClipsAhead, Views
    from vivit_cli.writers import error_record, print_results_table, result_record

    views = Views(stride=stride, clips=clips, crops=int(crops))
    classifier = _load_classifier(ctx, model, device, dtype)
    console = Console()
    failed = 0
    # The next video decodes in a thread while the model runs on this one.
    with ClipsAhead(videos, views.sampling(classifier.config.num_frames)) as ahead:
        for path, clips_of in ahead:
            try:
                result = classifier.classify_clips(path, *clips_of(), views, top_k)
            except VideoError as e:
                if ctx.obj["debug"]:
                    raise
                failed += 1
                click.secho(f"Error: {e}", fg="red", err=True)
                if as_json:
                    click.echo(json.dumps(error_record(path, str(e), *_model_ids(classifier))))
                continue
            if as_json:
                click.echo(json.dumps(result_record(result), ensure_ascii=False))
            else:
                print_results_table(console, result)
    if failed:
        ctx.exit(VideoError.exit_code)


def _model_ids(classifier: Any) -> tuple[str, str | None]:
    return classifier.info.model_id, classifier.info.revision


@cli.command("batch")
@click.argument("sources", nargs=-1, required=True)
@model_options
@view_options
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=str),
              help="Output file: .csv, .json, .jsonl or .parquet; - for stdout. [default: JSONL on stdout]")
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl", "parquet"]),
              help="Output format, when not the --out suffix's.")
@click.option("--recursive", "-r", is_flag=True, help="Look in the subfolders of folder sources.")
@click.option("--resume", is_flag=True, help="Keep the ok rows already in --out, do the rest (error rows are retried).")
@click.option("--workers", "-j", type=click.IntRange(1),
              help="Decode processes; with --ray, model workers. [default: from the cores and device]")
@click.option("--batch-size", "-b", type=click.IntRange(1), default=batch.DEFAULT_BATCH_SIZE,
              show_default=True, help="Views (clips x crops) per forward pass.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=batch.DEFAULT_TIMEOUT_S,
              show_default=True,
              help="Seconds one file may take to decode; then its worker is stopped and the file gets an error row.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", metavar="[ADDRESS]",  # "": ray.init() decides
              help="Run on Ray: a running cluster (or a new local one), auto, or ray://host:port; "
                   "needs the ray extra. Put it after SOURCES, or write --ray=ADDRESS.")
@click.option("--gpus-per-worker", type=click.FloatRange(0),
              help="With --ray: GPUs per model worker. [default: 1 if the cluster has GPUs, else 0]")
@click.pass_context
def batch_command(ctx: click.Context, sources: tuple[str, ...], model: str, device: str, dtype: str, stride: int,
                  clips: int, crops: str, top_k: int, out: str | None, fmt: str | None, recursive: bool,
                  resume: bool, workers: int | None, batch_size: int, timeout: float, ray_address: str | None,
                  gpus_per_worker: float | None) -> None:
    """Classify every video in SOURCES into one CSV, JSON or JSONL file: a row per video, ok or error.

    A SOURCE is a folder, a glob, a file or @list.txt (one file per line). Rows are written as videos finish.
    Exit codes: 0 all classified, 4 some videos failed (see their rows), 3 model or checkpoint problem,
    2 bad usage or device, 130 interrupted (finish with --resume).
    """
    from tqdm import tqdm

    from vivit_cli.errors import VideoError
    from vivit_cli.video import Views

    views = Views(stride=stride, clips=clips, crops=int(crops))
    if ray_address is not None:  # the same job on Ray Data, with no torch in this process: vivit_cli/ray_runner.py
        _batch_on_ray(ctx, views)
        return
    from vivit_cli.pipeline import resolve_device

    job = batch.plan(sources, recursive, out, fmt, resume)  # usage errors before anything is loaded
    tally, quiet = batch.Tally(skipped=job.skipped), ctx.obj["quiet"]
    if not job.todo:
        if not quiet:
            click.echo(tally.summary(job.out), err=True)
        return
    interrupted = False
    # The workers start, and import torch, while the model loads.
    with batch.DecodePool(workers or batch.default_workers(resolve_device(device).type), timeout) as pool:
        classifier = _load_classifier(ctx, model, device, dtype)
        batch.check_model(job, classifier.info)
        bar = tqdm(total=len(job.todo), unit="video", disable=quiet, file=sys.stderr, dynamic_ncols=True)
        try:
            with batch.open_output(job, sys.stdout) as writer:
                batch.run(classifier, job.todo, pool, writer, views, top_k, batch_size, tally,
                          on_row=lambda _: bar.update())
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            bar.close()
            if not quiet:
                click.echo(tally.summary(job.out, interrupted), err=True)
    if tally.failed:
        ctx.exit(VideoError.exit_code)


def _batch_on_ray(ctx: click.Context, views: Any) -> None:
    """`vivit batch --ray`: the same rows, files and exit codes as a local run, from a Ray cluster."""
    from tqdm import tqdm

    from vivit_cli import ray_runner
    from vivit_cli.errors import VideoError

    p = ctx.params
    ray_runner.require_ray()
    address, sources = ray_runner.split_address(p["ray_address"], p["sources"])
    job = batch.plan(sources, p["recursive"], p["out"], p["fmt"], p["resume"])
    tally, quiet = batch.Tally(skipped=job.skipped), ctx.obj["quiet"]
    if not job.todo:
        if not quiet:
            click.echo(tally.summary(job.out), err=True)
        return
    _quiet_hub(ctx, p["model"])
    model = ray_runner.resolve_model(p["model"])  # once, here: every worker loads the same commit
    batch.check_model(job, model.info)
    _note(ctx, model.note)
    interrupted, stdout = False, sys.stdout  # taken before Ray's messages move to stderr
    with ray_runner.connect(address, quiet):
        pool = ray_runner.size_pool(p["device"], p["workers"], p["gpus_per_worker"])
        bar = tqdm(total=len(job.todo), unit="video", disable=quiet, file=sys.stderr, dynamic_ncols=True)
        try:
            with ray_runner.open_output(job, stdout) as writer:
                ray_runner.run(job.todo, model, pool, writer, views, p["top_k"], p["dtype"], p["batch_size"],
                               p["timeout"], tally, on_row=lambda _: bar.update())
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            bar.close()
            if not quiet:
                click.echo(tally.summary(job.out, interrupted), err=True)
    if tally.failed:
        ctx.exit(VideoError.exit_code)


@cli.command("webcam")
@click.option("--source", "-s", default="0", show_default=True,
              help="A camera index, a video file, or a stream URL (rtsp://, http://, ...).")
@model_options
@click.option("--stride", type=click.IntRange(1), default=2, show_default=True, envvar="VIVIT_STRIDE",
              help="Frames between the sampled frames of a window. [env: VIVIT_STRIDE]")
@click.option("--top-k", "-k", type=click.IntRange(1), default=5, show_default=True, help="Labels per prediction.")
@click.option("--every", type=click.IntRange(1), default=8, show_default=True,
              help="Frames between predictions (more when the model is slower than the source).")
@click.option("--smooth", type=click.IntRange(1), default=1, show_default=True,
              help="Average the probabilities of the last K predictions.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Leave out labels whose (smoothed) score is below this, on screen and in the log.")
@click.option("--show", is_flag=True, help="Open a window with the frames and the labels; q or Esc quits.")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=str),
              help="Log one row per prediction: a .csv or .jsonl file, or - for JSONL on stdout.")
@click.option("--max-predictions", "-n", type=click.IntRange(1), help="Stop after N predictions.")
@click.option("--duration", type=click.FloatRange(0, min_open=True), help="Stop after S seconds.")
@click.option("--fast", is_flag=True, help="Read a file as fast as the model goes, scoring every window.")
@click.option("--reconnect", type=click.IntRange(0), default=5, show_default=True,
              help="Attempts to reopen a stream or camera that stops, with growing pauses.")
@click.option("--open-timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="Seconds a stream may take to answer.")
@click.option("--read-timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="Seconds without a frame before a stream counts as dropped.")
@click.pass_context
def webcam_command(ctx: click.Context, source: str, model: str, device: str, dtype: str, stride: int, top_k: int,
                   every: int, smooth: int, threshold: float, show: bool, out: str | None,
                   max_predictions: int | None, duration: float | None, fast: bool, reconnect: int,
                   open_timeout: float, read_timeout: float) -> None:
    """Label what a camera, a file or a stream shows, live.

    Exit codes: 0 stopped by a limit, q or the end of a file; 5 no camera, a stream that does not answer or
    stops for good; 4 an unreadable file; 3 model problem; 2 bad usage, device or no display; 130 Ctrl-C.
    """
    import contextlib

    from rich.console import Console

    from vivit_cli import capture, webcam, webcam_view

    src = capture.parse_source(source)  # usage errors before the model loads
    settings = webcam.LiveSettings(stride, every, smooth, top_k, threshold, max_predictions, duration, fast)
    capture_settings = capture.CaptureSettings(open_timeout, read_timeout, reconnect)
    if out:
        webcam_view.log_format(out)
    live_model = webcam.ClassifierModel(_load_classifier(ctx, model, device, dtype))
    console = Console(stderr=True)
    mode = "off" if ctx.obj["quiet"] else "live" if console.is_terminal else "lines"
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(webcam_view.LogWriter(out, src.name)) if out else None
        window = webcam_view.Window() if show else None
        if window:
            stack.callback(window.close)
        view = stack.enter_context(webcam_view.TerminalView(console, mode, src.name))

        def on_prediction(p: webcam.LivePrediction) -> None:
            if log:
                log.write(p)
            view.prediction(p)

        def on_tick(status: webcam.LiveStatus) -> bool:
            view.tick(status)
            return window.show(status) if window else True

        summary = webcam.run_live(src, live_model, settings, capture_settings, on_prediction, on_tick)
    if not ctx.obj["quiet"]:
        click.echo(f"{summary.predictions} predictions from {summary.frames_read} frames "
                   f"({summary.frames_skipped} skipped while the model was busy); stopped: {summary.reason}.",
                   err=True)


@cli.command("timeline")
@click.argument("video_path", metavar="VIDEO", type=click.Path(path_type=str))
@model_options
@view_options
@click.option("--every", type=click.FloatRange(0, min_open=True), default=DEFAULT_EVERY_S, show_default=True,
              help="Seconds between window starts; each window is one clip (num_frames frames, --stride apart).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=DEFAULT_THRESHOLD, show_default=True,
              help="Top-1 score a window needs to join a segment; weaker windows leave a gap.")
@click.option("--batch-size", "-b", type=click.IntRange(1), default=DEFAULT_BATCH_SIZE, show_default=True,
              help="Windows per forward pass (each is --crops views).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=str),
              help="Segment and window rows: a .csv, .json or .jsonl file, or - for JSONL on stdout.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=str), help="Draw the timeline into a .png.")
@click.option("--overlay", type=click.Path(dir_okay=False, path_type=str),
              help="Write the video with each frame's labels drawn on it (.mp4; H.264 with PyAV installed).")
@click.pass_context
def timeline_command(ctx: click.Context, video_path: str, model: str, device: str, dtype: str, stride: int,
                     clips: int, crops: str, top_k: int, every: float, threshold: float, batch_size: int,
                     out: str | None, plot: str | None, overlay: str | None) -> None:
    """Label VIDEO over time: a window every --every seconds, merged into segments of one label.

    Prints the segments (with --out -, JSONL rows instead). A window is one clip, so --clips must be 1.
    Exit codes as for classify.
    """
    from rich.console import Console
    from tqdm import tqdm

    from vivit_cli import timeline, timeline_writers
    from vivit_cli.overlay import check_overlay_path, write_overlay
    from vivit_cli.plot import check_plot_path, save_plot
    from vivit_cli.video import Views

    if clips != 1:
        raise click.BadParameter("each window is one clip: use --every to place windows closer", param_hint="--clips")
    views = Views(stride=stride, clips=1, crops=int(crops))
    # Bad output names fail now, not after the scan.
    if out:
        timeline_writers.output_format(out)
    if plot:
        check_plot_path(plot)
    if overlay:
        check_overlay_path(overlay)
    classifier = _load_classifier(ctx, model, device, dtype)
    quiet = ctx.obj["quiet"]
    with tqdm(unit="frame", desc="scoring", disable=quiet, file=sys.stderr, dynamic_ncols=True) as bar:
        result = timeline.scan(classifier, video_path, views, every, top_k, batch_size, threshold,
                               progress=_tqdm_progress(bar))
    if out:
        timeline_writers.write_timeline(result, sys.stdout if out == "-" else out)
    timeline_writers.print_segments_table(Console(stderr=out == "-"), result)
    if plot:
        save_plot(result, plot)
        if not quiet:
            click.echo(f"Wrote {plot}", err=True)
    if overlay:
        with tqdm(unit="frame", desc="overlay", disable=quiet, file=sys.stderr, dynamic_ncols=True) as bar:
            written = write_overlay(result, overlay, progress=_tqdm_progress(bar))
        if not quiet:
            if written.note:
                click.echo(f"Note: {written.note}", err=True)
            click.echo(f"Wrote {overlay} ({written.codec}, {written.frames} frames)", err=True)


def _tqdm_progress(bar: Any) -> Callable[[int, int], None]:
    """A (done, total) callback that moves a tqdm bar."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress


def main() -> None:
    # OpenCV and FFmpeg print their own warnings for damaged files; ours say it in one line instead.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    signal.signal(signal.SIGTERM, _terminate)
    cli(prog_name="vivit")

