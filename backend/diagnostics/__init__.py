"""Diagnostics of this machine: `videoscene-backend check --gpu` (gpu_check.py) measures what
the backend's GPU path costs here at the real size, with random weights of the real shapes
(realsize.py), and reports it as a table and one JSON line (report.py)."""
