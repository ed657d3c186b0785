"""Splat -> point cloud under the scene empty; frames -> sequencer strips."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest

from .conftest import (
    ADDON_MODULE,
    addon_display_only,
    evaluated_point_cloud,
    keyframed_camera,
    random_splat,
    splat_objects,
    submodule,
)

cameras = pytest.importorskip(
    "videoscene_protocol.cameras", reason="protocol/cameras.py not in the tree yet"
)


@addon_display_only
def test_import_splat_shows_points_with_attributes_and_material(addon):
    splat = submodule("importers.splat")
    arrays = random_splat(5000)
    arrays["colors"][0] = (-0.5, 0.25, 1.5)  # out of the displayable range: clipped for display
    parent = bpy.data.objects.new("parent", None)
    bpy.context.scene.collection.objects.link(parent)
    obj = splat.import_splat(bpy.context, arrays, parent, bpy.context.scene.collection)
    assert obj.parent is parent
    assert obj.type == "POINTCLOUD"
    assert [m.name for m in obj.data.materials] == ["VideoScene Splat"]
    shown = evaluated_point_cloud(obj)
    assert shown["count"] == 5000 and shown["materials"] == ["VideoScene Splat"]
    points = shown["attributes"]
    assert np.allclose(points["position"], arrays["means"])
    assert np.allclose(points["color"][:, :3], np.clip(arrays["colors"], 0.0, 1.0))
    assert np.allclose(points["color"][:, 3], arrays["opacities"])
    assert np.allclose(points["opacity"][:, 0], arrays["opacities"])
    assert np.allclose(points["scale"], arrays["scales"])
    assert np.allclose(points["rotation"], arrays["quats"], atol=1e-6)
    # The radius holds 3.33 sigma of the widest axis, widened a little by
    # the screen blur (display/modifier.py).
    stored = submodule("display.attributes").point_radius(arrays["scales"])
    assert np.all(points["radius"][:, 0] >= stored * (1 - 1e-6))
    assert np.allclose(points["radius"][:, 0], stored, rtol=0.05)
    # The 3DGS parameters, derived from the linear values (unclipped colour).
    assert np.allclose(0.28209479177387814 * points["f_dc"] + 0.5, arrays["colors"], atol=1e-6)
    assert np.allclose(1 / (1 + np.exp(-points["opacity_logit"][:, 0])), arrays["opacities"])
    assert np.allclose(np.exp(points["log_scale"]), arrays["scales"], rtol=1e-5)
    assert np.allclose(points["rot"], arrays["quats"], atol=1e-6)
    assert not [mesh for mesh in bpy.data.meshes if mesh.users == 0]  # no orphan left behind


def test_import_splat_rejects_bad_shapes_and_non_finite_values(addon):
    splat = submodule("importers.splat")
    errors = submodule("_vendor.videoscene_protocol.errors")
    before = data_counts()
    arrays = random_splat(10)
    arrays["scales"] = arrays["scales"][:5]
    with pytest.raises(errors.VideoSceneError, match="scales") as caught:
        splat.import_splat(bpy.context, arrays, None, bpy.context.scene.collection)
    assert caught.value.code == errors.ErrorCode.SHAPE_MISMATCH
    arrays = random_splat(10)
    arrays["means"][3, 1] = np.nan
    with pytest.raises(errors.VideoSceneError, match="'means' has 1 non-finite") as caught:
        splat.import_splat(bpy.context, arrays, None, bpy.context.scene.collection)
    assert caught.value.code == errors.ErrorCode.BAD_PARAMS and caught.value.hint
    assert data_counts() == before


def build_result(count: int = 2000) -> SimpleNamespace:
    """A build_scene result as the client delivers it (meta, arrays, blobs)."""
    c2w1 = np.eye(4)
    c2w1[:3, 3] = (0.3, 0.0, 0.05)
    K = [[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]]
    references = [
        {"c2w": np.eye(4).tolist(), "K": K, "width": 640, "height": 480},
        {"c2w": c2w1.tolist(), "K": K, "width": 640, "height": 480},
    ]
    meta = {"scene_id": "abc123", "prior": "stereo", "num_gaussians": count}
    meta["reference_cameras"] = references
    return SimpleNamespace(
        job_id="job1", meta=meta, arrays=random_splat(count), blobs={"scene.ply": b"ply\n"}
    )


def test_import_build_result_hierarchy(addon):
    workflow = submodule("workflow")
    camera_path = submodule("camera_path")
    scene = bpy.context.scene
    result = build_result()
    empty = workflow.import_build_result(bpy.context, scene, result)
    assert empty.name.startswith("VideoScene Scene") and empty.type == "EMPTY"
    assert scene.videoscene.scene_empty == empty
    assert empty["videoscene_scene_id"] == "abc123"
    assert Path(empty["videoscene_ply"]).read_bytes() == b"ply\n"
    assert np.allclose(np.array(empty.matrix_world), camera_path.DEFAULT_SCENE_MATRIX, atol=1e-6)
    (cloud,) = [child for child in empty.children if child in splat_objects()]
    assert evaluated_point_cloud(cloud)["count"] == 2000
    refs = sorted((c for c in empty.children if c.type == "CAMERA"), key=lambda c: c.name)
    assert [c.name for c in refs] == ["VideoScene Reference 0", "VideoScene Reference 1"]
    # Intrinsics round-trip through the shared module.
    K = cameras.intrinsics_from_blender(
        refs[0].data.lens,
        refs[0].data.sensor_width,
        refs[0].data.sensor_height,
        refs[0].data.sensor_fit,
        640,
        480,
    )
    assert np.allclose(K, result.meta["reference_cameras"][0]["K"], atol=1e-4)
    # Reference camera 1 in the splat frame is the c2w the backend sent.
    local = np.linalg.inv(np.array(empty.matrix_world)) @ np.array(refs[1].matrix_world)
    sent = np.array(result.meta["reference_cameras"][1]["c2w"])
    assert np.allclose(cameras.blender_to_opencv_c2w(local), sent, atol=1e-5)
    # The default orientation: splat +y (down) is Blender -Z.
    assert np.allclose(np.array(empty.matrix_world)[:3, 1], (0.0, 0.0, -1.0), atol=1e-6)
    assert json.loads(empty["videoscene_reference_cameras"])[1]["width"] == 640


def test_keyframe_flythrough_after_build(addon):
    workflow = submodule("workflow")
    compat = submodule("compat")
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = 1, 25
    empty = workflow.import_build_result(bpy.context, scene, build_result())
    camera = workflow.keyframe_flythrough(scene)
    assert compat.is_animated(camera)
    refs = sorted((c for c in empty.children if c.type == "CAMERA"), key=lambda c: c.name)
    for frame, ref in ((1, refs[0]), (25, refs[1])):
        scene.frame_set(frame)
        assert np.allclose(np.array(camera.matrix_world), np.array(ref.matrix_world), atol=1e-5), (
            frame
        )
    assert all(
        point.interpolation == "LINEAR"
        for fcurve in compat.action_fcurves(camera)
        for point in fcurve.keyframe_points
    )


def test_sequencer_strips_grow_one_image_per_scene_frame(addon, tmp_path):
    sequencer = submodule("importers.sequencer")
    compat = submodule("compat")
    scene = bpy.context.scene
    keyframed_camera(scene, 1, 20)
    # Same size as the frames, so the strip is not scaled (FIT uses the resolution at creation).
    scene.render.resolution_x, scene.render.resolution_y = 36, 24
    scene.render.resolution_percentage = 100
    rng = np.random.default_rng(1)
    refined = rng.integers(0, 256, size=(20, 24, 36, 3), dtype=np.uint8)
    files = sequencer.write_pngs(refined, tmp_path / "refined")
    channel = sequencer.free_channel_pair(scene, 1, 20)
    # Two windows arrive: the strip is created with the first and extended by the second.
    strip = sequencer.extend_image_strip(scene, "VS refined", files[:9], [1] * 9, 1, channel)
    assert submodule("compat").strip_span(strip)[1] == 10
    strip = sequencer.extend_image_strip(scene, "VS refined", files[9:], [1] * 11, 1, channel)
    coarse = sequencer.extend_image_strip(
        scene, "VS coarse", files, [1] * 20, 1, channel - 1, mute=True
    )
    assert submodule("compat").strip_span(strip) == (1, 21)
    assert [e.filename for e in strip.elements] == [f.name for f in files]  # 1:1, no repeats
    assert coarse.mute and not strip.mute and coarse.channel == strip.channel - 1
    assert len(list(compat.sequence_editor_strips(scene))) == 2
    assert sequencer.free_channel_pair(scene, 1, 20) == channel + 2

    # Render sequencer frame 3 with the Standard view transform: it is image 2 exactly.
    scene.view_settings.view_transform = "Standard"
    scene.render.image_settings.file_format = "PNG"
    scene.frame_set(3)
    scene.render.filepath = str(tmp_path / "render.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(tmp_path / "render.png"))
    pixels = np.empty(36 * 24 * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    rendered = np.rint(pixels.reshape(24, 36, 4)[::-1, :, :3] * 255).astype(np.uint8)
    assert np.array_equal(rendered, refined[2])


def test_sequencer_holds_each_image_over_a_frame_step(addon, tmp_path):
    sequencer = submodule("importers.sequencer")
    files = sequencer.write_pngs(np.zeros((4, 8, 12, 3), dtype=np.uint8), tmp_path)
    strip = sequencer.extend_image_strip(bpy.context.scene, "VS", files, [3, 3, 3, 1], 1, 2)
    assert submodule("compat").strip_span(strip)[1] == 11 and len(strip.elements) == 10
    assert [e.filename for e in strip.elements][:4] == [files[0].name] * 3 + [files[1].name]


def fail_point_cloud(monkeypatch) -> None:
    """Make the point-cloud step fail (the way Blender 4.2 failed to convert meshes; on 5.3+
    the native splat's display step)."""

    def broken(*args, **kwargs):
        raise RuntimeError("Operator bpy.ops.object.convert.poll() failed")

    monkeypatch.setattr(submodule("compat"), "make_point_cloud", broken)
    monkeypatch.setattr(submodule("importers.splat"), "show_native", broken)


def data_counts() -> dict[str, int]:
    kinds = ("objects", "meshes", "pointclouds", "cameras", "materials", "node_groups")
    return {kind: len(getattr(bpy.data, kind)) for kind in (*kinds, "collections")}


def test_failed_build_import_removes_what_it_made_and_keeps_the_ply(addon, monkeypatch):
    workflow = submodule("workflow")
    errors = submodule("_vendor.videoscene_protocol.errors")
    fail_point_cloud(monkeypatch)
    before = data_counts()
    with pytest.raises(errors.VideoSceneError, match="point cloud") as caught:
        workflow.import_build_result(bpy.context, bpy.context.scene, build_result())
    assert caught.value.hint and "Import" in caught.value.hint
    assert data_counts() == before
    assert bpy.context.scene.videoscene.scene_empty is None
    output_dir = Path(bpy.context.preferences.addons[ADDON_MODULE].preferences.output_dir)
    assert len(list(output_dir.glob("scenes/*/scene.ply"))) == 1  # the result stays on disk


def test_failed_ply_import_operator_reports_and_removes_what_it_made(addon, monkeypatch, tmp_path):
    fail_point_cloud(monkeypatch)
    path = tmp_path / "splat.ply"
    ply = submodule("importers.ply")
    arrays = random_splat(100)
    ply.write_splat_ply(path, arrays["means"], ply.gs_parameters(arrays))
    before = data_counts()
    with pytest.raises(RuntimeError, match="point cloud"):
        bpy.ops.videoscene.import_splat_ply(filepath=str(path))
    state = bpy.context.window_manager.videoscene_state
    assert state.error_message and state.error_hint
    assert data_counts() == before


def test_unexpected_failure_in_an_import_is_an_error_with_a_hint(addon, monkeypatch, tmp_path):
    """Not a VideoSceneError (a bug): still a VideoScene error in the panel, with a hint."""

    def broken(*args, **kwargs):
        raise KeyError("bpy_prop_collection[key]: key 'Mesh' not found")

    monkeypatch.setattr(submodule("workflow"), "import_splat", broken)
    path = tmp_path / "splat.ply"
    ply = submodule("importers.ply")
    arrays = random_splat(10)
    ply.write_splat_ply(path, arrays["means"], ply.gs_parameters(arrays))
    before = data_counts()
    with pytest.raises(RuntimeError, match="internal"):
        bpy.ops.videoscene.import_splat_ply(filepath=str(path))
    state = bpy.context.window_manager.videoscene_state
    assert "KeyError" in state.error_message and "report" in state.error_hint
    assert data_counts() == before  # the empty and the collection are gone again


def test_failed_build_result_is_shown_with_a_hint_and_leaves_nothing(addon, monkeypatch):
    """A build result arriving through the session's event loop, when the point cloud cannot be
    made (Blender 4.2 before the fallback): an error with a hint in the panel, nothing left."""
    client_glue = submodule("client_glue")
    client = submodule("_vendor.videoscene_protocol.client")
    workflow = submodule("workflow")
    fail_point_cloud(monkeypatch)
    job = client_glue.PendingJob("build_scene", bpy.context.scene.name, workflow._on_build_result)
    client_glue.SESSION.jobs["job1"] = job
    before = data_counts()
    client_glue.SESSION._dispatch(client.ResultEvent("job1", build_result()))
    state = bpy.context.window_manager.videoscene_state
    assert state.status == "Error (internal)" and "point cloud" in state.error_message
    assert state.error_hint and not state.busy
    assert data_counts() == before
