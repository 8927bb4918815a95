"""cdk-uv-aspect: build the Lambda functions of a CDK app from a uv workspace, with an Aspect.

fn.node.add_metadata("uv", "api")         # or mark_package(fn, "api")
Aspects.of(app).add(UvBundlingAspect())
Aspects.of(app).add(UvPolicyChecks())   # optional: fail synth on functions that would not start
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._aspect import UvBundlingAspect
    from ._errors import UvError
    from ._marker import mark_package
    from ._options import UvOptions
    from ._placeholder import UvCode, uv_image_code
    from ._policy import PolicyOptions, UvPolicyChecks

__all__ = [
    "PolicyOptions",
    "UvBundlingAspect",
    "UvCode",
    "UvError",
    "UvOptions",
    "UvPolicyChecks",
    "mark_package",
    "uv_image_code",
]

# Imported on first use: the CDK's import starts a node process (seconds), which the `cdk-uv` command
# needs only for some of its work.
_HOMES = {
    "PolicyOptions": "._policy",
    "UvBundlingAspect": "._aspect",
    "UvCode": "._placeholder",
    "UvError": "._errors",
    "UvOptions": "._options",
    "UvPolicyChecks": "._policy",
    "mark_package": "._marker",
    "uv_image_code": "._placeholder",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
