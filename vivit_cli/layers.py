"""ViViT's layers: tubelet embeddings, multi-head self-attention and the pre-norm block. torch only."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vivit_cli.config import ACTIVATIONS, VivitConfig
from vivit_cli.errors import VivitError


class QuickGELU(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def activation(name: str) -> nn.Module:
    """A config's hidden_act / pooler_act name -> its module (config.ACTIVATIONS says which)."""
    cls, kwargs = ACTIVATIONS[name]
    return QuickGELU() if cls == "QuickGELU" else getattr(nn, cls)(**kwargs)


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
    """The same answer as --dtype auto's (the CPU's flags), read once."""
    from vivit_cli.device import cpu_has_native_bf16

    return cpu_has_native_bf16()


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
            if (
                q.shape[-2] > CPU_BF16_QUERY_BLOCK
                and q.dtype == torch.bfloat16
                and q.device.type == "cpu"
                and (p == 0.0 and not q.requires_grad and _cpu_has_bf16_units())
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
        self.act = activation(config.hidden_act)
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
