"""One ViViT-B layer's attention (12 heads x 3137 tokens x 64) in every form torch offers on a CPU, fp32 and bf16.

    python benchmarks/bench_attention.py [--repeats 5] [--dtypes fp32,bf16] [--forms sdpa,chunked] [--compile]

q, k and v come from one fused qkv product, laid out as the model's Attention makes them. Forms:

  sdpa           F.scaled_dot_product_attention on those views (what the model calls)
  sdpa-contig    the same on contiguous copies
  unfused        (q k^T) * scale, softmax, @ v: the scores written out whole (12 x 3137 x 3137)
  chunked-N      the same, N queries at a time into contiguous k^T and v: the scores of a chunk stay in cache
  onednn-graph   the unfused form traced by TorchScript with oneDNN graph fusion on (one fused partition)
  compiled-sdpa  torch.compile (inductor) of sdpa (--compile: minutes of compiling)

Rounds alternate the forms and the best of --repeats is kept, so load from other work hits all alike. Each
form's output is checked against an fp64 reference. Times are ms per layer; ratios against sdpa in the same
dtype and against fp32 sdpa. The parts of the unfused form (q k^T, softmax, @ v) are timed apart too.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_description, cpu_native_bf16, write_json  # noqa: E402

from vivit_cli.layers import blocked_attention  # noqa: E402

HEADS, TOKENS, HEAD_DIM = 12, 3137, 64  # ViViT-B/16x2: 16 x 14 x 14 tubelets + CLS
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CHUNKS = (64, 128, 256, 512)  # queries per chunk (the model's CPU_BF16_QUERY_BLOCK is 128)
Form = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def qkv_views(batch: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v (B, nh, N, hd) as views of one (B, N, 3 * nh * hd) product, as the model's Attention has them."""
    gen = torch.Generator().manual_seed(seed)
    qkv = torch.randn(batch, TOKENS, 3 * HEADS * HEAD_DIM, generator=gen).to(dtype)
    q, k, v = qkv.view(batch, TOKENS, 3, HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, N, hd)
    return q, k, v


def unfused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1) @ v  # (B, nh, N, hd)


def chunked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int) -> torch.Tensor:
    """Softmax attention, one sample and `chunk` queries at a time: the model's own form (layers.blocked_attention)."""
    return blocked_attention(q, k, v, chunk)


def per_head(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention one head at a time: three large 2-D products per head, scores (N, N) of one head alone."""
    q = (q * q.shape[-1] ** -0.5).contiguous()  # (B, nh, Nq, hd)
    kt, v = k.transpose(-2, -1).contiguous(), v.contiguous()  # (B, nh, hd, N), (B, nh, N, hd)
    out = torch.empty_like(q)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            torch.mm((q[b, h] @ kt[b, h]).softmax(dim=-1), v[b, h], out=out[b, h])  # (Nq, hd)
    return out


def onednn_graph(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Form:
    """The unfused form traced with oneDNN graph fusion on: oneDNN gets the whole attention as one partition.

    Its pattern matcher wants the scale after the product and contiguous inputs, so they are made so here.
    """
    torch.jit.enable_onednn_fusion(True)  # TorchScript only: the other forms do not see it
    with torch.no_grad():
        traced = torch.jit.trace(OnednnPattern().eval(), tuple(t.contiguous() for t in (q, k, v)))

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return traced(q.contiguous(), k.contiguous(), v.contiguous())

    for _ in range(3):  # the profiling executor fuses after a few calls
        run(q, k, v)
    return run


class OnednnPattern(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (torch.matmul(q, k.transpose(-2, -1)) / HEAD_DIM**0.5).softmax(dim=-1) @ v  # a constant, not traced


def best_ms(forms: dict[str, Form], args: tuple[torch.Tensor, ...], repeats: int) -> dict[str, float]:
    """The best of `repeats` rounds per form, in ms; each round calls every form once, in turn."""
    times = {name: float("inf") for name in forms}
    with torch.inference_mode():
        for fn in forms.values():
            fn(*args)  # warm-up
        for _ in range(repeats):
            for name, fn in forms.items():
                t = time.perf_counter()
                fn(*args)
                times[name] = min(times[name], (time.perf_counter() - t) * 1000)
    return times


def parts_ms(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, repeats: int) -> dict[str, float]:
    """The unfused form's three steps apart, on contiguous inputs."""
    q, kt, v = (q * q.shape[-1] ** -0.5).contiguous(), k.transpose(-2, -1).contiguous(), v.contiguous()
    with torch.inference_mode():
        scores = q @ kt
        probs = scores.softmax(dim=-1)
        return best_ms({"q k^T": lambda: q @ kt, "softmax": lambda: scores.softmax(dim=-1), "@ v": lambda: probs @ v},
                       (), repeats)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--forms", default="", help="comma-separated names to keep (prefixes), e.g. sdpa,chunked")
    ap.add_argument("--compile", action="store_true", help="also torch.compile(sdpa): compiling takes minutes")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    print(f"CPU: {cpu_description()}")
    dtypes = [d for d in args.dtypes.split(",") if d]
    if "bf16" in dtypes and not cpu_native_bf16():
        print("this CPU has no native bf16 (no AVX512_BF16 or AMX): bf16 would measure emulation; fp32 only")
        dtypes = [d for d in dtypes if d != "bf16"]
    print(
        f"attention of one layer: {args.batch} x {HEADS} heads x {TOKENS} tokens x {HEAD_DIM}; best of "
        f"{args.repeats} alternating rounds, ms per layer\n"
    )
    figures: dict[str, dict] = {}
    q64, k64, v64 = (t.double() for t in qkv_views(args.batch, torch.float32))
    ref = F.scaled_dot_product_attention(q64, k64, v64)
    for name in dtypes:
        q, k, v = qkv_views(args.batch, DTYPES[name])
        forms: dict[str, Form] = {
            "sdpa": F.scaled_dot_product_attention,
            "sdpa-contig": lambda q, k, v: F.scaled_dot_product_attention(*(t.contiguous() for t in (q, k, v))),
            "unfused": unfused,
            **{f"chunked-{c}": (lambda q, k, v, c=c: chunked(q, k, v, c)) for c in CHUNKS},
            "per-head": per_head,
        }  # fmt: skip
        try:
            forms["onednn-graph"] = onednn_graph(q, k, v)
        except RuntimeError as e:  # oneDNN graph may refuse a dtype or a pattern on this CPU
            print(f"onednn-graph in {name}: {str(e).strip().splitlines()[-1]}; left out")
        if args.compile:
            forms["compiled-sdpa"] = torch.compile(F.scaled_dot_product_attention)
        if args.forms:
            keep = tuple(args.forms.split(","))
            forms = {n: f for n, f in forms.items() if n.startswith(keep) or n == "sdpa"}
        with torch.inference_mode():
            diffs = {n: (f(q, k, v).double() - ref).abs().max().item() for n, f in forms.items()}
        times = best_ms(forms, (q, k, v), args.repeats)
        figures[name] = {"ms": times, "max_abs_diff_vs_fp64": diffs, "parts_ms": parts_ms(q, k, v, args.repeats)}
    base = figures.get("fp32", {}).get("ms", {}).get("sdpa")
    print(f"{'form':<16}{'dtype':<6}{'ms/layer':>9}{'vs sdpa':>9}{'vs fp32 sdpa':>14}{'max |diff|':>12}")
    for name, f in figures.items():
        for form, ms in f["ms"].items():
            vs_base = f"{ms / base:.2f}x" if base else "-"
            print(
                f"{form:<16}{name:<6}{ms:>9.1f}{ms / f['ms']['sdpa']:>8.2f}x{vs_base:>14}"
                f"{f['max_abs_diff_vs_fp64'][form]:>12.1e}"
            )
        print(f"{'':<16}{name:<6}unfused parts: " + ", ".join(f"{p} {ms:.1f}" for p, ms in f["parts_ms"].items()))
    write_json(args.json, {"cpu": cpu_description(), "figures": figures})


if __name__ == "__main__":
    main()
