"""The terminal's tables (rich, imported when one is drawn): one video's top-k, and a timeline's segments.
No torch, no OpenCV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vivit_cli.results import ModelInfo, Timeline, VideoResult, clock, counted, shown_path

BAR_WIDTH = 20  # characters of a full bar
NO_LABEL = "(no label)"  # a result whose every prediction scored under --min-score
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")  # the partial block that ends a bar


def percent(score: float) -> str:
    """A probability as the score cell of every table and panel: '87.5%'."""
    return f"{100 * score:.1f}%"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A bar of block characters, to eighths of a character."""
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    return "█" * (eighths // 8) + EIGHTHS[eighths % 8]


def model_caption(model: ModelInfo) -> str:
    """'model org/name @ abc1234def56 on cpu, float32', for a table's footer."""
    where = f" on {model.device}, {model.dtype}" if model.device and model.dtype else ""
    return f"model {model.model_id}" + (f" @ {model.revision[:12]}" if model.revision else "") + where


def titled_table(title: str, caption: str | None = None, **options: Any) -> Any:
    """A rich Table with its title and caption (rich markup) at the left, as every table of ours has them. The table
    is at least as wide as they are, so that they break only where the terminal is narrower."""
    from rich.cells import cell_len
    from rich.table import Table
    from rich.text import Text

    width = max(cell_len(Text.from_markup(text).plain) for text in (title, caption or ""))
    options["min_width"] = max(width, options.get("min_width") or 0)
    return Table(title=title, title_justify="left", caption=caption, caption_justify="left", **options)


def print_results_table(console: Any, result: VideoResult, name: str | None = None) -> None:
    """A rich table for one video: rank, label, score in %, and a bar. `name`: the video as the title writes it
    (default: its file name; results.short_names tells apart the videos of one run)."""
    from rich.markup import escape

    views = result.views
    clips = len({v.clip for v in views}) or 1
    duration = f"{result.duration_s:.1f} s" if result.duration_s is not None else "?"
    name = name or Path(shown_path(result.source)).name
    details = f"{duration}, {counted(clips, 'clip')} x {counted(len(views) // clips, 'crop')}"
    table = titled_table(f"{escape(name)}  [dim]{details}[/dim]", escape(model_caption(result.model)))
    table.add_column("#", justify="right", style="dim")
    table.add_column("label")
    table.add_column("score", justify="right")
    table.add_column("", min_width=BAR_WIDTH)
    for rank, p in enumerate(result.predictions, 1):
        table.add_row(str(rank), escape(p.label), percent(p.score), bar(p.score))
    if not result.predictions:
        table.add_row("", f"[dim]{NO_LABEL}[/dim]", "", "")
    console.print(table)


def print_segments_table(console: Any, timeline: Timeline) -> None:
    """A rich table: one row per segment, numbered from 1, with the stretches below the threshold between them
    dimmed."""
    from rich.markup import escape

    name = Path(shown_path(timeline.source)).name
    details = (
        f"{clock(timeline.end_s - timeline.start_s)}, {counted(len(timeline.windows), 'window')} every "
        f"{timeline.every_s:g} s, threshold {timeline.threshold:g}"
    )
    table = titled_table(f"{escape(name)}  [dim]{details}[/dim]", escape(model_caption(timeline.model)))
    for column in ("#", "start", "end", "label", "score", "windows"):
        table.add_column(
            column, justify="left" if column == "label" else "right", style="dim" if column == "#" else None
        )
    at = timeline.start_s
    for s in timeline.segments:
        if s.start_s > at + 1e-6:
            table.add_row("", clock(at), clock(s.start_s), "[dim](below threshold)[/dim]", "", "")
        number = str(s.index + 1)  # from 1, as a person counts and classify ranks; `index` in the rows is from 0
        table.add_row(number, clock(s.start_s), clock(s.end_s), escape(s.label), percent(s.score), str(s.num_windows))
        at = s.end_s
    if timeline.end_s > at + 1e-6:
        table.add_row("", clock(at), clock(timeline.end_s), "[dim](below threshold)[/dim]", "", "")
    console.print(table)
