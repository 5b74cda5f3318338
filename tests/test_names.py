"""File names that are not UTF-8 (a Latin-1 `café.avi`): every command reads them, and writes them as `caf\\xe9`.

OpenCV crashes the whole process (a segmentation fault) when handed such a name. classify and batch decode in worker
processes, where a crash would cost the file only; what runs in this process (timeline, webcam, the overlay and the
plot) goes through `opencv_guard`, which raises instead of letting OpenCV see the name, so a regression fails the
test rather than killing the test run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.batch import worker
from vivit_cli.batch.worker import DecodeSpec
from vivit_cli.cli import cli
from vivit_cli.results import shown_path
from vivit_cli.video.names import ffmpeg_name
from vivit_cli.video.preprocess import PreprocessConfig
from vivit_cli.video.sampling import Views

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="names that are not UTF-8 are a Linux matter")

LATIN1 = "caf\udce9"  # b"caf\xe9" as Python holds it: a lone surrogate for the byte that is not UTF-8
SHOWN = "caf\\xe9"  # how outputs write it
FRAMES = 40


@pytest.fixture
def opencv_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenCV's name-taking calls raise here on a name that is not UTF-8, instead of crashing the process."""

    def guarded(fn):
        def call(*args, **kwargs):
            for a in args:
                if isinstance(a, str):
                    a.encode("utf-8")  # UnicodeEncodeError: OpenCV would have crashed on it
            return fn(*args, **kwargs)

        return call

    for name in ("VideoCapture", "VideoWriter", "imwrite", "haveImageWriter", "getTextSize", "putText"):
        monkeypatch.setattr(cv2, name, guarded(getattr(cv2, name)))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["waving", "running", "eating", "juggling", "archery"])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A plain name and a Latin-1 one, holding the same video."""
    (tmp_path / "videos").mkdir()
    good = write_video(tmp_path / "videos" / "plain.avi", FRAMES)
    os.link(good, os.path.join(tmp_path, "videos", f"{LATIN1}.avi"))
    return tmp_path / "videos"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_shown_path() -> None:
    assert shown_path("clip.mp4") == "clip.mp4"
    assert shown_path("séance/ünïcode.mp4") == "séance/ünïcode.mp4"  # UTF-8 names are written as they are
    assert shown_path(f"d/{LATIN1}.avi") == f"d/{SHOWN}.avi"
    assert shown_path(f"d/{LATIN1}.avi").encode("utf-8")


def test_ffmpeg_name_reaches_the_file_and_leaves_nothing(folder: Path) -> None:
    latin = os.path.join(folder, f"{LATIN1}.avi")
    with ffmpeg_name(folder / "plain.avi") as name:
        assert name == str(folder / "plain.avi")
    with ffmpeg_name(latin) as name:
        name.encode("utf-8")
        assert name.endswith(".avi") and os.path.samefile(name, latin)
        alias_folder = os.path.dirname(name)
    assert not os.path.exists(alias_folder) and os.path.exists(latin)


def test_classify(checkpoint: Path, folder: Path) -> None:
    latin = os.path.join(folder, f"{LATIN1}.avi")
    result = run("classify", "--model", str(checkpoint), "--json", latin, str(folder / "plain.avi"))
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == [shown_path(latin), str(folder / "plain.avi")]
    assert rows[0]["predictions"] == rows[1]["predictions"]  # the same video under both names
    table = run("classify", "--model", str(checkpoint), latin)
    assert table.exit_code == 0 and f"{SHOWN}.avi" in table.stdout
    missing = run("classify", "--model", str(checkpoint), os.path.join(folder, f"{LATIN1}-no.avi"))
    assert missing.exit_code == 4 and f"{SHOWN}-no.avi: no such file" in missing.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "parquet"])
def test_batch_every_format_and_resume(checkpoint: Path, folder: Path, tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    from vivit_cli.writers.formats import read_records

    out = tmp_path / f"preds.{fmt}"
    result = run("-q", "batch", str(folder), "--model", str(checkpoint), "--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.stderr
    rows = list(read_records(str(out), fmt))
    assert sorted(r["path"] for r in rows) == sorted(
        [shown_path(os.path.join(folder, f"{LATIN1}.avi")), str(folder / "plain.avi")]
    )
    assert {r["status"] for r in rows} == {"ok"}
    again = run("-q", "batch", str(folder), "--model", str(checkpoint), "--out", str(out), "--resume")
    assert again.exit_code == 0, again.stderr
    assert len(list(read_records(str(out), fmt))) == 2  # the row read back matches its file: nothing done twice


def test_ray_decode_body(folder: Path, opencv_guard: None) -> None:
    """What a Ray decode task runs: the user's path for the row, the absolute one to open."""
    latin = f"{LATIN1}.avi"
    spec = DecodeSpec(4, PreprocessConfig(shortest_edge=32, crop_hw=(32, 32)), Views())
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        prepared, error = worker.decode(latin, spec, os.path.abspath(latin))
        assert error is None and prepared is not None and prepared.source == latin
        prepared, error = worker.decode(f"{LATIN1}-no.avi", spec, os.path.abspath(f"{LATIN1}-no.avi"))
        assert prepared is None and error == f"{SHOWN}-no.avi: no such file"
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("encoder", ["h264", "mp4v"])
def test_timeline_input_plot_and_overlay(
    checkpoint: Path, folder: Path, tmp_path: Path, opencv_guard: None, monkeypatch: pytest.MonkeyPatch, encoder: str
) -> None:
    from vivit_cli.live import overlay

    if encoder == "h264" and overlay.h264_encoder() is None:
        pytest.skip("no PyAV with an H.264 encoder")
    if encoder == "mp4v":
        monkeypatch.setattr(overlay, "h264_encoder", lambda: None)
    latin = os.path.join(folder, f"{LATIN1}.avi")
    out, plot, video = (os.path.join(tmp_path, f"{LATIN1}{suffix}") for suffix in (".csv", ".png", ".mp4"))
    result = run(
        "timeline",
        latin,
        "--model",
        str(checkpoint),
        "--every",
        "0.5",
        "--out",
        out,
        "--plot",
        plot,
        "--overlay",
        video,
    )
    assert result.exit_code == 0, result.stderr
    assert {r["path"] for r in csv.DictReader(io.StringIO(Path(out).read_text()))} == {shown_path(latin)}
    assert f"Wrote {shown_path(plot)}" in result.stderr and f"Wrote {shown_path(video)}" in result.stderr
    with ffmpeg_name(plot) as name:
        assert cv2.imread(name) is not None
    with ffmpeg_name(video) as name:
        cap = cv2.VideoCapture(name)
        try:
            assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == FRAMES
        finally:
            cap.release()


def test_webcam_file_source(checkpoint: Path, folder: Path, opencv_guard: None) -> None:
    latin = os.path.join(folder, f"{LATIN1}.avi")
    result = run("webcam", "--source", latin, "--model", str(checkpoint), "--fast", "-n", "2", "--out", "-")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == [shown_path(latin)] * 2
    paced = run("webcam", "--source", latin, "--model", str(checkpoint), "-n", "1", "--out", "-")  # file_fps
    assert paced.exit_code == 0, paced.stderr
