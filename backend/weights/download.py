"""`videoscene-backend download`: fetch what the Hugging Face hub hosts, and say exactly what to
fetch by hand for the rest (VideoScene's own files are published on wisemodel).

The command succeeds (exit 0) only when every file of the requested group is in place
afterwards; `videoscene-backend check` then verifies their contents.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..paths import checkpoints_dir
from .sources import GROUPS, SOURCES, Source


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


@dataclass
class DownloadOutcome:
    fetched: list[Path] = field(default_factory=list)  # folders written by the hub client
    failed: list[str] = field(default_factory=list)  # why a hub fetch did not happen
    by_hand: list[str] = field(default_factory=list)  # instructions for files still missing

    @property
    def complete(self) -> bool:
        return not (self.failed or self.by_hand)


def manual_instructions(source: Source, root: Path) -> list[str]:
    """One line per file of `source` that is not in place yet: what to fetch, where to put it."""
    return [
        f"{item.published_as} from {source.url} ({source.repo} on {source.host}) -> "
        f"{root / item.destination}"
        for item in source.manual
        if not (root / item.destination).is_file()
    ]


def _fetch_from_hub(source: Source, root: Path) -> Path:
    """snapshot_download of the source's patterns into its folder. Raises RuntimeError."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    target = root / source.folder
    print(f"Downloading {source.title} from {source.repo} into {target} ...", flush=True)
    try:
        snapshot_download(source.repo, local_dir=target, allow_patterns=list(source.hub_patterns))
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise RuntimeError(
            f"Could not download {source.repo}: {exc}. Check the network connection and the "
            "Hugging Face token (`hf auth login`) if the repository is gated."
        ) from exc
    return target


def download(what: str, root: Path) -> DownloadOutcome:
    """Fetch the hub-hosted sources of group `what` into root (nothing when HF_HUB_OFFLINE is
    set) and list the by-hand steps still needed."""
    outcome = DownloadOutcome()
    for name in GROUPS[what]:
        source = SOURCES[name]
        if source.hub_patterns:
            if offline_mode():
                outcome.failed.append(
                    f"{source.repo}: HF_HUB_OFFLINE is set, so nothing was downloaded (unset it, "
                    f"or copy the files by hand into {root / source.folder})"
                )
                continue
            try:
                outcome.fetched.append(_fetch_from_hub(source, root))
            except RuntimeError as exc:
                outcome.failed.append(str(exc))
        outcome.by_hand += manual_instructions(source, root)
    return outcome


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download", help="download model weights into checkpoints/ (or say where to get them)"
    )
    parser.add_argument("--what", choices=sorted(GROUPS), default="videoscene")
    parser.add_argument("--checkpoints", type=Path, default=None, help="default: checkpoints/")
    parser.set_defaults(func=_download)


def _download(args: argparse.Namespace) -> int:
    root = args.checkpoints or checkpoints_dir()
    outcome = download(args.what, root)
    for folder in outcome.fetched:
        print(f"Done: {folder}")
    for reason in outcome.failed:
        print(f"error: {reason}")
    if outcome.by_hand:
        print(
            "These files are not on the Hugging Face hub, so the hub client cannot fetch them. "
            "Download each by hand and put it where the arrow points:"
        )
        for line in outcome.by_hand:
            print(f"  {line}")
    print(f"Then run `videoscene-backend check --checkpoints {root}` to verify every file.")
    return 0 if outcome.complete else 1
