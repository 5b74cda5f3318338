"""The writers on their own: format selection per command, CSV cells, JSON valid after every row, reading back."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from vivit_cli.errors import SourceError
from vivit_cli.results import LiveEvent, LivePrediction, ModelInfo, Prediction, Segment, Timeline, Window
from vivit_cli.writers.formats import format_for, get_writer, open_output, read_records, write_all
from vivit_cli.writers.live import (
    TIMELINE,
    WEBCAM,
    timeline_records,
    timeline_row,
    webcam_event_record,
    webcam_record,
    webcam_row,
)
from vivit_cli.writers.records import BATCH, Schema, batch_row, best_cells, error_record, top_cells

TOP3 = [
    {"label": "juggling", "score": 0.5, "index": 3},
    {"label": "waving", "score": 0.25, "index": 0},
    {"label": "archery", "score": 0.000123, "index": 4},
]
OK = {
    "path": "a.mp4",
    "status": "ok",
    "predictions": TOP3,
    "views": [
        {"clip": c, "crop": crop, "frame_indices": [0], "timestamps_s": [0.0]}
        for c in (0, 1)
        for crop in ("left", "center", "right")
    ],
    "duration_s": 1.5,
    "num_frames": 45,
    "fps": 30.0,
    "model": "org/m",
    "revision": "abc",
    "device": "cpu",
    "dtype": "bfloat16",
}


# Format selection: one function, each command's formats and words.


@pytest.mark.parametrize(
    "schema,path,explicit,expected",
    [
        (BATCH, None, None, "jsonl"),
        (BATCH, "-", None, "jsonl"),
        (BATCH, "rows.CSV", None, "csv"),
        (BATCH, "rows.json", None, "json"),
        (BATCH, "rows.jsonl", None, "jsonl"),
        (BATCH, "rows.parquet", None, "parquet"),
        (BATCH, "rows.txt", "csv", "csv"),  # --format wins over the suffix
        (BATCH, "rows.csv", "parquet", "parquet"),
        (TIMELINE, "-", None, "jsonl"),
        (TIMELINE, "t.csv", None, "csv"),
        (TIMELINE, "t.json", None, "json"),
        (TIMELINE, "t.jsonl", None, "jsonl"),
        (WEBCAM, "-", None, "jsonl"),
        (WEBCAM, "log.csv", None, "csv"),
        (WEBCAM, "log.jsonl", None, "jsonl"),
    ],
)
def test_format_from_the_name_or_format(schema: Schema, path: str | None, explicit: str | None, expected: str):
    assert format_for(path, explicit, schema) == expected


@pytest.mark.parametrize(
    "schema,path,message",
    [
        (
            BATCH,
            "rows.txt",
            "cannot tell the format of rows.txt: use a .csv, .json, .jsonl or .parquet name, or --format",
        ),
        (BATCH, "rows", "cannot tell the format of rows: use a .csv, .json, .jsonl or .parquet name, or --format"),
        (
            TIMELINE,
            "t.parquet",
            "t.parquet: cannot tell the format: use a .csv, .json or .jsonl name, or - for JSONL on stdout",
        ),
        (
            TIMELINE,
            "t.txt",
            "t.txt: cannot tell the format: use a .csv, .json or .jsonl name, or - for JSONL on stdout",
        ),
        (WEBCAM, "log.json", "--out log.json: use a .csv or .jsonl name (or - for JSONL on stdout)"),
        (WEBCAM, "log.parquet", "--out log.parquet: use a .csv or .jsonl name (or - for JSONL on stdout)"),
    ],
)
def test_a_name_of_no_format_is_the_commands_error(schema: Schema, path: str, message: str) -> None:
    with pytest.raises(SourceError) as e:
        format_for(path, None, schema)
    assert str(e.value) == message and e.value.exit_code == 2


# CSV cells: the same top-k cells in every command's rows.


def test_top_k_cells() -> None:
    assert top_cells(TOP3) == {"top_labels": "juggling|waving|archery", "top_scores": "0.500000|0.250000|0.000123"}
    assert best_cells(TOP3) == {"label": "juggling", "score": "0.500000", **top_cells(TOP3)}
    assert best_cells([]) == {"label": "", "score": "", "top_labels": "", "top_scores": ""}


def test_batch_rows() -> None:
    assert batch_row(OK) == {
        "path": "a.mp4",
        "status": "ok",
        **best_cells(TOP3),
        "views": "2x3",
        "duration_s": 1.5,
        "num_frames": 45,
        "fps": 30.0,
        "model": "org/m",
        "revision": "abc",
        "device": "cpu",
        "dtype": "bfloat16",
        "error": "",
    }
    failed = batch_row(error_record("b.mp4", "not a video", "org/m"))
    assert failed == {
        "path": "b.mp4",
        "status": "error",
        "label": "",
        "score": "",
        "top_labels": "",
        "top_scores": "",
        "views": "",
        "duration_s": "",
        "num_frames": "",
        "fps": "",
        "model": "org/m",
        "revision": "",
        "device": "",
        "dtype": "",
        "error": "not a video",
    }
    assert batch_row(batch_row(OK)) == batch_row(OK)  # a row read back from a CSV file is already flat


def test_csv_bytes_of_every_command() -> None:
    stream = io.StringIO()
    get_writer("csv", stream, BATCH).write(OK)
    assert stream.getvalue() == (
        "path,status,label,score,top_labels,top_scores,views,duration_s,num_frames,fps,model,revision,device,dtype,"
        "error\n"
        "a.mp4,ok,juggling,0.500000,juggling|waving|archery,0.500000|0.250000|0.000123,"
        "2x3,1.5,45,30.0,org/m,abc,cpu,bfloat16,\n"
    )
    stream = io.StringIO()
    writer = get_writer("csv", stream, WEBCAM)
    writer.write(webcam_record(LIVE, "camera 0", ModelInfo("org/m", None, "cpu", "float32")))
    writer.write(webcam_event_record(LiveEvent("reconnecting", 1.7e9, 2, 5, "reopening (attempt 2 of 5)"), "camera 0"))
    header, row, event = stream.getvalue().splitlines()
    assert header == (
        "time,source,event,prediction,first_frame,last_frame,first_s,last_s,latency_s,smoothed_over,label,"
        "score,top_labels,top_scores,model,revision,device,dtype,attempt,message"
    )
    assert row.split(",", 1)[1] == (
        "camera 0,prediction,3,8,14,0.2667,0.4667,0.0123,2,juggling,0.750000,juggling|waving,0.750000|0.125000,"
        "org/m,,cpu,float32,,"
    )
    assert event.split(",", 1)[1] == "camera 0,reconnecting" + "," * 16 + "2,reopening (attempt 2 of 5)"
    stream = io.StringIO()
    writer = get_writer("csv", stream, TIMELINE)
    for record in timeline_records(TIMELINE_OF_TWO):
        writer.write(record)
    assert stream.getvalue().splitlines()[1:] == [
        "v.mp4,segment,0,0.0,2.0,juggling,0.7,0,0,1,0,13,,,org/m,,,",
        "v.mp4,window,0,0.0,0.9,juggling,0.6,0,0,0,0,6,juggling|waving,0.600000|0.300000,org/m,,,",
        "v.mp4,window,1,1.0,1.9,juggling,0.8,0,1,1,7,13,juggling,0.800000,org/m,,,",
    ]


LIVE = LivePrediction(
    3, 1.7e9, 8, 14, 0.26666, 0.46666, (Prediction("juggling", 0.75, 3), Prediction("waving", 0.125, 0)), 0.012345, 2, 0
)
WINDOWS = (
    Window(0, 0.0, 0.9, (0, 2, 4, 6), (Prediction("juggling", 0.6, 3), Prediction("waving", 0.3, 0))),
    Window(1, 1.0, 1.9, (7, 9, 11, 13), (Prediction("juggling", 0.8, 3),)),
)
TIMELINE_OF_TWO = Timeline(
    "v.mp4",
    ModelInfo("org/m"),
    ("waving", "juggling"),
    WINDOWS,
    (Segment(0, "juggling", 0.7, 0.0, 2.0, 0, 1),),
    ((0.0, 0.95), (0.95, 2.0)),
    None,
    0.0,
    2.0,
    1.0,
    0.3,
)


def test_rows_of_webcam_and_timeline() -> None:
    record = webcam_record(LIVE, "camera 0", ModelInfo("org/m"))
    assert webcam_row(record) == {
        **{k: v for k, v in record.items() if k != "predictions"},
        **best_cells(record["predictions"]),
    }
    segment, first, _ = timeline_records(TIMELINE_OF_TWO)
    assert timeline_row(segment)["top_labels"] == timeline_row(segment)["top_scores"] == ""
    assert timeline_row(first)["top_labels"] == "juggling|waving"


def test_tables_count_from_one_where_rows_count_from_zero() -> None:
    from rich.console import Console

    from vivit_cli.writers.tables import print_segments_table

    console = Console(file=io.StringIO(), width=100)
    print_segments_table(console, TIMELINE_OF_TWO)
    (row,) = [line for line in console.file.getvalue().splitlines() if "juggling" in line]
    assert row.split()[:2] == ["│", "1"]
    segment, first, _ = timeline_records(TIMELINE_OF_TWO)
    assert segment["index"] == first["index"] == 0


# JSON: valid after every row, and laid out as json.dump would.


class Unseekable(io.StringIO):
    def seekable(self) -> bool:
        return False


@pytest.mark.parametrize("stream_type", [io.StringIO, Unseekable])
def test_json_is_a_valid_list_after_every_record(stream_type: type) -> None:
    stream = stream_type()
    writer = get_writer("json", stream)
    for i in range(3):
        writer.write({"path": f"{i}.mp4", "status": "ok"})
        if stream_type is io.StringIO:
            assert [r["path"] for r in json.loads(stream.getvalue())] == [f"{j}.mp4" for j in range(i + 1)]
    writer.finish()
    assert len(json.loads(stream.getvalue())) == 3


@pytest.mark.parametrize("stream_type", [io.StringIO, Unseekable])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_json_layout(stream_type: type, count: int) -> None:
    """A record per line for batch (so a torn file reads back line by line); a timeline's as json.dump(indent=1)."""
    records = timeline_records(TIMELINE_OF_TWO)[:count]
    for schema, expected in (
        (BATCH, "[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records)),
        (TIMELINE, json.dumps(records, ensure_ascii=False, indent=1).removesuffix("]")),
    ):
        stream = stream_type()
        writer = get_writer("json", stream, schema)
        for record in records:
            writer.write(record)
            if stream_type is io.StringIO:
                json.loads(stream.getvalue())
        writer.finish()
        assert stream.getvalue() == (expected.rstrip("\n") + "\n]\n" if records else "[\n]\n")


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_append_continues_a_file_and_a_torn_row_is_skipped(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"rows.{fmt}"
    with path.open("w", encoding="utf-8", newline="") as f:
        get_writer(fmt, f).write(OK)
    with path.open("a", encoding="utf-8", newline="") as f:
        writer = get_writer(fmt, f, append=True)
        writer.write(error_record("b.mp4", "not a video"))
        writer.finish()
    assert [r["path"] for r in read_records(path, fmt)] == ["a.mp4", "b.mp4"]
    if fmt != "json":  # a JSON file stays one list
        assert path.read_text().count("path") == (1 if fmt == "csv" else 2)
    path.write_bytes(path.read_bytes()[:-10])  # torn inside the last record
    assert [r["path"] for r in read_records(path, fmt)] == ["a.mp4"]


# Files: the command's words when one cannot be opened, and stdout for "-".


@pytest.mark.parametrize(
    "schema,message",
    [
        (TIMELINE, "{}: cannot write there (No such file or directory)"),
        (WEBCAM, "--out {}: cannot be written (No such file or directory)"),
    ],
)
def test_a_file_that_cannot_be_opened(tmp_path: Path, schema: Schema, message: str) -> None:
    path = str(tmp_path / "missing" / "rows.csv")
    with pytest.raises(SourceError) as e:
        write_all(path, [], schema, sys.stdout)
    assert str(e.value) == message.format(path)


def test_dash_is_jsonl_on_the_stream_given() -> None:
    stdout = io.StringIO()
    with open_output("-", WEBCAM, stdout) as writer:
        writer.write(webcam_record(LIVE, "camera 0", ModelInfo("org/m")))
    assert json.loads(stdout.getvalue())["predictions"][0] == {"label": "juggling", "score": 0.75, "index": 3}
    assert not stdout.closed


def test_csv_reads_back_as_written(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    write_all(str(path), timeline_records(TIMELINE_OF_TWO), TIMELINE, sys.stdout)
    assert list(csv.DictReader(path.open())) == list(read_records(path, "csv"))


def test_writers_import_neither_torch_nor_opencv() -> None:
    code = (
        "import sys\n"
        "import vivit_cli.writers, vivit_cli.writers.formats, vivit_cli.writers.records\n"
        "import vivit_cli.writers.tables, vivit_cli.writers.parquet, vivit_cli.results\n"
        "print(sorted(m for m in ('torch', 'cv2', 'numpy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
