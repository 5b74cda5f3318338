"""Text in any script on frames (live.text): fonts found, glyphs checked, labels drawn, what cannot be drawn said."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFont

from vivit_cli.live import draw, fonts, text
from vivit_cli.live.draw import draw_labels, layout_labels
from vivit_cli.results import Prediction

NOT_IN_DEJAVU = "跳舞"  # CJK: no DejaVu font has it


def dejavu() -> str:
    """DejaVu Sans, the font these checks know the coverage of; skipped where it is not installed."""
    path = next((p for p in fonts.book().paths if Path(p).name == "DejaVuSans.ttf"), None)
    if path is None:
        pytest.skip("DejaVu Sans is not installed")
    return path


def cjk_font() -> str | None:
    return fonts.book().pick(NOT_IN_DEJAVU).path if not fonts.book().pick(NOT_IN_DEJAVU).missing else None


@pytest.mark.parametrize(
    "ch,has",
    [("a", True), ("é", True), ("λ", True), ("Ж", True), (" ", True), ("跳", False), ("한", False), ("\u0350", False)],
)
def test_glyph_check_on_dejavu(ch: str, has: bool) -> None:
    """Latin, Greek and Cyrillic are in DejaVu Sans; CJK, Hangul and that combining mark are not."""
    assert fonts.book().has(dejavu(), ch) is has


def render(label: str, size: tuple[int, int] = (60, 200), px: int = 24) -> np.ndarray:
    frame = np.zeros((*size, 3), np.uint8)
    text.draw_text(frame, label, (5, 40), px, (255, 255, 255))
    return frame


@pytest.mark.parametrize("label", ["café", "Ελληνικά"])
def test_draw_text_draws_accents_and_greek(label: str) -> None:
    dejavu()
    frame = render(label)
    ys, xs = np.nonzero(frame.max(axis=2) > 128)
    assert len(xs) > 50, "the text is drawn"
    assert xs.min() >= 4 and xs.max() <= 5 + text.text_width(label, 24) + 1 and ys.max() <= 40 + 24
    assert not render(label).any(axis=2)[:, 5 + text.text_width(label, 24) + 2 :].any(), "nothing past its width"


def test_the_accent_of_cafe_is_drawn() -> None:
    dejavu()
    accented, plain = render("café"), render("cafe")
    differ = np.nonzero(np.any(accented != plain, axis=2))
    assert differ[0].size > 10
    e_x = 5 + text.text_width("caf", 24)
    assert differ[1].min() >= e_x - 1, "only the last letter differs"
    assert differ[0].min() < 40 - ImageFont.truetype(dejavu(), 24).getbbox("e", anchor="ls")[3] - 12, "above the e"


def test_draw_text_is_clipped_to_the_frame() -> None:
    frame = np.zeros((10, 30, 3), np.uint8)
    text.draw_text(frame, "Ελληνικά café", (20, 5), 40, (255, 255, 255))  # mostly outside: no error
    text.draw_text(frame, "x", (-100, -100), 12, (255, 255, 255))
    assert frame.shape == (10, 30, 3)


def test_labels_in_other_scripts_in_the_panel() -> None:
    dejavu()
    frame = np.zeros((360, 640, 3), np.uint8)
    predictions = [Prediction("café", 0.7, 0), Prediction("Ελληνικά", 0.2, 1)]
    out = draw_labels(frame, predictions)
    layout = layout_labels(640, 360, predictions)
    for line in layout.lines:
        w = text.text_width(line.text, layout.font_px)
        box = out[line.y - layout.line_px // 2 : line.y, line.x : line.x + w]
        assert (box.max(axis=2) > 200).sum() > 20, f"{line.text!r} is drawn where the layout puts it"
    plain = draw_labels(frame, [Prediction("cafe", 0.7, 0), Prediction("Ελληνικά", 0.2, 1)])
    assert not np.array_equal(out, plain), "the accent is drawn"


def test_a_script_no_font_has_is_said_and_drawn_as_boxes() -> None:
    if cjk_font():
        pytest.skip("a CJK font is installed here")
    said: list[str] = []
    frame = np.zeros((200, 400, 3), np.uint8)
    for _ in range(3):  # as frames go by: the drawing code says it each time, the CLI once
        out = draw_labels(frame, [Prediction(f"{NOT_IN_DEJAVU} dance", 0.9, 0)], warn=said.append)
    assert said and set(said) == {said[0]} and "CJK" in said[0] and "Noto Sans CJK" in said[0]
    assert (out.max(axis=2) > 200).sum() > 50, "the boxes and the Latin letters are drawn"
    said.clear()
    draw_labels(frame, [Prediction("café Ελληνικά", 0.9, 0)], warn=said.append)
    assert said == [], "nothing to say where every character has its glyph"


def test_without_any_font_ascii_is_drawn_with_opencv(monkeypatch) -> None:
    monkeypatch.setattr(fonts, "_book", fonts.FontBook([]))
    said: list[str] = []
    frame = np.zeros((120, 200, 3), np.uint8)
    predictions = [Prediction("waving", 0.8, 0), Prediction("café", 0.1, 1)]
    out = draw_labels(frame, predictions, title="0:01", warn=said.append)
    assert (out.max(axis=2) > 200).sum() > 50, "the text is drawn"
    assert set(said) == {said[0]} and "no TrueType font" in said[0] and "ASCII only" in said[0]
    assert text.text_width("waving", 20) > 0
    layout = layout_labels(200, 120, predictions, title="0:01")
    assert [line.text for line in layout.lines][1:] == ["waving  80.0%", "café  10.0%"]


def test_fonts_are_found_in_font_folders_without_fontconfig(monkeypatch, tmp_path: Path) -> None:
    source = dejavu()
    (tmp_path / "sub").mkdir()
    shutil.copy(source, tmp_path / "sub" / "DejaVuSans.ttf")
    (tmp_path / "notes.txt").write_text("not a font")
    monkeypatch.setattr(fonts.shutil, "which", lambda name: None)
    monkeypatch.setattr(fonts, "font_dirs", lambda: [tmp_path])
    assert fonts.find_fonts() == [str(tmp_path / "sub" / "DejaVuSans.ttf")]


def test_a_file_that_is_not_a_font_is_passed_over(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    book = fonts.FontBook([str(broken), dejavu()])
    assert book.pick("café") == fonts.Pick(dejavu(), "")


def test_layout_sizes_the_font_from_the_line() -> None:
    layout = layout_labels(1280, 720, [Prediction("juggling", 0.5, 0)])
    assert layout.font_px == round(layout.line_px * draw.FONT_PX_PER_LINE)


def test_only_files_that_are_not_fonts_is_no_font(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ttf"
    broken.write_bytes(b"not a font")
    assert fonts.FontBook([str(broken)]).pick("café") == fonts.Pick(None, "é")


def test_a_font_fontconfig_names_is_used_and_remembered() -> None:
    """DejaVu Sans Mono has no Hebrew, DejaVu Sans has: asked for once, then tried first."""
    sans = dejavu()
    mono = str(Path(sans).with_name("DejaVuSansMono.ttf"))
    if not Path(mono).exists():
        pytest.skip("DejaVu Sans Mono is not installed")
    asked: list[str] = []
    book = fonts.FontBook([mono], lambda ch: asked.append(ch) or [sans])
    assert book.pick("abc") == fonts.Pick(mono, "")
    assert book.pick("שלום") == fonts.Pick(sans, "")
    assert book.pick("אבג") == fonts.Pick(sans, "") and len(asked) == 1
    assert book.pick("跳舞").missing and book.pick("唱歌").missing and len(asked) == 2, "CJK: asked once"
