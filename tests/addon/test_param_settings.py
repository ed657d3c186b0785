"""The panel's job settings are derived from the params spec, and read back into valid params."""

from __future__ import annotations

import bpy
import pytest

from .conftest import ADDON_MODULE, submodule


@pytest.fixture
def spec(addon):
    return submodule("_vendor.videoscene_protocol.params")


def _settings_of(spec_module):
    for job_spec in (spec_module.BUILD_SCENE, spec_module.RENDER_VIDEO, spec_module.FIT_SCENE):
        yield from (param for param in job_spec.params if param.setting)


def test_every_setting_has_the_specs_label_default_range_and_choices(spec) -> None:
    rna = bpy.context.scene.videoscene.bl_rna.properties
    for param in _settings_of(spec):
        prop = rna[param.name]
        assert prop.name == param.title and prop.description == param.doc, param.name
        if param.kind == "choice" and param.name != "memory_mode":
            assert [item.identifier for item in prop.enum_items] == list(param.values)
            assert prop.default == param.default
        if param.kind in ("int", "float"):
            assert (prop.hard_min, prop.hard_max) == pytest.approx(
                (param.minimum, param.maximum), rel=1e-6
            ), param.name
        if param.nullable:
            assert rna[param.name + "_auto"].default is (param.default is None)
        elif param.kind in ("bool", "int", "float"):
            assert prop.default == pytest.approx(param.default, rel=1e-6), param.name


def test_memory_modes_are_the_backends_plus_the_preferences_default(spec) -> None:
    modes = spec.RENDER_VIDEO["memory_mode"].values
    rna = bpy.context.scene.videoscene.bl_rna.properties["memory_mode"]
    assert [item.identifier for item in rna.enum_items] == ["default", *modes]
    prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
    pref_modes = prefs.bl_rna.properties["default_memory_mode"].enum_items
    assert [item.identifier for item in pref_modes] == list(modes)  # no mode the backend refuses


def test_default_settings_give_the_specs_default_params(spec) -> None:
    settings = bpy.context.scene.videoscene
    read = submodule("param_settings").params_from_settings
    for job_spec in (spec.BUILD_SCENE, spec.RENDER_VIDEO, spec.FIT_SCENE):
        params = read(settings, job_spec)
        if "memory_mode" in params:
            params["memory_mode"] = job_spec["memory_mode"].default  # "default" is add-on only
        assert set(params) == {p.name for p in job_spec.params if p.setting}
        for name, value in params.items():  # floats pass through Blender's float32
            default = job_spec[name].default
            if isinstance(default, float | tuple):
                assert value == pytest.approx(default, rel=1e-6), name
            else:
                assert value == default, name


def test_changed_settings_are_sent_and_validate(spec) -> None:
    settings = bpy.context.scene.videoscene
    settings.fov_deg_auto = False
    settings.fov_deg = 72.5
    settings.leap_timestep_auto = False
    settings.leap_timestep = 300
    settings.seed = 7
    settings.refine = False
    settings.background = (0.25, 0.5, 1.0)
    read = submodule("param_settings").params_from_settings
    build = read(settings, spec.BUILD_SCENE)
    assert build["fov_deg"] == pytest.approx(72.5) and build["pose_refine_steps"] is None
    render = read(settings, spec.RENDER_VIDEO)
    render.update(scene_id="abc", memory_mode="auto")
    checked = spec.validate_params("render_video", render)
    assert checked["leap_timestep"] == 300 and checked["seed"] == 7 and checked["refine"] is False
    assert checked["background"] == pytest.approx([0.25, 0.5, 1.0])
    assert spec.validate_params("build_scene", build)["fov_deg"] == pytest.approx(72.5)
