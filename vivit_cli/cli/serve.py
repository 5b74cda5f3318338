"""`vivit label`'s server: the page's app on a socket of this machine, its URL printed (and opened), served until
Ctrl-C. Imports uvicorn and Starlette, the `label` extra: `vivit label` imports this module only to serve."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from typing import Any

import click
import uvicorn

from vivit_cli.label.preview import Media
from vivit_cli.label.server import ANY_HOST, LOCAL_HOSTS, Guard, make_app

STARTED_POLL_S = 0.05  # how often the server is looked at until it listens


def serve(ctx: click.Context, loop: Any, num_frames: int, host: str, port: int, open_browser: bool) -> None:
    """Serve the page of `loop` on host:port (0: a free port) until Ctrl-C or SIGTERM; `num_frames`: the model's
    frames per clip, for where it looked."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        from vivit_cli.errors import UsageError

        sock.close()
        raise UsageError(f"cannot serve on {host}:{port} ({e.strerror or e}): give another --port") from None
    port = sock.getsockname()[1]
    guard = Guard.new(host, port)
    url = guard.url(host, port)
    if host not in LOCAL_HOSTS:
        where = "every address of this machine" if host in ANY_HOST else host
        click.secho(
            f"Warning: serving on {where}: anyone who can reach it and has the URL can label", fg="yellow", err=True
        )
    media = Media(loop.project.videos, loop.project.folder, loop.project.views.sampling(num_frames))

    def ready() -> None:
        click.echo(url)  # stdout: the one piece of data, for a script to read
        if not ctx.obj["quiet"]:
            click.echo("Labelling page: open the URL above; Ctrl-C stops (every answer is already saved).", err=True)
        if open_browser and not webbrowser.open(url):
            click.echo("No browser could be opened here: open the URL in one.", err=True)

    server = _Server(uvicorn.Config(make_app(loop, media, guard), log_level="warning", lifespan="off"))
    # Once it listens: the URL, and the browser. (A lifespan handler would do it too, but uvicorn prints its
    # cancellation as a traceback on Ctrl-C.)
    threading.Thread(target=_when_started, args=(server, ready), name="vivit-label-ready", daemon=True).start()
    received: list[int] = []

    def stop(signum: int, frame: Any) -> None:
        received.append(signum)
        server.should_exit = True

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
        media.close()
        sock.close()
    if received:  # the command's own handling of that signal: its line, and 130 or 143
        signal.raise_signal(received[0])


class _Server(uvicorn.Server):
    """uvicorn's server with the signals left to `serve`: uvicorn's own handling loses a Ctrl-C that comes while it
    starts (asyncio's handler is in place then, and cancels a task that is not yet serving)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _when_started(server: uvicorn.Server, ready: Callable[[], None]) -> None:
    while not server.started:
        if server.should_exit:
            return
        time.sleep(STARTED_POLL_S)
    if not server.should_exit:
        ready()
