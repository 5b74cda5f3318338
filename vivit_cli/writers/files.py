"""Output files: checked before a long run (one rule for every command), held by one run at a time, and written
straight to the disk, so that a write that fails (a full disk) leaves the file as the writes before it left it.

No torch, no OpenCV.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from vivit_cli.errors import OutputError, SourceError
from vivit_cli.locks import held
from vivit_cli.results import shown_path

STDOUT = "-"  # as an --out name: the command's rows on stdout
FULL = (errno.ENOSPC, errno.EDQUOT)  # a disk (or the user's quota) with no room left


def check_folder(path: str | os.PathLike[str]) -> None:
    """An output file that can be written, checked before a long run (which writes as it goes, or only at the end):
    its folder exists, and lets us create the file and the hidden ones beside it (a Parquet file's rows in progress,
    --resume's rewrite, the lock). Leaves nothing behind; stdout ("-") passes."""
    if os.fspath(path) == STDOUT:
        return
    folder = Path(path).absolute().parent
    if not folder.is_dir():
        raise SourceError(f"{shown_path(path)}: no folder {shown_path(folder)} to write into")
    try:
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            os.unlink(path)
            return
        if not os.path.isfile(path):  # a device or a pipe (/dev/null): opening it may wait for a reader
            return
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        probe_folder(folder)
    except OSError as e:
        raise SourceError(f"{shown_path(path)}: cannot be written ({e.strerror or e})") from None


def probe_folder(folder: Path) -> None:
    """An OSError unless `folder` takes new files: one is made there and removed."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".vivit-probe.")
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def held_outputs(outputs: Iterable[tuple[str, str | None]]) -> Iterator[None]:
    """Each (option, path) held for the run (locks.held): a second run on one of them is refused at once, naming
    it. None and stdout are skipped."""
    with contextlib.ExitStack() as stack:
        for option, path in outputs:
            if path is not None and path != STDOUT:
                stack.enter_context(held(path, option))
        yield


def write_error(path: str | os.PathLike[str], e: OSError, then: str = "") -> OutputError:
    """A write to `path` that failed, as the one line the user reads (exit 1); `then`: what became of the file."""
    if e.errno in FULL:
        return OutputError(f"no space left on device writing {shown_path(path)}{then}")
    return OutputError(f"cannot write {shown_path(path)}: {e.strerror or e}{then}")


class RowFile(io.TextIOBase):
    """A text file (UTF-8) whose write() goes to the disk at once, with no buffer that a later flush or close would
    try (and fail) to write again: after a failed write the file is what the writes before left, plus perhaps the
    start of the failed one, which the writer cuts off (TextWriter). A failed write is an OutputError."""

    def __init__(self, path: str | os.PathLike[str], append: bool = False, output: str | None = None) -> None:
        """`output`: the file an error names, when `path` is a hidden one that will take its place."""
        self.name = output or os.fspath(path)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | (0 if append else os.O_TRUNC), 0o666)
        if append:
            os.lseek(self._fd, 0, os.SEEK_END)

    def write(self, text: str) -> int:
        data = memoryview(text.encode("utf-8"))
        try:
            while data:
                data = data[self._write_some(data) :]
        except OSError as e:
            raise write_error(self.name, e) from None
        return len(text)

    def _write_some(self, data: memoryview) -> int:
        return os.write(self._fd, data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self._fd, offset, whence)

    def tell(self) -> int:
        return os.lseek(self._fd, 0, os.SEEK_CUR)

    def truncate(self, size: int | None = None) -> int:
        size = self.tell() if size is None else size
        os.ftruncate(self._fd, size)
        return size

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()
