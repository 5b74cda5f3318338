"""The decode pool's processes: a forkserver that dies (mid-run, or while the pool starts), Ctrl-C while it starts,
a SIGTERM as a command ends, the pool's temporary folder after SIGKILL, and exceptions nobody expected."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import faults
from tests.checkpoints import write_ours
from tests.videos import h264_video, write_video
from vivit_cli.batch import pool as pool_module
from vivit_cli.batch import processes
from vivit_cli.batch.pool import DONE, Decoded, DecodePool
from vivit_cli.batch.processes import TEMP_PREFIX
from vivit_cli.batch.worker import DecodeSpec
from vivit_cli.cli import cli
from vivit_cli.video.preprocess import PreprocessConfig
from vivit_cli.video.sampling import Views
from vivit_cli.writers.formats import read_records

NAMES = ["a.avi", "b.avi", "c.avi", "d.avi"]
ROUNDS = 8  # pool starts in the stress test: each kind of forkserver trouble twice
WAIT_S = 120.0  # seconds a test waits for a subprocess to reach a point (start-up on a busy machine)
POLL_S = 0.01  # seconds between looks for that point

needs_forkserver = pytest.mark.skipif(
    "forkserver" not in __import__("multiprocessing").get_all_start_methods(), reason="no forkserver here"
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=["waving", "running", "eating"])


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("videos")
    for name in NAMES:
        write_video(root / name, 12, size=(40, 32), fourcc="MJPG")
    return root


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a `vivit` subprocess: this checkout (and `tests`) importable, the tests' float32."""
    path = os.pathsep.join(p for p in (faults.ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"{path.name} never appeared (exit {process.wait()}): {process.communicate()[1]}")
        time.sleep(POLL_S)


# A forkserver that dies


@needs_forkserver
def test_a_forkserver_killed_mid_run_costs_no_file(
    videos: Path, checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker on c.avi kills its forkserver: every worker then looked dead (exit 255) and c.avi was blamed as
    "the decoder crashed". Now its files go to the workers of a new server, and every row is right."""
    marker = tmp_path / "killed"
    faults.install_server_killer(monkeypatch, on="c.avi", marker=str(marker))
    out = tmp_path / "preds.csv"
    result = CliRunner().invoke(
        cli, ["batch", str(videos), "--model", str(checkpoint), "--out", str(out), "-j", "2"], catch_exceptions=False
    )
    assert marker.exists(), "the forkserver was killed"
    assert result.exit_code == 0, result.stderr
    rows = {Path(r["path"]).name: r for r in read_records(out, "csv")}
    assert sorted(rows) == NAMES
    assert all(r["status"] == "ok" for r in rows.values()), rows


def decode_all(paths: list[str], kill_after_first: bool = False, kill_on_start: bool = False) -> list[tuple]:
    """Every (name, error) the pool answers for `paths`, killing its forkserver as asked."""
    spec = DecodeSpec(4, PreprocessConfig(shortest_edge=16, crop_hw=(16, 16)), Views())
    answers = []
    with DecodePool(2, 60) as pool:
        if kill_on_start:  # while the workers start: before, during or after the server's preload
            for _ in range(int(WAIT_S / POLL_S)):
                if faults.kill_forkserver() is not None:
                    break
                time.sleep(POLL_S)
        pool.submit(paths, spec, max_pending=4)
        while (item := pool.get()) is not DONE:
            assert item is not None
            answers.append((Path(item.path).name, item.error))
            if kill_after_first and len(answers) == 1:
                faults.kill_forkserver()
    return sorted(answers)


@needs_forkserver
def test_the_pool_starts_and_runs_through_dead_and_dying_forkservers(videos: Path) -> None:
    """Start, run and stop the pool ROUNDS times, meeting each kind of trouble in turn: none; a server that has died
    but cannot be reaped yet, which the stdlib takes for alive (the start failed with ConnectionRefusedError, as
    `vivit evaluate` once did); a server killed while the workers start; one killed after the first answer. Every
    round answers every file once, none with an error."""
    paths = [str(videos / n) for n in NAMES]
    expected = [(n, None) for n in NAMES]
    for round_ in range(ROUNDS):
        trouble = round_ % 4
        if trouble == 1:
            with faults.dying_forkserver():
                assert decode_all(paths) == expected, f"round {round_}"
        else:
            assert decode_all(paths, kill_on_start=trouble == 2, kill_after_first=trouble == 3) == expected, (
                f"round {round_}"
            )


@needs_forkserver
def test_a_forkserver_that_keeps_dying_is_one_error(videos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When no new server lasts (here: every start fails), the batch stops with one line that says why."""
    from vivit_cli.batch import processes
    from vivit_cli.errors import VivitError

    real_start = processes.start

    def refuse(process: object) -> None:
        real_start(process)  # a server runs, and dies as the start ends
        faults.kill_forkserver()
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(processes, "start", refuse)
    with pytest.raises(VivitError, match=r"forkserver died 4 times in a row \(ConnectionRefusedError"):
        decode_all([str(videos / "a.avi")])


# Signals as vivit starts and ends


@needs_forkserver
def test_ctrl_c_while_the_forkserver_starts_prints_no_traceback(videos: Path, checkpoint: Path, tmp_path: Path) -> None:
    """The server is held in its preload (tests/preload_gate.py) while the command waits for its first video; a
    Ctrl-C to the whole process group then made the server print a KeyboardInterrupt traceback."""
    gate = tmp_path / "gate"
    gate.mkdir()
    code = "\n".join(
        [
            "import os, sys",
            "from vivit_cli.batch import pool, processes",
            "processes.PRELOAD = [*processes.PRELOAD, 'tests.preload_gate']",
            "get = pool.DecodePool.get",
            "def waiting(self, *args, **kwargs):",
            "    open(os.path.join(os.environ['VIVIT_TEST_GATE'], 'getting'), 'w').close()",
            "    return get(self, *args, **kwargs)",
            "pool.DecodePool.get = waiting",
            "from vivit_cli.cli import main",
            "sys.argv[0] = 'vivit'",
            "main()",
        ]
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "classify", str(videos / "a.avi"), "--model", str(checkpoint)],
        env=subprocess_env(VIVIT_TEST_GATE=str(gate)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's Ctrl-C reaches
    )
    wait_for(gate / "waiting", process)
    wait_for(gate / "getting", process)
    os.killpg(process.pid, signal.SIGINT)
    (gate / "open").touch()  # the server goes on; it finishes its preload and exits with the batch
    _, stderr = process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1] == "Interrupted."


@pytest.mark.parametrize(
    "late, status",
    [("atexit.register(lambda: os.kill(os.getpid(), signal.SIGTERM))", 143), ("late = Late()", 0)],
    ids=["in-an-exit-handler", "in-the-interpreter-teardown"],
)
def test_a_sigterm_as_the_command_ends_is_143_never_minus_15(
    videos: Path, checkpoint: Path, late: str, status: int
) -> None:
    """The window is made to land every time: a SIGTERM sent by an exit handler raised Terminated there (a traceback,
    exit 0); one sent while the interpreter tore its modules down (here by an object's __del__) found the default
    action back and killed vivit (-15). Now the first is noted and exits 143, and there is no such teardown."""
    code = "\n".join(
        [
            "import atexit, os, signal, sys",
            "class Late:",
            "    def __del__(self):",
            "        os.kill(os.getpid(), signal.SIGTERM)",
            late,
            "from vivit_cli.cli import main",
            "sys.argv[0] = 'vivit'",
            "main()",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "classify", str(videos / "a.avi"), "--model", str(checkpoint), "--json"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.stdout.count("\n") == 1  # the command's own output is whole


# The pool's temporary folder


@needs_forkserver
def test_a_run_killed_with_sigkill_leaves_its_folder_to_the_next_run(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """multiprocessing's /tmp/pymp-* folder (the forkserver's socket) stayed after every SIGKILL. The pool's own
    folder is removed at exit, and the next run removes one whose run was killed."""
    tmp = Path(tempfile.mkdtemp(prefix="vivit-test-"))  # short: a socket's path has a limit
    request.addfinalizer(lambda: shutil.rmtree(tmp, ignore_errors=True))
    code = "\n".join(
        [
            "import os, signal, sys",
            "from vivit_cli.batch.pool import DecodePool",
            "from vivit_cli.batch.worker import DecodeSpec",
            "from vivit_cli.video.preprocess import PreprocessConfig",
            "from vivit_cli.video.sampling import Views",
            "if __name__ == '__main__':",
            "    with DecodePool(1, 60) as pool:",
            "        pool.submit([], DecodeSpec(8, PreprocessConfig(), Views()), 1)",
            "        pool.get()",  # DONE once the worker has started, through the server
            "        if sys.argv[1] == 'kill':",
            "            os.kill(os.getpid(), signal.SIGKILL)",
        ]
    )
    script = tmp_path / "start_pool.py"
    script.write_text(code)

    def run(how: str) -> int:
        return subprocess.run([sys.executable, str(script), how], env=subprocess_env(TMPDIR=str(tmp))).returncode

    assert run("kill") == -signal.SIGKILL
    left = sorted(p.name for p in tmp.iterdir())
    assert len(left) == 1 and left[0].startswith(TEMP_PREFIX), left
    assert run("exit") == 0
    assert list(tmp.iterdir()) == []


# Exceptions nobody expected


@pytest.mark.parametrize(
    "error",
    [ConnectionRefusedError(111, "Connection refused"), EOFError("unexpected EOF"), RuntimeError("two\nlines")],
    ids=["ConnectionRefusedError", "EOFError", "RuntimeError"],
)
def test_an_unexpected_exception_is_one_line_and_the_hint_to_debug(
    videos: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """It was a traceback (or Click's bare "Aborted!" for an EOFError); --debug still shows the traceback."""

    def enter(self: DecodePool) -> DecodePool:
        raise error

    monkeypatch.setattr(pool_module.DecodePool, "__enter__", enter)
    args = ["classify", str(videos / "a.avi"), "--model", str(checkpoint)]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 1
    name = type(error).__name__
    message = " ".join(str(error).split())
    assert result.stderr == f"Error: unexpected {name}: {message} (rerun with --debug to see where)\n"
    with pytest.raises(Exception) as raised:
        CliRunner().invoke(cli, [*args, "--debug"], catch_exceptions=False)
    assert error in (raised.value, raised.value.__cause__)  # with its traceback, not Click's "Aborted!"


@pytest.mark.parametrize("workers, threads", [(1, 4), (2, 2), (3, 1), (8, 1)])
def test_the_pool_shares_the_cores_out_among_its_workers_decoders(
    workers: int, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker per core decodes on one FFmpeg thread; fewer workers get the cores left idle (a lone one, as
    `vivit classify` has, all four of them), which one thread each left idle."""
    monkeypatch.setattr(processes, "cores", lambda: 4)
    monkeypatch.delenv("OPENCV_FFMPEG_THREADS", raising=False)
    with DecodePool(workers, 60, decode=faults.ffmpeg_threads_decode) as pool:
        pool.submit(["x.mp4"], DecodeSpec(8, PreprocessConfig(), Views()), 1)
        answer = pool.get()
    assert isinstance(answer, Decoded) and answer.error == str(threads)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenCV starts one FFmpeg thread per CPU: none to see on one")
def test_a_decode_worker_decodes_on_one_thread(tmp_path: Path) -> None:
    """A decode worker keeps to its core while it decodes H.264: cv2.setNumThreads(1) does not reach FFmpeg, whose
    decoder OpenCV gives a thread per CPU unless OPENCV_FFMPEG_THREADS says otherwise."""
    video = h264_video(write_video(tmp_path / "a.avi", 48, size=(64, 48), fourcc="MJPG"), tmp_path / "a.mp4")
    code = (
        "import os, sys; from vivit_cli.batch import worker; from vivit_cli.video.decode import iter_frames; "
        "worker.settle(); before = len(os.listdir('/proc/self/task')); frames = iter_frames(sys.argv[1]); "
        "[next(frames) for _ in range(8)]; print(len(os.listdir('/proc/self/task')) - before); frames.close()"
    )
    env = {k: v for k, v in subprocess_env().items() if k != "OPENCV_FFMPEG_THREADS"}
    done = subprocess.run([sys.executable, "-c", code, str(video)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "0"  # threads the open capture added to the worker
