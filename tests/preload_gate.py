"""Imported by the decode pool's forkserver when a test adds it to the preload: holds the server in its preload
until the test opens the gate, so that a test can act while the server has not finished starting.

$VIVIT_TEST_GATE names a folder: `waiting` appears there when the server is held, `open` lets it go.
"""

from __future__ import annotations

import os
import time

GATE_POLL_S = 0.05  # seconds between looks at the gate
GATE_LIMIT = 2400  # looks before the server goes on anyway, so that a failed test leaves no process behind

_gate = os.environ.get("VIVIT_TEST_GATE")
if _gate:
    open(os.path.join(_gate, "waiting"), "w").close()
    for _ in range(GATE_LIMIT):
        if os.path.exists(os.path.join(_gate, "open")):
            break
        time.sleep(GATE_POLL_S)
