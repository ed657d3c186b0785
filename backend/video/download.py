"""`videoscene-backend download`: fetch the hub-hosted weights into the checkpoints folder."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from ..paths import checkpoints_dir
from ..priors.noposplat.checkpoint import CHECKPOINT_DIR as NOPOSPLAT_DIR
from ..priors.noposplat.checkpoint import CHECKPOINT_NAME as NOPOSPLAT_FILE
from ..priors.noposplat.checkpoint import CHECKPOINT_REPO as NOPOSPLAT_REPO
from .checkpoints import BASE_DIR, BASE_REPO, VIDEOSCENE_DIR, VIDEOSCENE_REPO


@dataclass(frozen=True)
class DownloadItem:
    name: str
    repo_id: str
    folder: str  # below the checkpoints folder
    allow_patterns: tuple[str, ...]  # only what inference reads (no T5 text encoder)


ITEMS: dict[str, DownloadItem] = {
    "base": DownloadItem(
        "CogvideoX-Interpolation base model (vae, transformer, scheduler; about 11 GB)",
        BASE_REPO,
        BASE_DIR,
        ("vae/*", "transformer/*", "scheduler/*", "model_index.json"),
    ),
    "videoscene": DownloadItem(
        "VideoScene distilled transformer + prompt embeddings (about 11 GB)",
        VIDEOSCENE_REPO,
        VIDEOSCENE_DIR,
        (
            "model.safetensors",
            "prompt_embeds.pt",
            "checkpoints/model.safetensors",
            "checkpoints/prompt_embeds.pt",
        ),
    ),
    "noposplat": DownloadItem(
        "NoPoSplat prior checkpoint (about 2.3 GB)",
        NOPOSPLAT_REPO,
        NOPOSPLAT_DIR,
        (NOPOSPLAT_FILE,),
    ),
}
# "videoscene" needs its base model too.
GROUPS = {"base": ["base"], "videoscene": ["base", "videoscene"], "noposplat": ["noposplat"]}
GROUPS["all"] = ["base", "videoscene", "noposplat"]


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download(what: str, root: Path) -> list[Path]:
    """Download the named group into root; return the folders written. Raises RuntimeError with
    a plain message when offline or when the hub cannot be reached."""
    if offline_mode():
        raise RuntimeError(
            "HF_HUB_OFFLINE is set, so nothing was downloaded. Unset it, or copy the files by hand "
            f"into {root} as checkpoints/README.md describes."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    written = []
    for key in GROUPS[what]:
        item = ITEMS[key]
        target = root / item.folder
        print(f"Downloading {item.name} from {item.repo_id} into {target} ...", flush=True)
        try:
            snapshot_download(
                item.repo_id, local_dir=target, allow_patterns=list(item.allow_patterns)
            )
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise RuntimeError(
                f"Could not download {item.repo_id}: {exc}. Check the network connection and the "
                "Hugging Face token (huggingface-cli login) if the repository is gated."
            ) from exc
        _flatten_nested_checkpoint(target)
        written.append(target)
    return written


def _flatten_nested_checkpoint(target: Path) -> None:
    """VideoScene's repository may keep its files under checkpoints/; the loader wants them flat."""
    nested = target / "checkpoints"
    if not nested.is_dir():
        return
    for path in nested.iterdir():
        destination = target / path.name
        if not destination.exists():
            path.rename(destination)


def register_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("download", help="download model weights into checkpoints/")
    parser.add_argument("--what", choices=sorted(GROUPS), default="videoscene")
    parser.add_argument("--checkpoints", type=Path, default=None, help="default: checkpoints/")
    parser.set_defaults(func=_download)


def _download(args: argparse.Namespace) -> int:
    root = args.checkpoints or checkpoints_dir()
    try:
        folders = download(args.what, root)
    except RuntimeError as exc:
        print(f"error: {exc}")
        return 1
    print("Done: " + ", ".join(str(folder) for folder in folders))
    return 0
