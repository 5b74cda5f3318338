"""What a command says on stderr as it goes: progress bars, and the videos that failed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import click


def progress_bar(ctx: click.Context, unit: str, total: int | None = None, desc: str | None = None) -> Any:
    """A tqdm bar on stderr counted in `unit`s, off with --quiet."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, disable=ctx.obj["quiet"], file=sys.stderr, dynamic_ncols=True)


def tqdm_progress(bar: Any) -> Callable[[int, int], None]:
    """A (done, total) callback that moves a tqdm bar."""

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return progress


def say_failed(
    ctx: click.Context, failed: Sequence[tuple[str, str]], total: int, then: str, listed_in: str | None = None
) -> None:
    """How many of `total` videos did not decode and what became of them (`then`), the first few with why (each
    path said once: an error that starts with its path loses it), and where the rest are listed."""
    from vivit_cli.batch.plan import LISTED_FAILURES
    from vivit_cli.results import one_line
    from vivit_cli.writers.records import reason

    if not failed or ctx.obj["quiet"]:
        return
    click.echo(f"Failed: {len(failed)} of {total} videos could not be decoded; {then}:", err=True)
    for path, why in failed[:LISTED_FAILURES]:
        click.echo(f"  {one_line(path)}: {reason(path, why)}", err=True)
    more = len(failed) - LISTED_FAILURES
    if more > 0:
        click.echo(f"  and {more} more" + (f" (listed in {listed_in})" if listed_in else ""), err=True)
