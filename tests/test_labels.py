"""--labels and --min-score: predictions restricted to some labels (the softmax of their logits alone) and cut under
a score, the same in classify, batch, timeline and webcam."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli
from vivit_cli.errors import LabelError
from vivit_cli.labels import LabelSet, parse_labels
from vivit_cli.live.draw import NO_LABEL, draw_labels, layout_labels
from vivit_cli.pipeline import load_model
from vivit_cli.video import decode
from vivit_cli.video.sampling import Views
from vivit_cli.writers.formats import read_records

LABELS = ["waving", "running", "eating, spaghetti", "juggling", "Archery"]  # a comma, and a capital
SUBSET = ["waving", "running", "eating, spaghetti"]
SIZE = (40, 32)  # pixels, width x height
LENGTHS = (12, 14, 16, 18, 20, 22)  # frames of the batch videos: each samples other frames, so scores differ


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=LABELS)


@pytest.fixture(scope="module")
def no_weights(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The checkpoint without its weights: a command that loaded the model would fail with exit code 3."""
    folder = tmp_path_factory.mktemp("config-only") / "ckpt"
    shutil.copytree(checkpoint, folder)
    (folder / "model.safetensors").unlink()
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.avi", 40, size=(64, 48))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for i, frames in enumerate(LENGTHS):
        write_video(root / f"v{i}.avi", frames, size=SIZE)
    return root


@pytest.fixture(scope="module")
def subset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SUBSET one per line, with blank lines, spaces and a repeat; the only way to name a label with a comma."""
    path = tmp_path_factory.mktemp("labels") / "labels.txt"
    path.write_text("\n  waving \n\nrunning\neating, spaghetti\nwaving\n\n", encoding="utf-8")
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def cut_between(scores: list[float]) -> float:
    """A --min-score that half of these top-1 scores reach and half do not."""
    ordered = sorted(set(scores))
    assert len(ordered) >= 2, f"the test needs different scores, got {scores}"
    middle = len(ordered) // 2
    return (ordered[middle - 1] + ordered[middle]) / 2


# ---- parsing and checking names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,names",
    [
        ("waving,running", ("waving", "running")),
        (" waving , running ,, waving,", ("waving", "running")),  # spaces and empties dropped, a repeat kept once
        ("Archery", ("Archery",)),
    ],
)
def test_parse_labels(text: str, names: tuple[str, ...]) -> None:
    assert parse_labels(text) == names


def test_parse_labels_from_a_file_keeps_commas(subset_file: Path) -> None:
    assert parse_labels(f"@{subset_file}") == tuple(SUBSET)


@pytest.mark.parametrize("text,needle", [(" , ", "names no label"), ("@/no/such/labels.txt", "no such file")])
def test_parse_labels_errors(text: str, needle: str) -> None:
    with pytest.raises(LabelError, match=needle):
        parse_labels(text)


def test_a_label_file_is_read_with_a_bound(tmp_path: Path) -> None:
    """`--labels @/dev/zero` grew memory without limit: under a 1 GiB address-space limit it is now an error."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from vivit_cli.errors import LabelError\n"
        "from vivit_cli.labels import parse_labels\n"
        "try:\n"
        "    parse_labels('@/dev/zero')\n"
        "except LabelError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "--labels @/dev/zero: larger than 4 MiB" in done.stdout, done.stderr


LINES_BYTES = 7 * 4096  # what the fifo's writer writes at a time


def test_a_fifo_that_never_ends_is_refused_after_the_bound(tmp_path: Path) -> None:
    fifo = tmp_path / "labels"
    os.mkfifo(fifo)

    def write_forever() -> None:  # 64 MiB: "forever" to a reader that keeps what it reads
        with contextlib.suppress(BrokenPipeError), open(fifo, "wb") as f:
            for _ in range(64 * 1024 * 1024 // LINES_BYTES):
                f.write(b"waving\n" * (LINES_BYTES // 7))

    writer = threading.Thread(target=write_forever, daemon=True)
    writer.start()
    with pytest.raises(LabelError, match="larger than 4 MiB"):
        parse_labels(f"@{fifo}")
    writer.join()


@pytest.mark.parametrize(
    "content,needle",
    [
        ("waving\n" * 700_000, "larger than 4 MiB, not a list of labels"),  # 4.9 MB
        ("waving\n" + "x" * 5000 + "\n", "line 2: a label of 5000 characters, more than 1000"),
        ("waving\nrun\x00ning\n", r"line 2: label 'run\\x00ning' holds a control character"),
        ("waving\nrun\x1b[31mning\n", r"line 2: label 'run\\x1b\[31mning' holds a control character"),
    ],
)
def test_label_files_that_are_no_list_of_labels(tmp_path: Path, content: str, needle: str) -> None:
    path = tmp_path / "labels.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LabelError, match=needle) as e:
        parse_labels(f"@{path}")
    assert "\n" not in str(e.value)


def test_a_label_with_a_control_character_is_refused_on_the_command_line(checkpoint: Path, clip: Path) -> None:
    result = invoke("classify", "--model", str(checkpoint), "--labels", "waving,run\tning\x07", str(clip))
    assert result.exit_code == 2 and result.stdout == ""
    assert "name 2: label 'run\\tning\\x07' holds a control character" in result.stderr
    result = invoke("classify", "--model", str(checkpoint), "--labels", "@/dev/zero", str(clip))
    assert result.exit_code == 2 and "larger than 4 MiB" in result.stderr and "Traceback" not in result.stderr


def test_label_set_checks_names_and_score() -> None:
    assert LabelSet(("b", "a", "b")).names == ("b", "a")
    assert LabelSet(("juggling", "waving")).class_ids(LABELS) == (0, 3)  # class-id order
    assert LabelSet().class_ids(LABELS) == tuple(range(len(LABELS)))
    with pytest.raises(LabelError, match=r"\[0, 1\]"):
        LabelSet(min_score=1.5)
    with pytest.raises(LabelError) as e:
        LabelSet(("archery", "juggle", "waving", "zzz")).class_ids(LABELS)
    message = str(e.value)
    assert "'archery' (did you mean 'Archery'?)" in message  # case-insensitive near miss
    assert "'juggle' (did you mean 'juggling'?)" in message
    assert "'zzz'" in message and "'waving'" not in message


# ---- the scores ---------------------------------------------------------------------------------------------------


def view_logits(checkpoint: Path, clip: Path) -> np.ndarray:
    """The model's own logits (L,) for clip's one centred view, computed here, float64."""
    full = load_model(str(checkpoint))
    _, clips = decode.sample_clips(str(clip), Views().sampling(full.config.num_frames))
    with torch.no_grad():
        return full.model(full.preprocess(clips[0].frames)[None]).logits[0].double().numpy()


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_subset_scores_are_the_softmax_of_the_subsets_logits(checkpoint: Path, clip: Path) -> None:
    logits = view_logits(checkpoint, clip)
    ids = [LABELS.index(n) for n in SUBSET]
    expected = dict(zip(ids, softmax(logits[ids]), strict=True))
    result = load_model(str(checkpoint), labels=LabelSet(tuple(SUBSET))).classify(clip, k=5)
    assert {p.index: p.score for p in result.predictions} == pytest.approx(expected, abs=1e-6)
    assert [p.label for p in result.predictions] == [LABELS[p.index] for p in result.predictions]


def test_subset_scores_do_not_underflow(checkpoint: Path, clip: Path, tmp_path: Path) -> None:
    """With a head that makes the logits hundreds apart, the full softmax of the weakest labels is 0 in float32;
    the subset of those labels still gets their own softmax."""
    from safetensors.torch import load_file, save_file

    sharp = tmp_path / "sharp"
    shutil.copytree(checkpoint, sharp)
    weights = load_file(sharp / "model.safetensors")
    for name in ("classifier.weight", "classifier.bias"):
        weights[name] = weights[name] * 1000
    save_file(weights, sharp / "model.safetensors", metadata={"format": "pt"})
    logits = view_logits(sharp, clip)
    weakest = [int(i) for i in np.argsort(logits)[:2]]
    assert (softmax(logits.astype(np.float32))[weakest] == 0).all()  # renormalising these would divide 0 by 0
    names = tuple(LABELS[i] for i in weakest)
    result = load_model(str(sharp), labels=LabelSet(names)).classify(clip, k=5)
    expected = dict(zip(weakest, softmax(logits[weakest]), strict=True))
    assert {p.index: p.score for p in result.predictions} == pytest.approx(expected, abs=1e-6)


# ---- classify -------------------------------------------------------------------------------------------------------


def classify_json(checkpoint: Path, clip: Path, *args: str) -> list[dict]:
    result = invoke("classify", str(clip), "--model", str(checkpoint), "--json", *args)
    assert result.exit_code == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    return record["predictions"]


def test_classify_labels_from_a_file(checkpoint: Path, clip: Path, subset_file: Path) -> None:
    predictions = classify_json(checkpoint, clip, "--labels", f"@{subset_file}", "-k", "5")
    assert sorted(p["label"] for p in predictions) == sorted(SUBSET)  # only these, each once, -k or not
    assert all(LABELS[p["index"]] == p["label"] for p in predictions)  # the model's own class ids
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-5)


def test_classify_min_score_keeps_the_predictions_that_reach_it(checkpoint: Path, clip: Path) -> None:
    every = classify_json(checkpoint, clip, "--labels", ",".join(SUBSET[:2]), "-k", "2")
    cut = cut_between([p["score"] for p in every])
    kept = classify_json(checkpoint, clip, "--labels", ",".join(SUBSET[:2]), "-k", "2", "--min-score", str(cut))
    assert kept == every[:1]
    assert classify_json(checkpoint, clip, "--min-score", "1") == []


def test_classify_table_says_no_label(checkpoint: Path, clip: Path) -> None:
    result = invoke("classify", str(clip), "--model", str(checkpoint), "--min-score", "1")
    assert result.exit_code == 0, result.stderr
    assert "(no label)" in result.stdout and "%" not in result.stdout


# ---- unknown names: one line, exit 2, nothing loaded ----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["classify", "{clip}"],
        ["batch", "{clip}", "--out", "{tmp}/rows.csv"],
        ["batch", "{clip}", "--out", "{tmp}/rows.csv", "--ray"],
        ["timeline", "{clip}"],
        ["webcam", "--source", "{clip}", "--fast"],
    ],
    ids=["classify", "batch", "batch-ray", "timeline", "webcam"],
)
def test_unknown_labels_fail_before_the_model_loads(
    no_weights: Path, clip: Path, tmp_path: Path, command: list[str]
) -> None:
    if "--ray" in command:
        pytest.importorskip("ray.data")
    args = [a.format(clip=clip, tmp=tmp_path) for a in command]
    result = invoke(*args, "--model", str(no_weights), "--labels", "waving,archery,runing")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "Error: the model has no labels 'archery' (did you mean 'Archery'?), 'runing' (did you mean 'running'?); "
        "names are matched exactly, case included (`vivit labels MODEL` lists its 5)"
    ]
    assert result.stdout == "" and not (tmp_path / "rows.csv").exists()


def test_a_bad_min_score_is_a_usage_error(checkpoint: Path, clip: Path) -> None:
    result = invoke("classify", str(clip), "--model", str(checkpoint), "--min-score", "1.5")
    assert result.exit_code == 2 and "--min-score" in result.stderr


# ---- batch -----------------------------------------------------------------------------------------------------------


def batch_rows(folder: Path, checkpoint: Path, out: Path, fmt: str, *args: str) -> dict[str, dict]:
    result = invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(out), *args)
    assert result.exit_code == 0, result.stderr
    return {Path(r["path"]).name: r for r in read_records(out, fmt)}


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
def test_batch_min_score_in_every_format(
    folder: Path, checkpoint: Path, subset_file: Path, tmp_path: Path, fmt: str
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    labels = ["--labels", f"@{subset_file}", "-k", "3"]
    every = batch_rows(folder, checkpoint, tmp_path / "all.jsonl", "jsonl", *labels)
    assert all({p["label"] for p in r["predictions"]} == set(SUBSET) for r in every.values())
    cut = cut_between([r["predictions"][0]["score"] for r in every.values()])
    rows = batch_rows(folder, checkpoint, tmp_path / f"cut.{fmt}", fmt, *labels, "--min-score", str(cut))
    assert sorted(rows) == sorted(every)
    for name, row in rows.items():
        kept = [p for p in every[name]["predictions"] if p["score"] >= cut]
        assert row["status"] == "ok"
        if fmt == "csv":
            assert row["label"] == (kept[0]["label"] if kept else "")
            assert row["top_labels"] == "|".join(p["label"] for p in kept)
        else:
            assert row["predictions"] == kept
    assert any(r["predictions"][0]["score"] < cut for r in every.values())  # some rows had no label ...
    assert any(r["predictions"][0]["score"] >= cut for r in every.values())  # ... and some had one


# ---- timeline ------------------------------------------------------------------------------------------------------


def timeline_records(checkpoint: Path, clip: Path, *args: str) -> list[dict]:
    result = invoke("timeline", str(clip), "--model", str(checkpoint), "--every", "0.1", "--out", "-", "-q", *args)
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_timeline_windows_under_min_score_have_no_label_and_break_segments(
    checkpoint: Path, clip: Path, tmp_path: Path
) -> None:
    labels = ["--labels", ",".join(SUBSET[:2]), "--threshold", "0"]
    every = [r for r in timeline_records(checkpoint, clip, *labels) if r["kind"] == "window"]
    assert all(r["label"] in SUBSET[:2] for r in every)
    cut = cut_between([r["score"] for r in every])
    rows = timeline_records(checkpoint, clip, *labels, "--min-score", str(cut))
    windows = [r for r in rows if r["kind"] == "window"]
    segments = [r for r in rows if r["kind"] == "segment"]
    assert len(windows) == len(every)
    for w, before in zip(windows, every, strict=True):
        if before["score"] < cut:
            assert (w["label"], w["score"], w["predictions"], w["segment"]) == (None, None, [], None)
        else:
            assert (w["label"], w["segment"] is not None) == (before["label"], True)
    for s in segments:  # every window of a segment has its label: a window with none ends it
        assert {w["label"] for w in windows[s["first_window"] : s["last_window"] + 1]} == {s["label"]}
    # The CSV leaves the cells empty; the plot and the overlay are drawn over windows with no label.
    out, plot, overlay = tmp_path / "t.csv", tmp_path / "t.png", tmp_path / "t.mp4"
    args = ["--min-score", str(cut), "--out", str(out), "--plot", str(plot), "--overlay", str(overlay)]
    result = invoke("timeline", str(clip), "--model", str(checkpoint), "--every", "0.1", "-q", *labels, *args)
    assert result.exit_code == 0, result.stderr
    cells = [r for r in csv.DictReader(io.StringIO(out.read_text())) if r["kind"] == "window"]
    assert [(c["label"], c["top_labels"]) == ("", "") for c in cells] == [w["label"] is None for w in windows]
    assert plot.stat().st_size > 0 and overlay.stat().st_size > 0


def test_a_frame_with_no_label_says_so() -> None:
    frame = np.zeros((120, 160, 3), np.uint8)
    assert [t.text for t in layout_labels(160, 120, (), "0:01.0", NO_LABEL).lines] == ["0:01.0", NO_LABEL]
    assert (draw_labels(frame, (), None, NO_LABEL) != frame).any()
    assert (draw_labels(frame, ()) == frame).all()  # nothing scored yet: nothing drawn


def test_the_webcam_panel_and_lines_say_no_label() -> None:
    from rich.console import Console

    from vivit_cli.live.view import TerminalView
    from vivit_cli.live.webcam import LiveStatus
    from vivit_cli.results import LivePrediction

    p = LivePrediction(1, 0.0, 0, 6, 0.0, 0.2, (), 0.01, 1, 0)
    panel = io.StringIO()
    Console(file=panel, width=100).print(TerminalView(None, "live", "camera 0").panel(LiveStatus(None, p, 30.0, 7)))
    assert "(no label)" in panel.getvalue()
    lines = io.StringIO()
    TerminalView(Console(file=lines, width=100), "lines", "camera 0").prediction(p)
    assert "(no label)" in lines.getvalue()


# ---- webcam ----------------------------------------------------------------------------------------------------------


def webcam_rows(checkpoint: Path, clip: Path, out: Path, *args: str) -> list[dict]:
    result = invoke("webcam", "-s", str(clip), "-m", str(checkpoint), "--fast", "--every", "4", "-o", str(out), *args)
    assert result.exit_code == 0, result.stderr
    return list(read_records(out, out.suffix[1:]))


def test_webcam_labels_and_min_score(checkpoint: Path, clip: Path, tmp_path: Path) -> None:
    labels = ["--labels", ",".join(SUBSET[:2])]
    every = webcam_rows(checkpoint, clip, tmp_path / "all.jsonl", *labels)
    assert len(every) > 2 and all({p["label"] for p in r["predictions"]} == set(SUBSET[:2]) for r in every)
    cut = cut_between([r["predictions"][0]["score"] for r in every])
    for fmt in ("jsonl", "csv"):
        rows = webcam_rows(checkpoint, clip, tmp_path / f"cut.{fmt}", *labels, "--min-score", str(cut))
        assert len(rows) == len(every)
        for row, before in zip(rows, every, strict=True):
            kept = [p for p in before["predictions"] if p["score"] >= cut]
            if fmt == "jsonl":
                assert row["predictions"] == kept
            else:
                assert row["label"] == (kept[0]["label"] if kept else "")


def test_a_model_whose_labels_hold_line_breaks_draws_them_escaped(clip: Path, tmp_path: Path) -> None:
    """A model trained before such labels were refused (or a foreign one) made Pillow's layout fail
    (`raqm_layout() failed`, a traceback) in timeline --plot and --overlay."""
    model = write_ours(tmp_path / "model", labels=["run\nfast", "\n", "walk"])
    plot, overlay = tmp_path / "t.png", tmp_path / "t.mp4"
    result = invoke("timeline", str(clip), "-m", str(model), "--plot", str(plot), "--overlay", str(overlay))
    assert result.exit_code == 0, result.stderr
    assert plot.stat().st_size > 0 and overlay.stat().st_size > 0


def test_vivit_labels_prints_a_label_with_a_line_break_on_one_line(tmp_path: Path) -> None:
    model = write_ours(tmp_path / "model", labels=["run\nfast", "walk"])
    result = invoke("labels", str(model))
    assert result.exit_code == 0 and result.stdout.splitlines() == ["run\\nfast", "walk"]
