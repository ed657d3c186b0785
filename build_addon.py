"""Build the installable VideoScene extension zips with Blender's own extension tool.

Two builds, because Blender's installer treats a zip holding a cp311 wheel as Python-3.11-only:
  - "py311": the oldest supported Blender (the manifest's blender_version_min, 4.5 LTS) .. 5.0
    (CPython 3.11), cp311 pyzmq wheels, blender_version_max 5.1.0
  - "abi3":  Blender 5.1+ (CPython 3.13), cp312-abi3 pyzmq wheels, blender_version_min 5.1.0
Each is split per platform (--split-platforms) and every zip is validated.

Steps: vendor protocol/ into blender_addon/_vendor/videoscene_protocol (also what tests from
source need: `python build_addon.py --vendor-only`), download the wheels into
blender_addon/wheels/<build>/ (pip download; --offline reuses them), stage a copy of the add-on
under build/addon-stage/<build>/ with the manifest filled in (the tracked manifest is never
edited), then `blender_ext.py build` + `validate` into dist/.

A build that includes this machine's platform records this venv's `videoscene-backend` (absolute
path) in the add-on's local_backend.json, so the installed add-on finds it without any setting;
the add-on uses it only while it exists (`--no-record-backend` for zips meant for others).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import platform as host_platform
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
ADDON_DIR = ROOT / "blender_addon"
PROTOCOL_DIR = ROOT / "protocol"
WHEEL_CACHE = ADDON_DIR / "wheels"
STAGE_DIR = ROOT / "build" / "addon-stage"
PYZMQ = "pyzmq==27.*"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "_vendor", "wheels", "local_backend.json")

# Blender platform -> pip --platform tags that can serve it (pip needs exact tags).
PIP_PLATFORMS = {
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_10_15_universal2"],
    "macos-x64": ["macosx_10_15_x86_64", "macosx_10_15_universal2"],
    "windows-x64": ["win_amd64"],
    "windows-arm64": ["win_arm64"],
}


@dataclass(frozen=True)
class BuildVariant:
    name: str
    pip_args: tuple[str, ...]
    version_min: str
    version_max: str | None

    @property
    def label(self) -> str:
        """The zip's name part: blender4.5-5.0, blender5.1plus."""
        low = _major_minor(self.version_min)
        if self.version_max is None:
            return f"blender{low}plus"
        major, minor = map(int, _major_minor(self.version_max).split("."))
        return f"blender{low}-{major}.{minor - 1}" if minor else f"blender{low}-{major - 1}.x"

    @property
    def blender_range(self) -> str:
        low = _major_minor(self.version_min)
        return (
            f"Blender {low} and later"
            if self.version_max is None
            else (f"Blender {self.label.removeprefix('blender').replace('-', ' to ')}")
        )


def _major_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


# The oldest Blender the add-on supports: declared once, in the manifest.
SUPPORTED_MIN = tomllib.loads((ADDON_DIR / "blender_manifest.toml").read_text())[
    "blender_version_min"
]
PYTHON_313_FROM = "5.1.0"  # Blender 5.1 moved to CPython 3.13
VARIANTS = {
    "py311": BuildVariant("py311", ("--python-version", "3.11"), SUPPORTED_MIN, PYTHON_313_FROM),
    "abi3": BuildVariant(
        "abi3",
        ("--python-version", "3.13", "--implementation", "cp", "--abi", "abi3"),
        PYTHON_313_FROM,
        None,
    ),
}


def variant_for_python(version: tuple[int, int]) -> BuildVariant:
    """The build a Blender with this Python installs (3.11: py311; 3.12+: abi3)."""
    return VARIANTS["py311" if version < (3, 12) else "abi3"]


def current_platform() -> str:
    machine = host_platform.machine().lower()
    arch = "arm64" if machine in ("arm64", "aarch64") else "x64"
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}[sys.platform]
    return f"{system}-{arch}"


def blender_ext_script() -> Path:
    """blender_ext.py ships inside the bpy wheel (found without importing bpy)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "bpy is not installed in this Python (its wheel carries Blender's extension tool, "
            "blender_ext.py): run bash dev.sh demo, or pip install bpy==5.0.1 in this venv"
        )
    base = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise SystemExit(f"blender_ext.py not found under {base}")
    return found[-1]


def vendor_protocol(addon_dir: Path) -> Path:
    """Copy protocol/ to <addon>/_vendor/videoscene_protocol (it imports itself relatively)."""
    vendor = addon_dir / "_vendor"
    target = vendor / "videoscene_protocol"
    if target.exists():
        shutil.rmtree(target)
    vendor.mkdir(parents=True, exist_ok=True)
    (vendor / "__init__.py").write_text('"""Packages vendored by build_addon.py."""\n')
    shutil.copytree(PROTOCOL_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def download_wheels(variant: BuildVariant, platforms: list[str], offline: bool) -> list[Path]:
    folder = WHEEL_CACHE / variant.name
    folder.mkdir(parents=True, exist_ok=True)
    wheels: list[Path] = []
    for blender_platform in platforms:
        tags = PIP_PLATFORMS[blender_platform]
        if not offline:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
            command += ["--no-deps", PYZMQ, *variant.pip_args, "--dest", str(folder)]
            for tag in tags:
                command += ["--platform", tag]
            subprocess.run(command, check=True)
        matches = [w for w in folder.glob("pyzmq-*.whl") if any(t in w.name for t in tags)]
        if not matches:
            raise SystemExit(f"No {variant.name} pyzmq wheel for {blender_platform} in {folder}")
        wheels.append(max(matches))  # newest version when several are cached
    return sorted(set(wheels))


def write_manifest(stage: Path, variant: BuildVariant, platforms: list[str], wheels: list[Path]):
    path = stage / "blender_manifest.toml"
    text = path.read_text()
    wheel_lines = "".join(f'  "./wheels/{w.name}",\n' for w in wheels)
    text = re.sub(r"(?m)^wheels = \[\]$", f"wheels = [\n{wheel_lines}]", text)
    lines = f'blender_version_min = "{variant.version_min}"\n'
    if variant.version_max:
        lines += f'blender_version_max = "{variant.version_max}"\n'
    lines += "platforms = [" + ", ".join(f'"{p}"' for p in platforms) + "]\n"
    text = re.sub(r'(?m)^blender_version_min = "[^"]*"\n', lines, text)
    path.write_text(text)


@functools.cache
def _backend_locator():
    """The add-on's own backend_locator (no bpy in it), for the record's file name and the
    executable's name on this platform."""
    name = "videoscene_backend_locator"
    spec = importlib.util.spec_from_file_location(name, ADDON_DIR / "backend_locator.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def venv_backend() -> Path | None:
    """This Python's `videoscene-backend` (the venv build_addon.py runs from), if installed."""
    locator = _backend_locator()
    scripts = Path(sysconfig.get_path("scripts"))
    for name in locator.executable_names(sys.platform == "win32"):
        if locator.is_executable(scripts / name):
            return (scripts / name).resolve()
    return None


def record_backend(stage: Path, backend: Path) -> None:
    record = {"backend": str(backend), "written_by": "build_addon.py"}
    (stage / _backend_locator().RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")


def stage_variant(
    variant: BuildVariant, platforms: list[str], wheels: list[Path], backend: Path | None
) -> Path:
    stage = STAGE_DIR / variant.name
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(ADDON_DIR, stage, ignore=IGNORED)
    if backend is not None:
        record_backend(stage, backend)
    vendor_protocol(stage)
    (stage / "wheels").mkdir()
    for wheel in wheels:
        shutil.copy2(wheel, stage / "wheels" / wheel.name)
    write_manifest(stage, variant, platforms, wheels)
    return stage


def run_tool(*args: str) -> None:
    subprocess.run([sys.executable, str(blender_ext_script()), *args], check=True)


def build_variant(
    variant: BuildVariant,
    platforms: list[str],
    offline: bool,
    output_dir: Path,
    backend: Path | None = None,
) -> list[Path]:
    wheels = download_wheels(variant, platforms, offline)
    stage = stage_variant(variant, platforms, wheels, backend)
    output_dir.mkdir(parents=True, exist_ok=True)
    label = variant.label
    base = output_dir / f"videoscene-{label}.zip"
    for old in output_dir.glob(f"videoscene-{label}*.zip"):
        old.unlink()
    run_tool(
        "build",
        "--source-dir",
        str(stage),
        "--output-filepath",
        str(base),
        "--split-platforms",
    )
    zips = sorted(output_dir.glob(f"videoscene-{label}-*.zip"))
    for archive in zips:
        run_tool("validate", str(archive))
    return zips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--platform",
        action="append",
        choices=[*PIP_PLATFORMS, "current"],
        help="build only for these platforms (repeatable; 'current' = this machine)",
    )
    parser.add_argument("--variant", action="append", choices=list(VARIANTS))
    parser.add_argument("--offline", action="store_true", help="use wheels already downloaded")
    parser.add_argument("--vendor-only", action="store_true", help="only vendor protocol/")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    parser.add_argument(
        "--no-record-backend",
        action="store_true",
        help="do not record this venv's videoscene-backend in the add-on (zips for others)",
    )
    args = parser.parse_args(argv)

    vendor_protocol(ADDON_DIR)
    if args.vendor_only:
        print(f"vendored protocol into {ADDON_DIR / '_vendor'}")
        return 0
    platforms = [current_platform() if p == "current" else p for p in (args.platform or [])]
    platforms = sorted(set(platforms)) or list(PIP_PLATFORMS)
    here = current_platform() in platforms and not args.no_record_backend
    backend = venv_backend() if here else None
    built: list[tuple[str, Path]] = []
    for name in args.variant or list(VARIANTS):
        for archive in build_variant(
            VARIANTS[name], platforms, args.offline, args.output_dir, backend
        ):
            print(f"built and validated {archive.relative_to(args.output_dir.parent)}")
            built.append((name, archive))
    print_install_summary(built, backend if here else None, here)
    return 0


def print_install_summary(built: list[tuple[str, Path]], backend: Path | None, here: bool):
    """What to install on this machine, and which backend that add-on will start."""
    mine = [(name, a) for name, a in built if current_platform().replace("-", "_") in a.name]
    if not mine:
        return
    print("\nInstall in Blender (Edit > Preferences > Get Extensions > Install from Disk):")
    for name, archive in mine:
        print(f"  {VARIANTS[name].blender_range}: {archive.resolve()}")
    if backend is not None:
        print(
            f"The add-on will start: {backend} serve --bind {{address}} --output-dir {{output_dir}}"
        )
        print("  (unless Backend Location is set, or a videoscene-backend is on Blender's PATH)")
    elif here:
        print(
            f"No videoscene-backend beside {sys.executable}: the add-on will look on PATH. "
            "Run bash dev.sh demo first, or set Backend Location in its preferences."
        )


if __name__ == "__main__":
    sys.exit(main())
