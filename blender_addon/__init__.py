"""VideoScene for Blender: two photos + a camera path -> a 3D-consistent video.

The heavy lifting runs in a separate backend process (local or remote) reached over ZeroMQ;
this add-on sends jobs, polls the client from a timer and imports the results. Submodules are
imported in register(), so importing the package itself (e.g. for the importers alone) is light.
"""

from __future__ import annotations


def _classes() -> tuple:
    from . import preferences, properties
    from .operators import classes as operator_classes
    from .ui.panels import classes as panel_classes

    return (*preferences.classes, *properties.classes, *operator_classes, *panel_classes)


def register() -> None:
    import bpy

    from . import display, properties
    from .operators import menu_export, menu_import

    for cls in _classes():
        bpy.utils.register_class(cls)
    properties.register_pointers()
    display.register_handlers()
    bpy.types.TOPBAR_MT_file_import.append(menu_import)
    bpy.types.TOPBAR_MT_file_export.append(menu_export)


def unregister() -> None:
    import bpy

    from . import client_glue, display, preferences, properties

    try:
        stop = preferences.get().stop_backend_on_exit
    except KeyError:  # preferences already gone
        stop = True
    from .operators import menu_export, menu_import

    client_glue.shutdown(stop_backend=stop)
    display.unregister_handlers()
    bpy.types.TOPBAR_MT_file_export.remove(menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(menu_import)
    properties.unregister_pointers()
    for cls in reversed(_classes()):
        bpy.utils.unregister_class(cls)
