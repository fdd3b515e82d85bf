"""Top-down 2D human pose estimation with Polarized Self-Attention."""

__version__ = "0.1.0"
