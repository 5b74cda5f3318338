"""Damaged videos (tests/fuzz.py, a fixed seed): batch gives one row per file, classify names every failure.

The long run, a few hundred variants of both containers through both commands, is benchmarks/fuzz.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import fuzz
from tests.checkpoints import write_ours
from vivit_cli.cli import cli

VARIANTS = 40
TIMEOUT_S = "60"  # per file: a damaged file that hangs its decoder costs this, once


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return fuzz.variants(tmp_path_factory.mktemp("fuzz"), VARIANTS)


def test_batch_gives_one_row_per_damaged_file(checkpoint: Path, damaged: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    args = ["-q", "batch", *map(str, damaged), "--model", str(checkpoint), "--out", str(out), "--timeout", TIMEOUT_S]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 4), result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(map(str, damaged))
    assert all(r["status"] == "ok" or (r["error"] and r["path"] not in r["error"]) for r in rows)  # why, not where


def test_classify_names_every_damaged_file_it_cannot_read(checkpoint: Path, damaged: list[Path]) -> None:
    args = ["classify", *map(str, damaged), "--model", str(checkpoint), "--json", "--timeout", TIMEOUT_S]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 4), result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in rows] == list(map(str, damaged))  # in order, none lost
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: {r['path']}: {r['error']}" for r in rows if r["status"] == "error"]
    assert (result.exit_code == 4) == bool(errors)
    assert {r["status"] for r in rows} == {"ok", "error"}  # the damage is neither all fatal nor all harmless
