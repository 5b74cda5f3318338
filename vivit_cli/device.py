"""Where the model runs: the user's --device and --dtype, checked against what this machine can do; and a
process-wide setting for running it on a CPU (glibc keeps freed memory for the next forward pass)."""

from __future__ import annotations

import ctypes
import platform
import sys
import warnings
from typing import TYPE_CHECKING

from vivit_cli.errors import DeviceError

if TYPE_CHECKING:
    import torch

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")  # what --dtype takes
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # CPU flags of hardware bf16 matrix products
NATIVE_FP16_FLAGS = frozenset({"avx512_fp16", "amx_fp16"})  # and of fp16 ones
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # also taken from Python


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """None or "auto": the first GPU when there is one, else the CPU; a named device must exist here (a device this
    torch was built without is refused here, not by the first tensor sent to it)."""
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(device)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {name!r}; {devices_here()}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} asked for, but CUDA is not available; {devices_here()}")
        if (dev.index or 0) >= torch.cuda.device_count():
            raise DeviceError(f"no GPU {dev.index}: this machine has {torch.cuda.device_count()}; {devices_here()}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            why = "finds no Apple GPU" if torch.backends.mps.is_built() else "is built without MPS"
            raise DeviceError(f"device {name!r} asked for, but torch {torch.__version__} {why}; {devices_here()}")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {name!r}: vivit runs on cpu, cuda or mps; {devices_here()}")
    return dev


def available_devices() -> list[str]:
    """What --device takes on this machine: auto, cpu, each GPU CUDA finds, and mps where torch has it."""
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def devices_here() -> str:
    """'devices here: auto, cpu', for a message that refuses a device."""
    return "devices here: " + ", ".join(available_devices())


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags as Linux lists them; none where `cpuinfo` cannot be read (not Linux)."""
    return frozenset(_cpuinfo_value("flags", cpuinfo).split())


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name as Linux gives it; elsewhere what Python's platform module knows."""
    return _cpuinfo_value("model name", cpuinfo).strip() or platform.processor() or platform.machine()


def _cpuinfo_value(key: str, cpuinfo: str) -> str:
    """What follows the colon on cpuinfo's first `key` line; "" without one or where the file cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            return next((line for line in f if line.startswith(key)), "").partition(":")[2]
    except OSError:
        return ""


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (AVX-512 BF16 or AMX); elsewhere bf16 is emulated, slowly."""
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


SLOWER = "several times slower than float32 (the CPU default) here"


def slow_dtype_warning(dtype: str, device_type: str) -> str | None:
    """What to tell a user who runs the model in `dtype` (a torch dtype's name) where it is emulated: a 16-bit
    float on a CPU without the instructions for it, where each matrix product is several times slower than in
    float32 (8x for bf16, 7x for fp16: a ViViT-B-sized one on one thread of an AVX2 CPU). None where it is not."""
    if device_type != "cpu":
        return None
    if dtype == "bfloat16" and not cpu_has_native_bf16():
        return f"this CPU has no native bf16 (AVX512_BF16 or AMX): bfloat16 is emulated, {SLOWER}"
    if dtype == "float16" and not cpu_flags() & NATIVE_FP16_FLAGS:
        return f"this CPU has no native float16 (AVX512_FP16 or AMX-FP16): float16 is emulated, {SLOWER}"
    return None


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None or "auto": bf16 on a GPU that has it (else fp16), as whisper picks; on a CPU, bf16 where the CPU
    computes it natively (about 1.6x faster per clip there, logits within 0.05 of fp32), else fp32. float32 is
    the way to transformers-exact numbers."""
    import torch

    if dtype is None or dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else torch.float32
    if isinstance(dtype, str):
        name = DTYPE_ALIASES.get(dtype, dtype)
        if name not in DTYPE_NAMES[1:]:
            raise DeviceError(f"unknown dtype {dtype!r}: use {', '.join(DTYPE_NAMES[:-1])} or {DTYPE_NAMES[-1]}")
        dtype = getattr(torch, name)
    slow = slow_dtype_warning(str(dtype).removeprefix("torch."), device.type)
    if slow:
        warnings.warn(slow, stacklevel=2)
    return dtype


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # bytes: mallopt takes an int


def keep_freed_memory() -> bool:
    """Have malloc keep the memory of freed tensors for reuse instead of handing it back to the system.

    Each layer allocates and frees tensors of tens to hundreds of MB. glibc serves blocks over 32 MB with fresh
    pages from mmap and unmaps them when freed, so every forward pass pays page faults again: 16 ms per 38 MB on
    the 2-core machine here, 3.8 s of system time in a 30 s ViViT-B pass over 4 clips. With mmap off for malloc
    and no trimming, the next pass reuses the same memory: the peak is the same, it just stays with the process.
    For the CLI's own processes (and Ray's model workers), not for a library user's. Linux with glibc only;
    returns whether it was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others: nothing to tune
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
