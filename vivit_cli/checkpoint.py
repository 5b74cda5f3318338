"""A checkpoint folder in transformers' layout -> our model, strictly and safely; and back again.

Reading the JSON files is torch-free (a Ray driver reads the settings and never runs the model): torch and the model
are imported by the functions that build or save one.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vivit_cli.config import VivitConfig
from vivit_cli.errors import CheckpointError, ConfigError
from vivit_cli.video.preprocess import PreprocessConfig

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from vivit_cli.model import VivitForVideoClassification, VivitModel

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"
MAX_KEYS_SHOWN = 6  # in a mismatch error

# Our module names -> transformers' checkpoint names inside one encoder layer. q/k/v are fused in ours.
_LAYER_KEYS = {
    "norm1": "layernorm_before",
    "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense",
    "fc1": "intermediate.dense",
    "fc2": "output.dense",
}
_TOP_KEYS = {
    "embeddings.patch": "embeddings.patch_embeddings.projection",
    "embeddings.cls_token": "embeddings.cls_token",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "norm": "layernorm",
    "pooler.0": "pooler.dense",
}
_QKV = ("query", "key", "value")


@dataclass(frozen=True)
class Checkpoint:
    """What a folder holds, read and checked, with the model (and its config) built on the requested device."""

    preprocess: PreprocessConfig
    model: VivitForVideoClassification | VivitModel


def to_hf_state_dict(ours: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our state dict -> transformers' checkpoint keys (q/k/v split back out)."""
    out: dict[str, Tensor] = {}
    for key, t in ours.items():
        prefix, rest = ("vivit.", key[len("vivit.") :]) if key.startswith("vivit.") else ("", key)
        if key.startswith("classifier."):
            out[key] = t
            continue
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", rest)
        if m:
            layer, name, kind = m.groups()
            base = f"{prefix}encoder.layer.{layer}."
            if name == "attn.qkv":
                for part, chunk in zip(_QKV, t.chunk(3), strict=True):
                    out[f"{base}attention.attention.{part}.{kind}"] = chunk
            else:
                out[f"{base}{_LAYER_KEYS[name]}.{kind}"] = t
            continue
        for mine, theirs in _TOP_KEYS.items():
            if rest == mine or rest.startswith(mine + "."):
                out[prefix + theirs + rest[len(mine) :]] = t
                break
        else:
            raise AssertionError(f"no checkpoint name for {key}")
    return out


def from_hf_state_dict(theirs: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """transformers' checkpoint keys -> ours for `model`; names every missing, unexpected or misshapen key."""
    import torch

    expected = {k: tuple(v.shape) for k, v in to_hf_state_dict(model.state_dict()).items()}
    got = {k: tuple(v.shape) for k, v in theirs.items()}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
    if missing or unexpected or wrong:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                more = f" (+{len(keys) - MAX_KEYS_SHOWN} more)" if len(keys) > MAX_KEYS_SHOWN else ""
                parts.append(f"{what} keys: {', '.join(keys[:MAX_KEYS_SHOWN])}{more}")
        if wrong:
            shown = ", ".join(f"{k} {list(got[k])} != {list(expected[k])}" for k in wrong[:MAX_KEYS_SHOWN])
            parts.append(f"wrong shapes: {shown}")
        raise CheckpointError("weights do not match the config: " + "; ".join(parts))
    ours: dict[str, Tensor] = {}
    for key in model.state_dict():
        names = list(to_hf_state_dict({key: torch.empty(0)}))  # a fused qkv's three: query, key, value
        ours[key] = torch.cat([theirs[n] for n in names]) if len(names) > 1 else theirs[names[0]]
    return ours


def read_weights(folder: Path) -> dict[str, Tensor]:
    """model.safetensors (or its shards) if present, else pytorch_model.bin loaded with weights_only."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from torch import Tensor

    files: list[Path] = []
    if (folder / SAFETENSORS_FILE).is_file():
        files = [folder / SAFETENSORS_FILE]
    elif (folder / SAFETENSORS_INDEX).is_file():
        index = read_json(folder / SAFETENSORS_INDEX).get("weight_map", {})
        files = [folder / name for name in sorted(set(index.values()))]
    if files:
        weights: dict[str, Tensor] = {}
        for f in files:
            try:
                weights.update(load_file(f))
            except (SafetensorError, OSError) as e:
                raise CheckpointError(f"cannot read {f}: {e}") from None
        return weights
    path = folder / PICKLE_FILE
    if not path.is_file():
        raise CheckpointError(f"no weights in {folder}: expected {SAFETENSORS_FILE} or {PICKLE_FILE}")
    warnings.warn(
        f"{folder.name} has only {PICKLE_FILE}; loading it as tensors only (weights_only=True). "
        f"Prefer {SAFETENSORS_FILE}.",
        stacklevel=2,
    )
    try:
        weights = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses anything but tensors; torch raises several types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"refusing to load {path}: not a plain tensor file ({first})") from None
    if not isinstance(weights, dict) or not all(isinstance(v, Tensor) for v in weights.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return weights


def _is_classifier(raw: Mapping[str, Any], weights: Mapping[str, Tensor]) -> bool:
    """A VivitForVideoClassification checkpoint, as opposed to a bare VivitModel."""
    archs = raw.get("architectures") or []
    if "VivitModel" in archs:
        return False
    return "VivitForVideoClassification" in archs or any(k.startswith("vivit.") for k in weights)


def load_checkpoint(
    folder: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> Checkpoint:
    """Read and check a checkpoint folder, build the model on `device` in `dtype` (float32), in eval mode."""
    import torch

    from vivit_cli.model import VivitForVideoClassification, VivitModel

    dtype = dtype or torch.float32
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder")
    config, raw = read_config(folder)
    preprocess = read_preprocess(folder)
    weights = read_weights(folder)
    # Built on the meta device: no time spent initialising weights that the checkpoint replaces.
    with torch.device("meta"):
        model: nn.Module
        if _is_classifier(raw, weights):
            model = VivitForVideoClassification(config)
        else:
            model = VivitModel(config, add_pooling_layer=any(k.startswith("pooler.") for k in weights))
    state = from_hf_state_dict(weights, model)
    state = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return Checkpoint(preprocess, model.eval())


def save_pretrained(
    model: VivitForVideoClassification | VivitModel, folder: str | Path, preprocess: PreprocessConfig | None = None
) -> Path:
    """Write config.json, model.safetensors and preprocessor_config.json that transformers loads."""
    from vivit_cli.model import VivitForVideoClassification

    base = model.vivit if isinstance(model, VivitForVideoClassification) else model
    config = model.config.to_dict()
    config["architectures"] = [type(model).__name__]
    if base.pruned_heads:
        config["pruned_heads"] = {str(k): list(v) for k, v in base.pruned_heads.items()}
    config["torch_dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    return write_folder(folder, config, to_hf_state_dict(model.state_dict()), preprocess)


def write_folder(
    folder: str | Path, config: Mapping[str, Any], state: Mapping[str, Tensor], preprocess: PreprocessConfig | None
) -> Path:
    """config.json (UTF-8: labels in any script), model.safetensors of `state` (transformers' keys) and
    preprocessor_config.json into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    save_file(tensors, folder / SAFETENSORS_FILE, metadata={"format": "pt"})
    for name, data in ((CONFIG_FILE, config), (PREPROCESSOR_FILE, (preprocess or PreprocessConfig()).to_dict())):
        (folder / name).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return folder


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path.name} not found in {path.parent}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def read_config(folder: Path) -> tuple[VivitConfig, dict[str, Any]]:
    """config.json -> (config, raw dict); refuses other model types."""
    raw = read_json(folder / CONFIG_FILE)
    model_type = raw.get("model_type")
    if model_type is not None and model_type != "vivit":
        raise CheckpointError(f"{folder} holds a {model_type!r} model, not ViViT (model_type 'vivit')")
    return VivitConfig.from_dict(raw), raw


def read_preprocess(folder: Path) -> PreprocessConfig:
    """preprocessor_config.json; transformers' defaults when the checkpoint has none."""
    path = folder / PREPROCESSOR_FILE
    return PreprocessConfig.from_dict(read_json(path)) if path.is_file() else PreprocessConfig()
