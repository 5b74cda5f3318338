"""The `vivit` command: a thin Click group over the pipeline. Data to stdout, chatter to stderr."""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import warnings
from typing import Any, NoReturn

import click

from vivit_cli import __version__
from vivit_cli.cli.batch import batch_command
from vivit_cli.cli.classify import classify_command
from vivit_cli.cli.embed import embed_command
from vivit_cli.cli.env import env_command
from vivit_cli.cli.evaluate import evaluate_command
from vivit_cli.cli.label import label_command
from vivit_cli.cli.models import download_command, labels_command
from vivit_cli.cli.options import DEBUG_HELP, QUIET_HELP, global_options, said_stopped
from vivit_cli.cli.progress import above_bars
from vivit_cli.cli.timeline import timeline_command
from vivit_cli.cli.train import train_command
from vivit_cli.cli.webcam import webcam_command
from vivit_cli.device import keep_freed_memory
from vivit_cli.errors import VivitError

EXIT_INTERRUPTED = 130  # as a shell reports SIGINT
EXIT_TERMINATED = 143  # as a shell reports SIGTERM
EXIT_UNEXPECTED = 1  # an exception we did not expect: a bug, or a fault we do not know yet


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a job scheduler, a container stopping), handled as Ctrl-C is: the current rows are
    written, workers stopped and the summary printed, then exit 143."""


class _Ending:
    """Once the command has returned, a SIGTERM or Ctrl-C is noted rather than raised (there is nothing left to stop,
    and an exception in the exit handlers would only print a traceback); main() then exits 143 or 130."""

    finished = False
    status: int | None = None


def _terminate(signum: int, frame: Any) -> None:
    if not _Ending.finished:
        raise Terminated
    _Ending.status = EXIT_TERMINATED


def _interrupt(signum: int, frame: Any) -> None:
    if not _Ending.finished:
        raise KeyboardInterrupt
    _Ending.status = _Ending.status or EXIT_INTERRUPTED


class _Group(click.Group):
    """Turns our errors into one line on stderr and an exit code; --debug shows the traceback. Every command
    also takes the group's --debug and -q, so that they work where users put them: before or after it."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "debug" for p in cmd.params):  # once, should a command join two groups
            cmd.params.extend(global_options())
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                _Ending.finished = True  # a signal that lands before this line is raised, and caught below
        except VivitError as e:
            if (ctx.obj or {}).get("debug"):
                raise
            click.secho(f"Error: {e}", fg="red", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # Click's own: usage errors, exits and aborts keep Click's behaviour
        except Exception as e:
            # A broken pipe on stdout (`vivit batch ... | head`) is Click's to handle quietly.
            if isinstance(e, OSError) and e.errno == errno.EPIPE:
                raise
            if (ctx.obj or {}).get("debug"):
                if isinstance(e, EOFError):  # Click would print a bare "Aborted!" for it
                    raise RuntimeError(f"unexpected {type(e).__name__}") from e
                raise
            message = " ".join(f"{type(e).__name__}: {e}".split())
            click.secho(f"Error: unexpected {message} (rerun with --debug to see where)", fg="red", err=True)
            ctx.exit(EXIT_UNEXPECTED)
        except Terminated:
            if not said_stopped(ctx):
                click.echo("Terminated.", err=True)
            ctx.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            if not said_stopped(ctx):
                click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    with above_bars():  # a warning given while a bar is drawn (by a run on Ray, say) goes above it
        click.secho(f"Warning: {message}", fg="yellow", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, "--version", "-V", prog_name="vivit")
@click.option("--debug", is_flag=True, help=DEBUG_HELP)
@click.option("--quiet", "-q", is_flag=True, help=QUIET_HELP)
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Label videos with ViViT (Video Vision Transformer)."""
    ctx.obj = {"debug": debug, "quiet": quiet}
    warnings.showwarning = _show_warning
    logging.basicConfig(level=logging.WARNING, format="%(message)s")


for command in (
    batch_command,
    classify_command,
    embed_command,
    download_command,
    env_command,
    evaluate_command,
    label_command,
    labels_command,
    timeline_command,
    train_command,
    webcam_command,
):
    cli.add_command(command)


def main() -> NoReturn:
    # OpenCV and FFmpeg print their own warnings for damaged files; ours say it in one line instead.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (`nohup`, `&`)
        signal.signal(signal.SIGINT, _interrupt)
    keep_freed_memory()
    try:
        cli(prog_name="vivit")
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else int(e.code is not None)
    _exit(status)


def _exit(status: int) -> NoReturn:
    """Exit with `status`, or 143 or 130 when a SIGTERM or Ctrl-C came after the command. What the interpreter does
    at exit that matters is done here (other threads joined, exit handlers: multiprocessing's, logging's, Ray's),
    then the process ends at once: the interpreter's own teardown first puts back the default action of every
    signal, and a SIGTERM landing while it unloads torch ended vivit with -15 instead of 143."""
    _Ending.finished = True
    with contextlib.suppress(Exception):
        getattr(threading, "_shutdown", lambda: None)()  # as the interpreter does before the exit handlers
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(_Ending.status or status)
