"""The metadata contract between the bundling aspect and what reads a cloud assembly (reports, checks).

A leaf module with no CDK import, so that the ``cdk-uv`` command starts without starting jsii.
"""

MARKER = "uv"
"""The metadata type of the marker: ``fn.node.add_metadata("uv", "api")``."""

BUILT = "uv:build"
"""The metadata type the bundling aspect writes on each function it swapped (read by reports/checks)."""
