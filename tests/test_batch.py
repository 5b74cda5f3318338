"""`vivit batch` end to end: sources, bad files, formats, hung and crashing decoders, kills and --resume, memory."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests import faults
from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.batch import local
from vivit_cli.batch import plan as batch
from vivit_cli.batch.pool import DecodePool
from vivit_cli.batch.rows import Labels
from vivit_cli.cli import cli
from vivit_cli.errors import SourceError
from vivit_cli.pipeline import Classifier, load_model
from vivit_cli.video import sources
from vivit_cli.video.sampling import Views
from vivit_cli.writers.formats import get_writer, read_records
from vivit_cli.writers.records import BATCH_COLUMNS as CSV_COLUMNS

FRAMES = 12  # per test video: enough for a 4-frame clip at stride 2
SIZE = (40, 32)  # pixels, width x height
GOOD = ["a.avi", "b.mp4", "c.avi", "sub/d.avi"]  # sub/ is seen only with -r
BAD = {  # name -> what it holds
    "empty.mp4": "zero bytes",
    "text.mp4": "text renamed .mp4",
    "truncated.mp4": "the first half of an mp4 (its index is at the end)",
    "folder.mp4": "a directory",
}
TORN_CHARS = 10  # cut off the end of an output file: inside its last record in every format
KILL_WAIT_S = 120.0  # seconds a killed-run test waits for the first rows (worker start-up on a busy machine)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["waving", "running", "eating", "juggling", "archery"])


def make_video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, FRAMES, size=SIZE, fourcc="mp4v" if path.suffix == ".mp4" else "MJPG")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Good videos, bad files with video names, and files that are not videos at all."""
    root = tmp_path_factory.mktemp("videos")
    for name in GOOD:
        make_video(root / name)
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video\n")
    data = make_video(tmp_path_factory.mktemp("whole") / "whole.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "folder.mp4").mkdir()
    (root / "notes.txt").write_text("not a video suffix: never taken from a folder\n")
    (root / ".hidden.mp4").write_bytes(b"")
    return root


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def names(rows: list[dict]) -> list[str]:
    return sorted(Path(r["path"]).name for r in rows)


# Sources


def test_sources_folder_glob_file_and_list(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    top = ["a.avi", "b.mp4", "c.avi", "empty.mp4", "folder.mp4", "text.mp4", "truncated.mp4"]
    assert sources.collect_videos(["."]) == [f"./{n}" for n in top]
    assert sources.collect_videos(["."], recursive=True) == sorted([f"./{n}" for n in top] + ["./sub/d.avi"])
    assert sources.collect_videos(["*.avi", "a.avi", "./a.avi"]) == ["a.avi", "c.avi"]  # each file once
    assert sources.collect_videos(["**/*.avi"]) == ["a.avi", "c.avi", "sub/d.avi"]
    assert sources.collect_videos(["notes.txt"]) == ["notes.txt"]  # named outright: taken, to get a row
    listing = tmp_path / "list.txt"
    listing.write_text("# videos to do\nb.mp4\n\n  sub/d.avi  \nmissing.mp4\n")
    assert sources.collect_videos([f"@{listing}"]) == ["b.mp4", "missing.mp4", "sub/d.avi"]


def test_a_link_back_up_the_tree_lists_no_video_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ln -s "$PWD/D" D/loop`: -r does not follow it, and `**`, which does, skips what it finds through it."""
    monkeypatch.chdir(tmp_path)
    for name in ("D/a/1.mp4", "D/b/2.mp4"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(b"")
    Path("D/loop").symlink_to(tmp_path / "D")
    videos = ["D/a/1.mp4", "D/b/2.mp4"]
    assert sources.collect_videos(["D"], recursive=True) == videos
    assert sources.collect_videos(["D/**/*.mp4"]) == videos
    assert sources.collect_videos(["D/loop/**/*.mp4"]) == ["D/loop/a/1.mp4", "D/loop/b/2.mp4"]  # asked for by name
    with pytest.raises(SourceError, match="only paths through a link back into a folder above it"):
        sources.collect_videos(["D/*/*/*.mp4"])


@pytest.mark.parametrize(
    "source, needle",
    [
        ("sub/nothing", "no such file, folder or pattern"),
        ("*.mkv", "matches 0 paths"),
        ("*.txt", "none of them with a video suffix"),
        ("empty-dir", "no video files in this folder (-r looks in subfolders)"),
        ("@nolist.txt", "cannot read the list"),
        ("@blank.txt", "names no files"),
    ],
)
def test_a_source_that_names_nothing_is_a_usage_error(
    folder: Path, tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, source: str, needle: str
) -> None:
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "blank.txt").write_text("# nothing\n\n")
    (tmp_path / "notes.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="^" + re.escape(source)) as e:
        sources.collect_videos([source])
    assert needle in str(e.value)
    result = invoke("batch", source, "--model", str(checkpoint))
    assert result.exit_code == 2 and needle in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "args, needle", [(["--resume"], "--resume needs --out"), (["--out", "preds.txt"], "cannot tell the format")]
)
def test_bad_output_options_are_usage_errors(folder: Path, checkpoint: Path, args: list[str], needle: str) -> None:
    result = invoke("batch", str(folder), "--model", str(checkpoint), *args)
    assert result.exit_code == 2 and needle in result.stderr


# Rows, formats and exit codes


def parse(path: Path | None, fmt: str, stdout: str = "") -> list[dict]:
    text = path.read_text(encoding="utf-8") if path else stdout
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows and list(rows[0]) == list(CSV_COLUMNS)
        return rows
    if fmt == "json":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_every_file_gets_one_row_in_every_format(folder: Path, checkpoint: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"preds.{fmt}"
    result = invoke("batch", str(folder), "-r", "--model", str(checkpoint), "--out", str(out), "-k", "3")
    assert result.exit_code == 4, result.stderr  # some videos failed
    assert result.stdout == ""
    assert "4 ok, 4 failed" in result.stderr
    rows = parse(out, fmt)
    # After the summary, each failed file with why; the rows say only why, next to the path.
    failed = result.stderr.split("\nFailed:\n", 1)[1].splitlines()
    assert sorted(failed) == sorted(f"  {r['path']}: {r['error']}" for r in rows if r["status"] == "error")
    assert f"  {folder / 'empty.mp4'}: empty file (0 bytes)" in failed
    assert names(rows) == sorted([Path(n).name for n in GOOD] + list(BAD))
    status = {Path(r["path"]).name: r["status"] for r in rows}
    assert {n for n, s in status.items() if s == "ok"} == {Path(n).name for n in GOOD}
    for row in rows:
        assert row["model"] == str(checkpoint)
        if row["status"] == "error":
            assert row["error"] and row["path"] not in row["error"]
            continue
        labels = row["top_labels"].split("|") if fmt == "csv" else [p["label"] for p in row["predictions"]]
        assert len(labels) == 3 and set(labels) <= {"waving", "running", "eating", "juggling", "archery"}
        assert not row["error"] if fmt == "csv" else "error" not in row


def test_no_out_is_pure_jsonl_on_stdout_and_all_ok_exits_0(folder: Path, checkpoint: Path) -> None:
    result = invoke("batch", str(folder / "a.avi"), str(folder / "*.mp4"), "--model", str(checkpoint))
    assert result.exit_code == 4
    rows = parse(None, "jsonl", result.stdout)
    assert names(rows) == ["a.avi", "b.mp4", "empty.mp4", "folder.mp4", "text.mp4", "truncated.mp4"]
    ok = invoke(
        "-q", "batch", str(folder / "a.avi"), str(folder / "b.mp4"), "--model", str(checkpoint), "--format", "json"
    )
    assert ok.exit_code == 0 and ok.stderr == ""
    assert names(json.loads(ok.stdout)) == ["a.avi", "b.mp4"]


def test_rows_match_classify_across_split_batches(folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    """2 clips x 3 crops = 6 views per video in batches of 4: videos are split across forward passes."""
    out = tmp_path / "preds.jsonl"
    args = ["--clips", "2", "--crops", "3", "-k", "5"]
    result = invoke(
        "batch",
        *(str(folder / n) for n in GOOD),
        "--model",
        str(checkpoint),
        "--out",
        str(out),
        "--batch-size",
        "4",
        *args,
    )
    assert result.exit_code == 0, result.stderr
    classifier = load_model(checkpoint)
    for row in parse(out, "jsonl"):
        expected = classifier.classify(row["path"], Views(clips=2, crops=3), 5)
        assert [p["label"] for p in row["predictions"]] == [p.label for p in expected.predictions]
        assert [p["score"] for p in row["predictions"]] == pytest.approx(
            [p.score for p in expected.predictions], abs=1e-5
        )
        assert [(v["clip"], v["crop"]) for v in row["views"]] == [(v.clip, v.crop) for v in expected.views]


def test_the_end_of_a_run_lists_the_first_failures_and_counts_the_rest() -> None:
    from vivit_cli.writers.records import error_record

    tally = batch.Tally()
    for i in range(batch.LISTED_FAILURES + 2):
        tally.count(error_record(f"v/{i}.mp4", f"v/{i}.mp4: empty file (0 bytes)"))
    tally.count({"path": "v/ok.mp4", "status": "ok"})
    assert (tally.ok, tally.failed, len(tally.failures)) == (1, batch.LISTED_FAILURES + 2, batch.LISTED_FAILURES)
    lines = tally.failure_lines("preds.csv")
    assert lines[:2] == ["Failed:", "  v/0.mp4: empty file (0 bytes)"]
    assert lines[-1] == "  and 2 more: see their error rows in preds.csv"
    assert len(lines) == batch.LISTED_FAILURES + 2
    assert batch.Tally().failure_lines(None) == []


# --batch-size auto: by the device


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_batch_size_auto_is_one_view_on_a_cpu_and_a_batch_on_a_gpu(
    folder: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str
) -> None:
    """The device is faked: the classifier says it is on `device`, and its forward pass only records the batches."""
    classifier = load_model(checkpoint)
    monkeypatch.setattr(classifier, "device", torch.device(device))
    labels, passes = len(classifier.labels), []

    def forward(x: torch.Tensor, output: str = "probs") -> np.ndarray:
        passes.append(len(x))
        return np.full((len(x), labels), 1 / labels, dtype=np.float32)

    monkeypatch.setattr(classifier, "forward", forward)
    paths = [str(folder / n) for n in GOOD]
    with DecodePool(1, 60) as pool, (tmp_path / "preds.jsonl").open("w") as stream:
        tally = local.run(classifier, paths, pool, get_writer("jsonl", stream), Views(clips=2), Labels(1))
    assert tally.ok == len(GOOD) and sum(passes) == 2 * len(GOOD)
    if device == "cpu":
        assert batch.default_batch_size("cpu") == 1 and set(passes) == {1}
    else:  # 8 views at most; more than one, as a file's 2 views come together (a slow decode may flush part-full)
        assert batch.default_batch_size("cuda:0") == 8 and 1 < max(passes) <= 8
    assert batch.default_batch_size("mps") == batch.GPU_BATCH_SIZE


def test_on_a_cpu_each_row_is_written_before_the_next_file_runs_and_survives_ctrl_c(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C during the third video keeps the rows of the first two (in batches of 8 views it kept none)."""
    videos = tmp_path / "videos"
    (videos / "0.mp4").parent.mkdir()
    (videos / "0.mp4").write_bytes(b"")  # decoded first, by the one worker: its error row comes first
    for name in ("a.avi", "b.avi", "c.avi"):
        make_video(videos / name)
    out = tmp_path / "preds.jsonl"
    real_forward, seen = Classifier.forward, []  # (views in the pass, ok rows in --out when it began)

    def forward(self: Classifier, x: torch.Tensor, output: str = "probs") -> np.ndarray:
        seen.append((len(x), sum(r["status"] == "ok" for r in read_records(out, "jsonl"))))
        if len(seen) == 5:  # c.avi's first view
            raise KeyboardInterrupt
        return real_forward(self, x, output)

    monkeypatch.setattr(Classifier, "forward", forward)
    result = invoke("batch", str(videos), "--model", str(checkpoint), "--out", str(out), "--clips", "2", "-j", "1")
    assert result.exit_code == 130, result.stderr
    assert seen == [(1, 0), (1, 0), (1, 1), (1, 1), (1, 2)]
    assert [(Path(r["path"]).name, r["status"]) for r in read_records(out, "jsonl")] == [
        ("0.mp4", "error"),
        ("a.avi", "ok"),
        ("b.avi", "ok"),
    ]
    assert "Interrupted: 2 ok, 1 failed" in result.stderr
    assert f"\nFailed:\n  {videos / '0.mp4'}: empty file (0 bytes)\n" in result.stderr


# Decoders that hang or crash


def test_a_hung_and_a_crashed_decoder_cost_one_row_each(
    folder: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "preds.csv"
    faults.install(monkeypatch, hang_on="b.mp4", crash_on="c.avi")
    result = invoke(
        "batch",
        *(str(folder / n) for n in GOOD),
        "--model",
        str(checkpoint),
        "--out",
        str(out),
        "--timeout",
        "2",
        "--workers",
        "2",
    )
    assert result.exit_code == 4, result.stderr
    rows = {Path(r["path"]).name: r for r in parse(out, "csv")}
    assert sorted(rows) == ["a.avi", "b.mp4", "c.avi", "d.avi"]
    assert "longer than 2 s" in rows["b.mp4"]["error"] and rows["b.mp4"]["status"] == "error"
    assert "crashed" in rows["c.avi"]["error"] and rows["c.avi"]["status"] == "error"
    assert rows["a.avi"]["status"] == rows["d.avi"]["status"] == "ok"


# Interrupted runs and --resume


def start(args: list[str], hang_on: str, mark: str = "") -> subprocess.Popen:
    """`vivit batch` in a subprocess, its decoder stuck on `hang_on`; `mark` in its and its workers' environment."""
    path = os.pathsep.join(p for p in (faults.ROOT, os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [*faults.cli_with_faults(hang_on=hang_on), "batch", *args],
        env={**os.environ, "PYTHONPATH": path, "VIVIT_TEST_RUN": mark},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_gone(mark: str) -> None:
    """Wait until no process has `mark` as its VIVIT_TEST_RUN."""
    needle = f"VIVIT_TEST_RUN={mark}\0".encode()
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                left += [pid] if needle in Path(f"/proc/{pid}/environ").read_bytes() else []
            except OSError:  # gone meanwhile, or not ours to read
                pass
        if not left:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"processes of the killed run are still there: {left}")
        time.sleep(0.1)


def wait_for_rows(out: Path, fmt: str, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and len(list(read_records(out, fmt))) >= count:
            return
        time.sleep(0.1)
    pytest.fail(f"no {count} rows in {out} (exit {process.poll()}): {process.stderr.read() if process.stderr else ''}")


@pytest.mark.parametrize(
    "sig, fmt",
    [(signal.SIGKILL, "json"), (signal.SIGINT, "csv"), (signal.SIGTERM, "jsonl")],
    ids=["SIGKILL", "SIGINT", "SIGTERM"],
)
def test_a_killed_run_resumes_to_every_row_once(
    folder: Path, checkpoint: Path, tmp_path: Path, sig: int, fmt: str
) -> None:
    out = tmp_path / f"preds.{fmt}"
    shm, mark = sorted(os.listdir("/dev/shm")), str(tmp_path)
    # One worker stuck on c.avi: a.avi and b.mp4 are done, and the run is killed while it waits.
    args = [str(folder), "-r", "--model", str(checkpoint), "--out", str(out), "-j", "1"]
    process = start(args, hang_on="c.avi", mark=mark)
    wait_for_rows(out, fmt, 2, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    # Its workers go with it, and the ring of shared memory with them: no process is left, nothing named stays.
    wait_gone(mark)
    assert sorted(os.listdir("/dev/shm")) == shm
    assert process.returncode == {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 143}[sig], stderr
    if sig != signal.SIGKILL:  # stopped as Ctrl-C stops it: the summary says how to finish, and says it once
        assert "Interrupted: 2 ok" in stderr and "--resume" in stderr
        assert stderr.count("Interrupted") == 1 and "Terminated" not in stderr, stderr
    before = parse(out, fmt)  # the file is valid as the kill left it
    assert 2 <= len(before) < 9 and len({r["path"] for r in before}) == len(before)
    result = invoke("batch", str(folder), "-r", "--model", str(checkpoint), "--out", str(out), "--resume")
    assert result.exit_code == 4
    rows = parse(out, fmt)
    assert Counter(r["path"] for r in rows) == Counter({str(folder / n): 1 for n in GOOD + list(BAD)})
    assert f"{len([r for r in before if r['status'] == 'ok'])} already done" in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_resume_after_a_torn_write_keeps_every_row_once_and_retries_errors(
    folder: Path, checkpoint: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"preds.{fmt}"
    invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(out))
    first = parse(out, fmt)
    text = out.read_text(encoding="utf-8")
    out.write_text(text[:-TORN_CHARS], encoding="utf-8")  # the last record cut short, as a kill mid-write would
    result = invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(out), "--resume")
    assert result.exit_code == 4, result.stderr
    rows = parse(out, fmt)
    assert Counter(r["path"] for r in rows) == Counter(r["path"] for r in first)
    assert "4 failed" in result.stderr
    # Nothing left to do but the error rows, which are retried and replaced, never duplicated.
    again = invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(out), "--resume")
    assert "0 ok, 4 failed" in again.stderr
    assert Counter(r["path"] for r in parse(out, fmt)) == Counter(r["path"] for r in first)


def test_resume_with_everything_done_loads_nothing(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "preds.jsonl"
    out.write_text(json.dumps({"path": str(folder / "a.avi"), "status": "ok"}) + "\n")
    result = invoke("batch", str(folder / "a.avi"), "--model", "no/such-model", "--out", str(out), "--resume")
    assert result.exit_code == 0 and "1 already done" in result.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_with_another_model_is_refused_and_leaves_the_file(
    folder: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = tmp_path / f"preds.{fmt}"
    (tmp_path / "a.avi").symlink_to(folder / "a.avi")
    (tmp_path / "b.mp4").symlink_to(folder / "b.mp4")
    invoke("batch", str(tmp_path / "a.avi"), "--model", str(checkpoint), "--out", str(out))
    before = out.read_bytes()
    other = write_ours(tmp_path / "other", labels=["cooking", "dancing", "reading", "swimming", "typing"])
    result = invoke(
        "batch", str(tmp_path / "a.avi"), str(tmp_path / "b.mp4"), "--model", str(other), "--out", str(out), "--resume"
    )
    assert result.exit_code == 2, result.stderr
    assert f"holds rows from {checkpoint}, not {other}" in result.stderr
    assert out.read_bytes() == before
    # The same folder spelt another way is the same model.
    monkeypatch.chdir(checkpoint.parent)
    again = invoke(
        "batch",
        str(tmp_path / "a.avi"),
        str(tmp_path / "b.mp4"),
        "--model",
        f"./{checkpoint.name}",
        "--out",
        str(out),
        "--resume",
    )
    assert again.exit_code == 0, again.stderr
    assert [r["path"] for r in parse(out, fmt)] == [str(tmp_path / "a.avi"), str(tmp_path / "b.mp4")]


# Parquet


def test_parquet_holds_the_rows_of_jsonl_and_resumes_like_it(folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(tmp_path / "rows.jsonl"))
    out = tmp_path / "rows.parquet"
    result = invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(out))
    assert result.exit_code == 4, result.stderr
    table = pq.read_table(out)
    assert table.column_names[:4] == ["path", "status", "label", "score"]
    text_rows = {r["path"]: r for r in parse(tmp_path / "rows.jsonl", "jsonl")}
    rows = {r["path"]: r for r in table.to_pylist()}
    assert rows.keys() == text_rows.keys()
    for path, row in rows.items():
        want = text_rows[path]
        assert (row["status"], row["error"], row["views"]) == (want["status"], want.get("error"), want.get("views", []))
        assert [p["label"] for p in row["predictions"]] == [p["label"] for p in want.get("predictions", [])]
        assert [p["score"] for p in row["predictions"]] == pytest.approx(
            [p["score"] for p in want.get("predictions", [])], abs=1e-6
        )
    # --resume redoes only the error rows, each file keeps one row, and the ok rows stay as they were.
    again = invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(out), "--resume")
    assert again.exit_code == 4 and f"{len(GOOD) - 1} already done" in again.stderr, again.stderr
    resumed = pq.read_table(out).to_pylist()
    assert sorted(r["path"] for r in resumed) == sorted(rows)
    assert {r["path"]: r for r in resumed if r["status"] == "ok"} == {
        p: r for p, r in rows.items() if r["status"] == "ok"
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "parquet"], "Parquet goes to a file, not to stdout"),
        (["--out", "-", "--format", "parquet"], "Parquet goes to a file, not to stdout"),
    ],
)
def test_parquet_needs_a_file(folder: Path, args: list[str], message: str) -> None:
    result = invoke("batch", str(folder), "--model", "no/such-model", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_parquet_without_pyarrow_names_what_to_install(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow raises ImportError
    result = invoke("batch", str(folder), "--model", "no/such-model", "--out", str(tmp_path / "p.parquet"))
    assert result.exit_code == 2 and "Parquet output needs pyarrow: pip install pyarrow" in result.stderr
    assert not (tmp_path / "p.parquet").exists()


# Scale


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    pytest.skip("needs /proc/self/status")


def test_a_thousand_files_stream_with_flat_memory(checkpoint: Path, tmp_path: Path) -> None:
    """1,000 hard links to one video, 4 views each: kept in memory they would take 1000 x 196 KB = 190 MiB."""
    files, source = 1000, make_video(tmp_path / "one.avi")
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(files):
        os.link(source, folder / f"{i:04d}.avi")
    classifier = load_model(checkpoint)
    samples: dict[int, float] = {}

    def on_row(_: dict) -> None:
        if tally.ok in (100, files):
            samples[tally.ok] = rss_mib()

    tally = batch.Tally()
    started = time.monotonic()
    with DecodePool(2, 60) as pool, (tmp_path / "preds.jsonl").open("w") as stream:
        local.run(
            classifier,
            sources.collect_videos([str(folder)]),
            pool,
            get_writer("jsonl", stream),
            Views(clips=4),
            Labels(1),
            batch_size=32,
            tally=tally,
            on_row=on_row,
        )
    elapsed = time.monotonic() - started
    assert (tally.ok, tally.failed) == (files, 0)
    assert len(list(read_records(tmp_path / "preds.jsonl", "jsonl"))) == files
    assert samples[files] - samples[100] < 40, samples  # MiB: flat, not growing with the files done
    assert elapsed < 90, elapsed
