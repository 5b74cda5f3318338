"""`vivit download` and `vivit labels`: a model into the cache, and its label names."""

from __future__ import annotations

import click

from vivit_cli import DEFAULT_MODEL
from vivit_cli.cli.options import fetch_model


@click.command("download")
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


@click.command("labels")
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
