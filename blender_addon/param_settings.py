"""The panel's job settings, derived from the job params spec, and job params read back from them.

Each param the spec marks as a `setting` becomes a Blender property of the same name, with the
spec's label, doc, default, range or choices. A nullable param (null = "let the backend choose")
gets a second property `<name>_auto`, an "Auto" toggle that sends null while it is on.
"""

from __future__ import annotations

from typing import Any

from bpy.props import BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntProperty

from ._vendor.videoscene_protocol.params import JobSpec, Param

AUTO_SUFFIX = "_auto"


def enum_items(param: Param) -> list[tuple[str, str, str]]:
    return [(choice.value, choice.label, choice.doc) for choice in param.choices]


def _start_value(param: Param) -> Any:
    return param.manual_default if param.nullable else param.default


def bpy_property(param: Param) -> Any:
    """The Blender property for one param (ids are never settings)."""
    common = {"name": param.title, "description": param.doc}
    if param.kind == "bool":
        return BoolProperty(default=param.default, **common)
    if param.kind == "choice":
        return EnumProperty(items=enum_items(param), default=param.default, **common)
    if param.kind == "color":
        default = tuple(param.default)
        return FloatVectorProperty(
            subtype="COLOR", size=3, min=0.0, max=1.0, default=default, **common
        )
    if param.kind == "int":
        return IntProperty(
            default=int(_start_value(param)),
            min=int(param.minimum),
            max=int(param.maximum),
            **common,
        )
    if param.kind == "float":
        return FloatProperty(
            default=float(_start_value(param)),
            min=float(param.minimum),
            max=float(param.maximum),
            **common,
        )
    raise ValueError(f"{param.name}: {param.kind} params are not panel settings")


def setting_properties(spec: JobSpec) -> dict[str, Any]:
    """name -> Blender property for every setting of the spec (plus the Auto toggles)."""
    properties: dict[str, Any] = {}
    for param in spec.params:
        if not param.setting:
            continue
        properties[param.name] = bpy_property(param)
        if param.nullable:
            properties[param.name + AUTO_SUFFIX] = BoolProperty(
                name="Auto",
                default=param.default is None,
                description=f"{param.title}: {param.null_doc}",
            )
    return properties


def params_from_settings(settings: Any, spec: JobSpec) -> dict[str, Any]:
    """The spec's settings read from a property group, as JSON values (null where Auto is on)."""
    params: dict[str, Any] = {}
    for param in spec.params:
        if not param.setting:
            continue
        if param.nullable and getattr(settings, param.name + AUTO_SUFFIX):
            params[param.name] = None
            continue
        value = getattr(settings, param.name)
        if param.kind == "color":
            value = [float(channel) for channel in value]
        elif param.kind in ("bool", "int", "float"):
            value = {"bool": bool, "int": int, "float": float}[param.kind](value)
        params[param.name] = value
    return params


def auto_toggle(settings: Any, name: str) -> str | None:
    """The name of a setting's Auto toggle, or None when it has none (for drawing)."""
    toggle = name + AUTO_SUFFIX
    return toggle if hasattr(settings, toggle) else None
