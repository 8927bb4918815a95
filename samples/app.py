"""The sample CDK app: plain aws_lambda.Functions, each marked with the uv package it runs.

``-c assets-bucket=NAME`` makes the stack upload its assets to that existing bucket with the CLI's own
credentials (``CliCredentialsStackSynthesizer``): no ``cdk bootstrap`` needed, which is how the deploy
tests reach a local AWS emulator. Without a bootstrap stack there is no ECR repository for images, so
the image function is left out then. Without the switch: CDK's default synthesizer, every function.
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
    def __init__(self, scope: Construct, id: str, *, images: bool = True, **kwargs) -> None:
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


app = App()
bucket = app.node.try_get_context("assets-bucket")
synthesizer = CliCredentialsStackSynthesizer(file_assets_bucket_name=bucket) if bucket else None
SampleStack(app, "UvSample", synthesizer=synthesizer, images=not bucket)
Aspects.of(app).add(UvBundlingAspect())
app.synth()
