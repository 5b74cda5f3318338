"""keep_freed_memory: once warm, a forward pass reuses freed memory instead of faulting in fresh pages."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

HIDDEN_PAGES = 1024 * 16384 * 4 // 4096  # the 64 MB hidden tensor below: over glibc's largest mmap threshold
WARM, MEASURED = 10, 5  # layers run before counting (the heap settles), and counted
CODE = f"""
import resource, sys, torch
from vivit_cli.device import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
x, w1, w2 = torch.ones(1024, 64), torch.ones(16384, 64), torch.ones(64, 16384)
def layer():  # an MLP's pattern: a 64 MB hidden tensor made and freed between two small ones
    return torch.nn.functional.linear(torch.nn.functional.linear(x, w1).relu_(), w2)
for _ in range({WARM}):
    layer()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({MEASURED}):
    layer()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc")
@pytest.mark.parametrize("mode", ["default", "keep"])
def test_warm_layers_reuse_freed_memory(mode: str) -> None:
    out = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, check=True)
    applied, faults = out.stdout.split()
    if mode == "keep":
        assert applied == "True" and int(faults) < HIDDEN_PAGES // 10
    else:  # what the setting is for: glibc unmaps each hidden tensor, and the next faults every page in again
        assert int(faults) > MEASURED * HIDDEN_PAGES // 2
