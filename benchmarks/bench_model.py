"""ViViT-B forward time: ours against transformers (sdpa, eager) and against the kernels-alone floor.

    python benchmarks/bench_model.py [--batch-sizes 1,4] [--repeats 2] [--no-eager] [--dtypes fp32,bf16] [--tiny]

One process, one set of random weights, every model timed in alternating rounds, logits checked to agree
(bf16 against ours in fp32, within 0.05). bf16 is measured only where the CPU computes it natively (AVX512_BF16
or AMX); "of peak" is the model's FLOP/s as a fraction of one large matrix product's in the same dtype, measured
in the same run. The floor is the time of the same model's linear layers and attention kernels alone on the same
shapes, measured in this run; whatever a model spends beyond it is overhead (copies, norms, activations, Python).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    best_time,
    cpu_description,
    cpu_native_bf16,
    forward_flops,
    gpu_description,
    make_checkpoint,
    make_tiny_checkpoint,
    matmul_peak,
    write_json,
)

from vivit_cli import load_model  # noqa: E402

MAX_LOGIT_DIFF = {"fp32": 1e-3, "bf16": 0.05}  # against ours in fp32, full-size model, random weights
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


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


def alternating(models: dict[str, dict[str, torch.nn.Module]], x: torch.Tensor, repeats: int, sync
                ) -> dict[str, tuple[dict[str, float], dict[str, torch.Tensor]]]:
    """Per dtype: each model's best time and its logits. Rounds call every model of every dtype in turn, so that
    load from other work on the machine hits them alike and their ratios hold (a run of one after the other
    does not: on a shared machine the load changes within minutes)."""
    times = {d: dict.fromkeys(ms, float("inf")) for d, ms in models.items()}
    logits = {d: {} for d in models}
    inputs = {d: x.to(DTYPES[d]) for d in models}
    with torch.inference_mode():
        for d, ms in models.items():
            for name, model in ms.items():
                logits[d][name] = model(inputs[d]).logits.float()  # warm-up, and the logits to compare
        for _ in range(repeats):
            for d, ms in models.items():
                for name, model in ms.items():
                    t = best_time(lambda m=model, x=inputs[d]: m(x), 1, sync)
                    times[d][name] = min(times[d][name], t)
    return {d: (times[d], logits[d]) for d in models}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per measurement (best is kept)")
    ap.add_argument("--no-eager", action="store_true", help="skip transformers' eager attention (slow)")
    ap.add_argument("--dtypes", default="fp32,bf16", help="fp32 and/or bf16; bf16 only where the CPU has it natively")
    ap.add_argument("--tiny", action="store_true", help="a two-layer 32 px model: checks the harness in seconds")
    ap.add_argument("--matmul-n", type=int, default=2048, help="size of the square matmul that measures the peak")
    ap.add_argument("--json", type=Path, help="write every figure here")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"CPU: {cpu_description()}")
    if gpu_description():
        print(f"GPU: {gpu_description()}")
    dtypes = [d for d in args.dtypes.split(",") if d]
    if "bf16" in dtypes and device.type == "cpu" and not cpu_native_bf16():
        print("this CPU has no native bf16 (no AVX512_BF16 or AMX): bf16 would measure emulation; fp32 only")
        dtypes = [d for d in dtypes if d != "bf16"]
    impls = ["sdpa"] if args.no_eager else ["sdpa", "eager"]
    figures: dict = {"cpu": cpu_description(), "gpu": gpu_description(), "tiny": args.tiny, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_tiny_checkpoint(Path(tmp)) if args.tiny else make_checkpoint(Path(tmp))
        models = {}
        for d in dtypes:
            models[d] = {"ours": load_model(folder, device=device, dtype=DTYPES[d]).model}
            for impl in impls:
                models[d][f"transformers {impl}"] = transformers.VivitForVideoClassification.from_pretrained(
                    folder, attn_implementation=impl, dtype=DTYPES[d]).to(device).eval()
    cfg = models[dtypes[0]]["transformers sdpa"].config
    peaks = {d: matmul_peak(device, DTYPES[d], args.matmul_n, repeats=10, sync=sync) for d in dtypes}
    figures["matmul_peak_flops"] = peaks
    flops = forward_flops(cfg)
    figures["flops_per_clip"] = flops
    params = sum(p.numel() for p in models[dtypes[0]]["ours"].parameters()) / 1e6
    print(f"model: {'tiny' if args.tiny else 'ViViT-B'} ({params:.1f} M parameters, {flops / 1e9:.0f} GFLOP per clip), "
          f"{cfg.num_frames}x{cfg.image_size}x{cfg.image_size} clips, device {device}; matmul peak "
          + ", ".join(f"{d} {p / 1e9:.0f} GFLOP/s" for d, p in peaks.items()) + f" ({args.matmul_n}^3)\n")
    print(f"{'batch':>5}  {'dtype':<6}{'model':<24}{'s/clip':>8}{'clips/s':>9}{'vs hf best':>11}{'vs floor':>10}"
          f"{'of peak':>9}")
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        torch.manual_seed(batch)
        x = torch.randn(batch, cfg.num_frames, 3, cfg.image_size, cfg.image_size, device=device)
        timed = alternating(models, x, args.repeats, sync)
        reference = timed[dtypes[0]][1]["ours"]  # ours in fp32: every dtype's logits are checked against it
        for d in dtypes:
            floor = kernel_floor(cfg, batch, device, DTYPES[d], args.repeats, sync)
            times, logits = timed[d]
            tolerance = MAX_LOGIT_DIFF[d]
            diffs = {name: (lg - reference).abs().max().item() for name, lg in logits.items()}
            for name, diff in diffs.items():
                if diff > tolerance:
                    raise SystemExit(f"{d} logits of {name} differ from ours in {dtypes[0]} by {diff:.2e}")
            hf_best = min(t for n, t in times.items() if n != "ours")
            for name, t in [*times.items(), ("floor: linear+attention", floor["floor"])]:
                print(f"{batch:>5}  {d:<6}{name:<24}{t / batch:>8.2f}{batch / t:>9.3f}{hf_best / t:>10.2f}x"
                      f"{t / floor['floor']:>9.2f}x{batch * flops / t / peaks[d]:>9.0%}")
                figures["rows"].append({"batch": batch, "dtype": d, "model": name, "s_per_clip": t / batch,
                                        "of_matmul_peak": batch * flops / t / peaks[d],
                                        "max_abs_logit_diff_vs_ours_" + dtypes[0]: diffs.get(name)})
            print(f"{'':>5}  {'':<6}(floor = linear {floor['linear'] / batch:.2f} s + attention "
                  f"{floor['attention'] / batch:.2f} s per clip; logits within {max(diffs.values()):.1e} of ours in "
                  f"{dtypes[0]}, limit {tolerance})\n")
        if {"fp32", "bf16"} <= set(dtypes):
            per = {(r["dtype"], r["model"]): r["s_per_clip"] for r in figures["rows"] if r["batch"] == batch}
            ratio_fp32 = per[("bf16", "ours")] / per[("fp32", "ours")]
            ratio_hf = per[("bf16", "ours")] / per[("bf16", "transformers sdpa")]
            figures.setdefault("bf16", {})[batch] = {"ours_bf16_vs_ours_fp32": ratio_fp32,
                                                     "ours_bf16_vs_transformers_sdpa_bf16": ratio_hf}
            print(f"{'':>5}  bf16: ours {ratio_fp32:.2f}x our fp32 (aim <= 0.62, stretch 0.5), "
                  f"{ratio_hf:.2f}x transformers sdpa bf16 (aim <= 0.8)\n")
    write_json(args.json, figures)


if __name__ == "__main__":
    main()
