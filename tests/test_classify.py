"""`vivit classify` end to end: tiny checkpoint, videos made here, the CLI through CliRunner."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints import make_hf, write_hf
from click.testing import CliRunner
from videos import FORMATS, corner_frame, decode_index, write_video

from tests import faults
from vivit_cli.cli import cli
from vivit_cli.pipeline import Classifier, load_model
from vivit_cli.video import decode, sampling
from vivit_cli.video.sampling import Views

LABELS = ["waving", "running", "eating spaghetti", "juggling", "archery"]
WAIT_S = 60  # for the decode worker: only reached when it does not run (the test would hang otherwise)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = make_hf(image_size=32, num_frames=4, id2label=dict(enumerate(LABELS)), label2id=None)
    folder = write_hf(model, tmp_path_factory.mktemp("ckpt"))
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 36}, "crop_size": {"height": 32, "width": 32}})
    )
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.avi", 40, size=(64, 48))


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def run_json(checkpoint: Path, *args: str) -> tuple[list[dict], object]:
    result = run("classify", "--model", str(checkpoint), "--json", *args)
    return [json.loads(line) for line in result.stdout.splitlines()], result


def test_table_shows_ranked_labels_and_model(checkpoint: Path, clip: Path) -> None:
    result = run("classify", str(clip), "--model", str(checkpoint), "--top-k", "3")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "clip.avi" in out and str(checkpoint) in out
    shown = [label for label in LABELS if label in out]
    assert len(shown) == 3
    assert "%" in out and "█" in out


def test_json_is_pure_and_complete(checkpoint: Path, clip: Path) -> None:
    records, result = run_json(checkpoint, str(clip), "-k", "5", "--clips", "2", "--crops", "3")
    assert result.exit_code == 0
    (rec,) = records
    assert rec["status"] == "ok" and rec["path"] == str(clip)
    scores = [p["score"] for p in rec["predictions"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert {p["label"] for p in rec["predictions"]} == set(LABELS)
    assert [(v["clip"], v["crop"]) for v in rec["views"]] == [
        (c, crop) for c in (0, 1) for crop in ("left", "center", "right")
    ]
    expected = sampling.clip_indices(40, sampling.Sampling(4, 2, 2))
    assert [tuple(v["frame_indices"]) for v in rec["views"][::3]] == expected
    assert rec["views"][0]["timestamps_s"] == pytest.approx([i / 30 for i in expected[0]], abs=1e-3)
    assert rec["model"] == str(checkpoint) and rec["revision"] is None
    assert rec["num_frames"] == 40 and rec["fps"] == pytest.approx(30.0)


def test_views_are_averaged_softmax(checkpoint: Path, clip: Path) -> None:
    """The score is the mean over clips x crops of each view's softmax, computed here by hand."""
    clf = load_model(str(checkpoint))
    _, clips = decode.sample_clips(str(clip), sampling.Sampling(4, 2, 2))
    probs = []
    for c in clips:
        for where in ("start", "center", "end"):
            x = clf.preprocess(c.frames, crop=where)[None]
            with torch.no_grad():
                probs.append(clf.model(x).logits.softmax(-1)[0].numpy())
    expected = np.mean(probs, axis=0)
    result = clf.classify(clip, Views(stride=2, clips=2, crops=3), k=5)
    got = {p.index: p.score for p in result.predictions}
    assert [got[i] for i in range(5)] == pytest.approx(expected.tolist(), abs=1e-5)
    assert result.predictions[0].index == int(expected.argmax())


@pytest.mark.parametrize(
    "name,frames,size,fourcc",
    [
        ("mjpg.avi", 40, (64, 48), "MJPG"),
        ("mp4v.mp4", 40, (64, 48), "mp4v"),
        ("short.avi", 3, (64, 48), "MJPG"),  # fewer frames than one clip spans: looped/padded
        ("portrait.mp4", 20, (48, 96), "mp4v"),
        ("odd.avi", 25, (97, 61), "MJPG"),
        ("xvid.avi", 30, (64, 48), "XVID"),
    ],
)
def test_containers_sizes_and_lengths(checkpoint: Path, tmp_path: Path, name, frames, size, fourcc) -> None:
    path = write_video(tmp_path / name, frames, size=size, fourcc=fourcc)
    records, result = run_json(checkpoint, str(path), "--crops", "3")
    assert result.exit_code == 0, result.stderr
    (rec,) = records
    assert rec["status"] == "ok" and len(rec["predictions"]) == 5
    landscape = size[0] >= size[1]
    assert [v["crop"] for v in rec["views"]] == (
        ["left", "center", "right"] if landscape else ["top", "center", "bottom"]
    )
    assert all(0 <= i < frames for v in rec["views"] for i in v["frame_indices"])


def test_grey_frames(checkpoint: Path, tmp_path: Path) -> None:
    path = write_video(tmp_path / "grey.avi", 12, frame_fn=lambda i, w, h: np.full((h, w, 3), 7 * i, np.uint8))
    records, result = run_json(checkpoint, str(path))
    assert result.exit_code == 0 and records[0]["status"] == "ok"


def _bad_files(tmp: Path) -> dict[str, Path]:
    (tmp / "empty.mp4").write_bytes(b"")
    (tmp / "text.mp4").write_text("this is not a video\n" * 50)
    (tmp / "folder.mp4").mkdir()
    good = write_video(tmp / "good.avi", 30)
    truncated = tmp / "truncated.avi"
    truncated.write_bytes(good.read_bytes()[:200])
    return {
        "missing": tmp / "missing.mp4",
        "empty": tmp / "empty.mp4",
        "text": tmp / "text.mp4",
        "dir": tmp / "folder.mp4",
        "truncated": truncated,
    }


def test_each_bad_file_is_one_line_and_the_rest_still_run(checkpoint: Path, clip: Path, tmp_path: Path) -> None:
    bad = _bad_files(tmp_path)
    paths = [str(bad["missing"]), str(clip), *(str(p) for k, p in bad.items() if k != "missing")]
    records, result = run_json(checkpoint, *paths)
    assert result.exit_code == 4
    by_path = {r["path"]: r for r in records}
    assert by_path[str(clip)]["status"] == "ok"
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == len(bad)
    for p in bad.values():
        assert by_path[str(p)]["status"] == "error" and by_path[str(p)]["error"]
        assert any(p.name in line for line in errors)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["missing", "dir", "text"])
def test_single_bad_file_exit_code_and_message(checkpoint: Path, tmp_path: Path, kind: str) -> None:
    path = _bad_files(tmp_path)[kind]
    result = run("classify", str(path), "--model", str(checkpoint))
    assert result.exit_code == 4
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error:") and path.name in line


def test_debug_shows_the_traceback(checkpoint: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--debug", "classify", str(tmp_path / "nope.mp4"), "--model", str(checkpoint)])
    assert result.exit_code != 0 and result.exception is not None


def test_environment_variables_pick_model_and_device(checkpoint: Path, clip: Path) -> None:
    result = run("classify", str(clip), "--json", env={"VIVIT_MODEL": str(checkpoint), "VIVIT_DEVICE": "cpu"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["model"] == str(checkpoint)


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["--model", "no/such-model"], 3, "vivit download"),
        (["--model", "./not-a-folder"], 3, "not-a-folder"),
        (["--device", "cuda:7"], 2, "cuda"),
        (["--device", "tpu"], 2, "device"),
        (["--crops", "2"], 2, "crops"),
    ],
)
def test_bad_options_are_one_clean_line(checkpoint: Path, clip: Path, args, code, needle) -> None:
    if args[0] == "--device" and args[1].startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    full = ["classify", str(clip), *(args if args[0] == "--model" else ["--model", str(checkpoint), *args])]
    result = CliRunner().invoke(cli, full)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_version_and_help_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys; from vivit_cli.cli import cli; assert 'torch' not in sys.modules and 'cv2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "vivit_cli", "--version"], capture_output=True, text=True, check=True)
    assert "0." in out.stdout


def test_frames_are_the_sampled_indices(tmp_path: Path) -> None:
    """What the model sees is the decoded frames at the reported indices (each frame spells its index)."""
    path = write_video(tmp_path / "idx.avi", 50, size=(80, 60), fourcc=FORMATS[0][0])
    _, clips = decode.sample_clips(str(path), sampling.Sampling(8, 3, 2))
    for c in clips:
        assert [decode_index(f) for f in c.frames] == list(c.frame_indices)


# Several videos: the next one decoded in the worker


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_several_videos_match_each_alone_with_errors_in_order(
    checkpoint: Path, clip: Path, tmp_path: Path, as_json: bool
) -> None:
    other = write_video(tmp_path / "other.mp4", 30, size=(48, 64), fourcc="mp4v", frame_fn=corner_frame)
    bad = _bad_files(tmp_path)
    paths = [str(clip), str(bad["missing"]), str(other), str(bad["text"])]
    json_flag = ["--json"] if as_json else []
    together = run("classify", *paths, "--model", str(checkpoint), *json_flag)
    alone = [run("classify", p, "--model", str(checkpoint), *json_flag) for p in paths]
    assert together.exit_code == 4 and [r.exit_code for r in alone] == [0, 4, 0, 4]
    assert together.stdout == "".join(r.stdout for r in alone)
    assert together.stderr == "".join(r.stderr for r in alone)
    errors = together.stderr.splitlines()
    assert len(errors) == 2 and "missing.mp4" in errors[0] and "text.mp4" in errors[1]
    if as_json:
        assert [json.loads(line)["status"] for line in together.stdout.splitlines()] == ["ok", "error", "ok", "error"]


def test_the_next_video_decodes_in_the_worker_while_the_model_runs(
    checkpoint: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decode worker marks each file it has decoded; the model waits for the next one's mark: done in turn,
    it would time out."""
    marks = tmp_path / "marks"
    marks.mkdir()
    paths = [str(clip), *(str(write_video(tmp_path / f"v{i}.avi", 20 + i)) for i in range(3))]
    faults.install_traced(monkeypatch, str(marks))
    real_classify = Classifier.classify_prepared
    taken: list[tuple[str, int]] = []

    def classify_prepared(self, prepared, *args, **kwargs):
        taken.append((prepared.source, time.monotonic_ns()))
        after = paths[paths.index(prepared.source) + 1 :]
        if after:
            assert faults.wait_traced(str(marks), after[0], "end", WAIT_S), "the next video did not decode meanwhile"
        return real_classify(self, prepared, *args, **kwargs)

    monkeypatch.setattr(Classifier, "classify_prepared", classify_prepared)
    records, result = run_json(checkpoint, *paths)
    assert result.exit_code == 0, result.stderr
    assert [r["path"] for r in records] == paths and {r["status"] for r in records} == {"ok"}
    assert [path for path, _ in taken] == paths
    # One ahead only: video i + 2 starts decoding after the model has taken video i.
    for i in range(len(paths) - 2):
        assert faults.traced_ns(str(marks), paths[i + 2], "start") > taken[i][1]


def test_a_crashing_decoder_costs_its_file_only(
    checkpoint: Path, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashing = write_video(tmp_path / "crash-me.avi", 20)
    faults.install(monkeypatch, crash_on="crash-me")
    records, result = run_json(checkpoint, str(clip), str(crashing), str(clip))
    assert result.exit_code == 4
    assert [r["status"] for r in records] == ["ok", "error", "ok"]
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"Error: {crashing}: the decoder crashed (exit status {faults.CRASH_EXIT})")
    assert records[1]["error"] == line.removeprefix(f"Error: {crashing}: ")  # the row holds the path already


def test_an_interrupt_during_the_model_stops_the_decode_worker(
    checkpoint: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def classify_prepared(self, prepared, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Classifier, "classify_prepared", classify_prepared)
    result = CliRunner().invoke(cli, ["classify", str(clip), str(clip), str(clip), "--model", str(checkpoint)])
    assert (result.exit_code, result.stdout, result.stderr) == (130, "", "Interrupted.\n")
    assert not any(t.name.startswith("vivit-decode") for t in threading.enumerate())
    assert not [p for p in multiprocessing.active_children() if p.name == "vivit-decode"]


def on_a_terminal(*args: str) -> tuple[int, str, str]:
    """`vivit ARGS` in a process whose stderr is a 120-column terminal (a pty) and stdout a pipe, as a user runs
    `vivit classify ... > out.txt`: (exit code, stdout, what the terminal showed)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    main_fd, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "vivit_cli", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(main_fd, 1 << 16)
        except OSError:  # EIO: every process that held the terminal has ended
            break
        if not data:
            break
        shown += data
    os.close(main_fd)
    stdout, _ = proc.communicate()
    return proc.returncode, stdout.decode(), shown.decode(errors="replace")


def test_progress_shows_on_a_terminal_per_video_and_per_view(checkpoint: Path, clip: Path, tmp_path: Path) -> None:
    import re

    other = write_video(tmp_path / "other.avi", 40, size=(64, 48))
    args = ["classify", str(clip), str(other), "--model", str(checkpoint), "--device", "cpu", "--clips", "4"]
    code, stdout, shown = on_a_terminal(*args, "--crops", "3")
    assert code == 0, shown
    assert "clip.avi" in stdout and "other.avi" in stdout  # the tables, on stdout
    assert re.search(r"views \d+/12", shown), shown  # 12 views, one forward pass each on a CPU
    assert re.search(r"2/2 \[", shown), shown  # and the videos
    code, _, shown = on_a_terminal(*args, "-q")
    assert code == 0 and "video" not in shown and "views" not in shown, shown
    piped = run(*args)  # stderr is not a terminal: a log gets no bar
    assert piped.exit_code == 0 and piped.stderr == "", piped.stderr
