"""The names a picture may have: every --plot (the timeline's, evaluate's confusion matrix) is a PNG or a JPEG, by
its suffix. Checked before any work; no drawing here (live.plot and learn.confusion draw)."""

from __future__ import annotations

from pathlib import Path

from vivit_cli.errors import SourceError
from vivit_cli.results import shown_path
from vivit_cli.writers.files import check_folder

PICTURES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}  # suffix -> format (Pillow's name)
PICTURE_NAMES = ".png or .jpg"  # for help and messages


def check_picture_path(path: str | Path, what: str = "the plot") -> Path:
    """`path` as a Path if it names a picture that can be written (writers.files.check_folder)."""
    path = Path(path)
    if path.suffix.lower() not in PICTURES:
        raise SourceError(f"{shown_path(path)}: {what} is a picture: give a {PICTURE_NAMES} name")
    check_folder(path)
    return path


def picture_format(path: str | Path) -> str:
    """The format of a picture whose name passed check_picture_path: PNG or JPEG."""
    return PICTURES[Path(path).suffix.lower()]
