"""`vivit webcam` without a camera: files, fake captures, a silent server, fake models and fake windows."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from checkpoints import make_hf, write_hf
from click.testing import CliRunner
from videos import decode_index, ffmpeg_exe, index_frame, write_video, write_video_ffmpeg

from vivit_cli.cli import cli
from vivit_cli.errors import CaptureError, SourceError, VideoError
from vivit_cli.live import fonts, webcam
from vivit_cli.live import settings as live
from vivit_cli.live.draw import (
    BAR_COLOUR,
    LINE_WIDTH_FRACTION,
    MIN_LINE_HEIGHT_PX,
    PANEL_ALPHA,
    draw_labels,
    layout_labels,
)
from vivit_cli.live.frames import Frame, FrameClock, RingBuffer
from vivit_cli.live.settings import CaptureSettings, Source
from vivit_cli.live.text import text_width
from vivit_cli.live.webcam import LiveSettings, run_live
from vivit_cli.results import LiveEvent, Prediction

LABELS = ["waving", "running", "eating spaghetti", "juggling", "archery"]
NUM_FRAMES, STRIDE = 4, 2
SPAN = (NUM_FRAMES - 1) * STRIDE + 1  # frames one window covers
FPS = 30.0  # frames/s of the test videos
QUICK = CaptureSettings(open_timeout_s=1.0, read_timeout_s=1.0, reconnect=3, backoff_s=0.001)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = make_hf(image_size=32, num_frames=NUM_FRAMES, id2label=dict(enumerate(LABELS)), label2id=None)
    folder = write_hf(model, tmp_path_factory.mktemp("ckpt"))
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 32}})
    )
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.avi", 40, size=(64, 48), fps=FPS)


def run(*args: str):
    return CliRunner().invoke(cli, ["webcam", *args], catch_exceptions=False)


class FakeModel:
    """A ClipModel that records the frame indices it was shown; optionally slow, optionally scripted."""

    def __init__(self, delay_s: float = 0.0, probs: list[list[float]] | None = None, camera=None) -> None:
        self.num_frames = NUM_FRAMES
        self.delay_s, self.script, self.camera = delay_s, probs, camera
        self.windows: list[list[int]] = []
        self.lags: list[int] = []  # frames the camera had produced past each window's end, when scoring began

    def score(self, frames: np.ndarray) -> np.ndarray:
        assert frames.shape[0] == NUM_FRAMES and frames.dtype == np.uint8
        self.windows.append([decode_index(f) for f in frames])
        if self.camera is not None:
            self.lags.append(self.camera.produced - self.windows[-1][-1])
        time.sleep(self.delay_s)
        if self.script:
            return np.array(self.script[(len(self.windows) - 1) % len(self.script)], np.float32)
        return np.linspace(1, 2, len(LABELS), dtype=np.float32)[::-1] / 7.5

    def top_k(self, probs: np.ndarray, k: int) -> tuple[Prediction, ...]:
        order = np.argsort(-probs, kind="stable")[:k]
        return tuple(Prediction(LABELS[i], float(probs[i]), int(i)) for i in order)


class FakeCamera:
    """read()/release() like cv2.VideoCapture: grey frames that spell their index, at `fps`, then a script."""

    def __init__(self, fps: float = 200.0, frames: range | None = None, then: tuple = (False, None)) -> None:
        self.period_s, self.frames, self.then = 1.0 / fps, frames, then
        self.next = frames.start if frames is not None else 0
        self.produced = -1
        self.released = False

    def read(self):
        time.sleep(self.period_s)
        if self.frames is not None and self.next >= self.frames.stop:
            return self.then
        image = index_frame(self.next % 1024, 20, 20)  # grey: the same in BGR and RGB
        self.produced, self.next = self.next, self.next + 1
        return True, image

    def release(self) -> None:
        self.released = True


# ---- the label drawing shared with the timeline overlay ----------------------------------------------------


@pytest.mark.parametrize("title", [None, "30 fps  12 ms"])
@pytest.mark.parametrize("size", [(120, 200), (360, 640)])
def test_draw_labels_pixels(size: tuple[int, int], title: str | None) -> None:
    h, w = size
    frame = np.random.default_rng(0).integers(100, 256, (h, w, 3), dtype=np.uint8)
    before = frame.copy()
    scores = [0.8, 0.3, 0.0]
    names = ["run", "walk", "sit"]  # no descenders: text never covers a bar
    predictions = [Prediction(name, s, i) for i, (name, s) in enumerate(zip(names, scores, strict=True))]
    out = draw_labels(frame, predictions, title=title)
    assert np.array_equal(frame, before), "the input frame must not be modified"
    assert out.shape == frame.shape and out.dtype == np.uint8

    changed = np.any(out != frame, axis=2)
    ys, xs = np.nonzero(changed)
    panel_h, panel_w = ys.max() + 1, xs.max() + 1
    assert ys.min() == 0 and xs.min() == 0 and panel_h < h and panel_w < w, "a panel in the top-left corner"
    outside = np.ones((h, w), bool)
    outside[:panel_h, :panel_w] = False
    assert np.array_equal(out[outside], frame[outside]), "the rest of the frame is untouched"
    darkened = (frame[:panel_h, :panel_w] * (1 - PANEL_ALPHA)).astype(np.uint8)
    background = np.all(out[:panel_h, :panel_w] == darkened, axis=2)
    assert background.mean() > 0.5, "the panel is the frame darkened (text and bars aside)"

    bar = np.all(out == np.array(BAR_COLOUR, np.uint8), axis=2)
    rows = np.nonzero(bar.any(axis=1))[0]
    groups = np.split(rows, np.nonzero(np.diff(rows) > 1)[0] + 1)
    assert len(groups) == 2, "one bar per non-zero score, none for the score of 0"
    widths = [int(bar[g].sum(axis=1).max()) for g in groups]
    starts = {int(np.nonzero(bar[g[0]])[0][0]) for g in groups}
    assert len(starts) == 1, "bars start at the same x"
    # int() truncation: width / score is the full bar length less under 1 / score pixels
    assert abs(widths[0] / scores[0] - widths[1] / scores[1]) < 1 / scores[1] + 1e-9
    assert widths[0] > widths[1] > 0


LONG_LABEL = "passing American football (not in game)"  # the longest of Kinetics-400's labels


@pytest.mark.parametrize("label", [LONG_LABEL, "a label far too long for one line of any frame, so it wraps " * 2])
@pytest.mark.parametrize("size", [(1280, 720), (720, 1280), (360, 640), (200, 120), (48, 64)])  # (H, W)
def test_long_labels_and_their_scores_fit_inside_the_frame(size: tuple[int, int], label: str) -> None:
    h, w = size
    frame = np.zeros((h, w, 3), np.uint8)  # black: the darkened panel stays black, the text shows
    predictions = [Prediction(label, 0.834, 0), Prediction("juggling balls", 0.05, 1)]
    layout = layout_labels(w, h, predictions, title="0:00:01.5")
    out = draw_labels(frame, predictions, title="0:00:01.5")
    text = np.all(out > 0, axis=2) & ~np.all(out == np.array(BAR_COLOUR, np.uint8), axis=2)
    xs = np.nonzero(text.any(axis=0))[0]
    assert xs.max() < w - layout.pad // 2, "the text ends before the right edge: nothing is cut off"
    assert layout.line_px <= max(MIN_LINE_HEIGHT_PX, w * LINE_WIDTH_FRACTION), "sized from the width"
    scored = [t for t in layout.lines if t.bar_score is not None]
    assert len(scored) == (1 if h < 100 else 2), "every prediction that fits below the others, and the best always"
    assert all(t.text.endswith(s) for t, s in zip(scored, ("83.4%", "5.0%"), strict=False))
    words = " ".join(t.text for t in layout.lines[1:]).replace("  ", " ")
    if h >= 360 or ".." not in words:  # wrapped: the whole label
        assert words.startswith(" ".join(label.split()))
    else:  # a frame too small for that: the label cut short, the score kept
        assert words.startswith(label[:2])
    for t in scored:  # the score's own pixels: bright text at the end of its line
        label_part = t.text.rsplit("  ", 1)[0] if "  " in t.text else ""  # a score wrapped onto a line of its own
        score_x = t.x + text_width(label_part, layout.font_px)
        band = text[max(0, t.y - layout.line_px // 2) : t.y, score_x:]
        assert band.sum() > 0, f"the score of {t.text!r} is drawn"


# ---- sources and the ring buffer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,kind,target",
    [
        ("0", "camera", 0),
        (" 12 ", "camera", 12),
        ("rtsp://cam.local/live", "stream", "rtsp://cam.local/live"),
        ("HTTP://127.0.0.1:8080/x.mjpg", "stream", "HTTP://127.0.0.1:8080/x.mjpg"),
    ],
)
def test_parse_source(text: str, kind: str, target) -> None:
    assert live.parse_source(text) == Source(kind, target)


def test_parse_source_files_and_errors(clip: Path, tmp_path: Path) -> None:
    assert live.parse_source(str(clip)) == Source("file", str(clip))
    with pytest.raises(VideoError, match="no such file.*camera index"):
        live.parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(VideoError, match="not a regular file"):
        live.parse_source(str(tmp_path))
    for bad in ("", "ftp://host/x.mp4"):
        with pytest.raises(SourceError):
            live.parse_source(bad)
    assert Source("stream", "rtsp://admin:hunter2@10.0.0.5:554/s").name == "rtsp://admin:***@10.0.0.5:554/s"


def test_ring_buffer_holds_the_newest_consecutive_frames() -> None:
    ring = RingBuffer(SPAN)
    image = np.zeros((4, 4, 3), np.uint8)
    for i in range(50):
        ring.push(Frame(i, i / FPS, image))
        assert len(ring) <= SPAN
    assert ring.peak == SPAN
    window = ring.take(after=None, every=8)
    assert [f.index for f in window] == list(range(50 - SPAN, 50))
    assert ring.take(after=45, every=8) is None and ring.take(after=41, every=8) is not None
    ring.push(Frame(50, 0.0, image, segment=1))  # a reconnect: the old frames must not join a window
    assert len(ring) == 1 and ring.take(None, 1) is None
    ring.push(Frame(51, 0.0, np.zeros((8, 8, 3), np.uint8), segment=1))  # a new frame size
    assert len(ring) == 1


def test_frame_clock_uses_the_sources_own_times_where_plausible() -> None:
    clock = FrameClock()
    # A burst at connect: 15 frames within 10 ms of arrival, 33.3 ms apart by the stream's own clock.
    burst = [clock(1.0 + i / 1500, i * 1000 / FPS) for i in range(15)]
    assert burst[0] == 1.0 and burst[-1] == pytest.approx(1.0 + 14 / FPS)
    assert clock(1.5, 15 * 1000 / FPS) == pytest.approx(1.5) and clock.own
    assert clock(1.6, 0.0) == 1.6 and not clock.own, "a jump back: arrival time, anchoring the frames after it"
    assert clock(1.61, 1000 / FPS) == pytest.approx(1.6 + 1 / FPS) and clock.own
    assert clock(1.7, 1e6) == 1.7 and not clock.own, "a jump ahead past MAX_STREAM_STEP_S"
    clock.restart()  # reopened: the new stream's clock starts at 0 again, later than the old one
    assert clock(1.65, 0.0) > 1.7, "times never go back, also across a reconnect"
    no_times = FrameClock()  # no timestamps at all (MJPEG over HTTP, a fake capture): arrival times
    assert [no_times(t, float("nan")) for t in (0.5, 0.6)] == [0.5, 0.6]
    assert [no_times(t, 0.0) for t in (0.7, 0.8)] == [0.7, 0.8]


# ---- a file as the source --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_fast_file_logs_three_rows_with_their_spans(checkpoint: Path, clip: Path, tmp_path: Path, fmt: str) -> None:
    log = tmp_path / f"log.{fmt}"
    result = run(
        "--source",
        str(clip),
        "--model",
        str(checkpoint),
        "--fast",
        "--max-predictions",
        "3",
        "--every",
        "5",
        "--out",
        str(log),
        "--top-k",
        "3",
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    if fmt == "jsonl":
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        tops = [r["predictions"] for r in rows]
    else:
        rows = list(csv.DictReader(log.open()))
        tops = [r["top_labels"].split("|") for r in rows]
    assert len(rows) == 3 and all(len(t) == 3 for t in tops)
    assert [int(r["prediction"]) for r in rows] == [1, 2, 3]
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    spans = [(int(r["first_frame"]), int(r["last_frame"])) for r in rows]
    assert spans == [(0, SPAN - 1), (5, SPAN + 4), (10, SPAN + 9)]
    for r, (first, last) in zip(rows, spans, strict=True):
        assert float(r["first_s"]) == pytest.approx(first / FPS, abs=1e-3)
        assert float(r["last_s"]) == pytest.approx(last / FPS, abs=1e-3)
    assert "3 predictions" in result.stderr


def test_out_dash_is_pure_jsonl_on_stdout(checkpoint: Path, clip: Path) -> None:
    result = run("-s", str(clip), "-m", str(checkpoint), "--fast", "-n", "2", "--out", "-")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prediction"] for r in rows] == [1, 2]
    assert rows[0]["predictions"][0]["score"] >= rows[0]["predictions"][-1]["score"]


def test_the_model_sees_every_stride_th_frame_of_the_window_in_rgb(clip: Path) -> None:
    model = FakeModel()
    summary = run_live(live.parse_source(str(clip)), model, LiveSettings(stride=STRIDE, every=10, fast=True))
    assert summary.reason == "end" and summary.frames_read == 40
    ends = [SPAN - 1 + 10 * j for j in range(4)]  # 6, 16, 26, 36: every window `every` frames after the last
    assert model.windows == [list(range(e - SPAN + 1, e + 1, STRIDE)) for e in ends]


def test_smoothing_and_threshold(clip: Path) -> None:
    script = [[0.7, 0.2, 0.1, 0, 0], [0.1, 0.7, 0.2, 0, 0], [0.1, 0.1, 0.8, 0, 0]]
    got: list[webcam.LivePrediction] = []
    settings = LiveSettings(stride=STRIDE, every=5, smooth=2, top_k=3, threshold=0.3, max_predictions=3, fast=True)
    run_live(live.parse_source(str(clip)), FakeModel(probs=script), settings, on_prediction=got.append)
    assert [p.smoothed_over for p in got] == [1, 2, 2]
    # mean of the last two: [0.4, 0.45, 0.15] then [0.1, 0.4, 0.5]; 0.15 and 0.1 fall under the threshold
    assert [[(x.label, round(x.score, 4)) for x in p.predictions] for p in got] == [
        [("waving", 0.7)],
        [("running", 0.45), ("waving", 0.4)],
        [("eating spaghetti", 0.5), ("running", 0.4)],
    ]


def test_a_file_plays_at_its_own_rate_and_its_end_is_a_normal_end(checkpoint: Path, tmp_path: Path) -> None:
    short = write_video(tmp_path / "short.avi", 24, size=(64, 48), fps=FPS)  # 0.8 s
    log = tmp_path / "log.jsonl"
    started = time.monotonic()
    result = run("-s", str(short), "-m", str(checkpoint), "--every", "4", "--out", str(log))
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 0.7 * 24 / FPS
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert rows and all(r["last_frame"] - r["first_frame"] == SPAN - 1 for r in rows)
    ends = [r["last_frame"] for r in rows]
    assert all(b - a >= 4 for a, b in zip(ends, ends[1:], strict=False)) and ends[-1] <= 23
    assert "stopped: end" in result.stderr


def test_a_file_shorter_than_one_window(checkpoint: Path, tmp_path: Path) -> None:
    tiny = write_video(tmp_path / "tiny.avi", SPAN - 2, size=(64, 48))
    result = run("-s", str(tiny), "-m", str(checkpoint), "--fast")
    assert result.exit_code == VideoError.exit_code
    assert "before one full window" in result.stderr


# ---- live: a fast camera and a slow model -----------------------------------------------------------------------


def test_a_slow_model_drops_frames_and_scores_the_newest() -> None:
    camera = FakeCamera(fps=200.0)
    model = FakeModel(delay_s=0.08, camera=camera)
    summary = run_live(
        Source("camera", 0), model, LiveSettings(stride=STRIDE, every=1, max_predictions=5), open_source=lambda: camera
    )
    assert summary.predictions == 5 and camera.released
    assert summary.max_buffered <= SPAN, "the ring buffer never holds more than one window"
    for window in model.windows:
        assert np.all(np.diff(window) == STRIDE), "a window is consecutive frames, stride apart"
    ends = [w[-1] for w in model.windows]
    assert min(np.diff(ends)) > 4, "frames that came while the model was busy were dropped, not queued"
    assert summary.frames_skipped > 0 and summary.frames_read > 5 * SPAN
    # Queued frames would fall further behind with every prediction; dropped ones keep each window current.
    assert max(model.lags) <= 10, model.lags


def test_a_stream_that_drops_is_reopened_and_no_window_spans_a_reconnect() -> None:
    white = np.full((20, 20, 3), 255, np.uint8)  # would decode as 1023: a placeholder must never be scored
    captures = [
        FakeCamera(1000.0, range(0, 10), then=(True, None)),
        FakeCamera(1000.0, range(10, 20), then=(False, white)),
        FakeCamera(1000.0, range(20, 30), then=(False, None)),
    ]
    pending = list(captures)

    def reopen():
        if not pending:
            raise CaptureError("no answer")
        return pending.pop(0)

    model = FakeModel(delay_s=0.002)
    events: list[LiveEvent] = []
    with pytest.raises(CaptureError, match="stopped sending frames; 3 reconnect"):
        run_live(
            Source("stream", "rtsp://example/live"),
            model,
            LiveSettings(stride=STRIDE, every=1),
            QUICK,
            open_source=reopen,
            on_event=events.append,
        )
    assert [(e.kind, e.attempt) for e in events] == [
        *[("reconnecting", 1), ("reconnected", 1)] * 2,  # lost twice, back at the first attempt each time
        ("reconnecting", 1),
        ("reconnecting", 2),
        ("reconnecting", 3),
        ("failed", 3),
    ]
    assert "reopening (attempt 2 of 3)" in events[5].message and "no answer" in events[5].message
    assert all(c.released for c in captures)
    assert model.windows, "windows were scored between the drops"
    for window in model.windows:
        assert 1023 not in window
        assert window[0] // 10 == window[-1] // 10, f"window {window} spans a reconnect"


def test_duration_stops_a_camera() -> None:
    camera = FakeCamera(fps=100.0)
    started = time.monotonic()
    summary = run_live(Source("camera", 0), FakeModel(), LiveSettings(duration_s=0.3), open_source=lambda: camera)
    assert summary.reason == "duration" and 0.3 <= time.monotonic() - started < 3
    assert camera.released


def test_keyboard_interrupt_inside_the_loop_releases_the_capture() -> None:
    camera = FakeCamera(fps=200.0)

    def interrupt(p: webcam.LivePrediction) -> None:
        if p.number == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_live(
            Source("camera", 0), FakeModel(), LiveSettings(every=2), on_prediction=interrupt, open_source=lambda: camera
        )
    assert camera.released
    assert not [t for t in threading.enumerate() if t.name.startswith("vivit-")]


# ---- errors: one line and an exit code ---------------------------------------------------------------------------


def test_no_camera_at_that_index(checkpoint: Path) -> None:
    started = time.monotonic()
    result = run("--source", "99", "--model", str(checkpoint))
    assert result.exit_code == CaptureError.exit_code == 5
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: no camera at index 99")
    assert time.monotonic() - started < 10


@pytest.fixture()
def silent_server():
    """A TCP port on 127.0.0.1 that accepts connections and never says a word."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


@pytest.mark.parametrize("scheme", ["http", "rtsp"])
def test_a_stream_that_does_not_answer_times_out(checkpoint: Path, silent_server: int, scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{silent_server}/live"
    started = time.monotonic()
    result = run("--source", url, "--model", str(checkpoint), "--open-timeout", "1")
    assert time.monotonic() - started < 8
    assert result.exit_code == CaptureError.exit_code
    assert "did not answer within 1 s" in result.stderr and "Traceback" not in result.stderr


class StreamServer:
    """FFmpeg serving a clip in a loop over HTTP (MPEG-TS, at its own rate) on 127.0.0.1: a live stream to drop."""

    def __init__(self, clip: Path) -> None:
        with socket.create_server(("127.0.0.1", 0)) as probe:
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/live.ts"
        self.clip, self.proc = clip, None

    def start(self) -> None:
        """Listen for one client; skips the test where this ffmpeg cannot."""
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(self.clip)]
        cmd += ["-c", "copy", "-f", "mpegts", "-listen", "1", self.url]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.skip("ffmpeg cannot serve HTTP here (-listen 1)")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def _listening(self) -> bool:
        """Whether the port is listening, read from /proc (a test connection would be the server's one client)."""
        try:
            table = Path("/proc/net/tcp").read_text()
        except OSError:
            time.sleep(1.0)  # no /proc: ffmpeg opens its output within a second
            return True
        return any(f"0100007F:{self.port:04X} 00000000:0000 0A" in line for line in table.splitlines())


def test_a_stream_server_that_restarts_is_reopened_and_said_so(checkpoint: Path, tmp_path: Path) -> None:
    clip = write_video_ffmpeg(tmp_path / "clip.ts", 60, (64, 48), codec=("-c:v", "mpeg2video", "-q:v", "2"))
    server = StreamServer(clip)
    server.start()
    log = tmp_path / "log.jsonl"
    down_s = 3.0

    def drop_and_restart() -> None:
        """Kill the server once predictions flow; start it again `down_s` later."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if log.exists() and log.read_text().count('"event": "prediction"') >= 3:  # rows, not their keys
                server.kill()
                time.sleep(down_s)
                server.start()
                return
            time.sleep(0.02)

    controller = threading.Thread(target=drop_and_restart, daemon=True)
    controller.start()
    try:
        started = time.monotonic()
        result = run(
            *("--source", server.url, "--model", str(checkpoint), "--every", "4", "--out", str(log)),
            *("--max-predictions", "14", "--duration", "30", "--open-timeout", "3", "--read-timeout", "3"),
        )
        controller.join(5)
    finally:
        server.kill()
    assert result.exit_code == 0, result.stderr
    assert "stopped: max-predictions" in result.stderr and time.monotonic() - started < 30
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    events = [(r["event"], r["attempt"]) for r in rows if r["event"] != "prediction"]
    back = events[-1][1]
    assert events == [*(("reconnecting", k) for k in range(1, back + 1)), ("reconnected", back)], events
    assert 2 <= back <= 4, "0.5, 1 and 2 s pauses: back at the third attempt, 3.5 s after the drop"
    assert f"{server.url}: stopped sending frames; reopening (attempt 1 of 5) in 0.5 s" in result.stderr
    assert f"{server.url}: reconnected after" in result.stderr
    kinds = [r["event"] for r in rows]
    after = [r for r in rows[kinds.index("reconnected") :] if r["event"] == "prediction"]
    before = [r for r in rows[: kinds.index("reconnecting")] if r["event"] == "prediction"]
    assert len(before) >= 3 and len(after) >= 3, "predictions resume after the reconnect"
    # The stream's own timestamps, not the burst's arrival times: every window spans (SPAN - 1) frames at 30 fps.
    for r in before + after:
        assert r["last_s"] - r["first_s"] == pytest.approx((SPAN - 1) / FPS, abs=0.002), r
    assert after[0]["first_s"] > before[-1]["last_s"] + 2.0, "the time the stream was down"


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["--source", "0", "--fast"], 2, "--fast"),
        (["--source", "{clip}", "--out", "log.txt"], 2, ".jsonl"),
        (["--source", "nope.mp4"], 4, "no such file"),
        (["--source", "ftp://host/x"], 2, "unsupported URL scheme"),
    ],
)
def test_usage_errors_are_one_line(checkpoint: Path, clip: Path, args: list[str], code: int, needle: str) -> None:
    result = run(*[a.format(clip=clip) for a in args], "--model", str(checkpoint))
    assert result.exit_code == code, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_leaves_the_log_whole(checkpoint: Path, tmp_path: Path) -> None:
    long = write_video(tmp_path / "long.avi", 300, size=(64, 48), fps=FPS)  # 10 s at its own rate
    log = tmp_path / "log.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vivit_cli",
            "webcam",
            "--source",
            str(long),
            "--model",
            str(checkpoint),
            "--every",
            "4",
            "--out",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().count("\n") >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Interrupted" in stderr and "Traceback" not in stderr
    text = log.read_text()
    assert text.endswith("\n")
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) >= 2 and [r["prediction"] for r in rows] == list(range(1, len(rows) + 1))


# ---- the window, with OpenCV's GUI calls faked --------------------------------------------------------------------


def test_show_without_a_display_is_a_clean_error(checkpoint: Path, clip: Path, monkeypatch) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is for Linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    result = run("-s", str(clip), "-m", str(checkpoint), "--fast", "--show")
    assert result.exit_code == 2 and "--show needs a display" in result.stderr


def fake_window(monkeypatch, keys, shown: list[np.ndarray]) -> None:
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda name, image: shown.append(image))
    monkeypatch.setattr(cv2, "waitKey", lambda ms: next(keys))
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)


def test_show_draws_the_labels_and_q_quits(checkpoint: Path, clip: Path, monkeypatch) -> None:
    shown: list[np.ndarray] = []
    fake_window(monkeypatch, itertools.chain([-1] * 12, [ord("q")], itertools.repeat(-1)), shown)
    result = run("-s", str(clip), "-m", str(checkpoint), "--fast", "--every", "1", "--show")
    assert result.exit_code == 0, result.stderr
    assert "stopped: quit" in result.stderr
    assert len(shown) == 13  # fast mode ticks once per frame: frames 0 to 12, then q
    labelled = shown[-1]
    assert labelled.shape == (48, 64, 3)
    assert np.all(labelled == np.array(BAR_COLOUR, np.uint8), axis=2).any(), "the labels' bars are drawn"


def test_the_window_draws_labels_in_any_script(monkeypatch) -> None:
    from vivit_cli.live.view import PreviewWindow

    if fonts.book().pick("caféΕλληνικά").missing:
        pytest.skip("no font here has Latin and Greek")
    shown: list[np.ndarray] = []
    fake_window(monkeypatch, itertools.repeat(-1), shown)
    said: list[str] = []
    window = PreviewWindow(warn=said.append)
    frame = Frame(0, 0.0, np.zeros((360, 640, 3), np.uint8))
    for number, first in enumerate(("café", "cafe")):
        predictions = (Prediction(first, 0.75, 3), Prediction("Ελληνικά", 0.125, 0))
        p = webcam.LivePrediction(number, time.time(), 0, 6, 0.0, 0.2, predictions, 0.042, 1, 0)
        assert window.show(webcam.LiveStatus(frame, p, 30.0, 7))
    accented, plain = shown
    layout = layout_labels(640, 360, predictions, title="30 fps  42 ms")
    for line in layout.lines:
        box = accented[line.y - layout.line_px // 2 : line.y, line.x : line.x + text_width(line.text, layout.font_px)]
        assert (box.max(axis=2) > 200).sum() > 20, f"{line.text!r} is drawn"
    assert not np.array_equal(accented, plain), "café's accent is drawn"
    assert said == []


def test_show_says_once_what_no_font_can_draw(tmp_path: Path, clip: Path, monkeypatch) -> None:
    if not fonts.book().pick("跳舞").missing:
        pytest.skip("a CJK font is installed here")
    labels = ["跳舞", "唱歌", "游泳", "跑步", "吃饭"]  # whichever leads, no installed font draws it
    folder = write_hf(make_hf(image_size=32, num_frames=NUM_FRAMES, id2label=dict(enumerate(labels))), tmp_path)
    shown: list[np.ndarray] = []
    fake_window(monkeypatch, itertools.chain([-1] * 12, [ord("q")], itertools.repeat(-1)), shown)
    result = run("-s", str(clip), "-m", str(folder), "--fast", "--every", "1", "--show")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "Warning:" in line]
    assert len(warnings) == 1 and "CJK" in warnings[0], result.stderr  # not once per frame
    assert len(shown) == 13 and np.all(shown[-1] == np.array(BAR_COLOUR, np.uint8), axis=2).any()


def test_terminal_panel_shows_the_top_k_the_capture_rate_and_the_latency() -> None:
    import io

    from rich.console import Console

    from vivit_cli.live.view import TerminalView

    p = webcam.LivePrediction(
        3,
        time.time(),
        8,
        14,
        0.27,
        0.47,
        (Prediction("juggling", 0.75, 3), Prediction("waving", 0.125, 0)),
        0.042,
        2,
        5,
    )
    status = webcam.LiveStatus(None, p, 29.97, 20)
    out = io.StringIO()
    Console(file=out, width=100).print(TerminalView(None, "live", "camera 0").panel(status))
    text = out.getvalue()
    for needle in ("camera 0", "30.0 fps", "42 ms", "juggling", "75.0%", "waving", "12.5%", "frames 8-14", "5 skipped"):
        assert needle in text, (needle, text)
    lines = io.StringIO()
    TerminalView(Console(file=lines, width=40), "lines", "camera 0").prediction(p)
    assert lines.getvalue().count("\n") == 1 and "juggling 75.0%" in lines.getvalue()


def test_terminal_panel_says_the_source_is_lost_until_a_prediction_follows() -> None:
    import io

    from rich.console import Console

    from vivit_cli.live.view import TerminalView

    screen = io.StringIO()
    view = TerminalView(Console(file=screen, width=100), "live", "rtsp://cam/s")
    status = webcam.LiveStatus(None, None, 30.0, 20)
    view.tick(status)
    lost = LiveEvent("reconnecting", time.time(), 2, 5, "attempt 1 failed: refused; reopening (attempt 2 of 5) in 1 s")
    view.event(lost)
    view.prediction(webcam.LivePrediction(1, time.time(), 0, 6, 0.0, 0.2, (), 0.01, 1, 0))  # scored before the loss
    panel = io.StringIO()
    Console(file=panel, width=100).print(view.panel(status))
    assert "rtsp://cam/s: attempt 1 failed: refused; reopening (attempt 2 of 5) in 1 s" in screen.getvalue()
    assert "source lost: reopening, attempt 2 of 5" in panel.getvalue()
    view.event(LiveEvent("reconnected", time.time(), 2, 5, "reconnected after 1.6 s (attempt 2 of 5)"))
    view.prediction(webcam.LivePrediction(2, time.time(), 7, 13, 3.0, 3.2, (), 0.01, 1, 0))
    panel = io.StringIO()
    Console(file=panel, width=100).print(view.panel(status))
    assert "lost" not in panel.getvalue() and "reconnected" not in panel.getvalue()
    quiet = io.StringIO()
    TerminalView(Console(file=quiet), "off", "rtsp://cam/s").event(lost)
    assert quiet.getvalue() == "", "vivit -q: the log has it, stderr does not"


def test_a_source_that_cannot_be_opened_leaves_an_existing_log_as_it_was(checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.avi"
    bad.write_text("not a video\n")
    log = tmp_path / "earlier.csv"
    log.write_text("rows of an earlier run\n")
    result = run("--source", str(bad), "--model", str(checkpoint), "--fast", "--out", str(log))
    assert result.exit_code == 4 and "Error:" in result.stderr
    assert log.read_text() == "rows of an earlier run\n"
