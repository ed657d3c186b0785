"""Importers: Gaussian splats -> point clouds, video frames -> sequencer strips."""
