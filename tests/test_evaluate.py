"""`vivit evaluate`: the metrics against hand-computed numbers, the split and label checks, the heat map, and the
command end to end on a tiny random model (whose accuracy is whatever it is: the outputs must agree with each
other)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli
from vivit_cli.errors import SourceError
from vivit_cli.learn.confusion import LABEL_PX, _fit, _width, cell_size, draw_confusion, font
from vivit_cli.learn.data import Dataset, Example
from vivit_cli.learn.evaluate import check_labels, select, suggest
from vivit_cli.learn.metrics import OTHER, Outcome, confusion_matrix, evaluate, outcome
from vivit_cli.live import fonts
from vivit_cli.writers.evaluation import CORNER

MODEL_LABELS = ["café", "Ελληνικά", "running", "jumping", "archery", "swimming", "waving"]  # 7: top-5 can miss
DATA_LABELS = ["café", "running", "Ελληνικά"]
PER_LABEL = 2  # videos per label folder
FRAMES = 12
SIZE = (40, 32)  # pixels, width x height


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# The metrics, by hand


def outcomes(pairs: list[tuple[str, str]]) -> list[Outcome]:
    """(true, predicted) -> outcomes; the true label ranks 1 when predicted, else 2 (so top-5 is every video)."""
    return [Outcome(f"v{i}.mp4", t, p, 0.9, 0.05, 1 if t == p else 2) for i, (t, p) in enumerate(pairs)]


# rows a: 2 right, 1 as b; b: 1 as a, 1 right; c: 1 as a, 1 as a model label DATA lacks (x). d: no videos.
PAIRS = [("a", "a"), ("a", "a"), ("a", "b"), ("b", "b"), ("b", "a"), ("c", "a"), ("c", "x")]


def test_the_metrics_of_a_small_confusion_matrix_by_hand() -> None:
    result = evaluate(outcomes(PAIRS), ["a", "b", "c", "d"], len(MODEL_LABELS))
    assert result.columns == ("a", "b", "c", "d", OTHER)
    assert result.confusion == ((2, 1, 0, 0, 0), (1, 1, 0, 0, 0), (1, 0, 0, 0, 1), (0, 0, 0, 0, 0))
    assert result.top1 == pytest.approx(3 / 7) and result.top5 == 1.0
    got = {m.label: (m.precision, m.recall, m.f1, m.support) for m in result.per_label}
    assert got["a"] == pytest.approx((2 / 4, 2 / 3, 4 / 7, 3))  # a's column: 2 right of 4 said "a"
    assert got["b"] == pytest.approx((1 / 2, 1 / 2, 1 / 2, 2))
    assert got["c"] == (0.0, 0.0, 0.0, 2)  # never predicted: precision 0/0 is 0; F1 0/0 is 0
    assert got["d"] == (0.0, 0.0, 0.0, 0)  # no videos: recall 0/0 is 0, and d is left out of the macro averages
    macro = result.macro
    assert (macro.precision, macro.recall, macro.f1, macro.support) == pytest.approx((1 / 3, 7 / 18, 5 / 14, 7))
    assert [(o.label, o.predicted) for o in result.misclassified] == [("a", "b"), ("b", "a"), ("c", "a"), ("c", "x")]


def test_top_5_is_reported_only_for_a_model_of_more_than_5_labels() -> None:
    """A 3-label model's true label is always among its 5 best: "top-5 100.0%" says nothing."""
    assert evaluate(outcomes(PAIRS), ["a", "b", "c", "d"], 6).top5 == 1.0
    assert evaluate(outcomes(PAIRS), ["a", "b", "c", "d"], 5).top5 is None
    assert evaluate(outcomes(PAIRS), ["a", "b", "c", "d"]).top5 is None  # the model's labels are DATA's: 4


def test_confusion_counts_predictions_outside_the_labels_as_other() -> None:
    matrix = confusion_matrix([0, 1, 1], [1, -1, 5], 2)
    assert matrix.tolist() == [[0, 1, 0], [0, 0, 2]]


def test_an_outcome_ranks_the_true_label_with_ties_broken_by_class_id() -> None:
    o = outcome("v.mp4", "d", np.array([0.1, 0.5, 0.2, 0.2]), ["a", "b", "c", "d"])
    assert (o.predicted, o.score, o.label_score, o.rank, o.correct) == ("b", 0.5, 0.2, 3, False)


# Which videos, and which labels


def dataset(splits: list[str | None]) -> Dataset:
    examples = tuple(Example(f"{s}/{i}.mp4", "a", s) for i, s in enumerate(splits))
    return Dataset("DATA", examples, ("a",))


@pytest.mark.parametrize(
    ("splits", "asked", "chosen", "count"),
    [
        (["train", "val", "test", "test"], None, "test", 2),
        (["train", "val", "val"], None, "val", 2),
        (["train", "train"], None, None, 2),  # neither test nor val: every video
        ([None, None, None], None, None, 3),
        (["train", "val", "test"], "train", "train", 1),
    ],
)
def test_the_split_evaluated(splits: list[str | None], asked: str | None, chosen: str | None, count: int) -> None:
    selection = select(dataset(splits), asked)
    assert selection.split == chosen and len(selection.examples) == count


def test_a_split_data_does_not_have_is_an_error_naming_those_it_has() -> None:
    with pytest.raises(SourceError, match=r"no 'test' split: its splits are train, val"):
        select(dataset(["train", "val"]), "test")


def test_unknown_labels_are_named_with_the_closest_model_labels() -> None:
    known = ["playing guitar", "running", "café", "Ελληνικά"]
    assert suggest("Playing_Guitar", known) == ["playing guitar"]
    assert suggest("cafe", known) == ["café"]
    assert suggest("ελληνικα", known) == ["Ελληνικά"]
    with pytest.raises(SourceError) as e:
        check_labels(["RUNNING", "running", "zzz"], known, "org/model")
    assert "2 of DATA's 3 labels are not labels of org/model" in str(e.value)
    assert "'RUNNING' (did you mean 'running'?)" in str(e.value) and "'zzz'. Rename" in str(e.value)
    check_labels(["running", "café"], known, "org/model")  # all known: no error


# The heat map


@pytest.mark.parametrize(("count", "low", "high"), [(3, 250, 700), (50, 900, 2000)])
def test_the_heat_map_stays_readable_for_few_and_many_labels(count: int, low: int, high: int) -> None:
    labels = [f"label {i} ελληνικά" for i in range(count)]
    pairs = [(t, labels[(i + j) % count]) for i, t in enumerate(labels) for j in range(3)]
    image = draw_confusion(evaluate(outcomes(pairs), labels), "title")
    assert low <= image.width <= high and low <= image.height <= high
    assert cell_size(count + 1) >= LABEL_PX + 8  # a line of label text, or a count, fits in every cell
    assert np.asarray(image.convert("L")).min() < 100  # ink: text and full cells


def test_long_labels_are_shortened_in_the_middle_and_stay_apart() -> None:
    f = font(LABEL_PX)
    shown = {_fit(f, f"tying a necktie, a very long label name {i}", 120) for i in (12, 13)}
    assert len(shown) == 2 and all("…" in s and _width(f, s) <= 120 for s in shown)


CJK = "跳舞"  # drawn where a CJK font is installed; DejaVu has none of it


def has_cjk_font() -> bool:
    return not fonts.book().pick(CJK).missing


def test_each_label_is_drawn_in_a_font_that_has_its_characters() -> None:
    labels = ["café", "Ελληνικά", "running"]
    said: list[str] = []
    image = draw_confusion(evaluate(outcomes([(t, t) for t in labels]), labels), "title", said.append)
    assert said == [] and np.asarray(image.convert("L")).min() < 100
    for label in labels:
        pick = fonts.book().pick(label)
        assert pick.path and not pick.missing and font(LABEL_PX, label).path == pick.path


def test_a_cjk_label_is_drawn_in_a_cjk_font_or_said_once() -> None:
    said: list[str] = []
    labels = [CJK, f"{CJK} fast", "running"]
    draw_confusion(evaluate(outcomes([(t, t) for t in labels]), labels), "title", said.append)
    if has_cjk_font():
        assert said == [] and font(LABEL_PX, CJK).path == fonts.book().pick(CJK).path
    else:  # the drawing code says it per label; the command says it once (below)
        assert said and set(said) == {said[0]} and "CJK" in said[0] and "Noto Sans CJK" in said[0]


def test_without_any_font_the_matrix_is_drawn_in_pillows_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "_book", fonts.FontBook([]))
    said: list[str] = []
    labels = ["waving", "café"]
    image = draw_confusion(evaluate(outcomes([(t, t) for t in labels]), labels), "title", said.append)
    assert np.asarray(image.convert("L")).min() < 100, "text and cells are drawn"
    assert set(said) == {said[0]} and "no TrueType font" in said[0] and "Pillow's own font" in said[0]


# The command, end to end


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=MODEL_LABELS)


def label_folders(root: Path, labels: list[str], per_label: int = PER_LABEL) -> Path:
    for label in labels:
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            write_video(root / label / f"{i}.avi", FRAMES + 4 * i, size=SIZE)
    return root


@pytest.fixture(scope="module")
def run(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """One evaluation with every output, of label folders with one video that does not decode."""
    root = tmp_path_factory.mktemp("eval")
    data = label_folders(root / "data", DATA_LABELS)
    (data / "running" / "broken.mp4").write_text("not a video\n")
    out = {"--out": root / "report.json", "--matrix": root / "confusion.csv", "--plot": root / "confusion.png"}
    args = [a for option, path in out.items() for a in (option, str(path))]
    result = invoke("evaluate", str(data), "-m", str(checkpoint), *args, "--clips", "2")
    return result, json.loads(out["--out"].read_text(encoding="utf-8")), out


def test_the_report_agrees_with_itself(run: tuple) -> None:
    result, report, _ = run
    videos = report["videos"]
    assert report["num_videos"] == len(videos) == len(DATA_LABELS) * PER_LABEL
    assert report["accuracy"]["top1"] == pytest.approx(np.mean([v["correct"] for v in videos]), abs=1e-6)
    assert report["accuracy"]["top5"] == pytest.approx(np.mean([v["rank"] <= 5 for v in videos]), abs=1e-6)
    assert all(v["correct"] == (v["label"] == v["predicted"]) for v in videos)
    assert {v["path"] for v in report["misclassified"]} == {v["path"] for v in videos if not v["correct"]}
    confusion = report["confusion"]
    assert confusion["labels"] == sorted(DATA_LABELS) and confusion["columns"] == [*sorted(DATA_LABELS), OTHER]
    matrix = np.array(confusion["matrix"])
    assert matrix.sum() == len(videos) and np.trace(matrix) == sum(v["correct"] for v in videos)
    assert [m["support"] for m in report["per_label"]] == matrix.sum(axis=1).tolist()
    for i, m in enumerate(report["per_label"]):
        said = matrix[:, i].sum()
        assert m["precision"] == pytest.approx(matrix[i, i] / said if said else 0.0, abs=1e-6)
    assert report["model"] and report["views"] == {"stride": 2, "clips": 2, "crops": 1}
    assert "top-1" in result.stdout and "macro average" in result.stdout


def test_a_video_that_does_not_decode_is_counted_listed_and_left_out(run: tuple) -> None:
    result, report, _ = run
    assert result.exit_code == 4, result.stderr
    assert report["num_failed"] == 1 and report["failed"][0]["path"].endswith("broken.mp4")
    assert "Failed: 1 of 7 videos could not be decoded" in result.stderr and "broken.mp4" in result.stderr


def test_the_matrix_csv_and_the_picture_agree_with_the_report(run: tuple) -> None:
    _, report, out = run
    with out["--matrix"].open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    confusion = report["confusion"]
    assert rows[0] == [CORNER, *confusion["columns"]]  # café and Ελληνικά as written
    assert [r[0] for r in rows[1:]] == confusion["labels"]
    assert [[int(c) for c in r[1:]] for r in rows[1:]] == confusion["matrix"]
    assert "Ελληνικά" in out["--out"].read_text(encoding="utf-8")  # JSON keeps the characters, not \u escapes
    image = Image.open(out["--plot"])
    assert image.format == "PNG" and 250 <= image.width <= 1000 and 250 <= image.height <= 1000
    grey = np.asarray(image.convert("L"))
    assert (grey < 128).sum() > 500  # text and cells, not a blank page


def test_a_split_is_chosen_and_said_and_the_report_goes_to_stdout(checkpoint: Path, tmp_path: Path) -> None:
    for split, count in (("train", 1), ("val", 2)):
        label_folders(tmp_path / split, DATA_LABELS[:2], count)
    result = invoke("evaluate", str(tmp_path), "-m", str(checkpoint), "--out", "-")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)  # stdout is the report only: the tables went to stderr
    assert report["split"] == "val" and report["num_videos"] == 4
    assert "evaluating 4 videos of" in result.stderr and "(the val split)" in result.stderr and "top-1" in result.stderr


def test_a_model_vivit_train_wrote_is_evaluated_on_the_test_split(checkpoint: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for split in ("train", "test"):
        label_folders(data / split, DATA_LABELS, PER_LABEL)
    trained = tmp_path / "trained"
    result = invoke("train", str(data), "-m", str(checkpoint), "--out", str(trained), "--clips", "1")
    assert result.exit_code == 0, result.stderr
    result = invoke("evaluate", str(data), "-m", str(trained), "--out", "-")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["split"] == "test" and report["num_videos"] == len(DATA_LABELS) * PER_LABEL
    assert report["model"] == str(trained) and report["confusion"]["labels"] == sorted(DATA_LABELS)
    assert "(the test split)" in result.stderr


def test_a_label_no_font_has_is_said_once_on_stderr(tmp_path: Path) -> None:
    if has_cjk_font():
        pytest.skip("a CJK font is installed here")
    labels = [CJK, f"{CJK} fast", "running"]
    model = write_ours(tmp_path / "model", labels=labels)
    data = label_folders(tmp_path / "data", labels, 1)
    plot = tmp_path / "confusion.png"
    result = invoke("evaluate", str(data), "-m", str(model), "--plot", str(plot), "--out", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "CJK" in warnings[0], result.stderr
    assert Image.open(plot).format == "PNG"


def test_labels_the_model_lacks_stop_before_its_weights_load(checkpoint: Path, tmp_path: Path) -> None:
    config_only = tmp_path / "model"
    config_only.mkdir()
    shutil.copy(checkpoint / "config.json", config_only)  # no weights: loading them would fail otherwise
    data = label_folders(tmp_path / "data", ["Running", "cafe", "waving"], 1)
    result = invoke("evaluate", str(data), "-m", str(config_only), "--out", str(tmp_path / "r.json"))
    assert result.exit_code == 2 and result.stdout == ""
    assert "'Running' (did you mean 'running'?)" in result.stderr and "'cafe' (did you mean 'café'?)" in result.stderr
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--split", "test"], "no 'test' split: it has no split folders"),
        (["--matrix", "-"], "--matrix goes to a file"),
        (["--plot", "x.bmp"], "give a .png or .jpg name"),
        (["--out", "x.csv"], "the report is JSON"),
        (["--out", "nowhere/x.json"], "no folder"),
    ],
)
def test_bad_options_stop_before_the_model(tmp_path: Path, args: list[str], needle: str) -> None:
    data = label_folders(tmp_path / "data", ["running"], 1)
    result = invoke("evaluate", str(data), "-m", str(tmp_path / "no model here"), *args)
    assert result.exit_code == 2 and needle in result.stderr, result.stderr


def test_evaluate_right_after_train_leaves_out_the_videos_it_learnt_from(checkpoint: Path, tmp_path: Path) -> None:
    """No split folders: train held out one video per label; evaluate, told nothing, scored every video and
    found the model near perfect. Now it keeps to the held-out ones, and says so; --all scores them all, with a
    warning. A model of 3 labels reports no top-5: it would always be 100%."""
    data = label_folders(tmp_path / "data", DATA_LABELS, 3)
    trained = tmp_path / "trained"
    result = invoke("train", str(data), "-m", str(checkpoint), "--out", str(trained), "--clips", "1")
    assert result.exit_code == 0, result.stderr
    record = json.loads((trained / "training.json").read_text("utf-8"))
    assert len(record["train_videos"]) == 6 and all(Path(p).is_absolute() for p in record["train_videos"])
    result = invoke("evaluate", str(data), "-m", str(trained), "--clips", "1", "--out", "-")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    held_out = sorted(Path(p).resolve() for p in record["val_videos"])
    assert sorted(Path(v["path"]).resolve() for v in report["videos"]) == held_out
    assert "evaluating 3 videos of" in result.stderr
    assert "6 it was trained on left out (--all keeps them)" in result.stderr
    assert report["accuracy"]["top5"] is None and "top-5" not in result.stderr and "top-1" in result.stderr
    assert "Warning" not in result.stderr
    result = invoke("evaluate", str(data), "-m", str(trained), "--clips", "1", "--out", "-", "--all")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["num_videos"] == 9
    assert "Warning: the model was trained on 6 of these videos (--all): the figures are not held out" in result.stderr
    seen = tmp_path / "seen.csv"  # only videos it learnt from
    seen.write_text("path,label\n" + "".join(f"{p},{Path(p).parent.name}\n" for p in record["train_videos"]))
    result = invoke("evaluate", str(seen), "-m", str(trained), "--out", "-")
    assert result.exit_code == 2 and result.stdout == ""
    assert "the model was trained on each of the 6 videos to evaluate (every video): none is held out" in result.stderr


def test_the_confusion_picture_is_a_png_or_a_jpeg_by_its_name(tmp_path: Path) -> None:
    """One rule for every --plot: .png or .jpg (timeline's takes the same names)."""
    from vivit_cli.learn.confusion import save_confusion

    evaluation = evaluate(outcomes(PAIRS), ["a", "b", "c"])
    for name, fmt in (("c.png", "PNG"), ("c.jpg", "JPEG"), ("c.JPEG", "JPEG")):
        save_confusion(evaluation, "title", tmp_path / name, print)
        assert Image.open(tmp_path / name).format == fmt
    data = label_folders(tmp_path / "data", ["running"], 1)
    result = invoke("evaluate", str(data), "-m", str(tmp_path / "no model here"), "--plot", str(tmp_path / "c.jpg"))
    assert result.exit_code == 3 and "no model here" in result.stderr  # the name passed: the model is what failed
