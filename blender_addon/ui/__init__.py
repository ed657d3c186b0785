"""User interface: sidebar panels in the 3D viewport and the sequencer."""
