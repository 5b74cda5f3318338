"""A model folder replaced in one step: --out holds a whole model, the old one or the new one, whenever the run is
killed; what a killed run left beside it (hidden folders of up to a model's weights each) goes at the next run.

On Linux the two folders trade names in one system call (renameat2 with RENAME_EXCHANGE). Where the system or the
file system cannot, the old folder is moved aside first and the new one then takes its name: a kill between the two
leaves the old model in a hidden folder, and the next run puts it back (tidy).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

AT_FDCWD = -100  # <fcntl.h>: paths relative to the current folder
RENAME_EXCHANGE = 2  # <linux/fs.h>: both names must exist; they trade places
CANNOT_EXCHANGE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)  # an old kernel, or a file system without it
WAS = "was"  # what --out held, inside the hidden folder it is moved to (where there is no exchange)


def swap(new: Path, out: Path) -> None:
    """`new` takes `out`'s name; what `out` held is removed only once the new folder is in place."""
    if not os.path.lexists(out):
        os.replace(new, out)
    elif _exchange(new, out):
        _remove(new)  # now the old model
    else:
        old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old."))
        os.replace(out, old / WAS)
        os.replace(new, out)
        _remove(old)


def tidy(out: str | Path) -> None:
    """Clean up beside `out` what killed runs left: an old model moved aside is put back where `out` is gone, then
    every hidden staging or old folder goes. Only while `out` is held: no other run is writing one of them."""
    out = Path(out).absolute()
    left = re.compile(rf"\.{re.escape(out.name)}\.(old\.)?[a-z0-9_]{{8}}")  # tempfile.mkdtemp's names, ours
    try:
        found = [p for p in out.parent.iterdir() if left.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    except FileNotFoundError:
        return
    for folder in found:
        if not os.path.lexists(out) and os.path.lexists(folder / WAS):
            os.replace(folder / WAS, out)
    for folder in found:
        _remove(folder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names of `a` and `b` in one step; False where this system or file system cannot."""
    rename = _renameat2()
    if rename is None:
        return False
    if rename(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in CANNOT_EXCHANGE:
        return False
    raise OSError(code, os.strerror(code), str(b))


@functools.cache
def _renameat2() -> Any:
    """glibc's renameat2 (2.28 and later), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        rename = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    rename.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    rename.restype = ctypes.c_int
    return rename
