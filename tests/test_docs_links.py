"""Every relative link and image in README.md and docs/ points at a file that exists (and a
heading that exists, for `page.md#heading`); every image has alt text; the README's first screen
shows a picture and the two set-up commands; the pictures stay within issue 34's budgets."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"(?ms)^```.*?^```")
INLINE_CODE = re.compile(r"`[^`\n]*`")
MARKDOWN_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_TAG = re.compile(r"<(img|a)\b([^>]*)>", re.IGNORECASE)
HTML_ATTRIBUTE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
FIRST_SCREEN_LINES = 40  # about what GitHub shows of a README before scrolling


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def prose(text: str) -> str:
    """The text without code blocks and inline code (their brackets are not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def links(text: str) -> list[tuple[str, str, str]]:
    """(kind, target, alt) for every link and image: kind 'image' or 'link'."""
    found = []
    for bang, label, target in MARKDOWN_LINK.findall(prose(text)):
        found.append(("image" if bang else "link", target, label))
    for tag, attributes in HTML_TAG.findall(prose(text)):
        values = dict(HTML_ATTRIBUTE.findall(attributes))
        if tag.lower() == "img":
            found.append(("image", values.get("src", ""), values.get("alt", "")))
        elif "href" in values:
            found.append(("link", values["href"], ""))
    return found


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) is not None


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", INLINE_CODE.sub(lambda m: m.group(0)[1:-1], heading).lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(line.lstrip("#").strip()) for line in text.splitlines() if line.startswith("#")}


def broken_links(page: Path) -> list[str]:
    broken = []
    for _kind, target, _alt in links(page.read_text(encoding="utf-8")):
        if not target or is_external(target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{page.relative_to(ROOT)}: {target}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    return broken


def test_every_relative_link_and_image_exists():
    broken = [problem for page in pages() for problem in broken_links(page)]
    assert not broken, broken


def test_every_image_has_alt_text():
    missing = [
        f"{page.relative_to(ROOT)}: {target}"
        for page in pages()
        for kind, target, alt in links(page.read_text(encoding="utf-8"))
        if kind == "image" and not alt.strip()
    ]
    assert not missing, missing


def test_the_checker_sees_links_images_and_anchors():
    text = '[a](docs/x.md#top) ![b](p.webp) <img src="q.webp" alt="c"> `[no](link)`\n'
    assert links(text) == [
        ("link", "docs/x.md#top", "a"),
        ("image", "p.webp", "b"),
        ("image", "q.webp", "c"),
    ]
    assert links("```\n[no](link)\n```\n") == []
    assert slug("Use it in Blender") == "use-it-in-blender"
    assert slug("A 3D scene from the video (fit_scene)") == "a-3d-scene-from-the-video-fit_scene"
    assert is_external("https://example.com") and not is_external("docs/pool.md")


def test_the_readme_opens_with_a_picture_and_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines"
    first_screen = "\n".join(lines[:FIRST_SCREEN_LINES])
    assert any(kind == "image" for kind, _, _ in links(first_screen))
    assert "bash dev.sh demo" in first_screen and "bash dev.sh test" in first_screen


def test_every_docs_page_says_who_it_is_for():
    """The first paragraph of each page says who it is for ("**For**: artists ...", or a
    sentence with "for" in it)."""
    silent = []
    for page in sorted(DOCS.glob("*.md")):
        paragraphs = [p for p in page.read_text(encoding="utf-8").split("\n\n") if p.strip()]
        opening = next(p for p in paragraphs if not p.lstrip().startswith("#"))
        if re.search(r"\bfor\b", opening, re.IGNORECASE) is None:
            silent.append(page.name)
    assert not silent, silent


def test_the_pictures_fit_their_budgets():
    pictures = DOCS / "pictures"
    sizes = {path.name: path.stat().st_size for path in pictures.iterdir() if path.is_file()}
    assert sizes, "docs/pictures/ is empty: run docs/make_pictures.py"
    assert all(name.endswith((".webp", ".jpg", ".gif")) for name in sizes), sorted(sizes)
    assert sizes.get("flythrough.webp", 0) <= 1_000_000
    assert sum(sizes.values()) <= 3_000_000
