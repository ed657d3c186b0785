"""Comparing a weights file's keys and shapes with a model's, before any tensor is read.

Two policies:
- exact (NoPoSplat): every key present, none unexpected, every shape right;
- subset over base weights (VideoScene's model.safetensors, as the seed's strict=False load):
  a `module.` / `transformer.` prefix from distributed training is stripped, the file may hold
  any subset of the model's keys (the rest keep the base weights), and the result says exactly
  which groups were replaced. Unexpected keys, wrong shapes and files without a single model
  key are still refused by name.
Problems are raised as WeightsMismatch (a ValueError with a plain message); each loader turns it
into a VideoSceneError with its own hint, and `check` shows it in its table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

STRIPPABLE_PREFIXES = ("module.", "transformer.")
SHOW = 5  # keys named per kind of problem
MAX_GROUPS_SHOWN = 12
_LIST_INDEX = re.compile(r"(^|\.)(\w*(?:blocks|layers))\.\d+\.")

Shape = tuple[int, ...]


class WeightsMismatch(ValueError):
    """A weights file that does not fit its model, or cannot be read; the message says how."""


@dataclass(frozen=True)
class TensorHeader:
    shape: Shape
    dtype: str  # safetensors' name: "BF16", "F16", "F32", ...


def read_safetensors_header(path: Path) -> dict[str, TensorHeader]:
    """Key -> shape and dtype from a safetensors header, without reading any tensor data."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {
                key: TensorHeader(
                    tuple(handle.get_slice(key).get_shape()), handle.get_slice(key).get_dtype()
                )
                for key in handle.keys()
            }
    except Exception as exc:  # truncated file, bad header JSON, not safetensors at all
        raise WeightsMismatch(f"{path} is not a readable safetensors file: {exc}") from exc


FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


def non_float_keys(header: Mapping[str, TensorHeader], show: int = SHOW) -> list[str]:
    """Up to `show` keys whose dtype is not floating point, each with its dtype."""
    bad = sorted(key for key, entry in header.items() if entry.dtype not in FLOAT_DTYPES)
    return [f"{key} ({header[key].dtype})" for key in bad[:show]]


def dtype_names(header: Mapping[str, TensorHeader]) -> str:
    """ "bf16" or "bf16, f32": the dtypes a file holds, for reports."""
    return ", ".join(sorted({entry.dtype.lower() for entry in header.values()})) or "no tensors"


def read_sharded_header(folder: Path, stem: str) -> tuple[dict[str, TensorHeader], list[Path]]:
    """The headers of diffusers' weights in `folder`: `{stem}.safetensors`, or the shards its
    `{stem}.safetensors.index.json` names. Returns (headers, files read)."""
    single = folder / f"{stem}.safetensors"
    index = folder / f"{stem}.safetensors.index.json"
    if single.is_file():
        return read_safetensors_header(single), [single]
    if not index.is_file():
        raise WeightsMismatch(f"{single.name} (or {index.name} with its shards) is missing")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsMismatch(f"{index} is not a readable shard index: {exc}") from exc
    headers: dict[str, TensorHeader] = {}
    files = []
    for shard in shards:
        # A shard name from the file is hostile until checked: a plain name in this folder only.
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise WeightsMismatch(f"{index} names a shard outside its folder: {shard!r}")
        path = folder / shard
        if not path.is_file():
            raise WeightsMismatch(f"shard {shard} named by {index.name} is missing")
        headers.update(read_safetensors_header(path))
        files.append(path)
    return headers, files


def exact_problems(
    expected: Mapping[str, Shape], found: Mapping[str, Shape], show: int = SHOW
) -> list[str]:
    """Human-readable key and shape disagreements (empty when they match exactly)."""
    missing = sorted(set(expected) - set(found))
    problems = _unexpected_and_wrong(expected, found, show)
    if missing:
        problems.insert(0, f"{len(missing)} missing keys (e.g. {', '.join(missing[:show])})")
    return problems


def _unexpected_and_wrong(
    expected: Mapping[str, Shape], found: Mapping[str, Shape], show: int
) -> list[str]:
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    problems = []
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:show])})")
    if wrong:
        details = ", ".join(
            f"{k}: {tuple(found[k])} instead of {tuple(expected[k])}" for k in wrong[:show]
        )
        problems.append(f"{len(wrong)} keys with wrong shapes ({details})")
    return problems


def module_group(key: str) -> str:
    """`transformer_blocks.7.attn1.to_q.weight` -> `transformer_blocks.*.attn1.to_q`: the
    module a tensor belongs to, with the repeated block's index folded."""
    module = key.rsplit(".", 1)[0] if "." in key else key
    return _LIST_INDEX.sub(lambda m: f"{m.group(1)}{m.group(2)}.*.", module + ".").rstrip(".")


@dataclass(frozen=True)
class GroupCount:
    name: str
    replaced: int
    total: int

    def describe(self, count: int) -> str:
        """The group's name, with `count` of its tensors when that is not all of them."""
        return (
            self.name if count == self.total else f"{self.name} ({count} of {self.total} tensors)"
        )


def _listed(names: list[str]) -> str:
    shown = names[:MAX_GROUPS_SHOWN]
    if len(names) > MAX_GROUPS_SHOWN:
        shown.append(f"and {len(names) - MAX_GROUPS_SHOWN} more groups")
    return ", ".join(shown)


@dataclass
class SubsetMatch:
    """How a file's tensors map onto a model's: what loading it replaces, said plainly."""

    mapping: dict[str, str]  # key in the file -> key in the model
    total: int  # tensors the model has
    prefix: str = ""  # stripped from every key ("" when none)
    groups: list[GroupCount] = field(default_factory=list)  # every module group, model order

    @property
    def replaced(self) -> int:
        return len(self.mapping)

    @property
    def complete(self) -> bool:
        return self.replaced == self.total

    def groups_replaced(self) -> list[str]:
        return [g.describe(g.replaced) for g in self.groups if g.replaced]

    def groups_kept(self) -> list[str]:
        """Groups that keep (some of) the base weights, with how many tensors they keep."""
        return [g.describe(g.total - g.replaced) for g in self.groups if g.replaced < g.total]

    def summary(self) -> str:
        if self.complete:
            text = f"all {self.total:,} tensors of the model replaced"
        else:
            text = f"{self.replaced:,} of {self.total:,} tensors replaced"
            replaced, kept = self.groups_replaced(), self.groups_kept()
            if len(replaced) <= len(kept):
                text += (
                    f" ({_listed(replaced)}); the other {self.total - self.replaced:,} keep "
                    "the base model's weights"
                )
            else:
                text += f"; the base model's weights stay in {_listed(kept)}"
        if self.prefix:
            text += f" (key prefix {self.prefix!r} stripped)"
        return text

    def to_meta(self) -> dict:
        return {
            "tensors_replaced": self.replaced,
            "tensors_total": self.total,
            "complete": self.complete,
            "prefix_stripped": self.prefix,
            "groups_replaced": self.groups_replaced(),
            "groups_kept": self.groups_kept(),
            "summary": self.summary(),
        }


def match_subset(
    expected: Mapping[str, Shape],
    found: Mapping[str, Shape],
    prefixes: tuple[str, ...] = STRIPPABLE_PREFIXES,
    show: int = SHOW,
) -> SubsetMatch:
    """Map a file's keys onto a model's, accepting any non-empty subset; raise WeightsMismatch
    naming unexpected keys and wrong shapes, or saying that the file holds no model key."""
    if not found:
        raise WeightsMismatch("it holds no tensors at all")
    keys = {key: key for key in found}  # model key -> file key
    stripped = ""
    # Strip a prefix only when every key carries it (no model key starts with one of these).
    while not set(keys) <= set(expected):
        prefix = next((p for p in prefixes if all(k.startswith(p) for k in keys)), None)
        if prefix is None:
            break
        keys = {key[len(prefix) :]: original for key, original in keys.items()}
        stripped += prefix
    shapes = {key: tuple(found[original]) for key, original in keys.items()}
    if not set(shapes) & set(expected):
        raise WeightsMismatch(
            f"none of its {len(shapes):,} keys is a key of the model "
            f"(e.g. {', '.join(sorted(shapes)[:show])})"
        )
    problems = _unexpected_and_wrong(expected, shapes, show)
    if problems:
        raise WeightsMismatch("; ".join(problems))
    groups: dict[str, list[int]] = {}
    for key in expected:  # model order, so the report reads like the model
        counts = groups.setdefault(module_group(key), [0, 0])
        counts[1] += 1
        counts[0] += key in shapes
    return SubsetMatch(
        mapping={original: key for key, original in keys.items()},
        total=len(expected),
        prefix=stripped,
        groups=[GroupCount(name, done, total) for name, (done, total) in groups.items()],
    )
