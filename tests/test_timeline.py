"""`vivit timeline`: windows over a video whose colour changes at known times, read by a model that sees colour."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import weakref
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.checkpoints import make_hf, write_hf
from tests.videos import decode_all, rotate_video, write_video, write_video_ffmpeg
from vivit_cli.cli import cli
from vivit_cli.live import draw, fonts, plot, timeline
from vivit_cli.live.timeline import Window, merge_segments
from vivit_cli.pipeline import load_model
from vivit_cli.results import Prediction
from vivit_cli.video import decode
from vivit_cli.video.sampling import Views
from vivit_cli.writers.live import TIMELINE_COLUMNS as CSV_COLUMNS

COLOURS = {"red": (230, 30, 30), "blue": (30, 30, 230), "green": (30, 200, 30), "white": (235, 235, 235)}
LABELS = list(COLOURS)
FPS = 10.0  # frames/s of the test videos
CHANGE_S = 3.0  # red before, blue after
# Attention value and output projections, as transformers names them (>= 4.50, and before).
IDENTITY_WEIGHTS = ("v_proj.weight", "o_proj.weight", "attention.value.weight", "attention.output.dense.weight")
GAIN = 2.0  # logit scale of the colour head: pure colours score above 0.9


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer ViViT whose weights are set so that it labels a clip by its mean colour.

    Patch embedding: token channels 0-2 are a tubelet's mean R, G, B. Attention: zero queries and keys attend
    uniformly, identity values and output put the mean of the normalised tokens into the CLS token. The MLP is
    off. The classifier's rows are the normalised colours: each logit is a cosine between clip and colour.
    """
    model = make_hf(
        image_size=32,
        num_frames=4,
        num_hidden_layers=1,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id=None,
    )
    hidden = model.config.hidden_size
    params = dict(model.named_parameters())
    with torch.no_grad():
        for p in params.values():
            p.zero_()
        proj = params["vivit.embeddings.patch_embeddings.projection.weight"]  # (D, 3, t, h, w)
        for c in range(3):
            proj[c, c] = 1.0 / proj[c, c].numel()
        for name, p in params.items():
            if name.endswith(IDENTITY_WEIGHTS):
                p.copy_(torch.eye(hidden))
            elif "layernorm" in name and name.endswith("weight"):
                p.fill_(1.0)
        protos = torch.zeros(len(LABELS), hidden)
        protos[:, :3] = torch.tensor(list(COLOURS.values())) / 127.5 - 1
        protos = torch.layer_norm(protos, (hidden,))
        params["classifier.weight"].copy_(GAIN * protos / protos.norm(dim=1, keepdim=True))
    folder = write_hf(model, tmp_path_factory.mktemp("colour-ckpt"))
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "do_normalize": False})
    )
    return folder


def scene(change_frame: int, size: tuple[int, int] = (32, 32)):
    """A frame function: red up to `change_frame`, blue from it on."""

    def frame_fn(i: int, w: int, h: int) -> np.ndarray:
        return np.full((h, w, 3), COLOURS["red"] if i < change_frame else COLOURS["blue"], np.uint8)

    return frame_fn


def make_video(path: Path, frames: int, change_frame: int = round(CHANGE_S * FPS), size=(32, 32)) -> Path:
    return write_video(path, frames, size=size, fourcc="MJPG", fps=FPS, frame_fn=scene(change_frame, size))


@pytest.fixture(scope="module")
def two_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s red then 3 s blue at 10 frames/s."""
    return make_video(tmp_path_factory.mktemp("v") / "two.avi", 60)


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("every,stride,crops", [(0.5, 2, "1"), (1.0, 1, "3"), (0.3, 2, "1")])
def test_segments_change_at_the_scene_change(
    checkpoint: Path, two_scenes: Path, tmp_path: Path, every, stride, crops
) -> None:
    out = tmp_path / "t.csv"
    result = run(
        "timeline",
        str(two_scenes),
        "-m",
        str(checkpoint),
        "--every",
        str(every),
        "--stride",
        str(stride),
        "--crops",
        crops,
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert "red" in result.stdout and "blue" in result.stdout  # the table
    rows = csv_rows(out.read_text())
    assert tuple(rows[0]) == CSV_COLUMNS
    segments = [r for r in rows if r["kind"] == "segment"]
    windows = [r for r in rows if r["kind"] == "window"]
    assert [s["label"] for s in segments] == ["red", "blue"]
    assert float(segments[0]["start_s"]) == 0.0 and float(segments[1]["end_s"]) == pytest.approx(6.0, abs=1e-3)
    assert float(segments[0]["end_s"]) == float(segments[1]["start_s"]) == pytest.approx(CHANGE_S, abs=every)
    assert all(float(s["score"]) > 0.9 for s in segments)
    # A window every `every` seconds of timestamps, each `num_frames` frames `stride` apart.
    starts = [float(w["start_s"]) for w in windows]
    assert starts == pytest.approx([round(i * every * FPS) / FPS for i in range(len(starts))], abs=1e-3)
    assert len(windows) == pytest.approx(6.0 / every, abs=1)
    assert int(windows[1]["last_frame"]) - int(windows[1]["first_frame"]) == 3 * stride
    assert {w["segment"] for w in windows} == {"0", "1"}
    assert all(len(w["top_labels"].split("|")) == 4 for w in windows)


def test_json_and_jsonl_parse_and_link_windows_to_segments(checkpoint: Path, two_scenes: Path, tmp_path: Path):
    out = tmp_path / "t.json"
    assert run("timeline", str(two_scenes), "-m", str(checkpoint), "--every", "0.5", "-o", str(out)).exit_code == 0
    records = json.loads(out.read_text())
    result = run("-q", "timeline", str(two_scenes), "-m", str(checkpoint), "--every", "0.5", "-o", "-", "-k", "2")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # stdout is pure JSONL; the table went to stderr
    assert "blue" in result.stderr
    assert [r["kind"] for r in lines] == [r["kind"] for r in records]
    assert {k for r in records for k in r} == {k for k in CSV_COLUMNS if not k.startswith("top_")} | {"predictions"}
    for seg in (r for r in records if r["kind"] == "segment"):
        members = [r for r in records if r["kind"] == "window" and r["segment"] == seg["index"]]
        assert [m["index"] for m in members] == list(range(seg["first_window"], seg["last_window"] + 1))
        assert all(m["label"] == seg["label"] for m in members)
    assert all(len(r["predictions"]) == 2 for r in lines if r["kind"] == "window")


def test_plot_has_the_layout_size_and_segment_colours(checkpoint: Path, two_scenes: Path, tmp_path: Path) -> None:
    png = tmp_path / "t.png"
    result = run("-q", "timeline", str(two_scenes), "-m", str(checkpoint), "--every", "0.5", "--plot", str(png))
    assert result.exit_code == 0, result.stderr
    img = cv2.imread(str(png))
    one_legend_row = (
        plot.TITLE_H_PX
        + plot.STRIP_H_PX
        + plot.GAP_PX
        + plot.CHART_H_PX
        + plot.AXIS_H_PX
        + plot.GAP_PX
        + plot.LEGEND_ROW_H_PX
        + plot.GAP_PX
    )
    assert img.shape == (one_legend_row, plot.WIDTH_PX, 3)
    # Strip colours: the first label by time (red, 3.1 s) gets the first palette colour, blue the second.
    y = plot.TITLE_H_PX + plot.STRIP_H_PX - 4
    assert tuple(img[y, plot.MARGIN_LEFT_PX + 2]) == plot.PALETTE[0]
    assert tuple(img[y, plot.WIDTH_PX - plot.MARGIN_RIGHT_PX - 2]) == plot.PALETTE[1]


@pytest.mark.parametrize("encoder,size", [("h264", (32, 32)), ("mp4v", (32, 32)), ("h264", (33, 25))])
def test_overlay_keeps_every_frame(checkpoint: Path, tmp_path: Path, monkeypatch, encoder, size) -> None:
    if encoder == "h264":
        pytest.importorskip("av")
    else:
        monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError: the fallback
    src = write_video_ffmpeg(tmp_path / "in.mkv", 25, size, fps=FPS, frame_fn=scene(12, size))
    out = tmp_path / "overlay.mp4"
    result = run("timeline", str(src), "-m", str(checkpoint), "--overlay", str(out))
    assert result.exit_code == 0, result.stderr
    frames = decode_all(out)
    even = (size[1] + size[1] % 2, size[0] + size[0] % 2)
    assert len(frames) == 25 and all(f.shape[:2] == even for f in frames)
    # OpenCV names the codec, not the sample entry: "h264" for H.264, "FMP4" for MPEG-4 Part 2.
    assert _fourcc(out).lower() in ({"h264", "avc1"} if encoder == "h264" else {"fmp4", "mp4v"})
    assert ("mp4v" in result.stderr) == (encoder == "mp4v")  # the note
    assert ("padded" in result.stderr) == (size[0] % 2 == 1)
    assert not np.array_equal(frames[0], decode_all(src)[0][: even[0], : even[1]])  # the labels are drawn


def with_sound(path: Path, seconds: float, fps: float, size: tuple[int, int], codec: str, rate: int = 22050) -> Path:
    """A video (MPEG-4 Part 2, grey frames) with a 440 Hz tone as its audio track (`codec`), made with PyAV."""
    import av

    width, height = size
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=round(fps))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream(codec, rate=rate)
        audio.layout = "mono"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), 8 * i, np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        for start in range(0, len(tone), 1024):
            chunk = tone[start : start + 1024][None]  # (channels, samples)
            sound = av.AudioFrame.from_ndarray(chunk if codec == "aac" else (chunk * 32767).astype(np.int16),
                                               format="fltp" if codec == "aac" else "s16", layout="mono")  # fmt: skip
            sound.sample_rate, sound.pts = rate, start
            container.mux(audio.encode(sound))
        container.mux(video.encode())
        container.mux(audio.encode())
    return path


@pytest.mark.parametrize("name, codec", [("talk.mp4", "aac"), ("talk.mkv", "pcm_s16le")])
def test_overlay_keeps_the_sound(checkpoint: Path, tmp_path: Path, name: str, codec: str) -> None:
    av = pytest.importorskip("av")
    src = with_sound(tmp_path / name, 2.0, FPS, (32, 32), codec)
    out = tmp_path / "overlay.mp4"
    result = run("timeline", str(src), "-m", str(checkpoint), "--overlay", str(out))
    assert result.exit_code == 0, result.stderr
    assert "(h264 + aac, " in result.stderr
    with av.open(str(out)) as container:
        (audio,) = container.streams.audio
        samples = sum(frame.samples for frame in container.decode(audio))
        assert audio.codec_context.name == "aac" and audio.rate == 22050
    assert samples >= 2.0 * 22050  # all of it (AAC adds a little at the ends)
    assert len(decode_all(out)) == round(2 * FPS)  # and every picture


def test_overlay_of_a_portrait_video_keeps_its_labels_inside(tmp_path: Path) -> None:
    """A landscape file with rotation metadata is portrait upright: labels sized to its width, scores inside."""
    long_label = "passing American football (not in game)"
    model = make_hf(image_size=32, num_frames=4, id2label=dict(enumerate([long_label, "b", "c", "d", "e"])))
    with torch.no_grad():
        model.classifier.bias[0] = 20.0  # the long label wins every window
    folder = write_hf(model, tmp_path / "ckpt")
    plain = scene(99, (640, 360))  # red all along
    src = write_video_ffmpeg(tmp_path / "land.mkv", 8, (640, 360), fps=FPS, frame_fn=plain)
    portrait = rotate_video(src, tmp_path / "portrait.mkv", 90)
    out = tmp_path / "overlay.mp4"
    result = run("timeline", str(portrait), "-m", str(folder), "--overlay", str(out))
    assert result.exit_code == 0, result.stderr
    frames = decode_all(out)
    assert len(frames) == 8 and frames[0].shape == (640, 360, 3), "upright: portrait"
    layout = draw.layout_labels(360, 640, [Prediction(long_label, 1.0, 0)] * 3, title="0:00.0")
    assert any(line.text.endswith("100.0%") for line in layout.lines)
    text = np.all(frames[4] > 200, axis=2)  # white text on red (230, 30, 30) and on the dark panel
    rows, cols = np.nonzero(text)
    assert rows.max() < layout.panel_h and cols.max() < 360 - layout.pad // 2, "no text cut at the right edge"


def _fourcc(path: Path) -> str:
    cap = cv2.VideoCapture(str(path))
    try:
        code = int(cap.get(cv2.CAP_PROP_FOURCC))
    finally:
        cap.release()
    return code.to_bytes(4, "little").decode()


# (frames, every_s, expected windows' frame indices): 4 frames 2 apart per window, 10 frames/s.
END_CASES = [
    (
        61,
        0.5,
        [(0, 2, 4, 6)] + [(5 * i, 5 * i + 2, 5 * i + 4, 5 * i + 6) for i in range(1, 11)] + [(55, 57, 59, 59)],
    ),  # not a multiple of the step: the first open window holds the last frame it has
    (20, 0.7, [(0, 2, 4, 6), (7, 9, 11, 13), (14, 16, 18, 18)]),
    (7, 0.5, [(0, 2, 4, 6)]),  # exactly one window long
    (5, 0.5, [(0, 2, 4, 4)]),  # shorter than one window: as classify does, the last frame is held
    (1, 1.0, [(0, 0, 0, 0)]),
]


@pytest.mark.parametrize("frames,every,expected", END_CASES)
def test_windows_at_the_end_of_the_video(checkpoint: Path, tmp_path: Path, frames, every, expected) -> None:
    path = make_video(tmp_path / "v.avi", frames)
    tl = timeline.scan(load_model(str(checkpoint)), path, Views(stride=2), every_s=every, batch_size=3)
    assert [w.frame_indices for w in tl.windows] == expected
    assert tl.windows[-1].end_s == pytest.approx(frames / FPS)
    assert tl.cells[0][0] == 0.0 and tl.cells[-1][1] == pytest.approx(frames / FPS)
    assert all(a[1] == b[0] for a, b in zip(tl.cells, tl.cells[1:], strict=False))  # cells tile the video
    assert tl.segments[0].start_s == 0.0 and tl.segments[-1].end_s == pytest.approx(frames / FPS)


@pytest.mark.parametrize(
    "frames,every,expected",
    [*END_CASES, (61, 0.05, [None] * 55), (61, 0.15, [None] * 37), (0, 1.0, [])],  # steps under 2 frames, none
)
def test_window_count_is_known_before_the_scan(frames: int, every: float, expected: list) -> None:
    assert timeline.window_count(frames, FPS, every, span=7) == len(expected)


@pytest.mark.parametrize("frames,every", [(61, 0.05), (61, 0.15), (61, 0.7)])
def test_window_count_agrees_with_the_scan(checkpoint: Path, tmp_path: Path, frames: int, every: float) -> None:
    path = make_video(tmp_path / "v.avi", frames)
    progress: list[tuple[int, int]] = []
    tl = timeline.scan(
        load_model(str(checkpoint)),
        path,
        Views(stride=2),
        every_s=every,
        batch_size=8,
        progress=lambda *a: progress.append(a),
    )
    expected = timeline.window_count(frames, FPS, every, span=7)
    assert len(tl.windows) == expected
    # Counted in windows scored, a batch at a time, out of the windows the video has.
    assert progress == [(min(n, expected), expected) for n in range(8, expected + 8, 8)] + [(expected, expected)]


def test_progress_says_how_many_windows_and_counts_them(checkpoint: Path, two_scenes: Path, tmp_path: Path) -> None:
    result = run("timeline", str(two_scenes), "-m", str(checkpoint), "--every", "0.5", "-o", str(tmp_path / "t.csv"))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("Scoring 12 windows of 7 frames") == 1
    assert "/12 [" in result.stderr and "window/s" in result.stderr and "frame/s" not in result.stderr


@pytest.mark.parametrize("bad", ["missing.mp4", "text.mp4"])
def test_a_bad_video_gives_the_error_alone(tmp_path: Path, bad: str) -> None:
    (tmp_path / "text.mp4").write_text("not a video")
    result = run("timeline", str(tmp_path / bad), "-m", str(tmp_path / "no-such-model"))
    assert result.exit_code == 4  # the video is checked before the model, which does not exist
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr


def test_variable_frame_rate_uses_timestamps(checkpoint: Path, tmp_path: Path) -> None:
    """10 frames/s for 3 s, then 20 frames/s for 2 s: windows start every 0.5 s of time, not of frames."""
    # Keep every other frame of a 20 frames/s source for its first 3 s: the file's timestamps say when.
    path = write_video_ffmpeg(
        tmp_path / "vfr.mkv",
        100,
        (32, 32),
        fps=20,
        frame_fn=scene(60),
        codec=("-vf", "select='gte(n,60)+not(mod(n,2))'", "-fps_mode", "vfr", "-c:v", "ffv1"),
    )
    tl = timeline.scan(load_model(str(checkpoint)), path, Views(stride=2), every_s=0.5)
    assert [w.start_s for w in tl.windows] == pytest.approx([0.5 * i for i in range(10)], abs=1e-3)
    assert tl.windows[6].frame_indices == (30 + 0, 30 + 2, 30 + 4, 30 + 6)  # 3.0 s is frame 30
    assert tl.windows[8].frame_indices[0] == 30 + 20  # 4.0 s: 20 frames later at 20 frames/s
    assert tl.end_s == pytest.approx(5.0, abs=1e-3)
    assert [(s.label, s.end_s) for s in tl.segments][0] == ("red", pytest.approx(CHANGE_S, abs=0.5))


def test_iter_frames_is_a_sequential_decode(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", 12, fourcc="MJPG", fps=FPS)
    got = list(decode.iter_frames(path, wanted=lambda i, t: i % 3 == 0))
    reference = decode_all(path)
    assert [i for i, _, _ in got] == list(range(12))
    assert [t for _, t, _ in got] == pytest.approx([i / FPS for i in range(12)], abs=1e-3)
    for i, _, rgb in got:
        if i % 3:
            assert rgb is None  # decoded, not converted
        else:
            np.testing.assert_array_equal(rgb, reference[i])


def test_one_sequential_pass_with_bounded_memory(checkpoint: Path, tmp_path: Path, monkeypatch) -> None:
    """However long the video, the frames held stay under a clip's span plus a batch of windows."""
    clf = load_model(str(checkpoint))
    reads, live, peak = [], [0], [0]
    iter_frames = decode.iter_frames

    def counting_iter_frames(*args, **kwargs):
        reads.append(args[0])
        return iter_frames(*args, **kwargs)

    def gone() -> None:
        live[0] -= 1

    preprocess = timeline._Scanner._preprocess

    def tracked(self, rgb):
        tensor = preprocess(self, rgb)
        live[0] += 1
        peak[0] = max(peak[0], live[0])
        weakref.finalize(tensor, gone)
        return tensor

    monkeypatch.setattr(decode, "iter_frames", counting_iter_frames)
    monkeypatch.setattr(decode, "read_frames", None)  # the seeking reader must not be used
    monkeypatch.setattr(timeline._Scanner, "_preprocess", tracked)
    peaks = []
    for frames in (100, 400):
        path = make_video(tmp_path / f"{frames}.avi", frames)
        tl = timeline.scan(clf, path, Views(stride=2), every_s=0.3, batch_size=4)
        assert len(tl.windows) == (frames - 7) // 3 + 1  # starts 3 frames apart; the last one ends at the end
        peaks.append(peak[0])
    assert reads == [tmp_path / "100.avi", tmp_path / "400.avi"]
    span_frames, batch_frames = 7, 4 * 4
    assert peaks[0] == peaks[1] <= span_frames + batch_frames


def test_batch_size_does_not_change_scores(checkpoint: Path, tmp_path: Path) -> None:
    clf = load_model(str(checkpoint))
    path = make_video(tmp_path / "v.avi", 33, change_frame=15)
    one, many = (timeline.scan(clf, path, every_s=0.4, batch_size=b) for b in (1, 5))
    np.testing.assert_allclose(one.probs, many.probs, atol=1e-6)  # batched matmuls round differently
    assert [(w.start_s, w.end_s, w.frame_indices, [p.label for p in w.predictions]) for w in one.windows] == [
        (w.start_s, w.end_s, w.frame_indices, [p.label for p in w.predictions]) for w in many.windows
    ]


def window(i: int, label: str, score: float) -> Window:
    index = LABELS.index(label)
    return Window(i, float(i), i + 2.0, (i,), (Prediction(label, score, index),))


# (top-1 label and score per window, threshold, expected segments as (label, first window, last window))
MERGE_CASES = [
    ([("red", 0.9), ("red", 0.8), ("blue", 0.9)], 0.3, [("red", 0, 1), ("blue", 2, 2)]),
    ([("red", 0.9), ("red", 0.2), ("red", 0.9)], 0.3, [("red", 0, 0), ("red", 2, 2)]),  # a weak window splits
    ([("red", 0.2), ("blue", 0.1)], 0.3, []),
    ([("red", 0.3), ("red", 0.3)], 0.3, [("red", 0, 1)]),  # the threshold itself is enough
    ([("red", 0.5), ("blue", 0.5), ("red", 0.5)], 0.0, [("red", 0, 0), ("blue", 1, 1), ("red", 2, 2)]),
]


@pytest.mark.parametrize("tops,threshold,expected", MERGE_CASES)
def test_merge_segments(tops, threshold, expected) -> None:
    windows = [window(i, label, score) for i, (label, score) in enumerate(tops)]
    spans = timeline.cells(windows, 0.0, len(windows) + 1.0)
    segments = merge_segments(windows, spans, threshold)
    assert [(s.label, s.first_window, s.last_window) for s in segments] == expected
    for s in segments:
        assert (s.start_s, s.end_s) == (spans[s.first_window][0], spans[s.last_window][1])


def test_the_plot_is_a_png_or_a_jpeg_by_its_name(checkpoint: Path, two_scenes: Path, tmp_path: Path) -> None:
    jpg = tmp_path / "timeline.jpg"
    result = run("-q", "timeline", str(two_scenes), "-m", str(checkpoint), "--plot", str(jpg))
    assert result.exit_code == 0, result.stderr
    assert jpg.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG's start of image
    assert cv2.imread(str(jpg)).shape[1] == plot.WIDTH_PX


def test_help_offers_no_clips_it_would_refuse() -> None:
    help_text = run("timeline", "--help").stdout
    assert "--clips" not in help_text and "--crops" in help_text and ".png or .jpg" in help_text


@pytest.mark.parametrize(
    "args,message",
    [
        (["--clips", "2"], "--every"),
        (["--out", "t.txt"], ".csv, .json or .jsonl"),
        (["--plot", "t"], "give a .png or .jpg name"),
        (["--plot", "t.bmp"], "give a .png or .jpg name"),
        (["--overlay", "t.avi"], ".mp4"),
    ],
)
def test_bad_options_fail_before_the_model_loads(two_scenes: Path, tmp_path: Path, args, message) -> None:
    result = run("timeline", str(two_scenes), "-m", str(tmp_path / "no-such-model"), *args)
    assert result.exit_code == 2
    assert message in result.stderr and result.stdout == ""


# ---- labels in other scripts: drawn on the plot and the overlay, what no font has said once ---------------------


def relabel(checkpoint: Path, folder: Path, labels: list[str]) -> Path:
    """A copy of the colour checkpoint whose labels (red, blue, ...) are `labels`."""
    shutil.copytree(checkpoint, folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    (folder / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    return folder


def legend_text(img: np.ndarray, entry: int = 0) -> np.ndarray:
    """The first legend row from the `entry`-th text on: where the plot writes its labels' names."""
    top = plot.TITLE_H_PX + plot.STRIP_H_PX + plot.GAP_PX + plot.CHART_H_PX + plot.AXIS_H_PX + plot.GAP_PX
    return img[top : top + plot.LEGEND_ROW_H_PX, plot.MARGIN_LEFT_PX + 22 :]


@pytest.mark.parametrize("labels", [["café", "Ελληνικά", "green", "white"]])
def test_plot_and_overlay_draw_labels_in_any_script(checkpoint: Path, tmp_path: Path, labels: list[str]) -> None:
    if fonts.book().pick("".join(labels)).missing:
        pytest.skip("no font here has Latin and Greek")
    src = make_video(tmp_path / "wide.avi", 60, size=(320, 180))  # room on the frame for the whole label
    drawn = {}
    for name, names in (("accented", labels), ("plain", ["cafe", *labels[1:]])):
        folder = relabel(checkpoint, tmp_path / name, names)
        png, video = tmp_path / f"{name}.png", tmp_path / f"{name}.mp4"
        result = run("timeline", str(src), "-m", str(folder), "--plot", str(png), "--overlay", str(video))
        assert result.exit_code == 0, result.stderr
        assert "Warning" not in result.stderr, "every character has its glyph"
        drawn[name] = cv2.imread(str(png)), decode_all(video)[5]  # a red frame: café leads
    (img, frame), (plain_img, plain_frame) = drawn["accented"], drawn["plain"]
    legend = legend_text(img)
    assert (legend.max(axis=2) < 100).sum() > 50, "the legend's names are drawn (dark ink on white)"
    assert not np.array_equal(legend, legend_text(plain_img)), "café's accent is drawn"
    strip = img[plot.TITLE_H_PX : plot.TITLE_H_PX + plot.STRIP_H_PX]
    assert not np.array_equal(strip, plain_img[plot.TITLE_H_PX : plot.TITLE_H_PX + plot.STRIP_H_PX])
    layout = draw.layout_labels(320, 180, [Prediction("café", 1.0, 0)], title="0:00.5")
    panel = frame[: layout.panel_h, : layout.panel_w].astype(int)
    assert (panel.max(axis=2) > 150).sum() > 10, "the overlay's panel has its text"
    assert np.abs(panel - plain_frame[: layout.panel_h, : layout.panel_w]).max() > 60, "café's accent is drawn"


def test_a_label_no_font_has_is_said_once_and_drawn_as_boxes(checkpoint: Path, two_scenes: Path, tmp_path: Path):
    if not fonts.book().pick("跳舞").missing:
        pytest.skip("a CJK font is installed here")
    folder = relabel(checkpoint, tmp_path / "cjk", ["red", "跳舞", "green", "white"])
    png, video = tmp_path / "t.png", tmp_path / "t.mp4"
    result = run("timeline", str(two_scenes), "-m", str(folder), "--plot", str(png), "--overlay", str(video))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "CJK" in warnings[0], result.stderr  # not once per frame, nor per output
    assert png.exists() and len(decode_all(video)) == 60


def test_the_plot_without_any_font_warns_once_and_draws_ascii(
    checkpoint: Path, two_scenes: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(fonts, "_book", fonts.FontBook([]))
    png = tmp_path / "t.png"
    result = run("timeline", str(two_scenes), "-m", str(checkpoint), "--plot", str(png))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "no TrueType font" in warnings[0]
    assert (legend_text(cv2.imread(str(png))).max(axis=2) < 100).sum() > 50, "the legend is drawn"


# ---- Ctrl-C keeps what was scored -------------------------------------------------------------------------------


def test_ctrl_c_keeps_the_windows_scored_so_far(
    checkpoint: Path, two_scenes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vivit_cli.cli import timeline as command

    stop_after = 4  # windows: past the scene change at 3 s, one a second, before the end of the 6 s video

    def progress(bar):
        def on_scored(done: int, total: int) -> None:
            if done == stop_after:
                raise KeyboardInterrupt  # as Ctrl-C lands, between two batches

        return on_scored

    monkeypatch.setattr(command, "tqdm_progress", progress)
    out, plot, overlay = tmp_path / "t.csv", tmp_path / "t.png", tmp_path / "t.mp4"
    result = run(
        "timeline", str(two_scenes), "-m", str(checkpoint), "--batch-size", "1",
        "--out", str(out), "--plot", str(plot), "--overlay", str(overlay),
    )  # fmt: skip
    assert result.exit_code == 130, result.output
    rows = csv_rows(out.read_text())
    assert [r["kind"] for r in rows].count("window") == stop_after
    assert [r["label"] for r in rows if r["kind"] == "segment"] == ["red", "blue"]
    assert "red" in result.stdout and "blue" in result.stdout  # the table of those segments
    assert cv2.imread(str(plot)) is not None and not overlay.exists()
    said = result.stderr.strip().splitlines()[-1]
    assert said.startswith(f"Interrupted after {stop_after} of 6 windows (to 0:03.7)")  # the 4th window ends there
    assert f"wrote their windows and segments to {out} and plot to {plot}; no overlay" in said
    assert "Interrupted." not in result.stderr
