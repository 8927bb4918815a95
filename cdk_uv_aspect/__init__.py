"""cdk-uv-aspect: build the Lambda functions of a CDK app from a uv workspace, with an Aspect.

    fn.node.add_metadata("uv", "api")         # or mark_package(fn, "api")
    Aspects.of(app).add(UvBundlingAspect())
    Aspects.of(app).add(UvPolicyChecks())   # optional: fail synth on functions that would not start
"""

from ._aspect import UvBundlingAspect
from ._errors import UvError
from ._marker import UvCode, mark_package, uv_image_code
from ._options import UvOptions
from ._policy import UvPolicyChecks

__all__ = [
    "UvBundlingAspect", "UvCode", "UvError", "UvOptions", "UvPolicyChecks", "mark_package", "uv_image_code",
]
