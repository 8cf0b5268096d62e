"""survey2survey: translate galaxy image cutouts from one sky survey into another.

The command-line tool is ``s2s``; every command is a thin wrapper around a library
function importable from this package.  Importing the package is cheap: heavy
dependencies (torch, galsim, photutils, reproject, onnxruntime) are imported by the
functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
