"""Add-on preferences: where the backend runs, keys for a remote one, the output folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from . import backend_process
from ._vendor.videoscene_protocol.params import RENDER_VIDEO
from .param_settings import enum_items

ADDON_PACKAGE = __package__


DEFAULT_LOCAL_COMMAND = "videoscene-backend serve --bind {address} --output-dir {output_dir}"


class VideoScenePreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_PACKAGE

    backend_mode: EnumProperty(
        name="Backend",
        items=[
            ("LOCAL", "Local", "Start a backend process on this computer"),
            ("REMOTE", "Remote", "Connect to a backend on another computer (CurveZMQ keys)"),
        ],
        default="LOCAL",
    )
    local_command: StringProperty(
        name="Command",
        description="Starts the local backend; {address} and {output_dir} are filled in",
        default=DEFAULT_LOCAL_COMMAND,
    )
    local_address: StringProperty(
        name="Address",
        description="Loopback address the local backend listens on",
        default="tcp://127.0.0.1:5557",
    )
    start_timeout_s: FloatProperty(
        name="Start Timeout",
        description="Seconds to wait for a starting backend to answer",
        default=60.0,
        min=1.0,
        soft_max=600.0,
    )
    remote_address: StringProperty(
        name="Address", description="The remote backend's address", default="tcp://127.0.0.1:5557"
    )
    server_public_key: StringProperty(
        name="Server Public Key",
        description="The backend's public key file (server.key from 'videoscene-backend keygen')",
        subtype="FILE_PATH",
    )
    client_secret_key: StringProperty(
        name="Client Key Pair",
        description="This computer's key pair file (client.key_secret from the keygen command)",
        subtype="FILE_PATH",
    )
    output_dir: StringProperty(
        name="Output Folder",
        description="Frames, scene PLYs and the backend log go here (empty: a temporary folder)",
        subtype="DIR_PATH",
    )
    default_memory_mode: EnumProperty(
        name="Default Memory Mode",
        description=RENDER_VIDEO["memory_mode"].doc,
        items=enum_items(RENDER_VIDEO["memory_mode"]),
        default=RENDER_VIDEO["memory_mode"].default,
    )
    stop_backend_on_exit: BoolProperty(
        name="Stop Backend on Unregister",
        description="Stop the local backend when the add-on is disabled",
        default=True,
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "backend_mode", expand=True)
        box = layout.box()
        if self.backend_mode == "LOCAL":
            box.prop(self, "local_command")
            box.prop(self, "local_address")
            box.prop(self, "start_timeout_s")
            state = "running" if backend_process.is_running() else "not running"
            box.label(text=f"Local backend: {state}", icon="CONSOLE")
            box.label(text=f"Log: {output_dir(self) / backend_process.LOG_NAME}")
        else:
            box.prop(self, "remote_address")
            box.prop(self, "server_public_key")
            box.prop(self, "client_secret_key")
            if not bpy.app.online_access:
                box.label(
                    text="Online access is off: only loopback addresses can be used",
                    icon="ERROR",
                )
        layout.prop(self, "output_dir")
        layout.prop(self, "default_memory_mode")
        layout.prop(self, "stop_backend_on_exit")


def get(context: bpy.types.Context | None = None) -> VideoScenePreferences:
    context = context or bpy.context
    return context.preferences.addons[ADDON_PACKAGE].preferences


def output_dir(prefs: VideoScenePreferences) -> Path:
    if prefs.output_dir:
        return Path(bpy.path.abspath(prefs.output_dir))
    return Path(tempfile.gettempdir()) / "videoscene"


classes = (VideoScenePreferences,)
