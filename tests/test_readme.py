"""Every ```python block of README.md and docs/*.md runs as written, offline, on a tiny checkpoint and generated
videos; and the README's outputs marked as real are what the commands print.

No block's text is changed. What the blocks name is made to exist instead:
- the model `google/vivit-b-16x2-kinetics400` is a tiny random checkpoint with Kinetics label names, put in the
  test's own Hugging Face cache under that name (the Hub is offline in tests, so vivit takes the cached copy, as
  it would on a plane);
- the files they read are generated in the folder the block runs in: `clip.mp4`, `videos/` (two short videos),
  `preds.parquet` (rows as `vivit batch --out preds.parquet` writes them) and `emb.parquet` (`vivit embed`'s).
A block that names anything else fails here: add it to `workspace` below, with the page.

A ```console block right after an HTML comment that names this file is real output: each `$ ` line is run in
bash (as `vivit`, this tree's CLI) in a folder like the one above, and what it prints on stdout must be the lines
that follow it, as shown (trailing spaces aside).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MODEL = "google/vivit-b-16x2-kinetics400"  # what the examples load
COMMIT = "0123456789abcdef0123456789abcdef01234567"  # the cached snapshot's made-up commit
# Kinetics-400 names, in its class-id (alphabetical) order, so that examples can name real labels.
LABELS = sorted(
    [
        "contact juggling",
        "dancing ballet",
        "dribbling basketball",
        "juggling balls",
        "juggling fire",
        "juggling soccer ball",
        "playing guitar",
        "riding a bike",
        "skateboarding",
        "surfing water",
    ]
)
# The real outputs' model: ViViT-B's clip and patch shape (32 frames of 224 px, 16 px patches), tiny otherwise.
SHOWN_MODEL = dict(num_frames=32, image_size=224, tubelet_size=[2, 16, 16])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
REAL_OUTPUT = re.compile(r"<!--[^>]*tests/test_readme\.py[^>]*-->\n```console\n(.*?)^```", re.DOTALL | re.MULTILINE)


def page_name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def blocks(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """("page:line", text) of each match of `pattern` in the pages."""
    found = []
    for page in PAGES:
        text = page.read_text("utf-8")
        for m in pattern.finditer(text):
            found.append((f"{page_name(page)}:{text.count(chr(10), 0, m.start()) + 1}", m.group(1)))
    return found


def python_blocks() -> list[tuple[str, str]]:
    return blocks(BLOCK)


def real_outputs() -> list[tuple[str, str]]:
    return blocks(REAL_OUTPUT)


def cache_model(hub_cache: Path, model: Path) -> None:
    """Put a checkpoint folder in the Hugging Face cache as MODEL at COMMIT."""
    repo = hub_cache / f"models--{MODEL.replace('/', '--')}"
    shutil.copytree(model, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("tiny"), labels=LABELS)


@pytest.fixture()
def workspace(tiny_model: Path, offline_hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder the examples run in, with the model in the (offline) cache under the name they use."""
    cache_model(offline_hub, tiny_model)
    work = tmp_path / "work"
    (work / "videos").mkdir(parents=True)
    write_video(work / "clip.mp4", 40, size=(64, 48), fourcc="mp4v")
    write_video(work / "videos" / "a.mp4", 12, size=(64, 48), fourcc="mp4v")
    write_video(work / "videos" / "b.avi", 20, size=(48, 64))
    monkeypatch.chdir(work)
    return work


def test_the_pages_have_python_examples() -> None:
    assert len(python_blocks()) >= 4
    assert {where.split(":")[0] for where, _ in python_blocks()} >= {"docs/python.md", "docs/batch.md"}


@pytest.mark.parametrize("where,code", python_blocks(), ids=[where for where, _ in python_blocks()])
def test_python_example_runs(workspace: Path, where: str, code: str) -> None:
    if "pyarrow" in code:
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq

        rows = {"path": ["videos/a.mp4"], "status": ["ok"], "label": [LABELS[0]], "score": [0.5], "error": [None]}
        pq.write_table(pa.table(rows), workspace / "preds.parquet")
    if "emb.parquet" in code:
        done = CliRunner().invoke(cli, ["embed", "videos", "--out", "emb.parquet"], catch_exceptions=False)
        assert done.exit_code == 0, done.stderr
    exec(compile(code, where, "exec"), {"__name__": "__main__"})  # raises what the example would


def test_the_readme_shows_real_output() -> None:
    assert any(where.startswith("README.md:") for where, _ in real_outputs())


def commands(block: str) -> list[tuple[str, list[str]]]:
    """(command, the lines it prints) of a console block."""
    runs: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            runs.append((line[2:], []))
        else:
            runs[-1][1].append(line.rstrip())
    return runs


@pytest.mark.parametrize("where,block", real_outputs(), ids=[where for where, _ in real_outputs()])
def test_real_output_is_what_the_command_prints(offline_hub: Path, tmp_path: Path, where: str, block: str) -> None:
    cache_model(offline_hub, write_ours(tmp_path / "shown-model", labels=LABELS, **SHOWN_MODEL))
    work = tmp_path / "work"
    (work / "videos").mkdir(parents=True)
    write_video(work / "clip.mp4", 300, size=(320, 240), fourcc="mp4v")  # 10 s at 30 fps
    write_video(work / "videos" / "a.mp4", 150, size=(320, 240), fourcc="mp4v")
    write_video(work / "videos" / "b.mp4", 240, size=(320, 240), fourcc="mp4v")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "100"}
    vivit = f'vivit() {{ "{sys.executable}" -m vivit_cli "$@"; }}; set -o pipefail; '
    for command, shown in commands(block):
        done = subprocess.run(["bash", "-c", vivit + command], cwd=work, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{where}: $ {command}\n{done.stderr}"
        assert [line.rstrip() for line in done.stdout.splitlines()] == shown, f"{where}: $ {command}"
