"""The model against transformers' ViViT, and against its own definitions: head mask, pruning, fused attention,
position interpolation, gradient checkpointing, dropout, initialisation and config validation."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from checkpoints import TINY, hf, make_hf, randomize, video, write_hf
from torch.testing import assert_close

from vivit_cli import model as model_mod
from vivit_cli.checkpoint import load_checkpoint
from vivit_cli.errors import ConfigError, VivitError
from vivit_cli.model import ACTIVATIONS, Embeddings, VivitConfig, VivitForVideoClassification, VivitModel

TOL = dict(atol=1e-4, rtol=1e-4)  # fp32 parity

# Shapes transformers accepts, chosen so that a wrong axis order or a square assumption shows.
SHAPES = {
    "cubic": {},
    "non-square image, non-cubic tubelet, no qkv bias": dict(
        image_size=[8, 24],
        num_frames=3,
        tubelet_size=[1, 4, 8],
        hidden_size=16,
        num_attention_heads=4,
        qkv_bias=False,
        hidden_act="relu",
    ),
    "one head, long tubelets": dict(
        image_size=12,
        num_frames=8,
        tubelet_size=[4, 6, 4],
        hidden_size=8,
        num_attention_heads=1,
        hidden_act="quick_gelu",
    ),
    "eight heads, frames != image size": dict(
        image_size=16,
        num_frames=6,
        tubelet_size=[3, 4, 8],
        hidden_size=32,
        num_attention_heads=8,
        hidden_act="gelu",
        num_labels=1,
    ),
}


def load_ours(folder):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pytorch_model.bin's warning is tested in test_checkpoint.py
        return load_checkpoint(folder).model


@pytest.fixture(
    scope="module", params=[(s, f) for s in SHAPES for f in ("safetensors", "bin")], ids=lambda p: f"{p[0]}-{p[1]}"
)
def pair(request, tmp_path_factory):
    """(transformers' VivitForVideoClassification, ours loaded from the folder transformers saved)."""
    shape, fmt = request.param
    theirs = make_hf(**SHAPES[shape])
    folder = write_hf(theirs, tmp_path_factory.mktemp("ckpt"), fmt)
    return theirs, load_ours(folder)


def test_classification_parity(pair):
    theirs, ours = pair
    x = video(theirs.config)
    with torch.no_grad():
        ref = theirs(x, output_hidden_states=True, output_attentions=True)
        got = ours(x, output_hidden_states=True, output_attentions=True)
        fast = ours(x)  # SDPA and the CLS-only last block
    assert_close(got.logits, ref.logits, **TOL)
    assert_close(fast.logits, ref.logits, **TOL)
    assert len(got.hidden_states) == len(ref.hidden_states) == theirs.config.num_hidden_layers + 1
    for mine, their in zip(got.hidden_states, ref.hidden_states, strict=True):
        assert_close(mine, their, **TOL)
    assert len(got.attentions) == len(ref.attentions) == theirs.config.num_hidden_layers
    for mine, their in zip(got.attentions, ref.attentions, strict=True):
        assert_close(mine, their, **TOL)
    assert ref.logits.abs().mean() > 0.1  # the weights are not near zero: parity means something


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_hidden_act_matches(act, tmp_path):
    theirs = make_hf(hidden_act=act, num_hidden_layers=1)
    ours = load_ours(write_hf(theirs, tmp_path))
    x = video(theirs.config)
    with torch.no_grad():
        assert_close(ours(x).logits, theirs(x).logits, **TOL)


@pytest.mark.parametrize("pooler", [True, False], ids=["pooler", "no-pooler"])
def test_base_model_parity(pooler, tmp_path):
    theirs = make_hf(base=True, pooler=pooler, image_size=[16, 8], tubelet_size=[2, 8, 4])
    ours = load_ours(write_hf(theirs, tmp_path))
    assert isinstance(ours, VivitModel) and (ours.pooler is not None) == pooler
    x = video(theirs.config)
    with torch.no_grad():
        ref = theirs(x, output_hidden_states=True, output_attentions=True)
        got = ours(x, output_hidden_states=True, output_attentions=True)
    assert_close(got.last_hidden_state, ref.last_hidden_state, **TOL)
    if pooler:
        assert_close(got.pooler_output, ref.pooler_output, **TOL)
    else:
        assert got.pooler_output is None
    for mine, their in zip(got.hidden_states + got.attentions, ref.hidden_states + ref.attentions, strict=True):
        assert_close(mine, their, **TOL)


def _long(b, n):
    return torch.tensor([i % n for i in range(b)])


def _multi_hot(b, n):
    return (torch.arange(b * n).view(b, n) % 3 == 0).float()


LOSSES = {  # name: (config overrides, labels for a batch of 2)
    "regression, one label": (dict(num_labels=1), lambda: torch.tensor([0.5, -1.5])),
    "regression, explicit": (dict(num_labels=3, problem_type="regression"), lambda: torch.randn(2, 3)),
    "single-label, inferred": (dict(num_labels=3), lambda: _long(2, 3)),
    "single-label, explicit": (dict(num_labels=3, problem_type="single_label_classification"), lambda: _long(2, 3)),
    "multi-label, inferred": (dict(num_labels=3), lambda: _multi_hot(2, 3)),
    "multi-label, explicit": (dict(num_labels=3, problem_type="multi_label_classification"), lambda: _multi_hot(2, 3)),
}


@pytest.mark.parametrize("case", LOSSES)
def test_loss_matches(case, tmp_path):
    overrides, labels = LOSSES[case]
    theirs = make_hf(num_hidden_layers=1, **overrides)
    ours = load_ours(write_hf(theirs, tmp_path))
    assert ours.config.problem_type == overrides.get("problem_type")
    x, y = video(theirs.config), labels()
    with torch.no_grad():
        ref = theirs(x, labels=y).loss
        got = ours(x, labels=y).loss
    assert got.dim() == 0 and ref.item() > 1e-3
    assert_close(got, ref, **TOL)


def test_position_interpolation_matches_transformers_in_space(tmp_path):
    # transformers interpolates only square tables of one time step (and skips square inputs, a bug of its
    # own); there we must agree with it exactly.
    theirs = make_hf(num_frames=2, image_size=16, tubelet_size=[2, 4, 4], num_hidden_layers=1)
    ours = load_ours(write_hf(theirs, tmp_path))
    x = video(theirs.config, size=(24, 32))
    with torch.no_grad():
        assert_close(ours(x).logits, theirs(x, interpolate_pos_encoding=True).logits, **TOL)


# ---- our model against its own definitions ----------------------------------------------------------

LAYERS, HEADS = 2, 4


@pytest.fixture(scope="module")
def ours():
    config = VivitConfig.from_dict(
        {**TINY, "num_attention_heads": HEADS, "hidden_size": 32, "num_hidden_layers": LAYERS}
    )
    return randomize(VivitForVideoClassification(config), seed=3)


@pytest.fixture(scope="module")
def x(ours):
    return video(ours.config)


@torch.no_grad()
def test_fused_explicit_and_cls_only_paths_agree(ours, x):
    fused = ours.vivit(x).last_hidden_state  # SDPA
    explicit = ours.vivit(x, output_attentions=True)
    assert_close(explicit.last_hidden_state, fused, **TOL)
    masked = ours.vivit(x, head_mask=torch.ones(HEADS)).last_hidden_state  # explicit, without probabilities
    assert_close(masked, fused, **TOL)
    cls = ours.vivit(x, cls_only=True).last_hidden_state
    assert cls.shape == (x.shape[0], 1, ours.config.hidden_size)
    assert_close(cls[:, 0], fused[:, 0], **TOL)
    full_logits = ours.classifier(fused[:, 0])
    assert_close(ours(x).logits, full_logits, **TOL)


@torch.no_grad()
def test_chunked_feed_forward_changes_nothing(ours, x):
    chunked = VivitForVideoClassification(replace(ours.config, chunk_size_feed_forward=3))
    chunked.load_state_dict(ours.state_dict())
    assert_close(chunked.eval()(x, output_hidden_states=True).logits, ours(x).logits, **TOL)


@torch.no_grad()
@pytest.mark.parametrize("mask", [torch.ones(HEADS), torch.ones(LAYERS, HEADS)], ids=["heads", "layers-heads"])
def test_head_mask_of_ones_changes_nothing(ours, x, mask):
    ref = ours(x, output_attentions=True)
    got = ours(x, head_mask=mask, output_attentions=True)
    assert_close(got.logits, ref.logits, **TOL)
    for a, b in zip(got.attentions, ref.attentions, strict=True):
        assert_close(a, b, **TOL)


PRUNES = [{0: [1]}, {1: [0, 3]}, {0: [0, 1, 2], 1: [2]}]


def _mask_for(prune):
    mask = torch.ones(LAYERS, HEADS)
    for layer, heads in prune.items():
        mask[layer, heads] = 0.0
    return mask


@torch.no_grad()
@pytest.mark.parametrize("prune", PRUNES, ids=str)
def test_pruning_equals_masking(ours, x, prune):
    mask = _mask_for(prune)
    masked = ours(x, head_mask=mask, output_attentions=True)
    for layer in range(LAYERS):
        probs = masked.attentions[layer]  # (B, heads, N+1, N+1)
        for h in range(HEADS):
            if mask[layer, h] == 0:
                assert torch.all(probs[:, h] == 0)
            else:
                assert_close(probs[:, h].sum(-1), torch.ones_like(probs[:, h, :, 0]))
    pruned = copy.deepcopy(ours)
    pruned.prune_heads(prune)
    assert pruned.vivit.pruned_heads == {k: tuple(sorted(v)) for k, v in prune.items()}
    for layer, block in enumerate(pruned.vivit.blocks):
        kept = HEADS - len(prune.get(layer, []))
        hd = ours.config.hidden_size // HEADS
        assert block.attn.num_heads == kept
        assert block.attn.qkv.weight.shape == (3 * kept * hd, ours.config.hidden_size)
        assert block.attn.proj.weight.shape == (ours.config.hidden_size, kept * hd)
    assert_close(pruned(x).logits, masked.logits, **TOL)
    assert_close(pruned(x, output_attentions=True).logits, masked.logits, **TOL)


@torch.no_grad()
def test_pruning_in_steps_keeps_original_head_numbers(ours, x):
    stepwise = copy.deepcopy(ours)
    stepwise.prune_heads({0: [1]})
    stepwise.prune_heads({0: [2, 1]})  # 2 in the original numbering (now the second remaining head); 1 again
    assert stepwise.vivit.pruned_heads == {0: (1, 2)}
    assert_close(stepwise(x).logits, ours(x, head_mask=_mask_for({0: [1, 2]})).logits, **TOL)


@torch.no_grad()
def test_bad_head_mask_shape_is_refused(ours, x):
    with pytest.raises(VivitError, match="head_mask"):
        ours(x, head_mask=torch.ones(LAYERS + 1, HEADS))


# ---- position embeddings at other sizes ---------------------------------------------------------


def _embeddings(fill):
    """Embeddings of a (t0, h0, w0) = (2, 3, 4) grid whose table is fill(t, h, w, d)."""
    config = VivitConfig(
        image_size=(12, 16),
        num_frames=4,
        tubelet_size=(2, 4, 4),
        hidden_size=4,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=4,
    )
    emb = Embeddings(config)
    t, h, w, d = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in (2, 3, 4, 4)), indexing="ij")
    with torch.no_grad():
        emb.position_embeddings[0, 0] = -7.0
        emb.position_embeddings[0, 1:] = fill(t, h, w, d).reshape(-1, 4)
    return emb


def _grid(table, t, h, w):
    """positions() output without the CLS row, as (t, h, w, D)."""
    assert table.shape == (1, t * h * w + 1, 4)
    assert torch.all(table[0, 0] == -7.0)  # the CLS position is never interpolated
    return table[0, 1:].reshape(t, h, w, 4)


def test_positions_at_own_size_are_the_table():
    emb = _embeddings(lambda t, h, w, d: t + h + w + d)
    assert torch.equal(emb.positions((2, 3, 4)), emb.position_embeddings)


@pytest.mark.parametrize("grid", [(2, 5, 6), (5, 3, 4), (1, 2, 2), (4, 6, 8)])
def test_interpolated_constant_stays_constant(grid):
    emb = _embeddings(lambda t, h, w, d: 0 * t + d + 0.5)
    out = _grid(emb.positions(grid), *grid)
    assert_close(out, (torch.arange(4.0) + 0.5).expand_as(out))


@pytest.mark.parametrize("t", [1, 3, 5, 8])
@pytest.mark.parametrize("hw", [(3, 4), (6, 2)])
def test_time_ramp_stays_a_ramp(t, hw):
    # linear in time, constant in space: each new time step is the ramp at its sample point (align_corners=False,
    # clamped at the ends) and constant over the frame, whatever happens in space.
    emb = _embeddings(lambda tt, h, w, d: 2.0 * tt + 0.25 * d + 0 * h)
    out = _grid(emb.positions((t, *hw)), t, *hw)
    src = ((torch.arange(t) + 0.5) * 2 / t - 0.5).clamp(0, 1)
    expected = 2.0 * src.view(t, 1, 1, 1) + 0.25 * torch.arange(4.0)
    assert_close(out, expected.expand_as(out), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("axis", ["h", "w"])
def test_space_ramp_stays_in_its_axis(axis):
    emb = _embeddings(lambda t, h, w, d: (h if axis == "h" else w) + 0 * t + 0 * d)
    t, h, w = 3, 7, 9
    out = _grid(emb.positions((t, h, w)), t, h, w)[..., 0]  # (t, h, w)
    assert_close(out, out[:1].expand_as(out))  # nothing leaked into time
    along = out if axis == "h" else out.permute(0, 2, 1)  # (t, ramp axis, other axis)
    assert_close(along, along[:, :, :1].expand_as(along))  # constant across the other spatial axis
    steps = along[0, :, 0].diff()
    assert torch.all(steps > 0)  # still increasing along its own axis
    mid = len(steps) // 2
    assert_close(steps[mid], steps[mid - 1], atol=1e-4, rtol=1e-4)  # linear away from the borders


@torch.no_grad()
@pytest.mark.parametrize(("frames", "size"), [(8, (24, 32)), (2, (8, 8)), (6, (16, 16))])
def test_other_frame_counts_and_sizes_run(ours, frames, size):
    x = video(ours.config, frames=frames, size=size)
    out = ours(x, output_hidden_states=True)
    t, h, w = ours.config.tubelet_size
    n = (frames // t) * (size[0] // h) * (size[1] // w) + 1
    assert out.logits.shape == (2, ours.config.num_labels)
    assert all(s.shape == (2, n, ours.config.hidden_size) for s in out.hidden_states)
    assert torch.isfinite(out.logits).all()
    assert_close(ours(x).logits, out.logits, **TOL)


@torch.no_grad()
@pytest.mark.parametrize(
    ("tubelet", "frames", "size"),
    [
        ((2, 8, 8), 4, (16, 16)),
        ((1, 4, 8), 3, (8, 24)),
        ((3, 4, 2), 7, (10, 9)),  # remainders in every axis: dropped, as a strided Conv3d drops them
    ],
)
def test_patch_embedding_is_the_strided_conv3d(tubelet, frames, size):
    config = VivitConfig(
        image_size=(8, 8),
        num_frames=3 * tubelet[0],
        tubelet_size=tubelet,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=8,
    )
    emb = randomize(Embeddings(config)).eval()
    x = video(config, frames=frames, size=size)
    conv = F.conv3d(x.transpose(1, 2), emb.patch.weight, emb.patch.bias, stride=tubelet)  # (B, D, t, h, w)
    tokens = conv.flatten(2).transpose(1, 2)  # (B, N, D)
    want = torch.cat([emb.cls_token.expand(2, -1, -1), tokens], dim=1) + emb.positions(tuple(conv.shape[2:]))
    assert_close(emb(x), want, **TOL)


def test_input_smaller_than_a_tubelet_is_refused(ours):
    with pytest.raises(VivitError, match="smaller than one tubelet"):
        ours(video(ours.config, frames=1))


# ---- training behaviour ---------------------------------------------------------------------------


def _grads(model, x, checkpointing):
    model.zero_grad()
    model.gradient_checkpointing_enable(checkpointing)
    torch.manual_seed(0)
    model(x).logits.square().sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_gradient_checkpointing_gives_the_same_gradients(x, monkeypatch):
    config = VivitConfig.from_dict({**TINY, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1})
    model = randomize(VivitForVideoClassification(config)).train()
    plain = _grads(model, x, checkpointing=False)
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return torch.utils.checkpoint.checkpoint(*args, **kwargs)

    monkeypatch.setattr(model_mod, "grad_checkpoint", counting)
    checkpointed = _grads(model, x, checkpointing=True)
    assert len(calls) == config.num_hidden_layers
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        assert_close(checkpointed[name], plain[name], **TOL, msg=name)


@torch.no_grad()
@pytest.mark.parametrize(
    "dropout", [dict(hidden_dropout_prob=0.2), dict(attention_probs_dropout_prob=0.3)], ids=["hidden", "attention"]
)
def test_dropout_only_in_train_mode(x, dropout):
    model = randomize(VivitForVideoClassification(VivitConfig.from_dict({**TINY, **dropout})))
    assert_close(model(x).logits, model(x).logits, atol=0, rtol=0)
    model.train()
    assert not torch.allclose(model(x).logits, model(x).logits)
    model.eval()
    assert_close(model(x).logits, model(x).logits, atol=0, rtol=0)


def test_init_weights_statistics():
    std = 0.05
    config = VivitConfig(
        image_size=32,
        num_frames=4,
        tubelet_size=(2, 8, 8),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=256,
        initializer_range=std,
        id2label={i: str(i) for i in range(32)},
    )
    torch.manual_seed(0)
    for model in (VivitForVideoClassification(config), VivitModel(config, add_pooling_layer=True)):
        seen = 0
        for name, m in model.named_modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv3d)):
                seen += 1
                assert abs(m.weight.std().item() - std) < 0.15 * std, name
                assert abs(m.weight.mean().item()) < 0.1 * std, name
                assert m.bias is None or torch.all(m.bias == 0), name
            elif isinstance(m, torch.nn.LayerNorm):
                assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name
            elif isinstance(m, Embeddings):
                assert torch.all(m.cls_token == 0) and torch.all(m.position_embeddings == 0)
        assert seen == 1 + 4 * config.num_hidden_layers + 1  # patch, (qkv, proj, fc1, fc2) per layer, head


# ---- config validation --------------------------------------------------------------------------

BAD_CONFIGS = {
    "hidden not divisible by heads": dict(hidden_size=30, num_attention_heads=4),
    "image not divisible by tubelet": dict(image_size=30, tubelet_size=[2, 16, 16]),
    "width not divisible by tubelet": dict(image_size=[32, 40], tubelet_size=[2, 16, 16]),
    "frames not divisible by tubelet": dict(num_frames=5),
    "unknown hidden_act": dict(hidden_act="gelu_wavy"),
    "negative hidden size": dict(hidden_size=-768),
    "zero frames": dict(num_frames=0),
    "negative image size": dict(image_size=-224),
    "negative tubelet": dict(tubelet_size=[2, -16, 16]),
    "two-number tubelet": dict(tubelet_size=[16, 16]),
    "one-number image size": dict(image_size=[224]),
    "three-number image size": dict(image_size=[224, 224, 3]),
    "fractional image size": dict(image_size=224.0),
    "text tubelet": dict(tubelet_size="abc"),
    "fractional layers": dict(num_hidden_layers=2.5),
    "text hidden size": dict(hidden_size="768"),
    "boolean heads": dict(num_attention_heads=True),
    "dropout above one": dict(hidden_dropout_prob=1.5),
    "text dropout": dict(attention_probs_dropout_prob="lots"),
    "zero layer_norm_eps": dict(layer_norm_eps=0),
    "unknown problem_type": dict(problem_type="ranking"),
    "labels not from zero": dict(id2label={"1": "a", "2": "b"}),
    "labels as a list": dict(id2label=["a", "b"]),
    "every head pruned": dict(num_attention_heads=2, hidden_size=8, pruned_heads={"0": [0, 1]}),
    "pruned layer out of range": dict(pruned_heads={"40": [0]}),
}


def hf_dict():
    """The config.json transformers writes for its default ViViT."""
    return hf().VivitConfig().to_dict()


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_config_values_are_config_errors(case):
    with pytest.raises(ConfigError) as err:
        VivitConfig.from_dict({**hf_dict(), **BAD_CONFIGS[case]})
    assert "\n" not in str(err.value)


def test_transformers_config_reads_and_unknown_keys_are_ignored():
    raw = {**hf_dict(), "some_future_option": [1, 2], "torch_dtype": "float32", "architectures": ["X"]}
    config = VivitConfig.from_dict(raw)
    assert config.to_dict() == VivitConfig().to_dict()  # transformers' defaults are ours
    assert config.num_labels == 2 and config.grid == (16, 14, 14)
    assert VivitConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("raw", [{"num_labels": 7}, {"id2label": {str(i): f"c{i}" for i in range(7)}}])
def test_labels_from_num_labels_or_id2label(raw):
    config = VivitConfig.from_dict(raw)
    assert config.num_labels == 7
    assert math.prod(config.grid) == 3136
