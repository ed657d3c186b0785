"""Where every weights file lives under the checkpoints folder and where it is published,
declared once. `download`, `check`, the loaders' hints and checkpoints/README.md follow it.

As the seed publishes them (its README): the CogvideoX-Interpolation base model and NoPoSplat on
the Hugging Face hub, VideoScene's own two files on wisemodel (not reachable by the hub client).
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- layout under the checkpoints folder ---------------------------------------------------
BASE_DIR = "cogvideox-interpolation"
VIDEOSCENE_DIR = "videoscene"
NOPOSPLAT_DIR = "noposplat"

DISTILLED_WEIGHTS = f"{VIDEOSCENE_DIR}/model.safetensors"
PROMPT_EMBEDS = (
    f"{VIDEOSCENE_DIR}/prompt_embeds.pt",
    f"{VIDEOSCENE_DIR}/prompt_embeds.safetensors",
)
# The T5 encoding of the empty prompt: the base sampler's negative for classifier-free guidance.
# Nobody publishes it; checkpoints/README.md shows how to make it from the base model's T5.
NEGATIVE_PROMPT_EMBEDS = (
    f"{VIDEOSCENE_DIR}/negative_prompt_embeds.pt",
    f"{VIDEOSCENE_DIR}/negative_prompt_embeds.safetensors",
)
NOPOSPLAT_FILE = "mixRe10kDl3dv_512x512.ckpt"
NOPOSPLAT_CHECKPOINT = f"{NOPOSPLAT_DIR}/{NOPOSPLAT_FILE}"

HF_HUB = "the Hugging Face hub"
WISEMODEL = "wisemodel"


@dataclass(frozen=True)
class ManualFile:
    """A file the hub client cannot fetch: its name as published and where it goes."""

    published_as: str
    destination: str  # relative to the checkpoints folder


@dataclass(frozen=True)
class Source:
    name: str  # the `download --what` name
    title: str
    host: str
    repo: str
    url: str
    folder: str  # below the checkpoints folder
    hub_patterns: tuple[str, ...] = ()  # what `download` fetches with huggingface_hub
    manual: tuple[ManualFile, ...] = ()  # what the user fetches by hand

    def describe(self) -> str:
        """One line for hints and the check table: host, repository and how to get it."""
        if self.hub_patterns:
            return f"{self.repo} on {self.host} (`videoscene-backend download --what {self.name}`)"
        return f"{self.repo} on {self.host}, by hand from {self.url}"

    def manual_for(self, destination: str) -> ManualFile | None:
        return next((item for item in self.manual if item.destination == destination), None)


SOURCES: dict[str, Source] = {
    "base": Source(
        "base",
        "CogvideoX-Interpolation base model (vae, transformer, scheduler; about 11 GB)",
        HF_HUB,
        "feizhengcong/CogvideoX-Interpolation",
        "https://huggingface.co/feizhengcong/CogvideoX-Interpolation",
        BASE_DIR,
        # Only what inference reads: the T5 text encoder is not needed (prompt embeds are files).
        hub_patterns=("vae/*", "transformer/*", "scheduler/*", "model_index.json"),
    ),
    "videoscene": Source(
        "videoscene",
        "VideoScene distilled transformer and prompt embeddings",
        WISEMODEL,
        "hanyang/VideoScene",
        "https://wisemodel.cn/models/hanyang/VideoScene/file",
        VIDEOSCENE_DIR,
        manual=(
            ManualFile("VideoScene/checkpoints/model.safetensors", DISTILLED_WEIGHTS),
            ManualFile("VideoScene/checkpoints/prompt_embeds.pt", PROMPT_EMBEDS[0]),
        ),
    ),
    "noposplat": Source(
        "noposplat",
        "NoPoSplat prior checkpoint (about 2.3 GB)",
        HF_HUB,
        "botaoye/NoPoSplat",
        "https://huggingface.co/botaoye/NoPoSplat",
        NOPOSPLAT_DIR,
        hub_patterns=(NOPOSPLAT_FILE,),
    ),
}
# `download --what NAME` fetches these sources ("videoscene" needs its base model too).
GROUPS: dict[str, tuple[str, ...]] = {
    "base": ("base",),
    "videoscene": ("base", "videoscene"),
    "noposplat": ("noposplat",),
    "all": ("base", "videoscene", "noposplat"),
}

NEGATIVE_EMBEDS_RECIPE = (
    "not published; make it by encoding the empty prompt with the base model's T5 "
    "(text_encoder/ and tokenizer/ of feizhengcong/CogvideoX-Interpolation), as "
    "checkpoints/README.md shows"
)


def source_of(relative_path: str) -> str:
    """Where the file at `relative_path` (below the checkpoints folder) comes from, in words."""
    if relative_path in NEGATIVE_PROMPT_EMBEDS:
        return NEGATIVE_EMBEDS_RECIPE
    for source in SOURCES.values():
        if relative_path.startswith(f"{source.folder}/"):
            manual = source.manual_for(relative_path)
            if manual is None and relative_path in PROMPT_EMBEDS:
                manual = source.manual_for(PROMPT_EMBEDS[0])
            if manual is not None:
                return f"{manual.published_as} in {source.repo} on {source.host}, by hand from {source.url}"
            return source.describe()
    return "see checkpoints/README.md"
