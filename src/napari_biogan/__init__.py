"""napari-biogan: interactive biological image synthesis.

Only the version lives here, so that napari's plugin discovery imports nothing
heavy (no torch) at start-up.
"""

__version__ = "0.1.0"
