"""The user's sources: which paths count as videos. FFmpeg decides what really decodes."""

from __future__ import annotations

import re
from pathlib import Path

URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

# Suffixes batch mode treats as video (lower case).
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .avi .mkv .webm .mpg .mpeg .wmv .flv .3gp .ts .mts .m2ts .ogv .mxf .vob .asf .f4v".split()
)


def is_video_name(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def is_url(text: str) -> bool:
    """`scheme://...`: a stream or web address, not a file name."""
    return URL.match(text) is not None
