"""What the commands share: the global and model and view options, loading the model with its note, and the
warning callback (progress bars and failures: cli.progress)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from vivit_cli import DEFAULT_MODEL
from vivit_cli.device import DTYPE_NAMES
from vivit_cli.labels import LabelSet, parse_labels
from vivit_cli.video.sampling import DEFAULT_STRIDE, Views

SECONDS = click.FloatRange(0, min_open=True)  # a time limit
DEBUG_HELP = "Show tracebacks for errors."
QUIET_HELP = "No progress bars or notes on stderr."


def global_options() -> list[click.Option]:
    """The group's --debug and -q for a command's own options: `vivit classify x.mp4 -q` works as `vivit -q
    classify x.mp4` does. Either place sets the flag in ctx.obj, which the group's context shares."""

    def set_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if value:
            assert param.name is not None
            ctx.ensure_object(dict)[param.name] = True

    return [
        click.Option(["--debug"], is_flag=True, expose_value=False, callback=set_flag, help=DEBUG_HELP),
        click.Option(["--quiet", "-q"], is_flag=True, expose_value=False, callback=set_flag, help=QUIET_HELP),
    ]


STOPPED_SAID = "stopped_said"  # ctx.obj key: the command has already told the user it was interrupted


def say_stopped(ctx: click.Context, line: str) -> None:
    """Print the line that says a run was stopped (and how far it got); the group then adds no line of its own."""
    click.echo(line, err=True)
    ctx.ensure_object(dict)[STOPPED_SAID] = True


def said_stopped(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get(STOPPED_SAID))


def model_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--model/-m, with $VIVIT_MODEL and the default model."""
    return click.option(
        "--model",
        "-m",
        default=DEFAULT_MODEL,
        envvar="VIVIT_MODEL",
        help="Hub repo id (org/name[@revision]) or a local checkpoint folder. [env: VIVIT_MODEL]",
    )(f)


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --device and --dtype, shared by every command that runs the model. The command is given `model`;
    --device and --dtype stay in ctx.params, where load_classifier reads them."""

    @functools.wraps(f)
    def command(*args: Any, device: str, dtype: str, **kwargs: Any) -> Any:
        if kwargs.get("ray_address") is None:  # on Ray, the devices are the workers' (cluster.size_workers)
            from vivit_cli.device import resolve_device

            resolve_device(device)  # a device this machine lacks: refused before anything is read, fetched or loaded
        return f(*args, **kwargs)

    command = click.option(
        "--dtype",
        type=click.Choice(DTYPE_NAMES),
        default="auto",
        envvar="VIVIT_DTYPE",
        help="Weights and activations precision; auto: bf16 (else fp16) on a GPU, bf16 on a CPU with native bf16 "
        "(AVX512_BF16, AMX), else fp32; float32 gives transformers-exact numbers. [env: VIVIT_DTYPE]",
    )(command)
    command = click.option(
        "--device", default="auto", envvar="VIVIT_DEVICE", help="auto, cpu, cuda, cuda:N or mps. [env: VIVIT_DEVICE]"
    )(command)
    return model_option(command)


def fetch_model(ctx: click.Context, model: str, weights: bool = True) -> Any:
    """MODEL -> a hub.LocalModel through the Hugging Face cache; its note (offline, cached) on stderr."""
    from vivit_cli import hub

    ref = hub.parse_model(model)
    quiet_hub(ctx, ref)
    local = hub.fetch(ref, weights=weights)
    note(ctx, local.note)
    return local


def quiet_hub(ctx: click.Context, model: Any) -> None:
    """With --quiet, huggingface_hub's progress bars stay off too (a local folder never imports it)."""
    if ctx.obj["quiet"] and model.folder is None:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def note(ctx: click.Context, note: str | None) -> None:
    if note and not ctx.obj["quiet"]:
        click.echo(f"Note: {note}", err=True)


def warn_once(say: Callable[[str], None] | None = None) -> Callable[[str], None]:
    """A callback for the drawing code, which says what it cannot draw at every frame: each warning once a run.

    `say` writes the line where a progress bar or a live panel will not tear it (default: stderr, in yellow).
    """
    said: set[str] = set()

    def warn(message: str) -> None:
        if message not in said:
            said.add(message)
            line = f"Warning: {message}"
            if say:
                say(line)
            else:
                click.secho(line, fg="yellow", err=True)

    return warn


def view_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--stride, --clips and --crops (as `views`) and --top-k, shared by the commands that classify videos."""
    return _top_k_option(sampling_options(f))


def window_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """view_options for a timeline, whose windows are one clip each: --clips is not offered (its help leaves it
    out), and is there only to say what to use instead."""
    return _top_k_option(views_options(clips_hidden=True)(f))


TOP_K_HELP = "How many labels to report per video."


def _top_k_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--top-k", "-k", type=click.IntRange(1), default=5, help=TOP_K_HELP)(f)


CLIPS_HELP = "Clips spread evenly over the video; their outputs are averaged."


def views_options(
    clips_default: int = 1, clips_help: str = CLIPS_HELP, clips_hidden: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--stride, --clips and --crops, given to the command as one `views` argument: a Views."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def command(*args: Any, stride: int, clips: int, crops: str, **kwargs: Any) -> Any:
            return f(*args, views=Views(stride=stride, clips=clips, crops=int(crops)), **kwargs)

        command = click.option("--crops", type=click.Choice(["1", "3"]), default="1", help=CROPS_HELP)(command)
        command = click.option(
            "--clips", type=click.IntRange(1), default=clips_default, help=clips_help, hidden=clips_hidden
        )(command)
        return stride_option()(command)

    return decorate


sampling_options = views_options()  # the views of a video that go through the model
CROPS_HELP = "Spatial crops per clip: 1 (centre) or 3 (left/centre/right, or top/centre/bottom)."
STRIDE_HELP = "Frames between sampled frames (ViViT-B/16x2 was trained with 2)."


def stride_option(help: str = STRIDE_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--stride",
        type=click.IntRange(1),
        default=DEFAULT_STRIDE,
        envvar="VIVIT_STRIDE",
        help=f"{help} [env: VIVIT_STRIDE]",
    )


def timeout_option(then: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--timeout for the decode workers; `then` says what becomes of a file that overruns it."""
    from vivit_cli.batch.pool import DEFAULT_TIMEOUT_S

    return click.option(
        "--timeout",
        type=SECONDS,
        default=DEFAULT_TIMEOUT_S,
        help=f"Seconds one file may take to decode; then its worker is stopped and {then}.",
    )


def file_option(*names: str, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option that names a file to write (--out, --plot): not a folder; it need not exist yet."""
    return click.option(*names, type=click.Path(dir_okay=False, path_type=str), help=help)


DECODE_WORKERS_HELP = "Decode processes. [default: from the cores and device]"


def workers_option(help: str = DECODE_WORKERS_HELP) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--workers/-j: decode processes (and, where a command says so, more)."""
    return click.option("--workers", "-j", type=click.IntRange(1), help=help)


MIN_SCORE_HELP = (
    "Leave out predictions scoring below this probability (of --labels' softmax). A video, window or webcam "
    "prediction whose best label scores less has no label: predictions [] in JSON and Parquet (label null in "
    "timeline rows), empty label cells in CSV, (no label) in tables and on frames; its status stays ok, and a "
    "timeline window with no label joins no segment."
)


def label_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--labels and --min-score, given to the command as one `labels` argument: a LabelSet."""

    @functools.wraps(f)
    def command(*args: Any, labels: tuple[str, ...] | None, min_score: float, **kwargs: Any) -> Any:
        return f(*args, labels=LabelSet(labels or (), min_score), **kwargs)

    def names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
        return None if value is None else parse_labels(value)

    command = click.option("--min-score", type=click.FloatRange(0, 1), default=0.0, help=MIN_SCORE_HELP)(command)
    return click.option(
        "--labels",
        callback=names,
        metavar="A,B,C|@FILE",
        help="Predict only these of the model's labels (exact names; see `vivit labels`): the softmax is taken over "
        "their logits alone. @FILE: one label per line, for labels with commas.",
    )(command)


def load_classifier(ctx: click.Context, model: str, labels: LabelSet = LabelSet()) -> Any:
    """Load the model the way every command does (on the command's --device, in its --dtype), with the Hub's note
    (offline, cached) on stderr."""
    from vivit_cli import hub
    from vivit_cli.pipeline import load_model

    ref = hub.parse_model(model)  # once: the folder-or-Hub question and the fetch read the same answer
    quiet_hub(ctx, ref)
    classifier = load_model(ref, device=ctx.params["device"], dtype=ctx.params["dtype"], labels=labels)
    note(ctx, classifier.source.note)
    return classifier


def model_ids(classifier: Any) -> tuple[str, str | None]:
    return classifier.info.model_id, classifier.info.revision


AUTO = "auto"


class BatchSize(click.ParamType):
    """--batch-size: a whole number from 1, or auto (None: the run picks it by the device)."""

    name = "batch size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or value == AUTO:
            return None
        try:
            size = int(value)
        except (TypeError, ValueError):
            size = 0
        if size < 1:
            self.fail(f"{value!r}: give a whole number from 1, or auto", param, ctx)
        return size


def batch_size_option(what: str, on_a_cpu: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--batch-size N|auto for a command that batches `what`; auto is by the device (CPU_BATCH_SIZE on a CPU)."""
    from vivit_cli.batch.plan import CPU_BATCH_SIZE, GPU_BATCH_SIZE

    return click.option(
        "--batch-size",
        "-b",
        type=BatchSize(),
        default=AUTO,
        metavar="N|auto",
        help=f"{what}. auto: {GPU_BATCH_SIZE} on a GPU; {CPU_BATCH_SIZE} on a CPU, where batching gains little and "
        f"{on_a_cpu}.",
    )
