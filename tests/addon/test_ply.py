"""Gaussian-splat PLY files: what an independent writer (plyfile) makes imports exactly and
exports back unchanged; every malformed file is a clear bad_params error and leaves nothing."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import plyfile
import pytest

from .conftest import native_splats, random_splat, splat_objects, submodule

SH_C0 = 0.28209479177387814
GS_FIELDS = ["f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2"]
GS_FIELDS += ["rot_0", "rot_1", "rot_2", "rot_3"]


def gaussian_vertices(count: int, rest: int = 45, xyz: str = "f4", seed: int = 0) -> np.ndarray:
    """A 3DGS vertex table as training code leaves it: SH DC outside the displayable range,
    logits and log scales of any size, unnormalised rotations, normals, f_rest."""
    rng = np.random.default_rng(seed)
    fields = [("x", xyz), ("y", xyz), ("z", xyz), ("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
    fields += [(name, "f4") for name in GS_FIELDS[:3]]
    fields += [(f"f_rest_{i}", "f4") for i in range(rest)]
    fields += [(name, "f4") for name in GS_FIELDS[3:]]
    data = np.zeros(count, dtype=fields)
    for name in data.dtype.names:
        data[name] = rng.normal(scale=3.0, size=count)
    data["opacity"][:3] = (-30.0, 25.0, 0.0)  # saturating logits must survive the round trip
    return data


def write_with_plyfile(path: Path, data: np.ndarray, text: bool = False, order: str = "<") -> Path:
    element = plyfile.PlyElement.describe(data, "vertex")
    plyfile.PlyData([element], text=text, byte_order=order).write(str(path))
    return path


def read_with_plyfile(path: Path) -> np.ndarray:
    return plyfile.PlyData.read(str(path))["vertex"].data


def import_operator(path: Path) -> bpy.types.Object:
    assert bpy.ops.videoscene.import_splat_ply(filepath=str(path)) == {"FINISHED"}
    (obj,) = splat_objects()
    return obj


def export_operator(obj: bpy.types.Object, path: Path) -> np.ndarray:
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.videoscene.export_splat_ply(filepath=str(path)) == {"FINISHED"}
    return read_with_plyfile(path)


@pytest.mark.parametrize(
    ("text", "order", "xyz"),
    [(False, "<", "f4"), (False, ">", "f4"), (True, "=", "f4"), (False, "<", "f8")],
    ids=["little-endian", "big-endian", "ascii", "double-xyz"],
)
def test_independent_3dgs_file_imports_exactly_and_exports_unchanged(
    addon, tmp_path, text, order, xyz
):
    ply = submodule("importers.ply")
    original = gaussian_vertices(500, xyz=xyz)
    path = write_with_plyfile(tmp_path / "in.ply", original, text=text, order=order)

    arrays = ply.splat_arrays_from_ply(path)
    means = np.stack([original[a] for a in "xyz"], axis=1)
    assert np.array_equal(arrays["means"], means.astype(np.float32))
    dc = np.stack([original[f"f_dc_{c}"] for c in range(3)], axis=1)
    assert np.array_equal(arrays["f_dc"], dc)
    assert np.allclose(arrays["colors"], SH_C0 * dc + 0.5)  # not clipped to 0..1
    assert arrays["colors"].min() < 0.0 < 1.0 < arrays["colors"].max()
    assert arrays["f_rest"].shape == (500, 45)
    assert np.allclose(arrays["opacities"], 1.0 / (1.0 + np.exp(-original["opacity"])))
    rot = np.stack([original[f"rot_{i}"] for i in range(4)], axis=1)
    assert np.allclose(np.linalg.norm(arrays["quats"], axis=1), 1.0)
    assert np.allclose(arrays["quats"], rot / np.linalg.norm(rot, axis=1, keepdims=True))

    obj = import_operator(path)
    exported = export_operator(obj, tmp_path / "out.ply")
    expected = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"]
    expected += [f"f_rest_{i}" for i in range(45)] + GS_FIELDS[3:]
    assert list(exported.dtype.names) == expected
    assert all(exported.dtype[name] == np.dtype("<f4") for name in expected)
    if native_splats():  # Blender keeps activated values: the same Gaussians, not the same bits
        assert_same_gaussians(exported, original)
        return
    for name in expected:
        assert np.array_equal(exported[name], original[name].astype(np.float32)), name


def assert_same_gaussians(exported: np.ndarray, original: np.ndarray) -> None:
    """Blender's own splat stores sigmoid(opacity), exp(scale) and the normalised rotation:
    an export gives the same Gaussians back (saturated opacities to within 1e-6)."""
    exact = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)]
    for name in exact:
        assert np.array_equal(exported[name], original[name].astype(np.float32)), name

    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))

    assert np.allclose(sigmoid(exported["opacity"]), sigmoid(original["opacity"]), atol=1e-6)
    for i in range(3):
        name = f"scale_{i}"
        assert np.allclose(exported[name], original[name], atol=1e-5), name
    rot = np.stack([original[f"rot_{i}"] for i in range(4)], axis=1)
    rot /= np.linalg.norm(rot, axis=1, keepdims=True)
    back = np.stack([exported[f"rot_{i}"] for i in range(4)], axis=1)
    assert np.allclose(back, rot, atol=1e-6)


def test_minimal_file_gets_default_gaussians_and_exports(addon, tmp_path):
    data = np.zeros(50, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    data["x"] = np.linspace(0.0, 2.0, 50)
    obj = import_operator(write_with_plyfile(tmp_path / "xyz.ply", data))
    exported = export_operator(obj, tmp_path / "out.ply")
    assert np.array_equal(exported["x"], data["x"])
    assert "f_rest_0" not in exported.dtype.names
    assert np.allclose(SH_C0 * exported["f_dc_0"] + 0.5, 0.8, atol=1e-6)  # the default grey
    assert np.all(exported["opacity"] > 10.0)  # opaque (Blender's splat: within 1e-6 of 1)
    assert np.allclose(np.exp(exported["scale_0"]), 2.0 / 1000.0, rtol=1e-5)


def test_plain_rgb_point_cloud_colours(addon, tmp_path):
    ply = submodule("importers.ply")
    fields = [("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    data = np.zeros(3, dtype=fields)
    data["red"] = (0, 128, 255)
    arrays = ply.splat_arrays_from_ply(write_with_plyfile(tmp_path / "rgb.ply", data, text=True))
    assert np.allclose(arrays["colors"][:, 0], np.array([0, 128, 255]) / 255.0)


def test_exported_backend_splat_matches_its_linear_values(addon, tmp_path):
    splat = submodule("importers.splat")
    arrays = random_splat(800, seed=3, opacity=(0.05, 0.95))
    obj = splat.import_splat(bpy.context, arrays, None, bpy.context.scene.collection)
    exported = export_operator(obj, tmp_path / "backend.ply")
    dc = np.stack([exported[f"f_dc_{c}"] for c in range(3)], axis=1)
    assert np.allclose(SH_C0 * dc + 0.5, arrays["colors"], atol=1e-6)
    assert np.allclose(1.0 / (1.0 + np.exp(-exported["opacity"])), arrays["opacities"], atol=1e-6)
    scales = np.exp(np.stack([exported[f"scale_{i}"] for i in range(3)], axis=1))
    assert np.allclose(scales, arrays["scales"], rtol=1e-5)
    rot = np.stack([exported[f"rot_{i}"] for i in range(4)], axis=1)
    assert np.allclose(rot, arrays["quats"], atol=1e-6)


# -- malformed files ------------------------------------------------------------------------
HEADER = "ply\nformat {fmt} 1.0\nelement vertex {count}\n"
XYZ = "property float x\nproperty float y\nproperty float z\nend_header\n"


def ascii_ply(body: str, count: str = "2", properties: str = XYZ) -> bytes:
    return (HEADER.format(fmt="ascii", count=count) + properties + body).encode()


def binary_ply(body: bytes, count: int, properties: str = XYZ) -> bytes:
    header = HEADER.format(fmt="binary_little_endian", count=count) + properties
    return header.encode() + body


def xyz_and(*extra: str) -> str:
    """The x, y, z float properties and then `extra` ("TYPE NAME" each)."""
    lines = "".join(f"property {line}\n" for line in extra)
    return XYZ.replace("end_header\n", lines + "end_header\n")


MALFORMED = {
    "not a ply": (b"solid cube\nfacet normal 0 0 1\n", "not a PLY"),
    "no end_header": (b"ply\nformat ascii 1.0\nelement vertex 1\n", "end_header"),
    "fractional count": (ascii_ply("0 0 0\n1 1 1\n", count="2.5"), "not a whole number"),
    "word count": (ascii_ply("0 0 0\n", count="many"), "not a whole number"),
    "negative count": (ascii_ply("0 0 0\n", count="-1"), "not a whole number"),
    "zero vertices": (ascii_ply("", count="0"), "no vertices"),
    "garbage ascii": (ascii_ply("zero one two\nthree four five\n"), "not numbers"),
    "binary in ascii": (ascii_ply("\xff\xfe\x00garbage\n\x01\x02\n"), "not numbers"),
    "short ascii rows": (ascii_ply("0 0\n1 1\n"), "2 values, expected 3"),
    "ascii truncated": (ascii_ply("0 0 0\n", count="3"), "truncated"),
    "ascii nan": (ascii_ply("0 0 0\nnan 1 1\n"), "non-finite 'x'"),
    "ascii inf": (ascii_ply("0 0 0\n1 inf 1\n"), "non-finite 'y'"),
    "binary 0xff": (binary_ply(b"\xff" * 12 * 10_000, 10_000), "10000 of the PLY's 10000"),
    "binary truncated": (binary_ply(b"\x00" * 20, 2), "truncated"),
    "unknown format": (
        (HEADER.format(fmt="binary_middle_endian", count=1) + XYZ).encode() + bytes(12),
        "Unknown PLY format",
    ),
    "list property": (
        ascii_ply("1 0\n", count="1", properties="property list uchar int x\nend_header\n"),
        "list properties",
    ),
    "unknown type": (
        ascii_ply("1\n", count="1", properties="property float128 x\nend_header\n"),
        "Unknown PLY property type",
    ),
    "duplicate property": (
        ascii_ply("0 0 0 0\n", count="1", properties="property float x\n" + XYZ),
        "twice",
    ),
    "no xyz": (
        ascii_ply("0.5\n", count="1", properties="property float red\nend_header\n"),
        "no x, y, z",
    ),
    "face first": (
        b"ply\nformat ascii 1.0\nelement face 1\nproperty list uchar int vertex_indices\n"
        b"element vertex 1\n" + XYZ.encode() + b"3 0 0 0\n0 0 0\n",
        "first element",
    ),
    "uchar out of range": (
        ascii_ply("0 0 0 300\n", count="1", properties=xyz_and("uchar red")),
        "not all uint8",
    ),
    "f_rest gap": (
        ascii_ply("0 0 0 1 1\n", count="1", properties=xyz_and("float f_rest_0", "float f_rest_2")),
        "without gaps",
    ),
    "scale overflow": (
        ascii_ply(
            "0 0 0 100 0 0\n",
            count="1",
            properties=xyz_and(*[f"float scale_{i}" for i in range(3)]),
        ),
        "too large",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_ply_is_a_clear_bad_params_error(addon, tmp_path, case):
    ply = submodule("importers.ply")
    errors = submodule("_vendor.videoscene_protocol.errors")
    content, expected = MALFORMED[case]
    path = tmp_path / "bad.ply"
    path.write_bytes(content)
    with pytest.raises(errors.VideoSceneError, match=expected) as caught:
        ply.splat_arrays_from_ply(path)
    assert caught.value.code == errors.ErrorCode.BAD_PARAMS and caught.value.hint


@pytest.mark.parametrize("case", ["fractional count", "garbage ascii", "binary 0xff"])
def test_import_operator_shows_the_error_and_adds_nothing(addon, tmp_path, case):
    path = tmp_path / "bad.ply"
    path.write_bytes(MALFORMED[case][0])
    objects, meshes = len(bpy.data.objects), len(bpy.data.meshes)
    with pytest.raises(RuntimeError, match="bad_params"):
        bpy.ops.videoscene.import_splat_ply(filepath=str(path))
    state = bpy.context.window_manager.videoscene_state
    assert state.status == "Error (bad_params)" and state.error_message and state.error_hint
    assert (len(bpy.data.objects), len(bpy.data.meshes)) == (objects, meshes)


def test_export_refuses_what_is_not_a_splat(addon, tmp_path):
    target = tmp_path / "out.ply"
    bpy.context.view_layer.objects.active = None
    with pytest.raises(RuntimeError, match="No active object"):
        bpy.ops.videoscene.export_splat_ply(filepath=str(target))
    mesh = bpy.data.meshes.new("plain")
    mesh.vertices.add(4)
    plain = bpy.data.objects.new("plain", mesh)
    bpy.context.scene.collection.objects.link(plain)
    bpy.context.view_layer.objects.active = plain
    with pytest.raises(RuntimeError, match="not a Gaussian splat"):
        bpy.ops.videoscene.export_splat_ply(filepath=str(target))
    state = bpy.context.window_manager.videoscene_state
    assert "Build Scene" in state.error_hint
    assert not target.exists()


def test_export_refuses_non_finite_values(addon, tmp_path):
    splat = submodule("importers.splat")
    obj = splat.import_splat(
        bpy.context,
        random_splat(20, seed=3, opacity=(0.05, 0.95)),
        None,
        bpy.context.scene.collection,
    )
    scales = np.full(20 * 3, 0.05, dtype=np.float32)
    scales[7] = np.inf
    # The 3DGS log scale the add-on's display keeps; Blender's own splat keeps exp(log scale).
    stored = "scale" if native_splats() else "log_scale"
    obj.data.attributes[stored].data.foreach_set("vector", scales)
    bpy.context.view_layer.objects.active = obj
    target = tmp_path / "out.ply"
    with pytest.raises(RuntimeError, match="non-finite log_scale"):
        bpy.ops.videoscene.export_splat_ply(filepath=str(target))
    assert not target.exists()
