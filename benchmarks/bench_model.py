"""ViViT-B forward time: ours against transformers (sdpa, eager) and against the kernels-alone floor.

    python benchmarks/bench_model.py [--batch-sizes 1,4] [--repeats 2] [--no-eager]

One process, one set of random weights, logits checked to agree. The floor is the time of the same model's
linear layers and attention kernels alone on the same shapes, measured in this run; whatever a model spends
beyond it is overhead (copies, norms, activations, Python).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_time, cpu_description, gpu_description, make_checkpoint  # noqa: E402

from vivit_cli.checkpoint import load_checkpoint  # noqa: E402

MAX_LOGIT_DIFF = 1e-3  # fp32, full-size model, random weights


def kernel_floor(cfg, batch: int, device: torch.device, dtype: torch.dtype, repeats: int, sync) -> dict[str, float]:
    """Seconds spent by one forward's linear layers and attention kernels alone, for the full token sequence."""
    D, inner, L, H = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads
    N = 1 + (cfg.num_frames // cfg.tubelet_size[0]) * (cfg.image_size // cfg.tubelet_size[1]) ** 2
    x = torch.randn(batch, N, D, device=device, dtype=dtype)
    h = torch.randn(batch, N, inner, device=device, dtype=dtype)
    w = {n: torch.randn(o, i, device=device, dtype=dtype) * 0.02 for n, (o, i) in
         {"qkv": (3 * D, D), "proj": (D, D), "fc1": (inner, D), "fc2": (D, inner)}.items()}
    b = {n: torch.zeros(t.shape[0], device=device, dtype=dtype) for n, t in w.items()}
    q, k, v = torch.randn(3, batch, H, N, D // H, device=device, dtype=dtype)  # distinct: no shared cache lines

    def linears() -> None:
        for n in ("qkv", "proj", "fc1"):
            F.linear(x, w[n], b[n])
        F.linear(h, w["fc2"], b["fc2"])

    with torch.inference_mode():
        lin = best_time(linears, repeats, sync) * L
        att = best_time(lambda: F.scaled_dot_product_attention(q, k, v), repeats, sync) * L
    return {"linear": lin, "attention": att, "floor": lin + att}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per measurement (best is kept)")
    ap.add_argument("--no-eager", action="store_true", help="skip transformers' eager attention (slow)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import transformers

    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"CPU: {cpu_description()}")
    if gpu_description():
        print(f"GPU: {gpu_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_checkpoint(Path(tmp))
        ours = load_checkpoint(folder, device).model
        theirs = {impl: transformers.VivitForVideoClassification.from_pretrained(folder, attn_implementation=impl)
                  .to(device).eval() for impl in (["sdpa"] if args.no_eager else ["sdpa", "eager"])}
    cfg = theirs["sdpa"].config
    print(f"model: ViViT-B ({sum(p.numel() for p in ours.parameters()) / 1e6:.1f} M parameters), fp32, "
          f"{cfg.num_frames}x{cfg.image_size}x{cfg.image_size} clips, device {device}\n")
    print(f"{'batch':>5}  {'model':<22}{'s/clip':>8}{'clips/s':>9}{'vs hf best':>11}{'vs floor':>10}")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        torch.manual_seed(batch)
        x = torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, device=device)
        floor = kernel_floor(cfg, batch, device, torch.float32, args.repeats, sync)
        times, logits = {}, {}
        with torch.inference_mode():
            for name, model in [("ours", ours), *((f"transformers {k}", m) for k, m in theirs.items())]:
                logits[name] = model(x).logits  # warm-up, and the logits to compare
                times[name] = best_time(lambda m=model, x=x: m(x), args.repeats, sync)
        for name in logits:
            diff = (logits[name] - logits["ours"]).abs().max().item()
            if diff > MAX_LOGIT_DIFF:
                raise SystemExit(f"logits of {name} differ from ours by {diff:.2e}")
        hf_best = min(t for n, t in times.items() if n != "ours")
        for name, t in [*times.items(), ("floor: linear+attention", floor["floor"])]:
            print(f"{batch:>5}  {name:<22}{t / batch:>8.2f}{batch / t:>9.3f}{hf_best / t:>10.2f}x"
                  f"{t / floor['floor']:>9.2f}x")
        print(f"{'':>5}  (floor = linear {floor['linear'] / batch:.2f} s + attention "
              f"{floor['attention'] / batch:.2f} s per clip; logits agree within {MAX_LOGIT_DIFF})\n")


if __name__ == "__main__":
    main()
