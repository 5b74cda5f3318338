"""Joining a Ray cluster for `vivit batch --ray` and leaving it: the extra it needs, the address, and what Ray may
say on stderr."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import Any

from vivit_cli.batch.worker import one_line
from vivit_cli.errors import ClusterError
from vivit_cli.video.sources import LIST_PREFIX

EXTRA = 'pip install "vivit-cli[ray]"'
LOCAL = ""  # --ray with no address: a running cluster if ray.init() finds one, else a local one


def require_ray() -> Any:
    """The ray module, or our one-line error that names the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError:
        raise ClusterError(f"--ray needs Ray, which is not installed: {EXTRA}") from None
    return ray


def split_address(address: str, sources: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """`--ray videos/` takes the folder as its address: an existing path or @list is a source, never an address."""
    if address != LOCAL and (os.path.exists(address) or address.startswith(LIST_PREFIX)):
        return LOCAL, (address, *sources)
    return address, tuple(sources)


NO_CLUSTER = (
    "no running Ray cluster was found: start one (ray start --head) and give its address as --ray=HOST:PORT, "
    "--ray=ray://HOST:10001 or in RAY_ADDRESS, or give --ray with no address for a local one"
)


@contextmanager
def connect(address: str, chatter: bool = False) -> Iterator[None]:
    """Join the cluster at `address` (LOCAL: the one ray.init() finds, else a new local one); leave it after.

    Ray prints its own messages (a worker died, a task is retried) on stdout: while connected, stdout is stderr,
    so a caller that writes rows to stdout takes the stream before. Ray's log lines, its workers' output and its
    C++ core's lines stay off stderr unless `chatter` (--debug): what goes wrong reaches the caller as an error.
    A Ray already initialised in this process (a test, a notebook) is used as it is.
    """
    ray = require_ray()
    with _off_stderr(not chatter), redirect_stdout(sys.stderr):
        if ray.is_initialized():
            yield
            return
        try:
            ray.init(
                address=address or None,
                include_dashboard=False,
                log_to_driver=chatter,
                logging_level=logging.WARNING if chatter else logging.ERROR,
            )
        except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
            where = f"at {address}" if address else "(ray.init() found none and could not start one)"
            raise ClusterError(f"cannot reach a Ray cluster {where}: {_ours(one_line(str(e)))}") from None
        try:
            yield
        finally:
            ray.shutdown()


def _ours(message: str) -> str:
    """Ray's message for the user of vivit, whose flag is --ray: Ray's own hint names `ray start`'s --address."""
    if message.startswith("Could not find any running Ray instance"):
        return NO_CLUSTER
    return message.replace("`--address` flag", "--ray=ADDRESS")


@contextmanager
def _off_stderr(quiet: bool) -> Iterator[None]:
    """While `quiet`, file descriptor 2 is /dev/null and sys.stderr a copy of what it was: Ray's C++ core, in this
    process, writes its lines (`[... E ...] core_worker.cc: ...`) to fd 2 whatever its log level, where ours go
    through sys.stderr. Ray keeps its own lines in its session's log files. Nothing to do where sys.stderr is not
    fd 2 (a test's captured stream)."""
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    if not (quiet and real):
        yield
        return
    sys.stderr.flush()
    ours = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    stderr, sys.stderr = sys.stderr, ours
    try:
        yield
    finally:
        ours.flush()
        os.dup2(ours.fileno(), 2)
        sys.stderr = stderr
        ours.close()
