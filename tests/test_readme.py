"""Every ```python block of README.md runs as written, offline, on a tiny checkpoint and generated videos.

No block's text is changed. What the blocks name is made to exist instead:
- the model `google/vivit-b-16x2-kinetics400` is a tiny random checkpoint put in the test's own Hugging Face cache
  under that name (the Hub is offline in tests, so vivit takes the cached copy, as it would on a plane);
- the files they read are generated in the folder the block runs in: `clip.mp4`, `videos/` (two short videos),
  `preds.parquet` (rows as `vivit batch --out preds.parquet` writes them) and `emb.parquet` (`vivit embed`'s).
A block that names anything else fails here: add it to `workspace` below, with the README.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli

README = Path(__file__).resolve().parent.parent / "README.md"
MODEL = "google/vivit-b-16x2-kinetics400"  # what the examples load
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the cached snapshot's made-up commit
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each ```python block in README.md."""
    text = README.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("tiny"), labels=[f"label {i}" for i in range(5)])


@pytest.fixture()
def workspace(tiny_model: Path, offline_hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the examples run in, with the model in the (offline) cache under the name they use."""
    repo = offline_hub / f"models--{MODEL.replace('/', '--')}"
    shutil.copytree(tiny_model, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)

    work = tmp_path / "work"
    (work / "videos").mkdir(parents=True)
    write_video(work / "clip.mp4", 40, size=(64, 48), fourcc="mp4v")
    write_video(work / "videos" / "a.mp4", 12, size=(64, 48), fourcc="mp4v")
    write_video(work / "videos" / "b.avi", 20, size=(48, 64))
    monkeypatch.chdir(work)
    return work


def test_the_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 4


@pytest.mark.parametrize("line,code", python_blocks(), ids=[f"README.md:{n}" for n, _ in python_blocks()])
def test_python_example_runs(workspace: Path, line: int, code: str) -> None:
    if "pyarrow" in code:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        rows = {"path": ["videos/a.mp4"], "status": ["ok"], "label": ["label 0"], "score": [0.5], "error": [None]}
        pq.write_table(pa.table(rows), workspace / "preds.parquet")
    if "emb.parquet" in code:
        done = CliRunner().invoke(cli, ["embed", "videos", "--out", "emb.parquet"], catch_exceptions=False)
        assert done.exit_code == 0, done.stderr
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__main__"})  # raises what the example would
