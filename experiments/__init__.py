"""Experiments run with the toolkit's public library (not part of the package)."""
