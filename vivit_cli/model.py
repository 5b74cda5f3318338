"""ViViT as transformers defines it (VivitModel, VivitForVideoClassification), in one compact file.

torch only: no files, no Hub. Checkpoint key names live in checkpoint.py's converter.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as grad_checkpoint

from vivit_cli.config import ACTIVATION_NAMES, PROBLEM_TYPES, VivitConfig
from vivit_cli.errors import VivitError


class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


# transformers' gelu_new / gelu_fast are the tanh approximation of GELU written out by hand; torch's fused
# kernel computes the same function (equal within float rounding) and is faster.
ACTIVATIONS: dict[str, Any] = {
    "gelu": nn.GELU,
    "gelu_python": nn.GELU,
    "gelu_new": lambda: nn.GELU(approximate="tanh"),
    "gelu_fast": lambda: nn.GELU(approximate="tanh"),
    "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "quick_gelu": QuickGELU,
    "mish": nn.Mish,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "linear": nn.Identity,
}

assert set(ACTIVATIONS) == set(ACTIVATION_NAMES)
__all__ = ["ACTIVATIONS", "PROBLEM_TYPES", "VideoClassifierOutput", "VivitConfig", "VivitForVideoClassification",
           "VivitModel", "VivitModelOutput", "classification_loss", "init_weights"]

@dataclass
class VivitModelOutput:
    last_hidden_state: Tensor  # (B, N+1, D)
    pooler_output: Tensor | None = None  # (B, D)
    hidden_states: tuple[Tensor, ...] | None = None  # num_layers + 1 of (B, N+1, D)
    attentions: tuple[Tensor, ...] | None = None  # num_layers of (B, heads, N+1, N+1)


@dataclass
class VideoClassifierOutput:
    logits: Tensor  # (B, num_labels)
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class Embeddings(nn.Module):
    """Tubelets -> tokens, with a CLS token and learned positions: (B, T, C, H, W) -> (B, N+1, D)."""

    def __init__(self, config: VivitConfig) -> None:
        super().__init__()
        self.grid = config.grid
        self.tubelet = config.tubelet_size
        self.patch = nn.Conv3d(config.num_channels, config.hidden_size, config.tubelet_size, config.tubelet_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, math.prod(self.grid) + 1, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: Tensor) -> Tensor:
        B, T, C, H, W = pixel_values.shape
        grid = (T // self.tubelet[0], H // self.tubelet[1], W // self.tubelet[2])
        if min(grid) == 0:
            raise VivitError(f"input of {T} frames at {H}x{W} is smaller than one tubelet {list(self.tubelet)}")
        # The Conv3d's stride equals its kernel, so it is one matrix product over non-overlapping tubelets,
        # which runs faster on CPUs than the convolution kernel and gives the same numbers.
        (t, h, w), (gt, gh, gw) = self.tubelet, grid
        x = pixel_values[:, : gt * t, :, : gh * h, : gw * w]  # conv drops a remainder too
        x = x.reshape(B, gt, t, C, gh, h, gw, w).permute(0, 1, 4, 6, 3, 2, 5, 7)  # (B, gt, gh, gw, C, t, h, w)
        x = F.linear(x.reshape(B, gt * gh * gw, -1), self.patch.weight.flatten(1), self.patch.bias)  # (B, N, D)
        x = torch.cat([self.cls_token.expand(B, -1, -1), x], dim=1)  # (B, N+1, D)
        return self.dropout(x + self.positions(grid))

    def positions(self, grid: tuple[int, int, int]) -> Tensor:
        """Position embeddings for a tubelet grid, interpolated (bicubic in space, linear in time) if needed."""
        pos = self.position_embeddings  # (1, N0+1, D)
        if grid == self.grid:
            return pos
        (t0, h0, w0), (t, h, w), D = self.grid, grid, pos.shape[-1]
        table = pos[0, 1:].float().reshape(t0, h0, w0, D).permute(0, 3, 1, 2)  # (t0, D, h0, w0)
        if (h, w) != (h0, w0):
            table = F.interpolate(table, size=(h, w), mode="bicubic", align_corners=False)  # (t0, D, h, w)
        table = table.permute(1, 0, 2, 3).unsqueeze(0)  # (1, D, t0, h, w)
        if t != t0:
            table = F.interpolate(table, size=(t, h, w), mode="trilinear", align_corners=False)  # (1, D, t, h, w)
        table = table.flatten(2).transpose(1, 2).to(pos.dtype)  # (1, t*h*w, D)
        return torch.cat([pos[:, :1], table], dim=1)  # (1, t*h*w+1, D)


# bf16 attention over thousands of tokens on a CPU with native bf16 runs faster a block of queries at a time than
# in SDPA's kernel (benchmarks/bench_attention.py, a ViViT-B layer on a 2-core Zen 4: 0.66x SDPA's time; a whole
# clip 0.82x): a block's scores stay in cache and both products run on the bf16 units. The same softmax
# attention, with the scores in bf16.
CPU_BF16_QUERY_BLOCK = 128  # queries per block: ViViT-B's scores (12, 128, 3137) in bf16 are 9.6 MB


@functools.cache
def _cpu_has_bf16_units() -> bool:
    cpu = torch.cpu
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def blocked_attention(q: Tensor, k: Tensor, v: Tensor, rows: int) -> Tensor:
    """softmax(q k^T / sqrt(hd)) v, one sample and `rows` queries at a time: (B, nh, Nq, hd) -> (B, nh, Nq, hd)."""
    q = (q * q.shape[-1] ** -0.5).contiguous()  # (B, nh, Nq, hd)
    kt, v = k.transpose(-2, -1).contiguous(), v.contiguous()  # (B, nh, hd, N), (B, nh, N, hd)
    out = []
    for b in range(q.shape[0]):
        blocks = [(q[b, :, i : i + rows] @ kt[b]).softmax(dim=-1) @ v[b] for i in range(0, q.shape[-2], rows)]
        out.append(torch.cat(blocks, dim=1))  # (nh, Nq, hd) from blocks of (nh, rows, hd)
    return torch.stack(out)  # (B, nh, Nq, hd)


class Attention(nn.Module):
    """Multi-head self-attention with fused q/k/v; SDPA unless probabilities or a head mask are asked for."""

    def __init__(self, config: VivitConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.dropout = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)  # [q; k; v] rows
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.pruned: set[int] = set()  # heads removed, in the checkpoint's original numbering

    def forward(
        self, x: Tensor, head_mask: Tensor | None = None, need_weights: bool = False, cls_only: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, N, D) -> (B, N, D), or (B, 1, D) for the CLS query alone; probabilities (B, nh, Nq, N) or None."""
        B, N, _ = x.shape
        nh, hd = self.num_heads, self.head_dim
        inner = nh * hd
        if cls_only:
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, :1], w[:inner], None if b is None else b[:inner])  # (B, 1, nh*hd)
            kv = F.linear(x, w[inner:], None if b is None else b[inner:])  # (B, N, 2*nh*hd)
            q = q.view(B, 1, nh, hd).transpose(1, 2)  # (B, nh, 1, hd)
            k, v = kv.view(B, N, 2, nh, hd).permute(2, 0, 3, 1, 4)  # 2 x (B, nh, N, hd)
        else:
            q, k, v = self.qkv(x).view(B, N, 3, nh, hd).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, N, hd)
        p = self.dropout if self.training else 0.0
        if need_weights or head_mask is not None:
            probs = (q @ k.transpose(-2, -1) * hd**-0.5).softmax(dim=-1)  # (B, nh, Nq, N)
            probs = F.dropout(probs, p)
            if head_mask is not None:
                probs = probs * head_mask.view(-1, nh, 1, 1).to(probs.dtype)
            out = probs @ v  # (B, nh, Nq, hd)
        else:
            probs = None
            if q.shape[-2] > CPU_BF16_QUERY_BLOCK and q.dtype == torch.bfloat16 and q.device.type == "cpu" and (
                p == 0.0 and not q.requires_grad and _cpu_has_bf16_units()
            ):
                out = blocked_attention(q, k, v, CPU_BF16_QUERY_BLOCK)  # (B, nh, Nq, hd)
            else:
                out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, nh, Nq, hd)
        out = out.transpose(1, 2).reshape(B, -1, inner)  # (B, Nq, nh*hd)
        return self.proj(out), (probs if need_weights else None)

    def prune(self, heads: Iterable[int]) -> None:
        """Remove heads (original numbering), shrinking the q/k/v rows and the output columns."""
        heads = set(heads) - self.pruned
        if not heads:
            return
        current = [h for h in range(self.num_heads + len(self.pruned)) if h not in self.pruned]
        keep = [i for i, h in enumerate(current) if h not in heads]
        hd, inner = self.head_dim, self.num_heads * self.head_dim
        cols = torch.tensor([i * hd + j for i in keep for j in range(hd)], device=self.proj.weight.device)
        rows = torch.cat([cols + part * inner for part in range(3)])
        qkv = nn.Linear(self.qkv.in_features, len(rows), bias=self.qkv.bias is not None).to(self.qkv.weight)
        proj = nn.Linear(len(cols), self.proj.out_features).to(self.proj.weight)
        with torch.no_grad():
            qkv.weight.copy_(self.qkv.weight[rows])
            if self.qkv.bias is not None:
                qkv.bias.copy_(self.qkv.bias[rows])
            proj.weight.copy_(self.proj.weight[:, cols])
            proj.bias.copy_(self.proj.bias)
        self.qkv, self.proj = qkv, proj
        self.num_heads = len(keep)
        self.pruned |= heads


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: VivitConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACTIVATIONS[config.hidden_act]()
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.chunk = config.chunk_size_feed_forward

    def mlp(self, x: Tensor) -> Tensor:
        h = self.fc1(x)  # (B, N, I)
        if isinstance(self.act, nn.GELU) and not (torch.is_grad_enabled() and h.requires_grad):
            h = torch.ops.aten.gelu_(h, approximate=self.act.approximate)  # in place: one pass less over (B, N, I)
        else:
            h = self.act(h)
        return self.dropout(self.fc2(h))

    def forward(
        self, x: Tensor, head_mask: Tensor | None = None, need_weights: bool = False, cls_only: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, N, D) -> (B, N, D), or (B, 1, D) with cls_only (the CLS token's output alone)."""
        a, probs = self.attn(self.norm1(x), head_mask, need_weights, cls_only)
        x = (x[:, :1] if cls_only else x) + self.dropout(a)
        h = self.norm2(x)
        if self.chunk and h.shape[1] > self.chunk:
            return x + torch.cat([self.mlp(c) for c in h.split(self.chunk, dim=1)], dim=1), probs
        return x + self.mlp(h), probs


def _head_masks(head_mask: Tensor | None, layers: int) -> list[Tensor | None]:
    """(heads,) applies to every layer; (layers, heads) gives one row per layer."""
    if head_mask is None:
        return [None] * layers
    if head_mask.dim() == 1:
        return [head_mask] * layers
    if head_mask.dim() == 2 and head_mask.shape[0] == layers:
        return list(head_mask)
    raise VivitError(f"head_mask must be (heads,) or ({layers}, heads), got {tuple(head_mask.shape)}")


class VivitModel(nn.Module):
    """The ViViT encoder: tokens, blocks, final LayerNorm and an optional tanh pooler on the CLS token."""

    def __init__(self, config: VivitConfig, add_pooling_layer: bool = True) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = None
        if add_pooling_layer:
            self.pooler = nn.Sequential(
                nn.Linear(config.hidden_size, config.pooler_output_size or config.hidden_size),
                ACTIVATIONS[config.pooler_act](),
            )
        self.gradient_checkpointing = False
        if not self.norm.weight.is_meta:  # on the meta device a checkpoint's weights replace these anyway
            init_weights(self, config.initializer_range)
        self.prune_heads(config.pruned_heads)

    def prune_heads(self, heads_to_prune: Mapping[int, Iterable[int]]) -> None:
        """Remove attention heads: {layer: [heads]} in the checkpoint's original head numbering."""
        for layer, heads in heads_to_prune.items():
            self.blocks[layer].attn.prune(heads)

    @property
    def pruned_heads(self) -> dict[int, tuple[int, ...]]:
        return {i: tuple(sorted(b.attn.pruned)) for i, b in enumerate(self.blocks) if b.attn.pruned}

    def gradient_checkpointing_enable(self, enable: bool = True) -> None:
        self.gradient_checkpointing = enable

    def forward(
        self,
        pixel_values: Tensor,
        head_mask: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        cls_only: bool = False,
        interpolate_pos_encoding: bool | None = None,  # accepted for transformers compatibility; always on
    ) -> VivitModelOutput:
        """pixel_values (B, T, C, H, W) -> last_hidden_state (B, N+1, D); cls_only: the last block's CLS alone."""
        x = self.embeddings(pixel_values)  # (B, N+1, D)
        hidden, attentions = [], []
        masks = _head_masks(head_mask, len(self.blocks))
        for i, block in enumerate(self.blocks):
            if output_hidden_states:
                hidden.append(x)
            last_cls = cls_only and i == len(self.blocks) - 1
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x, probs = grad_checkpoint(block, x, masks[i], output_attentions, last_cls, use_reentrant=False)
            else:
                x, probs = block(x, masks[i], output_attentions, last_cls)
            if output_attentions:
                attentions.append(probs)
        if output_hidden_states:
            hidden.append(x)
        x = self.norm(x)  # (B, N+1, D), or (B, 1, D) with cls_only
        return VivitModelOutput(
            last_hidden_state=x,
            pooler_output=self.pooler(x[:, 0]) if self.pooler is not None else None,
            hidden_states=tuple(hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )


class VivitForVideoClassification(nn.Module):
    """ViViT with a linear head on the final CLS token (no pooler), and the loss transformers would compute."""

    def __init__(self, config: VivitConfig) -> None:
        super().__init__()
        self.config = config
        self.vivit = VivitModel(config, add_pooling_layer=False)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels else nn.Identity()
        if not self.vivit.norm.weight.is_meta:
            init_weights(self.classifier, config.initializer_range)

    def prune_heads(self, heads_to_prune: Mapping[int, Iterable[int]]) -> None:
        self.vivit.prune_heads(heads_to_prune)

    def gradient_checkpointing_enable(self, enable: bool = True) -> None:
        self.vivit.gradient_checkpointing_enable(enable)

    def forward(
        self,
        pixel_values: Tensor,
        labels: Tensor | None = None,
        head_mask: Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        interpolate_pos_encoding: bool | None = None,
    ) -> VideoClassifierOutput:
        """pixel_values (B, T, C, H, W) -> logits (B, num_labels), and the loss when labels are given."""
        # The logits read only the CLS token, so unless every token's output is asked for, the last block
        # computes the CLS row alone: the same numbers for less work.
        cls_only = not (output_attentions or output_hidden_states)
        out = self.vivit(pixel_values, head_mask, output_attentions, output_hidden_states, cls_only=cls_only)
        logits = self.classifier(out.last_hidden_state[:, 0])  # (B, num_labels)
        loss = classification_loss(logits, labels, self.config) if labels is not None else None
        return VideoClassifierOutput(logits, loss, out.hidden_states, out.attentions)


def classification_loss(logits: Tensor, labels: Tensor, config: VivitConfig) -> Tensor:
    """Cross-entropy, MSE or BCE as transformers picks them from problem_type (inferred when unset)."""
    n = config.num_labels
    kind = config.problem_type
    if kind is None:
        if n == 1:
            kind = "regression"
        elif labels.dtype in (torch.long, torch.int):
            kind = "single_label_classification"
        else:
            kind = "multi_label_classification"
    if kind == "regression":
        return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype)) if n == 1 else F.mse_loss(
            logits, labels.to(logits.dtype)
        )
    if kind == "single_label_classification":
        return F.cross_entropy(logits.view(-1, n), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


@torch.no_grad()
def init_weights(module: nn.Module, std: float) -> None:
    """transformers' initialisation: N(0, std) for linear and conv, zero biases and tokens, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d)):
            m.weight.normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.LayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, Embeddings):
            m.cls_token.zero_()
            m.position_embeddings.zero_()
