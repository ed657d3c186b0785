"""Blender's own Gaussian splats (5.3+): what the add-on imports is what Blender's own PLY import
makes of the same file, renders like the backend, exports back, and needs no Solid companion."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from .conftest import BLENDER_HAS_NATIVE_SPLATS, native_splats, random_splat, submodule
from .test_display import (
    BACKEND_PYTHON,
    backend_render,
    coherent_splat,
    display_scene,
    psnr,
    rendered,
    splat_in_view,
    use_cycles,
    use_workbench,
)

native_only = pytest.mark.skipif(
    not BLENDER_HAS_NATIVE_SPLATS, reason="Blender draws Gaussian splats itself from 5.3"
)
needs_backend = pytest.mark.skipif(
    not BACKEND_PYTHON.exists(), reason="the backend's Python (with torch) is not installed"
)
# Cycles samples of the fidelity test; measured on the 3,000-Gaussian test splat at 64x48
# (Standard view): see test_cycles_renders_like_the_backend.
CYCLES_SAMPLES = 16


def test_the_feature_check_agrees_with_the_splats_the_addon_makes(addon):
    assert native_splats() == BLENDER_HAS_NATIVE_SPLATS
    obj = submodule("importers.splat").import_splat(
        bpy.context, random_splat(10), None, bpy.context.scene.collection
    )
    assert submodule("display").is_native_splat(obj) == BLENDER_HAS_NATIVE_SPLATS


def attributes_of(obj: bpy.types.Object) -> dict[str, tuple[str, np.ndarray]]:
    """Every POINT attribute of a point cloud: name -> (data type, values)."""
    keys = {"FLOAT4": "vector", "FLOAT_VECTOR": "vector", "QUATERNION": "value", "FLOAT": "value"}
    found = {}
    for attribute in obj.data.attributes:
        if attribute.name.startswith(".") or attribute.domain != "POINT":
            continue  # Blender's internal attributes (selection, ...)
        key = keys[attribute.data_type]
        values = np.empty(len(attribute.data) * len(getattr(attribute.data[0], key, [0])))
        attribute.data.foreach_get(key, values)
        found[attribute.name] = (attribute.data_type, values)
    return found


@native_only
def test_a_splat_is_the_point_cloud_blenders_own_ply_import_makes(addon, tmp_path):
    ply = submodule("importers.ply")
    arrays = random_splat(300, seed=5, opacity=(0.02, 0.98))
    rest = np.random.default_rng(1).normal(size=(300, 45)).astype(np.float32)
    gs = {**ply.gs_parameters(arrays), "f_rest": rest}
    ply.write_splat_ply(tmp_path / "splat.ply", arrays["means"], gs)
    ours = submodule("importers.splat").import_splat(
        bpy.context,
        ply.splat_arrays_from_ply(tmp_path / "splat.ply"),
        None,
        bpy.context.scene.collection,
    )
    assert bpy.ops.wm.ply_import(filepath=str(tmp_path / "splat.ply")) == {"FINISHED"}
    (theirs,) = [obj for obj in bpy.context.selected_objects if obj != ours]
    assert ours.type == theirs.type == "POINTCLOUD"
    assert ours.data.type == theirs.data.type == "GAUSSIAN_SPLAT"
    mine, blenders = attributes_of(ours), attributes_of(theirs)
    assert sorted(mine) == sorted(blenders)
    assert {"position", "radiance:base", "scale", "rotation", "radiance:sh_14"} <= set(mine)
    for name, (kind, values) in blenders.items():
        assert mine[name][0] == kind, name
        assert np.allclose(mine[name][1], values, rtol=1e-5, atol=1e-6), name


@native_only
def test_blenders_own_import_exports_the_same_gaussians(addon, tmp_path):
    ply = submodule("importers.ply")
    arrays = random_splat(200, seed=6, opacity=(0.02, 0.98))
    ply.write_splat_ply(tmp_path / "in.ply", arrays["means"], ply.gs_parameters(arrays))
    bpy.ops.wm.ply_import(filepath=str(tmp_path / "in.ply"))
    bpy.context.view_layer.objects.active = bpy.context.selected_objects[0]
    assert bpy.ops.videoscene.export_splat_ply(filepath=str(tmp_path / "out.ply")) == {"FINISHED"}
    back = ply.splat_arrays_from_ply(tmp_path / "out.ply")
    assert np.array_equal(back["means"], arrays["means"])
    assert np.allclose(back["colors"], arrays["colors"], atol=1e-6)
    assert np.allclose(back["opacities"], arrays["opacities"], atol=1e-6)
    assert np.allclose(back["scales"], arrays["scales"], rtol=1e-5)
    assert np.allclose(back["quats"], arrays["quats"], atol=1e-6)


@native_only
def test_solid_mode_needs_no_companion_for_a_native_splat(addon):
    obj = submodule("importers.splat").import_splat(
        bpy.context, random_splat(50), None, bpy.context.scene.collection
    )
    solid = submodule("display.solid")
    assert solid.keep_companions(bpy.context.scene) == 0
    assert solid.companion(obj) is None and not obj.children


@native_only
@needs_backend
def test_cycles_renders_like_the_backend(addon, tmp_path_factory, tmp_path):
    """Measured here (5.3.0, 16 samples, the coherent test splat): 27.8 dB matched (Raw view,
    display-referred radiance, screen blur); 24.7 without the blur; 21.5 in the Standard view."""
    arrays = coherent_splat()
    expected = backend_render(tmp_path_factory.mktemp("native_reference"), arrays)
    obj = display_scene(addon, arrays)
    display = submodule("display")
    assert not display.colours_match_backend(bpy.context.scene, native=True)  # the user's choice
    display.set_colours_match_backend(bpy.context.scene, True)
    assert display.colours_match_backend(bpy.context.scene, native=True)
    assert bpy.context.scene.view_settings.view_transform == "Raw"
    use_cycles(samples=CYCLES_SAMPLES)
    image = rendered(tmp_path)
    print("native cycles", psnr(image, expected))
    assert psnr(image, expected) >= 26.5
    # Without the backend's screen blur (a pixel angle of 0), Gaussians under a pixel wide
    # leave holes.
    modifier = submodule("display.modifier")
    shown = modifier.display_modifier(obj)
    pixel_angle = modifier.input_identifier(shown, "Pixel Angle")
    obj.driver_remove(submodule("compat").modifier_input_path(shown, pixel_angle))
    modifier.set_input(obj, "Pixel Angle", 0.0)
    unblurred = rendered(tmp_path)
    print("native cycles, no blur", psnr(unblurred, expected))
    assert psnr(unblurred, expected) < psnr(image, expected) - 1.5
    # Blender's own colours (Standard view, linear blending): edges blend unlike 3DGS.
    modifier.add_display_modifier(obj, submodule("display.native").native_group())  # blur back
    display.set_colours_match_backend(bpy.context.scene, False)
    linear = rendered(tmp_path)
    print("native cycles, standard", psnr(linear, expected))
    assert psnr(linear, expected) < psnr(image, expected) - 3.0


@native_only
def test_workbench_shows_a_native_splat_in_colour(addon, tmp_path):
    arrays = splat_in_view()
    arrays["colors"][:] = (0.9, 0.2, 0.1)
    display_scene(addon, arrays)
    use_workbench()
    image = rendered(tmp_path)
    covered = image.sum(axis=2) > 0.05
    assert covered.mean() > 0.5
    red, green, blue = image[covered].mean(axis=0)
    assert red > 2 * green and red > 2 * blue  # its colour, not grey


def test_a_native_splat_is_not_mistaken_for_a_plain_point_cloud(addon):
    cloud = bpy.data.pointclouds.new("plain")
    obj = bpy.data.objects.new("plain", cloud)
    assert not submodule("display").is_native_splat(obj)
    assert not submodule("display").is_native_splat(None)
