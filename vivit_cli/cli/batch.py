"""`vivit batch`: folders of videos into one file of rows, on this machine or on Ray."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from vivit_cli.batch import local
from vivit_cli.batch import plan as batch
from vivit_cli.batch.pool import DecodePool
from vivit_cli.batch.rows import Labels
from vivit_cli.cli.options import (
    batch_size_option,
    fetch_model,
    load_classifier,
    model_options,
    note,
    quiet_hub,
    say_stopped,
    timeout_option,
    view_options,
    workers_option,
)


@click.command("batch")
@click.argument("sources", nargs=-1, required=True)
@model_options
@view_options
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=str),
    help="Output file: .csv, .json, .jsonl or .parquet; - for stdout. [default: JSONL on stdout]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl", "parquet"]),
    help="Output format, when not the --out suffix's.",
)
@click.option("--recursive", "-r", is_flag=True, help="Look in the subfolders of folder sources.")
@click.option("--resume", is_flag=True, help="Keep the ok rows already in --out, do the rest (error rows are retried).")
@workers_option("Decode processes; with --ray, model workers. [default: from the cores and device]")
@batch_size_option(
    "Views (clips x crops) per forward pass",
    "each video's row is then written as soon as it is done (with --ray: by the workers' device)",
)
@timeout_option("the file gets an error row")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="",
    metavar="[ADDRESS]",  # "": ray.init() decides
    help="Run on Ray: a running cluster (or a new local one), auto, or ray://host:port; "
    "needs the ray extra. Put it after SOURCES, or write --ray=ADDRESS.",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(0),
    help="With --ray: GPUs per model worker. [default: 1 if the cluster has GPUs, else 0]",
)
@click.pass_context
def batch_command(
    ctx: click.Context,
    sources: tuple[str, ...],
    model: str,
    device: str,
    dtype: str,
    stride: int,
    clips: int,
    crops: str,
    top_k: int,
    out: str | None,
    fmt: str | None,
    recursive: bool,
    resume: bool,
    workers: int | None,
    batch_size: int | None,
    timeout: float,
    ray_address: str | None,
    gpus_per_worker: float | None,
) -> None:
    """Classify every video in SOURCES into one CSV, JSON, JSONL or Parquet file: a row per video, ok or error.

    A SOURCE is a folder, a glob, a file or @list.txt (one file per line). Rows are written as videos finish.
    Exit codes: 0 all classified, 4 some videos failed (see their rows), 3 model or checkpoint problem,
    2 bad usage or device, 130 Ctrl-C or 143 SIGTERM (finish with --resume).
    """
    from vivit_cli.errors import VideoError
    from vivit_cli.video.sampling import Views

    views = Views(stride=stride, clips=clips, crops=int(crops))
    if ray_address is not None:  # the same job on Ray Data, with no torch in this process: vivit_cli/batch/cluster.py
        _batch_on_ray(ctx, views)
        return
    if gpus_per_worker is not None:
        raise click.UsageError("--gpus-per-worker is for --ray: a local run has one model, on --device")
    from vivit_cli.device import resolve_device
    from vivit_cli.results import ModelInfo

    job = batch.plan(sources, recursive, out, fmt, resume)  # usage errors before anything is fetched or loaded
    workers = workers or batch.default_workers(resolve_device(device).type)
    tally = batch.Tally(skipped=job.skipped)
    if _nothing_to_do(ctx, job, tally):
        return
    local_model = fetch_model(ctx, model)  # a branch becomes a commit: --resume checks it before the model loads
    batch.check_model(job, ModelInfo(local_model.model_id, local_model.revision))
    # The workers start, and import torch, while the model loads.
    with DecodePool(workers, timeout) as pool:
        classifier = load_classifier(ctx, local_model.pinned, device, dtype)
        with _progress(ctx, job, tally) as on_row, batch.open_output(job, sys.stdout) as writer:
            local.run(classifier, job.todo, pool, writer, views, Labels(top_k), batch_size, tally, on_row)
    if tally.failed:
        ctx.exit(VideoError.exit_code)


def _batch_on_ray(ctx: click.Context, views: Any) -> None:
    """`vivit batch --ray`: the same rows, files and exit codes as a local run, from a Ray cluster."""
    from vivit_cli import hub
    from vivit_cli.batch import cluster
    from vivit_cli.errors import VideoError

    p = ctx.params
    cluster.require_ray()
    address, sources = cluster.split_address(p["ray_address"], p["sources"])
    job = batch.plan(sources, p["recursive"], p["out"], p["fmt"], p["resume"])
    tally = batch.Tally(skipped=job.skipped)
    if _nothing_to_do(ctx, job, tally):
        return
    ref = hub.parse_model(p["model"])
    quiet_hub(ctx, ref)
    model = cluster.resolve_model(ref)  # once, here: every worker loads the same commit
    batch.check_model(job, model.info)
    note(ctx, model.note)
    stdout = sys.stdout  # taken before Ray's messages move to stderr
    with cluster.connect(address, ctx.obj["quiet"]):
        sizes = cluster.size_workers(p["device"], p["workers"], p["gpus_per_worker"])
        with _progress(ctx, job, tally) as on_row, cluster.open_output(job, stdout) as writer:
            cluster.run(
                job.todo,
                model,
                sizes,
                writer,
                views,
                p["top_k"],
                p["dtype"],
                p["batch_size"],
                p["timeout"],
                tally,
                on_row,
            )
    if tally.failed:
        ctx.exit(VideoError.exit_code)


def _nothing_to_do(ctx: click.Context, job: batch.Plan, tally: batch.Tally) -> bool:
    """--resume with every file done: say so, and load nothing."""
    if job.todo:
        return False
    if not ctx.obj["quiet"]:
        click.echo(tally.summary(job.out), err=True)
    return True


@contextmanager
def _progress(ctx: click.Context, job: batch.Plan, tally: batch.Tally) -> Iterator[Callable[[Any], None]]:
    """A bar on stderr counted in videos (the callback moves it a row at a time), and at the end the summary line
    and the first failed files with why, also after Ctrl-C or SIGTERM, when it says how to finish."""
    from tqdm import tqdm

    quiet, interrupted = ctx.obj["quiet"], False
    bar = tqdm(total=len(job.todo), unit="video", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    try:
        yield lambda _: bar.update()
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        bar.close()
        if not quiet and interrupted:  # the summary says so: the group then adds no "Interrupted." of its own
            say_stopped(ctx, tally.summary(job.out, interrupted))
        elif not quiet:
            click.echo(tally.summary(job.out), err=True)
        if not quiet:
            for line in tally.failure_lines(job.out):
                click.echo(line, err=True)
