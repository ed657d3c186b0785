"""The panel's field-of-view line after Build Scene (the build_scene meta's fov fields)."""

from __future__ import annotations

import bpy

from .conftest import submodule


def test_fov_summary_names_the_value_and_its_source(addon) -> None:
    summary = submodule("workflow").fov_summary
    same = {"fov_deg_per_photo": [67.3, 67.3], "fov_sources": ["exif", "exif"]}
    assert summary(same) == "Photo FOV 67.3\u00b0 (exif)"
    mixed = {"fov_deg_per_photo": [67.3, 60.0], "fov_sources": ["exif", "assumed"]}
    assert summary(mixed) == "Photo FOV 67.3\u00b0 / 60.0\u00b0 (exif / assumed)"
    assert summary({"fov_deg": 50.0, "fov_source": "user"}) == "Photo FOV 50.0\u00b0 (user)"
    assert summary({}) == ""  # an older backend's result: no line


def test_the_panel_shows_the_line_once_a_build_set_it(addon) -> None:
    panels = submodule("ui.panels")
    labels: list[str] = []

    class Recorder:
        def __getattr__(self, name):
            def record(*args, **kwargs):
                if name == "label":
                    labels.append(kwargs.get("text", ""))
                return self

            return record

    state = bpy.context.window_manager.videoscene_state
    state.fov_info = ""
    panels.draw_main(Recorder(), bpy.context)
    assert not any(text.startswith("Photo FOV") for text in labels)
    state.fov_info = "Photo FOV 67.3\u00b0 (exif)"
    panels.draw_main(Recorder(), bpy.context)
    assert "Photo FOV 67.3\u00b0 (exif)" in labels
    state.fov_info = ""
