"""`vivit env`: what a bug report needs: versions, the device and dtype `auto` picks and why, the Hub cache."""

from __future__ import annotations

import json
import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from vivit_cli import __version__
from vivit_cli.results import counted

OPTIONAL = {"ray": "Ray", "av": "PyAV", "pyarrow": "pyarrow"}  # distribution -> name shown; vivit runs without them
FFMPEG_LIBS = ("avcodec", "avformat", "avutil", "swscale")  # the FFmpeg libraries OpenCV's build info lists
SHOWN_MODELS = 10  # cached ViViT models listed on screen; --json lists every cached model
KEY_WIDTH = 16  # characters of the key column on screen


@click.command("env")
@click.option(
    "--model",
    "-m",
    envvar="VIVIT_MODEL",
    help="Also report on this model (Hub repo id or folder): its commit, folder, labels and frames; a Hub model is "
    "fetched without its weights. [env: VIVIT_MODEL] [default: none]",
)
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object on stdout.")
def env_command(model: str | None, as_json: bool) -> None:
    """Show versions, the device and dtype auto picks and why, and the cached models: for bug reports."""
    report = collect()
    if model:
        report["model"] = model_report(model)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for key, value in lines(report):
            click.echo(f"{key:<{KEY_WIDTH}} {value}".rstrip())


def collect() -> dict[str, Any]:
    """Everything `vivit env` reports, as JSON-ready values."""
    import cv2
    import huggingface_hub
    import torch

    from vivit_cli.device import cpu_has_native_bf16, cpu_name

    versions = {
        "vivit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,  # the CUDA torch was built for; None for a CPU-only build
        "opencv": cv2.__version__,
        "huggingface_hub": huggingface_hub.__version__,
    }
    for name in OPTIONAL:
        try:
            versions[name] = metadata.version(name)  # not imported: `import ray` alone takes seconds
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "versions": versions,
        "platform": platform.platform(),
        "opencv_ffmpeg": ffmpeg_versions(cv2.getBuildInformation()),
        "device": _device(),
        "dtype": _dtype(),
        "cpu": {"name": cpu_name(), "count": os.cpu_count(), "native_bf16": cpu_has_native_bf16()},
        "hub": _hub(),
    }


def model_report(model: str) -> dict[str, Any]:
    """What a bug report needs of a model: what the string resolved to and the config's shape; a model that cannot
    be had is reported as such (an env report is not refused for it)."""
    from vivit_cli import hub
    from vivit_cli.checkpoint import read_config
    from vivit_cli.errors import VivitError

    try:
        local = hub.fetch(hub.parse_model(model), weights=False)
        config, _ = read_config(local.folder)
    except VivitError as e:
        return {"asked": model, "error": str(e)}
    return {
        "asked": model,
        "model_id": local.model_id,
        "revision": local.revision,  # None for a folder
        "folder": str(local.folder),
        "note": local.note,
        "labels": config.num_labels,
        "num_frames": config.num_frames,
        "image_size": config.image_size,
        "hidden_size": config.hidden_size,
        "weights": sorted(p.name for p in local.folder.glob("*") if p.suffix in (".safetensors", ".bin")),
    }


def ffmpeg_versions(build_info: str) -> dict[str, str] | None:
    """The FFmpeg libraries in cv2.getBuildInformation()'s "Video I/O" part; None for OpenCV built without it."""
    if not re.search(r"^\s*FFMPEG:\s*YES", build_info, re.MULTILINE):
        return None
    found = {lib: re.search(rf"^\s*{lib}:\s*YES \(([^)]*)\)", build_info, re.MULTILINE) for lib in FFMPEG_LIBS}
    return {lib: m.group(1) for lib, m in found.items() if m}


def _device() -> dict[str, Any]:
    import torch

    from vivit_cli.device import resolve_device

    gpus = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gpus.append(
                {
                    "index": i,
                    "name": props.name,
                    "memory_gib": round(props.total_memory / 2**30, 1),
                    "capability": f"{props.major}.{props.minor}",
                }
            )
        why = f"CUDA {torch.version.cuda} is available, with {counted(len(gpus), 'GPU')}"
    elif torch.version.cuda is None:
        why = f"CUDA is not available: torch {torch.__version__} is a CPU-only build"
    else:
        why = f"CUDA is not available: torch is built for CUDA {torch.version.cuda}, but finds no GPU or driver"
    return {"auto": str(resolve_device("auto")), "why": why, "cuda_available": bool(gpus), "gpus": gpus}


def _dtype() -> dict[str, Any]:
    import torch

    from vivit_cli.device import NATIVE_BF16_FLAGS, cpu_flags, cpu_has_native_bf16, resolve_device, resolve_dtype

    device = resolve_device("auto")
    dtype = str(resolve_dtype("auto", device)).removeprefix("torch.")
    if device.type == "cuda":
        why = "the GPU computes bf16" if torch.cuda.is_bf16_supported() else "the GPU has no bf16, so float16"
    elif cpu_has_native_bf16():
        why = f"the CPU computes bf16 natively ({', '.join(sorted(cpu_flags() & NATIVE_BF16_FLAGS))})"
    else:
        why = "the CPU has no native bf16 (AVX512_BF16 or AMX), where bf16 is slower than float32"
    return {"auto": dtype, "why": why}


def _hub() -> dict[str, Any]:
    from huggingface_hub import constants

    return {
        "cache": str(constants.HF_HUB_CACHE),
        "offline": bool(constants.is_offline_mode()),
        "endpoint": constants.ENDPOINT,
        "models": cached_models(Path(constants.HF_HUB_CACHE)),
    }


def cached_models(cache: Path) -> list[dict[str, Any]]:
    """Every model revision in the cache: repo, commit, the branches and tags naming it, size, model type."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(cache)
    except CacheNotFound:
        return []
    models = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            models.append(
                {
                    "repo_id": repo.repo_id,
                    "revision": rev.commit_hash,
                    "refs": sorted(rev.refs),
                    "size_bytes": rev.size_on_disk,
                    "model_type": _model_type(Path(rev.snapshot_path)),
                }
            )
    return models


def _model_type(snapshot: Path) -> str | None:
    try:
        return json.loads((snapshot / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The report as (key, value) lines for the screen: one screen, plain text to paste into an issue."""
    v = report["versions"]
    cuda = f"CUDA {v['torch_cuda']}" if v["torch_cuda"] else "CPU-only build"
    ffmpeg = report["opencv_ffmpeg"]
    ffmpeg_text = ", ".join(f"{lib} {ver}" for lib, ver in ffmpeg.items()) if ffmpeg else "none"
    out = [
        ("vivit", v["vivit"]),
        ("Python", f"{v['python']} ({report['platform']})"),
        ("torch", f"{v['torch']} ({cuda})"),
        ("OpenCV", f"{v['opencv']}, FFmpeg: {ffmpeg_text}"),
        ("huggingface_hub", v["huggingface_hub"]),
    ]
    out += [(shown, v[name] or "not installed") for name, shown in OPTIONAL.items()]
    device, dtype = report["device"], report["dtype"]
    out.append(("device auto", f"{device['auto']}: {device['why']}"))
    for gpu in device["gpus"]:
        out.append((f"GPU {gpu['index']}", f"{gpu['name']}, {gpu['memory_gib']} GiB, compute {gpu['capability']}"))
    out.append(("dtype auto", f"{dtype['auto']}: {dtype['why']}"))
    cpu = report["cpu"]
    out.append(("CPU", f"{cpu['name']}, {cpu['count']} CPUs, native bf16: {'yes' if cpu['native_bf16'] else 'no'}"))
    hub = report["hub"]
    out.append(("HF cache", hub["cache"]))
    out.append(("offline", "yes (HF_HUB_OFFLINE)" if hub["offline"] else "no"))
    out.append(("Hub endpoint", hub["endpoint"]))
    vivit = [m for m in hub["models"] if m["model_type"] == "vivit"]
    others = len({m["repo_id"] for m in hub["models"] if m["model_type"] != "vivit"})
    out.append(("cached ViViT", counted(len(vivit), "revision") if vivit else "none"))
    for m in vivit[:SHOWN_MODELS]:
        refs = f" ({', '.join(m['refs'])})" if m["refs"] else ""
        out.append(("", f"{m['repo_id']} {m['revision'][:7]}{refs}, {m['size_bytes'] / 1e6:.1f} MB"))
    if len(vivit) > SHOWN_MODELS:
        out.append(("", f"and {len(vivit) - SHOWN_MODELS} more (--json lists them)"))
    if others:
        out.append(("", f"and {counted(others, 'other model')} (--json lists them)"))
    if "model" in report:
        out += _model_lines(report["model"])
    return out


def _model_lines(m: dict[str, Any]) -> list[tuple[str, str]]:
    if "error" in m:
        return [("model", f"{m['asked']}: {m['error']}")]
    if m["revision"]:
        lines = [("model", f"{m['model_id']} @ {m['revision'][:12]}, in {m['folder']}")]
    else:
        lines = [("model", f"{m['folder']} (a folder)")]
    size = m["image_size"]
    size_text = f"{size}x{size}" if isinstance(size, int) else "x".join(map(str, size))
    lines.append(("", f"{counted(m['labels'], 'label')}, {m['num_frames']} frames of {size_text}, "
                      f"hidden size {m['hidden_size']}"))  # fmt: skip
    lines.append(("", "weights: " + (", ".join(m["weights"]) or "not fetched")))
    if m["note"]:
        lines.append(("", m["note"]))
    return lines
