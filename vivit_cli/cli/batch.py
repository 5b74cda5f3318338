"""`vivit batch`: folders of videos into one file of rows, on this machine or on Ray; the run `vivit embed` shares."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

import click

from vivit_cli.batch import local
from vivit_cli.batch import plan as batch
from vivit_cli.batch.pool import DecodePool
from vivit_cli.batch.rows import Embeddings, Kind, Labels
from vivit_cli.cli.options import (
    batch_size_option,
    fetch_model,
    file_option,
    label_options,
    load_classifier,
    model_options,
    note,
    quiet_hub,
    say_stopped,
    timeout_option,
    view_options,
    workers_option,
)
from vivit_cli.cli.progress import progress_bar
from vivit_cli.labels import LabelSet
from vivit_cli.video.sampling import Views
from vivit_cli.writers.files import held_outputs
from vivit_cli.writers.formats import LazyWriter
from vivit_cli.writers.records import BATCH, Schema


def run_options(schema: Schema, views: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """SOURCES and the options of a run over many files (--out, --resume, workers, --ray ...), batch's and embed's;
    `schema.formats` are what --out takes, `views` the view options (with --top-k for labels)."""
    suffixes = ", ".join(f".{f}" for f in schema.formats[:-1]) + f" or .{schema.formats[-1]}"

    options = [
        click.argument("sources", nargs=-1, required=True),
        model_options,
        views,
        file_option("--out", "-o", help=f"Output file: {suffixes}; - for stdout. [default: JSONL on stdout]"),
        click.option(
            "--format", "fmt", type=click.Choice(schema.formats), help="Output format, when not the --out suffix's."
        ),
        click.option("--recursive", "-r", is_flag=True, help="Look in the subfolders of folder sources."),
        click.option(
            "--resume", is_flag=True, help="Keep the ok rows already in --out, do the rest (error rows are retried)."
        ),
        workers_option("Decode processes; with --ray, model workers. [default: from the cores and device]"),
        batch_size_option(
            "Views (clips x crops) per forward pass",
            "each video's row is then written as soon as it is done (with --ray: by the workers' device)",
        ),
        timeout_option("the file gets an error row"),
        click.option(
            "--ray",
            "ray_address",
            is_flag=False,
            flag_value="",
            metavar="[ADDRESS]",  # "": ray.init() decides
            help="Run on Ray: a running cluster (or a new local one), auto, or ray://host:port; "
            "needs the ray extra. Put it after SOURCES, or write --ray=ADDRESS.",
        ),
        click.option(
            "--gpus-per-worker",
            type=click.FloatRange(0),
            help="With --ray: GPUs per model worker. [default: 1 if the cluster has GPUs, else 0]",
        ),
        click.pass_context,
    ]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate


@click.command("batch")
@run_options(BATCH, lambda f: view_options(label_options(f)))
def batch_command(ctx: click.Context, views: Views, top_k: int, labels: LabelSet, **_: Any) -> None:
    """Classify every video in SOURCES into one CSV, JSON, JSONL or Parquet file: a row per video, ok or error.

    A SOURCE is a folder, a glob, a file or @list.txt (one file per line). Rows are written as videos finish.
    Exit codes: 0 all classified, 4 some videos failed (see their rows), 3 model or checkpoint problem,
    2 bad usage or device, 130 Ctrl-C or 143 SIGTERM (finish with --resume).
    """
    run_files(ctx, views, Labels(top_k), labels=labels)


def run_files(ctx: click.Context, views: Views, kind: Kind, labels: LabelSet = LabelSet()) -> None:
    """A run over ctx.params' SOURCES, writing `kind`'s rows, here or on Ray; `labels`: the label set the model
    predicts in."""
    p = ctx.params
    sources, address = p["sources"], None  # an address: the same job on Ray Data, with no torch in this process
    if p["ray_address"] is not None:
        from vivit_cli.batch import cluster

        cluster.require_ray()
        address, sources = cluster.split_address(p["ray_address"], sources)
    elif p["gpus_per_worker"] is not None:
        raise click.UsageError("--gpus-per-worker is for --ray: a local run has one model, on --device")
    with held_outputs([("--out", p["out"])]):  # a second run on --out is refused before it reads or writes it
        _run_files(ctx, views, kind, labels, sources, address)


def _run_files(
    ctx: click.Context, views: Views, kind: Kind, labels: LabelSet, sources: tuple[str, ...], address: str | None
) -> None:
    from vivit_cli.errors import VideoError

    p = ctx.params
    job = batch.plan(sources, p["recursive"], p["out"], p["fmt"], p["resume"], kind.schema)
    batch.check_views(job, views.clips, views.crops)
    if address is None:
        from vivit_cli.device import resolve_device

        workers = p["workers"] or batch.default_workers(resolve_device(p["device"]).type)
    tally = batch.Tally()
    if not job.todo:  # --resume with every file done: say so, and load nothing
        if not ctx.obj["quiet"]:
            click.echo(tally.summary(job), err=True)
        return
    if address is not None:
        _run_on_ray(ctx, job, tally, address, views, kind, labels)
    else:
        _run_here(ctx, job, tally, workers, views, kind, labels)
    if tally.failed:
        ctx.exit(VideoError.exit_code)


def _run_here(
    ctx: click.Context, job: batch.Plan, tally: batch.Tally, workers: int, views: Views, kind: Kind, labels: LabelSet
) -> None:
    from vivit_cli.checkpoint import read_config
    from vivit_cli.results import ModelInfo

    p = ctx.params
    local_model = fetch_model(ctx, p["model"])  # a branch becomes a commit: --resume checks it before the model loads
    batch.check_model(job, ModelInfo(local_model.model_id, local_model.revision))
    config, _ = read_config(local_model.folder)
    labels.class_ids(config.labels)  # unknown names: an error before the workers start
    job = replace(job, table=kind.table(config.hidden_size))
    # The workers start, and import torch, while the model loads.
    with DecodePool(workers, p["timeout"]) as pool:
        classifier = load_classifier(ctx, local_model.pinned, labels)
        if isinstance(kind, Embeddings):
            kind = replace(kind, keep=_cache(ctx, local_model, classifier.dtype_name, views))
        with _progress(ctx, job, tally) as on_row, batch.open_output(job, sys.stdout) as writer:
            local.run(classifier, job.todo, pool, writer, views, kind, p["batch_size"], tally, on_row)


def _cache(ctx: click.Context, local: Any, dtype: str, views: Views) -> Any:
    """Where `vivit embed` keeps each video's view features for `vivit train` and `vivit label` (which then embed it
    no more): the cache they read, for these views; None, with a note, when it cannot be written."""
    from vivit_cli.errors import SourceError
    from vivit_cli.learn.cache import open_cache

    cache = open_cache(local, dtype, views)
    try:
        cache.check_writable()
    except SourceError as e:
        note(ctx, f"the features are not cached for vivit train and vivit label: {e}")
        return None
    return cache.put


def _run_on_ray(
    ctx: click.Context, job: batch.Plan, tally: batch.Tally, address: str, views: Views, kind: Kind, labels: LabelSet
) -> None:
    """The same rows, files and exit codes as a local run, from a Ray cluster."""
    from vivit_cli import hub
    from vivit_cli.batch import cluster

    p = ctx.params
    ref = hub.parse_model(p["model"])
    quiet_hub(ctx, ref)
    model = cluster.resolve_model(ref, labels)  # once, here: every worker loads the same commit
    batch.check_model(job, model.info)
    job = replace(job, table=kind.table(model.hidden_size))
    note(ctx, model.note)
    stdout = sys.stdout  # taken before Ray's messages move to stderr
    with cluster.connect(address, chatter=ctx.obj["debug"]):
        sizes = cluster.size_workers(p["device"], p["workers"], p["gpus_per_worker"])
        # The output opens with the first row: a job that fails before leaves an existing --out as it was.
        with _progress(ctx, job, tally) as on_row, ExitStack() as stack:
            writer = LazyWriter(lambda: stack.enter_context(batch.open_output(job, stdout)))
            cluster.run(
                job.todo, model, sizes, writer, views, kind, p["dtype"], p["batch_size"], p["timeout"], tally, on_row
            )


@contextmanager
def _progress(ctx: click.Context, job: batch.Plan, tally: batch.Tally) -> Iterator[Callable[[Any], None]]:
    """A bar on stderr counted in videos (the callback moves it a row at a time), and at the end the summary line
    and the first failed files with why, also after Ctrl-C or SIGTERM, when it says how to finish."""
    quiet = ctx.obj["quiet"]
    bar = progress_bar(ctx, "video", len(job.todo))
    try:
        yield lambda _: bar.update()
    except KeyboardInterrupt:
        bar.close()
        if not quiet:  # the summary says so: the group then adds no "Interrupted." of its own
            say_stopped(ctx, tally.summary(job, interrupted=True))
            _say_failures(job, tally)
        raise
    finally:
        bar.close()  # an error (a full disk) is its own line: no summary of a run that did not end
    if not quiet:
        click.echo(tally.summary(job), err=True)
        _say_failures(job, tally)


def _say_failures(job: batch.Plan, tally: batch.Tally) -> None:
    for line in tally.failure_lines(job.out):
        click.echo(line, err=True)
