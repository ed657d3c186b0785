"""`videoscene-backend check [--checkpoints DIR] [--json]`: every installed weights file verified
without a GPU, printed as a table (what is present, what it is, what is missing and where to get
it); exit 0 when the video model's files are complete and nothing installed is broken, else 1.
The service answers a `check_weights` request with the same report.

`check --gpu [--json] [--output-dir DIR]`: this machine's GPU measured at the real size with
random weights, before any download (diagnostics/gpu_check.py, docs/gpu-check.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .paths import checkpoints_dir, default_output_dir
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
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="measure this GPU at the real size with random weights, no download needed: each "
        "memory mode's peak memory and seconds for one window, the mode to use, the prior, "
        "renders and fit steps (docs/gpu-check.md); exit 1 when the video model cannot run here",
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the report as one JSON line (the last)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="--gpu saves its report as OUTPUT/checks/gpu-check-<time>.json (default: the "
        "backend's output folder)",
    )
    parser.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    checkpoints = args.checkpoints or checkpoints_dir()
    if args.gpu:
        from .diagnostics.gpu_check import main as check_gpu

        return check_gpu(checkpoints, args.output_dir or default_output_dir(), args.json)
    report = check_weights(checkpoints)
    print(report.format_table())
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0 if report.ok else 1
