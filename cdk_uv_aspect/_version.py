"""This library's version, as installed: part of every build key and of every report."""

from importlib.metadata import version

LIBRARY_VERSION = version("cdk-uv-aspect")
