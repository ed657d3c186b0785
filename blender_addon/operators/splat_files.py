"""File > Import / Export > Gaussian Splat (.ply): the 3DGS PLY layout other splat tools read
and write, so splats move between VideoScene and those tools unchanged."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from .. import workflow
from .._vendor.videoscene_protocol.errors import ErrorCode, VideoSceneError
from ..importers.ply import splat_arrays_from_ply, write_splat_ply
from ..importers.splat import NOT_A_SPLAT_HINT, splat_columns
from .reporting import reports_errors


class VIDEOSCENE_OT_import_splat_ply(bpy.types.Operator, ImportHelper):
    """Import a Gaussian-splat PLY (3DGS layout) as a point cloud under a scene empty"""

    bl_idname = "videoscene.import_splat_ply"
    bl_label = "Import Gaussian Splat (.ply)"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={"HIDDEN"})

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(self.filepath)
        if not path.is_file():
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS, f"{path} is not a file.", "Choose an existing .ply file."
            )
        arrays = splat_arrays_from_ply(path)
        workflow.import_ply_scene(context, path, arrays)
        self.report({"INFO"}, f"Imported {len(arrays['means'])} Gaussians")
        return {"FINISHED"}


class VIDEOSCENE_OT_export_splat_ply(bpy.types.Operator, ExportHelper):
    """Export the active splat as a binary 3DGS PLY (positions in the splat's own frame)"""

    bl_idname = "videoscene.export_splat_ply"
    bl_label = "Export Gaussian Splat (.ply)"

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={"HIDDEN"})

    @reports_errors
    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = context.active_object
        if obj is None:
            raise VideoSceneError(ErrorCode.BAD_PARAMS, "No active object.", NOT_A_SPLAT_HINT)
        means, gs = splat_columns(obj)
        path = Path(bpy.path.abspath(self.filepath))
        try:
            write_splat_ply(path, means, gs)
        except OSError as exc:
            raise VideoSceneError(
                ErrorCode.BAD_PARAMS,
                f"Could not write {path}: {exc.strerror or exc}.",
                "Choose a folder you can write to.",
            ) from exc
        self.report({"INFO"}, f"Exported {len(means)} Gaussians to {path.name}")
        return {"FINISHED"}


def menu_import(self, context: bpy.types.Context) -> None:
    self.layout.operator(VIDEOSCENE_OT_import_splat_ply.bl_idname, text="Gaussian Splat (.ply)")


def menu_export(self, context: bpy.types.Context) -> None:
    self.layout.operator(VIDEOSCENE_OT_export_splat_ply.bl_idname, text="Gaussian Splat (.ply)")


classes = (VIDEOSCENE_OT_import_splat_ply, VIDEOSCENE_OT_export_splat_ply)
