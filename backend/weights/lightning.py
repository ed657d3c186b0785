"""Reading the tensors of a PyTorch Lightning checkpoint without running anything in it.

A Lightning .ckpt is a torch zip archive whose pickle holds, beside `state_dict`, training state
(`loops`, `callbacks`, `optimizer_states`, `hyper_parameters`, ...) that often pickles omegaconf
or Lightning objects. `torch.load(weights_only=True)` refuses those, so a genuine checkpoint
may never load; a plain `torch.load` would import and call whatever the pickle names.

Here torch.load keeps its own zip, storage and mmap machinery, but its unpickler finds classes
through `_RestrictedUnpickler.find_class`: the few torch functions that rebuild tensors,
OrderedDict and torch dtypes are real; every other global becomes an inert `StandIn` that
records its arguments and state and runs nothing. No module named by the file is imported.
Python's pickle reaches code only through find_class and persistent_load (torch's, which only
maps storages), so nothing in the file executes.

Why not torch's own allowlist (`torch.serialization.safe_globals`, which can map a name to a
placeholder)? Its unpickler applies SETITEMS/APPENDS only to exact dicts and lists, so a
placeholder for a dict-like container such as Lightning's AttributeDict cannot be filled.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import types
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

# Names a weights file has no reason to contain: they exist to run programs or reach the
# system. They are never imported or called here either; naming them marks a tampered file.
_SYSTEM_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "shutil",
        "socket",
        "importlib",
        "runpy",
        "pty",
        "ctypes",
        "multiprocessing",
        "code",
        "pickle",
        "marshal",
        "webbrowser",
    }
)
_SYSTEM_BUILTINS = frozenset(
    {"eval", "exec", "compile", "open", "__import__", "breakpoint", "input", "exit", "quit"}
)


class StandIn(dict):
    """An inert placeholder for a class or function named by a checkpoint's pickle.

    A dict subclass so pickle's SETITEMS (dict-like containers such as Lightning's
    AttributeDict) works on it; append/extend absorb list-like containers. Creating, calling
    and restoring it only stores what it was given."""

    stands_for = "?"
    __hash__ = object.__hash__  # usable as a dict key like the object it replaces

    def __init__(self, *args, **kwargs) -> None:  # recorded only; dict.__init__ is not called
        self.args, self.kwargs = args, kwargs

    def __call__(self, *args, **kwargs) -> StandIn:
        # e.g. getattr(Class, "method")(...) in a protocol-2 pickle: the result is inert too
        return type(self)(*args, **kwargs)

    def __setstate__(self, state) -> None:
        self.state = state

    def append(self, item) -> None:
        self.__dict__.setdefault("items", []).append(item)

    def extend(self, items) -> None:
        self.__dict__.setdefault("items", []).extend(items)

    def __repr__(self) -> str:
        return f"<stand-in for {self.stands_for}>"


def _allowed_globals() -> dict[tuple[str, str], object]:
    import torch._utils as torch_utils

    allowed: dict[tuple[str, str], object] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch", "Size"): torch.Size,
        ("torch", "UntypedStorage"): torch.UntypedStorage,
    }
    for name in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
    ):
        allowed[("torch._utils", name)] = getattr(torch_utils, name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """find_class returns real objects only for tensor rebuilding; StandIns for the rest.
    Each read subclasses it with its own `stand_ins` record (see _restricted_pickle_module)."""

    stand_ins: dict[str, type[StandIn]]
    allowed: dict[tuple[str, str], object]

    def find_class(self, module: str, name: str):
        # Protocol-2 pickles (torch.save's default) spell Python 3 names the Python 2 way
        # ("__builtin__"); map them as pickle's own find_class does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        real = self.allowed.get((module, name))
        if real is not None:
            return real
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        full_name = f"{module}.{name}"
        if full_name not in self.stand_ins:
            self.stand_ins[full_name] = type(
                name.rsplit(".", 1)[-1] or "StandIn", (StandIn,), {"stands_for": full_name}
            )
        return self.stand_ins[full_name]


def _refuse_legacy_format(*_args, **_kwargs):
    raise pickle.UnpicklingError("only the zip checkpoint format is read")


def _restricted_pickle_module(stand_ins: dict[str, type[StandIn]]) -> types.ModuleType:
    """What torch.load takes as `pickle_module`: pickle with the restricted Unpickler, which
    records the globals it stood in for into `stand_ins` (one dict per read: thread-safe)."""
    module = types.ModuleType("videoscene_restricted_pickle")
    module.Unpickler = type(
        "Unpickler",
        (_RestrictedUnpickler,),
        {"stand_ins": stand_ins, "allowed": _allowed_globals()},
    )
    module.load = _refuse_legacy_format  # torch calls load() only for the pre-zip format
    return module


@dataclass
class LightningCheckpoint:
    state_dict: dict[str, torch.Tensor]
    entries: list[str]  # the checkpoint's top-level keys (state_dict, epoch, loops, ...)
    stand_ins: list[str]  # globals replaced by inert stand-ins, sorted


def is_system_name(full_name: str) -> bool:
    module, _, name = full_name.rpartition(".")
    root = module.split(".", 1)[0]
    return root in _SYSTEM_MODULES or (module == "builtins" and name in _SYSTEM_BUILTINS)


def read_lightning_checkpoint(path: Path, mmap: bool = True) -> LightningCheckpoint:
    """The tensors of a checkpoint's `state_dict` (or of the file itself when it is a bare
    state dict). mmap: the tensors stay in the file's pages, nothing is copied up front.
    Raises ValueError with a plain message for anything that is not such a checkpoint."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a torch checkpoint (a zip archive written by torch.save)")
    seen: dict[str, type[StandIn]] = {}
    failure: Exception | None = None
    try:
        checkpoint = torch.load(
            str(path),
            map_location="cpu",
            weights_only=False,  # our pickle_module decides what may be loaded, see above
            pickle_module=_restricted_pickle_module(seen),
            mmap=mmap,
        )
    except Exception as exc:  # truncated archive, bad records, tensors built from stand-ins
        failure = exc
    stand_ins = sorted(seen)
    system = [name for name in stand_ins if is_system_name(name)]
    if system:
        raise ValueError(
            f"{path} names {', '.join(system)}, which a weights file has no use for (nothing was "
            "imported or called): it is not a genuine checkpoint"
        ) from failure
    if failure is not None:
        raise ValueError(f"cannot read {path}: {type(failure).__name__}: {failure}") from failure
    if not isinstance(checkpoint, dict) or isinstance(checkpoint, StandIn):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict) or isinstance(state, StandIn):
        raise ValueError(f"{path} holds no state_dict")
    not_tensors = [
        f"{key!r} ({type(value).__name__})"
        for key, value in state.items()
        if not isinstance(key, str) or not isinstance(value, torch.Tensor)
    ]
    if not_tensors:
        raise ValueError(
            f"the state_dict in {path} holds entries that are not tensors: "
            + ", ".join(not_tensors[:5])
        )
    return LightningCheckpoint(dict(state), [str(key) for key in checkpoint], stand_ins)
