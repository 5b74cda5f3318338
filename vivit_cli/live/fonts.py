"""TrueType fonts on this system (the usual font folders, and fontconfig where it is installed) and which of them
has each character: Pillow has no cmap API, so a character counts as there unless it renders as the "no glyph" box."""

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

from PIL import ImageFont

Warn = Callable[[str], None]  # hears what cannot be drawn; the command says each line once

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
SUGGESTED = dict.fromkeys(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"), "Noto Sans CJK")  # by script; else Noto Sans
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
    """Fonts found on the system and, for each text, the one that has all its characters; `lookup(char)` names
    more fonts that may have a character (fontconfig's `fc-list`)."""

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
        if ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf"):
            return True  # drawn as nothing, or as a gap, by any font
        key = (path, ch)
        if key not in self._has:
            try:
                # Without shaping: a character the font's cmap lacks becomes glyph 0, and raqm would draw a
                # lone combining mark on a dotted circle the font has.
                font = load(path, CHECK_PX, ImageFont.Layout.BASIC)
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
        wanted = [ch for ch in best[1] if scripts(ch)[0] not in self._hopeless]
        if wanted:
            choose([*self.lookup(wanted[0]), *self.paths[:MAX_SCANNED]])
            if wanted[0] in best[1]:
                self._hopeless.add(scripts(wanted[0])[0])
        if best[0] is None:  # no font, or not one file Pillow reads
            # OpenCV's own font draws the text: it lacks all but printable ASCII.
            return Pick(None, "".join(sorted(ch for ch in chars if not 32 <= ord(ch) < 127)))
        if best[0] not in self._found and best[0] != self.paths[0]:
            self._found.append(best[0])
        return Pick(best[0], "".join(best[1]))


@functools.lru_cache(maxsize=256)
def load(path: str, px: int, engine: ImageFont.Layout | None = None) -> ImageFont.FreeTypeFont:
    """The font in `path` at `px` pixels, read once (with `engine`: raqm, the default where installed, or BASIC)."""
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


@functools.lru_cache(maxsize=256)
def notes(pick: Pick, fallback: str) -> tuple[str, ...]:
    """What to tell the user about a text drawn with `pick`: one line per script it could not draw. `fallback`
    names what draws the text when there is no TrueType font (it has ASCII only)."""
    if pick.path is None:
        return (
            f"no TrueType font found (in the usual font folders or through fontconfig): text is drawn with "
            f"{fallback}, which has ASCII only; install a font such as DejaVu Sans or Noto Sans",
        )
    return tuple(
        f"no installed font has {_shown(script)} characters: labels with them are drawn with boxes in their place; "
        f"install a font that has them, such as {SUGGESTED.get(script, 'Noto Sans')}"
        for script in scripts(pick.missing)
    )


def _shown(script: str) -> str:
    return "some" if not script else script if len(script) <= 3 else script.title()


def scripts(chars: Iterable[str]) -> list[str]:
    """The scripts of `chars` by their Unicode names ("CJK", "HANGUL", "ARABIC"), "" for symbols."""
    out = set()
    for ch in chars:
        words = unicodedata.name(ch, "").split()
        out.add(words[0] if len(words) > 1 and any(w.split("-")[0] in SCRIPT_WORDS for w in words[1:]) else "")
    return sorted(out)
