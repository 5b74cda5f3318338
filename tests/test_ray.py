"""`vivit batch --ray` on a local 2-CPU Ray: the rows of a local run, a model worker killed mid-run, Parquet,
--resume; and the one-line error without the ray extra."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tests import faults
from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli import hub
from vivit_cli.batch import cluster as ray_runner
from vivit_cli.batch import session
from vivit_cli.batch.rows import Labels
from vivit_cli.cli import cli
from vivit_cli.device import NATIVE_FP16_FLAGS
from vivit_cli.device import cpu_flags as REAL_CPU_FLAGS  # taken before conftest fakes it for every test
from vivit_cli.writers import read_records

FRAMES = 12  # per test video: enough for a 4-frame clip at stride 2
SIZE = (40, 32)  # pixels, width x height
GOOD = ["a.avi", "b.mp4", "c.avi", "d.avi", "e.mp4", "f.avi"]
BAD = ["empty.mp4", "text.mp4", "folder.mp4", "crash.avi"]  # crash.avi: its decoder dies (tests/faults.py)
SLOW = "slow.avi"  # a good video, whose decoder hangs where the faulty decode body is swapped in
CRASH_MARK, HANG_MARK = "crash", "slow"
HANG_TIMEOUT_S = 3.0  # --timeout where a decoder hangs
SCORE_TOLERANCE = 1e-5
RAY_CPUS = 2


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for this module: 2 CPUs, no dashboard; shut down after."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    pytest.importorskip("pyarrow")
    ray.init(num_cpus=RAY_CPUS, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["waving", "running", "eating", "juggling", "archery"])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for i, name in enumerate(GOOD):  # lengths differ, so the rows differ
        write_video(root / name, FRAMES + 2 * i, size=SIZE, fourcc="mp4v" if name.endswith(".mp4") else "MJPG")
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("not a video\n")
    (root / "folder.mp4").mkdir()
    write_video(root / "crash.avi", FRAMES, size=SIZE)
    write_video(root / SLOW, FRAMES, size=SIZE)
    return root


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def by_path(records: list[dict]) -> dict[str, dict]:
    paths = [r["path"] for r in records]
    assert len(paths) == len(set(paths)), f"a file has two rows: {sorted(paths)}"
    return {r["path"]: r for r in records}


def assert_same_rows(ours: list[dict], theirs: list[dict]) -> None:
    """Same files, statuses, labels and views; scores within SCORE_TOLERANCE."""
    a, b = by_path(ours), by_path(theirs)
    assert sorted(a) == sorted(b)
    for path in a:
        x, y = a[path], b[path]
        assert (x["status"], x["model"], x["revision"]) == (y["status"], y["model"], y["revision"]), path
        assert [p["label"] for p in x["predictions"]] == [p["label"] for p in y["predictions"]], path
        np.testing.assert_allclose(
            [p["score"] for p in x["predictions"]], [p["score"] for p in y["predictions"]], atol=SCORE_TOLERANCE
        )
        assert x["views"] == y["views"], path
        if CRASH_MARK not in path:  # a crash is told differently: the worker replaced, or the task retried
            assert x.get("error") == y.get("error"), path


def test_rows_match_a_local_run(
    local_ray, folder: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults.install(monkeypatch, crash_on=CRASH_MARK)
    monkeypatch.chdir(folder.parent)  # relative paths: the workers open them absolute, the rows keep them as given
    common = [folder.name, "--model", str(checkpoint), "--batch-size", "2"]
    local = invoke("batch", *common, "--out", str(tmp_path / "local.json"))
    on_ray = invoke("batch", *common, "--out", str(tmp_path / "ray.json"), "--workers", "2", "--ray")
    assert local.exit_code == on_ray.exit_code == 4, on_ray.stderr  # some files failed
    assert "Done: 7 ok, 4 failed" in on_ray.stderr
    ray_rows = list(read_records(tmp_path / "ray.json", "json"))
    assert_same_rows(ray_rows, list(read_records(tmp_path / "local.json", "json")))
    assert {r["path"] for r in ray_rows if r["status"] == "ok"} == {f"{folder.name}/{n}" for n in [*GOOD, SLOW]}


def test_a_killed_model_worker_and_a_hung_decoder_lose_and_double_no_row(
    local_ray, folder: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "died"
    monkeypatch.setattr(ray_runner, "ModelWorker", faults.dying_model_worker(str(marker)))
    faults.install(monkeypatch, hang_on=HANG_MARK)
    result = invoke(
        "batch",
        str(folder),
        "--model",
        str(checkpoint),
        "--batch-size",
        "1",
        "--workers",
        "2",
        "--timeout",
        str(HANG_TIMEOUT_S),
        "--ray",
    )
    assert marker.exists(), "no model worker died: the fault was not injected"
    rows = by_path([json.loads(line) for line in result.stdout.splitlines()])  # Ray's messages go to stderr
    assert sorted(Path(p).name for p in rows) == sorted([*GOOD, SLOW, *BAD])
    assert {Path(p).name for p, r in rows.items() if r["status"] == "ok"} == {*GOOD, "crash.avi"}  # no crash swapped in
    assert rows[str(folder / SLOW)]["error"] == (
        f"decoding took longer than {HANG_TIMEOUT_S:g} s (--timeout); its worker was stopped"
    )
    assert result.exit_code == 4


def test_parquet_reads_back_and_resume_redoes_only_the_rest(
    local_ray, folder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from vivit_cli.writers import error_record
    from vivit_cli.writers.parquet import ParquetWriter

    out = tmp_path / "preds.parquet"
    kept = {
        "path": str(folder / "a.avi"),
        "status": "ok",
        "predictions": [{"label": "kept", "score": 1.0, "index": 0}],
        "views": [],
        "model": str(checkpoint),
        "revision": None,
    }
    writer = ParquetWriter(str(out))  # an earlier run: a.avi done, b.mp4 failed, the rest never reached
    writer.write(kept)
    writer.write(error_record(str(folder / "b.mp4"), "transient", str(checkpoint)))
    writer.finish()
    result = invoke("batch", str(folder), "--model", str(checkpoint), "--out", str(out), "--resume", "--ray")
    assert result.exit_code == 4 and "1 already done" in result.stderr, result.stderr
    table = pq.read_table(out)
    assert table.column_names[:4] == ["path", "status", "label", "score"]
    rows = by_path(table.to_pylist())
    assert sorted(Path(p).name for p in rows) == sorted([*GOOD, SLOW, *BAD])
    assert rows[str(folder / "a.avi")]["label"] == "kept"  # not redone
    assert rows[str(folder / "b.mp4")]["status"] == "ok"  # its error row was retried
    redone = [r for path, r in rows.items() if r["status"] == "ok" and path != kept["path"]]
    assert len(redone) == len(GOOD) + 1  # with slow.avi and crash.avi, good videos here, less a.avi
    assert all(r["predictions"][0]["score"] == r["score"] and r["views"] for r in redone)


def test_batch_size_auto_follows_the_workers_device(
    local_ray, folder: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node with a GPU is faked: workers on it take 8 views a pass, workers on its CPU one (the job is faked
    too, and answers nothing: its file gets the driver's error row)."""
    import io

    from vivit_cli.video.sampling import Views
    from vivit_cli.writers import get_writer

    class NoRows:
        def iter_rows(self) -> Any:
            return iter([])

    passes: dict[str, int] = {}

    def dataset(*args: Any) -> NoRows:  # (paths, job, model, sizes, views, kind, dtype, batch_size)
        passes[args[3].device] = args[7]
        return NoRows()

    monkeypatch.setattr(ray_runner, "_dataset", dataset)
    monkeypatch.setattr(local_ray, "nodes", lambda: [{"Alive": True, "Resources": {"CPU": 2.0, "GPU": 1.0}}])
    model = ray_runner.resolve_model(str(checkpoint))
    for device in ("auto", "cpu"):
        sizes = ray_runner.size_workers(device, None, None)
        writer = get_writer("jsonl", io.StringIO())
        tally = ray_runner.run([str(folder / "a.avi")], model, sizes, writer, Views(), Labels(1))
        assert (tally.failed, tally.failures) == (1, [(str(folder / "a.avi"), "no answer from the Ray cluster")])
    assert passes == {"cuda": 8, "cpu": 1}


def test_without_ray_the_error_names_the_extra(folder: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    result = invoke("batch", str(folder), "--model", str(checkpoint), "--ray")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == 'Error: --ray needs Ray, which is not installed: pip install "vivit-cli[ray]"'


def test_an_unreachable_cluster_is_one_line(
    local_ray, folder: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's message names `ray start`'s --address flag: vivit's says what vivit takes."""

    def refuse(**_: object) -> None:
        raise ConnectionError(
            "Could not find any running Ray instance. Please specify the one to connect to by setting `--address` "
            "flag or `RAY_ADDRESS` environment variable."
        )

    monkeypatch.setattr(local_ray, "is_initialized", lambda: False)  # as in a fresh `vivit` process
    monkeypatch.setattr(local_ray, "init", refuse)
    result = invoke("batch", str(folder), "--model", str(checkpoint), "--ray=auto")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"Error: cannot reach a Ray cluster at auto: {session.NO_CLUSTER}"
    assert "--address" not in result.stderr and "--ray=HOST:PORT" in result.stderr


def test_a_local_run_keeps_rays_own_lines_off_stderr(folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    """A fresh `vivit` process that starts its own local Ray: stderr holds vivit's lines only (Ray's token warning,
    its workers' output and its C++ core's `E` lines stay in Ray's logs), and a float16 the CPU emulates is said
    once, by vivit."""
    import os
    import re
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"VIVIT_DTYPE": "float16"}
    args = [sys.executable, "-m", "vivit_cli", "batch", str(folder / "a.avi"), "--model", str(checkpoint)]
    run = subprocess.run([*args, "--out", str(tmp_path / "rows.csv"), "--ray"], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    lines = [line for line in re.split(r"[\r\n]", run.stderr) if line.strip()]
    ours = [line for line in lines if line.startswith(("Warning: ", "Done: ")) or re.match(r" *\d+%\|", line)]
    assert ours == lines, run.stderr  # nothing of Ray's
    emulated = not REAL_CPU_FLAGS() & NATIVE_FP16_FLAGS
    assert sum("float16 is emulated" in line for line in lines) == emulated, run.stderr


@pytest.mark.parametrize(
    "address, sources, expected",
    [
        ("", ["v"], ("", ("v",))),
        ("auto", ["v"], ("auto", ("v",))),
        ("ray://head:10001", ["v"], ("ray://head:10001", ("v",))),
        ("{folder}", ["v"], ("", ("{folder}", "v"))),  # `--ray videos/ more/`: a folder is a source
        ("@list.txt", ["v"], ("", ("@list.txt", "v"))),
    ],
)
def test_a_path_after_ray_is_a_source(folder: Path, address: str, sources: list[str], expected: tuple) -> None:
    fill = str(folder)
    got = ray_runner.split_address(address.format(folder=fill), sources)
    assert got == (expected[0], tuple(s.format(folder=fill) for s in expected[1]))


def test_a_hub_model_reaches_the_workers_pinned_to_its_commit(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ray_runner.resolve_model(str(checkpoint)).load_ref == str(checkpoint.resolve())  # a folder: absolute
    sha = "0123456789abcdef0123456789abcdef01234567"
    real_parse = hub.parse_model
    monkeypatch.setattr(hub, "fetch", lambda ref, **_: hub.LocalModel(checkpoint, real_parse(str(ref)).repo_id, sha))
    model = ray_runner.resolve_model("org/vivit-tiny")  # a branch name: every worker gets the same commit
    assert model.load_ref == f"org/vivit-tiny@{sha}"
    assert (model.info.model_id, model.info.revision) == ("org/vivit-tiny", sha)


def test_views_split_over_passes_score_as_one_pass(checkpoint: Path) -> None:
    import torch

    from vivit_cli.pipeline import load_model, score_videos

    classifier = load_model(checkpoint, device="cpu")
    gen = torch.Generator().manual_seed(0)
    shape = (classifier.config.num_frames, 3, *classifier.preprocess.crop_hw)
    videos = [torch.randn(n, *shape, generator=gen).numpy() for n in (3, 1, 2)]
    for batch_size in (1, 2, 4, 16):
        for video, probs in zip(videos, score_videos(classifier, videos, batch_size), strict=True):
            expected = classifier.scores(torch.from_numpy(video))
            np.testing.assert_allclose(probs, expected, atol=SCORE_TOLERANCE)


def test_parquet_round_trips_a_record(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from vivit_cli.writers.parquet import ParquetWriter, read_parquet_records

    record = {
        "path": "x.mp4",
        "status": "ok",
        "predictions": [{"label": "a", "score": 0.75, "index": 2}],
        "views": [{"clip": 0, "crop": "center", "frame_indices": [0, 2], "timestamps_s": [0.0, 0.0667]}],
        "duration_s": 1.5,
        "num_frames": 45,
        "fps": 30.0,
        "model": "m",
        "revision": None,
    }
    writer = ParquetWriter(str(tmp_path / "p.parquet"))
    writer.write(record)
    writer.finish()
    (back,) = read_parquet_records(tmp_path / "p.parquet")
    assert back == {**record, "label": "a", "score": 0.75, "error": None, "device": None, "dtype": None}
    assert json.loads(json.dumps(back)) == back


def test_a_model_worker_on_a_cpu_uses_its_threads(local_ray) -> None:
    """Ray gives a worker that reserves no CPU OMP_NUM_THREADS=1: the model would run on one core."""
    from vivit_cli.batch.actors import use_threads

    @local_ray.remote(num_cpus=0)
    def threads_after(threads: int) -> tuple[str, str]:
        import os

        import torch

        before = os.environ.get("OMP_NUM_THREADS", "")
        use_threads(threads)
        return before, torch.__config__.parallel_info()

    omp_env, info = local_ray.get(threads_after.remote(RAY_CPUS))
    assert omp_env == "1"  # what Ray set: the case this guards against
    assert f"at::get_num_threads() : {RAY_CPUS}" in info
    assert f"omp_get_max_threads() : {RAY_CPUS}" in info


def test_the_driver_imports_no_torch(folder: Path, checkpoint: Path) -> None:
    """The driver plans the job and reads the checkpoint's settings; only the workers need torch (seconds of
    start-up saved on every run)."""
    import subprocess

    code = (
        "import sys\n"
        "from vivit_cli.batch import cluster as ray_runner\n"
        "from vivit_cli.batch import plan as batch\n"
        "from vivit_cli.video.sampling import Views\n"
        f"job = batch.plan([{str(folder)!r}], False, None, None, False)\n"
        f"model = ray_runner.resolve_model({str(checkpoint)!r})\n"
        "assert job.todo and model.num_frames and Views(clips=2, crops=3)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_parquet_resume_with_another_model_is_refused_before_ray_starts(
    folder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    from vivit_cli.writers.parquet import ParquetWriter

    out = tmp_path / "preds.parquet"
    writer = ParquetWriter(str(out))
    writer.write(
        {
            "path": str(folder / "a.avi"),
            "status": "ok",
            "predictions": [{"label": "x", "score": 1.0, "index": 0}],
            "views": [],
            "model": "org/other",
            "revision": "0" * 40,
        }
    )
    writer.finish()
    before = out.read_bytes()
    result = invoke(
        "batch", str(folder), "--model", str(checkpoint), "--out", str(out), "--resume", "--ray=ray://127.0.0.1:9"
    )  # refused before any connection is tried
    assert result.exit_code == 2, result.stderr
    assert f"holds rows from org/other@000000000000, not {checkpoint}" in result.stderr
    assert out.read_bytes() == before


def test_embed_on_ray_gives_the_local_vectors(local_ray, folder: Path, checkpoint: Path, tmp_path: Path) -> None:
    common = ["embed", str(folder / "a.avi"), str(folder / "b.mp4"), str(folder / "text.mp4"), "--model"]
    local = invoke(*common, str(checkpoint), "--clips", "2", "--out", str(tmp_path / "local.parquet"))
    on_ray = invoke(*common, str(checkpoint), "--clips", "2", "--out", str(tmp_path / "ray.parquet"), "--ray")
    assert local.exit_code == on_ray.exit_code == 4, on_ray.stderr  # text.mp4
    ours = by_path(list(read_records(tmp_path / "local.parquet", "parquet")))
    theirs = by_path(list(read_records(tmp_path / "ray.parquet", "parquet")))
    assert sorted(ours) == sorted(theirs)
    for path, row in ours.items():
        other = theirs[path]
        assert (row["status"], row["views"], row["model"]) == (other["status"], other["views"], other["model"])
        if row["status"] == "ok":
            np.testing.assert_allclose(row["embedding"], other["embedding"], rtol=1e-5, atol=1e-6)
        else:
            assert row["embedding"] is None and other["embedding"] is None and row["error"] == other["error"]


def test_labels_and_min_score_reach_the_model_workers(
    local_ray, folder: Path, checkpoint: Path, tmp_path: Path
) -> None:
    """The rows of a local run with --labels and --min-score, some with no label: the workers get the label set."""
    labels = ["--labels", "waving,running", "-k", "2"]
    common = [str(folder), "--model", str(checkpoint), *labels]
    invoke("batch", *common, "--out", str(tmp_path / "every.json"))
    tops = sorted(
        {r["predictions"][0]["score"] for r in read_records(tmp_path / "every.json", "json") if r["status"] == "ok"}
    )
    cut = (tops[len(tops) // 2 - 1] + tops[len(tops) // 2]) / 2  # half the videos get no label
    common += ["--min-score", str(cut)]
    local = invoke("batch", *common, "--out", str(tmp_path / "local.json"))
    on_ray = invoke("batch", *common, "--out", str(tmp_path / "ray.json"), "--ray")
    assert local.exit_code == on_ray.exit_code == 4, on_ray.stderr  # the bad files
    ray_rows = list(read_records(tmp_path / "ray.json", "json"))
    assert_same_rows(ray_rows, list(read_records(tmp_path / "local.json", "json")))
    ok = [r for r in ray_rows if r["status"] == "ok"]
    assert {p["label"] for r in ok for p in r["predictions"]} <= {"waving", "running"}
    assert any(r["predictions"] == [] for r in ok) and any(r["predictions"] for r in ok)


@pytest.mark.parametrize("device", ["mps", "xla", "cuda:x"])
def test_a_device_the_workers_cannot_take_is_refused_before_the_job(device: str) -> None:
    pytest.importorskip("ray")
    from vivit_cli.errors import ClusterError

    with pytest.raises(ClusterError, match=f"--device {device} under --ray: the workers run on auto, cpu, cuda"):
        ray_runner.size_workers(device, None, None)
