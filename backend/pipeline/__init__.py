"""Job kinds and their handlers (build_scene, load_scene, render_video)."""
