"""The distilled video model (VideoScene one-step refinement on CogVideoX-Interpolation)."""
