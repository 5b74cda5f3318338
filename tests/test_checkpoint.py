"""Checkpoint folders: ours load in transformers and back, bad folders fail with one line, load_model's devices."""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
import warnings

import pytest
import torch
from checkpoints import TINY, hf, make_hf, randomize, video, write_hf
from safetensors.torch import load_file, save_file
from torch.testing import assert_close

from vivit_cli import device as devices
from vivit_cli import pipeline
from vivit_cli.checkpoint import load_checkpoint, save_pretrained
from vivit_cli.errors import CheckpointError, ConfigError, DeviceError, VivitError
from vivit_cli.model import VivitConfig, VivitForVideoClassification, VivitModel
from vivit_cli.video.preprocess import PreprocessConfig

TOL = dict(atol=1e-4, rtol=1e-4)
SMALL = {**TINY, "num_hidden_layers": 1}


def ours_random(base: bool = False, **overrides):
    config = VivitConfig.from_dict({**SMALL, "id2label": {str(i): f"class {i}" for i in range(5)}, **overrides})
    model = VivitModel(config, add_pooling_layer=True) if base else VivitForVideoClassification(config)
    return randomize(model, seed=7)


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A valid transformers-written checkpoint; tests copy it before spoiling it."""
    return write_hf(make_hf(**SMALL), tmp_path_factory.mktemp("hf"))


@pytest.fixture
def folder(hf_folder, tmp_path):
    return shutil.copytree(hf_folder, tmp_path / "ckpt")


# ---- saving ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{}, dict(image_size=[16, 8], tubelet_size=[2, 8, 4], qkv_bias=False)],
    ids=["square", "non-square-no-bias"],
)
def test_our_checkpoint_loads_in_transformers(tmp_path, overrides):
    ours = ours_random(**overrides)
    save_pretrained(ours, tmp_path, PreprocessConfig(shortest_edge=18, crop_hw=(16, 16)))
    theirs = hf().VivitForVideoClassification.from_pretrained(tmp_path)
    assert theirs.config.id2label == dict(ours.config.id2label)
    again = load_checkpoint(tmp_path)
    assert again.preprocess == PreprocessConfig(shortest_edge=18, crop_hw=(16, 16))
    x = video(ours.config)
    with torch.no_grad():
        assert_close(theirs(x).logits, ours(x).logits, **TOL)
        assert torch.equal(again.model(x).logits, ours(x).logits)


def test_base_model_with_pooler_round_trips(tmp_path):
    ours = ours_random(base=True)
    save_pretrained(ours, tmp_path)
    again = load_checkpoint(tmp_path).model
    assert isinstance(again, VivitModel) and again.pooler is not None
    theirs = hf().VivitModel.from_pretrained(tmp_path)
    assert theirs.pooler is not None
    x = video(ours.config)
    with torch.no_grad():
        ref = ours(x).pooler_output
        assert torch.equal(again(x).pooler_output, ref)
        assert_close(theirs(x).pooler_output, ref, **TOL)
        assert_close(theirs(x).last_hidden_state, ours(x).last_hidden_state, **TOL)


def test_pruned_model_keeps_its_pruning(tmp_path):
    ours = ours_random(num_hidden_layers=2)
    ours.prune_heads({0: [2], 1: [0, 1]})
    save_pretrained(ours, tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["pruned_heads"] == {"0": [2], "1": [0, 1]}
    again = load_checkpoint(tmp_path).model
    assert again.vivit.pruned_heads == {0: (2,), 1: (0, 1)}
    x = video(ours.config)
    with torch.no_grad():
        assert torch.equal(again(x).logits, ours(x).logits)


def test_bin_and_sharded_checkpoints_load(tmp_path):
    theirs = make_hf(**SMALL)
    theirs.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert len(list((tmp_path / "sharded").glob("model-*.safetensors"))) > 1
    write_hf(theirs, tmp_path / "bin", "bin")
    x = video(theirs.config)
    sharded = load_checkpoint(tmp_path / "sharded").model
    with pytest.warns(UserWarning, match="pytorch_model.bin"):
        from_bin = load_checkpoint(tmp_path / "bin").model
    with torch.no_grad():
        ref = theirs(x).logits
        assert_close(sharded(x).logits, ref, **TOL)
        assert_close(from_bin(x).logits, ref, **TOL)


def test_loaded_model_is_in_eval_mode_on_the_device_and_dtype(hf_folder):
    ckpt = load_checkpoint(hf_folder, "cpu", torch.bfloat16)
    assert not ckpt.model.training
    assert {p.dtype for p in ckpt.model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in ckpt.model.parameters()} == {"cpu"}
    ref = load_checkpoint(hf_folder).model
    x = video(ref.config)
    with torch.no_grad():
        want = ref(x).logits
        got = ckpt.model(x.bfloat16()).logits.float()
    assert (got - want).abs().max() < 0.05 * want.abs().max()


# ---- bad checkpoints ------------------------------------------------------------------------------


def _edit_json(name, **changes):
    def edit(folder):
        path = folder / name
        raw = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**raw, **changes}))

    return edit


def _write(name, text):
    return lambda folder: (folder / name).write_text(text)


def _edit_weights(edit):
    def apply(folder):
        path = folder / "model.safetensors"
        weights = load_file(path)
        edit(weights)
        save_file(weights, path)

    return apply


def _truncate(folder):
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _to_bin(obj):
    def apply(folder):
        (folder / "model.safetensors").unlink()
        torch.save(obj, folder / "pytorch_model.bin")

    return apply


def _missing_shard(folder):
    (folder / "model.safetensors").unlink()
    index = {"weight_map": {"classifier.weight": "model-00001-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def _drop_layer(weights):
    for key in [k for k in weights if k.startswith("vivit.encoder.layer.0.")]:
        del weights[key]


LAYER_KEY = "vivit.encoder.layer.0.attention.attention.query.weight"
BAD = {  # name: (spoil the folder, expected error, text the message must hold)
    "malformed config.json": (_write("config.json", "{not json"), ConfigError, "config.json is not valid JSON"),
    "config.json not an object": (_write("config.json", "[1, 2]"), ConfigError, "JSON object"),
    "missing config.json": (lambda f: (f / "config.json").unlink(), CheckpointError, "config.json not found"),
    "bad config value": (_edit_json("config.json", hidden_size=25), ConfigError, "not divisible"),
    "not ViViT": (_edit_json("config.json", model_type="videomae"), CheckpointError, "'videomae'"),
    "missing weights": (lambda f: (f / "model.safetensors").unlink(), CheckpointError, "no weights"),
    "truncated safetensors": (_truncate, CheckpointError, "cannot read"),
    "not safetensors at all": (_write("model.safetensors", "hello"), CheckpointError, "cannot read"),
    "missing shard": (_missing_shard, CheckpointError, "model-00001-of-00002.safetensors"),
    "wrong shape": (
        _edit_weights(lambda w: w.update({LAYER_KEY: torch.zeros(3, 24)})),
        CheckpointError,
        f"wrong shapes: {LAYER_KEY} [3, 24] != [24, 24]",
    ),
    "missing key": (
        _edit_weights(lambda w: w.pop("vivit.layernorm.bias")),
        CheckpointError,
        "missing keys: vivit.layernorm.bias",
    ),
    "many missing keys": (_edit_weights(_drop_layer), CheckpointError, "more)"),
    "unexpected key": (
        _edit_weights(lambda w: w.update({"vivit.extra.weight": torch.zeros(2)})),
        CheckpointError,
        "unexpected keys: vivit.extra.weight",
    ),
    "more labels in config than in the head": (
        _edit_json("config.json", id2label={str(i): str(i) for i in range(7)}),
        CheckpointError,
        "classifier.weight [5, 24] != [7, 24]",
    ),
    "pickle of non-tensors": (_to_bin({"classifier.weight": 3}), CheckpointError, "state dict of tensors"),
    "pickle of a list": (_to_bin([torch.zeros(2)]), CheckpointError, "state dict of tensors"),
    "malformed preprocessor config": (
        _write("preprocessor_config.json", "{"),
        ConfigError,
        "preprocessor_config.json is not valid JSON",
    ),
    "bad preprocessor value": (_edit_json("preprocessor_config.json", resample=9), ConfigError, "resample=9"),
    "preprocessor size without sides": (
        _edit_json("preprocessor_config.json", size={"longest_edge": 3}),
        ConfigError,
        "size",
    ),
}


@pytest.mark.filterwarnings("ignore:.*pytorch_model.bin")
@pytest.mark.parametrize("case", BAD)
def test_bad_checkpoint_is_one_line_error(folder, case):
    spoil, error, needle = BAD[case]
    spoil(folder)
    with pytest.raises(error) as err:
        load_checkpoint(folder)
    message = str(err.value)
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize("what", ["missing", "file"])
def test_folder_that_is_not_a_folder(tmp_path, what):
    path = tmp_path / "model"
    if what == "file":
        path.write_text("x")
    with pytest.raises(CheckpointError, match="is not a folder"):
        load_checkpoint(path)


class Payload:
    """Unpickling this runs a shell command: what a hostile pytorch_model.bin can do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_pickle_that_would_run_code_is_refused(folder, tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(proof)))  # the payload is live: unpickling it does run the command
    assert proof.exists()
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").unlink()
    torch.save({"classifier.weight": torch.zeros(5, 24), "x": Payload(marker)}, folder / "pytorch_model.bin")
    with warnings.catch_warnings(), pytest.raises(CheckpointError) as err:
        warnings.simplefilter("ignore")
        load_checkpoint(folder)
    assert not marker.exists()
    assert "refusing to load" in str(err.value) and "\n" not in str(err.value)


# ---- load_model: devices and dtypes ---------------------------------------------------------------


def test_load_model_defaults_to_cpu_float32_without_a_gpu(hf_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    clf = pipeline.load_model(str(hf_folder))
    assert clf.device == torch.device("cpu") and clf.dtype == torch.float32
    assert {p.dtype for p in clf.model.parameters()} == {torch.float32}
    assert clf.labels == [f"LABEL_{i}" for i in range(5)]
    assert not clf.model.training
    probs = clf.scores(video(clf.config))
    assert probs.shape == (2, 5)
    assert abs(probs.sum(axis=1) - 1).max() < 1e-5


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_on_cpu_warns_without_native_support(hf_folder, monkeypatch, native):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = pipeline.load_model(str(hf_folder), device="cpu", dtype="bfloat16")
    assert clf.dtype == torch.bfloat16
    assert {p.dtype for p in clf.model.parameters()} == {torch.bfloat16}
    bf16_warnings = [w for w in caught if "bf16" in str(w.message)]
    assert len(bf16_warnings) == (0 if native else 1)


@pytest.mark.parametrize(
    ("device", "dtype", "needle"),
    [
        ("meta", None, "unsupported device"),
        ("xpu", None, "unsupported device"),
        ("gpu", None, "unknown device"),
        ("cuda:x", None, "unknown device"),
        ("cpu", "float8", "unknown dtype"),
    ],
)
def test_bad_device_or_dtype(hf_folder, device, dtype, needle):
    with pytest.raises(DeviceError, match=needle):
        pipeline.load_model(str(hf_folder), device=device, dtype=dtype)


def test_cuda_without_cuda_is_a_device_error(hf_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cuda", "cuda:1"):
        with pytest.raises(DeviceError, match="CUDA is not available"):
            pipeline.load_model(str(hf_folder), device=device)
    assert devices.resolve_device(None) == torch.device("cpu")
    assert devices.resolve_dtype(None, torch.device("cpu")) == torch.float32


def test_bare_model_cannot_classify(tmp_path):
    save_pretrained(ours_random(base=True), tmp_path)
    clf = pipeline.load_model(str(tmp_path))
    with pytest.raises(VivitError, match="no classification head"):
        clf.scores(video(clf.config))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_gpu_is_close_to_float32(hf_folder, dtype):
    auto = pipeline.load_model(str(hf_folder))
    assert auto.device.type == "cuda" and auto.dtype in (torch.bfloat16, torch.float16)
    ref = pipeline.load_model(str(hf_folder), device="cpu", dtype="float32")
    gpu = pipeline.load_model(str(hf_folder), device="cuda", dtype=dtype)
    assert gpu.dtype == getattr(torch, dtype) and next(gpu.model.parameters()).is_cuda
    x = video(ref.config)
    with torch.inference_mode():
        want = ref.model(x).logits
        got = gpu.model(x.to("cuda", gpu.dtype)).logits.float().cpu()
    assert (got - want).abs().max() < 0.05 * want.abs().max()
    assert_close(torch.tensor(gpu.scores(x)), torch.tensor(ref.scores(x)), atol=0.02, rtol=0)
