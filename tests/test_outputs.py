"""Outputs, as a user meets them when something goes wrong: one that cannot be written stops every command before
the model loads; two runs on one output; a full disk is one line and leaves every row written before readable."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import faults
from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli
from vivit_cli.locks import lock_path
from vivit_cli.writers.files import RowFile
from vivit_cli.writers.formats import read_records

FRAMES = 12  # per test video: enough for a 4-frame clip at stride 2
VIDEOS = 12  # in the folder a run goes over: their JSON rows are more than a page of a full disk holds
PAGE = 4096  # bytes: what a tmpfs hands out at a time
WAIT_S = 0.1  # between looks at a running command's output
HOLD = """
import sys, time
from vivit_cli.locks import held
with held(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["waving", "running", "eating", "juggling", "archery"])


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    (root / "label").mkdir()
    (root / "other").mkdir()
    for i in range(VIDEOS):
        write_video(root / "label" / f"{i:02}.avi", FRAMES, size=(40, 32), fourcc="MJPG")
    write_video(root / "other" / "x.avi", FRAMES, size=(40, 32), fourcc="MJPG")
    write_video(root / "other" / "y.avi", FRAMES, size=(40, 32), fourcc="MJPG")
    return root


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder no file can be created in: read-only (0500), or /proc for root, whom permissions do not stop."""
    if os.geteuid() == 0:
        yield Path("/proc")
        return
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        yield folder
    finally:
        folder.chmod(0o700)


# An output that cannot be written


@pytest.mark.parametrize(
    "command",
    [
        ["batch", "{videos}", "--out", "{no}/s.csv"],
        ["batch", "{videos}", "--out", "{no}/s.parquet"],
        ["embed", "{videos}", "--out", "{no}/e.jsonl"],
        ["timeline", "{video}", "--out", "{no}/t.csv"],
        ["timeline", "{video}", "--plot", "{no}/t.png"],
        ["timeline", "{video}", "--overlay", "{no}/t.mp4"],
        ["evaluate", "{videos}", "--out", "{no}/r.json"],
        ["evaluate", "{videos}", "--matrix", "{no}/m.csv"],
        ["evaluate", "{videos}", "--plot", "{no}/m.png"],
        ["train", "{videos}", "--out", "{no}/model"],
    ],
    ids=lambda c: f"{c[0]} {c[-2]}",
)
def test_an_output_that_cannot_be_written_stops_the_command_before_the_model(
    videos: Path, unwritable: Path, tmp_path: Path, command: list[str]
) -> None:
    names = {"videos": videos, "video": videos / "label" / "00.avi", "no": unwritable}
    args = [a.format(**names) for a in command]
    result = invoke(*args, "--model", tmp_path / "no model here")  # exit 3 had it got as far as the model
    assert result.exit_code == 2, result.output
    assert "cannot be written" in result.stderr or "not a folder that can be written" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Done" not in result.stderr, result.stderr
    assert result.stdout == ""


def test_an_output_that_can_be_written_is_left_as_it_was_by_the_check(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows" / "s.csv"
    out.parent.mkdir()
    out.write_text("kept\n")
    for name in (out, out.with_name("new.csv")):
        result = invoke("batch", videos, "-r", "--out", name, "--model", tmp_path / "no model here")
        assert result.exit_code == 3, result.output  # the model, checked after the output
    assert out.read_text() == "kept\n" and [p.name for p in out.parent.iterdir()] == ["s.csv"]


# Two runs on one output


def hold(path: Path, what: str = "--out") -> subprocess.Popen:
    """A process that holds `path` as a run does, until it is killed."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path), what], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


@pytest.mark.parametrize(
    "command, out",
    [
        (["batch", "{videos}/label", "--out"], "s.jsonl"),
        (["batch", "{videos}/label", "--resume", "--out"], "s.parquet"),
        (["embed", "{videos}/label", "--out"], "e.parquet"),
        (["timeline", "{video}", "--out"], "t.json"),
        (["timeline", "{video}", "--plot"], "t.png"),
        (["evaluate", "{videos}", "--out"], "r.json"),
        (["train", "{videos}", "--out"], "model"),
    ],
    ids=lambda c: c if isinstance(c, str) else c[0],
)
def test_a_second_run_on_an_output_is_refused_at_once_and_a_killed_holder_blocks_nothing(
    videos: Path, tmp_path: Path, command: list[str], out: str
) -> None:
    names = {"videos": videos, "video": videos / "label" / "00.avi"}
    args = [a.format(**names) for a in command]
    first = hold(tmp_path / out)
    try:
        result = invoke(*args, tmp_path / out, "--model", tmp_path / "no model here")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert result.exit_code == 2, result.output
    assert f"{command[-1]} {tmp_path / out} is in use by another vivit run (process {first.pid})" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / out).exists()
    result = invoke(*args, tmp_path / out, "--model", tmp_path / "no model here")
    assert result.exit_code == 3, result.output  # the hold died with its process: on to the model


def test_a_batch_run_holds_its_output_until_it_ends(videos: Path, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    path = os.pathsep.join(p for p in (faults.ROOT, os.environ.get("PYTHONPATH")) if p)
    first = subprocess.Popen(  # stuck on one video, as a long run is busy
        [*faults.cli_with_faults(hang_on="05.avi"), "batch", videos / "label", "-m", checkpoint, "--out", out, "-j1"],
        env={**os.environ, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while len(list(read_records(out, "csv")) if out.exists() else []) < 2:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            time.sleep(WAIT_S)
        second = invoke("batch", videos / "other", "-m", checkpoint, "--out", out, "--top-k", "1")
        assert second.exit_code == 2 and "is in use by another vivit run" in second.stderr, second.output
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert lock_path(out).exists()  # left by the kill
    kept = list(read_records(out, "csv"))
    assert kept and all(r["path"].startswith(str(videos / "label")) for r in kept)  # no row of the refused run
    result = invoke("batch", videos / "label", "-m", checkpoint, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert len(list(read_records(out, "csv"))) == VIDEOS and not lock_path(out).exists()


# A full disk


def fill_up(monkeypatch: pytest.MonkeyPatch, room: int) -> None:
    """Every RowFile holds `room` bytes, then the disk is full: the write that crosses it goes in part."""

    def write_some(self: RowFile, data: memoryview) -> int:
        left = room - self.tell()
        if left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return os.write(self.fileno(), data[:left])

    monkeypatch.setattr(RowFile, "_write_some", write_some)


def said(result) -> list[str]:
    """The lines on stderr, less the progress bar's (tqdm says video/s, or s/video when a video takes over a second)."""
    bar = re.compile(r"(video/s|s/video)\]")
    return [line for line in re.split(r"[\r\n]", result.stderr) if line.strip() and not bar.search(line)]


def check_full_disk(result, out: Path, fmt: str) -> list[dict]:
    """One line, exit 1, no summary; the file holds whole rows only, and nothing hidden stays beside it."""
    assert result.exit_code == 1, result.output
    assert said(result) == [f"Error: no space left on device writing {out}"], result.stderr
    text = out.read_text()
    if fmt == "json":
        rows = json.loads(text)
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        assert text.endswith("\n")
        rows = list(read_records(out, fmt))
        assert len(rows) == text.count("\n") - 1  # every line after the header, a whole row
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []
    return rows


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_a_full_disk_is_one_line_and_keeps_every_whole_row(
    videos: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = tmp_path / "rows" / f"s.{fmt}"
    out.parent.mkdir()
    fill_up(monkeypatch, 2500)  # a few rows, and the start of the next
    result = invoke("batch", videos / "label", "--model", checkpoint, "--out", out, "-j", "1")
    rows = check_full_disk(result, out, fmt)
    assert 1 <= len(rows) < VIDEOS and all(r["status"] == "ok" for r in rows)
    monkeypatch.undo()
    result = invoke("batch", videos / "label", "--model", checkpoint, "--out", out, "--resume")
    assert result.exit_code == 0 and len(list(read_records(out, fmt))) == VIDEOS


def test_a_full_disk_during_resume_leaves_the_file_as_it_was(
    videos: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rows" / "s.jsonl"
    out.parent.mkdir()
    assert invoke("batch", videos / "other", "--model", checkpoint, "--out", out).exit_code == 0
    before = out.read_bytes()
    (videos / "label" / "00.avi").rename(videos / "other" / "late.avi")
    try:
        fill_up(monkeypatch, 100)  # not even the kept rows fit into the rewrite
        result = invoke("batch", videos / "other", "--model", checkpoint, "--out", out, "--resume")
        check_full_disk(result, out, "jsonl")
    finally:
        (videos / "other" / "late.avi").rename(videos / "label" / "00.avi")
    assert out.read_bytes() == before


@contextlib.contextmanager
def tiny_disk(folder: Path, free_pages: int) -> Iterator[Path]:
    """A tmpfs at `folder` with `free_pages` pages left free; a skip where mounting is not allowed."""
    folder.mkdir()
    size = 16 * PAGE
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (folder / "filler").write_bytes(b"x" * (size - free_pages * PAGE))
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_real_full_disk_is_one_line_and_keeps_every_whole_row(
    videos: Path, checkpoint: Path, tmp_path: Path, fmt: str
) -> None:
    with tiny_disk(tmp_path / "disk", free_pages=2) as disk:  # a page for the lock, one for the rows
        out = disk / f"s.{fmt}"
        result = invoke("batch", videos / "label", "--model", checkpoint, "--out", out, "-j", "1")
        rows = check_full_disk(result, out, fmt)
        assert 1 <= len(rows) < VIDEOS


def test_a_full_disk_under_parquet_is_one_line_and_keeps_the_old_file(
    videos: Path, checkpoint: Path, tmp_path: Path
) -> None:
    # Four pages: the lock's and two for the rows of two videos (then a page more for the rows of all of them).
    with tiny_disk(tmp_path / "disk", free_pages=4) as disk:
        out = disk / "e.parquet"
        assert invoke("embed", videos / "other", "--model", checkpoint, "--out", out).exit_code == 0
        before = out.read_bytes()
        result = invoke("embed", videos, "-r", "--model", checkpoint, "--out", out, "--resume")
        assert result.exit_code == 1, result.output
        assert len(said(result)) == 1, result.stderr
        assert said(result)[0].startswith(f"Error: no space left on device writing {out}"), result.stderr
        assert out.read_bytes() == before and sorted(p.name for p in disk.iterdir()) == ["e.parquet", "filler"]
