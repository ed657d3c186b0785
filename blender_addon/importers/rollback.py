"""Undo a half-finished import: remove every datablock made inside the block when it fails.

Blender's undo stack does not help here (result handlers run from a timer, outside any
operator), so the kinds of data an import creates are compared before and after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import bpy

# The bpy.data collections an import adds to (objects first: they use the others).
CREATED_KINDS = (
    "objects",
    "meshes",
    "pointclouds",
    "cameras",
    "materials",
    "node_groups",
    "collections",
)


def _snapshot() -> dict[str, set]:
    return {kind: set(getattr(bpy.data, kind)) for kind in CREATED_KINDS}


@contextmanager
def removed_on_error() -> Iterator[None]:
    """Run the block; when it raises, remove the datablocks it created, then re-raise."""
    before = _snapshot()
    try:
        yield
    except BaseException:
        created = [
            block
            for kind in CREATED_KINDS
            for block in getattr(bpy.data, kind)
            if block not in before[kind]
        ]
        if created:
            bpy.data.batch_remove(created)
        raise
