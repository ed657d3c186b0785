"""Rebuild Scene from Video: the fitted splat replaces the shown one under the same scene
empty (aligned with the reference cameras and the path), the prior's splat is hidden, not
deleted, and later renders name the fitted scene."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import bpy
import numpy as np
import pytest
from mathutils import Matrix

from .conftest import native_splats, random_splat, splat_objects, submodule
from .test_importers import build_result


def fit_result(count: int = 500) -> SimpleNamespace:
    meta = {"scene_id": "fitted1", "parent_scene": "abc123", "num_gaussians": count}
    meta["fit"] = {"seeded_gaussians": 42}
    return SimpleNamespace(
        job_id="fitjob",
        job_dir="/nowhere",
        meta=meta,
        arrays=random_splat(count, seed=3),
        blobs={"scene.ply": b"ply fitted\n"},
    )


def test_fitted_splat_replaces_the_prior_under_the_same_empty(addon):
    workflow = submodule("workflow")
    scene = bpy.context.scene
    empty = workflow.import_build_result(bpy.context, scene, build_result())
    empty.matrix_world = Matrix.Translation((1, 2, 3)) @ empty.matrix_world  # the artist moved it
    bpy.context.view_layer.update()
    (prior,) = [c for c in empty.children if c in splat_objects()]
    cameras_before = sorted(
        (c.name, np.array(c.matrix_world).round(6).tolist())
        for c in empty.children
        if c.type == "CAMERA"
    )
    fitted = workflow.import_fit_result(bpy.context, empty, fit_result())
    bpy.context.view_layer.update()
    assert fitted.parent == empty and fitted.name.startswith("VideoScene Splat Fitted")
    assert np.allclose(np.array(fitted.matrix_world), np.array(empty.matrix_world), atol=1e-6)
    assert np.allclose(np.array(prior.matrix_world), np.array(fitted.matrix_world), atol=1e-6)
    assert prior.name in bpy.data.objects and prior.hide_render and prior.hide_viewport
    solid = submodule("display.solid")
    if native_splats():  # Blender draws its own splats in Solid mode: no companions
        assert solid.companion(prior) is None and solid.companion(fitted) is None
    else:
        assert solid.companion(prior).hide_viewport  # Solid mode shows the fitted splat alone
        assert not solid.companion(fitted).hide_viewport
    assert not fitted.hide_render and not fitted.hide_viewport
    assert len(fitted.data.vertices if fitted.type == "MESH" else fitted.data.points) == 500
    assert empty["videoscene_scene_id"] == "fitted1"
    assert empty["videoscene_parent_scene"] == "abc123"
    assert Path(empty["videoscene_ply"]).read_bytes() == b"ply fitted\n"
    assert cameras_before == sorted(
        (c.name, np.array(c.matrix_world).round(6).tolist())
        for c in empty.children
        if c.type == "CAMERA"
    )


def test_rebuild_needs_a_render_and_names_it(addon, monkeypatch):
    workflow = submodule("workflow")
    errors = submodule("_vendor.videoscene_protocol.errors")
    scene = bpy.context.scene
    empty = workflow.import_build_result(bpy.context, scene, build_result())
    with pytest.raises(errors.VideoSceneError) as caught:
        workflow.start_fit(bpy.context)  # no Generate Video yet
    assert caught.value.code == errors.ErrorCode.UNKNOWN_JOB
    sent = []
    monkeypatch.setattr(workflow.SESSION, "submit", sent.append)
    empty["videoscene_render_job"] = "render42"
    workflow.start_fit(bpy.context)
    workflow.start_fit(bpy.context, "/some/output/jobs/render43")
    assert [job.kind for job in sent] == ["fit_scene", "fit_scene"]
    assert {k: sent[0].params[k] for k in ("scene_id", "render_job")} == {
        "scene_id": "abc123",
        "render_job": "render42",
    }
    # the panel's Rebuild settings, Auto ones as null: what the backend validates
    params = submodule("_vendor.videoscene_protocol.params")
    assert params.validate_params("fit_scene", sent[0].params)["iterations"] is None
    settings = scene.videoscene
    settings.iterations_auto, settings.iterations, settings.video_frames = False, 400, "coarse"
    settings.downscale_auto, settings.downscale = False, 2.0
    workflow.start_fit(bpy.context)
    checked = params.validate_params("fit_scene", sent[-1].params)
    assert (checked["iterations"], checked["video_frames"], checked["downscale"]) == (
        400,
        "coarse",
        2.0,
    )
    assert sent[1].params["render_job"] == "render43"
    with pytest.raises(errors.VideoSceneError):
        workflow.start_fit(bpy.context, "/x/render job!")  # no id: refused before sending
