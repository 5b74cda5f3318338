"""Every relative link in README.md and docs/*.md leads to a file that exists, and its #anchor to a heading there
(anchors as GitHub makes them from headings)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"(`+).+?\1")
LINK = re.compile(r"\[[^\]]*\]\(([^()\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def prose(text: str) -> str:
    """The text without fenced blocks, where `[x](y)` and `# x` are code, not links and headings."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces as hyphens."""
    text = LINK.sub(lambda m: m.group(0)[1 : m.group(0).index("]")], heading)  # a link counts as its text
    text = "".join(c for c in text.lower() if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for m in HEADING.finditer(prose(page.read_text("utf-8"))):
        base = slug(m.group(1))
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def links() -> list[tuple[str, str]]:
    """(page, target) of every relative link in the pages."""
    found = []
    for page in PAGES:
        text = CODE_SPAN.sub("", prose(page.read_text("utf-8")))
        found += [(page.relative_to(ROOT).as_posix(), m.group(1)) for m in LINK.finditer(text)]
    return [(page, target) for page, target in found if not EXTERNAL.match(target)]


def test_the_pages_link_to_each_other() -> None:
    linked = {(ROOT / page).parent.joinpath(t.split("#")[0]).resolve() for page, t in links() if not t.startswith("#")}
    assert set(PAGES) - {ROOT / "README.md"} <= linked, "a page in docs/ that nothing links to"


@pytest.mark.parametrize("page,target", links(), ids=[f"{p}->{t}" for p, t in links()])
def test_relative_link_resolves(page: str, target: str) -> None:
    path, _, anchor = unquote(target).partition("#")
    file = (ROOT / page).parent / path if path else ROOT / page
    assert file.exists(), f"{page} links to {target}: no such file"
    if anchor:
        assert file.suffix == ".md", f"{page} links to {target}: an anchor in a file that is not Markdown"
        assert anchor in anchors(file), f"{page} links to {target}: no such heading in {file.name}"
