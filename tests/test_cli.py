"""The `vivit` group: global options wherever they are put, MODEL as --model too, checks before any fetch, and
`vivit env`. The Hub is the stand-in server on 127.0.0.1, which counts what it is asked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hubserver import FakeHub, serving
from huggingface_hub import constants

from tests.checkpoints import write_ours
from tests.videos import write_video
from vivit_cli.cli import cli
from vivit_cli.cli.env import ffmpeg_versions
from vivit_cli.errors import ModelNotFoundError

REPO = "tiny/vivit"
LABELS = ["waving", "running", "juggling"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ours(tmp_path_factory.mktemp("ckpt"), labels=LABELS)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.avi", 12, size=(40, 32), fourcc="MJPG")


@pytest.fixture
def hub(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeHub, str]]:
    """The stand-in Hub, online for this test, serving the tiny checkpoint as REPO; yields it and the commit."""
    with serving(monkeypatch) as server:
        yield server, server.push(REPO, {p.name: p.read_bytes() for p in checkpoint.iterdir()})


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


# Global options, before or after the command


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_takes_the_global_options(name: str) -> None:
    help_text = run(name, "--help").stdout
    assert "--debug" in help_text and "-q, --quiet" in help_text


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_before_or_after_the_command(checkpoint: Path, video: Path, tmp_path: Path, where: str) -> None:
    args = ["timeline", str(video), "-m", str(checkpoint), "-o", str(tmp_path / "t.csv")]
    loud = run(*args)
    assert loud.exit_code == 0 and "Scoring" in loud.stderr
    quiet = run(*(["-q", *args] if where == "before" else [*args, "-q"]))
    assert quiet.exit_code == 0 and quiet.stderr == ""


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command(video: Path, where: str) -> None:
    args = ["classify", str(video), "-m", "./no-such-model"]
    plain = run(*args)
    assert plain.exit_code == ModelNotFoundError.exit_code and plain.stderr.startswith("Error: ")
    debug = run(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert isinstance(debug.exception, ModelNotFoundError)  # raised, with its traceback


# MODEL as an argument or as --model


@pytest.mark.parametrize(
    "args", [["labels", "{ckpt}"], ["labels", "--model", "{ckpt}"], ["labels", "-m", "{ckpt}"], ["labels"]]
)
def test_labels_takes_model_as_argument_or_option(checkpoint: Path, args: list[str]) -> None:
    result = run(*(a.format(ckpt=checkpoint) for a in args), env={"VIVIT_MODEL": str(checkpoint)})
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == LABELS


def test_the_argument_wins_over_the_environment_and_two_models_are_refused(checkpoint: Path) -> None:
    assert run("labels", str(checkpoint), env={"VIVIT_MODEL": "./elsewhere"}).stdout.splitlines() == LABELS
    both = run("labels", str(checkpoint), "--model", "./elsewhere")
    assert both.exit_code == 2 and "two models" in both.stderr


@pytest.mark.parametrize("args", [["download", REPO], ["download", "--model", REPO], ["download", "-m", REPO]])
def test_download_takes_model_as_argument_or_option(hub: tuple[FakeHub, str], args: list[str]) -> None:
    _, sha = hub
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{constants.HF_HUB_CACHE}/models--tiny--vivit/snapshots/{sha}\n"


# Paths, sources, output names and option combinations are checked before the model is fetched


@pytest.mark.parametrize(
    "args,code",
    [
        (["batch", "{tmp}/missing.mp4"], 2),
        (["batch", "{video}", "--out", "{tmp}/no-folder/preds.csv"], 2),
        (["batch", "{video}", "--out", "{tmp}/preds.txt"], 2),
        (["batch", "{video}", "--resume"], 2),
        (["batch", "{video}", "--gpus-per-worker", "1"], 2),
        (["timeline", "{tmp}/missing.mp4"], 4),
        (["timeline", "{tmp}/text.mp4"], 4),
        (["timeline", "{video}", "--out", "{tmp}/no-folder/t.csv"], 2),
        (["timeline", "{video}", "--plot", "{tmp}/no-folder/t.png"], 2),
        (["webcam", "-s", "{tmp}/missing.mp4"], 4),
        (["webcam", "-s", "{video}", "--out", "{tmp}/no-folder/log.csv"], 2),
        (["webcam", "-s", "{video}", "--out", "{tmp}/log.txt"], 2),
        (["webcam", "-s", "0", "--fast"], 2),
        (["webcam", "-s", "{video}", "--show"], 2),
    ],
)
def test_bad_input_never_fetches_the_model(
    hub: tuple[FakeHub, str], video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int
) -> None:
    server, _ = hub
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "text.mp4").write_text("not a video")
    result = run(*(a.format(tmp=tmp_path, video=video) for a in args), "--model", REPO)
    assert result.exit_code == code, result.stderr
    assert result.stderr.startswith(("Error: ", "Usage: ")) and result.stdout == ""
    assert server.requests == []


def test_good_input_does_fetch_the_model(hub: tuple[FakeHub, str], video: Path, tmp_path: Path) -> None:
    server, _ = hub
    result = run("timeline", str(video), "--model", REPO, "-o", str(tmp_path / "t.csv"))
    assert result.exit_code == 0, result.stderr
    assert len(server.downloads()) == 3  # config, preprocessor config and weights: the counting works


# vivit env


def test_env_reports_the_versions_of_what_is_imported() -> None:
    import cv2
    import huggingface_hub
    import torch

    import vivit_cli

    result = run("env", "--json")
    assert result.exit_code == 0, result.stderr
    versions = json.loads(result.stdout)["versions"]
    expected = {
        "vivit": vivit_cli.__version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "opencv": cv2.__version__,
        "huggingface_hub": huggingface_hub.__version__,
    }
    assert {k: versions[k] for k in expected} == expected
    for name in ("av", "pyarrow", "ray"):
        module = pytest.importorskip(name)
        assert versions[name] == module.__version__


def test_env_reports_device_dtype_and_offline() -> None:
    import torch

    from vivit_cli.device import resolve_device

    report = json.loads(run("env", "--json").stdout)
    assert report["device"]["auto"] == str(resolve_device("auto"))
    assert report["device"]["cuda_available"] == torch.cuda.is_available()
    if not torch.cuda.is_available():  # the tests' CPU has no native bf16 (conftest): fp32
        assert report["dtype"]["auto"] == "float32" and report["cpu"]["native_bf16"] is False
        assert "no native bf16" in report["dtype"]["why"]
    assert report["hub"]["offline"] is True  # the tests run with HF_HUB_OFFLINE=1
    assert report["hub"]["cache"] == constants.HF_HUB_CACHE and report["hub"]["models"] == []


def test_env_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `auto` picks where CUDA answers (faked here: these tests run on CPUs), and the GPUs listed."""
    import types

    import torch

    props = types.SimpleNamespace(name="NVIDIA H200", total_memory=141 * 2**30, major=9, minor=0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    report = json.loads(run("env", "--json").stdout)
    assert report["device"]["auto"] == "cuda" and report["device"]["cuda_available"] is True
    assert report["device"]["gpus"] == [{"index": 0, "name": "NVIDIA H200", "memory_gib": 141.0, "capability": "9.0"}]
    assert report["dtype"] == {"auto": "bfloat16", "why": "the GPU computes bf16"}
    assert "GPU 0            NVIDIA H200, 141.0 GiB, compute 9.0" in run("env").stdout


def test_env_lists_the_cached_models(hub: tuple[FakeHub, str]) -> None:
    _, sha = hub
    assert run("download", REPO).exit_code == 0
    result = run("env", "--json")
    report = json.loads(result.stdout)
    assert report["hub"]["offline"] is False
    (model,) = report["hub"]["models"]
    assert model["repo_id"] == REPO and model["revision"] == sha and model["refs"] == ["main"]
    assert model["model_type"] == "vivit" and model["size_bytes"] > 0
    screen = run("env").stdout
    assert f"{REPO} {sha[:7]} (main)" in screen and "offline          no" in screen


BUILD_INFO = """
  Video I/O:
    FFMPEG:                      YES
      avcodec:                   YES (62.28.101)
      avformat:                  YES (62.12.101)
      avutil:                    YES (60.26.101)
      swscale:                   YES (9.5.101)
    GStreamer:                   NO
"""


def test_ffmpeg_versions_from_opencv_build_information() -> None:
    assert ffmpeg_versions(BUILD_INFO) == {
        "avcodec": "62.28.101",
        "avformat": "62.12.101",
        "avutil": "60.26.101",
        "swscale": "9.5.101",
    }
    assert ffmpeg_versions(BUILD_INFO.replace("FFMPEG:                      YES", "FFMPEG: NO")) is None


def test_env_takes_model_as_every_command_does(tmp_path: Path) -> None:
    folder = write_ours(tmp_path / "m", labels=["a", "b", "c"])
    result = run("env", "-m", str(folder), "--json")
    assert result.exit_code == 0, result.stderr
    model = json.loads(result.stdout)["model"]
    assert (model["labels"], model["revision"], model["weights"]) == (3, None, ["model.safetensors"])
    assert "3 labels, 4 frames of 32x32" in run("env", "--model", str(folder)).stdout
    missing = run("env", "-m", "nobody/absent")  # offline and not cached: said in the report, which still comes
    assert missing.exit_code == 0 and "nobody/absent" in missing.stdout and "offline" in missing.stdout
    assert "model" not in json.loads(run("env", "--json").stdout)  # none asked: nothing fetched


def test_cache_dir_help_reads_as_three_places() -> None:
    help_text = " ".join(run("train", "--help").stdout.split())
    assert (
        "[default: $VIVIT_CACHE/embeddings where VIVIT_CACHE is set, else $XDG_CACHE_HOME/vivit/embeddings, else "
        "~/.cache/vivit/embeddings]" in help_text
    )
