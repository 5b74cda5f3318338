"""The terminal's tables as a user reads them on a 120-column terminal: titles and captions on one line, videos
told apart by as few folders as needed and never cut, counts in the singular where there is one."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from vivit_cli.learn.metrics import Outcome, evaluate
from vivit_cli.results import ModelInfo, Prediction, Segment, Timeline, VideoResult, View, Window, short_names
from vivit_cli.writers.evaluation import print_evaluation
from vivit_cli.writers.tables import print_results_table, print_segments_table

TERMINAL_COLUMNS = 120
MODEL = ModelInfo("google/vivit-b-16x2-kinetics400", "8f7e6d5c4b3a29180706", "cuda:0", "bfloat16")
LONG_FOLDER = "/srv/datasets/" + "kinetics-700-2020-validation-subset-" * 3  # a path longer than the terminal


def shown(draw: Any, *args: Any) -> list[str]:
    """What a table prints on a 120-column terminal, line by line, right-trimmed."""
    console = Console(file=io.StringIO(), width=TERMINAL_COLUMNS, color_system=None)
    draw(console, *args)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


def result(path: str, clips: int = 1, crops: int = 1) -> VideoResult:
    views = tuple(View(c, "center", (0, 2), (0.0, 0.1)) for c in range(clips) for _ in range(crops))
    return VideoResult(path, (Prediction("abseiling", 0.9, 0),), MODEL, views, 0.0, 8.0, 8.0, 240, 30.0)


@pytest.mark.parametrize(
    "paths, names",
    [
        (["a/n0.mp4", "b/n0.mp4", "c/n1.mp4"], ["a/n0.mp4", "b/n0.mp4", "n1.mp4"]),
        (["x/a/n0.mp4", "y/a/n0.mp4"], ["x/a/n0.mp4", "y/a/n0.mp4"]),
        (["a/n0.mp4", "/data/a/n0.mp4"], ["a/n0.mp4", "data/a/n0.mp4"]),  # one is the other's tail
        (["n0.mp4", "n0.mp4"], ["n0.mp4", "n0.mp4"]),  # one video named twice
    ],
)
def test_the_shortest_tail_that_tells_videos_apart(paths: list[str], names: list[str]) -> None:
    found = short_names(paths)
    assert [found[p] for p in paths] == names


def test_classify_titles_tell_two_videos_of_one_name_apart_on_one_line() -> None:
    paths = ["clips/train/n0.mp4", "clips/val/n0.mp4"]
    names = short_names(paths)
    first, second = (shown(print_results_table, result(p, 1, 1), names[p]) for p in paths)
    assert first[0] == "train/n0.mp4  8.0 s, 1 clip x 1 crop"
    assert second[0] == "val/n0.mp4  8.0 s, 1 clip x 1 crop"
    assert first[-1] == "model google/vivit-b-16x2-kinetics400 @ 8f7e6d5c4b3a on cuda:0, bfloat16"
    assert shown(print_results_table, result("n0.mp4", 4, 3))[0] == "n0.mp4  8.0 s, 4 clips x 3 crops"


def test_a_timeline_title_of_one_window_is_one_line() -> None:
    window = Window(0, 0.0, 1.0, (0, 2, 4, 6), (Prediction("abseiling", 0.9, 0),))
    segment = Segment(0, "abseiling", 0.9, 0.0, 1.0, 0, 0)
    timeline = Timeline("talks/keynote [final].mp4", MODEL, ("abseiling",), (window,), (segment,), ((0.0, 1.0),),
                        None, 0.0, 1.0, 1.0, 0.5)  # fmt: skip
    lines = shown(print_segments_table, timeline)
    assert lines[0] == "keynote [final].mp4  0:01.0, 1 window every 1 s, threshold 0.5"  # no markup eaten


def test_evaluate_tables_keep_titles_whole_and_paths_uncut() -> None:
    twins = [f"/srv/{disk}/{LONG_FOLDER}/climbing/n0.mp4" for disk in ("one", "two")]  # alike but for the disk
    outcomes = [
        Outcome("data/abseiling/n0.mp4", "abseiling", "climbing", 0.9, 0.05, 2),
        Outcome(twins[0], "climbing", "abseiling", 0.8, 0.1, 2),
        Outcome(twins[1], "climbing", "abseiling", 0.7, 0.2, 2),
        Outcome("data/climbing/n1.mp4", "climbing", "climbing", 0.7, 0.7, 1),
    ]
    evaluation = evaluate(outcomes, ["abseiling", "climbing"])
    what = "data/kinetics-700-2020/validation-subset, test split"
    lines = shown(print_evaluation, evaluation, MODEL, what)
    titles = [line for line in lines if line and line[0] not in "┏┃┡│├└"]
    assert titles[0].startswith("top-1 25.0%") and titles[0].endswith(f"  4 videos of {what}")
    assert titles[1:] == [
        "model google/vivit-b-16x2-kinetics400 @ 8f7e6d5c4b3a on cuda:0, bfloat16",
        "confusion  rows: true label, columns: predicted",
        "misclassified  3 videos, most confident first",
    ]
    misses = lines[lines.index(titles[-1]) + 4 : -1]  # under the header, above the bottom rule
    cells = [line.split("│")[1].strip() for line in misses]
    assert cells[0] == "abseiling/n0.mp4"  # its name is its own: the base name and one folder
    # Each twin is folded onto more lines, whole from the folder that tells it apart: never cut short.
    assert "".join(cells[1:]) == "".join(twin.removeprefix("/srv/") for twin in twins)
    assert "…" not in "".join(lines)


def test_counts_of_one_are_singular_in_what_commands_say(tmp_path) -> None:
    from click.testing import CliRunner

    from tests.checkpoints import write_ours
    from tests.videos import write_video
    from vivit_cli.cli import cli

    model = str(write_ours(tmp_path / "m", labels=["a", "b", "c"]))
    video = str(write_video(tmp_path / "v.avi", 12, size=(40, 32)))
    said = {
        command: CliRunner().invoke(cli, [command, video, "--model", model, "--device", "cpu", *more])
        for command, more in (("batch", ["--out", str(tmp_path / "rows.csv")]), ("timeline", []))
    }
    assert "; 1 video in " in said["batch"].stderr, said["batch"].stderr
    assert "Scoring 1 window of " in said["timeline"].stderr, said["timeline"].stderr
    assert "1 window every" in said["timeline"].stdout, said["timeline"].stdout
