"""A timeline as a picture, drawn with OpenCV (text: live.text): segments as coloured bands, scores over time, a time
axis, a legend."""

from __future__ import annotations

import collections
import math
from pathlib import Path

import cv2
import numpy as np

from vivit_cli.errors import SourceError
from vivit_cli.live.text import Warn, draw_text, text_width
from vivit_cli.results import Timeline, clock, counted, shown_path
from vivit_cli.video.names import ffmpeg_name
from vivit_cli.writers.pictures import check_picture_path

WIDTH_PX = 1200
MARGIN_LEFT_PX = 64  # room for the score axis' "100%"
MARGIN_RIGHT_PX = 24
TITLE_H_PX = 40
STRIP_H_PX = 44  # the band of segments
CHART_H_PX = 200  # the score curves
AXIS_H_PX = 34  # tick marks and their times
LEGEND_ROW_H_PX = 26
GAP_PX = 14
MAX_LABELS = 8  # labels with their own colour; the rest are drawn grey as "other"
MAX_TICKS = 12  # on the time axis
TICK_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 18000, 36000)
FONT_PX = 13  # the font's size
TITLE_PX = 16
FILL_ALPHA = 0.18  # of the area under each score curve
DASH_PX = 6  # dashes of the threshold line, and the gaps between them

# Tableau 10 (RGB hex, reversed into OpenCV's BGR): distinct for most colour-blind readers and on paper.
PALETTE = [
    tuple(bytes.fromhex(rgb)[::-1])
    for rgb in ("1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd", "8c564b", "e377c2", "bcbd22", "17becf", "7f7f7f")
]
OTHER = (200, 200, 200)  # labels past MAX_LABELS
UNSURE = (238, 238, 238)  # stretches below the threshold
BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)
GRID = (225, 225, 225)
MUTED = (120, 120, 120)


def _label_times(timeline: Timeline) -> tuple[dict[int, float], dict[int, float]]:
    """Seconds per class id: in segments of that label, and in cells whose window has it as top-1."""
    in_segments: dict[int, float] = collections.defaultdict(float)
    for s in timeline.segments:
        in_segments[timeline.windows[s.first_window].predictions[0].index] += s.end_s - s.start_s
    as_top: dict[int, float] = collections.defaultdict(float)
    for w, (a, b) in zip(timeline.windows, timeline.cells, strict=True):
        if w.predictions:  # a window with no label (--min-score) is top-1 for none
            as_top[w.predictions[0].index] += b - a
    return in_segments, as_top


def draw_timeline(timeline: Timeline, width: int = WIDTH_PX, warn: Warn | None = None) -> np.ndarray:
    """The picture as a BGR uint8 image (H, width, 3); `warn` hears of characters no installed font has."""
    in_segments, as_top = _label_times(timeline)
    # Labels with a colour: some window's top-1, most time in segments first (then most time as top-1).
    shown = sorted(as_top, key=lambda i: (-in_segments.get(i, 0.0), -as_top[i], i))[:MAX_LABELS]
    colour = {i: PALETTE[n % len(PALETTE)] for n, i in enumerate(shown)}
    legend_rows = _legend_layout(timeline, in_segments, colour, width)
    rows = 1 + max((row for *_, row in legend_rows), default=0)
    height = TITLE_H_PX + STRIP_H_PX + GAP_PX + CHART_H_PX + AXIS_H_PX + GAP_PX + LEGEND_ROW_H_PX * rows + GAP_PX
    img = np.full((height, width, 3), BACKGROUND, np.uint8)
    left, right = MARGIN_LEFT_PX, width - MARGIN_RIGHT_PX
    t0, t1 = timeline.start_s, max(timeline.end_s, timeline.start_s + 1e-6)

    def x_of(t: float) -> int:
        return round(left + (t - t0) / (t1 - t0) * (right - left))

    name = Path(shown_path(timeline.source)).name
    title = (
        f"{name}   {clock(t1 - t0, 1)}   {counted(len(timeline.windows), 'window')} every {timeline.every_s:g} s   "
        f"model {timeline.model.model_id}"
    )
    draw_text(img, _fit(title, width - 2 * GAP_PX, TITLE_PX), (GAP_PX, 27), TITLE_PX, INK, warn)

    # The segment strip: unsure stretches are pale, so the eye reads only the confident labels.
    top = TITLE_H_PX
    cv2.rectangle(img, (left, top), (right, top + STRIP_H_PX), UNSURE, -1)
    for s in timeline.segments:
        idx = timeline.windows[s.first_window].predictions[0].index
        fill = colour.get(idx, OTHER)
        a, b = x_of(s.start_s), max(x_of(s.start_s) + 1, x_of(s.end_s))
        cv2.rectangle(img, (a, top), (b - 1, top + STRIP_H_PX), fill, -1)
        cv2.line(img, (a, top), (a, top + STRIP_H_PX), BACKGROUND, 1)  # so equal neighbours still read as two
        text = _fit(f"{s.label}  {100 * s.score:.0f}%", b - a - 8, FONT_PX) or _fit(s.label, b - a - 8, FONT_PX)
        if text:
            draw_text(img, text, (a + 4, top + STRIP_H_PX // 2 + 5), FONT_PX, _ink_on(fill), warn)
    draw_text(img, "label", (8, top + STRIP_H_PX // 2 + 5), FONT_PX, MUTED)

    # The score chart: each shown label's probability per window, held over the window's cell.
    top = TITLE_H_PX + STRIP_H_PX + GAP_PX
    bottom = top + CHART_H_PX

    def y_of(p: float) -> int:
        return round(bottom - p * CHART_H_PX)

    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        cv2.line(img, (left, y_of(p)), (right, y_of(p)), GRID, 1)
        draw_text(img, f"{100 * p:.0f}%", (8, y_of(p) + 5), FONT_PX, MUTED)
    threshold_y = y_of(timeline.threshold)
    for x in range(left, right, 2 * DASH_PX):  # a dashed line
        cv2.line(img, (x, threshold_y), (min(x + DASH_PX, right), threshold_y), MUTED, 1)
    draw_text(img, f"threshold {100 * timeline.threshold:.0f}%", (right - 130, threshold_y - 5), FONT_PX, MUTED)
    for idx in reversed(shown):  # the longest-held label last, on top
        points = []
        for (a, b), p in zip(timeline.cells, timeline.probs[:, idx], strict=True):
            points += [(x_of(a), y_of(float(p))), (x_of(b), y_of(float(p)))]
        curve = np.array(points, np.int32)
        area = np.concatenate([curve, [[curve[-1][0], bottom], [curve[0][0], bottom]]]).astype(np.int32)
        layer = img.copy()
        cv2.fillPoly(layer, [area], colour[idx])
        cv2.addWeighted(layer, FILL_ALPHA, img, 1 - FILL_ALPHA, 0, dst=img)
        cv2.polylines(img, [curve], False, colour[idx], 2, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (right, bottom), MUTED, 1)

    # The time axis.
    step = next((s for s in TICK_STEPS_S if (t1 - t0) / s <= MAX_TICKS), TICK_STEPS_S[-1])
    decimals = 1 if step < 1 else 0
    for k in range(math.ceil(t0 / step - 1e-9), math.floor(t1 / step + 1e-9) + 1):
        t = k * step
        x = x_of(t)
        cv2.line(img, (x, bottom), (x, bottom + 6), INK, 1)
        label = clock(t, decimals)
        w = text_width(label, FONT_PX)
        draw_text(img, label, (min(max(x - w // 2, 0), width - w - 2), bottom + 22), FONT_PX, INK)

    # The legend: swatch, label, share of the video it is top-1 for.
    top = bottom + AXIS_H_PX + GAP_PX
    for text, fill, x, row in legend_rows:
        y = top + row * LEGEND_ROW_H_PX
        cv2.rectangle(img, (x, y), (x + 16, y + 14), fill, -1)
        cv2.rectangle(img, (x, y), (x + 16, y + 14), GRID, 1)  # a pale swatch still shows its edge
        draw_text(img, text, (x + 22, y + 12), FONT_PX, INK, warn)
    return img


def check_plot_path(path: str | Path) -> Path:
    """`path` as a Path if it names a picture (.png or .jpg) in a folder that can be written."""
    return check_picture_path(path)


def save_plot(timeline: Timeline, path: str | Path, width: int = WIDTH_PX, warn: Warn | None = None) -> Path:
    """Draw the timeline into `path`, a PNG or JPEG picture by its suffix."""
    path = check_plot_path(path)
    try:
        with ffmpeg_name(path) as name:
            ok = cv2.imwrite(name, draw_timeline(timeline, width, warn))
    except cv2.error as e:
        raise SourceError(f"{shown_path(path)}: cannot write the plot there ({e.err or e})") from None
    if not ok:
        raise SourceError(f"{shown_path(path)}: cannot write the plot there")
    return path


def _legend_layout(
    timeline: Timeline, in_segments: dict[int, float], colour: dict[int, tuple], width: int
) -> list[tuple[str, tuple, int, int]]:
    """(text, colour, x, row) per legend entry (`colour`: the shown labels'), wrapped to the width."""
    # Shares of the video in segments, as the strip shows them; the rest is below the threshold.
    total = (timeline.end_s - timeline.start_s) or 1.0
    entries = [(f"{timeline.labels[i]}  {100 * in_segments.get(i, 0.0) / total:.0f}%", colour[i]) for i in colour]
    other = sum(t for i, t in in_segments.items() if i not in colour)
    if other:
        entries.append((f"other  {100 * other / total:.0f}%", OTHER))
    unsure = total - sum(in_segments.values())
    if unsure > 1e-6:
        entries.append((f"below {100 * timeline.threshold:.0f}%  {100 * unsure / total:.0f}%", UNSURE))
    out, x, row = [], MARGIN_LEFT_PX, 0
    for text, fill in entries:
        w = 22 + text_width(text, FONT_PX) + 28
        if x + w > width - MARGIN_RIGHT_PX and x > MARGIN_LEFT_PX:
            x, row = MARGIN_LEFT_PX, row + 1
        out.append((text, fill, x, row))
        x += w
    return out


def _fit(text: str, max_w: int, px: int) -> str:
    """`text`, cut with '..' to fit max_w pixels; empty when not even two letters fit."""
    if text_width(text, px) <= max_w:
        return text
    for n in range(len(text) - 1, 1, -1):
        if text_width(text[:n] + "..", px) <= max_w:
            return text[:n] + ".."
    return ""


def _ink_on(fill: tuple) -> tuple:
    """Black or white text, whichever reads better on `fill` (BGR)."""
    b, g, r = fill
    return INK if 0.299 * r + 0.587 * g + 0.114 * b > 150 else BACKGROUND
