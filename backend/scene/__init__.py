"""Gaussian scenes: the type, PLY files, the default flythrough."""
