"""Preprocessing against transformers' VivitImageProcessor (PIL), in grey levels, and the crop positions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from checkpoints import hf
from PIL import Image

from vivit_cli.errors import ConfigError
from vivit_cli.video.preprocess import PreprocessConfig

GREY_LEVEL = 1.0 + 1e-3  # PIL rounds to uint8 after resizing; torch may round the other way


def to_grey_levels(x, config: PreprocessConfig) -> np.ndarray:
    """Undo normalisation and rescaling: back to 0..255 units, where the tolerance is one grey level."""
    x = np.asarray(x, dtype=np.float64)
    if config.do_normalize:
        x = x * np.reshape(config.image_std, (1, -1, 1, 1)) + np.reshape(config.image_mean, (1, -1, 1, 1))
    if config.do_rescale:
        x = (x + (1.0 if config.offset else 0.0)) / config.rescale_factor
    return x


def noise(h, w, frames=2, seed=0):
    """The hardest input for a resize: every pixel independent."""
    return np.random.default_rng(seed).integers(0, 256, (frames, h, w, 3), dtype=np.uint8)


def smooth(h, w, frames=2, seed=0):
    """Natural-looking frames: coarse random blobs, bilinearly enlarged."""
    coarse = noise(max(h // 8, 2), max(w // 8, 2), frames, seed)
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.BILINEAR)) for f in coarse])


def assert_same_as_transformers(raw: dict, frames: np.ndarray) -> None:
    processor = hf().VivitImageProcessor(**raw)
    ours = PreprocessConfig.from_dict(raw)
    want = processor(list(frames), return_tensors="np")["pixel_values"][0]  # (T, C, H, W)
    got = ours(frames)
    assert got.dtype == torch.float32
    assert tuple(got.shape) == want.shape
    assert want.shape[-2:] == ours.output_hw(*frames.shape[1:3])
    diff = np.abs(to_grey_levels(got, ours) - to_grey_levels(want, ours))
    assert diff.max() <= GREY_LEVEL, f"{diff.max():.2f} grey levels apart"


SIZES = {  # (height, width)
    "landscape": (120, 160),
    "portrait": (300, 200),
    "square": (256, 256),
    "smaller than the crop": (17, 23),
    "odd": (257, 383),
}


@pytest.mark.parametrize("size", SIZES)
def test_default_config_matches_transformers(size):
    assert_same_as_transformers({}, noise(*SIZES[size]))


IMAGENET = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
CONFIGS = {  # preprocessor_config.json contents, small sizes to keep the test fast
    "no resize": dict(do_resize=False, crop_size={"height": 24, "width": 24}),
    "size as height and width": dict(size={"height": 20, "width": 30}, crop_size={"height": 16, "width": 24}),
    "offset false, 1/255, imagenet": dict(
        offset=False,
        rescale_factor=1 / 255,
        size={"shortest_edge": 40},
        crop_size={"height": 32, "width": 32},
        **IMAGENET,
    ),
    "sizes as ints, scalar mean and std": dict(size=40, crop_size=32, image_mean=0.45, image_std=0.225),
    "no crop": dict(do_center_crop=False, size={"shortest_edge": 40}),
    "crop larger than the resize": dict(size={"shortest_edge": 16}, crop_size={"height": 24, "width": 20}),
    "grey levels only": dict(
        do_rescale=False,
        offset=False,
        do_normalize=False,
        size={"shortest_edge": 36},
        crop_size={"height": 32, "width": 28},
    ),
}
SMALL_SIZES = [(48, 64), (70, 50), (40, 40), (17, 23), (33, 47)]


@pytest.mark.parametrize("hw", SMALL_SIZES, ids=lambda hw: f"{hw[0]}x{hw[1]}")
@pytest.mark.parametrize("config", CONFIGS)
def test_other_configs_match_transformers(config, hw):
    assert_same_as_transformers(CONFIGS[config], noise(*hw))


@pytest.mark.parametrize("hw", SMALL_SIZES + [(120, 90)], ids=lambda hw: f"{hw[0]}x{hw[1]}")
def test_bicubic_matches_transformers_on_natural_frames(hw):
    # On white noise PIL's bicubic differs by up to ~20 grey levels where it clips the overshoot of its first
    # (horizontal or vertical) pass to uint8; on frames like real ones it agrees within a grey level.
    raw = dict(resample=3, size={"shortest_edge": 40}, crop_size={"height": 32, "width": 32})
    assert_same_as_transformers(raw, smooth(*hw))


def test_offset_quirk_spans_minus_three_to_one():
    # The default file rescales to [-1, 1] and then normalises with mean and std 0.5: [-3, 1], as transformers.
    frames = np.stack([np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)])
    raw = dict(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    out = PreprocessConfig.from_dict(raw)(frames)
    assert torch.allclose(out[0], torch.tensor(-3.0)) and torch.allclose(out[1], torch.tensor(1.0))
    assert_same_as_transformers(raw, frames)


def test_our_preprocessor_file_is_read_by_transformers(tmp_path):
    ours = PreprocessConfig(
        shortest_edge=30,
        crop_hw=(24, 28),
        offset=False,
        rescale_factor=1 / 255,
        image_mean=(0.4, 0.5, 0.6),
        image_std=(0.2, 0.3, 0.25),
        resample=3,
    )
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(ours.to_dict()))
    processor = hf().VivitImageProcessor.from_pretrained(tmp_path)
    frames = smooth(45, 61)
    want = processor(list(frames), return_tensors="np")["pixel_values"][0]
    diff = np.abs(to_grey_levels(ours(frames), ours) - to_grey_levels(want, ours))
    assert diff.max() <= GREY_LEVEL
    assert PreprocessConfig.from_dict(json.loads((tmp_path / "preprocessor_config.json").read_text())) == ours


# ---- crop positions -------------------------------------------------------------------------------

RAW_PIXELS = dict(do_resize=False, do_rescale=False, offset=False, do_normalize=False)
CROP_CASES = [  # (frame h, w), crop (h, w), where -> (top, left)
    ((8, 12), (4, 4), "center", (2, 4)),
    ((8, 12), (4, 4), "start", (2, 0)),
    ((8, 12), (4, 4), "end", (2, 8)),
    ((12, 8), (4, 4), "center", (4, 2)),
    ((12, 8), (4, 4), "start", (0, 2)),
    ((12, 8), (4, 4), "end", (8, 2)),
    ((9, 13), (4, 4), "center", (2, 4)),  # odd margins round down, as transformers does
    ((9, 13), (4, 4), "end", (2, 9)),
    ((8, 8), (4, 4), "start", (2, 0)),  # square frames: along the width
    ((8, 12), (2, 10), "end", (6, 1)),  # a crop moves along the side where it has more room: here the height
    ((8, 12), (2, 10), "start", (0, 1)),
]


@pytest.mark.parametrize(("hw", "crop", "where", "top_left"), CROP_CASES)
def test_crop_positions(hw, crop, where, top_left):
    h, w = hw
    pixel = (np.arange(h)[:, None] * 16 + np.arange(w)[None, :]).astype(np.uint8)  # row * 16 + column
    frames = np.repeat(pixel[None, :, :, None], 3, axis=3).repeat(2, axis=0)  # (2, h, w, 3)
    config = PreprocessConfig.from_dict({**RAW_PIXELS, "crop_size": {"height": crop[0], "width": crop[1]}})
    out = config(frames, crop=where)  # (2, 3, ch, cw)
    top, left = top_left
    expected = pixel[top : top + crop[0], left : left + crop[1]].astype(np.float32)
    assert out.shape == (2, 3, *crop)
    np.testing.assert_array_equal(out[1, 2].numpy(), expected)


def test_center_crop_equals_transformers_crop_on_odd_margins():
    assert_same_as_transformers({**RAW_PIXELS, "crop_size": {"height": 4, "width": 6}}, noise(9, 13))


@pytest.mark.parametrize(
    "bad", [dict(crop="middle"), dict(frames=np.zeros((4, 4, 3), np.uint8))], ids=["crop name", "frame dims"]
)
def test_bad_call_arguments(bad):
    with pytest.raises(ValueError):
        PreprocessConfig()(bad.get("frames", noise(8, 8)), crop=bad.get("crop", "center"))


BAD_FILES = {
    "box resampling": dict(resample=4),
    "lanczos resampling": dict(resample=1),
    "offset without rescale": dict(offset=True, do_rescale=False),
    "size without sides": dict(size={"longest_edge": 10}),
    "text size": dict(size="big"),
    "zero shortest edge": dict(size={"shortest_edge": 0}),
    "negative height": dict(size={"height": -3, "width": 5}),
    "zero crop": dict(crop_size=0),
    "list crop": dict(crop_size=[10, 10]),
    "crop without width": dict(crop_size={"height": 10}),
    "text mean": dict(image_mean=["a", "b", "c"]),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_preprocessor_files_are_config_errors(case):
    with pytest.raises(ConfigError) as err:
        PreprocessConfig.from_dict(BAD_FILES[case])
    assert "\n" not in str(err.value)


def test_unknown_preprocessor_keys_are_ignored():
    raw = {**PreprocessConfig().to_dict(), "processor_class": "VivitProcessor", "do_convert_rgb": True}
    assert PreprocessConfig.from_dict(raw) == PreprocessConfig()
