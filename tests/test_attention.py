"""bf16 on a CPU: the model's attention in blocks of queries gives what fp32 gives, within bf16's precision."""

from __future__ import annotations

import torch

from vivit_cli import VivitConfig, VivitForVideoClassification

# 4 frames at 64 px in 2x8x8 tubelets: 129 tokens, more than one block of queries (128), so on a CPU with bf16
# units the blocked path runs (elsewhere SDPA does); 3 heads of 8.
CONFIG = dict(
    image_size=64,
    num_frames=4,
    tubelet_size=(2, 8, 8),
    hidden_size=24,
    num_hidden_layers=2,
    num_attention_heads=3,
    intermediate_size=32,
    id2label={i: f"label_{i}" for i in range(5)},
)
MAX_LOGIT_DIFF = 0.05  # bf16 against fp32, as the issue allows for ViViT-B


def test_bf16_logits_match_fp32() -> None:
    torch.manual_seed(0)
    model = VivitForVideoClassification(VivitConfig(**CONFIG)).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger than the 0.02 initialisation, so attention is far from uniform
            p.add_(torch.randn_like(p) * 0.2)
    x = torch.randn(2, 4, 3, 64, 64)  # (B, T, C, H, W)
    with torch.inference_mode():
        fp32 = model(x).logits
        bf16 = model.to(torch.bfloat16)(x.bfloat16()).logits.float()
    assert (bf16 - fp32).abs().max().item() < MAX_LOGIT_DIFF  # logits up to ~1.4 here; measured 0.014
    assert torch.equal(bf16.argmax(-1), fp32.argmax(-1))
