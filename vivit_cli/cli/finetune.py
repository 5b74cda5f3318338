"""`vivit train --full`: the whole network fine-tuned on the user's labels, from the linear head `train` fits, an
epoch at a time, resumable, on one process or as many as torchrun starts."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import click

from vivit_cli.cli.epochs import Epochs
from vivit_cli.cli.options import fetch_model, say_stopped
from vivit_cli.cli.progress import say
from vivit_cli.results import counted

DEFAULT_EPOCHS = 10  # a few hundred videos: enough to move the backbone, few enough not to memorise them
DEFAULT_LR = 1e-4  # the head's peak learning rate (AdamW); the layers below get less
DEFAULT_WEIGHT_DECAY = 0.05
DEFAULT_WARMUP = 1.0  # epochs
FULL_ONLY = ("epochs", "lr", "weight_decay", "warmup", "accumulate", "grad_ckpt", "flip", "resume")
CPU_TRAIN_BATCH = 2  # clips per pass on a CPU: a ViViT-B step is seconds per clip there, batching gains little
GPU_TRAIN_BATCH = 8  # on a GPU (bf16): ViViT-B fits in 24 GB at 8 clips with gradient checkpointing off


def full_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--full and the options of fine-tuning."""
    options = [
        click.option("--full", is_flag=True, help="Fine-tune the whole network, not only a new head (for a GPU)."),
        click.option("--epochs", type=click.IntRange(1), default=DEFAULT_EPOCHS, help="--full: passes over the data."),
        click.option("--lr", type=click.FloatRange(0, min_open=True), default=DEFAULT_LR,
                     help="--full: peak learning rate of the head; each layer below gets 0.75 times the one above."),
        click.option("--weight-decay", type=click.FloatRange(0), default=DEFAULT_WEIGHT_DECAY, help="--full: AdamW's."),
        click.option("--warmup", type=click.FloatRange(0), default=DEFAULT_WARMUP,
                     help="--full: epochs of linear warm-up before the cosine decay."),
        click.option("--accumulate", type=click.IntRange(1), default=1,
                     help="--full: forward passes per optimiser step (a larger batch than memory holds)."),
        click.option("--grad-ckpt", type=click.Choice(["auto", "on", "off"]), default="auto",
                     help="--full: recompute activations in the backward pass (less memory, about 30% more time); "
                     "auto: on where a GPU has less free memory than a pass's activations would take (an estimate)."),
        click.option("--flip", is_flag=True,
                     help="--full: flip clips horizontally at random (not where labels say left or right)."),
        click.option("--resume", is_flag=True, help="--full: go on from the last epoch a stopped run left in --out."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def check_full_only(ctx: click.Context) -> None:
    """A fine-tuning option without --full is a usage error, not silently ignored."""
    for name in FULL_ONLY:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"--{name.replace('_', '-')} is an option of --full")


def run_full(ctx: click.Context, data: str, out: str, everything: Any, dataset: Any, p: dict[str, Any]) -> None:
    """The --full run: on each process torchrun starts (or the one), process 0 alone printing and writing."""
    from vivit_cli.learn import distributed

    world = distributed.from_env()
    if not world.main:
        ctx.obj["quiet"] = True
    device = _device(ctx, world)
    distributed.start(world, device.type)
    try:
        with contextlib.ExitStack() as stack:
            _run(ctx, data, out, everything, dataset, p, world, device, stack)
    except distributed.Failed as e:  # process 0 said why
        ctx.exit(e.exit_code)
    finally:
        distributed.stop(world)


def _device(ctx: click.Context, world: Any) -> Any:
    import torch

    from vivit_cli.device import resolve_device

    device = resolve_device(ctx.params["device"])
    if device.type == "cuda" and world.many:
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if device.type == "cpu" and world.local_size > 1:  # the machine's cores shared out, not each process all of them
        torch.set_num_threads(max(1, torch.get_num_threads() // world.local_size))
    return device


def _run(ctx, data, out, everything, dataset, p, world, device, stack) -> None:  # noqa: ANN001
    from vivit_cli.batch.plan import default_workers
    from vivit_cli.batch.pool import DecodePool
    from vivit_cli.device import resolve_dtype
    from vivit_cli.learn import clips, export, resume, start
    from vivit_cli.learn.distributed import main_does
    from vivit_cli.learn.feed import Feed, Plan
    from vivit_cli.learn.finetune import Settings, Trainer

    main = functools.partial(main_does, world)
    # Process 0 holds --out for the run: a second run on it (torchrun or not) is refused.
    replacing = main(lambda: stack.enter_context(export.claimed(out, p["force"], [data, p["model"]])))
    local = main(lambda: fetch_model(ctx, p["model"]))
    start.check_weights(local.folder, p["model"])
    dtype = str(resolve_dtype(ctx.params["dtype"], device)).removeprefix("torch.")
    batch = p["batch_size"] or (CPU_TRAIN_BATCH if device.type == "cpu" else GPU_TRAIN_BATCH)
    settings = Settings(p["epochs"], batch, p["accumulate"], p["lr"], p["weight_decay"], p["warmup"], p["seed"],
                        p["flip"], p["grad_ckpt"] == "on", dtype)  # fmt: skip
    made_from = _made_from(dataset, local, settings, p, world.size)
    if p["resume"]:
        state = main(lambda: resume.load(out, made_from))  # every process reads the weights from the file
        begun = {k: state[k] for k in ("split", "probe", "history", "epoch")}
        if not world.main:
            state = resume.load(out, made_from)
    else:
        state = None
        begun = main(lambda: _probe(ctx, local, everything, dataset, p, replacing))
    labels = list(dataset.labels)
    ids = {label: i for i, label in enumerate(labels)}
    train_videos = [(path, ids[label]) for path, label, _ in begun["split"]["train"]]
    plan = Plan(len(train_videos), batch, world.size, p["accumulate"])
    model = start.build(local.folder, labels, None if state else begun["probe_head"], device)
    settings = dataclasses.replace(settings, grad_ckpt=_grad_ckpt(ctx, p["grad_ckpt"], model, settings, device))
    trainer = Trainer(model, _preprocess(local), device, settings, plan, world.many)
    history = list(begun.get("history", []))
    if state:
        resume.restore(trainer, state)
        best_weights = state["best_weights"]
        say(ctx, f"Going on from epoch {state['epoch']} of {settings.epochs}, left in {out}")
    else:
        best_weights = None
    workers = p["workers"] or default_workers(device.type)
    pool = stack.enter_context(DecodePool(workers, p["timeout"], decode=clips.decode))
    size = trainer.preprocess.crop_hw
    spec = functools.partial(clips.ClipSpec, model.config.num_frames, p["views"].stride, size, settings.seed,
                             flip=settings.flip)  # fmt: skip
    feed = Feed(
        pool, train_videos, plan, lambda epoch: spec(epoch=epoch), settings.seed, world.rank, device.type == "cuda"
    )
    epochs = Epochs(ctx, out, trainer, pool, begun, made_from, p, history, best_weights, local)
    first = len(history)
    try:
        for epoch in range(first, settings.epochs):
            figures = trainer.train_epoch(feed.epoch(epoch), lambda: feed.waited_s)
            main(functools.partial(epochs.done, epoch, figures))
    except KeyboardInterrupt:
        if world.main and not ctx.obj["quiet"]:
            kept = len(epochs.history)
            left = f"epoch {kept}'s state is in {out}" if kept else "no epoch was completed"
            say_stopped(ctx, f"Stopped during epoch {kept + 1} of {settings.epochs}; {left}: add --resume to the "
                             "same command to go on from there.")  # fmt: skip
        raise
    main(lambda: epochs.finish(dataset, feed.failed))


def _grad_ckpt(ctx: click.Context, choice: str, model: Any, settings: Any, device: Any) -> bool:
    """--grad-ckpt's answer for this model, batch and device; auto says so where it turns it on."""
    from vivit_cli.learn import memory

    needed = memory.activation_bytes(model.config, settings.batch_size, settings.dtype)
    free = memory.free_bytes(device, model)
    on = memory.wants_grad_ckpt(choice, needed, free)
    if on and choice == "auto":
        say(ctx, f"Gradient checkpointing on (--grad-ckpt auto): a pass of {settings.batch_size} clips keeps about "
                 f"{needed / memory.GIB:.1f} GiB for the backward pass, {device} has {free / memory.GIB:.1f} GiB "
                 "free for it")  # fmt: skip
    return on


def _preprocess(local: Any) -> Any:
    from vivit_cli.checkpoint import read_preprocess

    return read_preprocess(local.folder)


def _made_from(dataset: Any, local: Any, settings: Any, p: dict[str, Any], processes: int) -> dict[str, Any]:
    """What a --resume must find the same: the data, labels, model and every setting that changes the weights."""
    v = p["views"]
    return {
        "data": sorted([e.path, e.label, e.split or ""] for e in dataset.examples),
        "labels": list(dataset.labels),
        "model": [local.model_id, local.revision],
        "settings": {
            **{k: w for k, w in dataclasses.asdict(settings).items() if k not in ("dtype", "grad_ckpt")},
            "dtype": settings.dtype,
            "stride": v.stride,
            "clips": v.clips,
            "crops": v.crops,
            "val": p["val_fraction"],
        },
        "processes": processes,
    }


def _probe(ctx: click.Context, local: Any, everything: Any, dataset: Any, p: dict[str, Any], replacing: Any) -> dict:
    """The linear probe, as `train` without --full fits it (and says so): the split, the head, its record."""
    from vivit_cli.cli.options import note
    from vivit_cli.cli.train import fit_head
    from vivit_cli.learn.head import strongest_near_best

    note(ctx, replacing)
    # The strongest L2 that does (nearly) as well: a small head moves the backbone less at the start of fine-tuning.
    _, split, trained, record, _ = fit_head(ctx, local, everything, dataset, p, strongest_near_best)
    chosen = "" if p["l2"] is not None else ", the strongest L2 within a point of the best validation accuracy"
    say(ctx, f"Fine-tuning the whole network from the head of l2 {trained.head.fit.l2:g}{chosen}: "
             f"{counted(len(split.train), 'video')}, one clip each per epoch, for {p['epochs']} epochs")  # fmt: skip
    rows = {part: [[e.path, e.label, e.split or ""] for e in getattr(split, part)] for part in ("train", "val")}
    return {"split": rows, "how": split.how, "probe": record, "probe_head": trained.head, "history": []}
