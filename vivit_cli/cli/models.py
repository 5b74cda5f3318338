"""`vivit download` and `vivit labels`: a model into the cache, and its label names."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from vivit_cli.cli.options import fetch_model, model_option

MODEL_HELP = "MODEL: org/name, org/name@revision or a folder, as an argument or as --model."


def model_argument(f: Callable[..., Any]) -> Callable[..., Any]:
    """MODEL as an argument (as it always was) or as --model/-m (as every other command takes it). The command is
    given `model`: the argument, else --model (or $VIVIT_MODEL, or the default); both typed, they must agree."""

    @functools.wraps(f)
    def command(*args: Any, model_arg: str | None, model: str) -> Any:
        ctx = click.get_current_context()
        if model_arg is not None:
            if ctx.get_parameter_source("model") == ParameterSource.COMMANDLINE and model != model_arg:
                raise click.UsageError(f"two models given: {model_arg} and --model {model}; give one")
            model = model_arg
        return f(*args, model=model)

    return click.argument("model_arg", metavar="[MODEL]", required=False)(model_option(command))


@click.command("download", epilog=MODEL_HELP)
@model_argument
@click.pass_context
def download_command(ctx: click.Context, model: str) -> None:
    """Fetch MODEL into the Hugging Face cache for offline use; print its folder."""
    local = fetch_model(ctx, model)
    click.echo(local.folder)
    if local.revision and not ctx.obj["quiet"]:
        click.echo(f"{local.model_id} at {local.revision[:7]} is cached: it also works offline.", err=True)


@click.command("labels", epilog=MODEL_HELP)
@model_argument
@click.pass_context
def labels_command(ctx: click.Context, model: str) -> None:
    """Print MODEL's label names, one per line, in class-id order (fetches config.json only)."""
    local = fetch_model(ctx, model, weights=False)
    from vivit_cli.checkpoint import read_config
    from vivit_cli.labels import one_line_label

    config, _ = read_config(local.folder)
    for name in config.labels:
        click.echo(one_line_label(name))  # a foreign model's label with a line break stays one line
