"""ViViT's hyper-parameters, as a checkpoint's config.json names them: checked; no torch, no files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from vivit_cli.errors import ConfigError

# hidden_act / pooler_act names a checkpoint may use -> the torch.nn module that computes it, and its arguments.
# transformers' gelu_new / gelu_fast are the tanh approximation of GELU written out by hand; torch's fused kernel
# computes the same function (equal within float rounding) and is faster. QuickGELU is ours (layers.py).
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "gelu": ("GELU", {}),
    "gelu_python": ("GELU", {}),
    "gelu_new": ("GELU", {"approximate": "tanh"}),
    "gelu_fast": ("GELU", {"approximate": "tanh"}),
    "gelu_pytorch_tanh": ("GELU", {"approximate": "tanh"}),
    "relu": ("ReLU", {}),
    "silu": ("SiLU", {}),
    "swish": ("SiLU", {}),
    "quick_gelu": ("QuickGELU", {}),
    "mish": ("Mish", {}),
    "tanh": ("Tanh", {}),
    "sigmoid": ("Sigmoid", {}),
    "linear": ("Identity", {}),
}
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")


@dataclass(frozen=True)
class VivitConfig:
    """ViViT hyper-parameters; field names as in a checkpoint's config.json."""

    image_size: int | tuple[int, int] = 224
    num_frames: int = 32
    tubelet_size: tuple[int, int, int] = (2, 16, 16)
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu_fast"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    pooler_output_size: int | None = None  # None: hidden_size
    pooler_act: str = "tanh"
    id2label: Mapping[int, str] = field(default_factory=lambda: {0: "LABEL_0", 1: "LABEL_1"})
    problem_type: str | None = None
    chunk_size_feed_forward: int = 0  # >0: run the MLP over this many tokens at a time (less memory)
    pruned_heads: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(msg: str) -> ConfigError:
            return ConfigError(f"invalid ViViT config: {msg}")

        for name in (
            "num_frames",
            "num_channels",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise bad(f"{name} must be a positive integer, got {v!r}")
        if len(self.tubelet_size) != 3 or any(not isinstance(t, int) or t <= 0 for t in self.tubelet_size):
            raise bad(f"tubelet_size must be three positive integers, got {list(self.tubelet_size)}")
        size = self.image_size
        if not (isinstance(size, int) or isinstance(size, (tuple, list)) and len(size) == 2) or any(
            not isinstance(s, int) or isinstance(s, bool) or s <= 0 for s in self.image_hw
        ):
            raise bad(f"image_size must be a positive integer or [height, width], got {self.image_size!r}")
        if self.hidden_size % self.num_attention_heads:
            raise bad(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        t, h, w = self.tubelet_size
        if self.num_frames % t or self.image_hw[0] % h or self.image_hw[1] % w:
            raise bad(
                f"num_frames {self.num_frames} and image_size {list(self.image_hw)} must be divisible by "
                f"tubelet_size {list(self.tubelet_size)}"
            )
        for name in ("hidden_act", "pooler_act"):
            if getattr(self, name) not in ACTIVATIONS:
                raise bad(f"{name} {getattr(self, name)!r} is not one of {', '.join(sorted(ACTIVATIONS))}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise bad(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not self.layer_norm_eps > 0:
            raise bad(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise bad(f"problem_type {self.problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
        if sorted(self.id2label) != list(range(len(self.id2label))):
            raise bad("id2label keys must be 0..num_labels-1")
        for layer, heads in self.pruned_heads.items():
            if not 0 <= layer < self.num_hidden_layers or any(not 0 <= h < self.num_attention_heads for h in heads):
                raise bad(f"pruned_heads {dict(self.pruned_heads)} names a layer or head that does not exist")
            if len(set(heads)) >= self.num_attention_heads:
                raise bad(f"pruned_heads would remove every head of layer {layer}")

    @property
    def image_hw(self) -> tuple[int, int]:
        s = self.image_size
        return (s, s) if isinstance(s, int) else (s[0], s[1])

    @property
    def grid(self) -> tuple[int, int, int]:
        """Tubelets along time, height and width for the checkpoint's own input size."""
        t, h, w = self.tubelet_size
        return self.num_frames // t, self.image_hw[0] // h, self.image_hw[1] // w

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def labels(self) -> list[str]:
        return [self.id2label[i] for i in range(self.num_labels)]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> VivitConfig:
        """Build from a config.json dict: unknown keys are ignored, types are checked."""
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {k: v for k, v in raw.items() if k in known and v is not None}
        try:
            if "tubelet_size" in kw:
                kw["tubelet_size"] = tuple(int(x) for x in kw["tubelet_size"])
            if isinstance(kw.get("image_size"), (list, tuple)):
                kw["image_size"] = tuple(int(x) for x in kw["image_size"])
            if "id2label" in kw:
                kw["id2label"] = {int(k): str(v) for k, v in kw["id2label"].items()}
            elif "num_labels" in raw:
                kw["id2label"] = {i: f"LABEL_{i}" for i in range(int(raw["num_labels"]))}
            if "pruned_heads" in kw:
                kw["pruned_heads"] = {int(k): tuple(int(h) for h in v) for k, v in kw["pruned_heads"].items()}
            for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps"):
                if name in kw:
                    kw[name] = float(kw[name])
            if "chunk_size_feed_forward" in kw:
                kw["chunk_size_feed_forward"] = int(kw["chunk_size_feed_forward"])
        except (TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"invalid ViViT config: {e}") from None
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """The config.json transformers writes for this model (labels keyed by strings)."""
        d: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        d["tubelet_size"] = list(self.tubelet_size)
        d["image_size"] = self.image_size if isinstance(self.image_size, int) else list(self.image_size)
        d["pooler_output_size"] = self.pooler_output_size or self.hidden_size
        d["id2label"] = {str(i): name for i, name in self.id2label.items()}
        d["label2id"] = {name: i for i, name in self.id2label.items()}
        d["pruned_heads"] = {str(k): list(v) for k, v in self.pruned_heads.items()}
        if not d["pruned_heads"]:
            del d["pruned_heads"]
        if d["problem_type"] is None:
            del d["problem_type"]
        return {"model_type": "vivit", **d}
