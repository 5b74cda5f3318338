"""The `vivit` command: a thin Click group over the pipeline. Data to stdout, chatter to stderr."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from typing import Any

import click

from vivit_cli import DEFAULT_MODEL, __version__
from vivit_cli.cli.batch import batch_command
from vivit_cli.cli.options import fetch_model, load_classifier, model_ids, model_options, view_options
from vivit_cli.cli.timeline import timeline_command
from vivit_cli.cli.webcam import webcam_command
from vivit_cli.errors import VivitError
from vivit_cli.memory import keep_freed_memory

EXIT_INTERRUPTED = 130  # as a shell reports SIGINT
EXIT_TERMINATED = 143  # as a shell reports SIGTERM


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


@cli.command("download")
@click.argument("model", required=False, default=DEFAULT_MODEL, envvar="VIVIT_MODEL")
@click.pass_context
def download_command(ctx: click.Context, model: str) -> None:
    """Fetch MODEL into the Hugging Face cache for offline use; print its folder.

    MODEL: org/name, org/name@revision or a folder [default: $VIVIT_MODEL, else the Kinetics-400 ViViT-B].
    """
    local = fetch_model(ctx, model)
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
    local = fetch_model(ctx, model, weights=False)
    from vivit_cli.checkpoint import read_config

    config, _ = read_config(local.folder)
    for name in config.labels:
        click.echo(name)


@cli.command("classify")
@click.argument("videos", nargs=-1, required=True, type=click.Path(path_type=str))
@model_options
@view_options
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout: one object per video, per line.")
@click.pass_context
def classify_command(
    ctx: click.Context,
    videos: tuple[str, ...],
    model: str,
    device: str,
    dtype: str,
    stride: int,
    clips: int,
    crops: str,
    top_k: int,
    as_json: bool,
) -> None:
    """Classify each VIDEO and show its top labels.

    Exit codes: 0 all classified, 4 a video failed (each one is named on stderr, the rest still run),
    3 model or checkpoint problem, 2 bad usage or device, 130 Ctrl-C, 143 SIGTERM.
    """
    import json

    from rich.console import Console

    from vivit_cli.errors import VideoError
    from vivit_cli.video.ahead import ClipsAhead
    from vivit_cli.video.sampling import Views
    from vivit_cli.writers.records import error_record, result_record
    from vivit_cli.writers.tables import print_results_table

    views = Views(stride=stride, clips=clips, crops=int(crops))
    classifier = load_classifier(ctx, model, device, dtype)
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
                    click.echo(json.dumps(error_record(path, str(e), *model_ids(classifier))))
                continue
            if as_json:
                click.echo(json.dumps(result_record(result), ensure_ascii=False))
            else:
                print_results_table(console, result)
    if failed:
        ctx.exit(VideoError.exit_code)


cli.add_command(batch_command)
cli.add_command(webcam_command)
cli.add_command(timeline_command)


def main() -> None:
    # OpenCV and FFmpeg print their own warnings for damaged files; ours say it in one line instead.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    signal.signal(signal.SIGTERM, _terminate)
    keep_freed_memory()
    cli(prog_name="vivit")
