"""Shared fixtures: every test runs offline, with its own empty Hugging Face cache and no token."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import signal

    import torch

    # A shell starts a background job (`.ci/run &`) with Ctrl-C ignored, and the commands the tests start would
    # inherit that: the tests that stop them with SIGINT need it to reach them.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)

    # The tests' models are tiny: handing their ops to a second thread costs more than it saves (the model,
    # checkpoint and preprocessing tests take half the CPU time on one thread, far less on a busy machine).
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def float32_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """--dtype auto is bf16 on CPUs with native bf16: the tests compare against fp32 numbers, so they run as on a
    CPU without it (in this process, and through VIVIT_DTYPE in commands, subprocesses and Ray workers). The tests
    of the choice itself fake the CPU's flags."""
    from vivit_cli import device

    monkeypatch.setattr(device, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    monkeypatch.setenv("VIVIT_DTYPE", "float32")


@pytest.fixture(autouse=True)
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_HOME in a temp dir and HF_HUB_OFFLINE=1; returns the hub cache folder.

    huggingface_hub reads its environment once, at import, into huggingface_hub.constants (which transformers
    also reads), so the constants are set as well as the variables (for subprocesses and later imports).
    """
    from huggingface_hub import constants

    home = tmp_path / "hf-home"
    cache = home / "hub"
    for name in (
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "HF_TOKEN",
        "HF_TOKEN_PATH",
        "HF_ENDPOINT",
        "HF_OIDC_RESOURCE",
        "TRANSFORMERS_OFFLINE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(home / "xet"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    for name, file in (
        ("AGENT_HARNESSES_PATH", ".agent_harnesses.json"),
        ("CHECK_FOR_UPDATE_DONE_PATH", ".check_for_update_done"),
    ):
        if hasattr(constants, name):  # newer huggingface_hub versions only
            monkeypatch.setattr(constants, name, str(home / file))
    return cache
