"""The confusion matrix as a PNG heat map, drawn with Pillow: counts in the cells, labels on both axes, each row
coloured by its share of the true label's videos, so a rare label's mistakes show as clearly as a common one's."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vivit_cli.errors import SourceError

if TYPE_CHECKING:
    from PIL import Image, ImageFont

    from vivit_cli.learn.metrics import Evaluation
    from vivit_cli.live.fonts import Warn

PIL_FONT = "Pillow's own font"  # what draws the text when the system has no TrueType font
LABEL_PX = 13  # label text height
TITLE_PX = 16
MAX_CELL = 72  # pixels per cell with a few labels
MIN_CELL = 22  # with many: still room for a label's line of text and a two-digit count
GRID_PX = 900  # the size the grid aims at between those
MAX_LABEL_PX = 260  # a longer label is shortened with an ellipsis
PAD = 8
OTHER_GAP = 6  # pixels between the labels' columns and "(other)"
LEGEND_W, LEGEND_H = 160, 12
LEGEND_TEXT = "0 → 100% of the true label's videos"
MAX_TITLE_PX = 900  # a longer title is shortened rather than widen a small matrix's picture
WHITE, INK, GRID_LINE, DIM = (255, 255, 255), (30, 30, 30), (215, 215, 215), (150, 150, 150)
HOT = (8, 48, 107)  # a row's full share; white is none
DARK_TEXT_ABOVE = 0.55  # share above which a cell's count is written in white


def font(size: int, text: str = "", warn: Warn | None = None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A TrueType font that has `text`'s characters, chosen as the live drawing code chooses it, else Pillow's own
    (ASCII only); `warn` hears of characters no installed font has (drawn as boxes)."""
    from PIL import ImageFont

    from vivit_cli.live import fonts

    pick = fonts.book().pick(unicodedata.normalize("NFC", text))
    if warn is not None:
        for note in fonts.notes(pick, PIL_FONT):
            warn(note)
    return ImageFont.load_default(size) if pick.path is None else fonts.load(pick.path, size)


def _colour(share: float) -> tuple[int, int, int]:
    return tuple(round(w + (h - w) * share) for w, h in zip(WHITE, HOT, strict=True))  # type: ignore[return-value]


def _width(f: Any, text: str) -> int:
    left, _, right, _ = f.getbbox(text)
    return int(right - left)


def _fit(f: Any, text: str, width: int) -> str:
    """`text` in at most `width` pixels: shortened in the middle with an ellipsis, so that labels that differ only
    at their end ('... 12', '... 13') stay apart."""
    if _width(f, text) <= width:
        return text
    head, tail = text[: len(text) // 2], text[len(text) // 2 :]
    while (head or tail) and _width(f, head + "…" + tail) > width:
        if len(head) >= len(tail):
            head = head[:-1]
        else:
            tail = tail[1:]
    return head + "…" + tail


def _vertical(text: str, f: Any, height: int, width: int) -> Image.Image:
    """A column label written bottom to top, starting at the grid, on a transparent strip."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGBA", (height, width), (0, 0, 0, 0))
    ImageDraw.Draw(strip).text((PAD, width // 2), text, font=f, fill=INK, anchor="lm")
    return strip.rotate(90, expand=True)


def cell_size(columns: int) -> int:
    """Pixels per cell for a matrix of `columns` columns: large for a few, never too small for a line of text."""
    return max(MIN_CELL, min(MAX_CELL, GRID_PX // columns))


def draw_confusion(evaluation: Evaluation, title: str, warn: Warn | None = None) -> Image.Image:
    """The heat map of `evaluation`'s confusion matrix: rows true, columns predicted, the last column OTHER. Each
    label is drawn in a font that has its characters; `warn` hears of those no installed font has."""
    from PIL import Image, ImageDraw

    matrix = evaluation.confusion  # (L, L + 1)
    rows, columns = list(evaluation.labels), list(evaluation.columns)
    cell = cell_size(len(columns))
    label_font, title_font = font(LABEL_PX, LEGEND_TEXT), font(TITLE_PX, title)
    label_fonts = {name: font(LABEL_PX, name, warn) for name in columns}
    count_font = font(max(9, min(LABEL_PX + 4, cell * 2 // 5)))
    label_w = min(MAX_LABEL_PX, max(_width(label_fonts[s], s) for s in columns)) + 2 * PAD
    top = PAD + 2 * (TITLE_PX + PAD)  # the title and the axis name
    left, grid_top = PAD + LABEL_PX + PAD + label_w, top + label_w
    grid_w = cell * len(columns) + OTHER_GAP
    width = max(
        left + grid_w,
        left + LEGEND_W + PAD + _width(label_font, LEGEND_TEXT),
        PAD + min(_width(title_font, title), MAX_TITLE_PX),
    )
    image = Image.new("RGB", (width + 2 * PAD, grid_top + cell * len(rows) + 3 * PAD + LEGEND_H + LABEL_PX), WHITE)
    draw = ImageDraw.Draw(image)
    draw.text((PAD, PAD), _fit(title_font, title, image.width - 2 * PAD), font=title_font, fill=INK)
    draw.text((left, PAD + TITLE_PX + PAD), "predicted label", font=label_font, fill=DIM)
    side = Image.new("RGBA", (cell * len(rows), LABEL_PX + PAD), (0, 0, 0, 0))
    ImageDraw.Draw(side).text((side.width // 2, 0), "true label", font=label_font, fill=DIM, anchor="ma")
    image.paste(r := side.rotate(90, expand=True), (PAD, grid_top), r)

    def x_of(j: int) -> int:
        return left + j * cell + (OTHER_GAP if j == len(rows) else 0)

    for j, name in enumerate(columns):
        f = label_fonts[name]
        strip = _vertical(_fit(f, name, label_w - 2 * PAD), f, label_w, cell)
        image.paste(strip, (x_of(j), top), strip)
    totals = [sum(row) for row in matrix]
    for i, name in enumerate(rows):
        y = grid_top + i * cell
        f = label_fonts[name]
        draw.text((left - PAD, y + cell // 2), _fit(f, name, label_w - 2 * PAD), font=f, fill=INK, anchor="rm")
        for j, count in enumerate(matrix[i]):
            share = count / totals[i] if totals[i] else 0.0
            box = (x_of(j), y, x_of(j) + cell - 1, y + cell - 1)
            draw.rectangle(box, fill=_colour(share), outline=GRID_LINE)
            if i == j:
                draw.rectangle(box, outline=INK)
            if count or i == j:  # a diagonal's 0 is news: none of that label's videos was right
                text = str(count)
                f = count_font if _width(count_font, text) <= cell - 4 else label_font
                ink = WHITE if share > DARK_TEXT_ABOVE else INK if count else DIM
                draw.text((box[0] + cell // 2, y + cell // 2), text, font=f, fill=ink, anchor="mm")
    _legend(draw, label_font, left, grid_top + cell * len(rows) + 2 * PAD)
    return image


def _legend(draw: Any, f: Any, x: int, y: int) -> None:
    """A colour bar from none to all of a true label's videos."""
    for dx in range(LEGEND_W):
        draw.line((x + dx, y, x + dx, y + LEGEND_H), fill=_colour(dx / (LEGEND_W - 1)))
    draw.rectangle((x, y, x + LEGEND_W, y + LEGEND_H), outline=GRID_LINE)
    draw.text((x + LEGEND_W + PAD, y + LEGEND_H // 2), LEGEND_TEXT, font=f, fill=DIM, anchor="lm")


def save_confusion(evaluation: Evaluation, title: str, path: str | Path, warn: Warn) -> None:
    """draw_confusion into a PNG or JPEG file (by its suffix); a file that cannot be written is a SourceError."""
    from vivit_cli.writers.pictures import picture_format

    try:
        draw_confusion(evaluation, title, warn).save(path, format=picture_format(path))
    except OSError as e:
        raise SourceError(f"{path}: cannot be written ({e.strerror or e})") from None
