"""`videoscene-backend download`: fetch hub-hosted weights (filled in by the video-model issue)."""

from __future__ import annotations

import argparse


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("download", help="download model weights into checkpoints/")
    parser.set_defaults(func=_download)


def _download(args: argparse.Namespace) -> int:
    raise SystemExit("videoscene-backend download: not implemented yet")
