"""hoimask: masked pre-training components for 3D hand-object interaction pose estimation.

Subpackages are independent and import lazily; ``import hoimask`` itself only
sets the version so that ``import hoimask.masking`` stays light.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hoimask")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
