"""The user's sources -> video paths: folders, globs, files and @lists; which names count as videos (FFmpeg decides
what really decodes). No OpenCV."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

from vivit_cli.errors import SourceError
from vivit_cli.results import shown_path

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
LIST_PREFIX = "@"  # @list.txt: a file of paths, one per line
LIST_COMMENT = "#"  # lines of a list starting with this are skipped

# Suffixes batch mode treats as video (lower case).
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ts .mts .m2ts .ogv .mxf .vob .asf .f4v".split()
)


def is_video_name(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_url(text: str) -> bool:
    """`scheme://...`: a stream or web address, not a file name."""
    return URL.match(text) is not None


def path_key(path: str) -> str:
    """What --resume matches rows on: the absolute, normalised path, so ./a.mp4 and a.mp4 are one file; as the rows
    write it (bytes that are not UTF-8 as `\\xe9`), so a row read back matches its file."""
    return os.path.normcase(os.path.abspath(shown_path(path)))


def collect_videos(sources: Sequence[str], recursive: bool = False) -> list[str]:
    """Folders, globs, files and @lists -> video paths, sorted, each once; a source that names none is an error."""
    found: dict[str, str] = {}
    for source in sources:
        for path in _expand(source, recursive):
            found.setdefault(path_key(path), path)
    return sorted(found.values())


def _expand(source: str, recursive: bool) -> list[str]:
    if source.startswith(LIST_PREFIX) and not os.path.lexists(source):
        return _read_list(source[len(LIST_PREFIX) :])
    if os.path.isdir(source):
        paths = _walk(source, recursive)
        if not paths:
            where = "this folder or its subfolders" if recursive else "this folder (-r looks in subfolders)"
            raise SourceError(f"{source}: no video files in {where}; video suffixes: {_suffixes()}")
        return paths
    if os.path.lexists(source):  # a file named outright is taken whatever it is, so it gets a row
        return [source]
    if glob.has_magic(source):
        found = sorted(glob.glob(source, recursive=True))
        matches = _without_loops(source, found)
        if found and not matches:
            raise SourceError(f"{source}: the pattern matches only paths through a link back into a folder above it")
        videos = [p for p in matches if is_video_name(p)]
        if not videos:
            raise SourceError(
                f"{source}: the pattern matches {len(matches)} paths, none of them with a video suffix ({_suffixes()})"
            )
        return videos
    raise SourceError(f"{source}: no such file, folder or pattern")


def _walk(folder: str, recursive: bool) -> list[str]:
    """Entries with a video suffix, files or not (a folder named x.mp4 gets an error row); hidden ones skipped."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [os.path.join(root, n) for n in sorted(files + dirs) if not n.startswith(".") and is_video_name(n)]
        if not recursive:
            break
    return out


def _without_loops(pattern: str, paths: list[str]) -> list[str]:
    """Glob's matches less those that pass a folder twice: `**` follows links, and a link to a folder above it
    (`ln -s "$PWD" loop`) would list every video again under loop/, loop/loop/, ... until the system gives up."""
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    root = str(Path(*parts[:fixed])) if fixed else os.curdir
    real: dict[str, str] = {}

    def looped(path: str) -> bool:
        folder, seen = root, {os.path.realpath(root)}
        for part in Path(os.path.relpath(path, root)).parts[:-1]:
            folder = os.path.join(folder, part)
            where = real.setdefault(folder, os.path.realpath(folder))
            if where in seen:
                return True
            seen.add(where)
        return False

    return [p for p in paths if not looped(p)]


def _read_list(list_path: str) -> list[str]:
    """@list.txt: every line that is not blank or a comment is taken as a file, so a missing one gets a row."""
    try:
        text = Path(list_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(
            f"{LIST_PREFIX}{list_path}: cannot read the list ({getattr(e, 'strerror', None) or e})"
        ) from None
    paths = [s for s in (line.strip() for line in text.splitlines()) if s and not s.startswith(LIST_COMMENT)]
    if not paths:
        raise SourceError(f"{LIST_PREFIX}{list_path}: the list names no files")
    return paths


def _suffixes() -> str:
    return " ".join(sorted(VIDEO_SUFFIXES))
