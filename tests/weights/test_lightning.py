"""The safe Lightning checkpoint reader: genuine checkpoints with omegaconf/Lightning objects
load, hostile pickles run nothing. The files are written by torch.save, as Lightning does."""

from __future__ import annotations

import os
import pathlib
import sys
import types
from collections import OrderedDict

import pytest
import torch
from videoscene_backend.weights.lightning import StandIn, read_lightning_checkpoint

FOREIGN_PACKAGES = ("omegaconf", "lightning_fabric")


def _foreign_class(monkeypatch, module: str, name: str, bases: tuple = (), **body) -> type:
    """A class that pickles as `module.name`, importable only while the test writes the file
    (the reader's machine has neither omegaconf nor Lightning)."""
    cls = type(name, bases, {**body, "__module__": module, "__qualname__": name})
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        monkeypatch.setitem(sys.modules, prefix, types.ModuleType(prefix))
    setattr(sys.modules[module], name, cls)
    return cls


def _restore_state(self, state: dict) -> None:
    self.__dict__.update(state)


@pytest.fixture()
def lightning_checkpoint(tmp_path, monkeypatch) -> tuple[pathlib.Path, OrderedDict]:
    # Like omegaconf's DictConfig (restored through __setstate__ with nested metadata) and
    # Lightning's AttributeDict (a dict subclass, pickled with SETITEMS).
    dict_config = _foreign_class(
        monkeypatch, "omegaconf.dictconfig", "DictConfig", __setstate__=_restore_state
    )
    attribute_dict = _foreign_class(
        monkeypatch, "lightning_fabric.utilities.data", "AttributeDict", (dict,)
    )
    config = dict_config()
    config.__dict__.update(
        _content={"model": {"encoder": {"name": "noposplat"}}, "lr": 1e-4},
        _metadata={"ref_type": "typing.Any", "flags": {"struct": True}},
    )
    state = OrderedDict(
        [("encoder.a.weight", torch.randn(3, 4)), ("encoder.a.bias", torch.arange(3.0))]
    )
    path = tmp_path / "model.ckpt"
    torch.save(
        {
            "epoch": 3,
            "global_step": 1000,
            "pytorch-lightning_version": "2.1.0",
            "state_dict": state,
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 4}}}},
            "callbacks": {"ModelCheckpoint{'monitor': None}": {"kth_value": torch.tensor(1e9)}},
            "hyper_parameters": attribute_dict(
                cfg=config, output_dir=pathlib.PurePosixPath("/outputs/run")
            ),
            "hparams_name": "kwargs",
        },
        path,
    )
    monkeypatch.undo()  # the classes' packages are gone again, as on a user's machine
    return path, state


def test_a_checkpoint_with_omegaconf_and_lightning_objects_loads(lightning_checkpoint) -> None:
    path, state = lightning_checkpoint
    with pytest.raises(Exception, match="Unsupported global|weights_only"):
        torch.load(path, weights_only=True)  # what refused the seed's checkpoint before
    checkpoint = read_lightning_checkpoint(path)
    assert set(checkpoint.state_dict) == set(state)
    for key, value in state.items():
        assert torch.equal(checkpoint.state_dict[key], value)
    assert "hyper_parameters" in checkpoint.entries and "loops" in checkpoint.entries
    assert checkpoint.stand_ins == [
        "lightning_fabric.utilities.data.AttributeDict",
        "omegaconf.dictconfig.DictConfig",
        "pathlib.PurePosixPath",
    ]
    assert not any(name.split(".")[0] in FOREIGN_PACKAGES for name in sys.modules)


@pytest.mark.skipif(not pathlib.Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_tensors_are_mapped_from_the_file_not_copied(lightning_checkpoint) -> None:
    path, _ = lightning_checkpoint

    def mapped() -> bool:
        return str(path.resolve()) in pathlib.Path("/proc/self/maps").read_text()

    copied = read_lightning_checkpoint(path, mmap=False)
    assert not mapped()
    checkpoint = read_lightning_checkpoint(path, mmap=True)
    assert mapped()  # the 2.3 GB release stays in the file's pages
    del copied, checkpoint


class _CallsOsSystem:
    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _TouchesAFile:
    """A callable from a module that is not on any list: only the stand-in stops it."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_a_pickle_that_calls_os_system_runs_nothing_and_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.ckpt"
    torch.save(
        {"state_dict": {"a": torch.zeros(2)}, "hyper_parameters": _CallsOsSystem(marker)}, path
    )
    with pytest.raises(ValueError) as caught:
        read_lightning_checkpoint(path)
    assert f"{os.system.__module__}.system" in str(caught.value)
    assert "not a genuine checkpoint" in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4])
def test_any_other_callable_in_the_pickle_stays_inert(tmp_path, protocol: int) -> None:
    marker = tmp_path / "touched"
    path = tmp_path / "sneaky.ckpt"
    torch.save(
        {"state_dict": {"a": torch.ones(2)}, "hyper_parameters": {"x": _TouchesAFile(marker)}},
        path,
        pickle_protocol=protocol,
    )
    checkpoint = read_lightning_checkpoint(path)
    assert not marker.exists()
    assert torch.equal(checkpoint.state_dict["a"], torch.ones(2))
    assert any(name.startswith("pathlib.") for name in checkpoint.stand_ins)


def test_non_tensor_entries_in_the_state_dict_are_refused(tmp_path) -> None:
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(1), "b": pathlib.PurePosixPath("/x")}}, path)
    with pytest.raises(ValueError, match=r"not tensors: 'b' \(PurePosixPath\)"):
        read_lightning_checkpoint(path)


def test_files_that_are_not_checkpoints_are_named(tmp_path) -> None:
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(ValueError, match="not a torch checkpoint"):
        read_lightning_checkpoint(garbage)
    a_list = tmp_path / "list.ckpt"
    torch.save([1, 2], a_list)
    with pytest.raises(ValueError, match="holds a list"):
        read_lightning_checkpoint(a_list)
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"a": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-600])
    with pytest.raises(ValueError):
        read_lightning_checkpoint(truncated)


def test_stand_ins_absorb_what_pickle_does_to_objects() -> None:
    cls = type("Thing", (StandIn,), {"stands_for": "pkg.Thing"})
    thing = cls(1, key=2)
    thing.__setstate__({"a": 1})
    thing["k"] = "v"
    thing.append(3)
    called = thing("x")
    assert thing.args == (1,) and thing.state == {"a": 1} and thing.items == [3]
    assert isinstance(called, StandIn) and called.args == ("x",)
    assert repr(thing) == "<stand-in for pkg.Thing>" and hash(thing) == hash(thing)
