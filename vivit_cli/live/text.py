"""Text in any script on frames: a font from live.fonts, drawn through Pillow (OpenCV's own font has ASCII only).
Library code: what cannot be drawn is said through the `warn` callback the caller passes."""

from __future__ import annotations

import functools
import unicodedata

import cv2
import numpy as np
from PIL import Image, ImageDraw

from vivit_cli.labels import one_line_label
from vivit_cli.live.fonts import Warn, book, load, notes

HERSHEY = cv2.FONT_HERSHEY_SIMPLEX
HERSHEY_PX_PER_SCALE = 27.0  # font px of the TrueType text as wide as cv2's font at scale 1
OPENCV_FONT = "OpenCV's own font"  # what draws text when there is no TrueType font


def text_width(text: str, px: int) -> int:
    """Width in pixels of `text` drawn `px` high (the font size)."""
    text = unicodedata.normalize("NFC", one_line_label(text))  # a line break would fail the layout
    pick = book().pick(text)
    if pick.path is None:
        return cv2.getTextSize(_ascii(text), HERSHEY, *_hershey(px))[0][0]
    return _advance(pick.path, max(1, px), text)


def draw_text(
    frame: np.ndarray,
    text: str,
    origin: tuple[int, int],
    px: int,
    colour: tuple[int, int, int],
    warn: Warn | None = None,
) -> None:
    """Draw `text` onto `frame` (H, W, 3) uint8 in place, its baseline starting at `origin` (x, y); `colour` is
    in the frame's channel order. Characters no font has are drawn as the font's box, and `warn` hears why."""
    text = unicodedata.normalize("NFC", one_line_label(text))  # a line break would fail the layout
    pick = book().pick(text)
    if warn is not None:
        for note in notes(pick, OPENCV_FONT):
            warn(note)
    x, y = origin
    if pick.path is None:
        scale, thickness = _hershey(px)
        cv2.putText(frame, _ascii(text), (x, y), HERSHEY, scale, colour, thickness, cv2.LINE_AA)
        return
    # Only the text's box is drawn, from a mask kept while the same lines are drawn frame after frame.
    alpha, left, top = _mask(pick.path, max(1, px), text)
    x0, y0 = x + left, y + top
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + alpha.shape[1]), min(frame.shape[0], y0 + alpha.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    a = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None].astype(np.float32) / 255  # (h, w, 1)
    region = frame[fy0:fy1, fx0:fx1]
    region[:] = (region * (1 - a) + np.asarray(colour, np.float32) * a + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=1024)
def _advance(path: str, px: int, text: str) -> int:
    return int(np.ceil(load(path, px).getlength(text)))


@functools.lru_cache(maxsize=256)
def _mask(path: str, px: int, text: str) -> tuple[np.ndarray, int, int]:
    """`text`'s coverage (h, w) uint8 and where its top-left corner is from the start of its baseline."""
    font = load(path, px)
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    image = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(image).text((-left, -top), text, font=font, fill=255, anchor="ls")
    alpha = np.array(image)
    alpha.flags.writeable = False  # shared by every later call
    return alpha, left, top


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _hershey(px: int) -> tuple[float, int]:
    """OpenCV's font scale and stroke thickness for text `px` high."""
    return px / HERSHEY_PX_PER_SCALE, max(1, round(px / 12))
