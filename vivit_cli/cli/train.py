"""`vivit train`: a new classifier for the user's labels, on the frozen backbone, written as a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from vivit_cli.cli.finetune import check_full_only, full_options, run_full
from vivit_cli.cli.options import (
    batch_size_option,
    fetch_model,
    load_classifier,
    model_options,
    note,
    say_stopped,
    timeout_option,
    views_options,
    warn_once,
    workers_option,
)
from vivit_cli.cli.progress import progress_bar, say, say_failed
from vivit_cli.results import counted

DEFAULT_CLIPS = 3  # views per training video: each is one sample, a cheap augmentation
DEFAULT_VAL = 0.2  # share of each label's videos held out when DATA has no val split


@click.command("train")
@click.argument("data")
@click.option("--out", "-o", required=True, type=click.Path(path_type=str), help="The model folder to write.")
@model_options
@views_options(DEFAULT_CLIPS, "Clips spread evenly over each video; each clip's features are one training sample.")
@click.option(
    "--val",
    "val_fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=DEFAULT_VAL,
    help="Share of each label's videos held out for validation, when DATA has no val split.",
)
@click.option("--seed", type=int, default=0, help="Chooses the validation videos (and, with --full, the clips).")
@click.option(
    "--l2",
    type=click.FloatRange(0, min_open=True),
    help="L2 strength of the head. [default: the best on the validation videos of a small grid]",
)
@workers_option()
@batch_size_option(
    "Views (clips x crops) per forward pass",
    "each video is cached the moment it is done; with --full, training clips per pass (auto: 8 on a GPU, 2 on a CPU)",
)
@timeout_option("the video is left out")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where each video's features are kept between runs. [default: $VIVIT_CACHE/embeddings where "
    "VIVIT_CACHE is set, else $XDG_CACHE_HOME/vivit/embeddings, else ~/.cache/vivit/embeddings]",
)
@click.option("--force", is_flag=True, help="Replace an --out that exists and is not a model vivit train wrote.")
@full_options
@click.pass_context
def train_command(ctx: click.Context, data: str, out: str, **p: Any) -> None:
    """Train a classifier for the labels in DATA on the frozen backbone of --model; write it to --out.

    DATA is a folder with a subfolder per label (DATA/<label>/*.mp4), the same under train/ and val/ (and test/)
    folders, or a .csv or .jsonl of path,label[,split]. Each video's features are cached: a second run with other
    head settings takes seconds. Exit codes: 0 done, 2 bad DATA or --out, 3 model problem, 4 some videos failed to
    decode (the model is written from the rest), 130 Ctrl-C (run again to go on from the cache).

    --full fine-tunes the whole network (for a GPU), an epoch at a time; Ctrl-C or a kill leaves the last epoch's state
    in --out, and --resume goes on from it. `torchrun --nproc-per-node N -m vivit_cli train ... --full` runs it on N
    processes.
    """
    from vivit_cli.learn import data as datasets
    from vivit_cli.learn import export, train

    everything = datasets.read_data(data)
    dataset = train.usable(everything)
    train.check_trainable(dataset)  # before anything is fetched, loaded or decoded
    if p.pop("full"):
        return run_full(ctx, data, out, everything, dataset, p)
    check_full_only(ctx)
    # Held for the run: a second run on --out is refused. check_out keeps only those of `keep` that are folders.
    with export.claimed(out, p["force"], [data, p["model"]]) as replacing:
        _train(ctx, data, out, everything, dataset, replacing, p)


def _train(
    ctx: click.Context, data: str, out: str, everything: Any, dataset: Any, replacing: str | None, p: dict[str, Any]
) -> None:
    from vivit_cli.errors import VideoError
    from vivit_cli.learn import export

    local = fetch_model(ctx, p["model"])
    dataset, _, trained, record, lines = fit_head(ctx, local, everything, dataset, p)
    note(ctx, replacing)
    export.export(local.folder, out, dataset.labels, trained.head, record, export.model_card(record, lines, out))
    say(ctx, f"Wrote {out} ({len(dataset.labels)} labels): vivit classify --model {out} VIDEO")
    if record["failed"]:
        ctx.exit(VideoError.exit_code)  # as batch and evaluate: the model is written, from the videos that decoded


def fit_head(
    ctx: click.Context, local: Any, everything: Any, dataset: Any, p: dict[str, Any], pick: Any = None
) -> tuple[Any, Any, Any, dict[str, Any], list[str]]:
    """The head on the frozen features, said as it goes: (the dataset less the videos that failed, the split, the
    Trained head, training.json's record, the validation report's lines). `pick`: which strength of the grid is kept
    (head.train_head's)."""
    from vivit_cli.learn import train
    from vivit_cli.writers.evaluation import metrics_lines

    if everything.split("test"):
        tests = len(everything.split("test"))
        say(ctx, f"{counted(tests, 'test video')} {'is' if tests == 1 else 'are'} left for vivit evaluate")
    embedded, settings = _embed(ctx, local, [e.path for e in dataset.examples], p)
    if embedded.failed:
        say_failed(ctx, sorted(embedded.failed.items()), len(dataset.examples), "they are left out")
        dataset = train.leave_out(dataset, embedded.failed)
        train.check_trainable(dataset, f", once {len(embedded.failed)} failed videos are left out")
    split = train.choose_split(dataset, p["val_fraction"], p["seed"])
    say(ctx, f"{counted(len(split.train), 'video')} train, {len(split.val)} validate: {split.how}")

    def on_fit(fit: Any) -> None:
        say(ctx, f"l2 {fit.l2:<7g} train acc {fit.train_accuracy:.3f}  val acc {fit.val_accuracy:.3f}  "
                   f"val loss {fit.val_loss:.4f}")  # fmt: skip

    trained = train.fit(split, embedded.features, dataset.labels, p["l2"], on_fit, pick)
    lines = metrics_lines(trained.evaluation)
    say(ctx, f"Validation, l2 {trained.head.fit.l2:g}:", *lines)
    cautions = train.cautions(split, trained, dataset.labels, p["l2"] is not None)
    for caution in cautions:
        warn_once()(caution)
    base = (local.model_id, local.revision)
    record = train.record(dataset, split, base, settings, trained, embedded.failed, cautions)
    return dataset, split, trained, record, lines


def _embed(ctx: click.Context, local: Any, paths: list[str], p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Every video's view features, from the cache or the model, with a bar counted in videos."""
    from vivit_cli.batch.plan import default_workers
    from vivit_cli.device import resolve_device, resolve_dtype
    from vivit_cli.learn.cache import open_cache
    from vivit_cli.learn.embed import embed_videos

    device = resolve_device(ctx.params["device"])
    dtype = str(resolve_dtype(ctx.params["dtype"], device)).removeprefix("torch.")
    store = open_cache(local, dtype, p["views"], p["cache_dir"])
    settings = store.settings
    store.check_writable()
    bar = progress_bar(ctx, "video", len(paths), "Embedding")
    cached = 0

    def on_video(path: str, features: Any, from_cache: bool) -> None:
        nonlocal cached
        cached += from_cache
        bar.set_postfix_str(f"{cached} cached", refresh=False)
        bar.update()

    def load() -> Any:
        classifier = load_classifier(ctx, local.pinned)
        assert classifier.dtype_name == dtype, "the cache's key names the dtype the model runs in"
        return classifier

    workers = p["workers"] or default_workers(device.type)
    try:
        with bar:
            embedded = embed_videos(paths, store, load, p["views"], workers, p["timeout"], p["batch_size"], on_video)
    except KeyboardInterrupt:
        if not ctx.obj["quiet"]:
            say_stopped(ctx, f"Stopped after {bar.n} of {len(paths)} videos; their features are cached in "
                             f"{store.folder}: run the same command again to go on from there.")  # fmt: skip
        raise
    summary = {
        **{k: settings[k] for k in ("num_frames", "dtype")},
        **settings["views"],
        "seed": p["seed"],
        "l2": p["l2"],
        "cache": str(store.folder),
    }
    return embedded, summary
