"""The `vivit` command: a thin Click group over the pipeline. Data to stdout, chatter to stderr."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from typing import Any

import click

from vivit_cli import DEFAULT_MODEL, __version__
from vivit_cli.errors import VivitError

EXIT_INTERRUPTED = 130  # as a shell reports SIGINT


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --device and --dtype, shared by every command that runs the model."""
    f = click.option(
        "--dtype",
        type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
        default="auto",
        envvar="VIVIT_DTYPE",
        show_default=True,
        help="Weights and activations precision; auto: fp32 on CPU, bf16 (else fp16) on GPU. [env: VIVIT_DTYPE]",
    )(f)
    f = click.option(
        "--device",
        default="auto",
        envvar="VIVIT_DEVICE",
        show_default=True,
        help="auto, cpu, cuda or cuda:N. [env: VIVIT_DEVICE]",
    )(f)
    f = click.option(
        "--model",
        "-m",
        default=DEFAULT_MODEL,
        envvar="VIVIT_MODEL",
        show_default=True,
        help="Hub repo id (org/name[@revision]) or a local checkpoint folder. [env: VIVIT_MODEL]",
    )(f)
    return f


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


def main() -> None:
    cli(prog_name="vivit")

