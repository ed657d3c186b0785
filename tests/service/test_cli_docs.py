"""docs/protocol.md's command-line table names every flag the CLI has, and no other."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from videoscene_backend.cli import build_parser
from videoscene_backend.param_flags import flag_name
from videoscene_protocol.params import BUILD_SCENE, FIT_SCENE, RENDER_VIDEO

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def documented_rows() -> dict[str, str]:
    section = DOC.read_text().split("## Command line", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z]+)` \| (.*) \|$", section, flags=re.MULTILINE))


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_command_and_flag_is_documented() -> None:
    rows, commands = documented_rows(), cli_commands()
    assert sorted(rows) == sorted(commands)
    param_flags = {
        flag_name(p) for spec in (BUILD_SCENE, RENDER_VIDEO, FIT_SCENE) for p in spec.params
    }
    for name, command in commands.items():
        for action in command._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help") or (name == "run" and flag in param_flags):
                    continue  # run's param flags are documented by rule, from the spec
                if flag.startswith("--no-") and name == "run":
                    continue
                assert f"`{flag}" in rows[name], f"{name} {flag} is not in docs/protocol.md"
            if not action.option_strings and action.dest not in ("help",):
                assert action.dest.upper() in rows[name], f"{name} {action.dest} undocumented"
    documented_flags = set(re.findall(r"`(--[a-z-]+)", " ".join(rows.values())))
    real = {f for c in commands.values() for a in c._actions for f in a.option_strings}
    assert documented_flags <= real, documented_flags - real


def test_the_budgets_table_is_the_declared_one() -> None:
    from videoscene_backend.service.budgets import markdown_table

    section = DOC.read_text().split("<!-- budgets:begin -->\n", 1)[1].split("\n<!-- budgets:end")[0]
    assert section == markdown_table()
