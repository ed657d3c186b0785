"""Read Gaussian-splat PLY files (the 3DGS layout the backend saves, and plain coloured point
clouds) into the splat arrays import_splat() takes.

Hand-written on numpy structured arrays because the add-on ships no PLY library (plyfile is a
backend dependency); a binary PLY body is one np.frombuffer call, so large files stay fast.
Properties are matched by name, so extra fields (normals, higher SH bands) are simply ignored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
SH_C0 = 0.28209479177387814  # the degree-0 spherical-harmonic constant (colour = C0 * dc + 0.5)


def _bad(message: str, hint: str = "Export the splat as a binary 3DGS PLY.") -> VideoSceneError:
    return VideoSceneError(ErrorCode.BAD_PARAMS, message, hint)


def _parse_header(data: bytes) -> tuple[str, int, list[tuple[str, str]], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise _bad("The file is not a PLY file.")
    body_start = data.index(b"\n", end) + 1
    fmt, count, fields, in_vertex = "", 0, [], False
    for line in data[:end].decode("ascii", errors="replace").splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            in_vertex = words[1] == "vertex"
            if in_vertex:
                count = int(words[2])
            elif count == 0:
                raise _bad("The PLY's first element is not 'vertex'.")
        elif words[0] == "property" and in_vertex:
            if words[1] == "list":
                raise _bad("The PLY's vertices have list properties.")
            if words[1] not in PLY_TYPES:
                raise _bad(f"Unknown PLY property type {words[1]!r}.")
            fields.append((words[2], PLY_TYPES[words[1]]))
    return fmt, count, fields, body_start


def read_vertices(path: Path) -> np.ndarray:
    """The vertex element of a PLY file as a structured numpy array."""
    data = Path(path).read_bytes()
    fmt, count, fields, body_start = _parse_header(data)
    if fmt == "ascii":
        dtype = np.dtype([(name, kind) for name, kind in fields])
        rows = np.loadtxt(data[body_start:].decode().splitlines()[:count], ndmin=2)
        out = np.empty(count, dtype=dtype)
        for index, (name, _) in enumerate(fields):
            out[name] = rows[:, index]
        return out
    order = {"binary_little_endian": "<", "binary_big_endian": ">"}.get(fmt)
    if order is None:
        raise _bad(f"Unknown PLY format {fmt!r}.")
    dtype = np.dtype([(name, order + kind) for name, kind in fields])
    if len(data) - body_start < count * dtype.itemsize:
        raise _bad(f"The PLY is truncated: {count} vertices announced.", "Save the file again.")
    return np.frombuffer(data, dtype=dtype, count=count, offset=body_start)


def splat_arrays_from_ply(path: Path) -> dict[str, np.ndarray]:
    """3DGS fields (f_dc_*, logit opacity, log scale_*, rot_* wxyz) -> linear splat arrays;
    a plain PLY with red/green/blue gets small isotropic, opaque Gaussians."""
    vertices = read_vertices(path)
    names = set(vertices.dtype.names or ())
    if not {"x", "y", "z"} <= names:
        raise _bad("The PLY's vertices have no x, y, z.")
    count = len(vertices)

    def stack(*fields: str) -> np.ndarray:
        return np.stack([vertices[f].astype(np.float32) for f in fields], axis=1)

    arrays = {"means": stack("x", "y", "z")}
    if {"f_dc_0", "f_dc_1", "f_dc_2"} <= names:
        arrays["colors"] = np.clip(SH_C0 * stack("f_dc_0", "f_dc_1", "f_dc_2") + 0.5, 0.0, 1.0)
    elif {"red", "green", "blue"} <= names:
        rgb = stack("red", "green", "blue")
        arrays["colors"] = rgb / (255.0 if vertices["red"].dtype.kind == "u" else 1.0)
    else:
        arrays["colors"] = np.full((count, 3), 0.8, dtype=np.float32)
    if "opacity" in names:
        logits = vertices["opacity"].astype(np.float32)
        arrays["opacities"] = 1.0 / (1.0 + np.exp(-logits))
    else:
        arrays["opacities"] = np.ones(count, dtype=np.float32)
    if {"scale_0", "scale_1", "scale_2"} <= names:
        arrays["scales"] = np.exp(stack("scale_0", "scale_1", "scale_2"))
    else:
        extent = float(np.ptp(arrays["means"], axis=0).max()) if count else 1.0
        arrays["scales"] = np.full((count, 3), extent / 1000.0, dtype=np.float32)
    if {"rot_0", "rot_1", "rot_2", "rot_3"} <= names:
        quats = stack("rot_0", "rot_1", "rot_2", "rot_3")
        norms = np.linalg.norm(quats, axis=1, keepdims=True)
        arrays["quats"] = np.where(norms > 0, quats / np.maximum(norms, 1e-12), (1, 0, 0, 0))
    else:
        arrays["quats"] = np.tile(np.array([1, 0, 0, 0], dtype=np.float32), (count, 1))
    return {name: np.ascontiguousarray(values, dtype=np.float32) for name, values in arrays.items()}
