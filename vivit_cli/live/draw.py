"""Labels drawn on a frame: one function shared by the webcam window and the timeline's overlay video."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from vivit_cli.live.text import Warn, draw_text, text_width
from vivit_cli.results import Prediction
from vivit_cli.writers.tables import percent

PANEL_ALPHA = 0.6  # opacity of the dark panel behind the text
TEXT_COLOUR = (255, 255, 255)
BAR_COLOUR = (60, 200, 60)  # the same in RGB and BGR, so callers need not say which order their frames use
PANEL_COLOUR = (0, 0, 0)
LINE_HEIGHT_FRACTION = 0.07  # of the frame height, per text row ...
LINE_WIDTH_FRACTION = 0.04  # ... or of its width, whichever is less: portrait frames get text that fits across
MIN_LINE_HEIGHT_PX = 14
MAX_SHRINK = 0.75  # a row too wide for the frame shrinks the text down to this fraction; past it, labels wrap
SCORE_GAP = "  "  # between a label and its score
FONT_PX_PER_LINE = 0.75  # font size per line height: room for accents above and descenders below
BASELINE = 0.68  # of a line's height, from its top to the text's baseline
BAR_TOP, BAR_BOTTOM = 0.8, 0.92  # of a line's height, from its top: the score bar under the text
NO_LABEL = "no label"  # drawn for a scored window whose every prediction was left out (--min-score, --threshold)


# Each channel's value under the panel, by its value before: a lookup, much faster on a big frame than the sum.
_PANEL_LUT = np.stack([np.arange(256) * (1 - PANEL_ALPHA) + c * PANEL_ALPHA for c in PANEL_COLOUR], -1)
_PANEL_LUT = _PANEL_LUT.astype(np.uint8)[:, None, :]  # (256, 1, 3): cv2.LUT's table for 3 channels


@dataclass(frozen=True)
class TextLine:
    """One line of the panel: its text, where its baseline starts, and the score whose bar goes under it."""

    text: str
    x: int
    y: int  # baseline
    bar_score: float | None  # set on a prediction's last line


@dataclass(frozen=True)
class Layout:
    lines: tuple[TextLine, ...]
    panel_w: int
    panel_h: int
    line_px: int  # height of one line
    font_px: int  # the font's size
    pad: int


def layout_labels(
    width: int, height: int, predictions: Sequence[Prediction], title: str | None = None, empty: str | None = None
) -> Layout:
    """Where draw_labels puts each line on a width x height frame; `empty` is the line shown without predictions.

    Text is sized from the frame's height or width, whichever gives smaller text (so portrait frames get text that
    fits across), shrunk a little for a label too long for that, then wrapped between words, the score kept on
    the label's last line. On a frame too small for the wrapped lines, each label is cut short ("..") instead.
    """
    line = max(MIN_LINE_HEIGHT_PX, int(min(height * LINE_HEIGHT_FRACTION, width * LINE_WIDTH_FRACTION)))
    rows = ([(title, None)] if title else []) + [(p.label, p.score) for p in predictions]
    if not predictions and empty:
        rows.append((empty, None))
    texts = [text if score is None else f"{text}{SCORE_GAP}{percent(score)}" for text, score in rows]
    if texts:
        widest = max(text_width(t, _font_px(line)) for t in texts)
        room = width - 2 * (line // 3)
        if widest > room:  # shrink first, so that a label slightly too long stays on one line
            line = max(MIN_LINE_HEIGHT_PX, int(line * max(MAX_SHRINK, room / widest)))
    px = _font_px(line)
    pad = line // 3
    room = width - 2 * pad
    blocks = [_wrap(text, score, room, px) for text, score in rows]
    if sum(map(len, blocks)) * line + 2 * pad > height:  # a small frame: one line per row, labels shortened
        blocks = [[_shorten(text, score, room, px)] for text, score in rows]
    lines: list[TextLine] = []
    y = pad
    for (_, score), block in zip(rows, blocks, strict=True):
        if any(t.bar_score is not None for t in lines) and y + len(block) * line + pad > height:
            break  # past the best prediction, a whole one or none: rows past the bottom would be cut in half
        for i, part in enumerate(block):
            lines.append(TextLine(part, pad, y + int(line * BASELINE), score if i == len(block) - 1 else None))
            y += line
    if not lines:
        return Layout((), 0, 0, line, px, pad)
    text_w = max(text_width(t.text, px) for t in lines)
    return Layout(tuple(lines), min(width, text_w + 2 * pad), min(height, y + pad), line, px, pad)


def draw_labels(
    frame: np.ndarray,
    predictions: Sequence[Prediction],
    title: str | None = None,
    empty: str | None = None,
    warn: Warn | None = None,
) -> np.ndarray:
    """A copy of `frame` (H, W, 3) uint8 with a panel in the top-left corner: title, then label, score and bar
    (or the `empty` line, when there are no predictions).

    `warn` hears of characters no installed font has (drawn as boxes), at every call: the caller says it once.
    """
    out = frame.copy()
    h, w = out.shape[:2]
    layout = layout_labels(w, h, predictions, title, empty)
    if not layout.lines:
        return out
    region = out[: layout.panel_h, : layout.panel_w]
    region[:] = cv2.LUT(region, _PANEL_LUT)
    line, pad = layout.line_px, layout.pad
    for t in layout.lines:
        if t.bar_score is not None:
            top = t.y - int(line * BASELINE)
            bar_w = int((layout.panel_w - 2 * pad) * max(0.0, min(1.0, t.bar_score)))
            if bar_w > 0:  # cv2.rectangle's corners are inclusive: a bar of width 0 would still be 1 px wide
                corner1, corner2 = (pad, top + int(line * BAR_TOP)), (pad + bar_w - 1, top + int(line * BAR_BOTTOM))
                cv2.rectangle(out, corner1, corner2, BAR_COLOUR, -1)
        draw_text(out, t.text, (t.x, t.y), layout.font_px, TEXT_COLOUR, warn)
    return out


def _font_px(line: int) -> int:
    """The font size for lines `line` pixels high."""
    return max(1, round(line * FONT_PX_PER_LINE))


def _wrap(text: str, score: float | None, room: int, px: int) -> list[str]:
    """`text` (and its score, kept whole at the end) in lines at most `room` pixels wide, split between words."""
    words = text.split() or [""]
    pieces = [p for word in words for p in _split_word(word, room, px)]
    if score is not None:
        pieces.append(percent(score))
    lines: list[str] = []
    for i, piece in enumerate(pieces):
        gap = SCORE_GAP if score is not None and i == len(pieces) - 1 else " "
        joined = f"{lines[-1]}{gap}{piece}" if lines else piece
        if lines and text_width(joined, px) <= room:
            lines[-1] = joined
        else:
            lines.append(piece)
    return lines


def _shorten(text: str, score: float | None, room: int, px: int) -> str:
    """`text` and its score on one line at most `room` pixels wide: the label cut short (".."), the score whole."""
    tail = "" if score is None else f" {percent(score)}"  # a frame this small has no room for SCORE_GAP
    for n in range(len(text), 0, -1):
        line = f"{text[:n]}{'..' if n < len(text) else ''}{tail}"
        if text_width(line, px) <= room:
            return line
    return tail.strip() or text[:1]


def _split_word(word: str, room: int, px: int) -> list[str]:
    """A word wider than `room` cut into pieces that fit (at least one character each)."""
    parts: list[str] = []
    while word:
        n = len(word)
        while n > 1 and text_width(word[:n], px) > room:
            n -= 1
        parts.append(word[:n])
        word = word[n:]
    return parts
