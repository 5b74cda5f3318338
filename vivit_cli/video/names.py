"""File names OpenCV can be given: OpenCV crashes (a segmentation fault) on a name whose bytes are not UTF-8."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")  # a suffix kept on the alias: FFmpeg and OpenCV choose formats by it


@contextlib.contextmanager
def ffmpeg_name(path: str | os.PathLike[str]) -> Iterator[str]:
    """`path`, absolute, as a name every OpenCV (and FFmpeg, PyAV) call may take, for as long as the block runs.

    An absolute path cannot be mistaken by FFmpeg for a protocol ("pipe:0", "http:x"). A name that is not UTF-8
    (Python holds its stray bytes as lone surrogates) is given as a symlink with a safe name, and the same suffix,
    in a private temporary folder: it reaches the same file for reading, and creates it for writing. A symlink
    rather than /proc/self/fd/N, because FFmpeg and OpenCV pick formats by the suffix of the name.
    """
    name = os.path.abspath(os.fspath(path))
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield name
        return
    suffix = os.path.splitext(name)[1]
    folder = tempfile.mkdtemp(prefix="vivit-name-")
    try:
        alias = os.path.join(folder, "file" + (suffix if SAFE_SUFFIX.fullmatch(suffix) else ""))
        os.symlink(os.fsencode(name), alias)
        yield alias
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # removes the link, never what it points to
