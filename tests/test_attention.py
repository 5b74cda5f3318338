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


def test_blocked_attention_is_softmax_attention() -> None:
    from vivit_cli.layers import blocked_attention

    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 37, 8, generator=gen) for _ in range(3))  # (B, nh, N, hd); 37: a ragged last block
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(blocked_attention(q, k, v, rows=16), want, atol=1e-5, rtol=1e-5)


COLOURS = {"red": (210, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 210)}
SHADE = 50  # +- per clip: held-out clips are shades the model never saw exactly


def colour_clip(rgb: tuple[int, int, int], gen: torch.Generator, frames: int = 4, size: int = 32) -> torch.Tensor:
    """(T, H, W, 3) uint8: one colour at a random shade, with pixel noise."""
    shade = torch.randint(-SHADE, SHADE + 1, (1,), generator=gen)
    noise = torch.randint(-20, 21, (frames, size, size, 3), generator=gen)
    return (torch.tensor(rgb) + shade + noise).clamp(0, 255).to(torch.uint8)


def test_a_trained_model_keeps_its_top1_in_bf16(tmp_path, monkeypatch) -> None:
    """A tiny model trained here to tell three colours apart gives the same top-1 in bf16 as in fp32 on held-out
    videos, through load_model and the blocked attention (forced, so it runs on any CPU)."""
    import warnings

    import numpy as np

    from tests.videos import write_video
    from vivit_cli import PreprocessConfig, layers, load_model, save_pretrained

    labels = list(COLOURS)
    config = VivitConfig(**{**CONFIG, "image_size": 32, "id2label": dict(enumerate(labels))})
    preprocess = PreprocessConfig(shortest_edge=32, crop_hw=(32, 32))
    torch.manual_seed(0)
    model = VivitForVideoClassification(config)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(2)
    for _ in range(60):
        ys = torch.randint(0, len(labels), (12,), generator=gen)
        x = torch.stack([preprocess(colour_clip(COLOURS[labels[y]], gen).numpy()) for y in ys])  # (B, T, C, S, S)
        loss = torch.nn.functional.cross_entropy(model(x).logits, ys)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    folder = save_pretrained(model.eval(), tmp_path / "colours", preprocess)

    held_out = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        for j in range(3):
            clip = colour_clip(rgb, torch.Generator().manual_seed(100 + 10 * i + j), frames=12, size=48).numpy()
            held_out.append(
                (name, write_video(tmp_path / f"{name}{j}.avi", 12, (48, 48), frame_fn=lambda k, w, h, c=clip: c[k]))
            )

    monkeypatch.setattr(layers, "_cpu_has_bf16_units", lambda: True)
    monkeypatch.setattr(layers, "CPU_BF16_QUERY_BLOCK", 4)  # 33 tokens: several blocks of queries
    fp32 = load_model(folder, device="cpu", dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no native bf16 on some CPUs: slow, and said so, but computed the same
        bf16 = load_model(folder, device="cpu", dtype="bfloat16")
    got_fp32 = [fp32.classify(path).predictions[0].label for _, path in held_out]
    got_bf16 = [bf16.classify(path).predictions[0].label for _, path in held_out]
    assert got_bf16 == got_fp32
    assert np.mean([g == name for g, (name, _) in zip(got_fp32, held_out, strict=True)]) >= 0.9
