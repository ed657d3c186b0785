"""Every command that a hint, message or doc names exists (issue 25): the project is not on PyPI,
so no `pip install` of its own names (the fix is the clone's dev.sh or `pip install -e` in it);
`bash dev.sh X` names one of dev.sh's commands; `videoscene-backend X` one of the CLI's."""

from __future__ import annotations

import re
from pathlib import Path

from videoscene_backend.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
# The project's own names: none is a published package.
UNPUBLISHED = {"videoscene-blender", "videoscene-backend", "videoscene", "videoscene-protocol"}
# Words that follow the program's name in prose ("videoscene-backend is ..."), not commands.
PROSE_WORDS = {"in", "is", "beside", "on", "was", "not", "from", "to", "and", "or", "with", "for"}
REQUIREMENT_NAME = re.compile(r"^['\"]?([A-Za-z0-9][A-Za-z0-9._-]*)")


def scanned_files() -> list[Path]:
    sources = [
        path
        for folder in ("blender_addon", "backend", "protocol")
        for path in (ROOT / folder).rglob("*.py")
        if not {"_vendor", "wheels", "__pycache__"} & set(path.parts)
    ]
    docs = [ROOT / "README.md", ROOT / "checkpoints" / "README.md", *(ROOT / "docs").glob("*.md")]
    return sources + [path for path in docs if path.is_file()] + [ROOT / "build_addon.py"]


def named_requirements(text: str) -> list[str]:
    """The package names after each `pip install` (flags, paths and `.[extra]` skipped)."""
    names = []
    for match in re.finditer(r"pip install\s+([^\n]*)", text):
        for token in match.group(1).split():
            if token.startswith("("):
                break  # prose after the command: "(or bash dev.sh test)"
            token = token.strip("`)")
            if token.startswith("-") or token.startswith((".", "'.", '".', "/")):
                continue
            found = REQUIREMENT_NAME.match(token)
            if found is None:
                break  # the end of the command (a word like "(or", a closing quote)
            names.append(re.split(r"[\[=<>!~;]", found.group(1))[0].lower())
    return names


def test_no_hint_installs_an_unpublished_package():
    offenders = []
    for path in scanned_files():
        for name in named_requirements(path.read_text(encoding="utf-8")):
            if name.replace("_", "-") in UNPUBLISHED:
                offenders.append(f"{path.relative_to(ROOT)}: pip install {name}")
    assert not offenders, offenders


def test_the_scanner_catches_the_old_hint():
    old = "Check the command (install it with: pip install videoscene-blender[backend])."
    assert "videoscene-blender" in named_requirements(old)
    assert named_requirements("run pip install -e '.[pool]' (or bash dev.sh test)") == []
    assert named_requirements("pip install --quiet bpy==5.0.1") == ["bpy"]


def dev_sh_commands() -> set[str]:
    return set(re.findall(r"(?m)^  ([a-z]+)\)$", (ROOT / "dev.sh").read_text()))


def backend_commands() -> set[str]:
    usage = build_parser().format_usage()
    (choices,) = re.findall(r"\{([a-z,-]+)\}", usage)
    return set(choices.split(","))


def test_named_dev_sh_and_backend_commands_exist():
    assert {"demo", "test"} <= dev_sh_commands()
    assert {"serve", "check", "download", "run"} <= backend_commands()
    offenders = []
    for path in scanned_files():
        text = path.read_text(encoding="utf-8")
        for word in re.findall(r"bash dev\.sh ([a-z]+)", text):
            if word not in dev_sh_commands():
                offenders.append(f"{path.relative_to(ROOT)}: bash dev.sh {word}")
        for word in re.findall(r"videoscene-backend ([a-z][a-z-]+)", text):
            if word not in backend_commands() | PROSE_WORDS:
                offenders.append(f"{path.relative_to(ROOT)}: videoscene-backend {word}")
    assert not offenders, offenders
