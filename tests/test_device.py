"""--device and --dtype: which dtype `auto` picks on which CPU (flags faked), and what bf16 gives on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.checkpoints import write_ours
from vivit_cli import device as devices
from vivit_cli.pipeline import load_model

ZEN3 = frozenset({"avx2", "fma", "sse4_2"})  # no native bf16
ZEN4 = ZEN3 | {"avx512f", "avx512_bf16", "avx512_vnni"}
SAPPHIRE_RAPIDS = ZEN3 | {"avx512f", "amx_bf16", "amx_tile"}
REAL_CPU_FLAGS = devices.cpu_flags  # taken before conftest fakes it for every test
BF16_LOGIT_TOLERANCE = 0.05  # bf16 against fp32, on a tiny random model


@pytest.mark.parametrize(
    "flags, expected",
    [(ZEN3, torch.float32), (ZEN4, torch.bfloat16), (SAPPHIRE_RAPIDS, torch.bfloat16), (frozenset(), torch.float32)],
    ids=["avx2-only", "avx512_bf16", "amx", "unknown"],
)
def test_auto_is_bf16_on_a_cpu_with_native_bf16(monkeypatch: pytest.MonkeyPatch, flags, expected) -> None:
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    cpu = torch.device("cpu")
    assert devices.resolve_dtype("auto", cpu) == devices.resolve_dtype(None, cpu) == expected
    assert devices.resolve_dtype("float32", cpu) == torch.float32  # the way to transformers-exact numbers


def test_cpu_flags_come_from_the_flags_line(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16 fma\n"
        "bugs\t\t: sysret_ss_attrs\n\nprocessor\t: 1\nflags\t\t: fpu\n",
        encoding="utf-8",
    )
    assert REAL_CPU_FLAGS(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16", "fma"}
    assert REAL_CPU_FLAGS(str(tmp_path / "missing")) == frozenset()  # not Linux: no flags, so fp32


def test_unknown_dtype_names_the_choices() -> None:
    with pytest.raises(devices.DeviceError, match="use auto, float32, bfloat16 or float16"):
        devices.resolve_dtype("int8", torch.device("cpu"))


def test_auto_on_a_bf16_cpu_loads_bf16_and_stays_close_to_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_ours(tmp_path / "m", labels=["a", "b", "c"])
    monkeypatch.setattr(devices, "cpu_flags", lambda: ZEN4)
    auto = load_model(folder, device="cpu")
    exact = load_model(folder, device="cpu", dtype="float32")
    assert auto.dtype == torch.bfloat16 and {p.dtype for p in auto.model.parameters()} == {torch.bfloat16}
    x = torch.randn(4, auto.config.num_frames, 3, *auto.preprocess.crop_hw, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        got = auto.model(x.bfloat16()).logits.float().numpy()
        want = exact.model(x).logits.numpy()
    assert np.abs(got - want).max() <= BF16_LOGIT_TOLERANCE


def test_every_output_says_where_and_in_what_the_model_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from click.testing import CliRunner

    from tests.videos import write_video
    from vivit_cli.cli import cli

    folder = write_ours(tmp_path / "m", labels=["a", "b", "c"])
    video = write_video(tmp_path / "v.avi", 12, size=(40, 32))
    monkeypatch.setattr(devices, "cpu_flags", lambda: ZEN4)
    monkeypatch.delenv("VIVIT_DTYPE")  # auto
    common = ["--model", str(folder), "--device", "cpu"]
    (record,) = [
        json.loads(line)
        for line in CliRunner().invoke(cli, ["classify", str(video), *common, "--json"]).stdout.splitlines()
    ]
    assert (record["device"], record["dtype"]) == ("cpu", "bfloat16")
    table = CliRunner().invoke(cli, ["classify", str(video), *common, "--dtype", "float32"]).stdout
    assert "on cpu, float32" in " ".join(table.split())
    out = tmp_path / "rows.csv"
    CliRunner().invoke(cli, ["batch", str(video), *common, "--out", str(out), "--workers", "1"])
    header, row = out.read_text().splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["dtype"] == "bfloat16"


MISSING_DEVICES = ["mps", "xla", "gpu"]  # built without (this CPU torch), not one vivit runs on, not a device


@pytest.mark.parametrize("device", MISSING_DEVICES)
@pytest.mark.parametrize("command", ["classify", "batch", "embed", "timeline", "evaluate", "train", "webcam"])
def test_a_device_this_machine_lacks_is_refused_before_the_model(tmp_path: Path, command: str, device: str) -> None:
    """Exit 2 and one line naming the devices there are, before anything is fetched: the model asked for is not
    in the (offline) cache, so an error about it would mean the device was checked too late."""
    from click.testing import CliRunner

    from tests.videos import write_video
    from vivit_cli.cli import cli

    for label in ("a", "b"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(2):
            write_video(tmp_path / "data" / label / f"{i}.avi", 12, size=(40, 32))
    video = str(tmp_path / "data" / "a" / "0.avi")
    target = {
        "classify": [video],
        "batch": [video],
        "embed": [video],
        "timeline": [video],
        "evaluate": [str(tmp_path / "data")],
        "train": [str(tmp_path / "data"), "--out", str(tmp_path / "trained")],
        "webcam": ["--source", video],
    }[command]
    result = CliRunner().invoke(cli, [command, *target, "--model", "nobody/absent", "--device", device])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, result.stderr
    assert repr(device) in result.stderr and "devices here: auto, cpu" in result.stderr
    assert "absent" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "dtype, flags, said",
    [
        ("float16", ZEN4, "float16 is emulated"),  # AVX512 BF16 is not FP16
        ("bfloat16", ZEN3, "bfloat16 is emulated"),
        ("float16", SAPPHIRE_RAPIDS | {"avx512_fp16"}, None),
        ("bfloat16", ZEN4, None),
        ("float32", ZEN3, None),
    ],
)
def test_a_16_bit_dtype_the_cpu_emulates_is_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str, flags: frozenset[str], said: str | None
) -> None:
    from click.testing import CliRunner

    from tests.videos import write_video
    from vivit_cli.cli import cli

    folder = write_ours(tmp_path / "m", labels=["a", "b", "c"])
    videos = [str(write_video(tmp_path / f"v{i}.avi", 12, size=(40, 32))) for i in range(2)]
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    result = CliRunner().invoke(cli, ["classify", *videos, "--model", str(folder), "--device", "cpu", "--dtype", dtype])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == (said is not None), result.stderr
    assert said is None or said in warnings[0]
