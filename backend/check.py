"""`videoscene-backend check [--checkpoints DIR]`: every installed weights file verified without a
GPU, printed as a table (what is present, what it is, what is missing and where to get it);
exit 0 when the video model's files are complete and nothing installed is broken, else 1.
The service answers a `check_weights` request with the same report."""

from __future__ import annotations

import argparse
from pathlib import Path

from .paths import checkpoints_dir
from .weights.report import WeightsReport


def check_weights(root: Path) -> WeightsReport:
    from .priors.noposplat.checkpoint import inspect_checkpoint
    from .video.inventory import inspect_video_install

    root = Path(root)
    return WeightsReport(str(root), [*inspect_video_install(root), inspect_checkpoint(root)])


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="verify the installed weights (no GPU needed) and say what is missing"
    )
    parser.add_argument("--checkpoints", type=Path, default=None, help="default: checkpoints/")
    parser.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    report = check_weights(args.checkpoints or checkpoints_dir())
    print(report.format_table())
    return 0 if report.ok else 1
