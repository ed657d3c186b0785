"""`videoscene-backend run`: the main job end to end without Blender (filled in by the scene issue)."""

from __future__ import annotations

import argparse


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="two photos -> frames, PLY and mp4 (headless)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise SystemExit("videoscene-backend run: not implemented yet")
