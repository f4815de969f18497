"""The embedding inference server (``python -m server``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("embedserve")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
