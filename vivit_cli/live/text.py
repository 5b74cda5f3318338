"""Text in any script on frames: a TrueType font found on the system, drawn through Pillow (OpenCV's own font has
ASCII only). Library code: what cannot be drawn is said through the `warn` callback the caller passes."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

Warn = Callable[[str], None]

FONT_SUFFIXES = (".ttf", ".otf", ".ttc")
# Well-known files, best first: wide coverage and a plain sans look. The first one found draws ASCII labels.
PREFERRED_FILES = (
    "dejavusans.ttf",
    "notosans-regular.ttf",
    "arial.ttf",
    "helvetica.ttc",
    "segoeui.ttf",
    "liberationsans-regular.ttf",
    "notosanscjk-regular.ttc",
    "notosanscjksc-regular.otf",
    "notosanscjkjp-regular.otf",
    "arial unicode.ttf",
    "arialuni.ttf",
    "msyh.ttc",
    "pingfang.ttc",
    "hiragino sans gb.ttc",
    "applegothic.ttf",
    "malgun.ttf",
    "msgothic.ttc",
    "nirmala.ttf",
)
# The same fonts by family, for fontconfig (`fc-match`), which knows where the system keeps them.
PREFERRED_FAMILIES = (
    "DejaVu Sans",
    "Noto Sans",
    "Noto Sans CJK SC",
    "Arial Unicode MS",
    "Microsoft YaHei",
    "PingFang SC",
)
FC_TIMEOUT_S = 5.0  # a fontconfig call builds its cache the first time; past this, go without it
MAX_SCANNED = 200  # fonts tried for a character the well-known ones lack, when fontconfig cannot say which have it
CHECK_PX = 32  # size at which a character's rendering is compared with the font's "no glyph" box
NO_GLYPH = "\U0010fffd"  # a private-use code point no font maps: it renders as the font's .notdef box
HERSHEY = cv2.FONT_HERSHEY_SIMPLEX
HERSHEY_PX_PER_SCALE = 27.0  # font px of the TrueType text as wide as cv2's font at scale 1
SUGGESTED = {
    "CJK": "Noto Sans CJK",
    "HIRAGANA": "Noto Sans CJK",
    "KATAKANA": "Noto Sans CJK",
    "HANGUL": "Noto Sans CJK",
}
SCRIPT_WORDS = ("LETTER", "SYLLABLE", "IDEOGRAPH", "CHARACTER", "DIGIT", "VOWEL", "SIGN")  # in a character's name


def font_dirs() -> list[Path]:
    """The usual font folders of Linux, macOS and Windows, those that exist."""
    home = Path.home()
    dirs = [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), home / ".local/share/fonts", home / ".fonts"]
    dirs += [Path("/System/Library/Fonts"), Path("/Library/Fonts"), home / "Library/Fonts"]
    if sys.platform == "win32":
        dirs.append(Path(os.environ.get("WINDIR", r"C:\Windows")) / "Fonts")
        if os.environ.get("LOCALAPPDATA"):
            dirs.append(Path(os.environ["LOCALAPPDATA"]) / "Microsoft/Windows/Fonts")
    return [d for d in dirs if d.is_dir()]


def find_fonts() -> list[str]:
    """Font files on this system: the well-known ones first (PREFERRED_FILES, then fontconfig's matches for
    PREFERRED_FAMILIES), then every other one in the usual folders."""
    found: dict[str, str] = {}  # lower-case file name -> path
    for folder in font_dirs():
        for root, _, files in os.walk(folder):
            for name in sorted(files):
                if name.lower().endswith(FONT_SUFFIXES):
                    found.setdefault(name.lower(), os.path.join(root, name))
    ordered = [found[name] for name in PREFERRED_FILES if name in found]
    ordered += [p for family in PREFERRED_FAMILIES for p in _fontconfig("fc-match", "--format=%{file}", family)]
    ordered += sorted(found.values())
    return list(dict.fromkeys(p for p in ordered if p.lower().endswith(FONT_SUFFIXES)))


def _fontconfig(*args: str) -> list[str]:
    """Font files fontconfig names, one per line; none when it is not installed or fails."""
    exe = shutil.which(args[0])
    if exe is None:
        return []
    try:
        done = subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=FC_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip().rstrip(":") for line in done.stdout.splitlines() if line.strip()]


@dataclass(frozen=True)
class Pick:
    """The font a text is drawn with (None: no TrueType font, OpenCV's ASCII font) and the characters it lacks."""

    path: str | None
    missing: str


class FontBook:
    """Fonts found on the system, loaded once per (path, size), and for each text the one that has all its
    characters; `lookup(char)` names more fonts that may have a character (fontconfig's `fc-list`)."""

    def __init__(self, paths: Sequence[str], lookup: Callable[[str], list[str]] | None = None) -> None:
        self.paths = list(paths)
        self.lookup = lookup or (lambda ch: [])
        self._has: dict[tuple[str, str], bool] = {}
        self._no_glyph: dict[str, tuple] = {}  # per font: how it draws a character it lacks
        self._picks: dict[frozenset[str], Pick] = {}
        self._broken: set[str] = set()  # files that do not load
        self._found: list[str] = []  # fonts that had characters the first one lacks
        self._hopeless: set[str] = set()  # scripts no font has

    def has(self, path: str, ch: str) -> bool:
        """Whether the font draws `ch` with a glyph of its own, not its "no glyph" box."""
        key = (path, ch)
        if key not in self._has:
            if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf"):
                self._has[key] = True  # drawn as nothing, or as a gap, by any font
            else:
                try:
                    # Without shaping: a character the font's cmap lacks becomes glyph 0, and raqm would draw a
                    # lone combining mark on a dotted circle the font has.
                    font = _load(path, CHECK_PX, ImageFont.Layout.BASIC)
                    if path not in self._no_glyph:
                        self._no_glyph[path] = _rendering(font, NO_GLYPH)
                    self._has[key] = _rendering(font, ch) != self._no_glyph[path]
                except OSError:  # not a font Pillow reads: skipped from now on
                    self._broken.add(path)
                    self._has[key] = False
        return self._has[key]

    def pick(self, text: str) -> Pick:
        """The first font that has every character of `text`, else the one that has the most."""
        chars = frozenset(text)
        if chars not in self._picks:
            self._picks[chars] = self._pick(chars)
        return self._picks[chars]

    def _pick(self, chars: frozenset[str]) -> Pick:
        everything = sorted(chars)
        best: list = [None, everything]  # a font and the characters it lacks

        def choose(paths: Iterable[str]) -> None:
            for path in dict.fromkeys(paths):
                missing = [ch for ch in everything if not self.has(path, ch)]
                if path not in self._broken and (best[0] is None or len(missing) < len(best[1])):
                    best[:] = path, missing
                if not best[1]:
                    return

        # The first font, those earlier texts needed, then fontconfig's and the rest for a character still missing;
        # a script none of them had the last time is not looked for again (that is one fc-list per character).
        choose([*self.paths[:1], *self._found])
        wanted = [ch for ch in best[1] if _scripts(ch)[0] not in self._hopeless]
        if wanted:
            choose([*self.lookup(wanted[0]), *self.paths[:MAX_SCANNED]])
            if wanted[0] in best[1]:
                self._hopeless.add(_scripts(wanted[0])[0])
        if best[0] is None:  # no font, or not one file Pillow reads
            return Pick(None, _not_ascii(chars))
        if best[0] not in self._found and best[0] != self.paths[0]:
            self._found.append(best[0])
        return Pick(best[0], "".join(best[1]))


@functools.lru_cache(maxsize=256)
def _load(path: str, px: int, engine: ImageFont.Layout | None = None) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, px, layout_engine=engine)


def _rendering(font: ImageFont.FreeTypeFont, ch: str) -> tuple:
    mask = font.getmask(ch)
    return font.getbbox(ch), mask.size, bytes(mask)


_book: FontBook | None = None


def book() -> FontBook:
    """The fonts of this system, found at the first call."""
    global _book
    if _book is None:
        _book = FontBook(find_fonts(), lambda ch: _fontconfig("fc-list", f":charset={ord(ch):x}", "file"))
    return _book


def text_width(text: str, px: int) -> int:
    """Width in pixels of `text` drawn `px` high (the font size)."""
    text = unicodedata.normalize("NFC", text)
    pick = book().pick(text)
    if pick.path is None:
        return cv2.getTextSize(_ascii(text), HERSHEY, px / HERSHEY_PX_PER_SCALE, _thickness(px))[0][0]
    return _advance(pick.path, max(1, px), text)


def draw_text(
    frame: np.ndarray,
    text: str,
    origin: tuple[int, int],
    px: int,
    colour: tuple[int, int, int],
    warn: Warn | None = None,
) -> None:
    """Draw `text` onto `frame` (H, W, 3) uint8 in place, its baseline starting at `origin` (x, y); `colour` is
    in the frame's channel order. Characters no font has are drawn as the font's box, and `warn` hears why."""
    text = unicodedata.normalize("NFC", text)
    pick = book().pick(text)
    if warn is not None:
        for note in notes(pick):
            warn(note)
    x, y = origin
    if pick.path is None:
        thickness = _thickness(px)
        cv2.putText(frame, _ascii(text), (x, y), HERSHEY, px / HERSHEY_PX_PER_SCALE, colour, thickness, cv2.LINE_AA)
        return
    # Only the text's box is drawn, from a mask kept while the same lines are drawn frame after frame.
    alpha, left, top = _mask(pick.path, max(1, px), text)
    x0, y0 = x + left, y + top
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(frame.shape[1], x0 + alpha.shape[1]), min(frame.shape[0], y0 + alpha.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    a = alpha[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0, None].astype(np.float32) / 255  # (h, w, 1)
    region = frame[fy0:fy1, fx0:fx1]
    region[:] = (region * (1 - a) + np.asarray(colour, np.float32) * a + 0.5).astype(np.uint8)


@functools.lru_cache(maxsize=1024)
def _advance(path: str, px: int, text: str) -> int:
    return int(np.ceil(_load(path, px).getlength(text)))


@functools.lru_cache(maxsize=256)
def _mask(path: str, px: int, text: str) -> tuple[np.ndarray, int, int]:
    """`text`'s coverage (h, w) uint8 and where its top-left corner is from the start of its baseline."""
    font = _load(path, px)
    left, top, right, bottom = font.getbbox(text, anchor="ls")
    image = Image.new("L", (max(1, right - left), max(1, bottom - top)))
    ImageDraw.Draw(image).text((-left, -top), text, font=font, fill=255, anchor="ls")
    alpha = np.array(image)
    alpha.flags.writeable = False  # shared by every later call
    return alpha, left, top


@functools.lru_cache(maxsize=256)
def notes(pick: Pick) -> tuple[str, ...]:
    """What to tell the user about a text drawn with `pick`: one line per script it could not draw."""
    if pick.path is None:
        return (
            "no TrueType font found (in the usual font folders or through fontconfig): text is drawn with "
            "OpenCV's own font, which has ASCII only; install a font such as DejaVu Sans or Noto Sans",
        )
    return tuple(
        f"no installed font has {_shown(script)} characters: labels with them are drawn with boxes in their place; "
        f"install a font that has them, such as {SUGGESTED.get(script, 'Noto Sans')}"
        for script in _scripts(pick.missing)
    )


def _scripts(chars: Iterable[str]) -> list[str]:
    """The scripts of `chars` by their Unicode names ("CJK", "HANGUL", "ARABIC"), "" for symbols."""
    out = set()
    for ch in chars:
        words = unicodedata.name(ch, "").split()
        out.add(words[0] if len(words) > 1 and any(w.split("-")[0] in SCRIPT_WORDS for w in words[1:]) else "")
    return sorted(out)


def _shown(script: str) -> str:
    return "some" if not script else script if len(script) <= 3 else script.title()


def _not_ascii(chars: Iterable[str]) -> str:
    """The characters OpenCV's own font lacks: all but printable ASCII."""
    return "".join(sorted(ch for ch in chars if not 32 <= ord(ch) < 127))


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def _thickness(px: int) -> int:
    return max(1, round(px / 12))
