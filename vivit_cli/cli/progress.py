"""What a command says on stderr as it goes: progress bars, and the videos that failed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import click


def progress_bar(
    ctx: click.Context, unit: str, total: int | None = None, desc: str | None = None, terminal_only: bool = False
) -> Any:
    """A tqdm bar on stderr counted in `unit`s, off with --quiet; `terminal_only`: also off where stderr is not a
    terminal (a log file gets no bar)."""
    from tqdm import tqdm

    disable = True if ctx.obj["quiet"] else None if terminal_only else False  # None: tqdm asks isatty()
    return tqdm(total=total, unit=unit, desc=desc, disable=disable, file=sys.stderr, dynamic_ncols=True)


def above_bars() -> AbstractContextManager[None]:
    """Where lines are printed (stdout or stderr) while a bar is drawn: the bars are cleared first and drawn again
    under the lines, so that neither tears the other."""
    from tqdm import tqdm

    return tqdm.external_write_mode()


def views_postfix(bar: Any, views: int) -> Callable[[int], None]:
    """A callback for the scoring path's forward passes over one video's `views`: 'views 5/12' after the bar, for a
    video whose views take several passes; nothing for one that takes one."""
    done = 0

    def scored(n: int) -> None:
        nonlocal done
        done += n
        if n < views:
            bar.set_postfix_str(f"views {done}/{views}" if done < views else "")

    return scored


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
    from vivit_cli.results import counted, one_line
    from vivit_cli.writers.records import reason

    if not failed or ctx.obj["quiet"]:
        return
    click.echo(f"Failed: {len(failed)} of {counted(total, 'video')} could not be decoded; {then}:", err=True)
    for path, why in failed[:LISTED_FAILURES]:
        click.echo(f"  {one_line(path)}: {reason(path, why)}", err=True)
    more = len(failed) - LISTED_FAILURES
    if more > 0:
        click.echo(f"  and {more} more" + (f" (listed in {listed_in})" if listed_in else ""), err=True)


def say(ctx: click.Context, *lines: str) -> None:
    """A command's notes on stderr, a line each; none with --quiet."""
    if not ctx.obj["quiet"]:
        for line in lines:
            click.echo(line, err=True)
