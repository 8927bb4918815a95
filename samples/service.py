"""The sample service: plain aws_lambda.Functions, each marked with the uv package it runs.

Shared by the sample app (``app.py``) and the CDK Pipelines sample (``pipeline/app.py``), which deploys
the same service twice, as the Stages Beta and Prod.
"""

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_uv_aspect import UvCode, mark_package, uv_image_code

# (construct id, package, handler, runtime, architecture)
FUNCTIONS = [
    ("Orders", "orders", "orders.handler.main", lambda_.Runtime.PYTHON_3_12, lambda_.Architecture.X86_64),
    ("OrdersArm", "orders", "orders.handler.main", lambda_.Runtime.PYTHON_3_12, lambda_.Architecture.ARM_64),
    ("Users", "users", "users.handler.main", lambda_.Runtime.PYTHON_3_11, lambda_.Architecture.X86_64),
    ("Report", "report", "main.handler", lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.ARM_64),
]


class SampleStack(Stack):
    def __init__(self, scope: Construct, id: str, *, images: bool = True, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        for name, package, handler, runtime, architecture in FUNCTIONS:
            fn = lambda_.Function(
                self, name, runtime=runtime, architecture=architecture, handler=handler, code=UvCode()
            )
            mark_package(fn, package)
        if images:
            # An image function: Orders' uv build in the Lambda base image (Python from the marker).
            code = uv_image_code(self, "orders.handler.main")
            image = lambda_.DockerImageFunction(self, "OrdersImage", code=code)
            mark_package(image, "orders", python="3.12")
