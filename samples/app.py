"""The sample CDK app: plain aws_lambda.Functions, each marked with the uv package it runs.

``-c assets-bucket=NAME`` makes the stack upload its assets to that existing bucket with the CLI's own
credentials (``CliCredentialsStackSynthesizer``): no ``cdk bootstrap`` needed, which is how the deploy
tests reach a local AWS emulator. Without it the stack uses CDK's default (bootstrapped) synthesizer.
"""

from aws_cdk import App, Aspects, CliCredentialsStackSynthesizer, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from cdk_uv_aspect import UvBundlingAspect, UvCode, mark_package, uv_image_code

# (construct id, package, handler, runtime, architecture)
FUNCTIONS = [
    ("Orders", "orders", "orders.handler.main", lambda_.Runtime.PYTHON_3_12, lambda_.Architecture.X86_64),
    ("OrdersArm", "orders", "orders.handler.main", lambda_.Runtime.PYTHON_3_12, lambda_.Architecture.ARM_64),
    ("Users", "users", "users.handler.main", lambda_.Runtime.PYTHON_3_11, lambda_.Architecture.X86_64),
    ("Report", "report", "main.handler", lambda_.Runtime.PYTHON_3_13, lambda_.Architecture.ARM_64),
]


class SampleStack(Stack):
    def __init__(self, scope: Construct, id: str, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        for name, package, handler, runtime, architecture in FUNCTIONS:
            fn = lambda_.Function(
                self, name, runtime=runtime, architecture=architecture, handler=handler, code=UvCode()
            )
            mark_package(fn, package)
        # An image function: the same uv build as Orders, in the Lambda base image (Python from the marker).
        image = lambda_.DockerImageFunction(self, "OrdersImage", code=uv_image_code(self, "orders.handler.main"))
        mark_package(image, "orders", python="3.12")


app = App()
bucket = app.node.try_get_context("assets-bucket")
synthesizer = CliCredentialsStackSynthesizer(file_assets_bucket_name=bucket) if bucket else None
SampleStack(app, "UvSample", synthesizer=synthesizer)
Aspects.of(app).add(UvBundlingAspect())
app.synth()
