"""`vivit label` below the browser: the project folder, the answers log, the order, the head that re-trains, the
server's rules (token, Host, CSRF, numbers not paths, Range) through the ASGI app in-process, and the command."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli
from vivit_cli.errors import LabelError, SourceError
from vivit_cli.label import background, order
from vivit_cli.label.answers import Answers
from vivit_cli.label.loop import Loop
from vivit_cli.label.project import open_project
from vivit_cli.learn.head import Videos

pytest.importorskip("starlette")
LABELS = ("red", "green", "blue")
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (30, 60, 220)}


def coloured(colour: tuple[int, int, int], seed: int):
    def frame(index: int, width: int, height: int) -> np.ndarray:
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[:] = colour
        rgb[(index + seed) % height :, : (index * 3 + seed) % width] = 255 - np.array(colour)  # something that moves
        return rgb

    return frame


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("model"), labels=["red", "green", "blue", "other"])


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    folder = tmp_path / "videos"
    folder.mkdir()
    for i in range(9):
        label = LABELS[i % 3]
        write_video(folder / f"{label}{i}.avi", 24, size=(64, 48), frame_fn=coloured(COLOURS[label], i))
    return folder


def clustered(n: int = 30, labels: int = 3, dim: int = 16, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """Features of `labels` well-separated clusters, 2 views per video; the label of each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(labels, dim)) * 4
    truth = [i % labels for i in range(n)]
    return [(centres[c] + rng.normal(size=(2, dim))).astype(np.float32) for c in truth], truth


def make_loop(tmp_path: Path, n: int = 30, labels: tuple[str, ...] = LABELS) -> Loop:
    files = tmp_path / "files"
    files.mkdir()
    for i in range(n):
        (files / f"v{i:03d}.mp4").write_bytes(b"not decoded in these tests")
    project, _ = open_project(tmp_path / "project", [str(files)], False, labels, "some/model")
    return Loop(project)


# The project and its answers


def test_a_new_project_needs_videos_and_labels(tmp_path: Path, videos: Path) -> None:
    with pytest.raises(SourceError, match="not a labelling project yet: give the videos"):
        open_project(tmp_path / "p", [], False, LABELS, None)
    with pytest.raises(SourceError, match=r"give its labels \(--labels"):
        open_project(tmp_path / "p", [str(videos)], False, (), None)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(SourceError, match="not a labelling project: give a new --project"):
        open_project(tmp_path / "taken", [str(videos)], False, LABELS, None)


def test_a_project_resumes_with_its_numbers_and_adds_new_videos_and_labels(tmp_path: Path, videos: Path) -> None:
    first, added = open_project(
        tmp_path / "p", [str(videos / "red0.avi"), str(videos / "green1.avi")], False, ("red",), "m"
    )
    assert added == 2 and first.labels == ("red",)
    again, added = open_project(tmp_path / "p", [str(videos)], False, ("green", "red"), None)
    assert added == 7 and again.videos[:2] == first.videos  # a video keeps its number
    assert again.labels == ("red", "green") and again.model == "m"
    with pytest.raises(SourceError, match="labels with --model m, not other"):
        open_project(tmp_path / "p", [], False, (), "other")


def test_answers_skips_and_undos_replay_to_the_same_state(tmp_path: Path) -> None:
    answers = Answers(tmp_path)
    answers.answer("/v/a.mp4", "red")
    answers.answer("/v/b.mp4", "green")
    answers.skip("/v/c.mp4")
    answers.answer("/v/a.mp4", "blue")  # changed
    assert answers.undo() == "/v/a.mp4"  # back to red
    assert answers.undo() == "/v/b.mp4"  # b unanswered
    answers.close()
    again = Answers(tmp_path)
    assert again.state.current == {"/v/a.mp4": "red"} and again.state.skipped == {"/v/c.mp4"}
    assert (tmp_path / "labels.csv").read_text() == "path,label\n/v/a.mp4,red\n"
    events = [json.loads(line) for line in (tmp_path / "answers.jsonl").read_text().splitlines()]
    assert [e.get("label", "skip" if e.get("skip") else None) for e in events][:4] == ["red", "green", "skip", "blue"]
    assert all("time" in e for e in events)


def test_a_torn_last_line_is_cut_off_and_the_rest_kept(tmp_path: Path) -> None:
    answers = Answers(tmp_path)
    answers.answer("/v/a.mp4", "red")
    answers.close()
    with open(tmp_path / "answers.jsonl", "ab") as f:
        f.write(b'{"time": "2026-12-06", "video": "/v/b.mp4", "lab')  # a kill mid-write
    again = Answers(tmp_path)
    assert again.state.current == {"/v/a.mp4": "red"}
    again.answer("/v/b.mp4", "green")
    again.close()
    assert Answers(tmp_path).state.current == {"/v/a.mp4": "red", "/v/b.mp4": "green"}


def test_an_answer_that_cannot_be_saved_says_so_and_leaves_the_log_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = Answers(tmp_path)
    answers.answer("/v/a.mp4", "red")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SourceError, match="could not save to .*answers.jsonl: No space left on device"):
        answers.answer("/v/b.mp4", "green")
    assert answers.state.current == {"/v/a.mp4": "red"}
    monkeypatch.undo()
    answers.answer("/v/c.mp4", "blue")
    answers.close()
    assert Answers(tmp_path).state.current == {"/v/a.mp4": "red", "/v/c.mp4": "blue"}


# The order and the head


def test_before_any_embedding_the_list_order_and_skipped_videos_last(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, n=5)
    loop.skip(0)
    assert loop.upcoming(None, 5) == [1, 2, 3, 4, 0]
    assert loop.upcoming(2, 3) == [1, 3, 4]


def test_coverage_first_then_more_like_this(tmp_path: Path) -> None:
    features, truth = clustered()
    loop = make_loop(tmp_path)
    for i, f in enumerate(features):
        loop.embedded(i, f)
    first = loop.upcoming(None, 3)
    assert sorted(truth[i] for i in first) == [0, 1, 2]  # one from each cluster: the collection covered
    loop.answer(first[0], LABELS[truth[first[0]]])
    nxt = loop.upcoming(first[0], 1)[0]
    assert truth[nxt] == truth[first[0]]  # "more like this"
    suggestion = loop.suggestions(nxt)[0]
    assert (suggestion.label, suggestion.by) == (LABELS[truth[first[0]]], "nearest")


def test_the_head_suggests_and_the_least_sure_come_first(tmp_path: Path) -> None:
    features, truth = clustered()
    loop = make_loop(tmp_path)
    for i, f in enumerate(features):
        loop.embedded(i, f)
    for i in range(6):  # two answers per label
        loop.answer(i, LABELS[truth[i]])
    background.train_once(loop)
    assert loop.head is not None and loop.accuracy is not None and loop.accuracy.value == 1.0
    assert all(loop.suggestions(i)[0].label == LABELS[truth[i]] for i in range(6, 30))
    assert loop.suggestions(10)[0].by == "head"
    pool = loop._pool()
    margin = order.margins(pool.probs)  # type: ignore[arg-type]
    nxt = loop.upcoming(None, 1)[0]
    assert margin[nxt] == min(margin[i] for i in range(6, 30))


def test_cross_validation_is_honest_on_labels_that_cannot_be_told_apart() -> None:
    rng = np.random.default_rng(1)
    noise = Videos.stack([rng.normal(size=(2, 16)).astype(np.float32) for _ in range(40)], [i % 2 for i in range(40)])
    accuracy = background.cross_validated(noise, 2, lambda: False)
    assert accuracy is not None and accuracy.folds == 5 and accuracy.answers == 40
    assert 0.2 < accuracy.value < 0.8  # about chance, not the training accuracy


def test_the_models_own_labels_suggest_first(tmp_path: Path, model: Path) -> None:
    from vivit_cli.checkpoint import read_weights

    prior = background.model_prior(lambda: read_weights(model), ["red", "green", "blue", "other"], ("blue", "red"))
    assert prior is not None and prior.weight.shape[0] == 2
    weights = read_weights(model)["classifier.weight"].numpy()
    np.testing.assert_array_equal(prior.weight, weights[[2, 0]])
    assert background.model_prior(lambda: read_weights(model), ["red", "green"], ("red", "pink")) is None
    loop = make_loop(tmp_path, n=3, labels=("blue", "red"))
    loop.embedded(0, np.ones((1, weights.shape[1]), np.float32))
    loop.publish(prior, loop.project.labels, prior=True)
    assert loop.suggestions(0)[0].by == "model"


def test_labels_added_must_be_printable(tmp_path: Path) -> None:
    loop = make_loop(tmp_path, n=2)
    loop.add_label("  yellow ")
    assert loop.project.labels[-1] == "yellow"
    assert json.loads((loop.project.folder / "project.json").read_text())["labels"][-1] == "yellow"
    for bad in ("", "   ", "a\nb"):
        with pytest.raises(LabelError):
            loop.add_label(bad)
    with pytest.raises(LabelError, match="no label 'pink'"):
        loop.answer(0, "pink")
    assert not loop.answers.state.current


# The server


@pytest.fixture()
def client(tmp_path: Path):
    from starlette.testclient import TestClient

    from vivit_cli.label.preview import Media
    from vivit_cli.label.server import Guard, make_app

    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(4):
        write_video(videos / f"c{i}.mp4", 20, size=(64, 48), fourcc="mp4v", frame_fn=coloured(COLOURS["red"], i))
    project, _ = open_project(tmp_path / "project", [str(videos)], False, LABELS, "some/model")
    loop = Loop(project)
    guard = Guard.new("127.0.0.1", 8000)
    app = make_app(loop, Media(project.videos, project.folder, project.views.sampling(8)), guard)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        c.loop, c.guard = loop, guard  # type: ignore[attr-defined]
        yield c


def login(client) -> None:
    response = client.get(f"/?token={client.guard.token}", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert (
        "httponly" in response.headers["set-cookie"].lower()
        and "samesite=strict" in response.headers["set-cookie"].lower()
    )


def test_no_token_no_page(client) -> None:
    for url in ("/", "/v/0", "/api/status", "/media/0", "/static/app.js", "/?token=wrong"):
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 403, url
        assert "token" in response.text
    login(client)
    assert client.get("/api/status").status_code == 200


def test_a_wrong_host_is_refused(client) -> None:
    login(client)
    response = client.get("/api/status", headers={"Host": "evil.example:8000"})
    assert response.status_code == 403 and "answers to 127.0.0.1" in response.text


def test_changes_need_the_pages_csrf_token(client) -> None:
    login(client)
    body = {"video": 0, "label": "red"}
    assert client.post("/api/answer", json=body).status_code == 403
    headers = {"X-Vivit-CSRF": client.guard.csrf, "Sec-Fetch-Site": "cross-site"}
    assert client.post("/api/answer", json=body, headers=headers).status_code == 403
    assert not (client.loop.project.folder / "answers.jsonl").read_bytes()
    page = client.get("/v/0").text
    assert client.guard.csrf in page  # the page carries it
    response = client.post("/api/answer", json=body, headers={"X-Vivit-CSRF": client.guard.csrf})
    assert response.status_code == 200 and response.json()["saved"] is True
    assert client.loop.answers.state.current == {client.loop.project.videos[0]: "red"}


@pytest.mark.parametrize(
    "action,body,status",
    [
        ("answer", {"video": 99, "label": "red"}, 404),
        ("answer", {"video": "../../etc/passwd", "label": "red"}, 404),
        ("answer", {"video": 0, "label": "pink"}, 400),
        ("answer", {"video": 0}, 400),
        ("answer", [1, 2], 400),
        ("skip", {"video": -1}, 404),
        ("delete", {}, 404),
    ],
)
def test_a_bad_request_writes_nothing(client, action: str, body: object, status: int) -> None:
    login(client)
    response = client.post(f"/api/{action}", json=body, headers={"X-Vivit-CSRF": client.guard.csrf})
    assert response.status_code == status and "error" in response.json()
    assert not (client.loop.project.folder / "answers.jsonl").read_bytes()


def test_videos_are_served_by_number_only_with_ranges(client) -> None:
    login(client)
    for url in ("/media/4", "/media/..%2F..%2Fetc%2Fpasswd", "/media/%2Fetc%2Fpasswd", "/preview/-1", "/thumb/x"):
        assert client.get(url).status_code == 404, url
    whole = client.get("/media/0")
    assert whole.status_code == 200 and whole.content == Path(client.loop.project.videos[0]).read_bytes()
    part = client.get("/media/0", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(whole.content)}"


def test_a_video_the_browser_cannot_play_gets_a_preview_of_what_the_model_saw(client) -> None:
    import cv2

    login(client)
    view = client.get("/api/video/1").json()
    assert view["media"] == "/preview/1"  # MPEG-4 Part 2: no browser plays it
    assert [len(c) for c in client.get("/api/looked/1").json()["clips"]] == [2, 2, 2]  # three clips
    response = client.get("/preview/1")
    assert response.status_code == 200 and response.headers["content-type"] == "video/webm"
    preview = client.loop.project.folder / "previews" / "1.webm"
    capture = cv2.VideoCapture(str(preview))
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()
    assert frames == 3 * 8  # every frame of every clip
    assert client.get("/thumb/1").headers["content-type"] == "image/jpeg"


# The command


def test_export_csv_and_label_studio(tmp_path: Path, videos: Path, model: Path) -> None:
    project = tmp_path / "p"
    loop_project, _ = open_project(project, [str(videos)], False, LABELS, str(model))
    answers = Answers(project)
    answers.answer(loop_project.videos[0], "red")
    answers.answer(loop_project.videos[1], "green")
    answers.close()
    result = CliRunner().invoke(cli, ["label", "--project", str(project), "--export", "csv", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "path,label",
        f"{loop_project.videos[0]},red",
        f"{loop_project.videos[1]},green",
    ]
    result = CliRunner().invoke(cli, ["label", "-p", str(project), "--export", "labelstudio", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert len(tasks) == 9 and tasks[0]["data"]["video"] == loop_project.videos[0]
    assert tasks[0]["annotations"][0]["result"][0]["value"]["choices"] == ["red"]
    assert '<Choices name="label" toName="video"' in result.stderr


def test_a_project_another_run_holds_is_refused(tmp_path: Path, videos: Path, model: Path) -> None:
    from vivit_cli.locks import held

    with held(tmp_path / "p", "the project"):
        result = CliRunner().invoke(
            cli, ["label", str(videos), "-p", str(tmp_path / "p"), "--labels", "a,b", "-m", str(model)]
        )
    assert result.exit_code == 2 and "is in use by another vivit run" in result.stderr


def test_without_the_extra_one_line_names_it(tmp_path: Path, videos: Path, model: Path, monkeypatch) -> None:
    import sys

    import vivit_cli.cli

    # As if uvicorn were not installed: the server's module, imported or not by an earlier test, is imported again
    # and meets no uvicorn.
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    monkeypatch.delitem(sys.modules, "vivit_cli.cli.serve", raising=False)
    monkeypatch.delattr(vivit_cli.cli, "serve", raising=False)
    args = ["label", str(videos), "-p", str(tmp_path / "p"), "--labels", "a,b", "-m", str(model), "--no-browser"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and not (tmp_path / "p").exists()  # said before anything is made
    assert result.stderr.strip().splitlines()[-1].endswith('pip install "vivit-cli[label]"')


def test_vivit_train_reads_the_answers_as_they_are(tmp_path: Path, videos: Path, model: Path) -> None:
    project, _ = open_project(tmp_path / "p", [str(videos)], False, LABELS, str(model))
    answers = Answers(project.folder)
    for path in project.videos:
        answers.answer(path, next(label for label in LABELS if label in Path(path).name))
    answers.close()
    cache = ["--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "my-model"
    result = CliRunner().invoke(
        cli, ["train", str(project.folder / "labels.csv"), "-o", str(out), "-m", str(model), *cache]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "blue", "1": "green", "2": "red"}


def test_the_rhythm_runs_over_the_videos_shown_one_by_one() -> None:
    """The page shows the first of upcoming() after each answer: coverage must come in turn there too, not only
    further down the strip."""
    points = order.unit(np.array([[1, 0], [0.99, 0.1], [0, 1], [0.1, 0.99], [-1, 0]], np.float32))
    n = len(points)
    have, open_ = np.ones(n, bool), np.array([False, True, True, True, True])
    closeness = (points @ points[[0]].T).max(axis=1)  # video 0 answered
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]], np.float32)  # 1 is the least sure
    cold = order.Pool(points, have, open_, np.zeros(n, bool), closeness, None, last=0, shown=1)
    assert order.upcoming(cold, 1) == [1]  # after an odd answer: more like this (the nearest to 0)
    assert order.upcoming(order.Pool(**{**vars(cold), "shown": 2}), 1) == [4]  # then coverage: the farthest
    warm = order.Pool(points, have, open_, np.zeros(n, bool), closeness, probs, last=0, shown=3)
    assert order.upcoming(warm, 1) == [1]  # the least sure
    assert order.upcoming(order.Pool(**{**vars(warm), "shown": 2}), 1) == [4]  # every 3rd shown: coverage
