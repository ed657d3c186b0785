"""VideoScene GPU backend (import name: videoscene_backend)."""
