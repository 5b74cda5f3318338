"""`vivit train` end to end on a tiny random backbone: it learns coloured videos, writes a folder that our classify and
transformers load alike, runs a second time from the cache alone, goes on after Ctrl-C, and refuses bad DATA."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.checkpoints import hf, write_ours
from tests.videos import write_video
from vivit_cli.checkpoint import load_checkpoint
from vivit_cli.cli import cli
from vivit_cli.learn.cache import EmbeddingCache
from vivit_cli.learn.export import check_out
from vivit_cli.pipeline import Classifier

FRAMES = 12  # per video: a 4-frame clip at stride 2, three clips spread over it
SIZE = (40, 32)  # width, height
COLOURS = {"café": (220, 40, 40), "Ελληνικά": (40, 220, 40), "跳舞": (40, 40, 220)}  # label -> RGB, one per label
PER_LABEL = 6  # videos


def colour_frames(rgb: tuple[int, int, int], seed: int):
    gen = np.random.default_rng(seed)

    def frame(index: int, width: int, height: int) -> np.ndarray:
        noise = gen.integers(-30, 30, (height, width, 3))
        return np.clip(np.array(rgb) + noise, 0, 255).astype(np.uint8)

    return frame


def write_labelled(root: Path, label: str, n: int, first_seed: int = 0) -> list[Path]:
    (root / label).mkdir(parents=True, exist_ok=True)
    rgb = COLOURS.get(label, (128, 128, 128))
    return [
        write_video(root / label / f"{i}.avi", FRAMES, SIZE, frame_fn=colour_frames(rgb, first_seed + i))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["a", "b", "c", "d", "e"])


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data") / "videos"
    for k, label in enumerate(COLOURS):
        write_labelled(root, label, PER_LABEL, first_seed=100 * k)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIVIT_CACHE", str(tmp_path / "vivit-cache"))  # never the user's


def invoke(*args: str | Path):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def train(data: Path, checkpoint: Path, out: Path, cache: Path, *more: str | Path):
    return invoke(
        "train", data, "--model", checkpoint, "--out", out, "--cache-dir", cache, "-j", "1", "--dtype", "float32", *more
    )


@pytest.fixture(scope="module")
def trained(data: Path, checkpoint: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("models") / "my-model"
    result = train(data, checkpoint, out, cache)
    assert result.exit_code == 0, result.output
    return out, result.stderr


def test_learns_the_colours_and_says_how_well(trained: tuple[Path, str]) -> None:
    out, stderr = trained
    record = json.loads((out / "training.json").read_text("utf-8"))
    assert record["validation"]["accuracy"] >= 0.9
    assert record["counts"]["train"] == dict.fromkeys(sorted(COLOURS), PER_LABEL - 1)  # 20% of 6: one held out
    assert record["settings"]["clips"] == 3 and record["settings"]["l2"] in record["settings"]["l2_grid"]
    assert stderr.count("val loss") == len(record["settings"]["l2_grid"])
    assert "18 cached" not in stderr and "precision" in stderr and "accuracy" in stderr
    card = (out / "README.md").read_text("utf-8")
    assert "vivit classify --model" in card and "跳舞" in card and "accuracy" in card
    rough = "Warning: 3 of 3 labels have fewer than 5 validation videos: 'café' (1), 'Ελληνικά' (1), '跳舞' (1)"
    assert rough in stderr and "the validation figures are rough" in stderr  # one video each: 0% or 100% recall
    assert record["warnings"][0] in stderr
    assert sorted(map(Path, record["train_videos"])) == sorted(
        p.resolve() for p in Path(record["data"]).rglob("*.avi") if str(p) not in record["val_videos"]
    )


def test_the_model_card_keeps_one_row_per_label(trained: tuple[Path, str]) -> None:
    """A label with a `|` or a line break (a record written before DATA refused those) stays in its own row."""
    from vivit_cli.learn.export import model_card

    out, _ = trained
    record = json.loads((out / "training.json").read_text("utf-8"))
    odd = "ca|fé\nnoir"
    record["labels"] = [odd if label == "café" else label for label in record["labels"]]
    record["counts"] = {s: {odd if k == "café" else k: n for k, n in c.items()} for s, c in record["counts"].items()}
    rows = [line for line in model_card(record, [], str(out)).splitlines() if line.startswith("| ")]
    assert len(rows) == 2 + len(COLOURS) and "| ca\\|fé\\nnoir | 5 | 1 |" in rows


def test_a_strength_at_an_end_of_the_grid_or_few_validation_videos_are_said() -> None:
    from vivit_cli.learn.data import Example
    from vivit_cli.learn.head import L2_GRID, Fit, Head
    from vivit_cli.learn.train import Split, Trained, cautions

    val = tuple(Example(f"{label}{i}.mp4", label, None) for label, n in (("a", 5), ("b", 2)) for i in range(n))
    split = Split((), val, "")

    def said(l2: float, fixed: bool = False) -> list[str]:
        head = Head(np.zeros((2, 1)), np.zeros(2), Fit(l2, 1.0, 1.0, 0.1))
        return cautions(split, Trained(head, None), ["a", "b"], fixed)  # type: ignore[arg-type]

    few = "1 of 2 labels have fewer than 5 validation videos: 'b' (2)"
    inside = said(L2_GRID[1])
    assert len(inside) == 1 and few in inside[0]
    assert "is the strongest tried" in said(L2_GRID[-1])[1] and "--l2 10" in said(L2_GRID[-1])[1]
    assert "is the weakest tried" in said(L2_GRID[0])[1] and "--l2 1e-05" in said(L2_GRID[0])[1]
    assert len(said(L2_GRID[-1], fixed=True)) == 1  # --l2 given: no grid to be at the end of


def test_the_model_folder_is_made_as_the_users_umask_makes_folders(trained: tuple[Path, str]) -> None:
    import stat

    out, _ = trained
    sibling = out.parent / "made-by-mkdir"
    sibling.mkdir(exist_ok=True)
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(sibling.stat().st_mode)  # 0755 under umask 022, not 0700


def test_the_folder_loads_in_transformers_with_equal_logits(trained: tuple[Path, str], checkpoint: Path) -> None:
    out, _ = trained
    raw = json.loads((out / "config.json").read_text("utf-8"))
    assert raw["id2label"] == {str(i): label for i, label in enumerate(sorted(COLOURS))}
    assert raw["label2id"] == {label: i for i, label in enumerate(sorted(COLOURS))} and raw["num_labels"] == 3
    ours = load_checkpoint(out).model
    theirs = hf().VivitForVideoClassification.from_pretrained(out, attn_implementation="eager").eval()
    assert theirs.config.id2label == dict(enumerate(sorted(COLOURS)))
    x = torch.randn(2, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(theirs(x).logits, ours(x).logits, atol=1e-4, rtol=1e-4)
    base = load_checkpoint(checkpoint).model.vivit.state_dict()
    assert all(torch.equal(v, ours.vivit.state_dict()[k]) for k, v in base.items())  # the backbone, unchanged


def test_classify_with_the_new_model_prints_the_new_labels(trained: tuple[Path, str], data: Path) -> None:
    out, _ = trained
    result = invoke("classify", "--model", out, "--json", "--clips", "3", data / "跳舞" / "0.avi")
    assert result.exit_code == 0, result.output
    predictions = json.loads(result.stdout)["predictions"]
    assert predictions[0]["label"] == "跳舞" and {p["label"] for p in predictions} == set(COLOURS)


def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model ran")

    monkeypatch.setattr(Classifier, "forward", refuse)
    monkeypatch.setattr("vivit_cli.pipeline.load_model", refuse)


def test_a_second_run_reads_every_video_from_the_cache(
    trained: tuple[Path, str], data: Path, checkpoint: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_model(monkeypatch)  # loading or running the model fails the run: every video must come from the cache
    out, _ = trained
    result = train(data, checkpoint, out, cache, "--l2", "0.05", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert "18 cached" in result.stderr and "replacing the model vivit train wrote" in result.stderr
    assert result.stderr.count("val loss") == 1
    assert json.loads((out / "training.json").read_text("utf-8"))["settings"]["l2"] == 0.05


def test_the_other_forms_of_data_use_the_same_cache(
    data: Path, checkpoint: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_model(monkeypatch)
    videos = sorted(data.rglob("*.avi"))
    rows = [(str(v.relative_to(data)), v.parent.name, "val" if v.stem == "0" else "train") for v in videos]
    (data / "list.csv").write_text("path,label,split\n" + "".join(",".join(r) + "\n" for r in rows), "utf-8")
    lines = [json.dumps({"path": str(v), "label": v.parent.name}, ensure_ascii=False) for v in videos] * 5
    (tmp_path / "list.jsonl").write_text("\n".join(lines) + "\n", "utf-8")  # each video five times: one video
    for source, how in ((data / "list.csv", "DATA's val split"), (tmp_path / "list.jsonl", "20%")):
        result = train(source, checkpoint, tmp_path / f"from-{source.suffix[1:]}", cache)
        assert result.exit_code == 0, result.output
        assert how in result.stderr and "18 cached" in result.stderr
    assert "Warning: " in result.stderr and "18 videos are listed more than once" in result.stderr
    assert "15 videos train, 3 validate" in result.stderr
    record = json.loads((tmp_path / "from-csv" / "training.json").read_text("utf-8"))
    assert record["counts"]["val"] == dict.fromkeys(sorted(COLOURS), 1)
    assert sorted(Path(p).name for p in record["val_videos"]) == ["0.avi"] * len(COLOURS)
    assert record["counts"]["train"] == dict.fromkeys(sorted(COLOURS), PER_LABEL - 1)


def test_split_folders(checkpoint: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for label in ("café", "跳舞"):
        write_labelled(root / "train", label, 2)
        write_labelled(root / "val", label, 1)
    write_labelled(root / "test", "café", 1)  # for evaluate: train leaves them alone
    write_labelled(root / "test", "other", 1)  # a label only in test is not one of the model's
    result = train(root, checkpoint, tmp_path / "m", tmp_path / "cache", "--clips", "1")
    assert result.exit_code == 0, result.output
    assert "4 videos train, 2 validate: DATA's val split" in result.stderr
    assert "2 test videos are left for vivit evaluate" in result.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text("utf-8"))
    assert config["id2label"] == {"0": "café", "1": "跳舞"}


def test_ctrl_c_keeps_what_was_done_and_the_next_run_goes_on(
    data: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forward, calls, interrupted = Classifier.forward, [], []

    def stop_on_the_seventh_view(self: Classifier, x: torch.Tensor, output: str = "probs") -> np.ndarray:
        calls.append(len(x))
        if len(calls) == 7 and not interrupted:  # one view per pass on a CPU, three per video: two are done
            interrupted.append(True)
            raise KeyboardInterrupt
        return forward(self, x, output)

    monkeypatch.setattr(Classifier, "forward", stop_on_the_seventh_view)
    cache = tmp_path / "cache"
    result = train(data, checkpoint, tmp_path / "m", cache)
    assert result.exit_code == 130 and "run the same command again" in result.stderr
    assert len(list(cache.rglob("*.npy"))) == 2 and not list(cache.rglob("*.tmp"))
    assert not (tmp_path / "m").exists()
    calls.clear()
    result = train(data, checkpoint, tmp_path / "m", cache)
    assert result.exit_code == 0, result.output
    assert "2 cached" in result.stderr and sum(calls) == (3 * PER_LABEL - 2) * 3


def test_videos_that_fail_to_decode_are_left_out(checkpoint: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    for label in ("café", "跳舞"):
        write_labelled(root, label, 2)
    (root / "café" / "broken.avi").write_bytes(b"not a video")
    result = train(root, checkpoint, tmp_path / "m", tmp_path / "cache", "--clips", "1")
    assert result.exit_code == 4, result.output  # as batch and evaluate: the model is written from the rest
    assert (tmp_path / "m" / "training.json").is_file() and "Wrote" in result.stderr
    assert "Failed: 1 of 5 videos could not be decoded; they are left out" in result.stderr
    assert result.stderr.count("broken.avi") == 1 and "broken.avi: not a video" in result.stderr  # the path once
    (root / "跳舞" / "1.avi").write_bytes(b"")  # now 跳舞 keeps one video
    result = train(root, checkpoint, tmp_path / "m", tmp_path / "cache", "--clips", "1")
    assert result.exit_code == 2
    assert "once 2 failed videos are left out" in result.stderr and "'跳舞' (1)" in result.stderr


def bad_data(tmp_path: Path, data: Path) -> list[tuple[Path, str]]:
    one_label = tmp_path / "one"
    shutil.copytree(data / "café", one_label / "café")
    one_video = tmp_path / "few"
    shutil.copytree(data / "café", one_video / "café")
    shutil.copytree(data / "跳舞", one_video / "跳舞")
    for extra in sorted((one_video / "跳舞").iterdir())[1:]:
        extra.unlink()
    empty = tmp_path / "empty"
    shutil.copytree(data / "café", empty / "café")
    (empty / "idle").mkdir()
    no_label = tmp_path / "no_label.csv"
    no_label.write_text("path,class\nx.avi,a\n")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("path,label\nx.avi,a\ny.avi,b\n")
    loop = tmp_path / "loop"
    shutil.copytree(data, loop, ignore=shutil.ignore_patterns("*.csv"))
    (loop / "again").symlink_to(loop)  # ln -s "$PWD/D" D/again: a fourth label holding every video again
    newline = tmp_path / "newline"
    shutil.copytree(data / "café", newline / "café")
    shutil.copytree(data / "跳舞", newline / "跳\n舞")
    videos = sorted(data.rglob("*.avi"))
    labels = sorted(COLOURS)
    random_labels = tmp_path / "random.csv"  # each video five times, each time with any label
    random_labels.write_text(
        "path,label\n" + "".join(f"{v},{labels[(i * 7 + k) % 3]}\n" for k in range(5) for i, v in enumerate(videos))
    )
    return [
        (one_label, "only one label ('café')"),
        (one_video, "too few: '跳舞' (1)"),
        (empty, "label folder 'idle' holds no videos"),
        (no_label, "no label column"),
        (unknown, "2 of 2 rows name files that do not exist"),
        (tmp_path / "nowhere", "no such folder or file"),
        (loop, "again: a link back into"),
        (newline, "label '跳\\n舞' holds a control character or line break"),
        (random_labels, "0.avi is listed as"),
    ]


def test_bad_data_is_one_line_before_the_model_runs(
    data: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_model(monkeypatch)
    for source, message in bad_data(tmp_path, data):
        result = train(source, checkpoint, tmp_path / "m", tmp_path / "cache")
        assert result.exit_code == 2, (source, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "m").exists() and not (tmp_path / "cache").exists()


def test_an_out_that_is_not_a_trained_model_needs_force(
    trained: tuple[Path, str],
    data: Path,
    checkpoint: Path,
    cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    no_model(monkeypatch)
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    result = train(data, checkpoint, keep, tmp_path / "cache")
    assert result.exit_code == 2 and "--force" in result.stderr and (keep / "notes.txt").exists()
    assert check_out(tmp_path / "new", force=False) is None
    result = train(data, checkpoint, keep, cache, "--force")  # every video cached: no model runs
    assert result.exit_code == 0, result.output
    assert f"--force: replacing {keep}" in result.stderr
    assert not (keep / "notes.txt").exists() and (keep / "training.json").is_file()
    (tmp_path / "empty").mkdir()
    assert check_out(tmp_path / "empty", force=False) is None


def test_cache_entries_are_keyed_by_file_and_settings(tmp_path: Path) -> None:
    video = tmp_path / "v.avi"
    video.write_bytes(b"x")
    store = EmbeddingCache(tmp_path / "c", {"clips": 1})
    store.put(str(video), np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(store.get(str(video)), np.ones((2, 3)))
    assert EmbeddingCache(tmp_path / "c", {"clips": 2}).get(str(video)) is None
    entry = store.entry(str(video))
    assert entry is not None
    entry.write_bytes(b"torn")  # an entry that cannot be read counts as none: the video is embedded again
    assert store.get(str(video)) is None
    store.put(str(video), np.ones((2, 3), np.float32))
    video.write_bytes(b"xy")  # edited: another size
    assert store.get(str(video)) is None


def test_the_head_reaches_torch_lbfgs_minimum() -> None:
    from vivit_cli.learn import head

    gen = torch.Generator().manual_seed(0)
    n, d, classes = 200, 16, 3
    x = torch.randn(n, d, dtype=torch.float64, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    w = torch.rand(n, dtype=torch.float64, generator=gen) + 0.5
    f = head._objective(x, y, w, classes, 0.01)
    ours = head._lbfgs(f, torch.zeros(classes * (d + 1), dtype=torch.float64))
    theirs = torch.zeros_like(ours, requires_grad=True)
    optimiser = torch.optim.LBFGS([theirs], max_iter=500, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        weight, bias = theirs[:-classes].view(classes, -1), theirs[-classes:]
        ce = torch.nn.functional.cross_entropy(x @ weight.T + bias, y, reduction="none")  # (N,)
        loss = (ce * w).sum() / w.sum() + 0.005 * weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    assert abs(f(ours)[0] - f(theirs.detach())[0]) < 1e-8
    torch.testing.assert_close(ours, theirs.detach(), atol=1e-4, rtol=0)


def test_a_bare_backbone_from_transformers_gets_its_first_head(tmp_path: Path) -> None:
    from tests.checkpoints import make_hf, write_hf
    from vivit_cli.video.preprocess import PreprocessConfig

    base = write_hf(make_hf(base=True, image_size=32), tmp_path / "base")  # VivitModel: a pooler, no classifier
    pre = PreprocessConfig(shortest_edge=32, crop_hw=(32, 32)).to_dict()
    (base / "preprocessor_config.json").write_text(json.dumps(pre))
    root = tmp_path / "data"
    for label in ("café", "跳舞"):
        write_labelled(root, label, 2)
    result = train(root, base, tmp_path / "m", tmp_path / "cache", "--clips", "1")
    assert result.exit_code == 0, result.output
    theirs = hf().VivitForVideoClassification.from_pretrained(tmp_path / "m", attn_implementation="eager").eval()
    ours = load_checkpoint(tmp_path / "m").model
    x = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        torch.testing.assert_close(theirs(x).logits, ours(x).logits, atol=1e-4, rtol=1e-4)


def test_evaluate_on_the_held_out_videos_agrees_with_what_train_said(checkpoint: Path, tmp_path: Path) -> None:
    """`vivit evaluate` of the model on the videos train held out, with the views train used, finds the accuracy,
    per-label figures and log-loss train printed and recorded. Every label's videos look alike, so the head is
    often wrong (half the time here): a different video, clip or average would show."""
    root = tmp_path / "data"
    for k, label in enumerate(COLOURS):
        (root / label).mkdir(parents=True)
        for i in range(5):
            write_video(root / label / f"{i}.avi", FRAMES, SIZE, frame_fn=colour_frames((128, 128, 128), 10 * k + i))
    model = tmp_path / "model"
    trained = train(root, checkpoint, model, tmp_path / "cache", "--val", "0.4")
    assert trained.exit_code == 0, trained.output
    record = json.loads((model / "training.json").read_text("utf-8"))
    said, held_out = record["validation"], record["val_videos"]
    table = tmp_path / "held_out.csv"  # train's val_videos, each labelled by its folder
    table.write_text("path,label\n" + "".join(f"{p},{Path(p).parent.name}\n" for p in held_out), "utf-8")
    s = record["settings"]
    views = ("--clips", s["clips"], "--stride", s["stride"], "--crops", s["crops"])
    result = invoke("evaluate", table, "-m", model, "--dtype", s["dtype"], "-j", "1", *views, "--out", "-")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    videos = report["videos"]
    assert sorted(Path(v["path"]).resolve() for v in videos) == sorted(Path(p).resolve() for p in held_out)
    assert report["accuracy"]["top1"] == pytest.approx(said["accuracy"], abs=1e-6)
    assert f"accuracy {report['accuracy']['top1']:.3f} over {len(held_out)} videos" in trained.stderr
    for m in report["per_label"]:
        assert m == pytest.approx({"label": m["label"], **said["per_label"][m["label"]]}, abs=1e-6)
    log_loss = -np.mean([np.log(v["label_score"]) for v in videos])  # the views' probabilities, averaged
    assert log_loss == pytest.approx(said["log_loss"], abs=1e-4)


def test_an_out_that_would_overlap_data_or_the_model_or_cannot_be_written_is_refused_up_front(
    data: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_model(monkeypatch)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for out, message in [
        (data / "model", "would overlap"),  # inside DATA: read as a label folder by the next run
        (data, "would overlap"),  # DATA itself, even with --force
        (checkpoint, "would overlap"),  # the base model's folder
        (a_file / "model", "is not a folder that can be written"),
    ]:
        result = train(data, checkpoint, out, tmp_path / "cache", "--force")
        assert result.exit_code == 2, (out, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (data / "model").exists() and (checkpoint / "config.json").is_file()
    result = train(data, checkpoint, tmp_path / "m", a_file / "cache")
    assert result.exit_code == 2 and "cannot be written" in result.stderr and "--cache-dir" in result.stderr


def test_videos_whose_features_are_not_finite_are_left_out_and_not_cached(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    for label in ("café", "跳舞"):
        write_labelled(root, label, 3)
    forward, calls = Classifier.forward, []

    def overflow_once(self: Classifier, x: torch.Tensor, output: str = "probs") -> np.ndarray:
        calls.append(len(x))
        out = forward(self, x, output)
        return np.full_like(out, np.nan) if len(calls) == 1 else out  # the first video's view: NaN, as fp16 may

    monkeypatch.setattr(Classifier, "forward", overflow_once)
    cache = tmp_path / "cache"
    result = train(root, checkpoint, tmp_path / "m", cache, "--clips", "1", "--l2", "0.1")
    assert result.exit_code == 4, result.output
    assert "Failed: 1 of 6 videos" in result.stderr and "not finite" in result.stderr
    assert len(list(cache.rglob("*.npy"))) == 5


def test_a_csv_where_some_rows_have_a_split_and_others_none_is_refused(data: Path, tmp_path: Path) -> None:
    videos = sorted(data.rglob("*.avi"))
    rows = [f"{v},{v.parent.name},{'train' if i == 0 else ''}" for i, v in enumerate(videos)]
    listing = tmp_path / "list.csv"
    listing.write_text("path,label,split\n" + "\n".join(rows) + "\n", encoding="utf-8")
    result = invoke("train", listing, "--out", tmp_path / "m")
    assert result.exit_code == 2 and f"{len(videos) - 1} videos have no split while others do" in result.stderr


# A kill mid-swap, what killed runs leave, a full disk


class Killed(BaseException):
    """Stands for SIGKILL at one step of the swap: nothing after it runs (the test also stops the clean-up)."""


def model_at(out: Path) -> list[str]:
    """The labels of the whole model at `out`, as vivit reads it."""
    from vivit_cli.checkpoint import read_config, read_weights

    config, _ = read_config(out)
    assert read_weights(out)  # the weights are there and read
    return list(config.labels)


def two_models(tmp_path: Path) -> tuple[Path, Path]:
    out = write_ours(tmp_path / "models" / "m", labels=["old", "model"])
    new = write_ours(tmp_path / "models" / ".m.abcdefgh", labels=["new", "model", "here"])  # named as export does
    return new, out


@pytest.mark.parametrize("exchange", [True, False], ids=["one-step", "two-renames"])
@pytest.mark.parametrize("kill_at", range(5))  # before each step, and none
def test_a_kill_at_any_step_of_the_swap_leaves_a_whole_model_after_the_next_run_tidies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool, kill_at: int
) -> None:
    from vivit_cli.learn import swap

    new, out = two_models(tmp_path)
    steps = {"n": 0}

    def step(real):
        def run(*args):
            if steps["n"] == kill_at:
                raise Killed
            steps["n"] += 1
            return real(*args)

        return run

    real_exchange = swap._exchange
    monkeypatch.setattr(swap, "_exchange", step(real_exchange if exchange else lambda a, b: False))
    monkeypatch.setattr(swap.os, "replace", step(os.replace))
    monkeypatch.setattr(swap, "_remove", step(swap._remove))
    with contextlib.suppress(Killed):
        swap.swap(new, out)
    monkeypatch.undo()
    if exchange:  # one step: whenever the kill comes, --out is a whole model, old or new
        assert model_at(out) in (["old", "model"], ["new", "model", "here"])
    swap.tidy(out)  # as the next run does, holding --out
    assert model_at(out) in (["old", "model"], ["new", "model", "here"])
    assert sorted(p.name for p in out.parent.iterdir()) == ["m"]


def test_the_next_train_removes_what_a_killed_export_left(
    data: Path, checkpoint: Path, cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "models" / "m"
    for left in (".m.abcdefgh", ".m.old.ijklmnop"):  # a staging folder, an old model moved aside
        (out.parent / left).mkdir(parents=True)
        (out.parent / left / "model.safetensors").write_bytes(b"\0" * 1024)
    (out.parent / ".m.keep-me").mkdir()  # not a name a run of ours gives
    result = train(data, checkpoint, out, cache)
    assert result.exit_code == 0, result.output
    assert model_at(out) == list(COLOURS)
    assert sorted(p.name for p in out.parent.iterdir()) == [".m.keep-me", "m"]


def test_a_full_disk_while_the_model_is_written_is_one_line_and_keeps_the_old_model(
    trained: tuple[Path, str], data: Path, checkpoint: Path, cache: Path, tmp_path: Path, monkeypatch
) -> None:
    from safetensors import SafetensorError

    from vivit_cli import checkpoint as checkpoints

    out = tmp_path / "m"
    shutil.copytree(trained[0], out)

    def full(*_: object) -> None:
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoints, "write_folder", full)
    result = train(data, checkpoint, out, cache, "--l2", "1")
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines()[-1] == f"Error: no space left on device writing {out}"
    assert "Traceback" not in result.output and "Wrote" not in result.stderr
    assert model_at(out) == list(COLOURS)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".m")] == []


def test_what_embed_computed_train_does_not_compute_again(
    data: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "vivit-cache"  # own_cache's $VIVIT_CACHE: where embed keeps each video's view features
    done = invoke("embed", data, "-r", "--model", checkpoint, "--clips", "3", "--out", tmp_path / "e.jsonl", "-j", "1")
    assert done.exit_code == 0, done.output
    no_model(monkeypatch)  # train's default views are embed's --clips 3: every video comes from the cache
    result = train(data, checkpoint, tmp_path / "m", cache / "embeddings")
    assert result.exit_code == 0, result.output
    assert f"{3 * PER_LABEL} cached" in result.stderr
