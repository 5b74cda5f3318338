"""Model strings, the Hugging Face cache, offline use and Hub errors, against a stand-in Hub on 127.0.0.1.

huggingface_hub's real download code runs here; only its configuration (huggingface_hub.constants, which it
reads from the environment once, at import) points it at the stand-in server and a temporary cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hubserver import FakeHub, serving
from huggingface_hub import constants
from huggingface_hub.utils import enable_progress_bars

from vivit_cli.cli import cli
from vivit_cli.errors import CheckpointError, HubAuthError, ModelNotFoundError
from vivit_cli.hub import LocalModel, ModelRef, fetch, parse_model

REPO = "tiny/vivit"
LABELS = ("abseiling", "archery", "juggling")
OLD_LABELS = ("old-a", "old-b", "old-c")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TIMEOUT_S = 0.5  # how long we wait for a hanging stand-in before calling the Hub unreachable


def relabel(config_json: bytes, labels: tuple[str, ...]) -> bytes:
    """The same checkpoint's config.json with other label names."""
    config = json.loads(config_json)
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
    return json.dumps(config).encode()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Repo trees: "main" (safetensors, preprocessor config), "old" (other labels), "bin" (pickle only)."""
    from checkpoints import TINY, hf, make_hf, write_hf

    folder = tmp_path_factory.mktemp("checkpoint")
    id2label = dict(enumerate(LABELS))
    write_hf(make_hf(num_labels=len(LABELS), id2label=id2label, label2id={v: k for k, v in id2label.items()}), folder)
    size = TINY["image_size"]
    processor = hf().VivitImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    processor.save_pretrained(folder)
    main = {p.name: p.read_bytes() for p in folder.iterdir()}
    old = {**main, "config.json": relabel(main["config.json"], OLD_LABELS)}
    pickle = {"config.json": main["config.json"], "pytorch_model.bin": b"tensors would be here"}
    return {"main": main, "old": old, "bin": pickle}


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    """A stand-in Hub that huggingface_hub (and transformers through it) talks to; online for this test."""
    with serving(monkeypatch) as server:
        yield server


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def labels_in(folder: Path) -> tuple[str, ...]:
    id2label = json.loads((folder / "config.json").read_text())["id2label"]
    return tuple(id2label[str(i)] for i in range(len(id2label)))


# --- parse_model ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "repo_id", "revision"),
    [
        ("org/name", "org/name", None),
        ("google/vivit-b-16x2-kinetics400", "google/vivit-b-16x2-kinetics400", None),
        ("org/name@v1.0", "org/name", "v1.0"),
        ("org/name@refs/pr/1", "org/name", "refs/pr/1"),
        (f"Org_1/my.model@{COMMIT}", "Org_1/my.model", COMMIT),
    ],
)
def test_parse_repo_ids(spec: str, repo_id: str, revision: str | None) -> None:
    ref = parse_model(f" {spec} ")
    assert ref == ModelRef(repo_id, revision, None)
    assert str(ref) == spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "org/name@revision"),
        ("vivit", "org/name@revision"),
        ("org/na me", "org/name@revision"),
        ("org/name@", "org/name@revision"),
        ("org/name@a b", "org/name@revision"),
        ("org--x/name", "org/name@revision"),
        ("org/.name", "org/name@revision"),
        ("a/b/c", "no such folder"),
        ("./missing-checkpoint", "no such folder"),
        ("~/missing-vivit-checkpoint", "no such folder"),
        ("/no/such/vivit", "no such folder"),
    ],
)
def test_parse_rejects_what_is_neither_folder_nor_repo(spec: str, message: str) -> None:
    with pytest.raises(ModelNotFoundError, match=message) as err:
        parse_model(spec)
    assert "\n" not in str(err.value)


def test_an_existing_folder_wins_over_a_repo_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    (tmp_path / "weights.bin").write_bytes(b"")
    assert parse_model("org/name") == ModelRef(None, None, Path("org/name"))
    assert parse_model(str(tmp_path)).folder == tmp_path
    with pytest.raises(ModelNotFoundError, match="is a file"):
        parse_model("weights.bin")


def test_a_folder_is_used_as_it_is(tmp_path: Path) -> None:
    assert fetch(parse_model(str(tmp_path))) == LocalModel(tmp_path, str(tmp_path), None, None)


def test_a_folder_never_imports_huggingface_hub(tmp_path: Path) -> None:
    """huggingface_hub and httpx2 cost ~0.4 s of start-up: `vivit classify --model FOLDER` must not pay it."""
    from checkpoints import write_ours

    folder = write_ours(tmp_path / "ckpt")
    code = (
        "import sys; from vivit_cli.pipeline import load_model; "
        f"load_model({str(folder)!r}, device='cpu'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('huggingface_hub', 'httpx2')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n", out.stdout


# --- downloads and the cache ----------------------------------------------------------------------


def test_first_load_downloads_only_what_we_need_then_works_offline(
    hub: FakeHub, files: dict, offline_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extras = {"pytorch_model.bin": b"not wanted", "README.md": b"# tiny", "flax_model.msgpack": b"no"}
    sha = hub.push(REPO, {**files["main"], **extras})
    local = fetch(parse_model(REPO))
    assert local == LocalModel(offline_hub / "models--tiny--vivit" / "snapshots" / sha, REPO, sha, None)
    assert sorted(p.name for p in local.folder.iterdir()) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    assert (local.folder / "model.safetensors").read_bytes() == files["main"]["model.safetensors"]
    assert len(hub.downloads()) == 3

    hub.stop()
    go_offline(monkeypatch)
    again = fetch(parse_model(REPO))
    assert (again.folder, again.revision) == (local.folder, sha)
    assert again.note == f"offline (HF_HUB_OFFLINE is set): using cached {REPO} at {sha[:7]}"


def test_a_cached_model_is_not_downloaded_again(hub: FakeHub, files: dict) -> None:
    hub.push(REPO, files["main"])
    first = fetch(parse_model(REPO))
    served = len(hub.downloads())
    assert fetch(parse_model(REPO)) == first
    assert len(hub.downloads()) == served  # only the revision was asked for


def test_revision_picks_the_files_of_that_revision(hub: FakeHub, files: dict, monkeypatch) -> None:
    main = hub.push(REPO, files["main"])
    old = hub.push(REPO, files["old"], revision="v1")
    for spec, sha, labels in [
        (REPO, main, LABELS),
        (f"{REPO}@v1", old, OLD_LABELS),
        (f"{REPO}@{main}", main, LABELS),
        (f"{REPO}@{old}", old, OLD_LABELS),
    ]:
        local = fetch(parse_model(spec))
        assert (local.revision, labels_in(local.folder)) == (sha, labels), spec

    go_offline(monkeypatch)  # the tag was remembered: it resolves from the cache alone
    assert fetch(parse_model(f"{REPO}@v1")).revision == old
    assert fetch(parse_model(REPO)).revision == main


def test_a_cached_commit_needs_no_request(hub: FakeHub, files: dict) -> None:
    sha = hub.push(REPO, files["main"])
    fetch(parse_model(f"{REPO}@{sha}"))
    asked = len(hub.requests)
    assert fetch(parse_model(f"{REPO}@{sha}")).revision == sha
    assert len(hub.requests) == asked


def test_pickle_weights_only_when_there_is_no_safetensors(hub: FakeHub, files: dict) -> None:
    hub.push(REPO, files["bin"])  # and no preprocessor_config.json: that is fine
    local = fetch(parse_model(REPO))
    assert sorted(p.name for p in local.folder.iterdir()) == ["config.json", "pytorch_model.bin"]


@pytest.mark.parametrize(("drop", "message"), [("config.json", "no config.json"), ("model.safetensors", "no weights")])
def test_a_repo_that_is_not_a_checkpoint(hub: FakeHub, files: dict, drop: str, message: str) -> None:
    hub.push(REPO, {k: v for k, v in files["main"].items() if k != drop})
    with pytest.raises(CheckpointError, match=message):
        fetch(parse_model(REPO))


def test_weights_false_fetches_the_config_only(hub: FakeHub, files: dict) -> None:
    hub.push(REPO, files["main"])
    local = fetch(parse_model(REPO), weights=False)
    assert sorted(p.name for p in local.folder.iterdir()) == ["config.json", "preprocessor_config.json"]
    assert hub.downloads("model.safetensors") == []


# --- an unreachable Hub ---------------------------------------------------------------------------


def break_hub(hub: FakeHub, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "stopped":
        hub.stop()
    elif how == "hangs":
        monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", TIMEOUT_S)
        hub.mode = "hang"
    else:
        hub.mode = "503"


@pytest.mark.parametrize(
    ("how", "note"),
    [
        ("stopped", "Hub unreachable (ConnectError)"),
        ("hangs", "Hub unreachable (ReadTimeout)"),
        ("503", "Hub unavailable (HTTP 503)"),
    ],
)
def test_a_hub_that_stops_answering_falls_back_to_the_cache(
    hub: FakeHub, files: dict, how: str, note: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = hub.push(REPO, files["main"])
    first = fetch(parse_model(REPO))
    break_hub(hub, how, monkeypatch)
    local = fetch(parse_model(REPO))
    assert (local.folder, local.revision) == (first.folder, sha)
    assert local.note == f"{note}: using cached {REPO} at {sha[:7]}"


@pytest.mark.parametrize("how", ["stopped", "hangs", "503", "offline"])
def test_nothing_cached_and_no_hub_says_how_to_get_the_model(
    hub: FakeHub, files: dict, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.push(REPO, files["main"])
    if how == "offline":
        go_offline(monkeypatch)
    else:
        break_hub(hub, how, monkeypatch)
    with pytest.raises(ModelNotFoundError, match=f"vivit download {REPO}") as err:
        fetch(parse_model(REPO))
    assert "local checkpoint folder" in str(err.value) and "\n" not in str(err.value)


def test_weights_missing_from_the_cache_is_not_enough_offline(hub: FakeHub, files: dict, monkeypatch) -> None:
    hub.push(REPO, files["main"])
    fetch(parse_model(REPO), weights=False)
    go_offline(monkeypatch)
    assert fetch(parse_model(REPO), weights=False).note is not None
    with pytest.raises(ModelNotFoundError, match="vivit download"):
        fetch(parse_model(REPO))


# --- answers that are errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "token", "error", "message"),
    [
        (f"{REPO}@nope", None, ModelNotFoundError, "tiny/vivit has no revision 'nope'"),
        ("nobody/missing", None, HubAuthError, "not on the Hub, or it is private or gated"),
        ("nobody/missing", "good", ModelNotFoundError, "no model nobody/missing on the Hub"),
        ("tiny/private", None, HubAuthError, r"set HF_TOKEN or run `hf auth login`"),
        ("tiny/private", "wrong", HubAuthError, "the Hub refused the token"),
        ("tiny/gated", None, HubAuthError, "tiny/gated is gated"),
    ],
)
def test_hub_errors_are_one_line(
    hub: FakeHub, files: dict, spec: str, token: str | None, error: type, message: str
) -> None:
    hub.push(REPO, files["main"])
    hub.push("tiny/private", files["main"], private=True)
    hub.push("tiny/gated", files["main"], gated=True)
    with pytest.raises(error, match=message) as err:
        fetch(parse_model(spec), token=hub.token if token == "good" else token)
    assert "\n" not in str(err.value)


def test_a_token_opens_a_private_repo(hub: FakeHub, files: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = hub.push("tiny/private", files["main"], private=True)
    assert fetch(parse_model("tiny/private"), token=hub.token).revision == sha
    monkeypatch.setenv("HF_TOKEN", hub.token)  # what `hf auth login` or the environment gives every call
    assert fetch(parse_model("tiny/private")).revision == sha
    assert all(r.authorized for r in hub.requests if "/api/agent" not in r.path)


# --- shared with transformers ---------------------------------------------------------------------


def test_what_transformers_cached_is_found_without_a_request(hub: FakeHub, files: dict, monkeypatch) -> None:
    from checkpoints import hf

    sha = hub.push(REPO, files["main"])
    hf().VivitForVideoClassification.from_pretrained(REPO)
    go_offline(monkeypatch)
    asked = len(hub.requests)
    local = fetch(parse_model(REPO))
    assert local.revision == sha and (local.folder / "model.safetensors").is_file()
    assert len(hub.requests) == asked

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    fetch(parse_model(REPO))  # online: the weights transformers fetched are not fetched again
    assert len(hub.downloads("model.safetensors")) == 1


def test_transformers_finds_what_we_fetched(hub: FakeHub, files: dict, monkeypatch) -> None:
    from checkpoints import hf

    hub.push(REPO, files["main"])
    hub.push(REPO, files["old"], revision="v1")
    fetch(parse_model(f"{REPO}@v1"))
    hub.stop()
    go_offline(monkeypatch)
    model = hf().VivitForVideoClassification.from_pretrained(REPO, revision="v1")
    assert tuple(model.config.id2label.values()) == OLD_LABELS


def test_load_model_through_the_hub(hub: FakeHub, files: dict) -> None:
    from vivit_cli.pipeline import load_model
    from vivit_cli.results import ModelInfo

    sha = hub.push(REPO, files["main"])
    classifier = load_model(REPO, device="cpu")
    assert classifier.labels == list(LABELS)
    assert classifier.source.revision == sha
    assert classifier.info == ModelInfo(REPO, sha, "cpu", "float32")  # and where it ran, in what


# --- the commands ---------------------------------------------------------------------------------


def test_download_prints_the_folder(hub: FakeHub, files: dict) -> None:
    sha = hub.push(REPO, files["main"])
    result = CliRunner().invoke(cli, ["download", REPO])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{constants.HF_HUB_CACHE}/models--tiny--vivit/snapshots/{sha}\n"
    assert f"{REPO} at {sha[:7]} is cached" in result.stderr


def test_labels_reads_the_config_only(hub: FakeHub, files: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.push(REPO, files["main"])
    result = CliRunner().invoke(cli, ["labels"], env={"VIVIT_MODEL": REPO})
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == list(LABELS)
    assert hub.downloads("model.safetensors") == []

    go_offline(monkeypatch)
    result = CliRunner().invoke(cli, ["labels", REPO])
    assert result.stdout.splitlines() == list(LABELS)
    assert result.stderr.startswith("Note: offline")
    quiet = CliRunner().invoke(cli, ["-q", "labels", REPO])
    enable_progress_bars()  # -q turned them off for the whole process
    assert (quiet.stdout, quiet.stderr) == (result.stdout, "")


def test_labels_of_a_folder(tmp_path: Path, files: dict) -> None:
    (tmp_path / "config.json").write_bytes(files["old"]["config.json"])
    result = CliRunner().invoke(cli, ["labels", str(tmp_path)])
    assert result.stdout.splitlines() == list(OLD_LABELS)


def test_commands_fail_in_one_line(hub: FakeHub, files: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.push(REPO, files["main"])
    result = CliRunner().invoke(cli, ["labels", f"{REPO}@nope"])
    assert result.exit_code == ModelNotFoundError.exit_code
    assert result.stdout == ""
    assert result.stderr == "Error: tiny/vivit has no revision 'nope' (a branch, tag or commit)\n"
    go_offline(monkeypatch)
    offline = CliRunner().invoke(cli, ["download", "other/model"])
    assert offline.exit_code == ModelNotFoundError.exit_code
    assert offline.stderr.startswith("Error: other/model is not in the cache") and offline.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "paths,needle",
    [
        (["no-such-video.mp4"], "no-such-video.mp4: no such file"),
        (["."], "use: vivit batch ."),
        (["rtsp://camera.local/stream"], "use: vivit webcam --source rtsp://camera.local/stream"),
        (["gone.mp4", "https://example.com/clip.mp4"], "https://example.com/clip.mp4: a URL"),
    ],
)
def test_classify_checks_the_paths_before_it_fetches(hub: FakeHub, files: dict, paths: list[str], needle: str) -> None:
    """A typo in a path must not cost a download (350 MB for the default model): no path, no fetch."""
    hub.push(REPO, files["main"])
    result = CliRunner().invoke(cli, ["classify", "--model", REPO, "--json", *paths])
    assert result.exit_code == 4 and needle in result.stderr
    assert len(result.stderr.splitlines()) == len(paths)  # each one named, as when some exist
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["error"] * len(paths)
    assert hub.requests == []  # not even the revision was asked for
