"""Labels drawn on a frame: one function shared by the webcam window and the timeline's overlay video."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from vivit_cli.results import Prediction

PANEL_ALPHA = 0.6  # opacity of the dark panel behind the text
TEXT_COLOUR = (255, 255, 255)
BAR_COLOUR = (60, 200, 60)  # the same in RGB and BGR, so callers need not say which order their frames use
PANEL_COLOUR = (0, 0, 0)
LINE_HEIGHT_FRACTION = 0.07  # of the frame height, per text row
MIN_LINE_HEIGHT_PX = 14


def draw_labels(frame: np.ndarray, predictions: Sequence[Prediction], title: str | None = None) -> np.ndarray:
    """A copy of `frame` (H, W, 3) uint8 with a panel in the top-left corner: title, then label, score and bar."""
    out = frame.copy()
    h, w = out.shape[:2]
    line = max(MIN_LINE_HEIGHT_PX, int(h * LINE_HEIGHT_FRACTION))
    scale = line / 36.0
    thickness = max(1, round(line / 16))
    rows = ([title] if title else []) + [f"{p.label}  {100 * p.score:.1f}%" for p in predictions]
    if not rows:
        return out
    text_w = max(cv2.getTextSize(r, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0] for r in rows)
    pad = line // 3
    panel_w = min(w, text_w + 2 * pad)
    panel_h = min(h, len(rows) * line + 2 * pad)
    region = out[:panel_h, :panel_w]
    region[:] = (region * (1 - PANEL_ALPHA) + np.array(PANEL_COLOUR) * PANEL_ALPHA).astype(np.uint8)
    y = pad
    for i, text in enumerate(rows):
        is_prediction = not (title and i == 0)
        if is_prediction:
            score = predictions[i - (1 if title else 0)].score
            bar_w = int((panel_w - 2 * pad) * max(0.0, min(1.0, score)))
            if bar_w > 0:  # cv2.rectangle's corners are inclusive: a bar of width 0 would still be 1 px wide
                cv2.rectangle(out, (pad, y + int(line * 0.8)), (pad + bar_w - 1, y + int(line * 0.92)), BAR_COLOUR, -1)
        cv2.putText(
            out, text, (pad, y + int(line * 0.68)), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thickness, cv2.LINE_AA
        )
        y += line
    return out
