"""Gaussian-splat PLY files: read the 3DGS layout (and plain coloured point clouds) into the
splat arrays import_splat() takes, and write the 3DGS layout back.

Hand-written on numpy structured arrays because the add-on ships no PLY library (plyfile is a
backend dependency); a binary PLY body is one np.frombuffer call, so large files stay fast.
Properties are matched by name, so extra fields (normals, ...) are ignored. Everything in a file
is checked before use: a malformed header or body, or a non-finite value, is a `bad_params`
error that says what is wrong.

The 3DGS parameters are kept as the file has them (f_dc, f_rest, opacity logit, log scale, raw
rotation) next to the linear values Blender displays, so an imported splat exports unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ..display.attributes import SH_C0

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
BINARY_ORDERS = {"binary_little_endian": "<", "binary_big_endian": ">"}
OPACITY_EPS = 1e-6  # linear opacities are clipped to [eps, 1 - eps] before the logit
MIN_SCALE = 1e-12  # linear scales are clipped to this before the log
# The splat arrays' 3DGS parameters and the PLY properties they are written as, in file order.
GS_PROPERTIES = {
    "f_dc": ["f_dc_0", "f_dc_1", "f_dc_2"],
    "opacity_logit": ["opacity"],
    "log_scale": ["scale_0", "scale_1", "scale_2"],
    "rot": ["rot_0", "rot_1", "rot_2", "rot_3"],
}
F_REST = re.compile(r"f_rest_(\d+)")
HEADER_LIMIT = 1 << 20  # no real PLY header is a megabyte long

Fields = list[tuple[str, str]]


def _bad(
    message: str, hint: str = "Export the splat again as a binary 3DGS PLY."
) -> VideoSceneError:
    return VideoSceneError(ErrorCode.BAD_PARAMS, message, hint)


# -- reading ------------------------------------------------------------------------------
def _parse_header(data: bytes) -> tuple[str, int, Fields, int]:
    """(format, vertex count, vertex properties, offset of the body)."""
    if not re.match(rb"ply\r?\n", data):
        raise _bad("The file is not a PLY file.", "Choose a .ply file.")
    match = re.search(rb"(?m)^end_header\r?\n", data[:HEADER_LIMIT])
    if match is None:
        raise _bad("The PLY header has no end_header line.")
    fmt, count, fields, element = "", -1, [], None
    for number, line in enumerate(data[: match.start()].decode("ascii", "replace").splitlines()):
        words = line.split()
        if number == 0 or not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) == 3:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3:
            element = words[1]
            if element == "vertex":
                count = _vertex_count(words[2])
            elif count < 0:
                raise _bad(f"The PLY's first element is {element!r}, not 'vertex'.")
        elif words[0] == "property" and element == "vertex":
            fields.append(_vertex_property(words, fields))
        elif words[0] != "property":
            raise _bad(f"The PLY header has an unreadable line: {line[:80]!r}.")
    if fmt != "ascii" and fmt not in BINARY_ORDERS:
        raise _bad(f"Unknown PLY format {fmt!r}.")
    if count < 0:
        raise _bad("The PLY has no vertex element.")
    if count == 0:
        raise _bad("The PLY has no vertices.", "Choose a PLY that holds a splat.")
    return fmt, count, fields, match.end()


def _vertex_count(word: str) -> int:
    if not word.isdigit():
        raise _bad(f"The PLY's vertex count {word[:40]!r} is not a whole number.")
    return int(word)


def _vertex_property(words: list[str], fields: Fields) -> tuple[str, str]:
    if words[1] == "list":
        raise _bad("The PLY's vertices have list properties.")
    if len(words) != 3:
        raise _bad(f"The PLY header has an unreadable property line: {' '.join(words)[:80]!r}.")
    kind, name = words[1], words[2]
    if kind not in PLY_TYPES:
        raise _bad(f"Unknown PLY property type {kind!r}.")
    if any(name == existing for existing, _ in fields):
        raise _bad(f"The PLY declares the vertex property {name!r} twice.")
    return name, PLY_TYPES[kind]


def _read_ascii(body: bytes, count: int, fields: Fields) -> np.ndarray:
    lines = body.split(b"\n", count)[:count]
    try:
        text = b"\n".join(lines).decode("ascii").splitlines()
        rows = np.loadtxt(text, dtype=np.float64, ndmin=2)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _bad(f"The PLY's ASCII vertex data is not numbers: {exc}.") from exc
    if rows.shape[0] != count:
        raise _bad(
            f"The PLY is truncated: {count} vertices announced, {rows.shape[0]} found.",
            "Save the file again.",
        )
    if rows.shape[1] != len(fields):
        raise _bad(
            f"The PLY's ASCII vertex rows have {rows.shape[1]} values, expected {len(fields)}."
        )
    out = np.empty(count, dtype=np.dtype(fields))
    for index, (name, kind) in enumerate(fields):
        column = rows[:, index]
        if np.dtype(kind).kind in "iu" and not _fits_integer(column, np.dtype(kind)):
            raise _bad(f"The PLY's {name!r} values are not all {np.dtype(kind).name} numbers.")
        out[name] = column
    return out


def _fits_integer(column: np.ndarray, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    whole = np.all(np.isfinite(column)) and np.all(column == np.round(column))
    return bool(whole and info.min <= column.min() and column.max() <= info.max)


def read_vertices(path: Path) -> np.ndarray:
    """The vertex element of a PLY file as a structured numpy array."""
    data = Path(path).read_bytes()
    fmt, count, fields, body_start = _parse_header(data)
    if fmt == "ascii":
        return _read_ascii(data[body_start:], count, fields)
    dtype = np.dtype([(name, BINARY_ORDERS[fmt] + kind) for name, kind in fields])
    if dtype.itemsize == 0:
        raise _bad("The PLY's vertices have no properties.")
    if len(data) - body_start < count * dtype.itemsize:
        raise _bad(f"The PLY is truncated: {count} vertices announced.", "Save the file again.")
    return np.frombuffer(data, dtype=dtype, count=count, offset=body_start)


def _f_rest_names(names: set[str]) -> list[str]:
    numbers = sorted(int(m.group(1)) for name in names if (m := F_REST.fullmatch(name)))
    if numbers != list(range(len(numbers))):
        raise _bad("The PLY's f_rest_* properties are not numbered 0, 1, 2, ... without gaps.")
    return [f"f_rest_{n}" for n in numbers]


def _check_finite(vertices: np.ndarray, names: list[str]) -> None:
    for name in names:
        if vertices.dtype[name].kind != "f":
            continue
        bad = np.count_nonzero(~np.isfinite(vertices[name]))
        if bad:
            raise _bad(f"{bad} of the PLY's {len(vertices)} vertices have a non-finite {name!r}.")


def splat_arrays_from_ply(path: Path) -> dict[str, np.ndarray]:
    """3DGS fields (f_dc_*, f_rest_*, logit opacity, log scale_*, rot_* wxyz) -> linear splat
    arrays plus the 3DGS parameters as read; a plain PLY with red/green/blue gets small
    isotropic, opaque Gaussians."""
    vertices = read_vertices(path)
    names = set(vertices.dtype.names or ())
    if not {"x", "y", "z"} <= names:
        raise _bad("The PLY's vertices have no x, y, z.")
    count = len(vertices)
    f_rest = _f_rest_names(names)
    used = ["x", "y", "z", *f_rest, "red", "green", "blue"]
    used += [name for properties in GS_PROPERTIES.values() for name in properties]
    _check_finite(vertices, [name for name in used if name in names])

    def stack(fields: list[str]) -> np.ndarray:
        return np.stack([vertices[f].astype(np.float32) for f in fields], axis=1)

    arrays = {"means": stack(["x", "y", "z"])}
    for key, properties in GS_PROPERTIES.items():
        if set(properties) <= names:
            arrays[key] = stack(properties)
    if "opacity_logit" in arrays:
        arrays["opacity_logit"] = arrays["opacity_logit"][:, 0]
    if f_rest:
        arrays["f_rest"] = stack(f_rest)
    if "f_dc" in arrays:
        arrays["colors"] = SH_C0 * arrays["f_dc"] + 0.5
    elif {"red", "green", "blue"} <= names:
        rgb = stack(["red", "green", "blue"])
        arrays["colors"] = rgb / (255.0 if vertices["red"].dtype.kind == "u" else 1.0)
    else:
        arrays["colors"] = np.full((count, 3), 0.8, dtype=np.float32)
    with np.errstate(over="ignore"):  # a logit of -1000 is a transparent Gaussian, not an error
        if "opacity_logit" in arrays:
            arrays["opacities"] = 1.0 / (1.0 + np.exp(-arrays["opacity_logit"]))
        else:
            arrays["opacities"] = np.ones(count, dtype=np.float32)
        if "log_scale" in arrays:
            arrays["scales"] = np.exp(arrays["log_scale"])
        else:
            extent = float(np.ptp(arrays["means"], axis=0).max())
            arrays["scales"] = np.full((count, 3), max(extent, 1e-3) / 1000.0, dtype=np.float32)
    if not np.all(np.isfinite(arrays["scales"])):
        raise _bad("The PLY has scale_* values too large for a Gaussian (exp overflows).")
    if "rot" in arrays:
        norms = np.linalg.norm(arrays["rot"], axis=1, keepdims=True)
        arrays["quats"] = np.where(
            norms > 0, arrays["rot"] / np.maximum(norms, 1e-12), (1, 0, 0, 0)
        )
    else:
        arrays["quats"] = np.tile(np.array([1, 0, 0, 0], dtype=np.float32), (count, 1))
    return {name: np.ascontiguousarray(values, dtype=np.float32) for name, values in arrays.items()}


# -- the 3DGS parameterisation ------------------------------------------------------------------
def gs_parameters(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The 3DGS parameters of a splat: those it carries (as read from a file), the others
    derived from its linear arrays (colour -> SH DC, opacity -> logit, scale -> log), in float32
    like the file format."""

    def f32(name: str) -> np.ndarray:
        return np.asarray(arrays[name], dtype=np.float32)

    out = {key: f32(key) for key in (*GS_PROPERTIES, "f_rest") if key in arrays}
    if "f_dc" not in out:
        out["f_dc"] = (f32("colors") - np.float32(0.5)) / np.float32(SH_C0)
    if "opacity_logit" not in out:
        p = np.clip(f32("opacities"), OPACITY_EPS, 1 - OPACITY_EPS)
        out["opacity_logit"] = np.log(p) - np.log1p(-p)
    if "log_scale" not in out:
        out["log_scale"] = np.log(np.maximum(f32("scales"), np.float32(MIN_SCALE)))
    if "rot" not in out:
        out["rot"] = f32("quats")
    return {key: np.ascontiguousarray(values) for key, values in out.items()}


# -- writing ------------------------------------------------------------------------------------
def write_splat_ply(path: Path, means: np.ndarray, gs: Mapping[str, np.ndarray]) -> Path:
    """Write the binary little-endian 3DGS layout: x y z, f_dc_0..2, f_rest_* (when present),
    opacity (logit), scale_0..2 (log), rot_0..3. Written to a temporary file, then renamed."""
    columns: dict[str, np.ndarray] = {}
    for index, axis in enumerate("xyz"):
        columns[axis] = means[:, index]
    blocks = [("f_dc", GS_PROPERTIES["f_dc"])]
    if "f_rest" in gs:
        blocks.append(("f_rest", [f"f_rest_{i}" for i in range(gs["f_rest"].shape[1])]))
    blocks += [(key, GS_PROPERTIES[key]) for key in ("opacity_logit", "log_scale", "rot")]
    for key, properties in blocks:
        values = np.asarray(gs[key]).reshape(len(means), -1)
        for index, name in enumerate(properties):
            columns[name] = values[:, index]
    body = np.empty(len(means), dtype=[(name, "<f4") for name in columns])
    for name, values in columns.items():
        body[name] = values
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(means)}"]
    header += [f"property float {name}" for name in columns] + ["end_header", ""]
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as handle:
        handle.write("\n".join(header).encode("ascii"))
        handle.write(body.tobytes())
    os.replace(partial, path)
    return path
