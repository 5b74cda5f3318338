"""`vivit label` in a real browser (Debian's chromium through Playwright), as a person uses it: keys, undo, a
reload and a restart lose nothing; the video plays; the server refuses requests without the token or with a path;
a project of 2,000 videos works. Screenshots go to $VIVIT_SCREENSHOTS when it is set, to look at."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.checkpoints import write_ours
from tests.test_label import COLOURS, LABELS, coloured
from tests.videos import write_video

CHROMIUM = os.environ.get("VIVIT_CHROMIUM", "/usr/bin/chromium")
pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)"
)
WIDE, NARROW = {"width": 1280, "height": 800}, {"width": 420, "height": 880}
WAIT_MS = 60_000  # the longest any one step may take on a loaded machine


class Server:
    """`vivit label` in a subprocess, as a user starts it; its URL read from stdout."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), os.environ.get("PYTHONPATH", "")]),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vivit_cli", "label", *args, "--no-browser"],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.stop()
        self.base = self.url.split("/?")[0]

    def stop(self) -> str:
        """Ctrl-C, as a person stops it; its stderr."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 130, err
        return err


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("model"), labels=["red", "green", "blue", "other"])


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


def shoot(page, name: str) -> None:
    folder = os.environ.get("VIVIT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"))


def path_of(page) -> str:
    return page.get_by_test_id("path").inner_text()


def answer_with_key(page, label_keys: dict[str, str]) -> tuple[str, str]:
    """Answer the video on screen with the key of the label its name says; (its path, the label)."""
    path = path_of(page)
    label = next(name for name in label_keys if name in Path(path).name)
    suggestion = page.get_by_test_id("suggestion").inner_text()
    page.keyboard.press("Enter" if suggestion == label else label_keys[label])
    page.wait_for_function(f"document.querySelector('[data-testid=path]').textContent !== {path!r}", timeout=WAIT_MS)
    assert page.get_by_test_id("save-status").inner_text() == "Saved"
    return path, label


def read_answers(project: Path) -> dict[str, str]:
    with open(project / "labels.csv", newline="") as f:
        return {row["path"]: row["label"] for row in csv.DictReader(f)}


def test_a_person_labels_with_keys_undoes_reloads_and_restarts(tmp_path: Path, model: Path, browser) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(24):
        label = LABELS[i % 3]
        write_video(
            videos / f"{label}-{i:02d}.mp4", 24, size=(96, 64), fourcc="mp4v", frame_fn=coloured(COLOURS[label], i)
        )
    args = [str(videos), "--project", "proj", "--labels", ",".join(LABELS), "--model", str(model)]
    server = Server(args, tmp_path)
    page = browser.new_page(viewport=WIDE)
    try:
        page.goto(server.url)
        page.wait_for_function("document.querySelector('[data-testid=path]').textContent !== ''", timeout=WAIT_MS)
        # The video (an MPEG-4 Part 2 file: its preview) plays: its time advances.
        page.wait_for_function("document.getElementById('player').currentTime > 0.2", timeout=WAIT_MS)
        assert "/preview/" in page.evaluate("document.getElementById('player').src")
        keys = {label: str(n + 1) for n, label in enumerate(LABELS)}
        given = dict(answer_with_key(page, keys) for _ in range(20))
        assert len(given) == 20
        last = list(given)[-1]
        page.keyboard.press("u")
        page.wait_for_function(
            f"document.querySelector('[data-testid=path]').textContent === {last!r}", timeout=WAIT_MS
        )
        del given[last]
        assert read_answers(tmp_path / "proj") == given
        page.reload()
        page.wait_for_function(
            f"document.querySelector('[data-testid=path]').textContent === {last!r}", timeout=WAIT_MS
        )
        page.keyboard.press("?")
        assert page.locator("#keys").is_visible()
        shoot(page, "label-keys")
        page.keyboard.press("Escape")
    finally:
        page.close()
        server.stop()
    assert read_answers(tmp_path / "proj") == given

    server = Server([*args[1:3], "--model", str(model)], tmp_path)  # the project alone: it knows its videos
    page = browser.new_page(viewport=WIDE)
    try:
        page.goto(server.url)
        page.wait_for_function(
            "document.querySelector('[data-testid=answered]').textContent.startsWith('19 of 24')", timeout=WAIT_MS
        )
        page.goto(f"{server.base}/v/{_number(tmp_path / 'proj', last)}")
        page.wait_for_function(
            f"document.querySelector('[data-testid=path]').textContent === {last!r}", timeout=WAIT_MS
        )
        given.update([answer_with_key(page, keys)])
    finally:
        page.close()
        server.stop()
    assert read_answers(tmp_path / "proj") == given and len(given) == 20


def _number(project: Path, path: str) -> int:
    import json

    return json.loads((project / "project.json").read_text())["videos"].index(path)


def test_the_server_refuses_without_the_token_or_with_a_path(tmp_path: Path, model: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a.mp4", 12, fourcc="mp4v")
    server = Server([str(videos), "-p", "proj", "--labels", "a,b", "-m", str(model)], tmp_path)
    try:
        for url, status in ((f"{server.base}/api/status", 403), (f"{server.base}/media/0", 403)):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url)
            assert refused.value.code == status
        token = server.url.split("token=")[1]
        for path in ("/media/..%2F..%2F..%2Fetc%2Fpasswd", "/media/1", "/media//etc/passwd"):
            request = urllib.request.Request(server.base + path, headers={"Authorization": f"token {token}"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request)
            assert refused.value.code == 404, path
    finally:
        server.stop()


def test_a_project_of_2000_videos(tmp_path: Path, model: Path, browser) -> None:
    """The page and the loop with 2,000 videos, their features from an embed file (links to a few real files)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from vivit_cli import hub

    videos = tmp_path / "videos"
    videos.mkdir()
    originals = [
        write_video(tmp_path / f"{label}.mp4", 12, fourcc="mp4v", frame_fn=coloured(COLOURS[label], 0))
        for label in LABELS
    ]
    from vivit_cli.checkpoint import read_config

    size = read_config(model)[0].hidden_size
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, size)) * 4
    rows = {"path": [], "status": [], "embedding": [], "model": []}
    for i in range(2000):
        link = videos / f"{LABELS[i % 3]}-{i:04d}.mp4"
        os.symlink(originals[i % 3], link)
        rows["path"].append(str(link))
        rows["status"].append("ok")
        rows["embedding"].append((centres[i % 3] + rng.normal(size=size)).astype(np.float32).tolist())
        rows["model"].append(hub.fetch(str(model)).model_id)
    pq.write_table(pa.table(rows), tmp_path / "emb.parquet")
    server = Server(
        [str(videos), "-p", "proj", "--labels", ",".join(LABELS), "-m", str(model), "--embeddings", "emb.parquet"],
        tmp_path,
    )
    page = browser.new_page(viewport=WIDE)
    try:
        page.goto(server.url)
        page.wait_for_function(
            "document.querySelector('[data-testid=embedding]').textContent.startsWith('2000 embedded')", timeout=WAIT_MS
        )
        keys = {label: str(n + 1) for n, label in enumerate(LABELS)}
        for _ in range(6):
            answer_with_key(page, keys)
        assert page.locator("[data-testid=strip] li").count() == 8
        assert page.get_by_test_id("answered").inner_text().startswith("6 of 2000")
        page.wait_for_function(
            "document.querySelector('[data-testid=accuracy]').textContent.includes('fold')", timeout=WAIT_MS
        )
        page.wait_for_function("[...document.images].every(i => i.complete)", timeout=WAIT_MS)
        shoot(page, "label-wide")
        page.set_viewport_size(NARROW)
        shoot(page, "label-narrow")
    finally:
        page.close()
        server.stop()
    assert len(read_answers(tmp_path / "proj")) == 6
    shutil.rmtree(videos)


def test_the_page_says_when_an_answer_could_not_be_saved(tmp_path: Path, browser, monkeypatch) -> None:
    """A full disk as the answer is written: the page says so in red and stays on the video; nothing is recorded."""
    import errno
    import socket
    import threading

    import uvicorn

    from vivit_cli.label.loop import Loop
    from vivit_cli.label.preview import Media
    from vivit_cli.label.project import open_project
    from vivit_cli.label.server import Guard, make_app

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(2):
        write_video(videos / f"red-{i}.mp4", 12, fourcc="mp4v", frame_fn=coloured(COLOURS["red"], i))
    project, _ = open_project(tmp_path / "proj", [str(videos)], False, LABELS, "some/model")
    loop = Loop(project)
    server = uvicorn.Server(uvicorn.Config(None, log_level="warning", lifespan="off"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    guard = Guard.new("127.0.0.1", port)
    server.config.app = make_app(loop, Media(project.videos, project.folder, project.views.sampling(8)), guard)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    page = browser.new_page(viewport=WIDE)
    try:
        page.goto(guard.url("127.0.0.1", port))
        page.wait_for_function("document.querySelector('[data-testid=path]').textContent !== ''", timeout=WAIT_MS)
        shown = path_of(page)

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)
        page.keyboard.press("1")
        page.wait_for_function(
            "document.querySelector('[data-testid=save-status]').textContent.startsWith('Not saved')", timeout=WAIT_MS
        )
        assert "No space left on device" in page.get_by_test_id("save-status").inner_text()
        assert page.locator("[data-testid=save-status].failed").count() == 1
        assert path_of(page) == shown
        monkeypatch.undo()
        page.keyboard.press("1")
        page.wait_for_function(
            f"document.querySelector('[data-testid=path]').textContent !== {shown!r}", timeout=WAIT_MS
        )
    finally:
        page.close()
        server.should_exit = True
        thread.join(30)
        loop.answers.close()
    assert read_answers(project.folder) == {shown: "red"}
