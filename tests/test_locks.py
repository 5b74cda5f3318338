"""One run at a time on an output: a second holder is refused at once, and a run killed with SIGKILL leaves no
hold behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vivit_cli.errors import SourceError
from vivit_cli.locks import held, lock_path

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock")

HOLD = """
import sys, time
from vivit_cli.locks import held
with held(sys.argv[1], "--out"):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_child(path: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_second_run_is_refused_while_the_first_holds(tmp_path: Path) -> None:
    out = tmp_path / "s.csv"
    child = hold_in_child(out)
    try:
        with pytest.raises(
            SourceError, match=rf"--out .*s\.csv is in use by another vivit run \(process {child.pid}\)"
        ):
            with held(out, "--out"):
                pass
    finally:
        child.kill()
        child.wait()


def test_a_killed_holder_does_not_block_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "model"
    child = hold_in_child(out)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert lock_path(out).exists()  # left behind by the kill, and harmless
    with held(out, "--out"):
        assert lock_path(out).read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()


def test_a_hold_is_let_go_after_an_error(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    with pytest.raises(RuntimeError), held(out, "--out"):
        raise RuntimeError("boom")
    assert not lock_path(out).exists()
    with held(out, "--out"):
        pass
