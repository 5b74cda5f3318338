"""`vivit embed`: each video's CLS embedding averaged over its views, as Parquet (a fixed-size float32 list), JSONL or
JSON; error rows, --resume and the refusals of a batch run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli
from vivit_cli.pipeline import load_model
from vivit_cli.video.sampling import Views
from vivit_cli.video.views import prepare_video
from vivit_cli.writers import read_records

FRAMES = 14  # per test video: two 4-frame clips at stride 2 fit with room to spread
SIZE = (40, 32)  # pixels, width x height
GOOD = ["a.avi", "b.avi", "c.avi"]
HIDDEN = 24  # the tiny checkpoint's hidden size: the embedding's length


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["waving", "running", "eating"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for i, name in enumerate(GOOD):  # lengths differ, so the embeddings differ
        write_video(root / name, FRAMES + 3 * i, size=SIZE)
    (root / "broken.avi").write_text("not a video\n")
    return root


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def cls_embedding(checkpoint: Path, path: Path, views: Views) -> np.ndarray:
    """What the model's final LayerNorm gives for the CLS token, averaged over `views`, computed here directly."""
    classifier = load_model(checkpoint, dtype="float32")
    prepared = prepare_video(path, classifier.config.num_frames, classifier.preprocess, views)
    with torch.inference_mode():
        x = classifier.preprocess.normalise(torch.from_numpy(prepared.frames))  # (V, T, C, S, S)
        hidden = classifier.model.vivit(x).last_hidden_state  # (V, N, D)
    return hidden[:, 0].mean(dim=0).numpy()  # (D,)


def test_embedding_is_the_cls_token_averaged_over_the_views(folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "emb.jsonl"
    result = invoke("embed", str(folder), "--model", str(checkpoint), "--clips", "2", "--out", str(out))
    assert result.exit_code == 4, result.stderr  # broken.avi
    rows = {Path(r["path"]).name: r for r in read_records(out, "jsonl")}
    assert sorted(rows) == sorted([*GOOD, "broken.avi"])
    for name in GOOD:
        row = rows[name]
        assert row["status"] == "ok" and len(row["views"]) == 2 and row["model"] == str(checkpoint)
        vector = np.array(row["embedding"], dtype=np.float32)
        assert vector.shape == (HIDDEN,)
        np.testing.assert_allclose(
            vector, cls_embedding(checkpoint, folder / name, Views(clips=2)), rtol=1e-5, atol=1e-6
        )
    assert not np.allclose(rows["a.avi"]["embedding"], rows["c.avi"]["embedding"])
    broken = rows["broken.avi"]
    assert broken["status"] == "error" and broken["embedding"] is None and broken["error"]
    assert "predictions" not in broken
    assert "Done: 3 ok, 1 failed" in result.stderr and "broken.avi" in result.stderr


def test_parquet_is_a_fixed_size_float32_list_with_the_jsonl_values(
    folder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "emb.parquet"
    invoke("embed", str(folder), "--model", str(checkpoint), "--out", str(out))
    invoke("embed", str(folder), "--model", str(checkpoint), "--out", str(tmp_path / "emb.json"))
    table = pq.read_table(out)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), HIDDEN)
    frame = table.to_pandas()  # read as it is, with no code of ours
    ok = frame[frame.status == "ok"]
    matrix = np.stack(ok.embedding.to_numpy())  # (videos, D)
    assert matrix.shape == (len(GOOD), HIDDEN) and matrix.dtype == np.float32
    as_json = {r["path"]: r["embedding"] for r in read_records(tmp_path / "emb.json", "json")}
    for path, vector in zip(ok.path, matrix, strict=True):
        np.testing.assert_array_equal(vector, np.array(as_json[path], dtype=np.float32))  # the same float32 values
    assert frame[frame.status == "error"].embedding.isna().all()


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_resume_completes_without_duplicates(folder: Path, checkpoint: Path, tmp_path: Path, suffix: str) -> None:
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"emb.{suffix}"
    first = invoke("embed", str(folder / "a.avi"), str(folder / "b.avi"), "--model", str(checkpoint), "--out", str(out))
    assert first.exit_code == 0, first.stderr
    kept = {r["path"]: r["embedding"] for r in read_records(out, suffix)}
    again = invoke("embed", str(folder), "--model", str(checkpoint), "--out", str(out), "--resume")
    assert "2 already done" in again.stderr
    rows = list(read_records(out, suffix))
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)) == len(GOOD) + 1
    for path, vector in kept.items():  # the finished rows are kept as they were
        assert next(r["embedding"] for r in rows if r["path"] == path) == pytest.approx(vector)


def test_bad_output_names_are_refused_before_any_model_loads(folder: Path, tmp_path: Path) -> None:
    missing_model = str(tmp_path / "no-such-model")  # never reached: the output is checked first
    csv = invoke("embed", str(folder), "--model", missing_model, "--out", str(tmp_path / "emb.csv"))
    assert csv.exit_code == 2
    assert "embeddings go to a .parquet, .jsonl or .json file" in csv.stderr
    stdout_parquet = invoke("embed", str(folder), "--model", missing_model, "--format", "parquet")
    assert stdout_parquet.exit_code == 2 and "Parquet goes to a file" in stdout_parquet.stderr
    top_k = invoke("embed", str(folder), "--top-k", "3")
    assert top_k.exit_code == 2 and "No such option" in top_k.stderr


def test_jsonl_on_stdout_is_pure_data(folder: Path, checkpoint: Path) -> None:
    result = invoke("embed", str(folder / "a.avi"), "--model", str(checkpoint), "-q")
    assert result.exit_code == 0 and result.stderr == ""
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["status"] == "ok" and len(row["embedding"]) == HIDDEN and row["dtype"] == "float32"


@pytest.mark.parametrize("command,suffix", [("embed", "jsonl"), ("batch", "csv")])
def test_resume_with_other_views_is_refused_before_the_model_loads(
    folder: Path, checkpoint: Path, tmp_path: Path, command: str, suffix: str
) -> None:
    out = tmp_path / f"rows.{suffix}"
    first = invoke(command, str(folder / "a.avi"), "--model", str(checkpoint), "--clips", "2", "--out", str(out))
    assert first.exit_code == 0, first.stderr
    before = out.read_bytes()
    missing_model = str(tmp_path / "no-such-model")  # never reached: the views are checked first
    again = invoke(command, str(folder), "--model", missing_model, "--out", str(out), "--resume")
    assert again.exit_code == 2 and "holds rows of 2 clips x 1 crops, not 1 x 1" in again.stderr
    assert out.read_bytes() == before
    same = invoke(command, str(folder), "--model", str(checkpoint), "--clips", "2", "--out", str(out), "--resume")
    assert same.exit_code == 4 and "1 already done" in same.stderr  # broken.avi fails
