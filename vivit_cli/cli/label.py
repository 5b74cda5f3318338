"""`vivit label`: a page on this machine where a person labels a pile of videos while the head learns from each
answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from vivit_cli.cli.options import (
    batch_size_option,
    fetch_model,
    load_classifier,
    model_options,
    say_stopped,
    timeout_option,
    workers_option,
)
from vivit_cli.cli.progress import say
from vivit_cli.labels import parse_labels

EXTRA = 'pip install "vivit-cli[label]"'
LOCALHOST = "127.0.0.1"
JOIN_S = 60.0  # seconds the background work gets to stop: the video being decoded is finished first


@click.command("label")
@click.argument("sources", nargs=-1)
@click.option(
    "--project",
    "-p",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The project's folder: answers.jsonl, labels.csv (what vivit train reads) and the rest. Run again on it to "
    "go on where you stopped.",
)
@click.option(
    "--labels",
    callback=lambda ctx, param, value: () if value is None else parse_labels(value),
    metavar="A,B,C|@FILE",
    help="The labels to answer with, in the order of their keys 1-9 (@FILE: one per line). Added to the project's; "
    "more can be added in the page.",
)
@click.option("--recursive", "-r", is_flag=True, help="Look in the subfolders of folder sources.")
@model_options
@click.option(
    "--embeddings",
    type=click.Path(dir_okay=False, exists=True, path_type=str),
    help="What `vivit embed` wrote (.parquet, .jsonl or .json, with the same --model): its videos start with their "
    "features, so the loop starts at once.",
)
@click.option("--host", default=LOCALHOST, help="The address to serve on; other than 127.0.0.1, others may reach it.")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="The port; 0 picks a free one.")
@click.option("--no-browser", is_flag=True, help="Print the URL but open no browser.")
@click.option(
    "--export",
    type=(click.Choice(["labelstudio", "csv"]), str),
    metavar="labelstudio|csv FILE",
    help="Write the project's answers (csv) or Label Studio tasks with the suggestions as predictions (labelstudio) "
    "to FILE (- for stdout), and serve nothing.",
)
@workers_option()
@batch_size_option("Views per forward pass while embedding", "each video is cached the moment it is done")
@timeout_option("the video is shown without a suggestion")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where each video's features are kept, shared with vivit train. [default: as vivit train]",
)
@click.pass_context
def label_command(ctx: click.Context, sources: tuple[str, ...], folder: Path, **p: Any) -> None:
    """Label the videos of SOURCES in a page on this machine; the model suggests, and learns from every answer.

    SOURCES are as for vivit batch (files, folders with -r, globs, @list.txt). Keys in the page: 1-9 answer with
    that label, Enter accepts the suggestion, s skips, u undoes, arrows move, space plays, ? lists them. Every answer
    is on disk before the page says so: DIR/answers.jsonl, and DIR/labels.csv, which `vivit train DIR/labels.csv`
    reads. Stop with Ctrl-C; run again to go on. Exit codes: 0 done (--export), 2 bad usage or a project another run
    holds, 3 model problem, 130 Ctrl-C.
    """
    from vivit_cli.label.project import open_project
    from vivit_cli.locks import held

    if not p["export"]:
        _server()  # the extra's one-line error before anything is made or fetched
    model = None if ctx.get_parameter_source("model") == ParameterSource.DEFAULT else p["model"]
    project, added = open_project(folder, sources, p["recursive"], p["labels"], model)
    with held(project.folder, "the project"):
        _run(ctx, project, added, p)


def _run(ctx: click.Context, project: Any, added: int, p: dict[str, Any]) -> None:
    from vivit_cli.batch.plan import default_workers
    from vivit_cli.checkpoint import read_config, read_weights
    from vivit_cli.device import resolve_device, resolve_dtype
    from vivit_cli.label import background, export
    from vivit_cli.label.loop import Loop
    from vivit_cli.learn.cache import open_cache

    loop = Loop(project)
    fmt, out = p["export"] or (None, None)
    if fmt == "csv":  # the answers alone: no model
        say(ctx, f"{export.answers_csv(loop, out, sys.stdout)} answers written to {out}")
        return
    local = fetch_model(ctx, project.model)
    config, _ = read_config(local.folder)
    device = resolve_device(ctx.params["device"])
    dtype = str(resolve_dtype(ctx.params["dtype"], device)).removeprefix("torch.")
    cache = open_cache(local, dtype, project.views, p["cache_dir"])
    given = _given(p["embeddings"], local.model_id, config.hidden_size)
    if fmt == "labelstudio":
        from vivit_cli.writers.answers import labelstudio_config

        tasks = export.labelstudio_tasks(loop, out, given, cache, local.model_id, sys.stdout)
        say(ctx, f"{tasks} tasks written to {out}; their labelling config in Label Studio:")
        say(ctx, labelstudio_config(project.labels))
        return
    server = _server()
    cache.check_writable()
    say(ctx, f"{project.folder}: {len(project.videos)} videos ({added} new), {len(project.labels)} labels, "
               f"{len(loop.answers.state.current)} answered")  # fmt: skip
    embedder = background.Embedder(
        cache,
        lambda: load_classifier(ctx, local.pinned),
        p["workers"] or default_workers(device.type),
        p["timeout"],
        p["batch_size"],
        given,
        lambda: background.model_prior(lambda: read_weights(local.folder), config.labels, loop.project.labels),
    )
    threads = background.start(loop, embedder)
    try:
        server.serve(ctx, loop, config.num_frames, p["host"], p["port"], not p["no_browser"])
    except KeyboardInterrupt:
        if not ctx.obj["quiet"]:
            say_stopped(ctx, _stopped(loop))
        raise
    finally:
        loop.stopping.set()
        for t in threads:
            t.join(JOIN_S)
        loop.answers.close()
    say(ctx, _stopped(loop))


def _stopped(loop: Any) -> str:
    answered = len(loop.answers.state.current)
    labels = loop.project.file("labels.csv")
    return f"Stopped: {answered} answers in {labels}; train on them with: vivit train {labels} --out my-model/"


def _server() -> Any:
    try:
        from vivit_cli.cli import serve
    except ImportError as e:
        from vivit_cli.errors import UsageError

        raise UsageError(f"vivit label needs its page's server ({e.name} is not installed): {EXTRA}") from None
    return serve


def _given(path: str | None, model: str, size: int) -> dict[str, Any]:
    """An embed file's rows -> path_key -> (1, D) features; rows of another model (or size) are an error."""
    if path is None:
        return {}
    import numpy as np

    from vivit_cli.errors import SourceError
    from vivit_cli.video.sources import path_key
    from vivit_cli.writers.embeddings import EMBED
    from vivit_cli.writers.formats import format_for, read_records

    rows = read_records(path, format_for(path, None, EMBED), columns=["path", "status", "embedding", "model"])
    given = {}
    for row in rows:
        if row.get("status") != "ok" or not row.get("embedding"):
            continue
        if row.get("model") not in (None, model) or len(row["embedding"]) != size:
            what = f"{row['model']}" if row.get("model") not in (None, model) else f"size {len(row['embedding'])}"
            raise SourceError(f"--embeddings {path} holds embeddings of {what}, not of {model} (size {size})")
        given[path_key(str(row["path"]))] = np.asarray([row["embedding"]], dtype=np.float32)  # (1, D)
    return given
