"""The add-on's own splat display (Blender before 5.3) against the backend's render of the same
splat and camera (Blender's own splats, 5.3+: test_native.py).

A few thousand random Gaussians in front of a camera, rendered headless through the add-on's
display (EEVEE through EGL/Mesa software GL, Cycles on the CPU, Workbench) and by the backend's
CPU torch renderer, run in the backend's own Python (bpy and torch never share a process; the
Blender 4.2 environment has no torch at all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from mathutils import Matrix

from .conftest import addon_display_only, evaluated_point_cloud, submodule

BACKEND = Path(
    os.environ.get("VIDEOSCENE_TEST_BACKEND")
    or Path(sys.executable).with_name("videoscene-backend")
)
BACKEND_PYTHON = BACKEND.with_name("python")
REFERENCE_SCRIPT = Path(__file__).with_name("backend_reference.py")
WIDTH, HEIGHT = 64, 48
LENS_MM, SENSOR_MM = 35.0, 36.0

pytestmark = [
    pytest.mark.skipif(
        not BACKEND_PYTHON.exists(), reason="the backend's Python (with torch) is not installed"
    ),
    addon_display_only,
]


def splat_in_view(count: int = 3000, seed: int = 0) -> dict[str, np.ndarray]:
    """Random anisotropic Gaussians filling the view of an OpenCV camera at the origin."""
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(count, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    means = np.stack(
        [
            rng.uniform(-1.2, 1.2, count),
            rng.uniform(-0.9, 0.9, count),
            rng.uniform(2.5, 4.5, count),
        ],
        axis=1,
    )
    return {
        "means": means.astype(np.float32),
        "quats": quats,
        "scales": rng.uniform(0.01, 0.08, size=(count, 3)).astype(np.float32),
        "opacities": rng.uniform(0.2, 1.0, size=count).astype(np.float32),
        "colors": rng.uniform(0.0, 1.0, size=(count, 3)).astype(np.float32),
    }


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10.0 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def backend_render(folder: Path, arrays: dict) -> np.ndarray:
    """The backend's render of the splat arrays at the test camera (in its own Python)."""
    cameras = pytest.importorskip("videoscene_protocol.cameras")
    ply = submodule("importers.ply")
    ply.write_splat_ply(folder / "splat.ply", arrays["means"], ply.gs_parameters(arrays))
    K = cameras.intrinsics_from_blender(LENS_MM, SENSOR_MM, 24.0, "AUTO", WIDTH, HEIGHT)
    camera = {"c2w": np.eye(4).tolist(), "K": K.tolist(), "width": WIDTH, "height": HEIGHT}
    (folder / "cameras.json").write_text(json.dumps([camera]))
    command = [str(BACKEND_PYTHON), str(REFERENCE_SCRIPT), str(folder / "splat.ply")]
    command += [str(folder / "cameras.json"), str(folder / "reference.npy")]
    subprocess.run(command, check=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "2"})
    return np.load(folder / "reference.npy")[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, np.ndarray]:
    """The splat arrays and the backend's render of them at the test camera."""
    arrays = splat_in_view()
    return arrays, backend_render(tmp_path_factory.mktemp("display_reference"), arrays)


@pytest.fixture(scope="module")
def coherent_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, np.ndarray]:
    """coherent_splat() and the backend's render of it."""
    arrays = coherent_splat()
    return arrays, backend_render(tmp_path_factory.mktemp("coherent_reference"), arrays)


def coherent_splat() -> dict[str, np.ndarray]:
    """The test Gaussians coloured as a scene is, by where they are (a smooth colour field
    rather than an independent random colour each)."""
    arrays = splat_in_view()
    x, y, z = arrays["means"].T
    field = np.stack([np.sin(3.0 * x + z), np.cos(2.5 * y - x), np.sin(2.0 * (x + y) + 2.0 * z)])
    arrays["colors"] = (0.5 + 0.45 * field.T).astype(np.float32)
    return arrays


def display_scene(addon, arrays: dict, native: bool | None = None) -> bpy.types.Object:
    """The splat imported by the add-on, its camera as the backend's, nothing else in view."""
    cameras = submodule("_vendor.videoscene_protocol.cameras")
    splat = submodule("importers.splat")
    scene = bpy.context.scene
    for obj in list(scene.objects):
        bpy.data.objects.remove(obj)
    obj = splat.import_splat(bpy.context, arrays, None, scene.collection, native=native)
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    camera.matrix_world = Matrix(cameras.opencv_to_blender_c2w(np.eye(4)).tolist())
    camera.data.lens, camera.data.sensor_width = LENS_MM, SENSOR_MM
    scene.camera = camera
    render = scene.render
    render.resolution_x, render.resolution_y, render.resolution_percentage = WIDTH, HEIGHT, 100
    scene.world = None  # black, as the backend's default background
    return obj


def rendered(tmp_path: Path) -> np.ndarray:
    """Render the scene camera to a PNG and read it back (values as written, 0..1)."""
    scene = bpy.context.scene
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(tmp_path / "render.png")
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(scene.render.filepath)
    pixels = np.array(image.pixels[:], dtype=np.float32).reshape(HEIGHT, WIDTH, 4)
    bpy.data.images.remove(image)
    return pixels[::-1, :, :3]


def use_eevee(samples: int, filter_px: float = 0.0) -> None:
    """EEVEE at `samples`; a 0 px filter samples pixel centres, unfiltered, as the backend."""
    scene = bpy.context.scene
    scene.render.engine = submodule("compat").eevee_engine()
    scene.eevee.taa_render_samples = samples
    scene.render.filter_size = filter_px


def use_cycles(samples: int) -> None:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device, cycles.samples, cycles.use_denoising = "CPU", samples, False
    cycles.pixel_filter_type, cycles.filter_width = "BOX", 0.01
    display = submodule("display")
    display.set_cycles_transparency(scene)


def test_colours_match_backend_is_the_users_choice(addon, reference):
    arrays, _ = reference
    display_scene(addon, arrays)
    display = submodule("display")
    scene = bpy.context.scene
    before = scene.view_settings.view_transform
    assert not display.colours_match_backend(scene)  # import never touches colour management
    assert scene.view_settings.view_transform == before
    display.set_colours_match_backend(scene, True)
    assert display.colours_match_backend(scene) and scene.view_settings.view_transform == "Raw"
    display.set_colours_match_backend(scene, False)
    assert not display.colours_match_backend(scene)
    assert scene.view_settings.view_transform == "Standard"


def test_cycles_matches_backend(addon, reference, tmp_path):
    arrays, expected = reference
    obj = display_scene(addon, arrays)
    display = submodule("display")
    display.set_colours_match_backend(bpy.context.scene, True)
    use_cycles(samples=1)
    display.set_sorted(obj, True)
    # Sorted: quads parallel to the image plane, which Cycles' rays meet in the backend's order.
    image = rendered(tmp_path)
    print("cycles sorted", psnr(image, expected))
    assert psnr(image, expected) >= 30.0
    # Dithered: spheres, entered at their radius, so neighbours of different sizes composite
    # out of the backend's order (measured 29.8 dB here).
    display.set_sorted(obj, False)
    spheres = rendered(tmp_path)
    print("cycles spheres", psnr(spheres, expected))
    assert 27.0 <= psnr(spheres, expected) < psnr(image, expected)
    # Linear-light compositing (the Standard view) blends edges differently: measurably worse.
    display.set_sorted(obj, True)
    display.set_colours_match_backend(bpy.context.scene, False)
    print("cycles linear", psnr(rendered(tmp_path), expected))
    assert psnr(rendered(tmp_path), expected) < psnr(image, expected) - 2.0


def test_eevee_sorted_matches_backend(addon, reference, tmp_path):
    arrays, expected = reference
    obj = display_scene(addon, arrays)
    display = submodule("display")
    display.set_colours_match_backend(bpy.context.scene, True)
    display.set_sorted(obj, True)
    use_eevee(samples=1)  # blended in sorted order: one sample is exact
    image = rendered(tmp_path)
    print("eevee sorted", psnr(image, expected))
    assert psnr(image, expected) >= 30.0


def test_eevee_dithered_matches_backend_at_the_shipped_samples(addon, reference, tmp_path):
    arrays, expected = reference
    display_scene(addon, arrays)
    display = submodule("display")
    scene = bpy.context.scene
    display.set_colours_match_backend(scene, True)
    # Dithering converges through EEVEE's sub-pixel jitter, which Blender's default 1.5 px
    # filter gives (with no filter: 24.8 dB at 64 samples). Measured 28.0 dB (25.5 at 16).
    use_eevee(samples=16, filter_px=1.5)
    scene.eevee.taa_samples = 16
    assert not display.dithered_converges(scene)
    display.set_render_settings(scene)  # the panel's "Render Settings for Splats"
    assert scene.eevee.taa_render_samples == scene.eevee.taa_samples == display.DITHERED_SAMPLES
    assert display.dithered_converges(scene)
    assert psnr(rendered(tmp_path), expected) >= 27.0
    # more samples than the display needs are the user's and stay
    scene.eevee.taa_render_samples = 256
    display.set_render_settings(scene)
    assert scene.eevee.taa_render_samples == 256


def test_display_modifier_sorts_thins_and_picks_the_material(addon):
    """On both point-cloud paths: the Gaussian attributes reach the evaluated points, Sorted
    orders them far to near from the scene camera with the blended material, and the viewport
    density keeps every k-th point (the viewport depsgraph is what this evaluates)."""
    arrays = splat_in_view(count=1000, seed=1)
    obj = display_scene(addon, arrays)
    display = submodule("display")
    material = submodule("display.material")
    shown = evaluated_point_cloud(obj)
    assert shown["count"] == 1000 and shown["materials"] == [material.DITHERED_MATERIAL]
    attributes = shown["attributes"]
    for name in ("gs_color", "gs_srgb", "gs_axis_x", "gs_axis_y", "gs_axis_z", "gs_variance"):
        assert name in attributes
    assert np.allclose(attributes["gs_variance"], arrays["scales"] ** 2, rtol=1e-5)
    # the screen blur: 0.3 px^2 at the point's distance, the pixel angle driven from the camera
    pixel = display.modifier.pixel_angle(bpy.context.scene)
    distance = np.linalg.norm(arrays["means"], axis=1)
    assert np.allclose(attributes["gs_blur"][:, 0], 0.3 * (distance * pixel) ** 2, rtol=1e-3)

    assert np.allclose(attributes["gs_center"], arrays["means"], atol=1e-6)

    # Sorted: one quad per Gaussian, parallel to the image plane through its centre, far to
    # near by depth along the camera's axis (here the OpenCV camera's z is the splat's z).
    # the driver follows the camera's sensor fit (the backend's intrinsics do)
    camera = bpy.context.scene.camera.data
    cameras = submodule("_vendor.videoscene_protocol.cameras")
    for fit in ("HORIZONTAL", "VERTICAL", "AUTO"):
        camera.sensor_fit = fit
        K = cameras.intrinsics_from_blender(
            camera.lens, camera.sensor_width, camera.sensor_height, fit, WIDTH, HEIGHT
        )
        assert display.modifier.pixel_angle(bpy.context.scene) == pytest.approx(1.0 / K[0, 0])
        blur = evaluated_point_cloud(obj)["attributes"]["gs_blur"][:, 0]
        assert np.allclose(blur, 0.3 * (distance / K[0, 0]) ** 2, rtol=1e-3)

    display.set_sorted(obj, True)
    quads = evaluated_quads(obj)
    assert quads["materials"] == [material.SORTED_MATERIAL]
    centres = quads["gs_center"]
    assert len(centres) == 1000
    assert np.all(np.diff(centres[:, 2]) <= 1e-6)  # far to near
    assert sorted(centres[:, 2].tolist()) == sorted(arrays["means"][:, 2].tolist())
    assert np.allclose(quads["corners"][:, :, 2], centres[:, 2:3], atol=1e-5)
    # each quad holds the circle of the point's radius around the centre
    half = np.abs(quads["corners"][:, :, :2] - centres[:, None, :2]).min(axis=(1, 2))
    assert np.all(half >= quads["radius"] * 0.999)

    display.set_viewport_every(obj, 4)
    assert len(evaluated_quads(obj)["gs_center"]) == 250
    display.set_sorted(obj, False)
    assert evaluated_point_cloud(obj)["count"] == 250


def evaluated_quads(obj: bpy.types.Object) -> dict[str, np.ndarray | list]:
    """The sorted display's evaluated mesh: per quad (in face order) its 4 corners, its
    gs_center and point radius (3.33 sigma of the widest axis with the blur; one per quad: all 4
    corners carry the Gaussian's attributes), its materials."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    for instance in depsgraph.object_instances:  # instances are only valid inside the loop
        shown = instance.object
        if shown.original != obj or shown.type != "MESH":
            continue
        mesh = shown.data
        corners = np.empty(len(mesh.loops), dtype=np.int32)
        mesh.loops.foreach_get("vertex_index", corners)
        values = {}
        layout = {"position": 3, "gs_center": 3, "gs_variance": 3, "gs_blur": 1}
        for name, width in layout.items():
            values[name] = np.empty(len(mesh.vertices) * width, dtype=np.float32)
            key = "value" if width == 1 else "vector"
            mesh.attributes[name].data.foreach_get(key, values[name])
        widest = values["gs_variance"].reshape(-1, 3).max(axis=1) + values["gs_blur"]
        radius = submodule("display.attributes").RADIUS_SIGMAS * np.sqrt(widest)
        quads = corners.reshape(-1, 4)
        assert np.all(np.diff(quads[:, 0]) > 0)  # faces in vertex order
        return {
            "corners": values["position"].reshape(-1, 3)[quads],
            "gs_center": values["gs_center"].reshape(-1, 3)[quads[:, 0]],
            "radius": radius[quads[:, 0]],
            "materials": [m.name for m in mesh.materials if m is not None],
        }
    raise AssertionError(f"{obj.name} shows no mesh")


def use_workbench() -> None:
    """Solid mode's defaults: flat light, material colours, the Standard view."""
    scene = bpy.context.scene
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light, scene.display.shading.color_type = "FLAT", "MATERIAL"
    scene.view_settings.view_transform, scene.view_settings.look = "Standard", "None"
    # Workbench renders without a world on a white backdrop in 4.2 (black in 5.0): a black
    # world, as the backend's background
    scene.world = bpy.data.worlds.new("Black")
    scene.world.color = (0.0, 0.0, 0.0)


@pytest.mark.parametrize("which", ["random", "coherent"])
def test_solid_mode_shows_the_colours(addon, reference, coherent_reference, which, tmp_path):
    """Workbench shows each Gaussian's colour (through the splat's Solid companion), not grey
    and not one mean colour."""
    arrays, expected = reference if which == "random" else coherent_reference
    display_scene(addon, arrays)
    use_workbench()
    image = rendered(tmp_path)
    if os.environ.get("VIDEOSCENE_SAVE_RENDERS"):
        folder = Path(os.environ["VIDEOSCENE_SAVE_RENDERS"])
        np.save(folder / f"solid_{which}_{bpy.app.version_string}.npy", image)
        np.save(folder / f"solid_{which}_reference.npy", expected)
    print("solid PSNR", which, bpy.app.version_string, psnr(image, expected))
    mean = np.broadcast_to(expected.reshape(-1, 3).mean(axis=0), expected.shape)
    # Issue #20 asks 18 dB. Workbench draws opaque faces, one colour a face, where the backend
    # blends: octahedra out to alpha 1/4, 7 dithered palette levels, measured 18.3 dB (random
    # colours) and 21.1 dB (a colour field) in 5.0.1, 18.6 and 21.2 dB in 4.2.23. The splat's
    # mean colour alone, as before, gives 13.0 dB.
    assert psnr(image, expected) >= 18.0
    assert psnr(image, expected) > psnr(mean, expected) + 2.0


def test_a_copied_splat_gets_a_solid_companion_and_a_deleted_one_takes_it_along(addon):
    """Shift+D copies the splat but not its companion (a child that cannot be selected): the
    depsgraph handler gives the copy one, so Solid mode shows it; deleting a splat deletes
    its companion with it. Timers do not fire in the bpy module, handlers do."""
    solid = submodule("display.solid")
    splat = display_scene(addon, splat_in_view(count=50, seed=5))
    scene, view_layer = bpy.context.scene, bpy.context.view_layer
    for obj in scene.objects:
        obj.select_set(obj == splat)
    view_layer.objects.active = splat
    bpy.ops.object.duplicate()
    copy = view_layer.objects.active
    assert copy != splat
    view_layer.update()  # a depsgraph update: the handler runs (the operator's own did too)
    shown = solid.companion(copy)
    assert shown is not None and shown != solid.companion(splat)
    assert len(evaluated_mesh_faces(shown)) == 8 * np.count_nonzero(
        splat_in_view(count=50, seed=5)["opacities"] > solid.SHOWN_ALPHA
    )
    assert solid.keep_companions(scene) == 0  # nothing left to do
    for hide in (True, False):  # H and Alt+H on the splat, the monitor toggle
        copy.hide_set(hide)
        view_layer.update()
        assert solid.companion(copy).hide_get() == hide
        copy.hide_viewport = hide
        view_layer.update()
        assert solid.companion(copy).hide_viewport == hide
    companion_name = solid.companion(splat).name
    bpy.data.objects.remove(splat)
    view_layer.update()
    assert companion_name not in bpy.data.objects
    assert solid.companion(copy) is not None  # the copy keeps its own


def evaluated_mesh_faces(obj: bpy.types.Object) -> list:
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    return list(evaluated.to_mesh().polygons)


def test_solid_companion_is_not_in_eevee_or_cycles_renders(addon, reference, tmp_path):
    """The companion is Solid mode's alone: EEVEE (sorted) and Cycles render the same with it
    as without it."""
    arrays, _ = reference
    obj = display_scene(addon, arrays)
    solid = submodule("display.solid")
    display = submodule("display")
    display.set_colours_match_backend(bpy.context.scene, True)
    display.set_sorted(obj, True)
    companion = solid.companion(obj)
    assert companion is not None and not companion.visible_camera
    renders = {}
    for engine in ("eevee", "cycles"):
        use_eevee(samples=1) if engine == "eevee" else use_cycles(samples=1)
        companion.hide_render = False
        with_companion = rendered(tmp_path)
        companion.hide_render = True
        renders[engine] = psnr(with_companion, rendered(tmp_path))
    assert min(renders.values()) >= 60.0, renders
    # and Workbench draws nothing of the splat's own points beneath the companion
    use_workbench()
    assert rendered(tmp_path).max() < 0.02  # the black world, dithered to 8 bits


def test_solid_palette_is_dithered_so_a_flat_colour_averages_right(addon, tmp_path):
    """A colour between two palette levels shows as a mix of both in proportion (0.55 sits
    30 % of the way from level 3/6 to 4/6), not as the nearest level (0.5): smooth skies and
    walls keep their tone in Solid mode."""
    solid = submodule("display.solid")
    arrays = splat_in_view(count=3000, seed=6)
    arrays["colors"][:] = 0.55
    arrays["opacities"][:] = 1.0
    display_scene(addon, arrays)
    use_workbench()
    image = rendered(tmp_path)
    covered = image.max(axis=2) > 0.1
    for axis in (0, 1):  # away from the splat's antialiased rim, which blends with black
        for shift in (-2, -1, 1, 2):
            covered &= np.roll(image.max(axis=2) > 0.1, shift, axis=axis)
    assert covered.mean() > 0.4
    step = 1.0 / (solid.PALETTE_LEVELS - 1)
    shown = np.unique(np.round(image[covered] / step))
    assert {3.0, 4.0} <= set(shown.tolist())  # both neighbouring levels
    print("solid dithered mean", float(image[covered].mean()), "of 0.55")
    assert abs(float(image[covered].mean()) - 0.55) < 0.02


def test_solid_mode_leaves_other_objects_and_the_shading_alone(addon, reference, tmp_path):
    arrays, _ = reference
    shading = bpy.context.scene.display.shading
    shading.color_type, shading.light = "OBJECT", "STUDIO"
    red = bpy.data.materials.new("A user's red")
    red.diffuse_color = (1.0, 0.0, 0.0, 1.0)
    display_scene(addon, arrays)
    assert (shading.color_type, shading.light) == ("OBJECT", "STUDIO")
    assert tuple(red.diffuse_color) == (1.0, 0.0, 0.0, 1.0)
    mesh = bpy.data.meshes.new("Card")  # a card in front of the splat, facing the camera
    mesh.from_pydata(
        [(-0.2, -0.2, 2.0), (0.2, -0.2, 2.0), (0.2, 0.2, 2.0), (-0.2, 0.2, 2.0)], [], [(0, 1, 2, 3)]
    )
    mesh.materials.append(red)
    card = bpy.data.objects.new("Card", mesh)
    bpy.context.scene.collection.objects.link(card)
    use_workbench()
    image = rendered(tmp_path)
    assert np.allclose(image[HEIGHT // 2, WIDTH // 2], (1.0, 0.0, 0.0), atol=0.01)


def test_an_older_files_sphere_material_is_rebuilt(addon):
    """A .blend saved by the add-on before the Gaussian display holds an emission-only
    "VideoScene Splat" material: importing a splat rebuilds it rather than reusing it."""
    material = submodule("display.material")
    old = bpy.data.materials.new(material.DITHERED_MATERIAL)
    if old.node_tree is None:
        old.use_nodes = True
    display_scene(addon, splat_in_view(count=10, seed=3))
    assert bpy.data.materials[material.DITHERED_MATERIAL] == old
    assert material._uses_gaussian_group(old) and old.surface_render_method == "DITHERED"


def test_an_older_files_node_groups_are_rebuilt_in_place(addon):
    """A .blend from an add-on whose display read Point Info keeps node groups under these
    names: they are rebuilt in place (same datablocks), so the centre comes from gs_center."""
    material = submodule("display.material")
    modifier = submodule("display.modifier")
    solid = submodule("display.solid")
    old_shader = bpy.data.node_groups.new(material.GROUP_NAME, "ShaderNodeTree")
    old_geometry = bpy.data.node_groups.new(modifier.GROUP_NAME, "GeometryNodeTree")
    old_solid = bpy.data.node_groups.new(solid.GROUP_NAME, "GeometryNodeTree")
    old_shader.nodes.new("ShaderNodePointInfo")
    old_solid.nodes.new("NodeGroupInput")  # an older Solid graph: its octahedra sized otherwise
    obj = display_scene(addon, splat_in_view(count=10, seed=4))
    assert bpy.data.node_groups[material.GROUP_NAME] == old_shader
    assert bpy.data.node_groups[modifier.GROUP_NAME] == old_geometry
    assert bpy.data.node_groups[solid.GROUP_NAME] == old_solid
    assert solid.companion(obj).modifiers[solid.MODIFIER_NAME].node_group == old_solid
    assert len(old_solid.nodes) > 1
    for group in (old_shader, old_geometry, old_solid):
        assert group[material.VERSION_KEY] == material.GROUPS_VERSION
    assert not any(node.type == "POINT_INFO" for node in old_shader.nodes)
    assert any(
        getattr(node, "attribute_name", "") == material.CENTER_ATTRIBUTE
        for node in old_shader.nodes
    )
    sorted_node = material._gaussian_group_node(material.gaussian_material(sorted_order=True))
    assert sorted_node.inputs[material.TWO_SIDED_INPUT].default_value == 1.0
