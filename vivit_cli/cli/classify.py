"""`vivit classify`: a table (or JSON lines) of each video's top labels."""

from __future__ import annotations

import click

from vivit_cli.cli.options import load_classifier, model_ids, model_options, view_options


@click.command("classify")
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
