"""training.png of a --full run: the loss and the accuracy per epoch, training and validation, side by side, drawn
with OpenCV (text: live.text), the best epoch marked."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from vivit_cli.live.plot import BACKGROUND, GRID, INK, MUTED, PALETTE
from vivit_cli.live.text import draw_text, text_width

Point = tuple[int, int]
PANEL_W_PX = 520
PANEL_H_PX = 300
MARGIN_PX = 56  # room for the axis' numbers
TITLE_H_PX = 34
LEGEND_H_PX = 30
FONT_PX = 13
TITLE_PX = 15
TICKS = 4  # grid lines per panel's height
CURVES = (  # (panel, key in an epoch's figures, legend, colour)
    ("loss", "train_loss", "train", PALETTE[0]),
    ("loss", "val_loss", "validation", PALETTE[1]),
    ("accuracy", "train_accuracy", "train", PALETTE[0]),
    ("accuracy", "val_accuracy", "validation", PALETTE[1]),
)


def draw_curves(epochs: Sequence[Mapping[str, Any]], best: int) -> np.ndarray:
    """The picture (H, W, 3) BGR uint8 of each epoch's figures (train_loss, val_loss, train_accuracy,
    val_accuracy); `best` the 1-based best epoch."""
    width = 2 * PANEL_W_PX
    img = np.full((TITLE_H_PX + PANEL_H_PX + LEGEND_H_PX + MARGIN_PX, width, 3), BACKGROUND, np.uint8)
    for k, panel in enumerate(("loss", "accuracy")):
        left, right = k * PANEL_W_PX + MARGIN_PX, (k + 1) * PANEL_W_PX - 16
        bottom = TITLE_H_PX + PANEL_H_PX
        values = [float(e[key]) for p, key, *_ in CURVES if p == panel for e in epochs if np.isfinite(e[key])]
        low, high = (0.0, 1.0) if panel == "accuracy" else (0.0, max(values, default=1.0) * 1.05 or 1.0)
        xy = _scale(left, right, bottom, low, high, max(len(epochs), 2))

        draw_text(img, panel, (left, TITLE_H_PX - 12), TITLE_PX, INK)
        for t in range(TICKS + 1):
            v = low + (high - low) * t / TICKS
            y = xy(0, v)[1]
            cv2.line(img, (left, y), (right, y), GRID, 1)
            label = f"{v:.0%}" if panel == "accuracy" else f"{v:.2f}"
            draw_text(img, label, (left - 8 - text_width(label, FONT_PX), y + 5), FONT_PX, MUTED)
        x_best = xy(best - 1, low)[0]
        cv2.line(img, (x_best, TITLE_H_PX), (x_best, bottom), MUTED, 1)
        draw_text(img, f"best: epoch {best}", (min(x_best + 4, right - 100), TITLE_H_PX + 16), FONT_PX, MUTED)
        for p, key, _, colour in CURVES:
            points = [xy(i, float(e[key])) for i, e in enumerate(epochs) if p == panel and np.isfinite(e[key])]
            if points:
                cv2.polylines(img, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
                for point in points:
                    cv2.circle(img, point, 3, colour, -1, cv2.LINE_AA)
        cv2.rectangle(img, (left, TITLE_H_PX), (right, bottom), MUTED, 1)
        for i in range(len(epochs)):
            x = xy(i, low)[0]
            if len(epochs) <= 20 or (i + 1) % (len(epochs) // 10) == 0:
                draw_text(img, str(i + 1), (x - 4, bottom + 18), FONT_PX, INK)
        draw_text(img, "epoch", ((left + right) // 2 - 20, bottom + 38), FONT_PX, INK)
    y = img.shape[0] - 12
    for n, (label, colour) in enumerate((("train", PALETTE[0]), ("validation", PALETTE[1]))):
        x = MARGIN_PX + 140 * n
        cv2.rectangle(img, (x, y - 11), (x + 16, y + 1), colour, -1)
        draw_text(img, label, (x + 22, y), FONT_PX, INK)
    return img


def _scale(left: int, right: int, bottom: int, low: float, high: float, n: int) -> Callable[[int, float], Point]:
    """(epoch index, value) -> its pixel in a panel."""

    def xy(i: int, v: float) -> Point:
        return round(left + i / (n - 1) * (right - left)), round(bottom - (v - low) / (high - low) * PANEL_H_PX)

    return xy


def save_curves(epochs: Sequence[Mapping[str, Any]], best: int, path: str) -> None:
    """Write the picture as a PNG (an OSError where it cannot)."""
    ok, data = cv2.imencode(".png", draw_curves(epochs, best))
    if not ok:
        raise OSError(f"cannot encode {path}")
    with open(path, "wb") as f:
        f.write(data.tobytes())
