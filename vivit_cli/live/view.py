"""What `vivit webcam` shows: the terminal panel and the OpenCV window (its log rows: vivit_cli.writers)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import time
from typing import Any

from vivit_cli.errors import DeviceError
from vivit_cli.live.text import Warn
from vivit_cli.live.webcam import LiveStatus
from vivit_cli.results import LiveEvent, LivePrediction
from vivit_cli.writers.tables import BAR_WIDTH, NO_LABEL, percent, titled_table

PANEL_REFRESH_S = 0.25  # seconds between redraws of the terminal panel
PANEL_WIDTH = 60  # characters: wide enough that the caption stays on one line
QUIT_KEYS = (ord("q"), 27)  # q and Esc
WINDOW_NAME = "vivit"


class TerminalView:
    """Progress on stderr: a rich Live panel on a terminal, else a plain line per prediction, or nothing."""

    def __init__(self, console: Any, mode: str, source: str) -> None:
        self.console, self.mode, self.source = console, mode, source  # mode: "live", "lines" or "off"
        self._live: Any = None
        self._status: LiveStatus | None = None
        self._event: LiveEvent | None = None  # the source's latest; "reconnected" until a prediction follows it
        self._drawn = 0.0

    def __enter__(self) -> TerminalView:
        if self.mode == "live":
            from rich.live import Live

            self._live = Live(console=self.console, auto_refresh=False, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def event(self, e: LiveEvent) -> None:
        """A line about the source (lost, reopening, back, gone); the panel's caption shows where it stands."""
        if self.mode == "off":
            return
        self._event = e
        self.console.print(f"{self.source}: {e.message}", markup=False, highlight=False, soft_wrap=True)
        if self._live is not None and self._status is not None:
            self._live.update(self.panel(self._status), refresh=True)

    def prediction(self, p: LivePrediction) -> None:
        if self._event is not None and self._event.kind == "reconnected":
            self._event = None  # a window scored while the source was lost does not mean it is back
        if self._live is not None:  # drawn now: the run may stop before the next tick
            self._status = dataclasses.replace(self._status or LiveStatus(None, None, None, 0), latest=p)
            self._live.update(self.panel(self._status), refresh=True)
        elif self.mode == "lines":
            labels = ", ".join(f"{x.label} {percent(x.score)}" for x in p.predictions) or NO_LABEL
            self.console.print(
                f"#{p.number} frames {p.first_frame}-{p.last_frame} ({p.first_s:.2f}-{p.last_s:.2f} s)"
                f"  {labels}  [{1000 * p.latency_s:.0f} ms]",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )

    def tick(self, status: LiveStatus) -> None:
        now = time.monotonic()
        self._status = status
        if self._live is not None and now - self._drawn >= PANEL_REFRESH_S:
            self._live.update(self.panel(status), refresh=True)
            self._drawn = now

    def panel(self, status: LiveStatus) -> Any:
        """The top-k (smoothed), the capture rate and the model's latency, as a rich table."""
        from rich.bar import Bar

        p = status.latest
        fps = f"{status.capture_fps:.1f} fps" if status.capture_fps else "- fps"
        latency = f"{1000 * p.latency_s:.0f} ms" if p else "- ms"
        title = f"{self.source}  [dim]{fps} capture, model {latency}[/dim]"
        table = titled_table(title, _caption(status, self._event), min_width=PANEL_WIDTH)
        table.add_column("label")
        table.add_column("score", justify="right")
        table.add_column("", width=BAR_WIDTH)
        for x in p.predictions if p else ():
            table.add_row(x.label, percent(x.score), Bar(1.0, 0.0, x.score, width=BAR_WIDTH))
        if p and not p.predictions:
            table.add_row(f"[dim]{NO_LABEL}[/dim]", "", "")
        return table


def _caption(status: LiveStatus, event: LiveEvent | None = None) -> str:
    p = status.latest
    if event is not None and event.kind == "reconnecting":
        return f"[yellow]source lost: reopening, attempt {event.attempt} of {event.attempts}[/yellow]; Ctrl-C stops"
    if event is not None and event.kind == "reconnected":
        return f"{event.message}; waiting for a full window; Ctrl-C stops"
    if p is None:
        return f"waiting for a full window ({status.frames_read} frames read)"
    smoothed = f", mean of {p.smoothed_over}" if p.smoothed_over > 1 else ""
    return f"#{p.number}: frames {p.first_frame}-{p.last_frame}{smoothed}, {p.frames_skipped} skipped; Ctrl-C stops"


def check_display() -> None:
    """--show needs a display: without one, Qt aborts the whole process (not an exception)."""
    on_linux = sys.platform.startswith("linux")
    if on_linux and not any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise DeviceError(
            "--show needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set; "
            "use --out to log the labels instead"
        )


class PreviewWindow:
    """The OpenCV window: the newest frame with the latest labels drawn on it; q or Esc closes it.

    `warn` hears of characters no installed font has, at every frame that has them.
    """

    def __init__(self, warn: Warn | None = None) -> None:
        import cv2

        check_display()
        try:
            cv2.namedWindow(WINDOW_NAME, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise DeviceError("--show needs OpenCV with GUI support (opencv-python, not -headless)") from e
        self.warn, self._shown = warn, None

    def show(self, status: LiveStatus) -> bool:
        """Draw what is new; False once the user pressed q or Esc or closed the window."""
        import cv2

        from vivit_cli.live.draw import NO_LABEL, draw_labels

        p = status.latest
        key = (status.frame.index if status.frame else None, p.number if p else None)
        if status.frame is not None and key != self._shown:
            fps = f"{status.capture_fps:.0f} fps" if status.capture_fps else ""
            title = f"{fps}  {1000 * p.latency_s:.0f} ms" if p else fps
            empty = NO_LABEL if p else None
            shown = draw_labels(status.frame.image, p.predictions if p else (), title or None, empty, self.warn)
            cv2.imshow(WINDOW_NAME, shown)
            self._shown = key
        if (cv2.waitKey(1) & 0xFF) in QUIT_KEYS:
            return False
        # Closed with the mouse: only meaningful once a frame is up (some backends report -1 before).
        return self._shown is None or cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        import cv2

        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(WINDOW_NAME)
            cv2.waitKey(1)  # lets the GUI loop process the close
