"""DATA forms (label folders, split folders, CSV, JSONL), their errors, and the stratified split."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from vivit_cli.errors import SourceError
from vivit_cli.learn.data import Example, read_data, stratified_split

UNICODE_LABELS = ["café", "Ελληνικά", "跳舞"]


def touch(path: Path) -> Path:
    """Reading DATA never decodes: an empty file with a video suffix stands for a video."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def label_folders(root: Path, counts: dict[str, int], split: str | None = None) -> Path:
    for label, n in counts.items():
        for i in range(n):
            touch(root / (split or "") / label / f"{i}.mp4")
    return root


def test_label_folders(tmp_path: Path) -> None:
    root = label_folders(tmp_path / "data", {"b": 2, "a": 3})
    touch(root / "a" / "notes.txt")
    touch(root / "a" / "deeper" / "x.avi")
    data = read_data(root)
    assert data.labels == ("a", "b")
    assert data.counts() == {"a": 4, "b": 2}
    assert {e.split for e in data.examples} == {None} and data.splits == ()
    assert all(Path(e.path).is_file() and Path(e.path).suffix in {".mp4", ".avi"} for e in data.examples)
    assert data.source == str(root)


def test_split_folders(tmp_path: Path) -> None:
    root = label_folders(tmp_path / "data", {"a": 3, "b": 2}, "train")
    label_folders(root, {"a": 1, "b": 1}, "val")
    label_folders(root, {"a": 1, "c": 1}, "test")
    data = read_data(root)
    assert data.labels == ("a", "b", "c")
    assert data.splits == ("train", "val", "test")
    assert data.counts(data.split("train")) == {"a": 3, "b": 2, "c": 0}
    assert data.counts(data.split("val")) == {"a": 1, "b": 1, "c": 0}
    assert len(data.split("test")) == 2


def test_unicode_label_folders_are_composed(tmp_path: Path) -> None:
    names = [unicodedata.normalize("NFD", label) for label in UNICODE_LABELS]  # as macOS writes them
    data = read_data(label_folders(tmp_path / "data", dict.fromkeys(names, 1)))
    assert set(data.labels) == set(UNICODE_LABELS)


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_tables(tmp_path: Path, kind: str) -> None:
    for name in ("x.mp4", "y.mp4", "sub/z.mp4"):
        touch(tmp_path / "videos" / name)
    rows = [("x.mp4", "café", "train"), ("y.mp4", "跳舞", "validation"), ("sub/z.mp4", "café", "")]
    table = tmp_path / "videos" / f"list.{kind}"
    if kind == "csv":
        table.write_text("Path,label,Split\n" + "".join(f"{p},{lab},{s}\n" for p, lab, s in rows) + "\n", "utf-8")
    else:
        table.write_text("".join(json.dumps({"path": p, "label": lab, "split": s}) + "\n" for p, lab, s in rows))
    data = read_data(table)
    assert [(Path(e.path).name, e.label, e.split) for e in data.examples] == [
        ("x.mp4", "café", "train"),
        ("y.mp4", "跳舞", "val"),
        ("z.mp4", "café", None),
    ]
    assert all(Path(e.path).is_file() for e in data.examples)
    assert data.labels == ("café", "跳舞")


def test_csv_without_split_column(tmp_path: Path) -> None:
    touch(tmp_path / "a.mp4")
    (tmp_path / "l.csv").write_text("label,path\nrun,a.mp4\n")
    (example,) = read_data(tmp_path / "l.csv").examples
    assert example == Example(str(tmp_path / "a.mp4"), "run", None)


def bad_inputs(tmp_path: Path) -> list[tuple[Path, str]]:
    empty = label_folders(tmp_path / "empty", {"a": 2})
    (empty / "sleep").mkdir()
    touch(tmp_path / "v" / "a.mp4")
    no_label = tmp_path / "v" / "no_label.csv"
    no_label.write_text("path,name\na.mp4,x\n")
    unknown = tmp_path / "v" / "unknown.csv"
    unknown.write_text("path,label\na.mp4,x\n" + "".join(f"gone{i}.mp4,x\n" for i in range(5)))
    jsonl = tmp_path / "v" / "bad.jsonl"
    jsonl.write_text('{"path": "a.mp4"}\n')
    loose = label_folders(tmp_path / "loose", {"a": 1})
    touch(loose / "stray.mp4")
    no_videos = tmp_path / "nothing"
    (no_videos / "a").mkdir(parents=True)
    touch(no_videos / "a" / "readme.txt")
    header_only = tmp_path / "v" / "header.csv"
    header_only.write_text("path,label\n")
    bad_split = tmp_path / "v" / "split.csv"
    bad_split.write_text("path,label,split\na.mp4,x,dev\n")
    return [
        (tmp_path / "missing", "no such folder or file"),
        (empty, "label folder 'sleep' holds no videos"),
        (no_label, "no label column"),
        (unknown, "5 of 6 rows name files that do not exist"),
        (jsonl, "no label column"),
        (loose, "a video outside any label folder"),
        (no_videos, "holds no videos"),
        (header_only, "no videos found"),
        (bad_split, "split 'dev' is none of train, val, test"),
        (touch(tmp_path / "v" / "list.txt"), "not a folder, .csv or .jsonl"),
    ]


def test_bad_inputs(tmp_path: Path) -> None:
    for source, message in bad_inputs(tmp_path):
        with pytest.raises(SourceError, match=message) as e:
            read_data(source)
        assert "\n" not in str(e.value)
    with pytest.raises(SourceError, match=r"gone0\.mp4, .*gone2\.mp4 \(\+2 more\)"):
        read_data(tmp_path / "v" / "unknown.csv")


def examples(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label}/{i}.mp4", label, None) for label, n in counts.items() for i in range(n)]


@pytest.mark.parametrize("fraction", [0.01, 0.2, 0.5, 0.99])
def test_stratified_split(fraction: float) -> None:
    counts = {"one": 1, "two": 2, "three": 3, "many": 50}
    every = examples(counts)
    train, val = stratified_split(every, fraction, seed=7)
    assert sorted(train + val, key=every.index) == every and not set(train) & set(val)
    for label, n in counts.items():
        held = sum(e.label == label for e in val)
        assert n - held >= 1 and (held >= 1 or n == 1)
    many = sum(e.label == "many" for e in val)
    assert min(49, max(1, round(50 * fraction))) == many
    assert stratified_split(list(reversed(every)), fraction, seed=7)[1] == tuple(reversed(val))
    assert stratified_split(every, fraction, seed=8)[1] != val or fraction > 0.9


def test_split_fraction_checked() -> None:
    with pytest.raises(SourceError, match="between 0 and 1"):
        stratified_split(examples({"a": 2}), 1.0, seed=0)


def hostile_inputs(tmp_path: Path) -> list[tuple[Path, str]]:
    """DATA that would mislead rather than fail: a link back into itself, labels no table or plot can show, one
    video under two labels."""
    loop = label_folders(tmp_path / "loop", {"a": 2, "b": 2})
    (loop / "again").symlink_to(loop.resolve())  # ln -s "$PWD/D" D/loop: every video again, as a third label
    up = label_folders(tmp_path / "up", {"a": 2, "b": 2})
    (up / "a" / "parent").symlink_to("..")  # inside a label folder: not followed, nothing to report
    (up / "c").symlink_to(tmp_path)  # above DATA: DATA again, and more
    split_loop = label_folders(tmp_path / "split_loop", {"a": 2}, "train")
    (split_loop / "val").mkdir()
    (split_loop / "val" / "a").symlink_to(split_loop / "train" / "a")  # the same videos as val too
    newline = label_folders(tmp_path / "newline", {"a": 1, "b\nc": 1})
    blank = label_folders(tmp_path / "blank", {"a": 1, "\n": 1})
    spaces = label_folders(tmp_path / "spaces", {"a": 1, "   ": 1})
    touch(tmp_path / "t" / "x.mp4")
    touch(tmp_path / "t" / "y.mp4")
    tab = tmp_path / "t" / "tab.csv"
    tab.write_text('path,label\nx.mp4,"run\tfast"\n')
    separator = tmp_path / "t" / "separator.jsonl"
    separator.write_text(json.dumps({"path": "x.mp4", "label": "run\u2028fast"}) + "\n")
    two_labels = tmp_path / "t" / "two.csv"
    two_labels.write_text("path,label\nx.mp4,run\ny.mp4,walk\n./x.mp4,walk\n")
    two_splits = tmp_path / "t" / "splits.csv"
    two_splits.write_text("path,label,split\nx.mp4,run,train\nx.mp4,run,val\n")
    return [
        (loop, r"loop/again: a link back into .*loop .*remove the link"),
        (up, r"up/c: a link back into"),
        (split_loop, r"split_loop/val/a: a link back into"),
        (newline, r"'.*newline/b\\nc': label 'b\\nc' holds a control character or line break"),
        (blank, r"'.*blank/\\n': an empty label; rename the folder"),
        (spaces, r"spaces/   : an empty label; rename the folder"),
        (tab, r"tab\.csv, line 2: label 'run\\tfast' holds a control character"),
        (separator, r"separator\.jsonl, line 1: label 'run\\u2028fast' holds a control character or line break"),
        (two_labels, r"x\.mp4 is listed as 'run' and as 'walk': a video has one label"),
        (two_splits, r"x\.mp4 is listed as 'run' \(train\) and as 'run' \(val\)"),
    ]


def test_hostile_inputs_are_one_line_errors_naming_the_cause(tmp_path: Path) -> None:
    for source, message in hostile_inputs(tmp_path):
        with pytest.raises(SourceError, match=message) as e:
            read_data(source)
        assert "\n" not in str(e.value) and "\u2028" not in str(e.value)


def test_a_link_inside_a_label_folder_is_not_followed(tmp_path: Path) -> None:
    root = label_folders(tmp_path / "data", {"a": 2, "b": 1})
    (root / "a" / "up").symlink_to("..")
    assert read_data(root).counts() == {"a": 2, "b": 1}


def test_a_video_listed_again_with_its_label_is_one_video_and_a_warning(tmp_path: Path) -> None:
    """Each video five times (as `./x` and `x`, or through a link): counted five times, validation would judge
    videos the head trained on, and every figure would count them again."""
    for name in ("x.mp4", "y.mp4", "z.mp4"):
        touch(tmp_path / name)
    (tmp_path / "link.mp4").symlink_to("z.mp4")
    rows = "".join(f"{p},{lab}\n" for _ in range(5) for p, lab in (("x.mp4", "a"), ("./y.mp4", "b"), ("y.mp4", "b")))
    table = tmp_path / "l.csv"
    table.write_text("path,label\n" + rows + "z.mp4,a\nlink.mp4,a\n")
    with pytest.warns(UserWarning, match=r"3 videos are listed more than once: .*y\.mp4 \(10 times\), .*x\.mp4 "):
        data = read_data(table)
    assert [(Path(e.path).name, e.label) for e in data.examples] == [("x.mp4", "a"), ("y.mp4", "b"), ("z.mp4", "a")]
    assert data.counts() == {"a": 2, "b": 1}
